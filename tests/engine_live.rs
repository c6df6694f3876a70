//! Live trading through the engine against a scripted venue (no sockets, time by hand): the
//! intent is stored before the order is sent, a fill is applied once, a failing store halts
//! trading and takes health down, and no order goes out while the private stream is down or
//! not yet reconciled.

mod wire_harness;

use std::time::Duration;

use keel_core::engine::STRATEGY_JOB_FIRST;
use keel_core::engine::health::{ComponentId, Overall, Status};
use keel_core::engine::link::LinkId;
use keel_core::trading::compute::WorkResult;
use keel_core::trading::orders::OrdersConfig;
use keel_core::trading::strategy::{Action, Signal, SignalSide};
use keel_core::{EngineConfig, Input};
use wire_harness::*;

const PRIVATE: LinkId = LinkId(1);

fn live_config() -> EngineConfig {
    let mut c = config(&["BTCUSDT"]);
    c.auto_execute = true;
    c.orders = Some(OrdersConfig {
        link_prefix: "kt".into(),
        ..Default::default()
    });
    c.paper = false;
    c.private_url = Some("ws://venue/v5/private".into());
    c
}

/// Runs the next strategy call with the strategy saying "buy BTCUSDT"; every other job held
/// meanwhile runs as it would.
fn buy_signal(w: &mut Wire) {
    strategy_says(
        w,
        Action::Signal {
            side: SignalSide::Buy,
            confidence: 1.0,
        },
    );
}

/// Runs the next strategy call with the strategy saying `action` for BTCUSDT.
fn strategy_says(w: &mut Wire, action: Action) {
    w.hold_compute = true;
    for _ in 0..100 {
        if w.held_compute
            .iter()
            .any(|(j, ..)| j.0 >= STRATEGY_JOB_FIRST)
        {
            break;
        }
        w.advance(Duration::from_millis(100));
    }
    w.hold_compute = false;
    let held = std::mem::take(&mut w.held_compute);
    let mut said = false;
    for (job, run, work) in held {
        let result = if job.0 >= STRATEGY_JOB_FIRST && !said {
            said = true;
            Ok(WorkResult::Said(Ok((
                vec![Signal {
                    symbol: "BTCUSDT".into(),
                    strategy: "test".into(),
                    action: action.clone(),
                    reason: "because".into(),
                    candle_ms: 0,
                }],
                0,
            ))))
        } else {
            Ok(keel_core::trading::compute::run(&work))
        };
        w.input(Input::ComputeDone { job, run, result });
    }
    assert!(said, "a strategy ran");
}

fn sends(w: &Wire) -> usize {
    w.live_log
        .iter()
        .filter(|l| *l == "send /v5/order/create")
        .count()
}

#[test]
fn a_live_order_is_stored_as_an_intent_before_it_is_sent_and_its_fill_applied_once() {
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    assert!(w.engine.links()[PRIVATE.0 as usize].is_live());
    buy_signal(&mut w);
    w.advance(Duration::from_secs(2));
    let pos = |what: &str| w.live_log.iter().position(|l| l == what);
    let intent = pos("store kt-0000000000 intent").expect("intent stored");
    let sent = pos("send /v5/order/create").expect("order sent");
    assert!(intent < sent, "{:?}", w.live_log);
    assert_eq!(sends(&w), 1);
    assert_eq!(w.live_log.iter().filter(|l| *l == "fill e0").count(), 1);
    assert!(
        pos("store kt-0000000000 filled").is_some(),
        "{:?}",
        w.live_log
    );
    let p = w.engine.broker().position("BTCUSDT").unwrap();
    assert_eq!(
        p.qty,
        keel_core::Dec::parse(&w.venue_orders["kt-0000000000"].1).unwrap()
    );
    // The periodic reconciliation finds nothing to correct.
    w.advance(Duration::from_secs(61));
    assert_eq!(w.engine.orders().unwrap().counters().reconcile_diffs, 0);
}

#[test]
fn a_failing_store_halts_trading_and_takes_health_down() {
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    w.store_broken = true;
    buy_signal(&mut w);
    w.advance(Duration::from_secs(1));
    assert_eq!(sends(&w), 0, "nothing is sent that the store did not hold");
    let h = w.engine.health();
    let c = h.get(ComponentId::Execution).unwrap();
    assert_eq!(c.status, Status::Crashed);
    assert!(c.last_error.as_ref().unwrap().0.contains("disk I/O error"));
    assert_eq!(h.overall(w.now, Duration::from_secs(60)), Overall::Down);
    // The store comes back: still nothing until a restart (an id could otherwise repeat).
    w.store_broken = false;
    buy_signal(&mut w);
    w.advance(Duration::from_secs(1));
    assert_eq!(sends(&w), 0);
}

