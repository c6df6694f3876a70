//! Market state for every topic of one venue: books, kline series, tickers and last trades.
//!
//! Frames go in through [`Market::handle_frame`]; what other machines must react to comes out
//! of [`Market::poll_event`], which the caller drains after every call.

use std::collections::VecDeque;

use crate::FastMap;
use crate::market::book::{Applied, OrderBook, ResyncReason};
use crate::market::kline::{
    CLOSED_CANDLES_MAX_DEFAULT, ClosedCandle, Gap, KlineSeries, LiveOutcome,
};
use crate::market::ticker::{Ticker, TickerOutcome};
use crate::time::Time;
use crate::wire::codec::Decoder;
use crate::wire::error::{BadCounts, DecodeError};
use crate::wire::frame::{Ack, Control, FRAME_BYTES_MAX_DEFAULT, Frame, TradeData};
use crate::wire::topic::{Interval, book_levels_max};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketConfig {
    pub frame_bytes_max: usize,
    pub closed_candles_max: usize,
    /// Most distinct topics tracked; frames for more are refused rather than grown into.
    pub topics_max: usize,
    /// Most events held between drains.
    pub events_max: usize,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            closed_candles_max: CLOSED_CANDLES_MAX_DEFAULT,
            topics_max: 4096,
            events_max: 65_536,
        }
    }
}

/// Index of a book in this market, stable for the market's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BookId(u32);

impl BookId {
    /// Books are numbered densely from 0 in the order they were registered or first seen.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn from_index(i: usize) -> BookId {
        BookId(i as u32)
    }
}

/// Index of a kline series in this market, stable for the market's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(u32);

impl SeriesId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a symbol in this market: books and series name their symbol by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(u32);

impl SymbolId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    /// A book went out of sync; it must be repaired by a snapshot (REST or resubscribe).
    ResyncNeeded {
        book: BookId,
        reason: ResyncReason,
    },
    CandleClosed {
        series: SeriesId,
        candle: ClosedCandle,
    },
    KlineGap {
        series: SeriesId,
        gap: Gap,
    },
}

/// What one accepted frame was and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Book {
        book: BookId,
        applied: Applied,
    },
    Kline {
        series: SeriesId,
    },
    Ticker {
        outcome: TickerOutcome,
    },
    Trades {
        count: usize,
    },
    /// A subscription answer or a pong: no market state changed; it goes straight to the link
    /// that owns the connection.
    Control(Control),
}

/// Why a frame that decoded could still not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketError {
    Decode(DecodeError),
    /// More distinct topics than `topics_max`.
    TooManyTopics {
        max: usize,
    },
}

impl std::fmt::Display for MarketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MarketError::Decode(e) => e.fmt(f),
            MarketError::TooManyTopics { max } => write!(f, "more than {max} topics"),
        }
    }
}

impl std::error::Error for MarketError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastTrade {
    pub trade: TradeData,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketCounters {
    pub frames: u64,
    pub bad: BadCounts,
    pub too_many_topics: u64,
    pub events_dropped: u64,
    pub subscribe_failures: u64,
}

struct Named<T> {
    topic: Box<str>,
    symbol: SymbolId,
    value: T,
    last_frame_at: Option<Time>,
}

/// A frame as it arrived: checked text from a WebSocket, or raw bytes from a file.
enum FrameText<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// Decoder topic keys remembered by [`Market`]; more than the books one connection carries.
const BOOK_KEYS_REMEMBERED: usize = 64;

pub struct Market {
    config: MarketConfig,
    decoder: Decoder,
    book_ids: FastMap<Box<str>, BookId>,
    /// The book last found for a decoder topic key, by key: a frame of a known topic skips
    /// hashing its topic (about 3% of an order-book frame).
    book_keys: [(u64, BookId); BOOK_KEYS_REMEMBERED],
    books: Vec<Named<OrderBook>>,
    symbol_ids: FastMap<Box<str>, SymbolId>,
    symbols: Vec<Box<str>>,
    series_ids: FastMap<Box<str>, SeriesId>,
    series: Vec<Named<KlineSeries>>,
    tickers: FastMap<Box<str>, Ticker>,
    trades: FastMap<Box<str>, LastTrade>,
    events: VecDeque<MarketEvent>,
    counters: MarketCounters,
}

impl Market {
    pub fn new(config: MarketConfig) -> Self {
        Market {
            decoder: Decoder::new(config.frame_bytes_max),
            config,
            book_ids: FastMap::default(),
            book_keys: [(0, BookId(0)); BOOK_KEYS_REMEMBERED],
            books: Vec::new(),
            symbol_ids: FastMap::default(),
            symbols: Vec::new(),
            series_ids: FastMap::default(),
            series: Vec::new(),
            tickers: FastMap::default(),
            trades: FastMap::default(),
            events: VecDeque::new(),
            counters: MarketCounters::default(),
        }
    }

