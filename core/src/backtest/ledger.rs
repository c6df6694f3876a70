//! The ledger of a backtest: the broker its fills go through, the trades they make, and the
//! equity sampled along the way with its drawdown and exposure. A backtest over candles and one
//! over capture files both keep one, so their reports hold the same figures.

use std::collections::BTreeMap;

use super::{DAY_MS, EQUITY_POINTS_MAX, Report, SymbolReport, Totals, TradeRecord};
use crate::decimal::Dec;
use crate::trading::broker::{Broker, BrokerConfig, Fill};

#[derive(Debug, Clone)]
struct OpenTrade {
    strategy: String,
    entry_ms: u64,
    entry_price: f64,
    /// Realised PnL net of fees before the trade's first fill.
    base: f64,
    fees_base: f64,
    qty_max: f64,
}

pub struct Ledger {
    balance: f64,
    broker: Broker,
    open: BTreeMap<String, OpenTrade>,
    trades: Vec<TradeRecord>,
    equity: Vec<(u64, f64)>,
    peak: f64,
    peak_ms: Option<u64>,
    max_drawdown: f64,
    max_drawdown_pct: f64,
    drawdown_peak_ms: u64,
    drawdown_trough_ms: u64,
    exposed: u64,
    fills: u64,
    /// Positions not flat.
    held: usize,
}

impl Ledger {
    pub fn new(broker: BrokerConfig, balance: f64) -> Ledger {
        Ledger {
            balance,
            broker: Broker::new(broker),
            open: BTreeMap::new(),
            trades: Vec::new(),
            equity: Vec::new(),
            peak: balance,
            peak_ms: None,
            max_drawdown: 0.0,
            max_drawdown_pct: 0.0,
            drawdown_peak_ms: 0,
            drawdown_trough_ms: 0,
            exposed: 0,
            fills: 0,
            held: 0,
        }
    }

    /// Room for `n` equity samples up front (a backtest knows how many steps it has at least):
    /// growing the curve by doubling copied it a dozen times.
    pub fn reserve_samples(&mut self, n: usize) {
        self.equity.reserve(n);
    }

    /// The broker fills go through (sizing and risk checks read it).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    pub fn broker_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// Applies a fill of an order `strategy` made: a position leaving flat opens a trade, one
    /// reaching flat (or flipping) closes it; a flip's fee goes to the trade it closes.
    pub fn fill(&mut self, fill: &Fill, strategy: &str) {
        self.fills += 1;
        let net = |b: &Broker| {
            b.position(&fill.symbol).map_or((0.0, 0.0, 0.0), |p| {
                (
                    p.qty.to_f64(),
                    p.realized_pnl.to_f64() - p.fees.to_f64(),
                    p.fees.to_f64(),
                )
            })
        };
        let (q0, base0, fees0) = net(&self.broker);
        self.broker.apply_fill(fill);
        let (q1, base1, fees1) = net(&self.broker);
        let px = fill.px.to_f64();
        self.held =
            self.held + usize::from(q0 == 0.0 && q1 != 0.0) - usize::from(q0 != 0.0 && q1 == 0.0);
        if let Some(o) = self.open.get_mut(&fill.symbol) {
            o.qty_max = o.qty_max.max(q1.abs());
        }
        let closed = q0 != 0.0 && (q1 == 0.0 || q0.signum() != q1.signum());
        // A flip closes one trade and opens the next under the same key: kept, not made again.
        let mut key = None;
        if closed && let Some((k, o)) = self.open.remove_entry(&fill.symbol) {
            key = Some(k);
            self.trades.push(TradeRecord {
                symbol: fill.symbol.clone(),
                side: if q0 > 0.0 { "long" } else { "short" },
                strategy: o.strategy,
                entry_ms: o.entry_ms,
                exit_ms: fill.ts_ms,
                entry_price: o.entry_price,
                exit_price: px,
                qty: o.qty_max,
                pnl: base1 - o.base,
                fees: fees1 - o.fees_base,
            });
        }
        if q1 != 0.0 && (q0 == 0.0 || closed) {
            let (base, fees_base) = if closed {
                (base1, fees1)
            } else {
                (base0, fees0)
            };
            self.open.insert(
                key.unwrap_or_else(|| fill.symbol.clone()),
                OpenTrade {
                    strategy: strategy.to_string(),
                    entry_ms: fill.ts_ms,
                    entry_price: px,
                    base,
                    fees_base,
                    qty_max: q1.abs(),
                },
            );
        }
    }

    /// The equity at `marks` (realised net of fees, plus open positions at their marks).
    pub fn equity_now(&self, marks: &dyn Fn(&str) -> Option<Dec>) -> f64 {
        self.equity_at(self.broker.unrealized(marks))
    }

    /// The equity with the open positions' PnL at `unrealized`.
    pub fn equity_at(&self, unrealized: f64) -> f64 {
        self.balance + self.broker.realized_total() + unrealized
    }

    /// Samples the equity at `t_ms`: the curve, the deepest drawdown so far, the exposure.
    pub fn sample(&mut self, t_ms: u64, marks: &dyn Fn(&str) -> Option<Dec>) {
        let u = self.broker.unrealized(marks);
        self.sample_at(t_ms, u);
    }

