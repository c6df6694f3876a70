use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::trading::strategy::{Intent, Strategy};

const MIN: u64 = 60_000;

fn candle(i: u64, open: f64, high: f64, low: f64, close: f64) -> Candle {
    Candle {
        start_ms: i * MIN,
        open,
        high,
        low,
        close,
        volume: 1.0,
        turnover: close,
    }
}

fn flat(n: u64, px: f64) -> Vec<Candle> {
    (0..n).map(|i| candle(i, px, px, px, px)).collect()
}

fn cfg(strategies: Vec<SharedStrategy>) -> BacktestConfig {
    BacktestConfig {
        strategies,
        confidence_min: 0.0,
        broker: BrokerConfig {
            fee_bps: 10.0,
            slippage_bps: 0.0,
            ..BrokerConfig::default()
        },
        balance: 10_000.0,
        interval_ms: MIN,
    }
}

fn data(candles: Vec<Candle>) -> Vec<SymbolCandles> {
    vec![SymbolCandles {
        symbol: "X".into(),
        candles,
        qty_step: Some(Dec::parse("0.001").unwrap()),
    }]
}

/// Says `intent` when the newest candle starts at `at` (a minute index), nothing otherwise.
struct At(Vec<(u64, Intent)>);

impl Strategy for At {
    fn name(&self) -> &str {
        "at"
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let now = ctx.candles.last().unwrap().start_ms / MIN;
        out.extend(
            self.0
                .iter()
                .filter(|(t, _)| *t == now)
                .map(|(_, i)| i.clone()),
        );
    }
}

