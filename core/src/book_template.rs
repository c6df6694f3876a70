//! The one byte layout Bybit gives every order-book frame, read without a tokenizer.
//!
//! Every order-book frame in our captures is laid out the same way, key for key, with no white
//! space: `{"topic":"..","type":"..","ts":N,"data":{"s":"..","b":[..],"a":[..],"u":N,"seq":N},
//! "cts":N}` (`seq` and `cts` are absent in older captures). Matching that layout as literal bytes
//! removes the per-key dispatch of the general scanner, which was about 40% of decoding an
//! orderbook.200 delta (BENCHMARKS.md, "Closing the gap").
//!
//! It reads bytes, before any UTF-8 check of the whole frame: everything it accepts is ASCII
//! (checked literals, digits, and a topic that must parse) apart from the topic's own text, which
//! it checks.
//!
//! This path never reports an error. Anything off the template, or anything the general path
//! would refuse, returns `None` and the frame is decoded again by the general scanner, which
//! gives the typed error. So this path has one duty: accept only what the scanner accepts and
//! produce the same frame; `tests/book_template.rs` checks that on real and mutated frames.

use crate::codec::{BookFrame, LEVELS_PER_SIDE_MAX, UpdateKind, WireLevel};
use crate::swar::{json_uint, quoted_decimal, word_at};
use crate::topic::{Channel, Topic};

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.b
    }

    #[inline]
    fn lit(&mut self, want: &[u8]) -> Option<()> {
        if self.bytes().get(self.pos..self.pos + want.len())? == want {
            self.pos += want.len();
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn peek_is(&self, want: &[u8]) -> bool {
        self.bytes()
            .get(self.pos..self.pos + want.len())
            .is_some_and(|b| b == want)
    }

    /// The rest of a string whose opening quote was matched, up to and past its closing quote.
    /// Escapes and control characters are left to the general path.
    #[inline]
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        loop {
            match *b.get(i)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        Some(&b[start..i])
    }

    /// A JSON integer that fits `u64` when written in at most 19 digits; no leading zero.
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        let (v, len) = json_uint(self.bytes(), self.pos)?;
        self.pos += len;
        Some(v)
    }

    /// `[]` or `[["px","qty"],...]` with a positive price and a size of zero or more.
    ///
    /// Each number's text is read as one word, which also shows where its closing quote is; the
    /// punctuation around it is checked a word at a time. Finding the quotes ahead of the digits
    /// with a running bitmap cost a mispredicted branch whenever a level straddled a word
    /// (BENCHMARKS.md, "Closing the gap").
    #[inline]
    fn levels(&mut self, out: &mut Vec<WireLevel>) -> Option<()> {
        out.clear();
        self.lit(b"[")?;
        if self.lit(b"]").is_some() {
            return Some(());
        }
        let b = self.bytes();
        let mut pos = self.pos;
        loop {
            if out.len() == LEVELS_PER_SIDE_MAX {
                return None;
            }
            // `["` px `","` qty `"]` and then `,` or the closing `]`.
            if word_at(b, pos) & 0xFFFF != OPEN_LEVEL {
                return None;
            }
            let ((px, px_places), end) = quoted_decimal(b, pos + 2)?;
            if word_at(b, end) & 0xFF_FFFF != BETWEEN_NUMBERS {
                return None;
            }
            let ((qty, qty_places), end) = quoted_decimal(b, end + 3)?;
            if px == 0 {
                return None;
            }
            out.push(WireLevel::new(px, px_places, qty, qty_places)?);
            let tail = word_at(b, end) & 0xFF_FFFF;
            pos = end + 3;
            if tail == LEVEL_THEN_MORE {
                continue;
            }
            if tail == LEVEL_THEN_END {
                self.pos = pos;
                return Some(());
            }
            return None;
        }
    }
}

/// The punctuation of a level as little-endian words of its bytes.
const OPEN_LEVEL: u64 = u16::from_le_bytes(*b"[\"") as u64;
const BETWEEN_NUMBERS: u64 = u32::from_le_bytes(*b"\",\"\0") as u64;
const LEVEL_THEN_MORE: u64 = u32::from_le_bytes(*b"\"],\0") as u64;
const LEVEL_THEN_END: u64 = u32::from_le_bytes(*b"\"]]\0") as u64;

/// Reads `b` as an order-book frame laid out as Bybit lays it out, filling `bids` and `asks`;
/// `None` when it is laid out any other way or would be refused. The buffers may hold anything
/// afterwards in that case: the general path clears them before use.
#[inline]
pub(crate) fn book<'a>(
    b: &'a [u8],
    bids: &mut Vec<WireLevel>,
    asks: &mut Vec<WireLevel>,
) -> Option<BookFrame<'a>> {
    let mut c = Cursor { b, pos: 0 };
    c.lit(b"{\"topic\":\"")?;
    if !c.peek_is(b"orderbook.") {
        return None;
    }
    let topic = std::str::from_utf8(c.raw_str()?).ok()?;
    let parsed = Topic::parse(topic).ok()?;
    let Channel::OrderBook { depth } = parsed.channel else {
        return None;
    };
    c.lit(b",\"type\":\"")?;
    let kind = match c.raw_str()? {
        b"delta" => UpdateKind::Delta,
        b"snapshot" => UpdateKind::Snapshot,
        _ => return None,
    };
    c.lit(b",\"ts\":")?;
    let ts = c.uint()?;
    c.lit(b",\"data\":{\"s\":\"")?;
    if c.raw_str()? != parsed.symbol.as_bytes() {
        return None;
    }
    c.lit(b",\"b\":")?;
    c.levels(bids)?;
    c.lit(b",\"a\":")?;
    c.levels(asks)?;
    c.lit(b",\"u\":")?;
    let u = c.uint()?;
    let seq = match c.lit(b",\"seq\":") {
        Some(()) => Some(c.uint()?),
        None => None,
    };
    c.lit(b"}")?;
    let cts = match c.lit(b",\"cts\":") {
        Some(()) => Some(c.uint()?),
        None => None,
    };
    c.lit(b"}")?;
    if c.pos != b.len() {
        return None;
    }
    // The levels are in the caller's buffers; it lends them to the frame.
    Some(BookFrame {
        topic,
        symbol: parsed.symbol,
        depth,
        kind,
        ts,
        u,
        seq,
        cts,
        bids: &[],
        asks: &[],
    })
}
