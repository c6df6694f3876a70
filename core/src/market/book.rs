//! One order book per topic, kept in sync by Bybit's `u` sequence.
//!
//! Each side holds its levels in pages of neighbouring prices found by the price itself
//! ([`crate::market::book_side::Side`]): applying a level is arithmetic and a store, with no
//! search over levels and nothing moved, wherever in the book it lands, and nothing is ever
//! re-sorted per delta. Levels are stored as integer counts of the book's units and read back as exact
//! decimals.

use crate::decimal::Dec;
use crate::decimal::Level;
use crate::market::book_side::{self, Countable, OutOfRange, Side, Slot, Units};
use crate::wire::frame::{BookFrame, UpdateKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookState {
    /// No snapshot yet.
    Empty,
    Synced,
    /// Out of sync: no delta applies until the next snapshot.
    Resyncing,
}

impl BookState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookState::Empty => "empty",
            BookState::Synced => "synced",
            BookState::Resyncing => "resyncing",
        }
    }
}

/// Why a book went out of sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// A delta skipped ahead: `expected` was next, `got` arrived.
    Gap { expected: u64, got: u64 },
    /// After applying an update the best bid was at or above the best ask.
    Crossed,
    /// The connection was lost or replaced; a new snapshot must come first.
    Reconnect,
    /// A level the book cannot hold exactly: a negative value, or a book that would need a huge
    /// price and many decimal places at once. The frame was not applied.
    OutOfRange,
    /// [`STALE_DELTAS_MAX`] deltas in a row carried an update id at or below the book's: the
    /// book's id cannot be the stream's (a snapshot with an absurd `u`), and staying synced on it
    /// would freeze the book silently.
    StaleIds,
}

/// Deltas in a row with an old update id before a synced book gives up on its id and resyncs.
/// A venue may repeat a delta or two after a reconnect; a stream that never catches up is wrong.
pub const STALE_DELTAS_MAX: u32 = 100;

/// A book whose deltas need converting into its units checks whether they still do once in
/// this many deltas.
const COUNTED_RECHECK_DELTAS: u64 = 64;

/// What one frame did to a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Snapshot,
    Delta,
    /// A level-1 snapshot repeating the last `u`: no change.
    Repeat,
    /// `u` at or below the last applied one.
    Stale,
    /// A delta before any snapshot, or while resyncing.
    Ignored,
    /// This frame put the book out of sync.
    Desynced(ResyncReason),
}

/// Why a read was refused: strategies never see a book that is not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookReadError {
    NotSynced(BookState),
    /// Synced, but this side holds no level.
    EmptySide,
}

impl std::fmt::Display for BookReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BookReadError::NotSynced(s) => write!(f, "book is {}", s.as_str()),
            BookReadError::EmptySide => f.write_str("book side is empty"),
        }
    }
}

impl std::error::Error for BookReadError {}

/// A delta held while the book waits for a REST snapshot, to be replayed on top of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeldDelta {
    u: u64,
    seq: Option<u64>,
    ts: u64,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

/// Default bound on deltas held during a REST repair (200 s of a 1000-level book).
pub const HELD_DELTAS_MAX_DEFAULT: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookCounters {
    pub snapshots: u64,
    pub deltas: u64,
    pub repeats: u64,
    pub stale: u64,
    pub ignored: u64,
    pub gaps: u64,
    pub crossed: u64,
    /// Levels dropped to keep a side within the book's depth.
    pub levels_truncated: u64,
    /// Deltas dropped because the hold buffer was full (the repair then starts over).
    pub held_overflow: u64,
    /// Frames refused because a level was out of the book's range.
    pub out_of_range: u64,
}

#[derive(Debug, Clone)]
pub struct OrderBook {
    depth: usize,
    bids: Side,
    asks: Side,
    units: Units,
    /// The frame being applied, in the book's units; kept to reuse their allocations.
    incoming_bids: Vec<Slot>,
    incoming_asks: Vec<Slot>,
    state: BookState,
    last_u: Option<u64>,
    last_seq: Option<u64>,
    last_ts: Option<u64>,
    /// `Some` while a REST repair is under way: deltas are kept instead of ignored.
    held: Option<Vec<HeldDelta>>,
    held_max: usize,
    /// Deltas in a row refused as stale.
    stale_run: u32,
    /// Whether the last delta's levels were already counts of the book's units.
    deltas_counted: bool,
    counters: BookCounters,
}

impl OrderBook {
    /// A book that keeps at most `depth` levels a side.
    pub fn new(depth: usize) -> Self {
        let depth = depth.max(1);
        OrderBook {
            depth,
            bids: Side::new(false),
            asks: Side::new(true),
            units: Units::default(),
            incoming_bids: Vec::new(),
            incoming_asks: Vec::new(),
            state: BookState::Empty,
            last_u: None,
            last_seq: None,
            last_ts: None,
            held: None,
            held_max: HELD_DELTAS_MAX_DEFAULT,
            stale_run: 0,
            deltas_counted: true,
            counters: BookCounters::default(),
        }
    }