    // ----- getters -----

    pub fn counters(&self) -> &MarketCounters {
        &self.counters
    }

    pub fn book_id(&self, topic: &str) -> Option<BookId> {
        self.book_ids.get(topic).copied()
    }

    pub fn book(&self, id: BookId) -> &OrderBook {
        &self.books[id.0 as usize].value
    }

    pub fn book_topic(&self, id: BookId) -> &str {
        &self.books[id.0 as usize].topic
    }

    pub fn book_symbol(&self, id: BookId) -> &str {
        &self.symbols[self.books[id.0 as usize].symbol.index()]
    }

    pub fn book_symbol_id(&self, id: BookId) -> SymbolId {
        self.books[id.0 as usize].symbol
    }

    pub fn symbol_id(&self, symbol: &str) -> Option<SymbolId> {
        self.symbol_ids.get(symbol).copied()
    }

    pub fn symbol(&self, id: SymbolId) -> &str {
        &self.symbols[id.index()]
    }

    pub fn book_last_frame_at(&self, id: BookId) -> Option<Time> {
        self.books[id.0 as usize].last_frame_at
    }

    pub fn book_ids(&self) -> impl Iterator<Item = BookId> + '_ {
        (0..self.books.len() as u32).map(BookId)
    }

    pub fn series_id(&self, topic: &str) -> Option<SeriesId> {
        self.series_ids.get(topic).copied()
    }

    pub fn series(&self, id: SeriesId) -> &KlineSeries {
        &self.series[id.0 as usize].value
    }

    pub fn series_topic(&self, id: SeriesId) -> &str {
        &self.series[id.0 as usize].topic
    }

    pub fn series_symbol(&self, id: SeriesId) -> &str {
        &self.symbols[self.series[id.0 as usize].symbol.index()]
    }

