//! The built-in strategies, written against the public API like any user's: an EMA crossover
//! and an RSI mean reversion, each a view with a confidence.
//!
//! Each comes twice: the parameters themselves are a strategy that recomputes its indicator over
//! the whole window on every call (the reference), and what a run uses ([`StrategyConfig::
//! strategies`]) carries each symbol's indicator from one call to the next, one step per new
//! candle: a backtest spent most of its time recomputing (BENCHMARKS.md, session 8). On the same
//! candles from the same start the two agree exactly (a property test checks it); once the
//! window slides they differ only by the weight left on the window's first candle:
//! (1 - 2/(slow + 1))^window for the EMA, at most e^-8 (3e-4) at four warm-ups and 5e-9 for the
//! default EMA 21 over the 200-candle floor.

use std::sync::Mutex;

use super::{Candle, Context, Intent, Reason, SharedStrategy, SignalSide, Strategy};

/// Symbols whose indicator state one strategy keeps, one slot each by the engine's symbol index;
/// symbols past it share slots (each then recomputes from its window when another used its slot).
pub const INDICATOR_SYMBOLS_MAX: usize = 10_000;

/// Longest period a built-in strategy may use: more candles than one REST page would never warm
/// up.
pub const STRATEGY_PERIOD_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaCross {
    pub fast: usize,
    pub slow: usize,
    /// The EMA gap, as a fraction of the slow EMA, that counts as full confidence.
    pub full_gap: f64,
}

impl Default for EmaCross {
    fn default() -> Self {
        EmaCross {
            fast: 9,
            slow: 21,
            full_gap: 0.002,
        }
    }
}

pub fn ema(values: impl Iterator<Item = f64>, period: usize) -> Option<f64> {
    let k = 2.0 / (period as f64 + 1.0);
    let mut e: Option<f64> = None;
    for v in values {
        e = Some(match e {
            None => v,
            Some(prev) => prev + k * (v - prev),
        });
    }
    e
}

/// Closes of the closed candles, then the forming candle's.
fn series<'a>(ctx: &'a Context<'_>) -> impl Iterator<Item = f64> + 'a {
    ctx.candles
        .iter()
        .map(|c| c.close)
        .chain(ctx.forming.map(|f| f.close))
}

impl Strategy for EmaCross {
    fn name(&self) -> &str {
        "ema_cross"
    }

    fn warmup(&self) -> usize {
        self.slow
    }

    /// The trend regime: fast above slow is a buy, below a sell, more confident the wider the gap.
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        if ctx.candles.len() < self.warmup() || self.fast == 0 || self.fast >= self.slow {
            return;
        }
        let (Some(fast), Some(slow)) = (ema(series(ctx), self.fast), ema(series(ctx), self.slow))
        else {
            return;
        };
        self.judge(fast, slow, out);
    }
}

impl EmaCross {
    fn valid(&self) -> bool {
        self.fast > 0 && self.fast < self.slow
    }

