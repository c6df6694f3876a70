//! The one byte layout Bybit gives every order-book frame, read without a tokenizer.
//!
//! Every order-book frame Bybit sends has no white space and starts with its topic:
//! `{"topic":"..","type":"..","ts":N,"data":{"s":"..","b":[..],"a":[..],"u":N,"seq":N},"cts":N}`
//! on linear, `{"topic":"..","ts":N,"type":"..","data":{..},"cts":N}` on spot (`seq` and `cts`
//! are absent in older captures); after the topic the top-level keys are taken in any order. Matching that layout as literal bytes
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

use crate::wire::frame::{LEVELS_PER_SIDE_MAX, UpdateKind, WireLevel};
use crate::wire::memo::NumberMemo;
use crate::wire::swar::{
    first_eq, json_uint, quoted_decimal_long, quoted_decimal_two_words, quoted_decimal_word,
    word_at,
};
use crate::wire::topic::{Channel, Topic};

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
        self.peek_is(want).then(|| self.pos += want.len())
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
    fn levels(&mut self, out: &mut Vec<WireLevel>, memo: &mut NumberMemo) -> Option<()> {
        out.clear();
        self.lit(b"[")?;
        if self.lit(b"]").is_some() {
            return Some(());
        }
        let b = self.bytes();
        // `["` px `","` qty `"]` and then `,["` and the next level, or the closing `]`. The word
        // read after each level also holds the next one's opening.
        if word_at(b, self.pos) & 0xFFFF != OPEN_LEVEL {
            return None;
        }
        let mut pos = self.pos + 2;
        loop {
            if out.len() == LEVELS_PER_SIDE_MAX {
                return None;
            }
            // A level and the punctuation after it fit in a window of the frame, read with one
            // bounds check: checking each of its four words cost 153 of 5,542 instructions a
            // frame (BENCHMARKS.md, "Closing the gap").
            let read = match b
                .get(pos..)
                .and_then(<[u8]>::first_chunk::<LEVEL_WINDOW_BYTES>)
            {
                Some(bytes) => level(&mut Window { bytes, memo }),
                None => None,
            };
            let (l, next) = match read {
                Some(read) => read,
                None => level(&mut Frame { b, pos })?,
            };
            out.push(l);
            match next {
                Next::Level(skip) => pos += skip,
                Next::End(skip) => {
                    self.pos = pos + skip;
                    return Some(());
                }
            }
        }
    }
}

/// Bytes of a frame read at once for one level: two numbers of up to 15 characters and their
/// punctuation (the last word read, after the size, starts at most 33 bytes in).
const LEVEL_WINDOW_BYTES: usize = 48;

/// The word at `at` in a level's window.
#[inline(always)]
fn window_word(window: &[u8; LEVEL_WINDOW_BYTES], at: usize) -> u64 {
    // A level read from a window asks for words at most 33 bytes in; the bound lets the
    // compiler drop the checks.
    debug_assert!(at <= 33);
    let at = at.min(LEVEL_WINDOW_BYTES - 8);
    u64::from_le_bytes(*window[at..].first_chunk::<8>().expect("at is at most 40"))
}

/// What follows a level: the next level `skip` bytes on from where this one began, or the end
/// of the side `skip` bytes on.
enum Next {
    Level(usize),
    End(usize),
}

/// Where a level's bytes are read from, counted from its first byte.
trait LevelBytes {
    /// The eight bytes at `at`.
    fn word(&self, at: usize) -> u64;
    /// The price, whose text starts the level, and the place of its closing quote.
    fn price(&mut self) -> Option<((u64, u32), usize)>;
    /// The size, whose text starts at `at`, and the place of its closing quote.
    fn size(&self, at: usize) -> Option<((u64, u32), usize)>;
}

/// A window of the frame, and the prices read before: the path nearly every level takes.
struct Window<'a> {
    bytes: &'a [u8; LEVEL_WINDOW_BYTES],
    memo: &'a mut NumberMemo,
}

impl LevelBytes for Window<'_> {
    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        window_word(self.bytes, at)
    }

    /// Texts of up to 15 characters through the memo; `None` for longer ones and refusals,
    /// which [`Frame`] then reads or refuses.
    #[inline(always)]
    fn price(&mut self) -> Option<((u64, u32), usize)> {
        let bytes = self.bytes;
        self.memo.decimal(&|at| window_word(bytes, at), 0)
    }

    /// Texts of up to 15 characters, read as they come (see [`NumberMemo`] for why sizes are not
    /// kept).
    #[inline(always)]
    fn size(&self, at: usize) -> Option<((u64, u32), usize)> {
        let bytes = self.bytes;
        quoted_decimal_word(&|at| window_word(bytes, at), at).or_else(|| window_long(bytes, at))
    }
}