#[test]
fn no_order_goes_out_while_the_private_stream_is_down() {
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    let conn = w.open[&PRIVATE];
    w.input(Input::WsClosed {
        link: PRIVATE,
        conn,
        reason: "gone".into(),
    });
    // Before it is back, on a fresh book.
    w.refuse = true;
    let topic = w.books.keys().next().unwrap().clone();
    w.delta(&topic, 0);
    buy_signal(&mut w);
    assert_eq!(sends(&w), 0);
    // Back, reconciled, and the next signal trades.
    w.refuse = false;
    w.advance(Duration::from_secs(20));
    assert!(w.engine.links()[PRIVATE.0 as usize].is_live());
    // A fresh update: a book quiet for 20 s is not traded on.
    w.delta(&topic, 0);
    buy_signal(&mut w);
    w.advance(Duration::from_secs(1));
    assert_eq!(sends(&w), 1, "{:?}", w.live_log);
}

fn stopped(w: &Wire) -> bool {
    !w.engine.is_running()
}

#[test]
fn at_exit_every_symbol_is_cancelled_at_the_venue_before_the_engine_stops() {
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    w.input(Input::Shutdown);
    let cancels = w
        .live_log
        .iter()
        .filter(|l| *l == "send /v5/order/cancel-all")
        .count();
    assert_eq!(cancels, 1, "{:?}", w.live_log);
    assert!(stopped(&w), "the venue confirmed at once: stopped");

    // A venue that never answers: the engine waits its bound, then stops anyway.
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    w.private_silent = true;
    w.input(Input::Shutdown);
    assert!(!stopped(&w), "waits for the venue");
    w.advance(Duration::from_millis(
        keel_core::engine::CANCEL_ON_EXIT_MS_MAX + 10,
    ));
    assert!(stopped(&w));
    assert!(
        w.notices
            .iter()
            .any(|n| n.contains("before the venue confirmed")),
        "{:?}",
        w.notices
    );
}

fn paper_config() -> EngineConfig {
    let mut c = config(&["BTCUSDT"]);
    c.auto_execute = true;
    // Small enough for the harness's book to fill at once.
    c.broker.order_notional = 10.0;
    c.orders = Some(OrdersConfig {
        link_prefix: "kp".into(),
        ..Default::default()
    });
    c
}

#[test]
fn a_paper_order_runs_the_order_machine_against_the_book_and_nothing_leaves_the_engine() {
    let mut w = Wire::new(paper_config());
    w.advance(Duration::from_secs(2));
    let asks: Vec<keel_core::decimal::Level> = {
        let m = w.engine.market();
        let b = m.book(m.book_ids().next().unwrap());
        b.top_asks(200).unwrap().collect()
    };
    buy_signal(&mut w);
    w.advance(Duration::from_secs(2));
    let pos = |what: &str| w.live_log.iter().position(|l| l == what);
    let intent = pos("store kp-0000000000 intent").expect("intent stored");
    let filled =
        pos("store kp-0000000000 filled").unwrap_or_else(|| panic!("not filled: {:?}", w.live_log));
    assert!(intent < filled, "{:?}", w.live_log);
    assert!(
        !w.live_log.iter().any(|l| l.starts_with("send ")),
        "nothing is sent on paper: {:?}",
        w.live_log
    );
    let fills: Vec<&String> = w
        .live_log
        .iter()
        .filter(|l| l.starts_with("fill "))
        .collect();
    assert!(!fills.is_empty());
    // The order walked the asks as they stood: the position is what it bought, at prices no
    // better than the best ask.
    let p = w.engine.broker().position("BTCUSDT").unwrap();
    assert!(p.qty > keel_core::Dec::ZERO);
    assert!(
        p.avg_entry >= asks[0].px,
        "{:?} vs {:?}",
        p.avg_entry,
        asks[0]
    );
    let paper = w.engine.paper().expect("a paper venue");
    assert_eq!(paper.counters().creates, 1);
    assert_eq!(w.engine.orders().unwrap().counters().sent, 1);
}