    fn judge(&self, fast: f64, slow: f64, out: &mut Vec<Intent>) {
        if slow <= 0.0 || !fast.is_finite() || !slow.is_finite() {
            return;
        }
        let side = if fast > slow {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        // The gap as a fraction of the slow EMA, over the full gap, in one division: the two
        // in a row were the longest wait of a backtest's EMA call (perf, session 10). The
        // reason works the gap out itself when it is shown.
        out.push(Intent::signal(
            side,
            ((fast - slow).abs() / (slow * self.full_gap)).min(1.0),
            Reason::lazy(
                |v, f| {
                    write!(
                        f,
                        "EMA{} {:.6} vs EMA{} {:.6} ({:+.4}%)",
                        v[0],
                        v[1],
                        v[2],
                        v[3],
                        (v[1] - v[3]) / v[3] * 100.0
                    )
                },
                [self.fast as f64, fast, self.slow as f64, slow],
            ),
        ));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsiReversion {
    pub period: usize,
    pub oversold: f64,
    pub overbought: f64,
}

impl Default for RsiReversion {
    fn default() -> Self {
        RsiReversion {
            period: 14,
            oversold: 30.0,
            overbought: 70.0,
        }
    }
}

/// 100 - 100 / (1 + gain / loss), written with one division instead of two in a row: three
/// dependent divisions were most of a backtest's RSI call (perf, session 10).
fn rsi_of(gain: f64, loss: f64) -> f64 {
    if loss == 0.0 {
        100.0
    } else {
        100.0 * gain / (gain + loss)
    }
}

/// Wilder's smoothing of the average gain and loss by one more change `d`. Times 1/n, not over
/// n: the reciprocal does not wait for the state, the division did (perf, session 10).
fn wilder_step(gain: f64, loss: f64, d: f64, period: usize) -> (f64, f64) {
    let n = period as f64;
    let inv = 1.0 / n;
    (
        (gain * (n - 1.0) + d.max(0.0)) * inv,
        (loss * (n - 1.0) + (-d).max(0.0)) * inv,
    )
}

/// Wilder's RSI over the series; `None` until `period + 1` values.
pub fn rsi(values: &[f64], period: usize) -> Option<f64> {
    if period == 0 || values.len() <= period {
        return None;
    }
    let (mut gain, mut loss) = (0.0, 0.0);
    for w in values[..=period].windows(2) {
        let d = w[1] - w[0];
        if d > 0.0 {
            gain += d;
        } else {
            loss -= d;
        }
    }
    let (mut avg_gain, mut avg_loss) = (gain / period as f64, loss / period as f64);
    for w in values[period..].windows(2) {
        (avg_gain, avg_loss) = wilder_step(avg_gain, avg_loss, w[1] - w[0], period);
    }
    Some(rsi_of(avg_gain, avg_loss))
}

impl Strategy for RsiReversion {
    fn name(&self) -> &str {
        "rsi_reversion"
    }

    fn warmup(&self) -> usize {
        self.period + 1
    }

    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        if ctx.candles.len() < self.warmup() {
            return;
        }
        let values: Vec<f64> = series(ctx).collect();
        if let Some(r) = rsi(&values, self.period) {
            self.judge(r, out);
        }
    }
}

impl RsiReversion {
    fn judge(&self, r: f64, out: &mut Vec<Intent>) {
        let (side, confidence) = if r <= self.oversold {
            (
                SignalSide::Buy,
                (self.oversold - r) / self.oversold.max(1e-9),
            )
        } else if r >= self.overbought {
            (
                SignalSide::Sell,
                (r - self.overbought) / (100.0 - self.overbought).max(1e-9),
            )
        } else {
            return;
        };
        out.push(Intent::signal(
            side,
            confidence.clamp(0.0, 1.0),
            Reason::lazy(
                |v, f| write!(f, "RSI{} {:.1}", v[0], v[1]),
                [self.period as f64, r],
            ),
        ));
    }
}

/// The configured strategies and the confidence a signal needs to be emitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    #[serde(with = "super::switch")]
    pub ema_cross: Option<EmaCross>,
    #[serde(with = "super::switch")]
    pub rsi_reversion: Option<RsiReversion>,
    pub confidence_min: f64,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig {
            ema_cross: Some(EmaCross::default()),
            rsi_reversion: Some(RsiReversion::default()),
            confidence_min: 0.3,
        }
    }
}

impl StrategyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(e) = &self.ema_cross
            && (e.fast == 0
                || e.fast >= e.slow
                || e.slow > STRATEGY_PERIOD_MAX
                || !e.full_gap.is_finite()
                || e.full_gap <= 0.0)
        {
            return Err("ema_cross needs 0 < fast < slow <= 1000 and full_gap > 0".into());
        }
        if let Some(r) = &self.rsi_reversion
            && (r.period == 0
                || r.period > STRATEGY_PERIOD_MAX
                || !(0.0..r.overbought).contains(&r.oversold)
                || r.overbought > 100.0)
        {
            return Err(
                "rsi_reversion needs 0 < period <= 1000 and 0 <= oversold < overbought <= 100"
                    .into(),
            );
        }
        if !(0.0..=1.0).contains(&self.confidence_min) {
            return Err("confidence_min must be in [0, 1]".into());
        }
        Ok(())
    }

    /// The configured built-ins, each keeping its indicators between calls.
    pub fn strategies(&self) -> Vec<SharedStrategy> {
        let mut v = Vec::new();
        if let Some(e) = self.ema_cross {
            v.push(SharedStrategy::new(Stepping::new(e)));
        }
        if let Some(r) = self.rsi_reversion {
            v.push(SharedStrategy::new(Stepping::new(r)));
        }
        v
    }
}

/// An indicator that advances one closed candle at a time.
pub trait Indicator: Send + Sync + 'static {
    type State: Copy + Send;
    /// The state after `candles`, from scratch.
    fn start(&self, candles: &[Candle]) -> Option<Self::State>;
    /// The state after one more closed candle.
    fn step(&self, s: Self::State, c: &Candle) -> Self::State;
}

/// A built-in run with its indicator carried per symbol: a call with one new closed candle
/// steps it once; anything else (the first call, a gap, a rewritten history) starts it again
/// from the window.
pub struct Stepping<P: Indicator> {
    params: P,
    /// By [`Context::symbol_index`]: a slot, where a map by name cost a hash, a probe and a
    /// `memcmp` at every call (12 % of a backtest; perf, session 10). The name is kept to check
    /// the slot is the symbol's: an index names another symbol in another run.
    states: Mutex<Vec<Option<Slot<P::State>>>>,
}

struct Slot<S> {
    symbol: Box<str>,
    /// The start of the last closed candle the state took in.
    at: u64,
    state: S,
}

impl<P: Indicator> Stepping<P> {
    pub fn new(params: P) -> Self {
        Stepping {
            params,
            states: Mutex::new(Vec::new()),
        }
    }

    /// The state after the context's closed candles and its forming candle.
    fn state(&self, ctx: &Context<'_>) -> Option<P::State> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        Self::state_in(&self.params, &mut states, ctx)
    }

