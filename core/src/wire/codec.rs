//! Decoding of Bybit v5 public WebSocket frames.
//!
//! A frame is decoded completely (and so validated completely) before anything is applied, into
//! scratch buffers the [`Decoder`] reuses: after warm-up a frame costs no allocation at all.
//! Key order is never relied on: `data` is parsed in place when the topic came first (as it does
//! in every capture we hold) and otherwise re-read once the topic is known.

use crate::decimal::{Dec, Level};
use crate::wire::error::{DecodeError, NumberWhy};
use crate::wire::frame::{
    ACK_TOPICS_MAX, BookFrame, FRAME_BYTES_MAX_DEFAULT, Frame, KlineData, KlineFrame,
    LEVELS_PER_SIDE_MAX, TickDirection, TickerFrame, TickerUpdate, TradeData, TradeFrame,
    UpdateKind, WireLevel,
};

use crate::wire::json::{JStr, JsonError, Scanner};
use crate::wire::memo::NumberMemo;
use crate::wire::template::{BookHead, BookTopics};
use crate::wire::topic::{Channel, Topic};

/// Reusable decoder; its buffers keep their capacity from frame to frame.
#[derive(Debug)]
pub struct Decoder {
    frame_bytes_max: usize,
    bids: Vec<WireLevel>,
    asks: Vec<WireLevel>,
    book_topics: BookTopics,
    numbers: NumberMemo,
    candles: Vec<KlineData>,
    trades: Vec<TradeData>,
    ticker: Vec<TickerUpdate>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

type R<T> = Result<T, DecodeError>;

fn json(e: JsonError) -> DecodeError {
    DecodeError::Json(e)
}

/// A type mismatch inside a known field names the field; a syntax error stays a JSON error.
fn typed(field: &'static str) -> impl Fn(JsonError) -> DecodeError {
    move |e| match e {
        JsonError::Type { .. } => DecodeError::BadValue { field },
        other => DecodeError::Json(other),
    }
}

fn int(field: &'static str) -> impl Fn(JsonError) -> DecodeError {
    move |e| match e {
        JsonError::Type { .. } => DecodeError::BadNumber {
            field,
            why: NumberWhy::NotAnInteger,
        },
        other => DecodeError::Json(other),
    }
}

fn set<T>(slot: &mut Option<T>, v: T, field: &'static str) -> R<()> {
    if slot.replace(v).is_some() {
        return Err(DecodeError::DuplicateField(field));
    }
    Ok(())
}

fn need<T>(v: Option<T>, field: &'static str) -> R<T> {
    v.ok_or(DecodeError::MissingField(field))
}

fn plain<'a>(s: JStr<'a>, field: &'static str) -> R<&'a str> {
    s.plain().ok_or(DecodeError::BadValue { field })
}

#[inline]
fn dec(sc: &mut Scanner<'_>, field: &'static str) -> R<Dec> {
    sc.quoted_dec()
        .map_err(typed(field))?
        .map_err(|e| DecodeError::BadNumber {
            field,
            why: NumberWhy::Decimal(e),
        })
}

fn kind(s: &str) -> R<UpdateKind> {
    match s {
        "snapshot" => Ok(UpdateKind::Snapshot),
        "delta" => Ok(UpdateKind::Delta),
        _ => Err(DecodeError::BadValue { field: "type" }),
    }
}

/// What the top-level object held, gathered in whatever order its keys came.
#[derive(Default)]
struct Top<'a> {
    topic: Option<(&'a str, Topic<'a>)>,
    kind: Option<&'a str>,
    ts: Option<u64>,
    cs: Option<u64>,
    cts: Option<u64>,
    data_parsed: Option<Parsed<'a>>,
    data_at: Option<usize>,
    success: Option<bool>,
    ret_msg: Option<String>,
    op: Option<String>,
    req_id: Option<String>,
    conn_id: Option<String>,
    args: Option<Vec<String>>,
}

/// What the `data` member held, before the top-level fields are attached.
enum Parsed<'a> {
    Book {
        symbol: &'a str,
        u: u64,
        seq: Option<u64>,
    },
    Kline,
    Ticker {
        symbol: &'a str,
        tick: Option<TickDirection>,
    },
    Trade,
}