fn d(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

#[test]
fn a_market_round_trip_fills_at_the_next_opens_and_pays_its_fees() {
    let mut c = flat(10, 100.0);
    c[3] = candle(3, 101.0, 101.0, 101.0, 101.0);
    c[6] = candle(6, 110.0, 110.0, 110.0, 110.0);
    let s = At(vec![
        (2, Intent::market(SignalSide::Buy, d("2"), "in")),
        (5, Intent::target(Dec::ZERO, "out")),
    ]);
    let r = run(cfg(vec![SharedStrategy::new(s)]), &data(c)).unwrap();
    assert_eq!(r.trades.len(), 1, "{r:?}");
    let t = &r.trades[0];
    assert_eq!((t.side, t.entry_ms, t.exit_ms), ("long", 3 * MIN, 6 * MIN));
    assert_eq!((t.entry_price, t.exit_price, t.qty), (101.0, 110.0, 2.0));
    // Fees: 10 bps of 202 and of 220.
    let fees = 0.202 + 0.220;
    assert!((t.fees - fees).abs() < 1e-9, "{t:?}");
    assert!((t.pnl - (18.0 - fees)).abs() < 1e-9, "{t:?}");
    assert!((r.totals.pnl - t.pnl).abs() < 1e-9);
    assert_eq!((r.totals.orders, r.totals.fills), (2, 2));
    assert_eq!(r.totals.win_pct, 100.0);
    assert_eq!(r.totals.profit_factor, None);
}

#[test]
fn limits_fill_only_where_the_next_candles_reach_them() {
    let mut c = flat(12, 100.0);
    c[3] = candle(3, 100.0, 100.5, 99.5, 100.0);
    c[4] = candle(4, 100.0, 100.2, 98.0, 99.0);
    let s = At(vec![
        // Not reached by candle 2's successor: an IOC is gone, nothing fills.
        (
            2,
            Intent::limit(SignalSide::Buy, d("1"), d("99"), TimeInForce::Ioc, "ioc"),
        ),
        // A GTC rests through candle 3 (low 99.5) and fills at its price in candle 4.
        (
            3,
            Intent::limit(SignalSide::Buy, d("1"), d("99"), TimeInForce::Gtc, "gtc"),
        ),
        // A post-only that would cross at once is refused.
        (
            6,
            Intent::limit(
                SignalSide::Sell,
                d("1"),
                d("99"),
                TimeInForce::PostOnly,
                "po",
            ),
        ),
        (8, Intent::cancel("nothing to cancel")),
    ]);
    let r = run(cfg(vec![SharedStrategy::new(s)]), &data(c)).unwrap();
    assert_eq!(r.totals.fills, 1, "{:?}", r.totals);
    assert_eq!(r.totals.refused, 1);
    let eq_at_4 = r.equity.iter().find(|(t, _)| *t == 5 * MIN).unwrap().1;
    // Bought 1 at 99, marked at the close of 99: only the fee is lost.
    assert!((eq_at_4 - (10_000.0 - 0.099)).abs() < 1e-9, "{eq_at_4}");
}

#[test]
fn the_same_inputs_give_byte_identical_reports() {
    let c: Vec<Candle> = (0..3_000u64)
        .map(|i| {
            let x = 100.0 + (i as f64 / 37.0).sin() * 5.0 + (i as f64 / 7.0).cos();
            candle(i, x, x + 0.5, x - 0.5, x + 0.1)
        })
        .collect();
    let json = |strategies| {
        serde_json::to_string(&run(cfg(strategies), &data(c.clone())).unwrap()).unwrap()
    };
    // Held by the run alone, the built-ins are called through `evaluate_mut` (no lock); held
    // by the test too, through `evaluate`: the same report either way, and again.
    let a = json(StrategyConfigForTest::both());
    let shared = StrategyConfigForTest::both();
    let b = json(shared.clone());
    let again = json(StrategyConfigForTest::both());
    drop(shared);
    assert_eq!(a, b);
    assert_eq!(a, again);
    let r: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert!(
        r["totals"]["trades"].as_u64().unwrap() > 10,
        "{}",
        r["totals"]
    );
}

struct StrategyConfigForTest;

impl StrategyConfigForTest {
    fn both() -> Vec<SharedStrategy> {
        crate::trading::strategy::StrategyConfig::default().strategies()
    }
}

#[test]
fn a_strategy_that_panics_is_counted_and_the_test_goes_on() {
    #[derive(Default)]
    struct Sometimes(AtomicU64);
    impl Strategy for Sometimes {
        fn name(&self) -> &str {
            "sometimes"
        }
        fn evaluate(&self, _: &Context<'_>, out: &mut Vec<Intent>) {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            assert!(n.is_multiple_of(2), "odd call {n}");
            out.push(Intent::signal(
                if n.is_multiple_of(4) {
                    SignalSide::Buy
                } else {
                    SignalSide::Sell
                },
                1.0,
                "flip",
            ));
        }
    }
    let r = run(
        cfg(vec![SharedStrategy::new(Sometimes::default())]),
        &data(flat(40, 100.0)),
    )
    .unwrap();
    assert_eq!(r.totals.faults, 20);
    assert!(r.totals.fills >= 10, "{:?}", r.totals);
}

#[test]
fn drawdown_and_ratios_follow_the_equity() {
    let r = daily_returns(
        &[
            (DAY_MS - 1, 110.0),
            (2 * DAY_MS - 1, 99.0),
            (3 * DAY_MS - 1, 99.0),
        ],
        100.0,
    );
    assert_eq!(r.len(), 3);
    assert!((r[0] - 0.1).abs() < 1e-12 && (r[1] + 0.1).abs() < 1e-12 && r[2] == 0.0);
    let (sharpe, sortino) = ratios(&r);
    assert!(sharpe.unwrap().abs() < 1e-9 && sortino.unwrap().abs() < 1e-9);
    assert_eq!(ratios(&[0.01]), (None, None));
    // The day the equity is spent loses everything; the days after are not returns.
    let ruined = daily_returns(
        &[
            (DAY_MS - 1, 50.0),
            (2 * DAY_MS - 1, -3.0),
            (3 * DAY_MS - 1, 40.0),
        ],
        100.0,
    );
    assert_eq!(ruined, vec![-0.5, -1.0]);
    // A fall of 20 from a peak of 120.
    let mut c = flat(10, 100.0);
    for (i, px) in [(3, 120.0), (4, 100.0), (5, 110.0)] {
        c[i] = candle(i as u64, px, px, px, px);
    }
    let s = At(vec![(1, Intent::market(SignalSide::Buy, d("1"), "in"))]);
    let mut k = cfg(vec![SharedStrategy::new(s)]);
    k.broker.fee_bps = 0.0;
    let r = run(k, &data(c)).unwrap();
    assert!(
        (r.totals.max_drawdown - 20.0).abs() < 1e-9,
        "{:?}",
        r.totals
    );
    assert_eq!(r.totals.drawdown_peak_ms, 4 * MIN);
    assert_eq!(r.totals.drawdown_trough_ms, 5 * MIN);
}

#[test]
fn equity_is_thinned_to_its_bound_keeping_the_last_point() {
    let pts: Vec<(u64, f64)> = (0..10_001).map(|i| (i, i as f64)).collect();
    let t = thin(&pts, EQUITY_POINTS_MAX);
    assert!(t.len() <= EQUITY_POINTS_MAX + 1);
    assert_eq!(t.last(), pts.last());
    assert_eq!(t[0], pts[0]);
}

/// Always the same view.
struct Always(&'static str, SignalSide, f64);

impl Strategy for Always {
    fn name(&self) -> &str {
        self.0
    }
    fn evaluate(&self, _: &Context<'_>, out: &mut Vec<Intent>) {
        out.push(Intent::signal(self.1, self.2, "always"));
    }
}

#[test]
fn two_strategies_that_disagree_are_netted_not_traded_in_turn() {
    let bull = SharedStrategy::new(Always("bull", SignalSide::Buy, 0.9));
    let bear = SharedStrategy::new(Always("bear", SignalSide::Sell, 0.5));
    let r = run(cfg(vec![bull, bear]), &data(flat(100, 100.0))).unwrap();
    // The stronger view decides once; the weaker one never flips the position back.
    assert_eq!(r.totals.orders, 1, "{:?}", r.totals);
    assert_eq!(r.totals.signals, 2 * 100);
    // Equal views: the first strategy's decides, still a single order.
    let first = SharedStrategy::new(Always("first", SignalSide::Sell, 0.7));
    let second = SharedStrategy::new(Always("second", SignalSide::Buy, 0.7));
    let r = run(cfg(vec![first, second]), &data(flat(100, 100.0))).unwrap();
    assert_eq!(r.totals.orders, 1, "{:?}", r.totals);
    assert_eq!(r.trades.len(), 0, "still open: {:?}", r.trades);
    assert!(r.totals.exposure_pct > 90.0, "{:?}", r.totals);
}

/// Buys on even minutes, sells on odd ones.
struct EveryMinute;

impl Strategy for EveryMinute {
    fn name(&self) -> &str {
        "every_minute"
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let side = if (ctx.candles.last().unwrap().start_ms / MIN).is_multiple_of(2) {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        out.push(Intent::signal(side, 1.0, "flip"));
    }
}

#[test]
fn trading_stops_when_the_equity_is_spent() {
    let mut k = cfg(vec![SharedStrategy::new(EveryMinute)]);
    k.balance = 100.0;
    k.broker.fee_bps = 100.0;
    // Flat prices: the fees alone spend it, 10 on the first order and 20 on each flip after.
    let r = run(k, &data(flat(200, 100.0))).unwrap();
    let why = r.totals.kill_switch.clone().unwrap_or_default();
    assert!(why.starts_with("equity exhausted"), "{:?}", r.totals);
    assert!(r.totals.fills <= 7, "{:?}", r.totals);
    assert!(r.totals.final_equity > -30.0, "{:?}", r.totals);
    // Every later flip refused (the views toward the position it holds ask for nothing).
    assert!(r.totals.refused > 90, "{:?}", r.totals);
}

#[test]
fn a_spent_account_is_liquidated_and_its_equity_stops_moving() {
    let mut k = cfg(vec![SharedStrategy::new(EveryMinute)]);
    k.balance = 100.0;
    k.broker.fee_bps = 100.0;
    // Flat while the fees spend it, then a rally that a position left open would ride.
    let mut c = flat(20, 100.0);
    c.extend((20..200).map(|i| {
        let px = 100.0 + (i - 20) as f64;
        candle(i, px, px, px, px)
    }));
    let r = run(k, &data(c)).unwrap();
    let why = r.totals.kill_switch.clone().unwrap_or_default();
    assert!(why.starts_with("equity exhausted"), "{:?}", r.totals);
    let spent = r.equity.iter().position(|(_, e)| *e <= 0.0).unwrap();
    assert!(
        r.equity[spent..]
            .iter()
            .all(|(_, e)| *e == r.equity[spent].1),
        "{:?}",
        &r.equity[spent..]
    );
    assert_eq!(r.totals.final_equity, r.equity[spent].1);
    // The liquidation closed the last trade at the step the equity was spent.
    let last = r.trades.last().unwrap();
    assert_eq!(last.exit_ms, r.equity[spent].0);
}
