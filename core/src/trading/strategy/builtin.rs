//! The built-in strategies, written against the public API like any user's: an EMA crossover
//! and an RSI mean reversion, each a view with a confidence.

use super::{Context, Intent, SharedStrategy, SignalSide, Strategy};

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
        if slow <= 0.0 || !fast.is_finite() || !slow.is_finite() {
            return;
        }
        let gap = (fast - slow) / slow;
        let side = if gap > 0.0 {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        out.push(Intent::signal(
            side,
            (gap.abs() / self.full_gap).min(1.0),
            format!(
                "EMA{} {:.6} vs EMA{} {:.6} ({:+.4}%)",
                self.fast,
                fast,
                self.slow,
                slow,
                gap * 100.0
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
        let Some(r) = rsi(&values, self.period) else {
            return;
        };
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
            format!("RSI{} {:.1}", self.period, r),
        ));
    }
}

/// The configured strategies and the confidence a signal needs to be emitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

    pub fn strategies(&self) -> Vec<SharedStrategy> {
        let mut v = Vec::new();
        if let Some(e) = self.ema_cross {
            v.push(SharedStrategy::new(e));
        }
        if let Some(r) = self.rsi_reversion {
            v.push(SharedStrategy::new(r));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Candle, SymbolInput, evaluate_all};
    use super::*;
    use crate::decimal::Dec;
    use std::sync::Arc;

    fn input(closes: Vec<f64>) -> SymbolInput {
        SymbolInput {
            symbol: "X".into(),
            now_ms: 0,
            candles: Arc::new(
                closes
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| Candle {
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

    fn say(s: &dyn Strategy, closes: Vec<f64>) -> Option<(SignalSide, f64)> {
        let (said, _) = evaluate_all(s, &[input(closes)], 0.0).unwrap();
        said.first().and_then(|x| Some((x.side()?, x.confidence())))
    }

    #[test]
    fn ema_cross_follows_the_trend_and_waits_for_its_warmup() {
        let s = EmaCross::default();
        assert!(say(&s, (0..20).map(|i| i as f64).collect()).is_none());
        let (side, confidence) = say(&s, (0..60).map(|i| 100.0 + i as f64).collect()).unwrap();
        assert_eq!(side, SignalSide::Buy);
        assert!(confidence > 0.9);
        let (side, _) = say(&s, (0..60).map(|i| 200.0 - i as f64).collect()).unwrap();
        assert_eq!(side, SignalSide::Sell);
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
            say(&s, (0..30).map(|i| 100.0 - i as f64).collect())
                .unwrap()
                .0,
            SignalSide::Buy
        );
        assert!(say(&s, zigzag).is_none());
    }

    #[test]
    fn threshold_filters_weak_signals() {
        let s = EmaCross::default();
        // A gentle trend: a real but weak EMA gap.
        let gentle: Vec<f64> = (0..60).map(|i| 100.0 + i as f64 * 0.001).collect();
        let (strict, dropped) = evaluate_all(&s, &[input(gentle.clone())], 0.99).unwrap();
        assert!(strict.is_empty());
        assert_eq!(dropped, 1);
        assert_eq!(evaluate_all(&s, &[input(gentle)], 0.0).unwrap().0.len(), 1);
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
