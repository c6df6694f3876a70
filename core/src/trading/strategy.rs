//! The strategy API: what a strategy sees of one symbol (a [`Context`]) and what it may ask for
//! (an [`Intent`]). A strategy is a function of its context: the engine calls it off the event
//! loop, once per symbol per cycle, on the compute pool, and acts on its intents through the
//! same broker checks and order machine as every other order. Indicator arithmetic is in f64:
//! it decides, it never prices or sizes; quantities and prices of orders are exact decimals.
//!
//! A strategy is isolated from the engine and from the other strategies: a panic is caught and
//! counted, a call past its deadline is discarded and counted, and one that keeps failing is
//! disabled with the reason in `/health`. See `engine/trading/slots.rs`.

mod builtin;
mod reason;
mod switch;

use std::sync::Arc;

pub use builtin::*;
pub use reason::{REASON_VALUES_MAX, Reason, ReasonFn};

use crate::decimal::{Dec, Level};
use crate::wire::frame::Bar;
pub use crate::wire::private::TimeInForce;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SignalSide {
    Buy,
    Sell,
}

impl From<SignalSide> for crate::wire::private::Side {
    fn from(s: SignalSide) -> Self {
        match s {
            SignalSide::Buy => Self::Buy,
            SignalSide::Sell => Self::Sell,
        }
    }
}

impl From<crate::wire::private::Side> for SignalSide {
    fn from(s: crate::wire::private::Side) -> Self {
        match s {
            crate::wire::private::Side::Buy => Self::Buy,
            crate::wire::private::Side::Sell => Self::Sell,
        }
    }
}

impl From<crate::wire::frame::Side> for SignalSide {
    fn from(s: crate::wire::frame::Side) -> Self {
        match s {
            crate::wire::frame::Side::Buy => Self::Buy,
            crate::wire::frame::Side::Sell => Self::Sell,
        }
    }
}

/// A candle as a strategy sees it: open, high, low, close, volume and turnover as f64.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Candle {
    pub start_ms: u64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub turnover: f64,
}

impl From<&Bar> for Candle {
    fn from(b: &Bar) -> Self {
        Candle {
            start_ms: b.start_ms,
            open: b.open.to_f64(),
            high: b.high.to_f64(),
            low: b.low.to_f64(),
            close: b.close.to_f64(),
            volume: b.volume.to_f64(),
            turnover: b.turnover.to_f64(),
        }
    }
}

/// One public trade.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Trade {
    pub ts_ms: u64,
    /// The taker's side.
    pub side: SignalSide,
    pub price: f64,
    pub qty: f64,
}

/// One of the symbol's orders that is still working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub order_link_id: String,
    pub side: SignalSide,
    pub qty: Dec,
    pub filled: Dec,
    /// `None` for a market order.
    pub price: Option<Dec>,
}

/// What a strategy asks for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A view: the engine sizes it (a buy aims at a long of one order's notional, a sell at a
    /// short) and acts when `confidence` clears the configured minimum.
    Signal { side: SignalSide, confidence: f64 },
    /// This exact market order.
    Market { side: SignalSide, qty: Dec },
    /// This exact limit order.
    Limit {
        side: SignalSide,
        qty: Dec,
        price: Dec,
        tif: TimeInForce,
    },
    /// Bring the position to `qty` (negative is short) with a market order.
    Target { qty: Dec },
    /// Cancel the symbol's working orders.
    Cancel,
}

impl Action {
    /// A view (sized by the engine and netted with others), not an exact instruction.
    pub fn is_view(&self) -> bool {
        matches!(self, Action::Signal { .. })
    }

    /// A view's confidence; an exact order, a target and a cancel are meant fully (1).
    pub fn confidence(&self) -> f64 {
        match *self {
            Action::Signal { confidence, .. } => confidence,
            _ => 1.0,
        }
    }
}

/// An action and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub action: Action,
    pub reason: Reason,
}

impl Intent {
    pub fn signal(side: SignalSide, confidence: f64, reason: impl Into<Reason>) -> Intent {
        Intent {
            action: Action::Signal { side, confidence },
            reason: reason.into(),
        }
    }

    pub fn market(side: SignalSide, qty: Dec, reason: impl Into<Reason>) -> Intent {
        Intent {
            action: Action::Market { side, qty },
            reason: reason.into(),
        }
    }

    pub fn limit(
        side: SignalSide,
        qty: Dec,
        price: Dec,
        tif: TimeInForce,
        reason: impl Into<Reason>,
    ) -> Intent {
        Intent {
            action: Action::Limit {
                side,
                qty,
                price,
                tif,
            },
            reason: reason.into(),
        }
    }

    pub fn target(qty: Dec, reason: impl Into<Reason>) -> Intent {
        Intent {
            action: Action::Target { qty },
            reason: reason.into(),
        }
    }

    pub fn cancel(reason: impl Into<Reason>) -> Intent {
        Intent {
            action: Action::Cancel,
            reason: reason.into(),
        }
    }
}