    /// [`Ledger::sample`] with the open positions' PnL already known.
    pub fn sample_at(&mut self, t_ms: u64, unrealized: f64) {
        let e = self.equity_at(unrealized);
        if self.held > 0 {
            self.exposed += 1;
        }
        if e > self.peak || self.peak_ms.is_none() {
            // The starting balance is the first peak, dated at the first sample.
            (self.peak, self.peak_ms) = (e.max(self.peak), Some(t_ms));
        }
        let peak_ms = self.peak_ms.unwrap_or(t_ms);
        if self.peak - e > self.max_drawdown {
            self.max_drawdown = self.peak - e;
            self.max_drawdown_pct = (self.peak - e) / self.peak * 100.0;
            self.drawdown_peak_ms = peak_ms;
            self.drawdown_trough_ms = t_ms;
        }
        self.equity.push((t_ms, e));
    }

    /// The report: `t` brings the counts only the caller knows (candles, signals, orders...);
    /// `symbols` are listed in this order with their candle counts.
    pub fn finish(
        self,
        mut t: Totals,
        symbols: &[(String, u64)],
        marks: &dyn Fn(&str) -> Option<Dec>,
    ) -> Report {
        t.fills = self.fills;
        t.final_equity = self.equity_now(marks);
        t.pnl = t.final_equity - self.balance;
        t.return_pct = t.pnl / self.balance * 100.0;
        t.fees = self.broker.positions().map(|p| p.fees.to_f64()).sum();
        t.exposure_pct = self.exposed as f64 / (self.equity.len().max(1)) as f64 * 100.0;
        t.max_drawdown = self.max_drawdown;
        t.max_drawdown_pct = self.max_drawdown_pct;
        t.drawdown_peak_ms = self.drawdown_peak_ms;
        t.drawdown_trough_ms = self.drawdown_trough_ms;
        let trades = self.trades;
        t.trades = trades.len() as u64;
        let wins = trades.iter().filter(|x| x.pnl > 0.0).count();
        t.win_pct = pct(wins as u64, t.trades);
        let gross_win: f64 = trades.iter().map(|x| x.pnl.max(0.0)).sum();
        let gross_loss: f64 = trades.iter().map(|x| (-x.pnl).max(0.0)).sum();
        t.profit_factor = (gross_loss > 0.0).then(|| gross_win / gross_loss);
        (t.sharpe, t.sortino) = ratios(&daily_returns(&self.equity, self.balance));
        let broker = &self.broker;
        let per_symbol = symbols
            .iter()
            .map(|(symbol, candles)| {
                let mine: Vec<&TradeRecord> =
                    trades.iter().filter(|x| x.symbol == *symbol).collect();
                let n = mine.len() as u64;
                let wins = mine.iter().filter(|x| x.pnl > 0.0).count() as u64;
                SymbolReport {
                    symbol: symbol.clone(),
                    candles: *candles,
                    trades: n,
                    wins,
                    win_pct: pct(wins, n),
                    pnl: mine.iter().map(|x| x.pnl).sum(),
                    fees: broker.position(symbol).map_or(0.0, |p| p.fees.to_f64()),
                    avg_duration_s: if n == 0 {
                        0.0
                    } else {
                        mine.iter()
                            .map(|x| (x.exit_ms - x.entry_ms) as f64 / 1e3)
                            .sum::<f64>()
                            / n as f64
                    },
                }
            })
            .collect();
        Report {
            symbols: per_symbol,
            totals: t,
            trades,
            equity: thin(&self.equity, EQUITY_POINTS_MAX),
        }
    }
}

pub(super) fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

/// Each day's return, from the last equity of each UTC day (the first day from the balance),
/// up to the day the equity was spent: that day loses everything (-100 %), and what follows is
/// not a return of anything (a ratio to a balance at or below zero).
pub(super) fn daily_returns(equity: &[(u64, f64)], balance: f64) -> Vec<f64> {
    let mut closes: Vec<f64> = Vec::new();
    let mut day = None;
    for &(t, e) in equity {
        let d = t / DAY_MS;
        if day == Some(d) {
            *closes.last_mut().expect("a day was pushed") = e;
        } else {
            closes.push(e);
            day = Some(d);
        }
    }
    let mut prev = balance;
    closes
        .into_iter()
        .map_while(|e| {
            if prev <= 0.0 {
                return None;
            }
            let r = if e <= 0.0 { -1.0 } else { e / prev - 1.0 };
            prev = e;
            Some(r)
        })
        .collect()
}

/// (Sharpe, Sortino), annualised over 365 days with no risk-free rate.
pub(super) fn ratios(r: &[f64]) -> (Option<f64>, Option<f64>) {
    if r.len() < 2 {
        return (None, None);
    }
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let down = (r.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let year = 365f64.sqrt();
    (
        (sd > 0.0).then(|| mean / sd * year),
        (down > 0.0).then(|| mean / down * year),
    )
}

/// At most `max` points, evenly spaced, the last kept.
pub(super) fn thin(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let step = points.len().div_ceil(max);
    let mut out: Vec<(u64, f64)> = points.iter().step_by(step).copied().collect();
    if out.last() != points.last() {
        out.extend(points.last());
    }
    out
}
