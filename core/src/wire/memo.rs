//! The price texts an order book's frames repeat, and what they read as.
//!
//! A book's prices sit on a tick grid near the top and come back frame after frame (the four
//! real orderbook.200 captures: 17,734 levels, 1,848 distinct prices), so the decoder keeps the
//! texts it has read: looking one up is a hash of the word that holds it, a load and a compare,
//! where reading it checks and converts every byte. Sizes are read as they come: in the same
//! captures 6,286 sizes were distinct (each came back 2.8 times against a price's 9.6), and
//! keeping them too made those captures 7% slower; the venue's generator draws sizes from a few
//! hundred values, where keeping them looked 15% faster (BENCHMARKS.md, "Session 13").
//!
//! It holds results of a pure function of the bytes, never state: what it holds changes no
//! answer, only how soon it comes, so the texts of a frame refused later may stay in it.

use crate::wire::swar::{decimal_word, first_eq, quoted_decimal_two_words};

/// Slots in the table (a power of two): 8,192 of 16 bytes. Half as many was 10% slower on a
/// linear orderbook.1000 recording (2,435 distinct prices collided).
pub(crate) const MEMO_SLOTS: usize = 1 << 13;

/// Slots for texts of 9 to 15 characters (a power of two), of 24 bytes each.
const LONG_SLOTS: usize = 1 << 12;

/// A fixed table indexed by a hash of the text; a text that lands on a taken slot replaces it,
/// which costs the next reading of the other text and loses nothing.
#[derive(Clone)]
pub(crate) struct NumberMemo<const SLOTS: usize = MEMO_SLOTS> {
    /// Texts of up to eight characters. Arrays, not slices: an index masked to the length
    /// needs no bounds check.
    slots: Box<[Short; SLOTS]>,
    /// Texts of 9 to 15 characters: their two words through the closing quote, and the count
    /// with the places in the top byte. A key of zeros is a free slot: every text has a digit.
    long: Box<[([u64; 2], u64); LONG_SLOTS]>,
}

impl<const SLOTS: usize> Default for NumberMemo<SLOTS> {
    fn default() -> Self {
        const { assert!(SLOTS.is_power_of_two() && SLOTS > 1) };
        NumberMemo {
            slots: boxed_array(Short::default()),
            long: boxed_array(([0, 0], 0)),
        }
    }
}

/// An array on the heap, built there (the memo's would not fit a small stack).
fn boxed_array<T: Clone, const N: usize>(fill: T) -> Box<[T; N]> {
    vec![fill; N]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| unreachable!("the vector has N elements"))
}

/// The slot of `key` in a table of `slots` (a power of two): the top bits of a multiplicative
/// hash.
#[inline(always)]
fn slot_of(key: u64, slots: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - slots.trailing_zeros())) as usize
        & (slots - 1)
}

/// Not the texts: a debug print of a decoder should stay short.
impl<const SLOTS: usize> std::fmt::Debug for NumberMemo<SLOTS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberMemo")
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// The count in a long slot's value; the places are in the top byte.
const COUNT_BITS: u64 = (1 << 56) - 1;

/// A text of up to eight characters and what it reads as: at most eight digits, so the count
/// fits 32 bits, and the slot 16 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Short {
    /// The text's word through its closing quote (the eight bytes of an eight-character text,
    /// whose quote follows). Zero is a free slot: every text has a digit.
    key: u64,
    count: u32,
    places: u32,
}

impl<const SLOTS: usize> NumberMemo<SLOTS> {
    /// The number whose JSON text starts at `start`, read through `word(at)` (the eight bytes at
    /// `at`), as `((count, places), end)` with `end` the place of its closing quote: what
    /// [`crate::wire::swar::quoted_decimal_word`] gives for every text, and for texts of 9 to 15
    /// characters what [`quoted_decimal_two_words`] gives; `None` for the rest. `word` must
    /// reach 17 bytes past `start`.
    #[inline(always)]
    pub(crate) fn decimal(
        &mut self,
        word: &impl Fn(usize) -> u64,
        start: usize,
    ) -> Option<((u64, u32), usize)> {
        let w = word(start);
        let quotes = first_eq(w, b'"');
        // The key holds the text and the quote that ends it, so two texts share a key only if
        // they are the same text: shorter texts end in a quote within the word, an
        // eight-character one has none in it.
        let (key, len) = if quotes != 0 {
            // The bits through the lowest set one: through the first quote's byte.
            let through = quotes ^ quotes.wrapping_sub(1);
            (w & through, (quotes.trailing_zeros() / 8) as usize)
        } else {
            let next = word(start + 8);
            if next & 0xFF != b'"' as u64 {
                return self.long(word, start, w, next);
            }
            (w, 8)
        };
        let slot = &mut self.slots[slot_of(key, SLOTS)];
        if slot.key == key {
            return Some(((slot.count as u64, slot.places), start + len));
        }
        read_and_keep(w, len, key, slot).map(|d| (d, start + len))
    }

    /// A text of nine characters or more, whose first word `head` is known to hold no quote and
    /// whose second is `tail`: up to 15 characters through the memo, `None` for longer ones. A
    /// hit inline; a miss out of line, as [`read_and_keep`] is (the whole lookup out of line
    /// spent a third of its instructions on the call: a small coin's every price is long).
    #[inline(always)]
    fn long(
        &mut self,
        word: &impl Fn(usize) -> u64,
        start: usize,
        head: u64,
        tail: u64,
    ) -> Option<((u64, u32), usize)> {
        let quotes = first_eq(tail, b'"');
        if quotes == 0 {
            return None;
        }
        let key = [head, tail & (quotes ^ quotes.wrapping_sub(1))];
        let end = start + 8 + (quotes.trailing_zeros() / 8) as usize;
        let slot = &mut self.long[slot_of(key[0] ^ key[1].rotate_left(29), LONG_SLOTS)];
        if slot.0 == key {
            return Some(((slot.1 & COUNT_BITS, (slot.1 >> 56) as u32), end));
        }
        read_long_and_keep(word, start, end, key, slot).map(|d| (d, end))
    }
}

