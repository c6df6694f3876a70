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

/// Public trades a symbol keeps for its strategies.
pub const RECENT_TRADES_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTrade {
    pub trade: TradeData,
    pub count: u64,
    /// The latest trades, oldest first, at most [`RECENT_TRADES_MAX`].
    pub recent: VecDeque<TradeData>,
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
                    let t = match self.trades.get_mut(f.symbol) {
                        Some(t) => t,
                        None if full => return Err(self.too_many_topics()),
                        None => self.trades.entry(f.symbol.into()).or_insert(LastTrade {
                            trade: *last,
                            count: 0,
                            recent: VecDeque::new(),
                        }),
                    };
                    t.trade = *last;
                    t.count += f.trades.len() as u64;
                    let skip = f.trades.len().saturating_sub(RECENT_TRADES_MAX);
                    for x in &f.trades[skip..] {
                        if t.recent.len() == RECENT_TRADES_MAX {
                            t.recent.pop_front();
                        }
                        t.recent.push_back(*x);
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
mod tests;
