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
//! - the daily loss limit trips the kill switch as live, and so does spent equity (a venue
//!   refuses what the account cannot margin): every later order is refused.
//!
//! A trade is a position from flat (or a flip) back to flat (or the next flip); a flip's fee is
//! counted in the trade it closes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::decimal::{Dec, Level};
use crate::engine::trading::candles_to_keep;
use crate::trading::broker::{Broker, BrokerConfig, Fill, Refusal};

mod ledger;

use crate::trading::strategy::{
    Action, Candle, Context, Intent, OpenOrder, SharedStrategy, SignalSide, Strategy, TimeInForce,
    evaluate_intents, evaluate_intents_mut,
};
pub use ledger::Ledger;
#[cfg(test)]
use ledger::{daily_returns, ratios, thin};

/// One UTC day, the period of the Sharpe and Sortino ratios.
pub(crate) const DAY_MS: u64 = 86_400_000;
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

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
    /// Which of the configured strategies placed it.
    strategy: usize,
    /// Its orderLinkId is `bt-<seq>`, written out only where something reads it.
    seq: u64,
}

/// A strategy as the loop calls it.
enum Callee<'a> {
    Alone(&'a mut dyn Strategy),
    Shared(&'a dyn Strategy),
}

impl Callee<'_> {
    fn get(&self) -> &dyn Strategy {
        match self {
            Callee::Alone(s) => &**s,
            Callee::Shared(s) => *s,
        }
    }
}

/// A symbol's position as the broker last left it, in both forms the loop reads.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    qty: Dec,
    entry: Dec,
    qty_f64: f64,
    entry_f64: f64,
}

impl Held {
    /// The broker's position in `symbol` (flat when it holds none).
    fn of(broker: &Broker, symbol: &str) -> Held {
        broker.position(symbol).map_or(Held::default(), |p| Held {
            qty: p.qty,
            entry: p.avg_entry,
            qty_f64: p.qty.to_f64(),
            entry_f64: p.avg_entry.to_f64(),
        })
    }
}

/// The open positions' PnL at their marks.
fn open_pnl(held: &[Held], marks: &[Option<(Dec, f64)>]) -> f64 {
    held.iter()
        .zip(marks)
        .filter(|(h, _)| h.qty_f64 != 0.0)
        .filter_map(|(h, m)| m.map(|(_, px)| (px - h.entry_f64) * h.qty_f64))
        .sum()
}

struct Book {
    working: Option<Working>,
}