    /// Starts holding deltas (up to `max`) until the next snapshot, for a repair from a REST
    /// snapshot whose `u` continues this stream's sequence.
    pub fn hold_deltas(&mut self, max: usize) {
        self.held = Some(Vec::new());
        self.held_max = max;
    }

    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    // ----- getters -----

    pub fn state(&self) -> BookState {
        self.state
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The last applied update id.
    pub fn last_u(&self) -> Option<u64> {
        self.last_u
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    pub fn last_ts(&self) -> Option<u64> {
        self.last_ts
    }

    pub fn counters(&self) -> &BookCounters {
        &self.counters
    }

    pub fn best_bid(&self) -> Result<Level, BookReadError> {
        self.synced()?;
        let best = self.bids.best().ok_or(BookReadError::EmptySide)?;
        Ok(self.units.level(best))
    }

    pub fn best_ask(&self) -> Result<Level, BookReadError> {
        self.synced()?;
        let best = self.asks.best().ok_or(BookReadError::EmptySide)?;
        Ok(self.units.level(best))
    }

    /// The mid price of a synced book with both sides; the mark for PnL and risk.
    pub fn mid(&self) -> Result<Dec, BookReadError> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        bid.px
            .checked_add(ask.px)
            .and_then(|s| s.checked_div(Dec::from_int(2)))
            .ok_or(BookReadError::EmptySide)
    }

    /// Up to `n` bids, best first.
    pub fn top_bids(&self, n: usize) -> Result<impl Iterator<Item = Level> + '_, BookReadError> {
        self.synced()?;
        let units = self.units;
        Ok(self.bids.best_first().take(n).map(move |s| units.level(s)))
    }