/// Everything a strategy sees of one symbol in one cycle. Candles are the engine's own,
/// shared with the cycle (no copy per cycle).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub symbol: &'a str,
    /// The engine's index of `symbol`, the same at every call of one run: a strategy may keep
    /// per-symbol state in a slot by it instead of looking the name up. The same index may
    /// name another symbol in another run (check the name), and tests may leave it 0.
    pub symbol_index: usize,
    /// The wall-clock time of the cycle, ms.
    pub now_ms: u64,
    /// Closed candles, oldest first: at least the strategy's warm-up once history is loaded.
    pub candles: &'a [Candle],
    /// The candle still forming, if any: its values may change.
    pub forming: Option<&'a Candle>,
    /// The top levels of the synced book, best first.
    pub bids: &'a [Level],
    pub asks: &'a [Level],
    /// Recent public trades, oldest first.
    pub trades: &'a [Trade],
    /// The position: negative is short.
    pub position: Dec,
    pub entry_price: Dec,
    pub open_orders: &'a [OpenOrder],
}

impl<'a> Context<'a> {
    /// A symbol's candles and nothing else (no book, trades, position or orders): where a
    /// strategy's tests start.
    pub fn of_candles(
        symbol: &'a str,
        candles: &'a [Candle],
        forming: Option<&'a Candle>,
    ) -> Context<'a> {
        Context {
            symbol,
            symbol_index: 0,
            now_ms: 0,
            candles,
            forming,
            bids: &[],
            asks: &[],
            trades: &[],
            position: Dec::ZERO,
            entry_price: Dec::ZERO,
            open_orders: &[],
        }
    }

    /// The latest price: the forming candle's close, else the last closed candle's.
    pub fn last(&self) -> Option<f64> {
        self.forming.or(self.candles.last()).map(|c| c.close)
    }

    /// The mid of the book's best levels.
    pub fn mid(&self) -> Option<f64> {
        let (b, a) = (self.bids.first()?, self.asks.first()?);
        Some((b.px.to_f64() + a.px.to_f64()) / 2.0)
    }
}

/// A user's trading logic. `evaluate` must be a function of its context (the engine may call
/// it for several symbols at once from several threads); it pushes what it wants into `out`.
pub trait Strategy: Send + Sync + 'static {
    /// A short name: in /health, the store and every signal.
    fn name(&self) -> &str;
    /// Closed candles needed before the strategy has anything to say; the engine keeps at least
    /// this many.
    fn warmup(&self) -> usize {
        0
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>);
    /// What `evaluate` does, called instead when the caller holds the only reference to the
    /// strategy (a backtest that made it): a strategy keeping state behind a lock may reach it
    /// without locking (`Mutex::get_mut`). It must say exactly what `evaluate` would.
    fn evaluate_mut(&mut self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        self.evaluate(ctx, out)
    }
}

/// A strategy shared with the compute pool. Equal when it is the same strategy object.
#[derive(Clone)]
pub struct SharedStrategy(pub Arc<dyn Strategy>);

impl SharedStrategy {
    pub fn new(s: impl Strategy) -> Self {
        SharedStrategy(Arc::new(s))
    }
}

impl PartialEq for SharedStrategy {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl std::fmt::Debug for SharedStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Strategy({})", self.0.name())
    }
}

/// What one symbol's context is built from, owned so it can cross to the compute pool.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolInput {
    pub symbol: String,
    /// [`Context::symbol_index`].
    pub symbol_index: usize,
    pub now_ms: u64,
    /// The engine's window of closed candles for the symbol, shared, not copied.
    pub candles: Arc<Vec<Candle>>,
    pub forming: Option<Candle>,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub trades: Vec<Trade>,
    pub position: Dec,
    pub entry_price: Dec,
    pub open_orders: Vec<OpenOrder>,
}

impl SymbolInput {
    /// A symbol with one-minute candles at these closes (open, high and low the same) and
    /// nothing else: no book, trades, position or orders. Where a strategy's tests start.
    pub fn from_closes(symbol: impl Into<String>, closes: &[f64]) -> SymbolInput {
        SymbolInput {
            symbol: symbol.into(),
            symbol_index: 0,
            now_ms: 0,
            candles: Arc::new(
                closes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| Candle {
                        start_ms: i as u64 * 60_000,
                        open: c,
                        high: c,
                        low: c,
                        close: c,
                        ..Candle::default()
                    })
                    .collect(),
            ),
            forming: None,
            bids: Vec::new(),
            asks: Vec::new(),
            trades: Vec::new(),
            position: Dec::ZERO,
            entry_price: Dec::ZERO,
            open_orders: Vec::new(),
        }
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            symbol: &self.symbol,
            symbol_index: self.symbol_index,
            now_ms: self.now_ms,
            candles: &self.candles,
            forming: self.forming.as_ref(),
            bids: &self.bids,
            asks: &self.asks,
            trades: &self.trades,
            position: self.position,
            entry_price: self.entry_price,
            open_orders: &self.open_orders,
        }
    }
}

