//! Strategies a user writes, run by the engine in virtual time (no sockets, no threads): one
//! that hangs and one that panics every third call beside a healthy one. The healthy one keeps
//! trading; the panics are caught, counted and the strategy called again after a backoff; the
//! hung one is never called twice at once, is disabled after its crash-loop limit, and /health
//! names both while the bot stays up.

mod wire_harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::Dec;
use keel_core::engine::health::{ComponentId, Overall, Status};
use keel_core::engine::{JobId, STRATEGY_JOB_FIRST};
use keel_core::trading::strategy::{
    Context, Intent, SharedStrategy, SignalSide, Strategy, StrategyConfig,
};
use wire_harness::*;

/// Buys, then sells, then buys: a position that keeps changing.
#[derive(Default)]
struct Flipper(AtomicU64);

impl Strategy for Flipper {
    fn name(&self) -> &str {
        "flipper"
    }
    fn evaluate(&self, _: &Context<'_>, out: &mut Vec<Intent>) {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let side = if n.is_multiple_of(2) {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        out.push(Intent::signal(side, 1.0, format!("call {n}")));
    }
}

/// Never answers (its jobs are held by the harness, as a strategy stuck in a sleep would be).
struct Hangs;

impl Strategy for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    fn evaluate(&self, _: &Context<'_>, _: &mut Vec<Intent>) {}
}

#[derive(Default)]
struct PanicsEveryThird(AtomicU64);

impl Strategy for PanicsEveryThird {
    fn name(&self) -> &str {
        "panics"
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        if n % 3 == 2 {
            panic!("call {n} on {} went wrong", ctx.symbol);
        }
        // Out of range: dropped and counted, never acted on.
        out.push(Intent::signal(SignalSide::Sell, 7.0, "overconfident"));
    }
}

/// BTCUSDT traded on paper by these strategies alone.
fn trading(strategies: Vec<SharedStrategy>) -> keel_core::EngineConfig {
    let mut c = config(&["BTCUSDT"]);
    c.auto_execute = true;
    c.strategy = StrategyConfig {
        ema_cross: None,
        rsi_reversion: None,
        confidence_min: 0.3,
    };
    c.strategies = strategies;
    c
}

/// Every position BTCUSDT took over `steps` half-second steps of book deltas, in order.
fn positions_over(w: &mut Wire, steps: usize) -> Vec<Dec> {
    let topic = w.books.keys().next().unwrap().clone();
    let mut positions = Vec::new();
    for _ in 0..steps {
        w.delta(&topic, 0);
        w.advance(Duration::from_millis(500));
        let p = w
            .engine
            .broker()
            .position("BTCUSDT")
            .map_or(Dec::ZERO, |p| p.qty);
        if positions.last() != Some(&p) {
            positions.push(p);
        }
    }
    positions
}

