use super::super::{Candle, SymbolInput, evaluate_all};
use super::*;

fn input(closes: Vec<f64>) -> SymbolInput {
    SymbolInput::from_closes("X", &closes)
}

fn say(s: &dyn Strategy, closes: Vec<f64>) -> Option<(SignalSide, f64)> {
    let (said, _) = evaluate_all(s, &[input(closes)], 0.0).unwrap();
    said.first().and_then(|x| Some((x.side()?, x.confidence())))
}

#[test]
fn names_of_every_length_are_told_apart_by_every_byte() {
    for n in 0..40usize {
        let a: Vec<u8> = (0..n as u8).map(|i| b'A' + i % 26).collect();
        assert!(same(&a, &a.clone()), "{n}");
        for i in 0..n {
            let mut b = a.clone();
            b[i] ^= 1;
            assert!(!same(&a, &b), "{n} differs at {i}");
        }
        if n > 0 {
            assert!(!same(&a, &a[..n - 1]), "{n}");
        }
    }
}

#[test]
fn symbols_sharing_an_index_each_get_their_own_indicator() {
    // Two symbols at index 0 (as tests and other runs may leave them), then each with its
    // own index: the stepping strategy says what the recomputing one says every time.
    let up: Vec<f64> = (0..80).map(|i| 100.0 + i as f64).collect();
    let down: Vec<f64> = (0..80).map(|i| 300.0 - i as f64).collect();
    for params in [
        EmaCross::default(),
        EmaCross {
            fast: 3,
            slow: 8,
            full_gap: 0.001,
        },
    ] {
        let mut stepping = Stepping::new(params);
        for n in 30..80 {
            for (index, closes) in [(0, &up), (0, &down), (1, &up), (2, &down)] {
                let mut i = input(closes[..n].to_vec());
                i.symbol_index = index;
                i.symbol = format!("S{index}{}", closes[0]);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                stepping.evaluate_mut(&i.context(), &mut a);
                params.evaluate(&i.context(), &mut b);
                let view = |v: &[Intent]| v.first().map(|x| x.action.clone());
                assert_eq!(view(&a), view(&b), "{n} {index}");
            }
        }
    }
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

fn candles(closes: &[f64]) -> Vec<Candle> {
    closes
        .iter()
        .enumerate()
        .map(|(i, c)| Candle {
            start_ms: i as u64 * 60_000,
            close: *c,
            ..Candle::default()
        })
        .collect()
}

/// Every call's intents, as (side, confidence bits, reason).
fn calls(
    mut eval: impl FnMut(&Context<'_>, &mut Vec<Intent>),
    closes: &[f64],
    forming: &[Option<f64>],
    from: usize,
) -> Vec<Vec<(SignalSide, u64, String)>> {
    let all = candles(closes);
    (1..=all.len())
        .map(|n| {
            let f = forming[n - 1].map(|c| Candle {
                start_ms: n as u64 * 60_000,
                close: c,
                ..Candle::default()
            });
            let ctx = Context::of_candles("X", &all[from.min(n - 1)..n], f.as_ref());
            let mut out = Vec::new();
            eval(&ctx, &mut out);
            out.into_iter()
                .map(|i| match i.action {
                    super::super::Action::Signal { side, confidence } => {
                        (side, confidence.to_bits(), i.reason.to_string())
                    }
                    a => panic!("{a:?}"),
                })
                .collect()
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// On a window that only grows, the stepping strategies say exactly what the
    /// recomputing ones say, call after call, forming candles included.
    #[test]
    fn stepping_indicators_agree_exactly_with_recomputing_them(
        moves in proptest::collection::vec(-2.0f64..2.0, 30..150),
        forming in proptest::collection::vec(proptest::option::of(-1.0f64..1.0), 150),
        fast in 2usize..8,
        slow_gap in 1usize..15,
        period in 2usize..20,
    ) {
        let mut px = 100.0;
        let closes: Vec<f64> = moves.iter().map(|m| { px += m; px }).collect();
        let forming: Vec<Option<f64>> = closes
            .iter()
            .zip(&forming)
            .map(|(c, f)| f.map(|d| c + d))
            .collect();
        let e = EmaCross { fast, slow: fast + slow_gap, full_gap: 0.002 };
        let reference = calls(|c, o| e.evaluate(c, o), &closes, &forming, 0);
        let shared = Stepping::new(e);
        proptest::prop_assert_eq!(&calls(|c, o| shared.evaluate(c, o), &closes, &forming, 0), &reference);
        let mut alone = Stepping::new(e);
        proptest::prop_assert_eq!(&calls(|c, o| alone.evaluate_mut(c, o), &closes, &forming, 0), &reference);
        let r = RsiReversion { period, oversold: 45.0, overbought: 55.0 };
        let reference = calls(|c, o| r.evaluate(c, o), &closes, &forming, 0);
        let shared = Stepping::new(r);
        proptest::prop_assert_eq!(&calls(|c, o| shared.evaluate(c, o), &closes, &forming, 0), &reference);
        let mut alone = Stepping::new(r);
        proptest::prop_assert_eq!(&calls(|c, o| alone.evaluate_mut(c, o), &closes, &forming, 0), &reference);
    }
}

#[test]
fn a_sliding_window_keeps_the_stepped_ema_within_its_seed_weight() {
    let closes: Vec<f64> = (0..600)
        .map(|i| 100.0 + (i as f64 / 9.0).sin() * 3.0)
        .collect();
    let e = EmaCross::default();
    let all = candles(&closes);
    let stepping = Stepping::new(e);
    // The window the engine keeps for it: 200 candles (its floor), sliding by one a call.
    for n in 200..all.len() {
        let w = &all[n - 200..n];
        let ctx = Context::of_candles("X", w, None);
        let state = stepping.state(&ctx).unwrap();
        let reference = e.start(w).unwrap();
        assert!((state.fast - reference.fast).abs() < 1e-7, "{n}");
        assert!((state.slow - reference.slow).abs() < 1e-7, "{n}");
    }
}