/// What a strategy said about a symbol, as recorded and acted on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signal {
    pub symbol: String,
    pub strategy: String,
    #[serde(flatten)]
    pub action: Action,
    pub reason: Reason,
    /// The start of the newest closed candle the strategy saw.
    pub candle_ms: u64,
}

impl Signal {
    /// The side it leans to: `None` for a target or a cancel.
    pub fn side(&self) -> Option<SignalSide> {
        match self.action {
            Action::Signal { side, .. }
            | Action::Market { side, .. }
            | Action::Limit { side, .. } => Some(side),
            Action::Target { .. } | Action::Cancel => None,
        }
    }

    /// A view's confidence; an exact order, a target and a cancel are meant fully (1).
    pub fn confidence(&self) -> f64 {
        self.action.confidence()
    }

    /// The side, or the kind of action when it has none, as the store and the page show it.
    pub fn label(&self) -> &'static str {
        match (self.side(), &self.action) {
            (Some(SignalSide::Buy), _) => "Buy",
            (Some(SignalSide::Sell), _) => "Sell",
            (None, Action::Target { .. }) => "Target",
            _ => "Cancel",
        }
    }
}

/// Why a strategy's call gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategyFault {
    Panicked(String),
}

impl std::fmt::Display for StrategyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StrategyFault::Panicked(m) => write!(f, "panicked: {m}"),
        }
    }
}

/// Calls `strategy` over every input, in input order, keeping what is well formed: a view whose
/// confidence is below `confidence_min` or not finite is dropped (`dropped` counts them, with
/// orders of no size or price). A panic anywhere ends the call with the panic's message.
pub fn evaluate_all(
    strategy: &dyn Strategy,
    inputs: &[SymbolInput],
    confidence_min: f64,
) -> Result<(Vec<Signal>, u64), StrategyFault> {
    let mut said = Vec::new();
    let mut scratch = Vec::new();
    let mut dropped = 0;
    for i in inputs {
        if i.candles.len() < strategy.warmup() {
            continue;
        }
        dropped += evaluate_one(
            strategy,
            &i.context(),
            confidence_min,
            &mut scratch,
            &mut said,
        )?;
    }
    Ok((said, dropped))
}

/// One call of `strategy` on one symbol: what it said goes to `said` (`scratch` is its buffer,
/// reused across calls); returns how many intents were dropped as malformed. A panic is caught.
pub fn evaluate_one(
    strategy: &dyn Strategy,
    ctx: &Context<'_>,
    confidence_min: f64,
    scratch: &mut Vec<Intent>,
    said: &mut Vec<Signal>,
) -> Result<u64, StrategyFault> {
    let dropped = evaluate_intents(strategy, ctx, confidence_min, scratch)?;
    let candle_ms = ctx.candles.last().map_or(0, |c| c.start_ms);
    said.extend(scratch.drain(..).map(|intent| Signal {
        symbol: ctx.symbol.to_string(),
        strategy: strategy.name().to_string(),
        action: intent.action,
        reason: intent.reason,
        candle_ms,
    }));
    Ok(dropped)
}

/// One call of `strategy` on one symbol, leaving in `out` (cleared first) the intents that are
/// well formed; returns how many were dropped. A panic is caught. What a backtest calls: it acts
/// on the intents without making a [`Signal`] record of each.
pub fn evaluate_intents(
    strategy: &dyn Strategy,
    ctx: &Context<'_>,
    confidence_min: f64,
    out: &mut Vec<Intent>,
) -> Result<u64, StrategyFault> {
    checked(confidence_min, out, |out| strategy.evaluate(ctx, out))
}

/// [`evaluate_intents`] through [`Strategy::evaluate_mut`], for a caller holding the only
/// reference to the strategy.
pub fn evaluate_intents_mut(
    strategy: &mut dyn Strategy,
    ctx: &Context<'_>,
    confidence_min: f64,
    out: &mut Vec<Intent>,
) -> Result<u64, StrategyFault> {
    checked(confidence_min, out, |out| strategy.evaluate_mut(ctx, out))
}

fn checked(
    confidence_min: f64,
    out: &mut Vec<Intent>,
    call: impl FnOnce(&mut Vec<Intent>),
) -> Result<u64, StrategyFault> {
    out.clear();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(out))).map_err(|p| {
        out.clear();
        StrategyFault::Panicked(
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into()),
        )
    })?;
    // Checked before `retain`, which costs a backtest 5 % even when it keeps everything.
    if out.iter().all(|i| well_formed(&i.action, confidence_min)) {
        return Ok(0);
    }
    let before = out.len();
    out.retain(|i| well_formed(&i.action, confidence_min));
    Ok((before - out.len()) as u64)
}

fn well_formed(a: &Action, confidence_min: f64) -> bool {
    match *a {
        Action::Signal { confidence, .. } => {
            confidence.is_finite() && (confidence_min..=1.0).contains(&confidence)
        }
        Action::Market { qty, .. } => qty > Dec::ZERO,
        Action::Limit { qty, price, .. } => qty > Dec::ZERO && price > Dec::ZERO,
        Action::Target { .. } | Action::Cancel => true,
    }
}

#[cfg(test)]
mod tests;
