//! A seeded synthetic market: per symbol a full book in integer ticks and lots that random-walks
//! with realistic spread and depth, trades when the price moves through levels, and candles
//! built from those trades. History before the venue started comes from a deterministic price
//! path, so paging REST klines gives the same candles every time for the same seed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use keel_core::Dec;
use keel_core::rng::Rng;
use keel_core::wire::topic::Interval;

/// Levels each side the generator keeps (the deepest public book is 1000).
pub const SIM_LEVELS: usize = 1_200;
/// Closed candles kept per (symbol, interval).
pub const SIM_CANDLES_MAX: usize = 20_000;

/// Levels of one side, best first: (price in ticks, size in lots).
pub type SideView = Vec<(i64, u64)>;
/// Bids and asks, best first.
pub type BookView = (SideView, SideView);

#[derive(Debug, Clone)]
pub struct SymbolSpec {
    pub symbol: String,
    pub tick: Dec,
    pub qty_step: Dec,
    pub start_price: Dec,
}

impl SymbolSpec {
    /// A plausible spec for any symbol name, derived from the name so it is stable.
    pub fn guess(symbol: &str) -> SymbolSpec {
        let (tick, step, price) = match symbol {
            s if s.starts_with("BTC") => ("0.1", "0.001", "65000"),
            s if s.starts_with("ETH") => ("0.01", "0.01", "1900"),
            s if s.starts_with("SOL") => ("0.01", "0.1", "77"),
            s if s.starts_with("DOGE") => ("0.00001", "1", "0.07"),
            _ => {
                let h = symbol
                    .bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
                let p = 1 + h % 500;
                return SymbolSpec {
                    symbol: symbol.to_string(),
                    tick: Dec::parse("0.001").expect("literal"),
                    qty_step: Dec::parse("0.1").expect("literal"),
                    start_price: Dec::from_int(p as i64),
                };
            }
        };
        SymbolSpec {
            symbol: symbol.to_string(),
            tick: Dec::parse(tick).expect("literal"),
            qty_step: Dec::parse(step).expect("literal"),
            start_price: Dec::parse(price).expect("literal"),
        }
    }

    pub fn px(&self, ticks: i64) -> Dec {
        Dec::from_raw(self.tick.raw() * ticks as i128)
    }

    pub fn qty(&self, lots: u64) -> Dec {
        Dec::from_raw(self.qty_step.raw() * lots as i128)
    }

