//! Strategies: pure functions from closed candles, the top of the book and the last price to
//! signals with a side, a confidence and a reason. Two built-ins: an EMA crossover and an RSI
//! mean reversion. Indicator arithmetic is in f64: it decides, it never prices or sizes.

use crate::decimal::{Dec, Level};

/// Longest period a built-in strategy may use: more candles than one REST page would never warm
/// up.
pub const STRATEGY_PERIOD_MAX: usize = 1000;

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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signal {
    pub symbol: String,
    pub strategy: &'static str,
    pub side: SignalSide,
    /// In [0, 1].
    pub confidence: f64,
    pub reason: String,
    /// The start of the newest closed candle the signal saw.
    pub candle_ms: u64,
}

/// What a strategy sees of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyInput {
    pub symbol: String,
    /// Closes of closed candles, oldest first.
    pub closes: Vec<f64>,
    pub candle_ms: u64,
    /// The latest traded (or forming-candle) price, if any.
    pub last: Option<f64>,
    pub top: Option<(Level, Level)>,
}

pub trait Strategy: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Closed candles needed before the strategy says anything.
    fn warmup(&self) -> usize;
    fn evaluate(&self, input: &StrategyInput) -> Option<Signal>;
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
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

fn series(input: &StrategyInput) -> impl Iterator<Item = f64> + '_ {
    input.closes.iter().copied().chain(input.last)
}

impl Strategy for EmaCross {
    fn name(&self) -> &'static str {
        "ema_cross"
    }

    fn warmup(&self) -> usize {
        self.slow
    }

    /// The trend regime: fast above slow is a buy, below a sell, more confident the wider the gap.
    fn evaluate(&self, input: &StrategyInput) -> Option<Signal> {
        if input.closes.len() < self.warmup() || self.fast == 0 || self.fast >= self.slow {
            return None;
        }
        let fast = ema(series(input), self.fast)?;
        let slow = ema(series(input), self.slow)?;
        if slow <= 0.0 || !fast.is_finite() || !slow.is_finite() {
            return None;
        }
        let gap = (fast - slow) / slow;
        let side = if gap > 0.0 {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        Some(Signal {
            symbol: input.symbol.clone(),
            strategy: self.name(),
            side,
            confidence: (gap.abs() / self.full_gap).min(1.0),
            reason: format!(
                "EMA{} {:.6} vs EMA{} {:.6} ({:+.4}%)",
                self.fast,
                fast,
                self.slow,
                slow,
                gap * 100.0
            ),
            candle_ms: input.candle_ms,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
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
        let d = w[1] - w[0];
        avg_gain = (avg_gain * (period as f64 - 1.0) + d.max(0.0)) / period as f64;
        avg_loss = (avg_loss * (period as f64 - 1.0) + (-d).max(0.0)) / period as f64;
    }
    Some(if avg_loss == 0.0 {
        100.0
    } else {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    })
}

impl Strategy for RsiReversion {
    fn name(&self) -> &'static str {
        "rsi_reversion"
    }

    fn warmup(&self) -> usize {
        self.period + 1
    }

    fn evaluate(&self, input: &StrategyInput) -> Option<Signal> {
        if input.closes.len() < self.warmup() {
            return None;
        }
        let values: Vec<f64> = series(input).collect();
        let r = rsi(&values, self.period)?;
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
            return None;
        };
        Some(Signal {
            symbol: input.symbol.clone(),
            strategy: self.name(),
            side,
            confidence: confidence.clamp(0.0, 1.0),
            reason: format!("RSI{} {:.1}", self.period, r),
            candle_ms: input.candle_ms,
        })
    }
}

/// The configured strategies and the confidence a signal needs to be emitted.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    pub ema_cross: Option<EmaCross>,
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

    pub fn strategies(&self) -> Vec<Box<dyn Strategy>> {
        let mut v: Vec<Box<dyn Strategy>> = Vec::new();
        if let Some(e) = self.ema_cross {
            v.push(Box::new(e));
        }
        if let Some(r) = self.rsi_reversion {
            v.push(Box::new(r));
        }
        v
    }

    /// Closed candles a series must keep for every strategy to have its warm-up.
    pub fn history_needed(&self) -> usize {
        self.strategies()
            .iter()
            .map(|s| s.warmup())
            .max()
            .unwrap_or(0)
            * 4
    }

    /// Every strategy over every input, keeping what clears the confidence threshold, in input
    /// order: the same inputs give the same signals whatever thread runs them.
    pub fn run(&self, inputs: &[StrategyInput]) -> Vec<Signal> {
        let strategies = self.strategies();
        inputs
            .iter()
            .flat_map(|i| strategies.iter().filter_map(move |s| s.evaluate(i)))
            .filter(|s| s.confidence >= self.confidence_min)
            .collect()
    }
}

pub fn dec_f64(d: Dec) -> f64 {
    d.to_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(closes: Vec<f64>) -> StrategyInput {
        StrategyInput {
            symbol: "X".into(),
            closes,
            candle_ms: 0,
            last: None,
            top: None,
        }
    }

    #[test]
    fn ema_cross_follows_the_trend_and_waits_for_its_warmup() {
        let s = EmaCross::default();
        assert!(
            s.evaluate(&input((0..20).map(|i| i as f64).collect()))
                .is_none()
        );
        let up = s
            .evaluate(&input((0..60).map(|i| 100.0 + i as f64).collect()))
            .unwrap();
        assert_eq!(up.side, SignalSide::Buy);
        assert!(up.confidence > 0.9);
        let down = s
            .evaluate(&input((0..60).map(|i| 200.0 - i as f64).collect()))
            .unwrap();
        assert_eq!(down.side, SignalSide::Sell);
    }

    #[test]
    fn rsi_is_extreme_on_one_way_moves_and_quiet_in_between() {
        assert_eq!(
            rsi(&(0..30).map(|i| i as f64).collect::<Vec<_>>(), 14),
            Some(100.0)
        );
        assert!(rsi(&(0..30).map(|i| -(i as f64)).collect::<Vec<_>>(), 14).unwrap() < 1.0);
        let zigzag: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 100.0 } else { 101.0 })
            .collect();
        let r = rsi(&zigzag, 14).unwrap();
        assert!((40.0..60.0).contains(&r), "{r}");
        let s = RsiReversion::default();
        assert_eq!(
            s.evaluate(&input((0..30).map(|i| 100.0 - i as f64).collect()))
                .unwrap()
                .side,
            SignalSide::Buy
        );
        assert!(s.evaluate(&input(zigzag)).is_none());
    }

    #[test]
    fn threshold_filters_weak_signals() {
        let cfg = StrategyConfig {
            rsi_reversion: None,
            confidence_min: 0.99,
            ..StrategyConfig::default()
        };
        // A gentle trend: a real but weak EMA gap.
        let gentle: Vec<f64> = (0..60).map(|i| 100.0 + i as f64 * 0.001).collect();
        assert!(cfg.run(&[input(gentle.clone())]).is_empty());
        let loose = StrategyConfig {
            confidence_min: 0.0,
            ..cfg
        };
        assert_eq!(loose.run(&[input(gentle)]).len(), 1);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let c = StrategyConfig {
            ema_cross: Some(EmaCross {
                fast: 30,
                slow: 10,
                full_gap: 0.01,
            }),
            ..StrategyConfig::default()
        };
        assert!(c.validate().is_err());
        let c = StrategyConfig {
            confidence_min: 1.5,
            ..StrategyConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
