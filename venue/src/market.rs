//! A seeded synthetic market: per symbol a full book in integer ticks and lots around a fair price
//! that random-walks with a configurable volatility. Takers trade at the touch whenever the fair
//! price moves through it (and now and then anyway); makers requote inside the spread, so the
//! spread mean-reverts around a few ticks instead of drifting open; candles are built from the
//! trades alone, so their OHLC agree with them. History before the venue started comes from a
//! deterministic price path, so paging REST klines gives the same candles every time for the
//! same seed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use keel_core::Dec;
use keel_core::rng::Rng;
use keel_core::wire::topic::Interval;

/// Levels each side the generator keeps (the deepest public book is 1000).
pub const SIM_LEVELS: usize = 1_200;
/// Closed candles kept per (symbol, interval).
pub const SIM_CANDLES_MAX: usize = 20_000;

/// Ask levels a taker may sweep in one step, however far the fair price moved.
pub const SWEEP_LEVELS_MAX: usize = 8;
/// The spread makers aim for, drawn each step from 1 to this many ticks.
pub const SPREAD_TICKS_TARGET_MAX: u64 = 3;

/// How the synthetic price moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dynamics {
    /// Standard deviation of the fair price over one minute, in basis points.
    pub volatility_bps_per_min: f64,
    /// The venue's step; the per-step move is scaled from the per-minute volatility by it.
    pub step_ms: u64,
}