#[test]
fn a_paper_order_waits_for_the_store_like_a_live_one_and_a_failed_store_halts_it() {
    let mut w = Wire::new(paper_config());
    w.advance(Duration::from_secs(2));
    w.store_broken = true;
    buy_signal(&mut w);
    w.advance(Duration::from_secs(1));
    let paper = w.engine.paper().expect("a paper venue");
    assert_eq!(paper.counters().creates, 0, "{:?}", w.live_log);
    let h = w.engine.health();
    assert_eq!(
        h.get(ComponentId::Execution).unwrap().status,
        Status::Crashed
    );
}

#[test]
fn a_paper_order_larger_than_the_book_keeps_what_filled_and_ends_cancelled() {
    let mut c = paper_config();
    c.broker.order_notional = 1_000_000.0;
    c.broker.position_notional_max = 1e12;
    c.broker.gross_notional_max = 1e12;
    let mut w = Wire::new(c);
    w.advance(Duration::from_secs(2));
    buy_signal(&mut w);
    w.advance(Duration::from_secs(2));
    assert!(
        logged(&w, "store kp-0000000000 cancelled"),
        "{:?}",
        w.live_log
    );
    let paper = w.engine.paper().unwrap();
    assert_eq!(paper.counters().unfilled, 1);
    assert!(paper.counters().fills > 0);
    // What did fill is held, and nothing more.
    let p = w.engine.broker().position("BTCUSDT").unwrap();
    assert!(p.qty > keel_core::Dec::ZERO);
}

/// Whether the engine's trading log has this line.
fn logged(w: &Wire, what: &str) -> bool {
    w.live_log.iter().any(|l| l == what)
}

/// A paper engine with one buy limit order resting at the best bid; the bid.
fn resting_at_the_bid() -> (Wire, keel_core::Dec) {
    let mut w = Wire::new(paper_config());
    w.advance(Duration::from_secs(2));
    let (bid, ask) = touch(&w);
    assert!(bid < ask);
    strategy_says(&mut w, limit_buy_at(bid));
    w.advance(Duration::from_secs(2));
    assert!(logged(&w, "store kp-0000000000 open"), "{:?}", w.live_log);
    assert_eq!(w.engine.paper().unwrap().resting(), 1);
    (w, bid)
}

/// The harness's book: (best bid, best ask).
fn touch(w: &Wire) -> (keel_core::Dec, keel_core::Dec) {
    let m = w.engine.market();
    let b = m.book(m.book_ids().next().unwrap());
    (b.best_bid().unwrap().px, b.best_ask().unwrap().px)
}

fn limit_buy_at(px: keel_core::Dec) -> Action {
    Action::Limit {
        side: SignalSide::Buy,
        qty: keel_core::Dec::parse("0.001").unwrap(),
        price: px,
        tif: keel_core::wire::private::TimeInForce::Gtc,
    }
}

#[test]
fn a_paper_limit_order_below_the_ask_rests_and_fills_at_its_price_when_the_asks_come_down() {
    let (mut w, bid) = resting_at_the_bid();
    assert!(
        !logged(&w, "store kp-0000000000 filled"),
        "{:?}",
        w.live_log
    );
    assert!(
        w.engine
            .broker()
            .position("BTCUSDT")
            .is_none_or(|p| p.qty.is_zero())
    );
    // The market falls through the order's price: the asks reach it.
    w.delta_moving("orderbook.50.BTCUSDT", 0, -3);
    assert!(touch(&w).1 <= bid, "{:?}", touch(&w));
    w.advance(Duration::from_secs(2));
    assert!(logged(&w, "store kp-0000000000 filled"), "{:?}", w.live_log);
    assert_eq!(w.engine.paper().unwrap().resting(), 0);
    // A maker's fill: at its own price, not the better ask it met.
    let p = w.engine.broker().position("BTCUSDT").unwrap();
    assert_eq!(p.qty, keel_core::Dec::parse("0.001").unwrap());
    assert_eq!(p.avg_entry, bid);
}

