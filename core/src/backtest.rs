//! Backtests over closed candles, in virtual time and as fast as the CPU goes: the strategies
//! (the very objects a live run calls, through the same `evaluate_one`), the broker's sizing and
//! risk checks, and a fill model, over every symbol's candles merged in time order. The same
//! inputs give the same report, bit for bit.
//!
//! What a strategy sees differs from a live run only where candles carry less: its context has
//! the closed candles up to the one that just closed, a book of one level a side at that close,
//! and no public trades. Orders fill against the next candle:
//! - market: at its open, moved against the order by the slippage;
//! - limit: at its open if the open is already through the price, else at the price if the
//!   candle's range reaches it; IOC and FOK are cancelled when it does not, GTC rests until it
//!   fills or is cancelled, and a post-only order that would cross when placed is refused;
//! - each fill pays the configured fee; one working order per symbol, as live.
//!
//! A trade is a position from flat (or a flip) back to flat (or the next flip); a flip's fee is
//! counted in the trade it closes.

use serde::Serialize;

use crate::decimal::{Dec, Level};
use crate::engine::trading::candles_to_keep;
use crate::trading::broker::{Broker, BrokerConfig, Fill};
use crate::trading::strategy::{
    Action, Candle, Context, OpenOrder, SharedStrategy, Signal, SignalSide, TimeInForce,
    evaluate_one,
};

/// One UTC day, the period of the Sharpe and Sortino ratios.
const DAY_MS: u64 = 86_400_000;
/// Equity points a report keeps (evenly spaced; the extremes are in the totals).
pub const EQUITY_POINTS_MAX: usize = 2_000;

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    pub strategies: Vec<SharedStrategy>,
    pub confidence_min: f64,
    pub broker: BrokerConfig,
    /// Starting equity, in the quote coin.
    pub balance: f64,
    pub interval_ms: u64,
}

