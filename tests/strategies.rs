//! Strategies on real Bybit klines: the REST fixtures (newest first, as Bybit sends them) put
//! in time order, checked against the direction of the prices themselves.

use keel_core::trading::strategy::{
    EmaCross, RsiReversion, Signal, SignalSide, Strategy, StrategyConfig, SymbolInput, ema,
    evaluate_all, rsi,
};
use keel_core::wire::rest::parse_kline;
use keel_suite::fixtures_dir;
use serde_json::Value;

fn closes_oldest_first(body: &str) -> Vec<f64> {
    let page = parse_kline(body).unwrap().result;
    page.bars.iter().rev().map(|b| b.close.to_f64()).collect()
}

fn all_real_series() -> Vec<Vec<f64>> {
    let mut out = vec![closes_oldest_first(
        &std::fs::read_to_string(fixtures_dir().join("rest/kline_linear_BTCUSDT.json")).unwrap(),
    )];
    out.push(closes_oldest_first(
        &std::fs::read_to_string(fixtures_dir().join("docs/v5__market__kline__ex0.json")).unwrap(),
    ));
    let ccxt: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("rest/ccxt_market_responses.json")).unwrap(),
    )
    .unwrap();
    for e in ccxt
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "fetchOHLCV")
    {
        out.push(closes_oldest_first(&e["httpResponse"].to_string()));
    }
    out
}

fn input(closes: Vec<f64>) -> SymbolInput {
    SymbolInput::from_closes("BTCUSDT", &closes)
}

/// What `s` says about these closes, if anything.
fn say(s: &dyn Strategy, closes: Vec<f64>) -> Option<Signal> {
    let (said, _) = evaluate_all(s, &[input(closes)], 0.0).unwrap();
    assert!(said.len() <= 1);
    said.into_iter().next()
}

#[test]
fn default_strategies_stay_silent_on_too_little_real_history() {
    let cfg = StrategyConfig::default();
    for closes in all_real_series() {
        assert!(closes.len() < 14);
        for s in cfg.strategies() {
            assert!(say(s.0.as_ref(), closes.clone()).is_none());
        }
    }
}

#[test]
fn short_ema_cross_on_real_klines_follows_the_last_move() {
    let s = EmaCross {
        fast: 1,
        slow: 2,
        full_gap: 0.01,
    };
    for closes in all_real_series() {
        let (prev, last) = (closes[closes.len() - 2], closes[closes.len() - 1]);
        let sig = say(&s, closes.clone()).expect("enough history for EMA2");
        // EMA1 is the last close; EMA2 lags it, so the side is the direction of the last move.
        let expected = if last > ema(closes.iter().copied(), 2).unwrap() {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        assert_eq!(sig.side(), Some(expected), "closes {closes:?}");
        assert_eq!(
            last > prev,
            expected == SignalSide::Buy,
            "closes {closes:?}"
        );
        assert!((0.0..=1.0).contains(&sig.confidence()));
    }
}

#[test]
fn short_rsi_on_real_klines_matches_a_hand_computation() {
    for closes in all_real_series() {
        let r = rsi(&closes, 2).unwrap();
        // Two changes: Wilder's first average is the plain mean of the first two.
        let d: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
        let gain = d.iter().take(2).map(|x| x.max(0.0)).sum::<f64>() / 2.0;
        let loss = d.iter().take(2).map(|x| (-x).max(0.0)).sum::<f64>() / 2.0;
        let want = if loss == 0.0 {
            100.0
        } else {
            100.0 - 100.0 / (1.0 + gain / loss)
        };
        assert!((r - want).abs() < 1e-9, "{closes:?}: {r} vs {want}");
        let s = RsiReversion {
            period: 2,
            oversold: 30.0,
            overbought: 70.0,
        };
        match say(&s, closes.clone()) {
            Some(sig) if r <= 30.0 => assert_eq!(sig.side(), Some(SignalSide::Buy)),
            Some(sig) if r >= 70.0 => assert_eq!(sig.side(), Some(SignalSide::Sell)),
            None => assert!(r > 30.0 && r < 70.0),
            Some(sig) => panic!("unexpected {sig:?} at RSI {r}"),
        }
    }
}