#[test]
fn a_resting_paper_order_is_cancelled_when_the_strategy_cancels() {
    let (mut w, _) = resting_at_the_bid();
    strategy_says(&mut w, Action::Cancel);
    w.advance(Duration::from_secs(2));
    assert!(
        logged(&w, "store kp-0000000000 cancelled"),
        "{:?}",
        w.live_log
    );
    let paper = w.engine.paper().unwrap();
    assert_eq!((paper.resting(), paper.counters().cancelled), (0, 1));
    // Nothing fills it afterwards, whatever the market does.
    w.delta_moving("orderbook.50.BTCUSDT", 0, -3);
    w.advance(Duration::from_secs(2));
    assert!(
        w.engine
            .broker()
            .position("BTCUSDT")
            .is_none_or(|p| p.qty.is_zero())
    );
}

#[test]
fn at_exit_a_paper_run_cancels_what_rests_before_it_stops() {
    let (mut w, _) = resting_at_the_bid();
    w.input(Input::Shutdown);
    w.advance(Duration::from_millis(50));
    assert!(stopped(&w), "{:?}", w.live_log);
    // Cancelled at the paper venue, and the store holds the order's end before the stop.
    assert!(
        logged(&w, "store kp-0000000000 cancelled"),
        "{:?}",
        w.live_log
    );
    assert_eq!(w.engine.paper().unwrap().counters().cancelled, 1);
    assert_eq!(w.engine.paper().unwrap().resting(), 0);
    // A planned stop is not reported as a fault.
    assert!(
        w.notices
            .iter()
            .any(|n| n == "orders halted: shutting down"),
        "{:?}",
        w.notices
    );
    assert_eq!(w.errors, 0, "{:?}", w.notices);
}

#[test]
fn a_limit_price_off_the_venues_tick_is_put_on_it_at_the_passive_side() {
    let mut w = Wire::new(paper_config());
    w.advance(Duration::from_secs(2));
    let (bid, _) = touch(&w);
    // The harness's venue lists a tick of 0.5; its prices are whole numbers.
    let asked = bid
        .checked_add(keel_core::Dec::parse("0.3").unwrap())
        .unwrap();
    strategy_says(&mut w, limit_buy_at(asked));
    w.advance(Duration::from_secs(2));
    let working: Vec<_> = w.engine.orders().unwrap().working().cloned().collect();
    assert_eq!(working.len(), 1, "{:?}", w.live_log);
    assert_eq!(working[0].plan.price, Some(bid));
}

#[test]
fn an_order_below_the_venues_smallest_is_not_sent_and_says_why() {
    let mut w = Wire::new(paper_config());
    w.advance(Duration::from_secs(2));
    // The harness's venue lists a smallest order of 0.001.
    let tiny = keel_core::Dec::parse("0.0005").unwrap();
    strategy_says(
        &mut w,
        Action::Market {
            side: SignalSide::Buy,
            qty: tiny,
        },
    );
    w.advance(Duration::from_secs(1));
    assert!(
        w.notices
            .iter()
            .any(|n| n.contains("0.0005 is below the venue's minimum of 0.001")),
        "{:?}",
        w.notices
    );
    assert!(
        !logged(&w, "store kp-0000000000 intent"),
        "{:?}",
        w.live_log
    );
    assert_eq!(w.engine.paper().unwrap().counters().creates, 0);
}

#[test]
fn an_order_that_only_brings_a_position_toward_flat_is_sent_reduce_only() {
    let mut w = Wire::new(live_config());
    w.advance(Duration::from_secs(2));
    buy_signal(&mut w);
    w.advance(Duration::from_secs(2));
    let long = w.engine.broker().position_qty("BTCUSDT");
    assert!(long > keel_core::Dec::ZERO, "{:?}", w.live_log);
    // A fresh book to trade against.
    w.delta_moving("orderbook.50.BTCUSDT", 0, 0);
    strategy_says(
        &mut w,
        Action::Target {
            qty: keel_core::Dec::ZERO,
        },
    );
    w.advance(Duration::from_secs(2));
    assert_eq!(w.creates.len(), 2, "{:?} {:?}", w.live_log, w.notices);
    let (open, close) = (&w.creates[0], &w.creates[1]);
    // Opening: no reduce-only (the body leaves the flag out when false).
    assert_ne!(open["reduceOnly"], true, "{open}");
    assert_eq!(
        (&close["side"], &close["reduceOnly"]),
        (&"Sell".into(), &true.into())
    );
    // The whole position, and no more (the harness's venue fills every order as a buy, so
    // what follows the fill is not this test's to check).
    assert_eq!(close["qty"], long.to_string());
}