/// A size of 9 to 15 characters in a window. Out of line: the level reader stays small.
#[inline(never)]
fn window_long(bytes: &[u8; LEVEL_WINDOW_BYTES], at: usize) -> Option<((u64, u32), usize)> {
    quoted_decimal_two_words(&|at| window_word(bytes, at), at)
}

/// The frame itself, each word checked against its end: the last levels of a frame, and any
/// level the window refused.
struct Frame<'a> {
    b: &'a [u8],
    /// The level's first byte.
    pos: usize,
}

impl LevelBytes for Frame<'_> {
    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        word_at(self.b, self.pos + at)
    }

    #[inline(always)]
    fn price(&mut self) -> Option<((u64, u32), usize)> {
        self.size(0)
    }

    /// Any text: signs, up to 19 digits, and the refusals.
    #[inline(always)]
    fn size(&self, at: usize) -> Option<((u64, u32), usize)> {
        quoted_decimal_word(&|at| self.word(at), at).or_else(|| {
            quoted_decimal_long(self.b, self.pos + at).map(|(d, end)| (d, end - self.pos))
        })
    }
}

/// One level `px","qty"]` and the punctuation after it.
#[inline(always)]
fn level(bytes: &mut impl LevelBytes) -> Option<(WireLevel, Next)> {
    let ((px, px_places), px_end) = bytes.price()?;
    if bytes.word(px_end) & 0xFF_FFFF != BETWEEN_NUMBERS {
        return None;
    }
    let qty_at = px_end + 3;
    let ((qty, qty_places), end) = bytes.size(qty_at)?;
    if px == 0 {
        return None;
    }
    let l = WireLevel::from_counts(px, px_places, qty, qty_places);
    let tail = bytes.word(end);
    if tail & 0xFF_FFFF_FFFF == LEVEL_THEN_NEXT {
        return Some((l, Next::Level(end + 5)));
    }
    if tail & 0xFF_FFFF == LEVEL_THEN_END {
        return Some((l, Next::End(end + 3)));
    }
    None
}

/// The punctuation of a level as little-endian words of its bytes.
const OPEN_LEVEL: u64 = u16::from_le_bytes(*b"[\"") as u64;
const BETWEEN_NUMBERS: u64 = u32::from_le_bytes(*b"\",\"\0") as u64;
const LEVEL_THEN_NEXT: u64 = u64::from_le_bytes(*b"\"],[\"\0\0\0");
const LEVEL_THEN_END: u64 = u32::from_le_bytes(*b"\"]]\0") as u64;

/// The order-book topics read recently, so that a frame of a known topic skips the UTF-8 check,
/// the topic parse and the byte-by-byte scan for its end (about a twentieth of a frame). A fixed
/// table indexed by a hash of the topic's bytes; a topic that lands on a taken slot replaces it
/// and is parsed in full next time it comes, which costs time and loses nothing.
#[derive(Debug, Clone)]
pub(crate) struct BookTopics {
    /// An empty text marks a free slot: every topic looked up starts "orderbook.".
    slots: Vec<BookTopic>,
    /// The key the next topic learned gets; keys are never reused, even after the topic leaves.
    next_key: u64,
}

/// A free slot is the default: an empty text, which no topic looked up has.
#[derive(Debug, Clone, Default)]
pub(crate) struct BookTopic {
    pub text: Box<str>,
    pub depth: u16,
    /// Where the symbol starts in `text`.
    pub symbol_at: usize,
    /// This topic's [`crate::wire::frame::BookFrame::topic_key`]; 0 for a free slot.
    pub key: u64,
    /// The bytes from the end of `ts` to the bids, which name the symbol again: one comparison.
    data_head: Box<[u8]>,
}

/// Slots in [`BookTopics`]: more than the order-book topics one connection carries.
const BOOK_TOPIC_SLOTS: usize = 64;
/// Longest topic looked for in the table; longer ones are parsed every time.
const BOOK_TOPIC_BYTES_MAX: usize = 64;

impl Default for BookTopics {
    fn default() -> Self {
        BookTopics {
            slots: vec![BookTopic::default(); BOOK_TOPIC_SLOTS],
            next_key: 1,
        }
    }
}

impl BookTopics {
    /// The topic in `slot` (a slot number from [`book`]).
    pub(crate) fn get(&self, slot: usize) -> &BookTopic {
        &self.slots[slot % BOOK_TOPIC_SLOTS]
    }

    #[inline]
    fn slot_of(text: &[u8]) -> usize {
        // Topics differ in their last eight bytes (the symbol) or in their length (the depth).
        let tail = word_at(text, text.len().saturating_sub(8));
        let h = (tail ^ text.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 58) as usize % BOOK_TOPIC_SLOTS
    }

