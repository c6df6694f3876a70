//! Word-at-a-time byte tricks for the order-book hot path: eight bytes per operation in plain
//! integer arithmetic, no `unsafe` and no target features.
//!
//! Written by hand because reading the levels' digits a byte at a time was about a quarter of an
//! orderbook.200 frame's parse + apply time; reading them by words once the quotes are known took
//! a frame from 790 to 700 ns (BENCHMARKS.md, "Closing the gap"). Every function here is tested
//! against a plain reference.

use crate::decimal::Dec;
use crate::json::raw_dec;

const LANES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F * LANES;
const HIGH: u64 = 0x80 * LANES;

/// Eight bytes at `at`, little-endian; past the end of `b` the missing bytes read as zero.
#[inline]
pub(crate) fn word_at(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
        None => {
            let mut w = [0u8; 8];
            let rest = b.get(at..).unwrap_or(&[]);
            w[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(w)
        }
    }
}

/// The top bit of every byte of `w` that equals `c`, and no other bit.
#[inline]
pub(crate) fn eq_mask(w: u64, c: u8) -> u64 {
    let x = w ^ (c as u64 * LANES);
    // A byte is zero when adding 0x7F to its low seven bits carries into neither its top bit
    // nor is its own top bit set; the carries stay inside each byte, so the mask is exact.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Bytes `0..n` of a word (all eight when `n` is 8 or more).
#[inline]
fn low_bytes(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// The top bit of every byte of `w` that is not an ASCII digit; exact up to and including the
/// first such byte (borrows and carries only run upwards from it).
#[inline]
fn non_digits(w: u64) -> u64 {
    let t = w.wrapping_sub(0x30 * LANES);
    (t | t.wrapping_add(0x76 * LANES)) & HIGH
}

/// The value of the `n` (1..=8) ASCII digits in the low bytes of `w`, first byte most
/// significant, or `None` when one of them is not a digit.
#[inline]
fn digits_value(w: u64, n: usize) -> Option<u64> {
    if non_digits(w) & low_bytes(n) != 0 {
        return None;
    }
    let t = w.wrapping_sub(0x30 * LANES);
    // Shifting the run to the top leaves zero digits below it; then pairs, quads and halves.
    let mut x = t << (8 * (8 - n));
    x = (x.wrapping_mul(10).wrapping_add(x >> 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x.wrapping_mul(100).wrapping_add(x >> 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x.wrapping_mul(10_000).wrapping_add(x >> 32)) & 0xFFFF_FFFF;
    Some(x)
}

/// The decimal that fills `b[start..end]` exactly (digits with at most one point between
/// digits, as [`Dec::parse`] accepts it), or `None`. Up to eight characters take one word: the
/// point is found and squeezed out, and the digits are checked and read together.
#[inline(always)]
pub(crate) fn decimal_exact(b: &[u8], start: usize, end: usize) -> Option<Dec> {
    let len = end.checked_sub(start)?;
    if len == 0 || len > 8 {
        return decimal_exact_slow(b, start, end);
    }
    decimal_word(word_at(b, start), len).or_else(|| decimal_exact_slow(b, start, end))
}

/// Signs, long numbers and refusals.
#[cold]
fn decimal_exact_slow(b: &[u8], start: usize, end: usize) -> Option<Dec> {
    let mut i = start;
    raw_dec(b.get(..end)?, &mut i).filter(|_| i == end)
}

/// An unsigned decimal of `len` (1..=8) bytes held in the low bytes of `w`.
#[inline(always)]
fn decimal_word(w: u64, len: usize) -> Option<Dec> {
    let dots = eq_mask(w, b'.') & low_bytes(len) & HIGH;
    if dots == 0 {
        return Some(Dec::from_parts(digits_value(w, len)?, 0, false));
    }
    let at = (dots.trailing_zeros() / 8) as usize;
    // A point needs a digit on each side; a second point fails the digit check below.
    if at == 0 || at + 1 == len {
        return None;
    }
    let keep = low_bytes(at);
    let squeezed = (w & keep) | ((w >> 8) & !keep);
    let mantissa = digits_value(squeezed, len - 1)?;
    Some(Dec::from_parts(mantissa, (len - 1 - at) as u32, false))
}

/// The positions of the `"` bytes of `b` from a starting point on, eight bytes at a time.
pub(crate) struct Quotes<'a> {
    b: &'a [u8],
    word: usize,
    mask: u64,
}

impl<'a> Quotes<'a> {
    pub(crate) fn from(b: &'a [u8], at: usize) -> Self {
        Quotes {
            b,
            word: at,
            mask: eq_mask(word_at(b, at), b'"'),
        }
    }

    #[inline]
    pub(crate) fn next_quote(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.word += 8;
            if self.word >= self.b.len() {
                return None;
            }
            self.mask = eq_mask(word_at(self.b, self.word), b'"');
        }
        let at = self.word + (self.mask.trailing_zeros() / 8) as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_mask_marks_exactly_the_equal_bytes() {
        for c in 0u8..=255 {
            for probe in [0u8, 1, c ^ 1, c, c.wrapping_add(1), 0x7F, 0x80, 0xFF] {
                let bytes = [probe, c, 0, c ^ 0x80, probe, c, c ^ 1, 0xFF];
                let m = eq_mask(u64::from_le_bytes(bytes), c);
                for (i, byte) in bytes.iter().enumerate() {
                    assert_eq!(m >> (8 * i + 7) & 1 == 1, *byte == c, "{c} {bytes:?}");
                }
                assert_eq!(m & !HIGH, 0);
            }
        }
    }

    #[test]
    fn quotes_are_found_in_order_across_words_and_at_the_end() {
        let text = br#"{"a":"bc","defghijklmnop":["1","2"]}""#;
        let want: Vec<usize> = (0..text.len()).filter(|i| text[*i] == b'"').collect();
        for start in 0..text.len() {
            let mut q = Quotes::from(text, start);
            let got: Vec<usize> = std::iter::from_fn(|| q.next_quote()).collect();
            let want: Vec<usize> = want.iter().copied().filter(|i| *i >= start).collect();
            assert_eq!(got, want, "from {start}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decimal_exact_agrees_with_the_scanner_and_dec_parse(
            text in "[-0-9.:/ a]{0,12}",
            pad in "[0-9.\"]{0,9}",
        ) {
            let doc = format!("{text}{pad}");
            let got = decimal_exact(doc.as_bytes(), 0, text.len());
            let mut i = 0;
            let scanned = raw_dec(text.as_bytes(), &mut i).filter(|_| i == text.len());
            proptest::prop_assert_eq!(got, scanned, "{:?}", text);
            if let Some(d) = got {
                proptest::prop_assert_eq!(Ok(d), Dec::parse(&text));
            }
        }
    }
}