#[test]
fn a_hung_and_a_panicking_strategy_cost_only_themselves() {
    let mut w = Wire::new(trading(vec![
        SharedStrategy::new(Flipper::default()),
        SharedStrategy::new(Hangs),
        SharedStrategy::new(PanicsEveryThird::default()),
    ]));
    w.hung_jobs = vec![JobId(STRATEGY_JOB_FIRST + 1)];
    let positions = positions_over(&mut w, 240);
    let slots = w.engine.strategy_slots();
    let names: Vec<&str> = slots.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["flipper", "hangs", "panics"]);

    // The healthy one traded all along: long, short, long...
    let flipper = slots[0].counters();
    assert!(flipper.succeeded >= 20, "{flipper:?}");
    assert_eq!(flipper.panics + flipper.overruns, 0, "{flipper:?}");
    assert!(positions.len() >= 10, "positions seen: {positions:?}");
    assert!(slots[0].disabled().is_none());

    // The hung one: overran once, was never called again while its call was out, and was
    // disabled after five failures in a row.
    let hangs = slots[1].counters();
    assert_eq!(hangs.overruns, 1, "{hangs:?}");
    assert!(hangs.busy >= 4, "{hangs:?}");
    assert_eq!(
        w.held_compute
            .iter()
            .filter(|(j, ..)| *j == JobId(STRATEGY_JOB_FIRST + 1))
            .count(),
        1,
        "one call out at a time"
    );
    let why = slots[1].disabled().expect("disabled");
    assert!(why.contains("5 failures in a row"), "{why}");

    // The panicking one: every third call panicked, each caught and counted; it was called
    // again after each and never reached its limit; its wild intents were dropped.
    let panics = slots[2].counters();
    assert!(panics.panics >= 5, "{panics:?}");
    assert!(panics.succeeded >= 2 * panics.panics - 1, "{panics:?}");
    assert_eq!(panics.intents, 0);
    assert!(panics.dropped >= panics.succeeded, "{panics:?}");
    assert!(slots[2].disabled().is_none());

    // /health names both, and the bot is degraded, not down.
    let h = w.engine.health();
    let show = |i: u16| {
        let id = ComponentId::Strategy(i);
        (h.name(id), h.get(id).unwrap().clone())
    };
    let (name, hung) = show(1);
    assert_eq!(name, "strategy.hangs");
    assert_eq!(hung.status, Status::Stopped);
    assert!(
        hung.detail.contains("disabled after 5 failures"),
        "{hung:?}"
    );
    assert!(hung.detail.contains("overruns 1"), "{hung:?}");
    let (name, panicky) = show(2);
    assert_eq!(name, "strategy.panics");
    let (err, _) = panicky.last_error.clone().expect("its last panic");
    assert!(
        err.contains("panicked: call") && err.contains("went wrong"),
        "{err}"
    );
    assert!(!panicky.detail.contains("panics 0"), "{panicky:?}");
    let (_, healthy) = show(0);
    assert_eq!(healthy.status, Status::Running);
    assert_eq!(h.overall(w.now, Duration::from_secs(60)), Overall::Degraded);
    assert!(
        w.notices
            .iter()
            .any(|n| n.contains("strategy hangs disabled") && n.contains("the others trade on"))
    );
}