impl Decoder {
    pub fn new(frame_bytes_max: usize) -> Self {
        Decoder {
            frame_bytes_max,
            bids: Vec::new(),
            asks: Vec::new(),
            book_topics: BookTopics::default(),
            numbers: NumberMemo::default(),
            candles: Vec::new(),
            trades: Vec::new(),
            ticker: Vec::new(),
        }
    }

    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Decodes raw bytes (a line of a capture file); refuses non-UTF-8 before anything else.
    /// Inlined so that the frame is built where the caller keeps it, not copied out.
    #[inline]
    pub fn decode_bytes<'a>(&'a mut self, bytes: &'a [u8]) -> R<Frame<'a>> {
        self.check_len(bytes.len())?;
        if let Some(h) = self.template(bytes) {
            return Ok(self.book_frame(h));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
        self.decode_general(text)
    }

    /// The order-book template alone: `Some` only for a frame it accepts. Public so that tests
    /// can hold it to the general path's answers.
    #[doc(hidden)]
    pub fn decode_template<'a>(&'a mut self, bytes: &'a [u8]) -> Option<Frame<'a>> {
        self.check_len(bytes.len()).ok()?;
        let h = self.template(bytes)?;
        Some(self.book_frame(h))
    }

    /// The length limit, checked before anything else.
    fn check_len(&self, len: usize) -> R<()> {
        if len > self.frame_bytes_max {
            return Err(DecodeError::Oversize {
                len,
                max: self.frame_bytes_max,
            });
        }
        Ok(())
    }

    /// The frame the template read; its topic lives in this decoder's topic table.
    #[inline]
    fn book_frame(&self, head: BookHead) -> Frame<'_> {
        let topic = self.book_topics.get(head.topic_slot);
        Frame::Book(BookFrame {
            topic: &topic.text,
            symbol: &topic.text[topic.symbol_at..],
            depth: topic.depth,
            kind: head.kind,
            ts: head.ts,
            u: head.u,
            seq: head.seq,
            cts: head.cts,
            bids: &self.bids,
            asks: &self.asks,
            topic_key: topic.key,
        })
    }

    /// The order-book template over `bytes`, into this decoder's buffers.
    #[inline]
    fn template(&mut self, bytes: &[u8]) -> Option<BookHead> {
        crate::wire::template::book(
            bytes,
            &mut self.bids,
            &mut self.asks,
            &mut self.book_topics,
            &mut self.numbers,
        )
    }

    pub fn decode<'a>(&'a mut self, text: &'a str) -> R<Frame<'a>> {
        self.check_len(text.len())?;
        if let Some(h) = self.template(text.as_bytes()) {
            return Ok(self.book_frame(h));
        }
        self.decode_general(text)
    }

    /// [`Decoder::decode`] without the order-book template: every frame through the general
    /// scanner. Public so that tests can hold the two paths to the same answers.
    #[doc(hidden)]
    pub fn decode_general<'a>(&'a mut self, text: &'a str) -> R<Frame<'a>> {
        let mut sc = Scanner::new(text);
        sc.begin_object().map_err(|e| match e {
            // Valid JSON of another shape is "unrecognized"; anything else is not JSON at all.
            JsonError::Type { .. } => {
                let mut whole = Scanner::new(text);
                match whole.skip().and_then(|()| whole.finish()) {
                    Ok(()) => DecodeError::Unrecognized,
                    Err(e) => DecodeError::Json(e),
                }
            }
            other => DecodeError::Json(other),
        })?;
        let mut top = Top::default();
        let mut first = true;
        while let Some(key) = sc.next_key(&mut first).map_err(json)? {
            self.top_field(&mut sc, &mut top, key)?;
        }
        sc.finish().map_err(json)?;

        if let Some((topic_str, topic)) = top.topic {
            let parsed = match top.data_parsed.take() {
                Some(p) => p,
                None => {
                    let at = need(top.data_at, "data")?;
                    let mut sc = Scanner::new(&text[at..]);
                    self.data(&mut sc, topic)?
                }
            };
            return self.assemble(topic_str, topic, top, parsed);
        }
        self.control(text, top)
    }

