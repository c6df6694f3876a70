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

use crate::codec::{BookFrame, LEVELS_PER_SIDE_MAX, Level, UpdateKind};
use crate::decimal::Dec;
use crate::swar::{Quotes, decimal_exact};
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
        let b = self.bytes();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(d) = b
            .get(self.pos)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            v = v.wrapping_mul(10).wrapping_add(d as u64);
            self.pos += 1;
        }
        // Nineteen digits always fit; longer numbers go to the general path.
        let len = self.pos - start;
        if len == 0 || len > 19 || (len > 1 && b[start] == b'0') {
            return None;
        }
        Some(v)
    }

    /// `[]` or `[["px","qty"],...]` with a positive price and a size of zero or more.
    ///
    /// The quotes are found eight bytes at a time ahead of the digits, so each level's numbers
    /// are known to lie between quotes before they are read, and one number never waits on the
    /// reading of the one before it.
    #[inline]
    fn levels(&mut self, out: &mut Vec<Level>) -> Option<()> {
        out.clear();
        self.lit(b"[")?;
        if self.lit(b"]").is_some() {
            return Some(());
        }
        let b = self.bytes();
        let mut quotes = Quotes::from(b, self.pos);
        loop {
            if out.len() == LEVELS_PER_SIDE_MAX {
                return None;
            }
            // `["` px `","` qty `"]`: four quotes, and between them only what is checked here.
            let open = self.pos;
            let (q0, q1, q2, q3) = (
                quotes.next_quote()?,
                quotes.next_quote()?,
                quotes.next_quote()?,
                quotes.next_quote()?,
            );
            if b[open] != b'[' || q0 != open + 1 || q2 != q1 + 2 || b[q1 + 1] != b',' {
                return None;
            }
            if b.get(q3 + 1) != Some(&b']') {
                return None;
            }
            let px = decimal_exact(b, q0 + 1, q1)?;
            let qty = decimal_exact(b, q2 + 1, q3)?;
            if px <= Dec::ZERO || qty.is_negative() {
                return None;
            }
            out.push(Level { px, qty });
            self.pos = q3 + 2;
            match b.get(self.pos)? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Reads `b` as an order-book frame laid out as Bybit lays it out, filling `bids` and `asks`;
/// `None` when it is laid out any other way or would be refused. The buffers may hold anything
/// afterwards in that case: the general path clears them before use.
#[inline]
pub(crate) fn book<'a>(
    b: &'a [u8],
    bids: &mut Vec<Level>,
    asks: &mut Vec<Level>,
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