impl Default for Dynamics {
    fn default() -> Self {
        Dynamics {
            volatility_bps_per_min: 2.0,
            step_ms: 10,
        }
    }
}

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

    /// The spot market of the same name: finer sizes, as Bybit lists spot pairs.
    pub fn guess_spot(symbol: &str) -> SymbolSpec {
        let linear = SymbolSpec::guess(symbol);
        let (tick, step) = match symbol {
            s if s.starts_with("BTC") => ("0.01", "0.000001"),
            s if s.starts_with("ETH") => ("0.01", "0.00001"),
            s if s.starts_with("SOL") => ("0.01", "0.001"),
            s if s.starts_with("DOGE") => ("0.00001", "0.1"),
            _ => ("0.001", "0.01"),
        };
        SymbolSpec {
            tick: Dec::parse(tick).expect("literal"),
            qty_step: Dec::parse(step).expect("literal"),
            ..linear
        }
    }

    /// The coin traded against the quote (`BTC` of `BTCUSDT`).
    pub fn base_coin(&self) -> &str {
        self.symbol
            .strip_suffix(self.quote_coin())
            .unwrap_or(&self.symbol)
    }

    /// The quote coin: every symbol the venue lists is quoted in USDT or USDC.
    pub fn quote_coin(&self) -> &'static str {
        if self.symbol.ends_with("USDC") {
            "USDC"
        } else {
            "USDT"
        }
    }

    /// Decimal places linear prices are written with (Bybit's `priceScale`: BTCUSDT's tick
    /// is `0.10`, two places, though one would do).
    pub fn price_scale(&self) -> u32 {
        match self.symbol.as_str() {
            s if s.starts_with("BTC") || s.starts_with("ETH") => 2,
            _ => self.tick.places(),
        }
    }

    /// Decimal places of the lot step (`0.001` -> 3).
    pub fn qty_scale(&self) -> u32 {
        self.qty_step.places()
    }

    /// A price as the category writes it: linear to `priceScale` places (`"65114.20"`), spot
    /// without trailing zeros (`"65140"`).
    pub fn px_text(&self, spot: bool, ticks: i64) -> String {
        let d = self.px(ticks);
        if spot {
            d.to_string()
        } else {
            fixed(d, self.price_scale())
        }
    }

    /// A size as the category writes it: linear to the lot step's places, spot trimmed.
    pub fn qty_text(&self, spot: bool, lots: u64) -> String {
        let d = self.qty(lots);
        if spot {
            d.to_string()
        } else {
            fixed(d, self.qty_scale())
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

/// The last day's figures as a ticker shows them. Seeded from the history path's hourly candles
/// when the market starts and extended by every live trade; not rolled forward (Bybit's window
/// rolls; a venue run is far shorter than a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStats {
    pub prev_price_24h: i64,
    pub prev_price_1h: i64,
    pub high: i64,
    pub low: i64,
    pub volume_lots: u64,
    pub notional: i128,
    /// Open interest in lots (derivatives): moves with each trade, never below a floor.
    pub open_interest_lots: u64,
}

impl DayStats {
    fn from_history(spec: &SymbolSpec, seed: u64, now_ms: u64) -> DayStats {
        const HOUR_MS: u64 = 3_600_000;
        let first = Interval::Min60.floor(now_ms.saturating_sub(24 * HOUR_MS));
        let mut d = DayStats {
            prev_price_24h: history_price_ticks(spec, seed, now_ms.saturating_sub(24 * HOUR_MS)),
            prev_price_1h: history_price_ticks(spec, seed, now_ms.saturating_sub(HOUR_MS)),
            high: i64::MIN,
            low: i64::MAX,
            volume_lots: 0,
            notional: 0,
            open_interest_lots: 0,
        };
        for h in 0..24 {
            let c = history_candle(spec, seed, Interval::Min60, first + h * HOUR_MS);
            d.high = d.high.max(c.high);
            d.low = d.low.min(c.low);
            d.volume_lots += c.volume_lots;
            d.notional += c.notional;
        }
        d.open_interest_lots = d.volume_lots * 3;
        d
    }

    fn add_trade(&mut self, buy: bool, px: i64, lots: u64) {
        self.high = self.high.max(px);
        self.low = self.low.min(px);
        self.volume_lots += lots;
        self.notional += px as i128 * lots as i128;
        self.open_interest_lots = if buy {
            self.open_interest_lots + lots
        } else {
            self.open_interest_lots.saturating_sub(lots).max(1_000)
        };
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
    pub day: DayStats,
    /// The fair price, in ticks: where takers and makers agree the price is.
    pub fair: f64,
    /// The fair price's standard deviation over one step, as a fraction of the price.
    sigma_per_step: f64,
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
        Self::with_dynamics(spec, rng, now_ms, seed, Dynamics::default())
    }

    pub fn with_dynamics(
        spec: SymbolSpec,
        rng: &mut Rng,
        now_ms: u64,
        seed: u64,
        dynamics: Dynamics,
    ) -> SymbolMarket {
        let mid = history_price_ticks(&spec, seed, now_ms);
        let steps_per_min = 60_000.0 / dynamics.step_ms.max(1) as f64;
        let mut m = SymbolMarket {
            day: DayStats::from_history(&spec, seed, now_ms),
            fair: mid as f64 - 0.5,
            sigma_per_step: dynamics.volatility_bps_per_min.max(0.0) / 1e4 / steps_per_min.sqrt(),
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

    /// One step of the market: the fair price moves, takers trade at the touch when it moved
    /// through it, makers change quotes behind the top and requote inside a wide spread.
    pub fn step(&mut self, rng: &mut Rng, now_ms: u64, seed: u64) {
        self.roll_candles(now_ms, seed);
        self.fair = (self.fair * (1.0 + gaussian(rng) * self.sigma_per_step)).max(1.0);
        let (bid, ask) = (self.best_bid(), self.best_ask());
        if self.fair >= ask as f64 {
            let lots_wanted = 1 + rng.up_to(20);
            self.take(true, self.fair.floor() as i64, lots_wanted, now_ms, rng);
        } else if self.fair <= bid as f64 {
            let lots_wanted = 1 + rng.up_to(20);
            self.take(false, self.fair.ceil() as i64, lots_wanted, now_ms, rng);
        } else if rng.up_to(9) < 2 {
            // Flow that does not move the price: a small order at the touch.
            let buy = rng.up_to(1) == 0;
            let touch = if buy { ask } else { bid };
            let lots_wanted = 1 + rng.up_to(5);
            self.take(buy, touch, lots_wanted, now_ms, rng);
        }
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
        self.requote(rng);
        self.refill(rng);
    }

    /// Makers close a spread wider than their target, half the excess a step, on the side
    /// farther from the fair price: the spread mean-reverts around a few ticks.
    fn requote(&mut self, rng: &mut Rng) {
        let target = 1 + rng.up_to(SPREAD_TICKS_TARGET_MAX - 1) as i64;
        let (mut bid, mut ask) = (self.best_bid(), self.best_ask());
        let excess = ask - bid - target;
        for _ in 0..(excess + 1) / 2 {
            if self.fair - bid as f64 > ask as f64 - self.fair {
                bid += 1;
                self.bids.insert(bid, lots(rng, 0));
            } else {
                ask -= 1;
                self.asks.insert(ask, lots(rng, 0));
            }
        }
    }

    /// A taker's order of `lots_wanted` against the other side, at prices no worse than
    /// `limit` (the touch at least), over at most [`SWEEP_LEVELS_MAX`] levels.
    fn take(&mut self, buy: bool, limit: i64, lots_wanted: u64, now_ms: u64, rng: &mut Rng) {
        let levels: Vec<(i64, u64)> = if buy {
            let ask = self.best_ask();
            let limit = limit.max(ask);
            self.asks
                .range(..=limit)
                .take(SWEEP_LEVELS_MAX)
                .map(|(p, q)| (*p, *q))
                .collect()
        } else {
            let bid = self.best_bid();
            let limit = limit.min(bid);
            self.bids
                .range(limit..)
                .rev()
                .take(SWEEP_LEVELS_MAX)
                .map(|(p, q)| (*p, *q))
                .collect()
        };
        // Sweeping to the fair price takes whole levels; a small order stops when it is done.
        let sweep = levels.len() > 1;
        let mut left = lots_wanted;
        for (px, avail) in levels {
            let take = if sweep { avail } else { avail.min(left) };
            left = left.saturating_sub(take);
            let side = if buy { &mut self.asks } else { &mut self.bids };
            if take == avail {
                side.remove(&px);
            } else {
                side.insert(px, avail - take);
            }
            self.record_trade(buy, px, take, now_ms, rng);
            if !sweep && left == 0 {
                break;
            }
        }
    }

    fn record_trade(&mut self, buy: bool, px: i64, take: u64, now_ms: u64, rng: &mut Rng) {
        let id = (self.trades_total + 1) ^ (rng.next_u64() << 20);
        self.print_trade_with_id(buy, px, take, now_ms, id);
    }

    /// A trade printed by someone other than the synthetic takers (an account's order): it
    /// counts in the candles, the day's figures and the public trades like any other.
    pub fn print_trade(&mut self, buy: bool, px: i64, take: u64, now_ms: u64) {
        let id = (self.trades_total + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        self.print_trade_with_id(buy, px, take, now_ms, id);
    }

    fn print_trade_with_id(&mut self, buy: bool, px: i64, take: u64, now_ms: u64, id: u64) {
        self.trades_total += 1;
        self.volume_lots_total += take;
        self.last_trade = px;
        self.day.add_trade(buy, px, take);
        let t = SimTrade {
            time_ms: now_ms,
            buy,
            ticks: px,
            lots: take,
            id,
        };
        for s in self.series.values_mut() {
            let c = &mut s.forming;
            if c.volume_lots == 0 {
                // The first trade of a period opens it: OHLC come from trades only.
                (c.open, c.high, c.low) = (px, px, px);
            }
            c.high = c.high.max(px);
            c.low = c.low.min(px);
            c.close = px;
            c.volume_lots += take;
            c.notional += px as i128 * take as i128;
        }
        self.fresh_trades.push(t);
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

/// `d` written with exactly `places` decimals (it must not have more).
pub fn fixed(d: Dec, places: u32) -> String {
    let mut s = d.to_string();
    if places == 0 {
        return s;
    }
    let have = match s.split_once('.') {
        Some((_, f)) => f.len() as u32,
        None => {
            s.push('.');
            0
        }
    };
    for _ in have..places {
        s.push('0');
    }
    s
}

/// A standard normal draw (Box-Muller), from the seeded RNG.
fn gaussian(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
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
mod tests;