    fn top_field<'a>(&mut self, sc: &mut Scanner<'a>, top: &mut Top<'a>, key: JStr<'a>) -> R<()> {
        match key.plain().unwrap_or("") {
            "topic" => {
                let s = plain(sc.string().map_err(typed("topic"))?, "topic")?;
                let t = Topic::parse(s).map_err(DecodeError::UnknownTopic)?;
                set(&mut top.topic, (s, t), "topic")?;
            }
            "type" => {
                let s = plain(sc.string().map_err(typed("type"))?, "type")?;
                set(&mut top.kind, s, "type")?;
            }
            "ts" => set(&mut top.ts, sc.u64().map_err(int("ts"))?, "ts")?,
            "cs" => set(&mut top.cs, sc.u64().map_err(int("cs"))?, "cs")?,
            "cts" => set(&mut top.cts, sc.u64().map_err(int("cts"))?, "cts")?,
            "data" => {
                if top.data_parsed.is_some() || top.data_at.is_some() {
                    return Err(DecodeError::DuplicateField("data"));
                }
                match top.topic {
                    Some((_, t)) => top.data_parsed = Some(self.data(sc, t)?),
                    None => {
                        top.data_at = Some(sc.pos());
                        sc.skip().map_err(json)?;
                    }
                }
            }
            "success" => set(
                &mut top.success,
                sc.bool().map_err(typed("success"))?,
                "success",
            )?,
            "ret_msg" => set(&mut top.ret_msg, owned(sc, "ret_msg")?, "ret_msg")?,
            "op" => set(&mut top.op, owned(sc, "op")?, "op")?,
            "req_id" => set(&mut top.req_id, owned(sc, "req_id")?, "req_id")?,
            "conn_id" => set(&mut top.conn_id, owned(sc, "conn_id")?, "conn_id")?,
            "args" => {
                // Requests list topics here; option pongs echo the client's timestamp.
                sc.begin_array().map_err(typed("args"))?;
                let mut args = Vec::new();
                let mut first = true;
                while sc.next_elem(&mut first).map_err(json)? {
                    if args.len() == ACK_TOPICS_MAX {
                        return Err(DecodeError::TooMany {
                            field: "args",
                            max: ACK_TOPICS_MAX,
                        });
                    }
                    args.push(sc.string().map_err(typed("args"))?.get().into_owned());
                }
                set(&mut top.args, args, "args")?;
            }
            _ => sc.skip().map_err(json)?,
        }
        Ok(())
    }

    fn data<'a>(&mut self, sc: &mut Scanner<'a>, topic: Topic<'a>) -> R<Parsed<'a>> {
        match topic.channel {
            Channel::OrderBook { .. } => self.book_data(sc),
            Channel::Kline { .. } => self.kline_data(sc),
            Channel::Ticker => self.ticker_data(sc),
            Channel::Trade => self.trade_data(sc),
        }
    }

    fn assemble<'a>(
        &'a self,
        topic_str: &'a str,
        topic: Topic<'a>,
        top: Top<'a>,
        parsed: Parsed<'a>,
    ) -> R<Frame<'a>> {
        let ts = need(top.ts, "ts")?;
        let kind_str = need(top.kind, "type")?;
        Ok(match (topic.channel, parsed) {
            (Channel::OrderBook { depth }, Parsed::Book { symbol, u, seq }) => {
                if symbol != topic.symbol {
                    return Err(DecodeError::BadValue { field: "s" });
                }
                Frame::Book(BookFrame {
                    topic: topic_str,
                    symbol: topic.symbol,
                    depth,
                    kind: kind(kind_str)?,
                    ts,
                    u,
                    seq,
                    cts: top.cts,
                    bids: &self.bids,
                    asks: &self.asks,
                    topic_key: 0,
                })
            }
            (Channel::Kline { interval }, Parsed::Kline) => {
                if kind_str != "snapshot" {
                    return Err(DecodeError::BadValue { field: "type" });
                }
                if self
                    .candles
                    .iter()
                    .any(|c| interval.floor(c.start) != c.start)
                {
                    return Err(DecodeError::Implausible {
                        field: "start",
                        why: "not the start of an interval",
                    });
                }
                Frame::Kline(KlineFrame {
                    topic: topic_str,
                    symbol: topic.symbol,
                    interval,
                    ts,
                    candles: &self.candles,
                })
            }
            (Channel::Ticker, Parsed::Ticker { symbol, tick }) => {
                if symbol != topic.symbol {
                    return Err(DecodeError::BadValue { field: "symbol" });
                }
                Frame::Ticker(TickerFrame {
                    topic: topic_str,
                    symbol: topic.symbol,
                    kind: kind(kind_str)?,
                    ts,
                    cs: top.cs,
                    tick,
                    fields: &self.ticker,
                })
            }
            (Channel::Trade, Parsed::Trade) => {
                if kind_str != "snapshot" {
                    return Err(DecodeError::BadValue { field: "type" });
                }
                Frame::Trade(TradeFrame {
                    topic: topic_str,
                    symbol: topic.symbol,
                    ts,
                    trades: &self.trades,
                })
            }
            _ => return Err(DecodeError::BadValue { field: "data" }),
        })
    }

    fn book_data<'a>(&mut self, sc: &mut Scanner<'a>) -> R<Parsed<'a>> {
        sc.begin_object().map_err(typed("data"))?;
        let (mut symbol, mut u, mut seq) = (None, None, None);
        let (mut have_b, mut have_a) = (false, false);
        let mut first = true;
        while let Some(key) = sc.next_key(&mut first).map_err(json)? {
            match key.plain().unwrap_or("") {
                "s" => set(
                    &mut symbol,
                    plain(sc.string().map_err(typed("s"))?, "s")?,
                    "s",
                )?,
                "u" => set(&mut u, sc.u64().map_err(int("u"))?, "u")?,
                "seq" => set(&mut seq, sc.u64().map_err(int("seq"))?, "seq")?,
                "b" => {
                    if std::mem::replace(&mut have_b, true) {
                        return Err(DecodeError::DuplicateField("b"));
                    }
                    levels(sc, &mut self.bids, "b")?;
                }
                "a" => {
                    if std::mem::replace(&mut have_a, true) {
                        return Err(DecodeError::DuplicateField("a"));
                    }
                    levels(sc, &mut self.asks, "a")?;
                }
                _ => sc.skip().map_err(json)?,
            }
        }
        if !have_b {
            return Err(DecodeError::MissingField("b"));
        }
        if !have_a {
            return Err(DecodeError::MissingField("a"));
        }
        Ok(Parsed::Book {
            symbol: need(symbol, "s")?,
            u: need(u, "u")?,
            seq,
        })
    }
}