    pub fn series_ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        (0..self.series.len() as u32).map(SeriesId)
    }

    pub fn ticker(&self, symbol: &str) -> Option<&Ticker> {
        self.tickers.get(symbol)
    }

    pub fn last_trade(&self, symbol: &str) -> Option<&LastTrade> {
        self.trades.get(symbol)
    }

    // ----- inputs -----

    /// As [`Market::handle_frame`], for raw bytes such as a line of a capture file: the length
    /// limit is checked before anything else, then UTF-8.
    pub fn handle_frame_bytes(&mut self, now: Time, bytes: &[u8]) -> Result<Handled, MarketError> {
        self.handle(now, FrameText::Bytes(bytes))
    }

    /// Decodes and applies one WebSocket text frame. A refused frame is counted by reason and
    /// changes nothing else.
    pub fn handle_frame(&mut self, now: Time, text: &str) -> Result<Handled, MarketError> {
        self.handle(now, FrameText::Text(text))
    }

    fn handle(&mut self, now: Time, input: FrameText<'_>) -> Result<Handled, MarketError> {
        let decoded = match input {
            FrameText::Text(text) => self.decoder.decode(text),
            // The length limit is checked before anything else, then UTF-8.
            FrameText::Bytes(bytes) => self.decoder.decode_bytes(bytes),
        };
        let frame = match decoded {
            Ok(f) => f,
            Err(e) => {
                self.counters.bad.add(e.reason());
                return Err(MarketError::Decode(e));
            }
        };
        // Counted field by field: the frame still borrows the decoder.
        let topics = self.books.len() + self.series.len() + self.tickers.len() + self.trades.len();
        let full = topics >= self.config.topics_max;
        let out = match frame {
            Frame::Book(f) => {
                // A key the decoder gave this topic finds its book without hashing the topic.
                let slot = (f.topic_key % BOOK_KEYS_REMEMBERED as u64) as usize;
                let id = match self.book_keys[slot] {
                    (key, id) if key == f.topic_key && key != 0 => id,
                    _ => {
                        let depth = f.depth;
                        let Some(id) = id_for(
                            &mut self.book_ids,
                            &mut self.books,
                            (&mut self.symbol_ids, &mut self.symbols),
                            (f.topic, f.symbol),
                            full,
                            || OrderBook::new(book_levels_max(depth)),
                            BookId,
                        ) else {
                            return Err(self.too_many_topics());
                        };
                        self.book_keys[slot] = (f.topic_key, id);
                        id
                    }
                };
                let named = &mut self.books[id.0 as usize];
                named.last_frame_at = Some(now);
                let applied = named.value.apply(&f);
                if let Applied::Desynced(reason) = applied {
                    push_event(
                        &mut self.events,
                        &mut self.counters,
                        self.config.events_max,
                        MarketEvent::ResyncNeeded { book: id, reason },
                    );
                }
                Handled::Book { book: id, applied }
            }
            Frame::Kline(f) => {
                let candles_max = self.config.closed_candles_max;
                let Some(id) = id_for(
                    &mut self.series_ids,
                    &mut self.series,
                    (&mut self.symbol_ids, &mut self.symbols),
                    (f.topic, f.symbol),
                    full,
                    || KlineSeries::new(f.interval, candles_max),
                    SeriesId,
                ) else {
                    return Err(self.too_many_topics());
                };
                let named = &mut self.series[id.0 as usize];
                named.last_frame_at = Some(now);
                for k in f.candles {
                    if let LiveOutcome::Closed { candle, gap } = named.value.apply_live(k) {
                        if let Some(gap) = gap {
                            push_event(
                                &mut self.events,
                                &mut self.counters,
                                self.config.events_max,
                                MarketEvent::KlineGap { series: id, gap },
                            );
                        }
                        push_event(
                            &mut self.events,
                            &mut self.counters,
                            self.config.events_max,
                            MarketEvent::CandleClosed { series: id, candle },
                        );
                    }
                }
                Handled::Kline { series: id }
            }
            Frame::Ticker(f) => {
                let t = match self.tickers.get_mut(f.symbol) {
                    Some(t) => t,
                    None if full => return Err(self.too_many_topics()),
                    None => self.tickers.entry(f.symbol.into()).or_default(),
                };
                Handled::Ticker {
                    outcome: t.apply(&f),
                }
            }
            Frame::Trade(f) => {
                if let Some(last) = f.trades.last() {
                    match self.trades.get_mut(f.symbol) {
                        Some(t) => {
                            t.trade = *last;
                            t.count += f.trades.len() as u64;
                        }
                        None if full => return Err(self.too_many_topics()),
                        None => {
                            self.trades.insert(
                                f.symbol.into(),
                                LastTrade {
                                    trade: *last,
                                    count: f.trades.len() as u64,
                                },
                            );
                        }
                    }
                }
                Handled::Trades {
                    count: f.trades.len(),
                }
            }
            Frame::Control(c) => {
                if let Control::Ack(Ack { success: false, .. }) = &c {
                    self.counters.subscribe_failures += 1;
                }
                Handled::Control(c)
            }
        };
        self.counters.frames += 1;
        Ok(out)
    }

    /// Marks every book out of sync: after a reconnect no book may be read until its new
    /// snapshot arrives.
    pub fn invalidate_books(&mut self) {
        for b in &mut self.books {
            b.value.invalidate();
        }
    }

    /// Mutable access for repairs from REST snapshots and history merges.
    pub fn book_mut(&mut self, id: BookId) -> &mut OrderBook {
        &mut self.books[id.0 as usize].value
    }

    /// Registers the book of `topic` (of `symbol`, `depth` levels) before its first frame, so
    /// its id is known from the start; the id of an already known topic is returned as it is.
    /// `None` when the market already tracks `topics_max` topics.
    pub fn add_book(&mut self, topic: &str, symbol: &str, depth: u16) -> Option<BookId> {
        let full = self.topic_count() >= self.config.topics_max;
        id_for(
            &mut self.book_ids,
            &mut self.books,
            (&mut self.symbol_ids, &mut self.symbols),
            (topic, symbol),
            full,
            || OrderBook::new(book_levels_max(depth)),
            BookId,
        )
    }

    /// The series of `symbol` at `interval`, created on first use (for REST history that
    /// arrives before the live stream).
    pub fn series_for(&mut self, symbol: &str, interval: Interval) -> Option<SeriesId> {
        let topic = format!("kline.{}.{symbol}", interval.as_str());
        let full = self.topic_count() >= self.config.topics_max;
        let candles_max = self.config.closed_candles_max;
        id_for(
            &mut self.series_ids,
            &mut self.series,
            (&mut self.symbol_ids, &mut self.symbols),
            (&topic, symbol),
            full,
            || KlineSeries::new(interval, candles_max),
            SeriesId,
        )
    }

    fn topic_count(&self) -> usize {
        self.books.len() + self.series.len() + self.tickers.len() + self.trades.len()
    }

    pub fn series_mut(&mut self, id: SeriesId) -> &mut KlineSeries {
        &mut self.series[id.0 as usize].value
    }

    // ----- outputs -----

    /// The next event; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MarketEvent> {
        self.events.pop_front()
    }

    fn too_many_topics(&mut self) -> MarketError {
        self.counters.too_many_topics += 1;
        MarketError::TooManyTopics {
            max: self.config.topics_max,
        }
    }
}