/// A long text not in the memo (it ends at `end`): read, and kept when it reads.
#[inline(never)]
fn read_long_and_keep(
    word: &impl Fn(usize) -> u64,
    start: usize,
    end: usize,
    key: [u64; 2],
    slot: &mut ([u64; 2], u64),
) -> Option<(u64, u32)> {
    let ((count, places), read_end) = quoted_decimal_two_words(word, start)?;
    debug_assert_eq!(read_end, end);
    // At most 15 digits: the count fits below the top byte.
    *slot = (key, count | (places as u64) << 56);
    Some((count, places))
}

/// A text not in the memo: read, and kept when it reads. Out of line, so that the lookup
/// inlined into the level reader stays small (inlined, the whole reader was called per number
/// and cost more than it saved).
#[inline(never)]
fn read_and_keep(w: u64, len: usize, key: u64, slot: &mut Short) -> Option<(u64, u32)> {
    let (count, places) = decimal_word(w, len)?;
    // At most eight digits: the count fits 32 bits.
    *slot = Short {
        key,
        count: count as u32,
        places,
    };
    Some((count, places))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::swar::{quoted_decimal_two_words, quoted_decimal_word, word_at};

    fn read<const SLOTS: usize>(memo: &mut NumberMemo<SLOTS>, doc: &[u8]) -> Option<(u64, u32)> {
        memo.decimal(&|at| word_at(doc, at), 0).map(|(d, end)| {
            assert_eq!(doc[end], b'"');
            d
        })
    }

    /// What the memo stands for: the one-word reader, then the two-word one.
    fn plain(doc: &[u8]) -> Option<(u64, u32)> {
        let word = |at| word_at(doc, at);
        quoted_decimal_word(&word, 0)
            .or_else(|| quoted_decimal_two_words(&word, 0))
            .map(|(d, _)| d)
    }

    #[test]
    fn a_text_read_again_gives_what_it_gave_the_first_time() {
        let mut memo = NumberMemo::<MEMO_SLOTS>::default();
        for doc in [
            &b"63052.52\"],"[..],
            b"0\"]]",
            b"0.000051\"",
            b"63052.5\"",
            b"7\",",
            b"126105.04\"",
            b"0.00000051\"],[",
            b"123456789012345\"",
            b"1.2345678901234\"",
        ] {
            let first = read(&mut memo, doc);
            assert!(first.is_some());
            assert_eq!(read(&mut memo, doc), first);
            assert_eq!(first, plain(doc));
        }
    }

    #[test]
    fn texts_that_differ_only_past_the_quote_share_a_reading() {
        let mut memo = NumberMemo::<MEMO_SLOTS>::default();
        assert_eq!(read(&mut memo, b"12\"],[\"9"), Some((12, 0)));
        assert_eq!(read(&mut memo, b"12\"]]"), Some((12, 0)));
        // The same digits with a zero instead of the quote are another text.
        assert_eq!(read(&mut memo, b"12000000\""), Some((12_000_000, 0)));
        assert_eq!(read(&mut memo, b"12\"]]"), Some((12, 0)));
    }

    #[test]
    fn refused_texts_are_not_kept() {
        let mut memo = NumberMemo::<2>::default();
        for _ in 0..2 {
            assert_eq!(read(&mut memo, b"1.2.3\""), None);
            assert_eq!(read(&mut memo, b".5\""), None);
            assert_eq!(read(&mut memo, b"-5\""), None);
            assert_eq!(read(&mut memo, b"1234567890123456\""), None);
            assert_eq!(read(&mut memo, b"1.2.3.4.5.6\""), None);
        }
        assert!(memo.slots.iter().all(|s| s.key == 0));
        assert!(memo.long.iter().all(|s| s.0 == [0, 0]));
    }

    proptest::proptest! {
        /// Texts from a small set, so that they repeat, in a memo of two slots, so that they
        /// collide and replace each other: every reading is the plain reader's.
        #[test]
        fn the_memo_reads_every_text_as_the_plain_reader_does(
            texts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "0", "1", "10", "0.1", "1.0", "63052.52", "63052.5", "6305252", "0.000051",
                    "00", "1.", ".1", "1..2", "12345678", "123456789", "-1", "1e5", "",
                    "126105.04", "0.00000051", "1234567890123456", "12345678901234567",
                    "1.234567890123456", "12345678.", "1234567.89.1",
                ]),
                1..40,
            ),
            tails in proptest::collection::vec("[\"\\],\\[0-9.]{0,9}", 40),
        ) {
            let mut memo = NumberMemo::<2>::default();
            let mut big = NumberMemo::<MEMO_SLOTS>::default();
            for (text, tail) in texts.iter().zip(&tails) {
                let doc = format!("{text}\"{tail}");
                let want = plain(doc.as_bytes());
                proptest::prop_assert_eq!(read(&mut memo, doc.as_bytes()), want, "{:?}", doc);
                proptest::prop_assert_eq!(read(&mut big, doc.as_bytes()), want, "{:?}", doc);
            }
        }
    }
}
