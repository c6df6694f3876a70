//! Typed frames: what one decoded Bybit v5 public WebSocket frame is (books, klines, trades,
//! tickers, control answers) and the bounds on what one frame may carry. The decoders in
//! [`super::codec`] and [`super::template`] produce them; nothing here parses.

use crate::decimal::{DEC_SCALE_DIGITS, Dec, Level};
use crate::wire::topic::Interval;

/// Default bound on one frame's length.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// Most price levels one side of one frame may carry: a full-depth snapshot's worth.
pub const LEVELS_PER_SIDE_MAX: usize = crate::wire::topic::FULL_BOOK_LEVELS_MAX;
/// Most candles one kline frame may carry (Bybit sends one or two).
pub const CANDLES_PER_FRAME_MAX: usize = 16;
/// "a single message may have up to 1024 trades" (Bybit v5 docs, publicTrade).
pub const TRADES_PER_FRAME_MAX: usize = 1024;
/// Most topics one acknowledgement may list.
pub const ACK_TOPICS_MAX: usize = 2048;

/// An order-book level as the decoder reads it: price and size each an integer count of
/// 10^-places ("65114.20" is 6511420 at two places). The book counts levels in integer units of
/// its own, and reaching them from this form is one multiply, where a [`Dec`] took an exact
/// 128-bit division (BENCHMARKS.md, "Closing the gap"). Compared and shown by value:
/// "65114.20" equals "65114.2" (dropping the zero in the decoder cost more than the multiply
/// saved).
#[derive(Clone, Copy)]
pub struct WireLevel {
    px: u64,
    qty: u64,
    px_places: u8,
    qty_places: u8,
}

impl WireLevel {
    /// A level from counts and places; `None` when a place count passes [`DEC_SCALE_DIGITS`].
    pub fn new(px: u64, px_places: u32, qty: u64, qty_places: u32) -> Option<WireLevel> {
        (px_places <= DEC_SCALE_DIGITS && qty_places <= DEC_SCALE_DIGITS)
            .then(|| WireLevel::from_counts(px, px_places, qty, qty_places))
    }

    /// [`WireLevel::new`] for places a parser has already bounded (at most
    /// [`DEC_SCALE_DIGITS`]).
    #[inline(always)]
    pub(crate) fn from_counts(px: u64, px_places: u32, qty: u64, qty_places: u32) -> WireLevel {
        debug_assert!(px_places <= DEC_SCALE_DIGITS && qty_places <= DEC_SCALE_DIGITS);
        WireLevel {
            px,
            qty,
            px_places: px_places as u8,
            qty_places: qty_places as u8,
        }
    }

    /// The same level, when both values are zero or more and fit this form.
    pub fn from_level(l: Level) -> Option<WireLevel> {
        let (px, px_places) = l.px.to_parts()?;
        let (qty, qty_places) = l.qty.to_parts()?;
        WireLevel::new(px, px_places, qty, qty_places)
    }

    /// The price as a count of 10^-`places`, and `places`.
    #[inline]
    pub fn px_parts(&self) -> (u64, u32) {
        (self.px, self.px_places as u32)
    }

    #[inline]
    pub fn qty_parts(&self) -> (u64, u32) {
        (self.qty, self.qty_places as u32)
    }

    pub fn px(&self) -> Dec {
        Dec::from_parts(self.px, self.px_places as u32, false)
    }

    pub fn qty(&self) -> Dec {
        Dec::from_parts(self.qty, self.qty_places as u32, false)
    }

    pub fn level(&self) -> Level {
        Level {
            px: self.px(),
            qty: self.qty(),
        }
    }
}

impl PartialEq for WireLevel {
    fn eq(&self, other: &Self) -> bool {
        self.level() == other.level()
    }
}

impl Eq for WireLevel {}

impl std::fmt::Debug for WireLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireLevel")
            .field("px", &self.px())
            .field("qty", &self.qty())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Snapshot,
    Delta,
}

#[derive(Debug)]
pub struct BookFrame<'a> {
    pub topic: &'a str,
    pub symbol: &'a str,
    /// The topic's depth; [`crate::wire::topic::FULL_DEPTH`] for `orderbook.full`.
    pub depth: u16,
    pub kind: UpdateKind,
    pub ts: u64,
    pub u: u64,
    pub seq: Option<u64>,
    pub cts: Option<u64>,
    pub bids: &'a [WireLevel],
    pub asks: &'a [WireLevel],
    /// The decoder's key for this topic, 0 when it has none: never the same for two topics, so
    /// a caller can remember what it looked up for a key instead of hashing the topic again.
    pub topic_key: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KlineData {
    pub start: u64,
    pub end: Option<u64>,
    pub open: Dec,
    pub high: Dec,
    pub low: Dec,
    pub close: Dec,
    pub volume: Dec,
    pub turnover: Dec,
    pub confirm: bool,
    pub timestamp: Option<u64>,
}