fn owned(sc: &mut Scanner<'_>, field: &'static str) -> R<String> {
    if sc.null() {
        return Ok(String::new());
    }
    Ok(sc.string().map_err(typed(field))?.get().into_owned())
}

#[inline]
fn levels(sc: &mut Scanner<'_>, out: &mut Vec<WireLevel>, field: &'static str) -> R<()> {
    out.clear();
    sc.begin_array().map_err(typed(field))?;
    let mut first = true;
    while sc.next_elem(&mut first).map_err(json)? {
        if out.len() == LEVELS_PER_SIDE_MAX {
            return Err(DecodeError::TooMany {
                field,
                max: LEVELS_PER_SIDE_MAX,
            });
        }
        let wire = match sc.compact_level() {
            Some(((px, px_places), (qty, qty_places))) => {
                WireLevel::from_counts(px, px_places, qty, qty_places)
            }
            None => {
                let (px, qty) = level_slow(sc, field)?;
                if qty.is_negative() {
                    return Err(DecodeError::BadValue { field });
                }
                // None only for a negative price or one too long for a count; both refused.
                WireLevel::from_level(Level { px, qty }).ok_or(DecodeError::BadValue { field })?
            }
        };
        if wire.px_parts().0 == 0 {
            return Err(DecodeError::BadValue { field });
        }
        out.push(wire);
    }
    Ok(())
}

/// A level written any other way than the compact form (white space, escapes), or a bad one.
#[cold]
fn level_slow(sc: &mut Scanner<'_>, field: &'static str) -> R<(Dec, Dec)> {
    sc.begin_array().map_err(typed(field))?;
    let mut f2 = true;
    if !sc.next_elem(&mut f2).map_err(json)? {
        return Err(DecodeError::BadValue { field });
    }
    let px = dec(sc, field)?;
    if !sc.next_elem(&mut f2).map_err(json)? {
        return Err(DecodeError::BadValue { field });
    }
    let qty = dec(sc, field)?;
    if sc.next_elem(&mut f2).map_err(json)? {
        return Err(DecodeError::BadValue { field });
    }
    Ok((px, qty))
}

mod channels;
mod control;
#[cfg(test)]
mod tests;