    /// The same with the states in hand (no lock: the caller holds the strategy alone).
    fn state_mut(&mut self, ctx: &Context<'_>) -> Option<P::State> {
        let states = self.states.get_mut().unwrap_or_else(|p| p.into_inner());
        Self::state_in(&self.params, states, ctx)
    }

    fn state_in(
        params: &P,
        states: &mut Vec<Option<Slot<P::State>>>,
        ctx: &Context<'_>,
    ) -> Option<P::State> {
        let candles = ctx.candles;
        let last = candles.last()?;
        let before = candles.len().checked_sub(2).map(|i| candles[i].start_ms);
        let k = ctx.symbol_index % INDICATOR_SYMBOLS_MAX;
        if states.len() <= k {
            states.resize_with(k + 1, || None);
        }
        let s = match &mut states[k] {
            Some(slot) if same(slot.symbol.as_bytes(), ctx.symbol.as_bytes()) => {
                let s = match *slot {
                    Slot { at, state, .. } if at == last.start_ms => state,
                    Slot { at, state, .. } if before == Some(at) => params.step(state, last),
                    _ => params.start(candles)?,
                };
                (slot.at, slot.state) = (last.start_ms, s);
                s
            }
            other => {
                let s = params.start(candles)?;
                *other = Some(Slot {
                    symbol: ctx.symbol.into(),
                    at: last.start_ms,
                    state: s,
                });
                s
            }
        };
        Some(match ctx.forming {
            Some(f) => params.step(s, f),
            None => s,
        })
    }
}

/// `a == b` without a call for names up to 16 bytes (two overlapping word loads from each end
/// cover every byte), where `==` calls libc's `memcmp`: the check runs at every call.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap_or([0; 4]));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// EMA state: the fast and the slow average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaPair {
    pub fast: f64,
    pub slow: f64,
}

impl Indicator for EmaCross {
    type State = EmaPair;

    fn start(&self, candles: &[Candle]) -> Option<EmaPair> {
        let closes = || candles.iter().map(|c| c.close);
        Some(EmaPair {
            fast: ema(closes(), self.fast)?,
            slow: ema(closes(), self.slow)?,
        })
    }

    fn step(&self, s: EmaPair, c: &Candle) -> EmaPair {
        EmaPair {
            fast: ema_step(s.fast, c.close, self.fast),
            slow: ema_step(s.slow, c.close, self.slow),
        }
    }
}

fn ema_step(prev: f64, v: f64, period: usize) -> f64 {
    prev + 2.0 / (period as f64 + 1.0) * (v - prev)
}

impl Strategy for Stepping<EmaCross> {
    fn name(&self) -> &str {
        "ema_cross"
    }

    fn warmup(&self) -> usize {
        self.params.slow
    }

    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let p = &self.params;
        if ctx.candles.len() < p.slow || !p.valid() {
            return;
        }
        if let Some(s) = self.state(ctx) {
            p.judge(s.fast, s.slow, out);
        }
    }

    fn evaluate_mut(&mut self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let p = self.params;
        if ctx.candles.len() < p.slow || !p.valid() {
            return;
        }
        if let Some(s) = self.state_mut(ctx) {
            self.params.judge(s.fast, s.slow, out);
        }
    }
}

/// Wilder's RSI state: the last close and the smoothed gain and loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RsiState {
    pub close: f64,
    pub gain: f64,
    pub loss: f64,
}

impl RsiState {
    pub fn value(&self) -> f64 {
        rsi_of(self.gain, self.loss)
    }
}

impl Indicator for RsiReversion {
    type State = RsiState;

    fn start(&self, candles: &[Candle]) -> Option<RsiState> {
        let n = self.period;
        if n == 0 || candles.len() <= n {
            return None;
        }
        let (mut gain, mut loss) = (0.0, 0.0);
        for w in candles[..=n].windows(2) {
            let d = w[1].close - w[0].close;
            if d > 0.0 {
                gain += d;
            } else {
                loss -= d;
            }
        }
        let mut s = RsiState {
            close: candles[n].close,
            gain: gain / n as f64,
            loss: loss / n as f64,
        };
        for c in &candles[n + 1..] {
            s = self.step(s, c);
        }
        Some(s)
    }

    fn step(&self, s: RsiState, c: &Candle) -> RsiState {
        let (gain, loss) = wilder_step(s.gain, s.loss, c.close - s.close, self.period);
        RsiState {
            close: c.close,
            gain,
            loss,
        }
    }
}

impl Strategy for Stepping<RsiReversion> {
    fn name(&self) -> &str {
        "rsi_reversion"
    }

    fn warmup(&self) -> usize {
        self.params.period + 1
    }

    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        if ctx.candles.len() <= self.params.period {
            return;
        }
        if let Some(s) = self.state(ctx) {
            self.params.judge(s.value(), out);
        }
    }

    fn evaluate_mut(&mut self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        if ctx.candles.len() <= self.params.period {
            return;
        }
        if let Some(s) = self.state_mut(ctx) {
            self.params.judge(s.value(), out);
        }
    }
}

#[cfg(test)]
mod tests;