/// Prices and volumes of one candle period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub start_ms: u64,
    pub open: Dec,
    pub high: Dec,
    pub low: Dec,
    pub close: Dec,
    pub volume: Dec,
    pub turnover: Dec,
}

impl Bar {
    pub fn from_kline(k: &KlineData) -> Bar {
        Bar {
            start_ms: k.start,
            open: k.open,
            high: k.high,
            low: k.low,
            close: k.close,
            volume: k.volume,
            turnover: k.turnover,
        }
    }
}

/// Why a candle's values cannot be true, if they cannot: prices at or below zero, a high under
/// the open or close, a low over them, negative volume or turnover. Pure; the WebSocket and
/// REST decoders both refuse what it names.
pub fn implausible_bar(
    open: Dec,
    high: Dec,
    low: Dec,
    close: Dec,
    volume: Dec,
    turnover: Dec,
) -> Option<(&'static str, &'static str)> {
    for (field, v) in [
        ("open", open),
        ("high", high),
        ("low", low),
        ("close", close),
    ] {
        if v <= Dec::ZERO {
            return Some((field, "a price at or below zero"));
        }
    }
    if high < open.max(close) {
        return Some(("high", "below the open or the close"));
    }
    if low > open.min(close) {
        return Some(("low", "above the open or the close"));
    }
    if volume.is_negative() {
        return Some(("volume", "negative"));
    }
    if turnover.is_negative() {
        return Some(("turnover", "negative"));
    }
    None
}

#[derive(Debug)]
pub struct KlineFrame<'a> {
    pub topic: &'a str,
    pub symbol: &'a str,
    pub interval: Interval,
    pub ts: u64,
    pub candles: &'a [KlineData],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickDirection {
    PlusTick,
    ZeroPlusTick,
    MinusTick,
    ZeroMinusTick,
}