/// The id of `topic` among `items`, adding it (made by `make`, numbered by `id_of`) when it is
/// new and the market is not `full`; `None` when it is new and the market is full.
fn id_for<T, Id: Copy>(
    ids: &mut FastMap<Box<str>, Id>,
    items: &mut Vec<Named<T>>,
    (symbol_ids, symbols): (&mut FastMap<Box<str>, SymbolId>, &mut Vec<Box<str>>),
    (topic, symbol): (&str, &str),
    full: bool,
    make: impl FnOnce() -> T,
    id_of: impl FnOnce(u32) -> Id,
) -> Option<Id> {
    if let Some(id) = ids.get(topic) {
        return Some(*id);
    }
    if full {
        return None;
    }
    let id = id_of(items.len() as u32);
    let symbol = symbol_id_for(symbol_ids, symbols, symbol);
    items.push(Named {
        topic: topic.into(),
        symbol,
        value: make(),
        last_frame_at: None,
    });
    ids.insert(topic.into(), id);
    Some(id)
}

fn symbol_id_for(
    ids: &mut FastMap<Box<str>, SymbolId>,
    symbols: &mut Vec<Box<str>>,
    symbol: &str,
) -> SymbolId {
    if let Some(id) = ids.get(symbol) {
        return *id;
    }
    let id = SymbolId(symbols.len() as u32);
    symbols.push(symbol.into());
    ids.insert(symbol.into(), id);
    id
}