/// Runs the backtest. `Err` names what cannot be run (no strategy, no candles). A strategy the
/// configuration holds the only reference to is called through
/// [`crate::trading::strategy::Strategy::evaluate_mut`] (the
/// built-ins then reach their indicators without a lock); a shared one through `evaluate`:
/// the report is the same.
pub fn run(mut cfg: BacktestConfig, data: &[SymbolCandles]) -> Result<Report, String> {
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
    // Which strategies the configuration holds alone, asked once: `Arc::get_mut` is an atomic
    // operation, as dear as the lock it would save if asked at every call.
    let alone: Vec<bool> = cfg
        .strategies
        .iter_mut()
        .map(|s| std::sync::Arc::get_mut(&mut s.0).is_some())
        .collect();
    let mut callees: Vec<Callee<'_>> = Vec::with_capacity(alone.len());
    for (s, alone) in cfg.strategies.iter_mut().zip(alone) {
        callees.push(if alone {
            Callee::Alone(std::sync::Arc::get_mut(&mut s.0).ok_or("a strategy is shared")?)
        } else {
            Callee::Shared(s.0.as_ref())
        });
    }
    let mut ledger = Ledger::new(cfg.broker.clone(), cfg.balance);
    ledger.reserve_samples(data.iter().map(|d| d.candles.len()).max().unwrap_or(0));
    let mut books: Vec<Book> = data.iter().map(|_| Book { working: None }).collect();
    let mut next = vec![0usize; data.len()];
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
    // Per symbol: the mark (the last close) in both forms, and the position's size and entry,
    // refreshed at each fill: the open PnL at every step is then a few multiplications, not a
    // decimal walk of the broker's positions.
    let mut marks: Vec<Option<(Dec, f64)>> = vec![None; data.len()];
    let mut held = vec![Held::default(); data.len()];
    let mut names: Vec<String> = data.iter().map(|d| d.symbol.clone()).collect();
    let mut link = String::new();
    // Per symbol, each strategy's latest view.
    let mut views: Vec<Vec<Option<Action>>> = vec![vec![None; callees.len()]; data.len()];
    let symbols: Vec<&str> = data.iter().map(|d| d.symbol.as_str()).collect();
    let mut said: Vec<Intent> = Vec::new();
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
            // Taken only when there is one: writing `None` back over `None` at every candle made
            // the next read of it wait on the store (10 % of a run in perf, session 10).
            if books[k].working.is_some()
                && let Some(w) = books[k].working.take()
            {
                match fill_price(&w, c, cfg.broker.slippage_bps) {
                    Some(px) => {
                        // The fill's strings are the loop's own buffers, lent and taken back
                        // (an order made five small allocations; 2 % of a backtest).
                        link.clear();
                        let _ = write!(link, "bt-{}", w.seq);
                        let fill = Fill {
                            client_order_id: std::mem::take(&mut link),
                            symbol: std::mem::take(&mut names[k]),
                            side: w.side,
                            px,
                            qty: w.qty,
                            fee: fee(px, w.qty, cfg.broker.fee_bps),
                            ts_ms: now,
                        };
                        ledger.fill(&fill, callees[w.strategy].get().name());
                        (link, names[k]) = (fill.client_order_id, fill.symbol);
                        held[k] = Held::of(ledger.broker(), &d.symbol);
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
            marks[k] = Some((close, c.close));
            let lo = (i + 1).saturating_sub(keep);
            let level = [Level {
                px: close,
                qty: Dec::MAX,
            }];
            let Held {
                qty: position,
                entry: entry_price,
                ..
            } = held[k];
            let open: Vec<OpenOrder> = books[k]
                .working
                .iter()
                .map(|w| OpenOrder {
                    order_link_id: format!("bt-{}", w.seq),
                    side: w.side,
                    qty: w.qty,
                    filled: Dec::ZERO,
                    price: w.limit,
                })
                .collect();
            let ctx = Context {
                symbol: &d.symbol,
                symbol_index: k,
                now_ms: close_ms,
                candles: &d.candles[lo..=i],
                forming: None,
                bids: &level,
                asks: &level,
                trades: &[],
                position,
                entry_price,
                open_orders: &open,
            };
            for (j, s) in callees.iter_mut().enumerate() {
                if i + 1 < s.get().warmup() {
                    continue;
                }
                let called = match s {
                    Callee::Alone(s) => {
                        evaluate_intents_mut(*s, &ctx, cfg.confidence_min, &mut said)
                    }
                    Callee::Shared(s) => evaluate_intents(*s, &ctx, cfg.confidence_min, &mut said),
                };
                if called.is_err() {
                    t.faults += 1;
                    // A failed call withdraws the strategy's views, as live.
                    for v in &mut views {
                        v[j] = None;
                    }
                    continue;
                }
                t.signals += said.len() as u64;
                // As live (`engine::trading`): the strategy's strongest view of the symbol
                // replaces its last one, and the decision is the strongest of every strategy's
                // latest view (the first of equals), acted on before its other actions.
                let view = |x: &&Intent| x.action.is_view();
                views[k][j] = strongest(said.iter().filter(view).map(|x| ((), &x.action)))
                    .map(|(_, a)| a.clone());
                let decided = if views[k][j].is_some() {
                    let all = views[k].iter().enumerate();
                    strongest(all.filter_map(|(o, v)| v.as_ref().map(|a| (o, a))))
                } else {
                    None
                };
                let exact = said.iter().filter(|x| !view(x)).map(|x| (j, &x.action));
                for (owner, action) in decided.into_iter().chain(exact) {
                    if *action == Action::Cancel {
                        books[k].working = None;
                        continue;
                    }
                    if books[k].working.is_some() {
                        continue;
                    }
                    match order_for(ledger.broker(), &d.symbol, action, close, d.qty_step, owner) {
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
                            w.seq = seq;
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
        let close_ms = now + cfg.interval_ms;
        let mut unrealized = open_pnl(&held, &marks);
        let mut tripped = ledger.broker_mut().check_loss(close_ms, unrealized);
        // A venue refuses orders the account cannot margin: past zero equity there is nothing
        // left to trade with, however slowly it bled (the daily loss limit catches fast losses).
        let equity = ledger.equity_at(unrealized);
        // Asked before the reason is written: once spent, the equity stays so, and formatting
        // it at every later step was 1.5 % of a run.
        if tripped.is_none() && equity <= 0.0 && ledger.broker().killed().is_none() {
            tripped = ledger.broker_mut().trip(format!(
                "equity exhausted ({equity:.2}): trading stopped, positions closed at the close"
            ));
            // And closes what it holds, as a venue liquidates an account with nothing left:
            // left open, the positions went on moving the equity of an account that had none,
            // and the daily returns with it.
            for (k, d) in data.iter().enumerate() {
                let (Some((_, px)), h) = (marks[k], held[k]) else {
                    continue;
                };
                if h.qty.is_zero() {
                    continue;
                }
                let side = if h.qty.is_negative() {
                    SignalSide::Buy
                } else {
                    SignalSide::Sell
                };
                let Some(px) = Dec::from_f64(slipped(px, side, cfg.broker.slippage_bps))
                    .filter(|p| *p > Dec::ZERO)
                else {
                    continue;
                };
                let qty = Dec::from_raw(h.qty.raw().saturating_abs());
                let fill = Fill {
                    client_order_id: "bt-liquidation".into(),
                    symbol: d.symbol.clone(),
                    side,
                    px,
                    qty,
                    fee: fee(px, qty, cfg.broker.fee_bps),
                    ts_ms: close_ms,
                };
                ledger.fill(&fill, "liquidation");
                held[k] = Held::of(ledger.broker(), &d.symbol);
            }
            // Zero once every position closed; what a mark could not price stays open.
            unrealized = open_pnl(&held, &marks);
        }
        if let Some(reason) = tripped {
            t.kill_switch.get_or_insert(reason);
            for b in &mut books {
                b.working = None;
            }
        }
        ledger.sample_at(close_ms, unrealized);
    }
    let mark = |s: &str| {
        let k = symbols.iter().position(|x| *x == s)?;
        marks[k].map(|(d, _)| d)
    };
    let listed: Vec<(String, u64)> = data
        .iter()
        .map(|d| (d.symbol.clone(), d.candles.len() as u64))
        .collect();
    Ok(ledger.finish(t, &listed, &mark))
}

/// The strongest of `views` with what it is tagged with, the first of equals.
fn strongest<'a, T>(views: impl Iterator<Item = (T, &'a Action)>) -> Option<(T, &'a Action)> {
    views.reduce(|top, x| {
        if x.1.confidence() > top.1.confidence() {
            x
        } else {
            top
        }
    })
}

fn fee(px: Dec, qty: Dec, fee_bps: f64) -> Dec {
    Dec::from_f64(px.to_f64() * qty.to_f64() * fee_bps / 10_000.0).unwrap_or(Dec::ZERO)
}

/// `px` moved against a market order's `side` by the slippage.
fn slipped(px: f64, side: SignalSide, slippage_bps: f64) -> f64 {
    match side {
        SignalSide::Buy => px * (1.0 + slippage_bps / 10_000.0),
        SignalSide::Sell => px * (1.0 - slippage_bps / 10_000.0),
    }
}

/// Where `w` fills on candle `c`, if it does.
fn fill_price(w: &Working, c: &Candle, slippage_bps: f64) -> Option<Dec> {
    let px = match (w.limit, w.side) {
        (None, _) => slipped(c.open, w.side, slippage_bps),
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
    symbol: &str,
    action: &Action,
    close: Dec,
    step: Option<Dec>,
    strategy: usize,
) -> Option<Result<Working, Refusal>> {
    let steps = crate::trading::broker::Steps {
        qty: step,
        ..Default::default()
    };
    let sized = broker.size_action(symbol, action, close, close, steps)?;
    Some(sized.verdict.map(|()| Working {
        side: sized.side,
        qty: sized.qty,
        limit: sized.price,
        tif: sized.tif,
        strategy,
        seq: 0,
    }))
}

#[cfg(test)]
mod tests;