impl TickDirection {
    pub(crate) fn parse(s: &str) -> Option<TickDirection> {
        Some(match s {
            "PlusTick" => TickDirection::PlusTick,
            "ZeroPlusTick" => TickDirection::ZeroPlusTick,
            "MinusTick" => TickDirection::MinusTick,
            "ZeroMinusTick" => TickDirection::ZeroMinusTick,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeData {
    pub time_ms: u64,
    pub side: Side,
    pub qty: Dec,
    pub px: Dec,
    pub tick: Option<TickDirection>,
    pub block_trade: bool,
    pub rpi: bool,
    pub seq: Option<u64>,
}

#[derive(Debug)]
pub struct TradeFrame<'a> {
    pub topic: &'a str,
    pub symbol: &'a str,
    pub ts: u64,
    pub trades: &'a [TradeData],
}

/// Numeric ticker fields we keep. Unknown fields are validated and skipped, so a new field on
/// the venue is not a bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TickerField {
    LastPrice,
    PrevPrice24h,
    Price24hPcnt,
    HighPrice24h,
    LowPrice24h,
    PrevPrice1h,
    MarkPrice,
    IndexPrice,
    OpenInterest,
    OpenInterestValue,
    Turnover24h,
    Volume24h,
    FundingRate,
    NextFundingTime,
    FundingIntervalHour,
    FundingCap,
    Bid1Price,
    Bid1Size,
    Ask1Price,
    Ask1Size,
    UsdIndexPrice,
    Basis,
    BasisRate,
    PredictedDeliveryPrice,
}

impl TickerField {
    pub const COUNT: usize = 24;

    /// Whether a value of this field must be above zero (the prices a ticker reports; a
    /// missing quote comes as an empty string, not as zero).
    pub fn must_be_positive(self) -> bool {
        use TickerField::*;
        matches!(
            self,
            LastPrice
                | PrevPrice24h
                | HighPrice24h
                | LowPrice24h
                | PrevPrice1h
                | MarkPrice
                | IndexPrice
                | UsdIndexPrice
        )
    }

    /// Whether a value of this field may not be negative (sizes, volumes, turnover, interest,
    /// the book's quotes).
    pub fn must_not_be_negative(self) -> bool {
        use TickerField::*;
        matches!(
            self,
            OpenInterest
                | OpenInterestValue
                | Turnover24h
                | Volume24h
                | Bid1Price
                | Bid1Size
                | Ask1Price
                | Ask1Size
        )
    }

    pub fn parse(key: &str) -> Option<TickerField> {
        use TickerField::*;
        Some(match key {
            "lastPrice" => LastPrice,
            "prevPrice24h" => PrevPrice24h,
            "price24hPcnt" => Price24hPcnt,
            "highPrice24h" => HighPrice24h,
            "lowPrice24h" => LowPrice24h,
            "prevPrice1h" => PrevPrice1h,
            "markPrice" => MarkPrice,
            "indexPrice" => IndexPrice,
            "openInterest" => OpenInterest,
            "openInterestValue" => OpenInterestValue,
            "turnover24h" => Turnover24h,
            "volume24h" => Volume24h,
            "fundingRate" => FundingRate,
            "nextFundingTime" => NextFundingTime,
            "fundingIntervalHour" => FundingIntervalHour,
            "fundingCap" => FundingCap,
            "bid1Price" | "bidPrice" => Bid1Price,
            "bid1Size" | "bidSize" => Bid1Size,
            "ask1Price" | "askPrice" => Ask1Price,
            "ask1Size" | "askSize" => Ask1Size,
            "usdIndexPrice" => UsdIndexPrice,
            "basis" => Basis,
            "basisRate" => BasisRate,
            "predictedDeliveryPrice" => PredictedDeliveryPrice,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        use TickerField::*;
        match self {
            LastPrice => "lastPrice",
            PrevPrice24h => "prevPrice24h",
            Price24hPcnt => "price24hPcnt",
            HighPrice24h => "highPrice24h",
            LowPrice24h => "lowPrice24h",
            PrevPrice1h => "prevPrice1h",
            MarkPrice => "markPrice",
            IndexPrice => "indexPrice",
            OpenInterest => "openInterest",
            OpenInterestValue => "openInterestValue",
            Turnover24h => "turnover24h",
            Volume24h => "volume24h",
            FundingRate => "fundingRate",
            NextFundingTime => "nextFundingTime",
            FundingIntervalHour => "fundingIntervalHour",
            FundingCap => "fundingCap",
            Bid1Price => "bid1Price",
            Bid1Size => "bid1Size",
            Ask1Price => "ask1Price",
            Ask1Size => "ask1Size",
            UsdIndexPrice => "usdIndexPrice",
            Basis => "basis",
            BasisRate => "basisRate",
            PredictedDeliveryPrice => "predictedDeliveryPrice",
        }
    }
}

/// One field of a ticker frame; `None` is the empty string, which Bybit uses for "not set".
pub type TickerUpdate = (TickerField, Option<Dec>);

#[derive(Debug)]
pub struct TickerFrame<'a> {
    pub topic: &'a str,
    pub symbol: &'a str,
    pub kind: UpdateKind,
    pub ts: u64,
    pub cs: Option<u64>,
    pub tick: Option<TickDirection>,
    pub fields: &'a [TickerUpdate],
}

/// Control frames: subscription answers and pongs. Rare, so they own their strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pong {
        req_id: Option<String>,
    },
    Ack(Ack),
    /// A client's request (subscribe, unsubscribe, ping): what a venue reads, and what capture
    /// files of the client side hold.
    Request(Request),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: String,
    pub req_id: Option<String>,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub op: String,
    pub success: bool,
    pub ret_msg: String,
    pub req_id: Option<String>,
    pub conn_id: Option<String>,
    /// Topics the venue named as failed (options' `failTopics`, or the `topic:` of `ret_msg`).
    pub failed_topics: Vec<String>,
}

impl Ack {
    /// The typed failure of a subscription answer, naming the topic when the venue did.
    pub fn result(&self) -> Result<(), SubscribeError> {
        if self.success && self.failed_topics.is_empty() {
            return Ok(());
        }
        Err(SubscribeError {
            topics: self.failed_topics.clone(),
            message: self.ret_msg.clone(),
            req_id: self.req_id.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeError {
    pub topics: Vec<String>,
    pub message: String,
    pub req_id: Option<String>,
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.topics.is_empty() {
            write!(f, "subscription refused: {}", self.message)
        } else {
            write!(
                f,
                "subscription to {} refused: {}",
                self.topics.join(","),
                self.message
            )
        }
    }
}

impl std::error::Error for SubscribeError {}

#[derive(Debug)]
pub enum Frame<'a> {
    Book(BookFrame<'a>),
    Kline(KlineFrame<'a>),
    Ticker(TickerFrame<'a>),
    Trade(TradeFrame<'a>),
    Control(Control),
}