fn push_event(
    events: &mut VecDeque<MarketEvent>,
    counters: &mut MarketCounters,
    max: usize,
    e: MarketEvent,
) {
    if events.len() >= max {
        counters.events_dropped += 1;
    } else {
        events.push_back(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::book::BookState;
    use crate::wire::error::BadReason;

    const SNAP: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","1"]],"u":10,"seq":1}}"#;

    fn kline(start: u64, o: &str, h: &str, l: &str, c: &str, v: &str) -> String {
        format!(
            r#"{{"topic":"kline.1.BTCUSDT","data":[{{"start":{start},"end":{},"interval":"1","open":"{o}","close":"{c}","high":"{h}","low":"{l}","volume":"{v}","turnover":"1","confirm":false,"timestamp":1}}],"ts":1,"type":"snapshot"}}"#,
            start + 59_999
        )
    }

    /// Every frame that parses but cannot be true is refused as implausible, counted, and
    /// changes nothing: the market looks the same as before it came.
    #[test]
    fn frames_that_parse_but_cannot_be_true_are_refused_and_change_nothing() {
        let mut m = Market::new(MarketConfig::default());
        m.handle_frame(Time::ZERO, &kline(60_000, "100", "110", "90", "105", "1"))
            .unwrap();
        let trade_ok = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"100","L":"PlusTick","i":"a","BT":false}]}"#;
        m.handle_frame(Time::ZERO, trade_ok).unwrap();
        let ticker_ok = r#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","lastPrice":"100","markPrice":"100"},"cs":1,"ts":1}"#;
        m.handle_frame(Time::ZERO, ticker_ok).unwrap();
        let series = m.series_id("kline.1.BTCUSDT").unwrap();
        let forming = *m.series(series).forming().unwrap();
        let last_trade = *m.last_trade("BTCUSDT").unwrap();
        let ticker = m.ticker("BTCUSDT").cloned();
        let bad = [
            kline(60_000, "100", "104", "90", "105", "1"),
            kline(60_000, "100", "110", "101", "105", "1"),
            kline(60_000, "-5", "110", "90", "105", "1"),
            kline(60_000, "100", "110", "90", "0", "1"),
            kline(60_000, "100", "110", "90", "105", "-1"),
            kline(60_001, "100", "110", "90", "105", "1"),
            trade_ok.replace(r#""p":"100""#, r#""p":"0""#),
            trade_ok.replace(r#""v":"1""#, r#""v":"-1""#),
            ticker_ok.replace(r#""lastPrice":"100""#, r#""lastPrice":"-1""#),
            ticker_ok.replace(r#""markPrice":"100""#, r#""markPrice":"0""#),
        ];
        for (n, frame) in bad.iter().enumerate() {
            match m.handle_frame(Time::ZERO, frame) {
                Err(MarketError::Decode(DecodeError::Implausible { .. })) => {}
                other => panic!("frame {n} was not refused as implausible: {other:?}\n{frame}"),
            }
        }
        assert_eq!(
            m.counters()
                .bad
                .get(crate::wire::error::BadReason::Implausible),
            bad.len() as u64
        );
        assert_eq!(*m.series(series).forming().unwrap(), forming);
        assert_eq!(*m.last_trade("BTCUSDT").unwrap(), last_trade);
        assert_eq!(m.ticker("BTCUSDT").cloned(), ticker);
    }

    fn delta(u: u64, bid: &str) -> String {
        format!(
            r#"{{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{{"s":"BTCUSDT","b":[["{bid}","2"]],"a":[],"u":{u},"seq":2}}}}"#
        )
    }

    #[test]
    fn frames_of_many_interleaved_topics_each_reach_their_own_book() {
        // More topics than the decoder's topic table and the market's key memory hold, so slots
        // are shared and topics come back after being pushed out.
        let mut m = Market::new(MarketConfig::default());
        let frame = |i: u64, kind: &str, u: u64, bid: u64| {
            format!(
                r#"{{"topic":"orderbook.50.S{i}USDT","type":"{kind}","ts":1,"data":{{"s":"S{i}USDT","b":[["{bid}","1"]],"a":[["9999","1"]],"u":{u}}}}}"#
            )
        };
        let topics = 150u64;
        for i in 0..topics {
            m.handle_frame(Time::ZERO, &frame(i, "snapshot", 1, 1000 + i))
                .unwrap();
        }
        for round in 0..3u64 {
            // A different order each round: forwards, backwards, odd then even.
            let mut order: Vec<u64> = (0..topics).collect();
            match round {
                1 => order.reverse(),
                2 => order.sort_by_key(|i| (i % 2 == 0, *i)),
                _ => {}
            }
            for i in order {
                let bid = 2000 + round * 1000 + i;
                m.handle_frame(Time::ZERO, &frame(i, "delta", round + 2, bid))
                    .unwrap();
            }
        }
        for i in 0..topics {
            let id = m.book_id(&format!("orderbook.50.S{i}USDT")).unwrap();
            let book = m.book(id);
            assert_eq!(book.state(), BookState::Synced, "S{i}");
            assert_eq!(book.last_u(), Some(4), "S{i}");
            assert_eq!(
                book.best_bid().unwrap().px,
                crate::Dec::from_int(4000 + i as i64),
                "S{i}"
            );
        }
    }

    #[test]
    fn delta_after_gap_marks_book_resyncing_and_asks_for_a_resync() {
        let mut m = Market::new(MarketConfig::default());
        m.handle_frame(Time::ZERO, SNAP).unwrap();
        let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
        m.handle_frame(Time::ZERO, &delta(12, "99")).unwrap();
        assert_eq!(m.book(id).state(), BookState::Resyncing);
        assert_eq!(
            m.poll_event(),
            Some(MarketEvent::ResyncNeeded {
                book: id,
                reason: ResyncReason::Gap {
                    expected: 11,
                    got: 12
                }
            })
        );
        assert_eq!(m.poll_event(), None);
    }

    #[test]
    fn bad_frame_is_counted_and_changes_no_state() {
        let mut m = Market::new(MarketConfig::default());
        m.handle_frame(Time::ZERO, SNAP).unwrap();
        let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
        let before: Vec<_> = m.book(id).raw_bids().collect();
        // Valid until the last level, whose size is not a number.
        let bad = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{"s":"BTCUSDT","b":[["99","2"],["98","x"]],"a":[],"u":11}}"#;
        assert!(m.handle_frame(Time::ZERO, bad).is_err());
        assert_eq!(m.book(id).raw_bids().collect::<Vec<_>>(), before);
        assert_eq!(m.book(id).last_u(), Some(10));
        assert_eq!(m.counters().bad.get(BadReason::BadNumber), 1);
        assert_eq!(m.counters().frames, 1);
        m.handle_frame(Time::ZERO, &delta(11, "99")).unwrap();
        assert_eq!(m.book(id).last_u(), Some(11));
    }

    #[test]
    fn topics_beyond_the_limit_are_refused() {
        let mut m = Market::new(MarketConfig {
            topics_max: 1,
            ..MarketConfig::default()
        });
        m.handle_frame(Time::ZERO, SNAP).unwrap();
        let other = SNAP.replace("BTCUSDT", "ETHUSDT");
        assert_eq!(
            m.handle_frame(Time::ZERO, &other),
            Err(MarketError::TooManyTopics { max: 1 })
        );
        assert_eq!(m.counters().too_many_topics, 1);
    }

    #[test]
    fn failed_subscription_is_handed_back_without_an_event() {
        let mut m = Market::new(MarketConfig::default());
        let text = r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.500.BTCUSDT","conn_id":"c","req_id":"r","op":"subscribe"}"#;
        let Ok(Handled::Control(Control::Ack(ack))) = m.handle_frame(Time::ZERO, text) else {
            panic!("no ack handed back")
        };
        assert_eq!(m.poll_event(), None);
        assert_eq!(
            ack.result().unwrap_err().topics,
            vec!["orderbook.500.BTCUSDT"]
        );
        assert_eq!(m.counters().subscribe_failures, 1);
    }

    #[test]
    fn invalidated_books_refuse_reads_until_their_next_snapshot() {
        let mut m = Market::new(MarketConfig::default());
        m.handle_frame(Time::ZERO, SNAP).unwrap();
        let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
        m.invalidate_books();
        assert!(m.book(id).best_bid().is_err());
        m.handle_frame(Time::ZERO, SNAP).unwrap();
        assert!(m.book(id).best_bid().is_ok());
    }
}