    fn ticks_of(&self, px: Dec) -> i64 {
        (px.raw() / self.tick.raw()) as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTrade {
    pub time_ms: u64,
    pub buy: bool,
    pub ticks: i64,
    pub lots: u64,
    pub id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCandle {
    pub start_ms: u64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume_lots: u64,
    /// Sum of ticks * lots, converted at publication.
    pub notional: i128,
}

impl SimCandle {
    fn flat(start_ms: u64, ticks: i64) -> SimCandle {
        SimCandle {
            start_ms,
            open: ticks,
            high: ticks,
            low: ticks,
            close: ticks,
            volume_lots: 0,
            notional: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub interval: Interval,
    pub closed: VecDeque<SimCandle>,
    pub forming: SimCandle,
}

pub struct SymbolMarket {
    pub spec: SymbolSpec,
    /// price in ticks -> size in lots
    pub bids: BTreeMap<i64, u64>,
    pub asks: BTreeMap<i64, u64>,
    pub last_trade: i64,
    pub trades_total: u64,
    pub volume_lots_total: u64,
    pub series: HashMap<Interval, Series>,
    /// Trades of the current step, drained by the publisher.
    pub fresh_trades: Vec<SimTrade>,
    /// Closed candles of the current step, drained by the publisher.
    pub fresh_closes: Vec<(Interval, SimCandle)>,
}

impl SymbolMarket {
    pub fn new(spec: SymbolSpec, rng: &mut Rng, now_ms: u64, seed: u64) -> SymbolMarket {
        let mid = history_price_ticks(&spec, seed, now_ms);
        let mut m = SymbolMarket {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            last_trade: mid,
            trades_total: 0,
            volume_lots_total: 0,
            series: HashMap::new(),
            fresh_trades: Vec::new(),
            fresh_closes: Vec::new(),
            spec,
        };
        for i in 0..SIM_LEVELS as i64 {
            m.bids.insert(mid - 1 - i, lots(rng, i));
            m.asks.insert(mid + i, lots(rng, i));
        }
        m
    }

    pub fn best_bid(&self) -> i64 {
        *self.bids.keys().next_back().expect("books are never empty")
    }

    pub fn best_ask(&self) -> i64 {
        *self.asks.keys().next().expect("books are never empty")
    }

    /// The best `n` levels of each side, best first.
    pub fn top(&self, n: usize) -> BookView {
        (
            self.bids
                .iter()
                .rev()
                .take(n)
                .map(|(p, q)| (*p, *q))
                .collect(),
            self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect(),
        )
    }

    /// One step of the market: a few quote changes, sometimes a trade through the top.
    pub fn step(&mut self, rng: &mut Rng, now_ms: u64, seed: u64) {
        self.roll_candles(now_ms, seed);
        let changes = 1 + rng.up_to(4);
        for _ in 0..changes {
            let bid_side = rng.up_to(1) == 0;
            // Most activity is near the top: a geometric-ish distance from the best.
            let depth = (rng.unit().powi(3) * SIM_LEVELS as f64) as i64;
            let (best, side) = if bid_side {
                (self.best_bid(), &mut self.bids)
            } else {
                (self.best_ask(), &mut self.asks)
            };
            let px = if bid_side { best - depth } else { best + depth };
            if rng.up_to(4) == 0 && side.len() > SIM_LEVELS / 2 && depth > 0 {
                side.remove(&px);
            } else {
                side.insert(px, lots(rng, depth));
            }
        }
        if rng.up_to(9) < 3 {
            let buy = rng.up_to(1) == 0;
            let lots_wanted = 1 + rng.up_to(20);
            self.trade(buy, lots_wanted, now_ms, rng);
        }
        self.refill(rng);
    }

    /// A market order of `lots_wanted` that walks the opposite side.
    fn trade(&mut self, buy: bool, mut lots_wanted: u64, now_ms: u64, rng: &mut Rng) {
        while lots_wanted > 0 {
            let (px, avail) = if buy {
                let (p, q) = self
                    .asks
                    .iter()
                    .next()
                    .map(|(p, q)| (*p, *q))
                    .expect("non-empty");
                (p, q)
            } else {
                let (p, q) = self
                    .bids
                    .iter()
                    .next_back()
                    .map(|(p, q)| (*p, *q))
                    .expect("non-empty");
                (p, q)
            };
            let take = avail.min(lots_wanted);
            lots_wanted -= take;
            let side = if buy { &mut self.asks } else { &mut self.bids };
            if take == avail {
                side.remove(&px);
            } else {
                side.insert(px, avail - take);
            }
            self.trades_total += 1;
            self.volume_lots_total += take;
            self.last_trade = px;
            let t = SimTrade {
                time_ms: now_ms,
                buy,
                ticks: px,
                lots: take,
                id: self.trades_total ^ (rng.next_u64() << 20),
            };
            for s in self.series.values_mut() {
                let c = &mut s.forming;
                c.high = c.high.max(px);
                c.low = c.low.min(px);
                c.close = px;
                c.volume_lots += take;
                c.notional += px as i128 * take as i128;
            }
            self.fresh_trades.push(t);
        }
    }

    /// Keeps both sides deep and the book uncrossed.
    fn refill(&mut self, rng: &mut Rng) {
        while self.bids.len() < SIM_LEVELS {
            let worst = *self.bids.keys().next().expect("non-empty");
            self.bids.insert(worst - 1, lots(rng, SIM_LEVELS as i64));
        }
        while self.asks.len() < SIM_LEVELS {
            let worst = *self.asks.keys().next_back().expect("non-empty");
            self.asks.insert(worst + 1, lots(rng, SIM_LEVELS as i64));
        }
        while self.bids.len() > SIM_LEVELS + 200 {
            self.bids.pop_first();
        }
        while self.asks.len() > SIM_LEVELS + 200 {
            self.asks.pop_last();
        }
        // A quote inserted through the other side would cross: pull the crossing levels.
        while self.best_bid() >= self.best_ask() {
            let bb = self.best_bid();
            self.bids.remove(&bb);
        }
    }

    /// The series for `interval`, created from the history path on first use.
    pub fn series(&mut self, interval: Interval, now_ms: u64) -> &mut Series {
        let last = self.last_trade;
        self.series.entry(interval).or_insert_with(|| Series {
            interval,
            closed: VecDeque::new(),
            forming: SimCandle::flat(interval.floor(now_ms), last),
        })
    }

    fn roll_candles(&mut self, now_ms: u64, _seed: u64) {
        for s in self.series.values_mut() {
            while s.interval.next_start(s.forming.start_ms) <= now_ms {
                let closed = s.forming;
                s.closed.push_back(closed);
                if s.closed.len() > SIM_CANDLES_MAX {
                    s.closed.pop_front();
                }
                self.fresh_closes.push((s.interval, closed));
                s.forming = SimCandle::flat(s.interval.next_start(closed.start_ms), closed.close);
            }
        }
    }
}

fn lots(rng: &mut Rng, depth: i64) -> u64 {
    // Thin near the top, thicker deeper, never zero.
    1 + rng.up_to(50 + depth.unsigned_abs() / 4)
}

/// A smooth, deterministic price path for history before the venue started: the same seed and
/// symbol give the same candles on every run.
pub fn history_price_ticks(spec: &SymbolSpec, seed: u64, t_ms: u64) -> i64 {
    let base = spec.ticks_of(spec.start_price) as f64;
    let t = t_ms as f64 / 3_600_000.0;
    let phase = (seed % 1000) as f64;
    let wave = 0.02 * (t / 24.0 + phase).sin()
        + 0.01 * (t / 3.0 + phase * 1.7).sin()
        + 0.004 * (t * 2.0).sin();
    let noise = (hash3(seed, spec.symbol.len() as u64, t_ms / 60_000) % 1000) as f64 / 1000.0 - 0.5;
    (base * (1.0 + wave + 0.0005 * noise)).round().max(1.0) as i64
}

/// A synthetic closed candle of the history path.
pub fn history_candle(
    spec: &SymbolSpec,
    seed: u64,
    interval: Interval,
    start_ms: u64,
) -> SimCandle {
    let end = interval.next_start(start_ms);
    let open = history_price_ticks(spec, seed, start_ms);
    let close = history_price_ticks(spec, seed, end);
    let h = hash3(seed, start_ms, interval as u64);
    let span = (open - close).abs().max(1);
    let high = open.max(close) + (h % (span as u64 + 2)) as i64;
    let low = (open.min(close) - ((h >> 16) % (span as u64 + 2)) as i64).max(1);
    let volume_lots = 100 + (h >> 32) % 10_000;
    SimCandle {
        start_ms,
        open,
        high,
        low,
        close,
        volume_lots,
        notional: (open + close) as i128 / 2 * volume_lots as i128,
    }
}

fn hash3(a: u64, b: u64, c: u64) -> u64 {
    let mut x = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_book_is_never_crossed_and_stays_deep() {
        let mut rng = Rng::new(5);
        let mut m = SymbolMarket::new(SymbolSpec::guess("BTCUSDT"), &mut rng, 0, 5);
        for i in 0..5_000 {
            m.step(&mut rng, i * 10, 5);
            assert!(m.best_bid() < m.best_ask());
            assert!(m.bids.len() >= 1000 && m.asks.len() >= 1000);
        }
        assert!(m.trades_total > 100);
    }

    #[test]
    fn history_is_deterministic_and_continuous() {
        let spec = SymbolSpec::guess("ETHUSDT");
        let a = history_candle(&spec, 9, Interval::Min1, 60_000);
        let b = history_candle(&spec, 9, Interval::Min1, 120_000);
        assert_eq!(a, history_candle(&spec, 9, Interval::Min1, 60_000));
        assert_eq!(a.close, b.open);
        assert!(a.low <= a.open.min(a.close) && a.high >= a.open.max(a.close));
    }
}