/// One symbol's closed candles, oldest first, and its lot step if known.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolCandles {
    pub symbol: String,
    pub candles: Vec<Candle>,
    pub qty_step: Option<Dec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeRecord {
    pub symbol: String,
    pub side: &'static str,
    /// The strategy whose order opened it.
    pub strategy: String,
    pub entry_ms: u64,
    pub exit_ms: u64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// The largest size the position reached.
    pub qty: f64,
    /// Net of fees.
    pub pnl: f64,
    pub fees: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolReport {
    pub symbol: String,
    pub candles: u64,
    pub trades: u64,
    pub wins: u64,
    pub win_pct: f64,
    pub pnl: f64,
    pub fees: f64,
    pub avg_duration_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub start_ms: u64,
    pub end_ms: u64,
    pub candles: u64,
    pub signals: u64,
    pub orders: u64,
    pub fills: u64,
    pub trades: u64,
    pub win_pct: f64,
    /// Realised and unrealised at the end, net of fees.
    pub pnl: f64,
    pub fees: f64,
    pub return_pct: f64,
    pub final_equity: f64,
    pub max_drawdown: f64,
    pub max_drawdown_pct: f64,
    /// The peak the deepest drawdown started from, and its trough.
    pub drawdown_peak_ms: u64,
    pub drawdown_trough_ms: u64,
    /// Daily, annualised over 365 days; `None` with fewer than two days or no variation.
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    /// Gross profit over gross loss of closed trades; `None` without a losing trade.
    pub profit_factor: Option<f64>,
    /// Share of the time any position was open, in percent.
    pub exposure_pct: f64,
    /// Strategy calls that panicked (caught, as live).
    pub faults: u64,
    /// Orders the broker's checks refused (limits, kill switch).
    pub refused: u64,
    pub kill_switch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub symbols: Vec<SymbolReport>,
    pub totals: Totals,
    pub trades: Vec<TradeRecord>,
    /// (time, equity), at most [`EQUITY_POINTS_MAX`] points.
    pub equity: Vec<(u64, f64)>,
}

#[derive(Debug, Clone)]
struct Working {
    side: SignalSide,
    qty: Dec,
    limit: Option<Dec>,
    tif: Option<TimeInForce>,
    strategy: String,
    link: String,
}

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

struct Book {
    working: Option<Working>,
    open: Option<OpenTrade>,
}

/// Runs the backtest. `Err` names what cannot be run (no strategy, no candles).
pub fn run(cfg: &BacktestConfig, data: &[SymbolCandles]) -> Result<Report, String> {
    if cfg.strategies.is_empty() {
        return Err("no strategy to test".into());
    }
    if data.iter().all(|d| d.candles.is_empty()) {
        return Err("no candles to test on".into());
    }
    if !(cfg.balance.is_finite() && cfg.balance > 0.0) {
        return Err("the starting balance must be positive".into());
    }
    let keep = candles_to_keep(cfg.strategies.iter().map(|s| s.0.warmup()));
    let mut broker = Broker::new(cfg.broker.clone());
    let mut books: Vec<Book> = data
        .iter()
        .map(|_| Book {
            working: None,
            open: None,
        })
        .collect();
    let mut next = vec![0usize; data.len()];
    let mut trades = Vec::new();
    let mut equity: Vec<(u64, f64)> = Vec::new();
    let mut t = Totals {
        start_ms: u64::MAX,
        end_ms: 0,
        candles: 0,
        signals: 0,
        orders: 0,
        fills: 0,
        trades: 0,
        win_pct: 0.0,
        pnl: 0.0,
        fees: 0.0,
        return_pct: 0.0,
        final_equity: cfg.balance,
        max_drawdown: 0.0,
        max_drawdown_pct: 0.0,
        drawdown_peak_ms: 0,
        drawdown_trough_ms: 0,
        sharpe: None,
        sortino: None,
        profit_factor: None,
        exposure_pct: 0.0,
        faults: 0,
        refused: 0,
        kill_switch: None,
    };
    let mut marks: Vec<Option<Dec>> = vec![None; data.len()];
    let (mut peak, mut peak_ms) = (cfg.balance, 0u64);
    let mut exposed = 0u64;
    let mut steps = 0u64;
    let mut scratch = Vec::new();
    let mut said: Vec<Signal> = Vec::new();
    let mut seq = 0u64;
    // The earliest candle not yet seen, over every symbol.
    while let Some(now) = data
        .iter()
        .zip(&next)
        .filter_map(|(d, &i)| d.candles.get(i).map(|c| c.start_ms))
        .min()
    {
        for (k, d) in data.iter().enumerate() {
            let i = next[k];
            let Some(c) = d.candles.get(i).filter(|c| c.start_ms == now) else {
                continue;
            };
            next[k] += 1;
            t.candles += 1;
            let close_ms = now + cfg.interval_ms;
            t.start_ms = t.start_ms.min(now);
            t.end_ms = t.end_ms.max(close_ms);
            // The order placed at the last close meets this candle.
            if let Some(w) = books[k].working.take() {
                match fill_price(&w, c, cfg.broker.slippage_bps) {
                    Some(px) => {
                        let fill = Fill {
                            client_order_id: w.link.clone(),
                            symbol: d.symbol.clone(),
                            side: w.side,
                            px,
                            qty: w.qty,
                            fee: fee(px, w.qty, cfg.broker.fee_bps),
                            ts_ms: now,
                        };
                        t.fills += 1;
                        apply(&mut broker, &mut books[k], &fill, &w.strategy, &mut trades);
                    }
                    None if matches!(w.tif, Some(TimeInForce::Gtc | TimeInForce::PostOnly)) => {
                        books[k].working = Some(w);
                    }
                    None => {}
                }
            }
            let Some(close) = Dec::from_f64(c.close).filter(|p| *p > Dec::ZERO) else {
                continue;
            };
            marks[k] = Some(close);
            let lo = (i + 1).saturating_sub(keep);
            let level = [Level {
                px: close,
                qty: Dec::MAX,
            }];
            let pos = broker.position(&d.symbol).cloned().unwrap_or_default();
            let open: Vec<OpenOrder> = books[k]
                .working
                .iter()
                .map(|w| OpenOrder {
                    order_link_id: w.link.clone(),
                    side: w.side,
                    qty: w.qty,
                    filled: Dec::ZERO,
                    price: w.limit,
                })
                .collect();
            let ctx = Context {
                symbol: &d.symbol,
                now_ms: close_ms,
                candles: &d.candles[lo..=i],
                forming: None,
                bids: &level,
                asks: &level,
                trades: &[],
                position: pos.qty,
                entry_price: pos.avg_entry,
                open_orders: &open,
            };
            for s in &cfg.strategies {
                if i + 1 < s.0.warmup() {
                    continue;
                }
                said.clear();
                match evaluate_one(
                    s.0.as_ref(),
                    &ctx,
                    cfg.confidence_min,
                    &mut scratch,
                    &mut said,
                ) {
                    Ok(_) => {}
                    Err(_) => {
                        t.faults += 1;
                        continue;
                    }
                }
                t.signals += said.len() as u64;
                // As live: a strategy's views on one symbol are netted (the strongest decides).
                let views: Vec<Signal> = said
                    .iter()
                    .filter(|x| matches!(x.action, Action::Signal { .. }))
                    .cloned()
                    .collect();
                let decided = crate::engine::trading::decide(&views);
                for x in decided.iter().chain(
                    said.iter()
                        .filter(|x| !matches!(x.action, Action::Signal { .. })),
                ) {
                    if x.action == Action::Cancel {
                        books[k].working = None;
                        continue;
                    }
                    if books[k].working.is_some() {
                        continue;
                    }
                    match order_for(&broker, x, close, d.qty_step) {
                        Some(Ok(mut w)) => {
                            if w.tif == Some(TimeInForce::PostOnly)
                                && w.limit.is_some_and(|p| match w.side {
                                    SignalSide::Buy => p >= close,
                                    SignalSide::Sell => p <= close,
                                })
                            {
                                t.refused += 1;
                                continue;
                            }
                            w.link = format!("bt-{seq}");
                            seq += 1;
                            t.orders += 1;
                            books[k].working = Some(w);
                        }
                        Some(Err(_)) => t.refused += 1,
                        None => {}
                    }
                }
            }
        }
        // Everything at `now` has closed: the kill switch, then the equity.
        let symbols: Vec<&str> = data.iter().map(|d| d.symbol.as_str()).collect();
        let mark = |s: &str| symbols.iter().position(|x| *x == s).and_then(|k| marks[k]);
        let close_ms = now + cfg.interval_ms;
        if let Some(reason) = broker.check_risk(close_ms, &mark) {
            t.kill_switch.get_or_insert(reason);
            for b in &mut books {
                b.working = None;
            }
        }
        let e = equity_now(&broker, cfg.balance, &mark);
        steps += 1;
        if broker.positions().any(|p| !p.qty.is_zero()) {
            exposed += 1;
        }
        if e > peak || equity.is_empty() {
            // The starting balance is the first peak, dated at the first close.
            (peak, peak_ms) = (e.max(peak), close_ms);
        }
        if peak - e > t.max_drawdown {
            t.max_drawdown = peak - e;
            t.max_drawdown_pct = (peak - e) / peak * 100.0;
            t.drawdown_peak_ms = peak_ms;
            t.drawdown_trough_ms = close_ms;
        }
        equity.push((close_ms, e));
    }
    let symbols: Vec<&str> = data.iter().map(|d| d.symbol.as_str()).collect();
    let mark = |s: &str| symbols.iter().position(|x| *x == s).and_then(|k| marks[k]);
    t.final_equity = equity_now(&broker, cfg.balance, &mark);
    t.pnl = t.final_equity - cfg.balance;
    t.return_pct = t.pnl / cfg.balance * 100.0;
    t.fees = broker.positions().map(|p| p.fees.to_f64()).sum();
    t.exposure_pct = exposed as f64 / steps.max(1) as f64 * 100.0;
    t.trades = trades.len() as u64;
    let wins = trades.iter().filter(|x: &&TradeRecord| x.pnl > 0.0).count();
    t.win_pct = pct(wins as u64, t.trades);
    let gross_win: f64 = trades.iter().map(|x| x.pnl.max(0.0)).sum();
    let gross_loss: f64 = trades.iter().map(|x| (-x.pnl).max(0.0)).sum();
    t.profit_factor = (gross_loss > 0.0).then(|| gross_win / gross_loss);
    (t.sharpe, t.sortino) = ratios(&daily_returns(&equity, cfg.balance));
    let per_symbol = data
        .iter()
        .map(|d| {
            let mine: Vec<&TradeRecord> = trades.iter().filter(|x| x.symbol == d.symbol).collect();
            let n = mine.len() as u64;
            let wins = mine.iter().filter(|x| x.pnl > 0.0).count() as u64;
            SymbolReport {
                symbol: d.symbol.clone(),
                candles: d.candles.len() as u64,
                trades: n,
                wins,
                win_pct: pct(wins, n),
                pnl: mine.iter().map(|x| x.pnl).sum(),
                fees: broker.position(&d.symbol).map_or(0.0, |p| p.fees.to_f64()),
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
    Ok(Report {
        symbols: per_symbol,
        totals: t,
        trades,
        equity: thin(&equity, EQUITY_POINTS_MAX),
    })
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

fn fee(px: Dec, qty: Dec, fee_bps: f64) -> Dec {
    Dec::from_f64(px.to_f64() * qty.to_f64() * fee_bps / 10_000.0).unwrap_or(Dec::ZERO)
}

/// Where `w` fills on candle `c`, if it does.
fn fill_price(w: &Working, c: &Candle, slippage_bps: f64) -> Option<Dec> {
    let moved = |px: f64| match w.side {
        SignalSide::Buy => px * (1.0 + slippage_bps / 10_000.0),
        SignalSide::Sell => px * (1.0 - slippage_bps / 10_000.0),
    };
    let px = match (w.limit, w.side) {
        (None, _) => moved(c.open),
        (Some(p), SignalSide::Buy) => {
            let p = p.to_f64();
            if c.open <= p {
                c.open
            } else if c.low <= p {
                p
            } else {
                return None;
            }
        }
        (Some(p), SignalSide::Sell) => {
            let p = p.to_f64();
            if c.open >= p {
                c.open
            } else if c.high >= p {
                p
            } else {
                return None;
            }
        }
    };
    Dec::from_f64(px).filter(|p| *p > Dec::ZERO)
}

/// The order a signal asks for, sized and checked by the broker as live; `None` when there is
/// nothing to do.
fn order_for(
    broker: &Broker,
    s: &Signal,
    close: Dec,
    step: Option<Dec>,
) -> Option<Result<Working, String>> {
    let sized = broker.size_action(&s.symbol, &s.action, close, close, step)?;
    Some(sized.verdict.map(|()| Working {
        side: sized.side,
        qty: sized.qty,
        limit: sized.price,
        tif: sized.tif,
        strategy: s.strategy.clone(),
        link: String::new(),
    }))
}

/// Applies a fill and keeps the trade list: a position leaving flat opens a trade, one
/// reaching flat (or flipping) closes it.
fn apply(
    broker: &mut Broker,
    book: &mut Book,
    fill: &Fill,
    strategy: &str,
    trades: &mut Vec<TradeRecord>,
) {
    let net = |b: &Broker| {
        b.position(&fill.symbol).map_or((0.0, 0.0, 0.0), |p| {
            (
                p.qty.to_f64(),
                p.realized_pnl.to_f64() - p.fees.to_f64(),
                p.fees.to_f64(),
            )
        })
    };
    let (q0, base0, fees0) = net(broker);
    broker.apply_fill(fill);
    let (q1, base1, fees1) = net(broker);
    let px = fill.px.to_f64();
    if let Some(o) = book.open.as_mut() {
        o.qty_max = o.qty_max.max(q1.abs());
    }
    let closed = q0 != 0.0 && (q1 == 0.0 || q0.signum() != q1.signum());
    if closed && let Some(o) = book.open.take() {
        trades.push(TradeRecord {
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
        // A new trade: from flat its entry fee is its own; after a flip it went to the last.
        let (base, fees_base) = if closed {
            (base1, fees1)
        } else {
            (base0, fees0)
        };
        book.open = Some(OpenTrade {
            strategy: strategy.to_string(),
            entry_ms: fill.ts_ms,
            entry_price: px,
            base,
            fees_base,
            qty_max: q1.abs(),
        });
    }
}

fn equity_now(broker: &Broker, balance: f64, mark: &dyn Fn(&str) -> Option<Dec>) -> f64 {
    balance
        + broker
            .positions()
            .map(|p| {
                p.realized_pnl.to_f64() - p.fees.to_f64()
                    + mark(&p.symbol).map_or(0.0, |m| p.unrealized(m).to_f64())
            })
            .sum::<f64>()
}

/// Each day's return, from the last equity of each UTC day (the first day from the balance).
fn daily_returns(equity: &[(u64, f64)], balance: f64) -> Vec<f64> {
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
        .map(|e| {
            let r = e / prev - 1.0;
            prev = e;
            r
        })
        .collect()
}

/// (Sharpe, Sortino), annualised over 365 days with no risk-free rate.
fn ratios(r: &[f64]) -> (Option<f64>, Option<f64>) {
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
fn thin(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
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

#[cfg(test)]
mod tests;