    /// The slot holding the topic whose text starts at `b[start..]`, and where its closing
    /// quote is; parsed and stored when it is not there.
    #[inline]
    fn find(&mut self, b: &[u8], start: usize) -> Option<(usize, usize)> {
        let end = start + closing_quote(b.get(start..)?)?;
        let text = &b[start..end];
        let slot = Self::slot_of(text);
        if self.slots[slot].text.as_bytes() == text {
            return Some((slot, end));
        }
        self.learn(slot, b, start, end)
    }

    #[cold]
    fn learn(&mut self, slot: usize, b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
        let mut c = Cursor { b, pos: start };
        let text = std::str::from_utf8(c.raw_str()?).ok()?;
        if c.pos != end + 1 {
            return None;
        }
        let parsed = Topic::parse(text).ok()?;
        let Channel::OrderBook { depth } = parsed.channel else {
            return None;
        };
        self.slots[slot] = BookTopic {
            text: text.into(),
            depth,
            symbol_at: text.len() - parsed.symbol.len(),
            key: self.next_key,
            data_head: format!(",\"data\":{{\"s\":\"{}\",\"b\":", parsed.symbol)
                .into_bytes()
                .into(),
        };
        self.next_key += 1;
        Some((slot, end))
    }
}

/// The place of the first `"` in `b`, looked for a word at a time within
/// [`BOOK_TOPIC_BYTES_MAX`].
#[inline]
fn closing_quote(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < BOOK_TOPIC_BYTES_MAX.min(b.len()) {
        let q = first_eq(word_at(b, at), b'"');
        if q != 0 {
            let i = at + (q.trailing_zeros() / 8) as usize;
            return (i < b.len()).then_some(i);
        }
        at += 8;
    }
    None
}

/// What the template read of a frame besides the levels, which it leaves in the caller's buffers.
pub(crate) struct BookHead {
    /// The topic's slot in the caller's [`BookTopics`].
    pub topic_slot: usize,
    pub kind: UpdateKind,
    pub ts: u64,
    pub u: u64,
    pub seq: Option<u64>,
    pub cts: Option<u64>,
}

/// Reads `b` as an order-book frame laid out as Bybit lays it out, filling `bids` and `asks`;
/// `None` when it is laid out any other way or would be refused. The buffers may hold anything
/// afterwards in that case: the general path clears them before use.
#[inline]
pub(crate) fn book(
    b: &[u8],
    bids: &mut Vec<WireLevel>,
    asks: &mut Vec<WireLevel>,
    topics: &mut BookTopics,
    memo: &mut NumberMemo,
) -> Option<BookHead> {
    let mut c = Cursor { b, pos: 0 };
    c.lit(b"{\"topic\":\"")?;
    if !c.peek_is(b"orderbook.") {
        return None;
    }
    let (topic_slot, end) = topics.find(b, c.pos)?;
    c.pos = end + 1;
    let topic = topics.get(topic_slot);
    // After the topic, Bybit writes `type`, `ts`, `data` and `cts` in an order that differs by
    // category (linear: type, ts, data; spot: ts, type, data): each is taken where it comes,
    // once. `data` names the symbol again, compared as one literal.
    let (mut kind, mut ts, mut data, mut cts) = (None, None, None, None);
    loop {
        if kind.is_none() && c.lit(b",\"type\":\"").is_some() {
            kind = Some(if c.lit(b"delta\"").is_some() {
                UpdateKind::Delta
            } else {
                c.lit(b"snapshot\"")?;
                UpdateKind::Snapshot
            });
        } else if ts.is_none() && c.lit(b",\"ts\":").is_some() {
            ts = Some(c.uint()?);
        } else if data.is_none() && c.peek_is(&topic.data_head) {
            c.pos += topic.data_head.len();
            data = Some(data_fields(&mut c, bids, asks, memo)?);
        } else if cts.is_none() && c.lit(b",\"cts\":").is_some() {
            cts = Some(c.uint()?);
        } else {
            c.lit(b"}")?;
            break;
        }
    }
    if c.pos != b.len() {
        return None;
    }
    let (u, seq) = data?;
    Some(BookHead {
        topic_slot,
        kind: kind?,
        ts: ts?,
        u,
        seq,
        cts,
    })
}

/// The rest of `data` once its symbol and `"b":` are matched: the levels, `u`, `seq`.
#[inline(always)]
fn data_fields(
    c: &mut Cursor<'_>,
    bids: &mut Vec<WireLevel>,
    asks: &mut Vec<WireLevel>,
    memo: &mut NumberMemo,
) -> Option<(u64, Option<u64>)> {
    c.levels(bids, memo)?;
    c.lit(b",\"a\":")?;
    c.levels(asks, memo)?;
    c.lit(b",\"u\":")?;
    let u = c.uint()?;
    let seq = match c.lit(b",\"seq\":") {
        Some(()) => Some(c.uint()?),
        None => None,
    };
    c.lit(b"}")?;
    Some((u, seq))
}