/// With `strategies_on_close`, a strategy is called the moment a candle closes (what it sees is
/// the market as of that close), not at its next scheduled call up to `signal_every_ms` later;
/// a close while a call runs brings the next call forward to when that one answers.
#[test]
fn a_closing_candle_calls_every_strategy_at_once_when_asked_to() {
    let mut c = config(&["BTCUSDT"]);
    c.kline_interval = Some(keel_core::wire::topic::Interval::Min1);
    c.warmup_candles = 0;
    c.strategy = StrategyConfig {
        ema_cross: None,
        rsi_reversion: None,
        confidence_min: 0.3,
    };
    c.strategies = vec![SharedStrategy::new(Flipper::default())];
    c.signal_job.every_ms = 3_600_000;
    c.strategies_on_close = true;
    let mut w = Wire::new(c);
    w.advance(Duration::from_secs(1));
    let link = keel_core::engine::link::LinkId(0);
    let kline = |start: u64, confirm: bool| {
        format!(
            r#"{{"topic":"kline.1.BTCUSDT","data":[{{"start":{start},"end":{},"interval":"1","open":"100","close":"100","high":"100","low":"100","volume":"1","turnover":"100","confirm":{confirm},"timestamp":{start}}}],"ts":{start},"type":"snapshot"}}"#,
            start + 59_999
        )
    };
    let strategy_works = |w: &Wire| {
        w.works
            .iter()
            .filter(|x| matches!(x, keel_core::trading::compute::Work::Strategy(_)))
            .count()
    };
    let conn = w.open[&link];
    let forming = kline(60_000, false);
    w.input(keel_core::Input::WsFrame {
        link,
        conn,
        text: &forming,
    });
    w.advance(Duration::from_millis(1));
    assert_eq!(strategy_works(&w), 0, "a forming candle calls nobody");
    let closed = kline(60_000, true);
    w.input(keel_core::Input::WsFrame {
        link,
        conn,
        text: &closed,
    });
    // The call is due now: the next timer turn (no time passes) makes it.
    w.advance(Duration::ZERO);
    assert_eq!(strategy_works(&w), 1, "the close called the strategy");
    let called = w.works.iter().rev().find_map(|x| match x {
        keel_core::trading::compute::Work::Strategy(r) => Some(r.inputs.clone()),
        _ => None,
    });
    let inputs = called.unwrap();
    assert_eq!(inputs[0].candles.last().unwrap().start_ms, 60_000);
    // A close while a call is out: the next call follows the answer at once.
    w.hold_compute = true;
    let next = kline(120_000, true);
    w.input(keel_core::Input::WsFrame {
        link,
        conn,
        text: &next,
    });
    w.advance(Duration::ZERO);
    assert_eq!(strategy_works(&w), 2);
    let again = kline(180_000, true);
    w.input(keel_core::Input::WsFrame {
        link,
        conn,
        text: &again,
    });
    w.advance(Duration::ZERO);
    assert_eq!(strategy_works(&w), 2, "one call at a time");
    w.hold_compute = false;
    for (job, run, work) in std::mem::take(&mut w.held_compute) {
        let result = Ok(keel_core::trading::compute::run(&work));
        w.input(keel_core::Input::ComputeDone { job, run, result });
    }
    w.advance(Duration::ZERO);
    assert_eq!(
        strategy_works(&w),
        3,
        "the close that came meanwhile got its call"
    );
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

/// A trend follower and a mean reverter often disagree: each answer is decided over both
/// strategies' latest views, so the stronger holds the position and the weaker does not flip it
/// back at every one of its answers (as each trading its own view in turn did, paying fees
/// every time).
#[test]
fn two_strategies_that_disagree_hold_the_stronger_view_instead_of_trading_in_turn() {
    let mut w = Wire::new(trading(vec![
        SharedStrategy::new(Always("bear", SignalSide::Sell, 0.5)),
        SharedStrategy::new(Always("bull", SignalSide::Buy, 0.9)),
    ]));
    let positions = positions_over(&mut w, 240);
    let slots = w.engine.strategy_slots();
    assert!(
        slots[0].counters().succeeded >= 20,
        "{:?}",
        slots[0].counters()
    );
    assert!(
        slots[1].counters().succeeded >= 20,
        "{:?}",
        slots[1].counters()
    );
    // Flat, perhaps short for the moment before the bull's first answer, then long for good:
    // built up toward its target (the paper book's top level fills an order in part), never
    // sold back down.
    let first_long = positions
        .iter()
        .position(|p| *p > Dec::ZERO)
        .expect("the stronger view went long");
    assert!(first_long <= 3, "positions seen: {positions:?}");
    assert!(
        positions[first_long..].windows(2).all(|w| w[1] > w[0]),
        "positions seen: {positions:?}"
    );
    let last = positions.len() - 1;
    assert!(last <= first_long + 20, "positions seen: {positions:?}");
}

/// A strategy that stops answering loses its say: once its call overruns, its last view is
/// withdrawn and the others decide without it (fail closed: a hung strategy does not hold a
/// position it can no longer judge).
#[test]
fn a_strategy_that_hangs_withdraws_its_views() {
    let mut w = Wire::new(trading(vec![
        SharedStrategy::new(Always("bear", SignalSide::Sell, 0.5)),
        SharedStrategy::new(Always("bull", SignalSide::Buy, 0.9)),
    ]));
    let before = positions_over(&mut w, 60);
    assert!(
        before.last().is_some_and(|p| *p > Dec::ZERO),
        "the bull decides while it answers: {before:?}"
    );
    w.hung_jobs = vec![JobId(STRATEGY_JOB_FIRST + 1)];
    let after = positions_over(&mut w, 240);
    let bull = w.engine.strategy_slots()[1].counters();
    assert!(bull.overruns >= 1, "{bull:?}");
    assert!(
        after.last().is_some_and(|p| *p < Dec::ZERO),
        "the bear decides once the bull hangs: {after:?}"
    );
}