    /// Up to `n` asks, best first.
    pub fn top_asks(&self, n: usize) -> Result<impl Iterator<Item = Level> + '_, BookReadError> {
        self.synced()?;
        let units = self.units;
        Ok(self.asks.best_first().take(n).map(move |s| units.level(s)))
    }

    /// The book's contents whatever its state, best first: for diagnostics, replays and
    /// comparisons, never for trading decisions.
    pub fn raw_bids(&self) -> impl ExactSizeIterator<Item = Level> + '_ {
        let units = self.units;
        self.bids.best_first().map(move |s| units.level(s))
    }

    pub fn raw_asks(&self) -> impl ExactSizeIterator<Item = Level> + '_ {
        let units = self.units;
        self.asks.best_first().map(move |s| units.level(s))
    }

    fn synced(&self) -> Result<(), BookReadError> {
        match self.state {
            BookState::Synced => Ok(()),
            s => Err(BookReadError::NotSynced(s)),
        }
    }

    // ----- inputs -----

    /// Applies one decoded frame of this book's topic.
    pub fn apply(&mut self, f: &BookFrame<'_>) -> Applied {
        match f.kind {
            UpdateKind::Snapshot => self.snapshot(f.bids, f.asks, f.u, f.seq, f.ts),
            UpdateKind::Delta => self.delta(f.bids, f.asks, f.u, f.seq, f.ts),
        }
    }

    /// Replaces the book: a subscription's first frame, a venue restart (`u` = 1), or a REST
    /// snapshot. The levels need not be sorted or unique; zero sizes are dropped.
    pub fn apply_snapshot(
        &mut self,
        bids: &[Level],
        asks: &[Level],
        u: u64,
        seq: Option<u64>,
        ts: u64,
    ) -> Applied {
        self.snapshot(bids, asks, u, seq, ts)
    }

    /// Applies a delta that must follow the last applied `u`.
    pub fn apply_delta(
        &mut self,
        bids: &[Level],
        asks: &[Level],
        u: u64,
        seq: Option<u64>,
        ts: u64,
    ) -> Applied {
        self.delta(bids, asks, u, seq, ts)
    }

    fn snapshot<L: Countable>(
        &mut self,
        bids: &[L],
        asks: &[L],
        u: u64,
        seq: Option<u64>,
        ts: u64,
    ) -> Applied {
        // Level 1 re-pushes an unchanged book every 3 s with the same `u` (Bybit v5 docs).
        if self.depth == 1 && self.state == BookState::Synced && self.last_u == Some(u) {
            self.counters.repeats += 1;
            return Applied::Repeat;
        }
        if self.encode(bids, asks).is_err() {
            return self.out_of_range();
        }
        self.counters.snapshots += 1;
        self.stale_run = 0;
        self.counters.levels_truncated += self.bids.fill(&self.incoming_bids, self.depth);
        self.counters.levels_truncated += self.asks.fill(&self.incoming_asks, self.depth);
        self.last_u = Some(u);
        self.last_seq = seq;
        self.last_ts = Some(ts);
        self.state = BookState::Synced;
        let applied = self.check_crossed(Applied::Snapshot);
        match self.held.take() {
            Some(held) if applied == Applied::Snapshot => self.replay_held(held),
            _ => applied,
        }
    }

    /// Applies held deltas newer than the snapshot just loaded, in order.
    fn replay_held(&mut self, held: Vec<HeldDelta>) -> Applied {
        for d in held {
            match self.delta(&d.bids, &d.asks, d.u, d.seq, d.ts) {
                Applied::Desynced(r) => return Applied::Desynced(r),
                Applied::Delta | Applied::Stale => {}
                other => return other,
            }
        }
        Applied::Snapshot
    }

    fn delta<L: Countable>(
        &mut self,
        bids: &[L],
        asks: &[L],
        u: u64,
        seq: Option<u64>,
        ts: u64,
    ) -> Applied {
        if self.state != BookState::Synced {
            if let Some(held) = self.held.as_mut() {
                if held.len() < self.held_max {
                    held.push(HeldDelta {
                        u,
                        seq,
                        ts,
                        bids: bids.iter().map(L::level).collect(),
                        asks: asks.iter().map(L::level).collect(),
                    });
                } else {
                    // The repair fell too far behind; it will be retried from scratch.
                    self.counters.held_overflow += 1;
                    self.held = Some(Vec::new());
                }
            }
            self.counters.ignored += 1;
            return Applied::Ignored;
        }
        let last = self.last_u.unwrap_or(0);
        if u <= last {
            self.counters.stale += 1;
            self.stale_run += 1;
            if self.stale_run >= STALE_DELTAS_MAX {
                self.stale_run = 0;
                self.state = BookState::Resyncing;
                return Applied::Desynced(ResyncReason::StaleIds);
            }
            return Applied::Stale;
        }
        self.stale_run = 0;
        if u != last + 1 {
            self.counters.gaps += 1;
            let reason = ResyncReason::Gap {
                expected: last + 1,
                got: u,
            };
            self.state = BookState::Resyncing;
            return Applied::Desynced(reason);
        }
        // Linear frames write a symbol's places fixed, so their counts are the book's as they
        // come; spot trims trailing zeros, so they almost never are, and checking first was a
        // wasted pass (6% of a spot frame). The last delta says which this book gets; a book
        // converting still checks one delta in [`COUNTED_RECHECK_DELTAS`].
        let check =
            self.deltas_counted || self.counters.deltas.is_multiple_of(COUNTED_RECHECK_DELTAS);
        let counted = match check {
            true => L::as_counted(bids, self.units).zip(L::as_counted(asks, self.units)),
            false => None,
        };
        self.deltas_counted = counted.is_some();
        self.counters.levels_truncated += match counted {
            Some((bids, asks)) => {
                book_side::apply_sides([&mut self.bids, &mut self.asks], [bids, asks], self.depth)
            }
            None => {
                if self.encode(bids, asks).is_err() {
                    return self.out_of_range();
                }
                let incoming = [&self.incoming_bids[..], &self.incoming_asks[..]];
                book_side::apply_sides([&mut self.bids, &mut self.asks], incoming, self.depth)
            }
        };
        self.counters.deltas += 1;
        self.last_u = Some(u);
        self.last_seq = seq;
        self.last_ts = Some(ts);
        self.check_crossed(Applied::Delta)
    }

    /// Marks the book out of sync from outside (a reconnect): it must not be read until a new
    /// snapshot arrives.
    pub fn invalidate(&mut self) {
        if self.state == BookState::Synced {
            self.state = BookState::Resyncing;
        }
    }

    /// The frame's levels in the book's units, in `incoming_*`.
    fn encode<L: Countable>(&mut self, bids: &[L], asks: &[L]) -> Result<(), OutOfRange> {
        book_side::encode(
            [bids, asks],
            &mut self.units,
            [&mut self.incoming_bids, &mut self.incoming_asks],
            [&mut self.bids, &mut self.asks],
        )
    }

    /// Refuses a frame with a level the book cannot hold; the book is not read until a
    /// snapshot it can hold arrives.
    #[cold]
    fn out_of_range(&mut self) -> Applied {
        self.counters.out_of_range += 1;
        self.state = match self.state {
            BookState::Empty => BookState::Empty,
            _ => BookState::Resyncing,
        };
        Applied::Desynced(ResyncReason::OutOfRange)
    }

    fn check_crossed(&mut self, ok: Applied) -> Applied {
        if let (Some(b), Some(a)) = (self.bids.best(), self.asks.best())
            && b.px >= a.px
        {
            self.counters.crossed += 1;
            self.state = BookState::Resyncing;
            return Applied::Desynced(ResyncReason::Crossed);
        }
        ok
    }
}

#[cfg(test)]
mod tests;
