//! The engine against a scripted venue, with time moved by hand: no tokio, no sockets.

mod wire_harness;

use std::time::Duration;

use keel_core::engine::Event;
use keel_core::engine::health::{Overall, Status};
use keel_core::engine::link::LinkId;
use keel_core::market::book::BookState;
use keel_core::trading::compute::{self, Work};
use keel_core::{EngineConfig, Input};
use wire_harness::*;

#[test]
fn engine_preflights_connects_and_announces_its_symbols() {
    let mut w = Wire::new(config(&["BTCUSDT", "ETHUSDT"]));
    assert_eq!(w.http[0], "/v5/market/time");
    assert!(
        w.http[1..]
            .iter()
            .all(|p| p.starts_with("/v5/market/instruments-info"))
    );
    assert_eq!(w.engine.clock_skew_ms(), Some(250));
    assert!(
        w.notices
            .iter()
            .any(|n| n == "processing 2 symbols: BTCUSDT,ETHUSDT"),
        "{:?}",
        w.notices
    );
    assert_eq!(w.state("orderbook.50.BTCUSDT"), BookState::Synced);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.engine.overall(w.now), Overall::Ok);
}

#[test]
fn unknown_symbol_fails_preflight_with_a_clear_error() {
    let w = Wire::with_listed(config(&["BTCUSDT", "NOPEUSDT"]), vec!["BTCUSDT".into()]);
    let fatal = w.fatal.expect("pre-flight must fail");
    assert!(fatal.contains("unknown symbol NOPEUSDT"), "{fatal}");
    assert!(
        w.connects.is_empty(),
        "nothing connects after a failed pre-flight"
    );
}

#[test]
fn gap_makes_the_engine_resubscribe_and_the_book_heals_unread() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    let topic = "orderbook.50.BTCUSDT";
    w.delta(topic, 0);
    assert_eq!(w.state(topic), BookState::Synced);
    // The venue answers the resubscribe with a snapshot at once; hold it back to see the gap.
    w.silent = true;
    w.delta(topic, 3);
    assert_eq!(w.state(topic), BookState::Resyncing);
    assert!(
        w.sent
            .iter()
            .any(|s| s.contains(r#""op":"unsubscribe""#) && s.contains(topic))
    );
    // No signal cycle reads the book while it resyncs.
    w.advance(Duration::from_secs(6));
    let (views, inputs) = last_cycle(&w);
    assert!(views.iter().all(|v| v.symbol != "BTCUSDT"), "{views:?}");
    assert!(inputs.iter().all(|s| s != "BTCUSDT"), "{inputs:?}");
    // The repair is retried with backoff, and the first answer heals the book.
    w.silent = false;
    w.advance(Duration::from_secs(31));
    assert_eq!(w.state(topic), BookState::Synced);
    assert!(w.engine.book_sync().counters().repairs_resubscribe >= 2);
    assert!(w.notices.iter().any(|n| n.contains("synced again")));
}

#[test]
fn a_snapshot_with_an_absurd_update_id_resyncs_instead_of_freezing_the_book() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    let topic = "orderbook.50.BTCUSDT";
    let conn = w.open[&LinkId(0)];
    // A snapshot at u = 2^64 - 1: every later delta looks stale to the book.
    let absurd = book_frame(topic, "snapshot", u64::MAX, 100, 102);
    w.silent = true;
    w.input(Input::WsFrame {
        link: LinkId(0),
        conn,
        text: &absurd,
    });
    assert_eq!(w.state(topic), BookState::Synced);
    let sent_before = w.sent.len();
    for _ in 0..keel_core::market::book::STALE_DELTAS_MAX - 1 {
        w.delta(topic, 0);
    }
    assert_eq!(
        w.state(topic),
        BookState::Synced,
        "a few stale deltas are tolerated"
    );
    w.delta(topic, 0);
    assert_eq!(
        w.state(topic),
        BookState::Resyncing,
        "a stream that never catches up puts the book out of sync"
    );
    assert!(
        w.sent[sent_before..]
            .iter()
            .any(|s| s.contains(r#""op":"subscribe""#) && s.contains(topic)),
        "and the book is subscribed again"
    );
    w.silent = false;
    w.advance(Duration::from_secs(31));
    assert_eq!(w.state(topic), BookState::Synced);
}

#[test]
fn a_synced_book_gone_quiet_is_never_read_for_trading() {
    let mut w = Wire::new(config(&["BTCUSDT", "ETHUSDT"]));
    let btc = "orderbook.50.BTCUSDT";
    w.advance(Duration::from_secs(6));
    let (views, _) = last_cycle(&w);
    assert!(
        views.iter().any(|v| v.symbol == "BTCUSDT"),
        "fresh at first"
    );
    // The venue goes quiet: no frame arrives, the socket stays open and the book stays synced.
    w.stalled = true;
    w.advance(Duration::from_secs(12));
    assert_eq!(w.state(btc), BookState::Synced);
    let (views, inputs) = last_cycle(&w);
    assert!(
        views.iter().all(|v| v.symbol != "BTCUSDT") && inputs.iter().all(|s| s != "BTCUSDT"),
        "a book with no frame for longer than its stale bound is not read: {views:?} {inputs:?}"
    );
}

/// The latest signal cycle's book views, and the symbols the latest strategy call saw.
fn last_cycle(w: &Wire) -> (Vec<keel_core::trading::compute::BookView>, Vec<String>) {
    let views = w.works.iter().rev().find_map(|x| match x {
        Work::SignalCycle(c) => Some(c.views.clone()),
        _ => None,
    });
    let inputs = w.works.iter().rev().find_map(|x| match x {
        Work::Strategy(r) => Some(r.inputs.iter().map(|i| i.symbol.clone()).collect()),
        _ => None,
    });
    (
        views.expect("a signal cycle ran"),
        inputs.expect("a strategy ran"),
    )
}

#[test]
fn books_of_a_link_that_is_down_are_reported_stale_in_health() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    w.advance(Duration::from_secs(2));
    let market = |w: &Wire| {
        w.engine
            .health()
            .get(keel_core::engine::health::ComponentId::Market)
            .unwrap()
            .clone()
    };
    assert!(!market(&w).detail.contains("stale"), "{:?}", market(&w));
    w.refuse = true;
    w.close_link("venue went away");
    w.advance(Duration::from_secs(2));
    let m = market(&w);
    assert_eq!(m.status, Status::Degraded);
    assert!(m.detail.contains("stale: orderbook.50.BTCUSDT"), "{m:?}");
}

#[test]
fn depth_1000_gap_is_repaired_from_a_rest_snapshot_with_held_deltas() {
    let mut c = config(&["BTCUSDT"]);
    c.book_depth = 1000;
    let mut w = Wire::new(c);
    let topic = "orderbook.1000.BTCUSDT";
    w.hold_http = true;
    w.delta(topic, 2);
    assert_eq!(w.state(topic), BookState::Resyncing);
    assert!(
        w.http
            .last()
            .unwrap()
            .starts_with("/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=1000")
    );
    // Deltas keep coming while the REST request is in flight.
    w.delta(topic, 0);
    w.delta(topic, 0);
    let final_u = w.books[topic].0;
    // The REST snapshot is one update behind the live stream.
    w.books.get_mut(topic).unwrap().0 = final_u - 1;
    let (id, path) = w.held_http.pop().unwrap();
    let body = w.answer(&path);
    w.books.get_mut(topic).unwrap().0 = final_u;
    w.input(Input::HttpResponse {
        id,
        status: 200,
        body,
        wall_ms: 0,
    });
    assert_eq!(w.state(topic), BookState::Synced);
    let m = w.engine.market();
    assert_eq!(m.book(m.book_id(topic).unwrap()).last_u(), Some(final_u));
    assert_eq!(w.engine.book_sync().counters().repairs_rest, 1);
    assert_eq!(w.engine.book_sync().counters().repairs_resubscribe, 0);
}

#[test]
fn reconnect_leaves_no_book_readable_until_its_new_snapshot() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    let topic = "orderbook.50.BTCUSDT";
    let conn = w.open[&LinkId(0)];
    w.silent = true;
    w.input(Input::WsClosed {
        link: LinkId(0),
        conn,
        reason: "reset".into(),
    });
    w.advance(Duration::from_secs(2));
    assert!(w.open.contains_key(&LinkId(0)), "reconnected");
    assert_eq!(
        w.state(topic),
        BookState::Resyncing,
        "a book never survives a reconnect"
    );
    w.silent = false;
    w.advance(Duration::from_secs(15));
    assert_eq!(w.state(topic), BookState::Synced);
    assert_eq!(
        w.engine.reconnects(),
        2,
        "the ack timeout of the silent connection counts too"
    );
}

#[test]
fn links_share_one_connection_budget() {
    // Enough topics to need two connections under Bybit's 21,000-character limit.
    let symbols: Vec<String> = (0..1200).map(|i| format!("SYM{i:04}USDT")).collect();
    let mut c = EngineConfig::new("ws://venue/v5/public/linear", symbols);
    c.kline_interval = None;
    c.tickers = false;
    c.trades = false;
    c.preflight = false;
    let mut w = Wire::new(c);
    let links = w.engine.links().len();
    assert!(links >= 2);
    w.advance(Duration::from_secs(3));
    let times: Vec<u64> = w.connects.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(
        times,
        vec![0; links],
        "first connects are not reconnects: all at once"
    );
    // Every link lost at once: the reconnects come one a second across links.
    let lost_at = w.now;
    let open: Vec<(LinkId, u64)> = w.open.iter().map(|(l, c)| (*l, *c)).collect();
    for (link, conn) in open {
        w.input(Input::WsClosed {
            link,
            conn,
            reason: "venue restarted".into(),
        });
    }
    w.advance(Duration::from_secs(5));
    let again: Vec<u64> = w
        .connects
        .iter()
        .filter(|(t, _)| *t > lost_at)
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(again.len(), links, "{again:?}");
    assert!(
        again.windows(2).all(|p| p[1] - p[0] >= 1000),
        "one reconnect a second across links: {again:?}"
    );
}

#[test]
fn refused_connections_for_ten_minutes_stay_within_budget_and_cap() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    w.refuse = true;
    w.close_link("venue gone");
    let start = w.now;
    w.advance(Duration::from_secs(600));
    let attempts: Vec<u64> = w
        .connects
        .iter()
        .skip(1)
        .map(|(t, _)| t.as_millis())
        .collect();
    let gaps: Vec<u64> = attempts.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(
        attempts.len() >= 15 && attempts.len() <= 500,
        "{} attempts in 10 min",
        attempts.len()
    );
    assert!(
        gaps.iter().all(|g| *g >= 1000 && *g <= 30_000),
        "delays stay within [budget, cap]: {gaps:?}"
    );
    let distinct: std::collections::HashSet<_> = gaps.iter().collect();
    assert!(distinct.len() > gaps.len() / 2, "delays are jittered");
    println!(
        "refused 10 min: {} connect attempts, max gap {} ms",
        attempts.len(),
        gaps.iter().max().unwrap()
    );
    w.refuse = false;
    let healed = w.now;
    w.advance(Duration::from_secs(31));
    assert!(
        w.engine.links()[0].is_live(),
        "back within the cap once the venue accepts"
    );
    let back = w.connects.last().unwrap().0;
    assert!(back.since(healed) <= Duration::from_secs(30) && back > start);
}

#[test]
fn failing_signal_job_crashes_after_ten_and_market_data_is_unaffected() {
    let mut w = Wire::new(config(&["BTCUSDT"]));
    w.compute_fails = true;
    let topic = "orderbook.50.BTCUSDT";
    for _ in 0..120 {
        w.advance(Duration::from_secs(5));
        w.delta(topic, 0);
    }
    let job = w.engine.signal_job();
    assert!(job.is_crashed());
    assert!(job.counters().failures >= 10);
    assert_eq!(
        w.engine
            .health()
            .get(keel_core::engine::health::ComponentId::SignalJob)
            .unwrap()
            .status,
        Status::Crashed
    );
    assert_eq!(w.engine.overall(w.now), Overall::Down);
    assert_eq!(w.state(topic), BookState::Synced);
    // Still scheduled: a success recovers it.
    w.compute_fails = false;
    w.advance(Duration::from_secs(120));
    assert!(!w.engine.signal_job().is_crashed());
    assert!(w.events.iter().any(|e| matches!(e, Event::Signals(_))));
}

#[test]
fn same_seed_and_inputs_give_the_same_outputs() {
    let run = || {
        let mut w = Wire::new(config(&["BTCUSDT"]));
        w.refuse = true;
        w.close_link("x");
        w.advance(Duration::from_secs(120));
        w.connects
            .iter()
            .map(|(t, _)| t.as_nanos())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

// ----- the engine against a venue model, under random transitions -----

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    pub enum Step {
        /// An in-order delta moving the price.
        Delta { book: usize, shift: i64 },
        /// A delta that skips update ids.
        Gap { book: usize },
        /// A frame the venue sent twice.
        Stale { book: usize },
        /// The venue closes the connection.
        Drop,
        /// The venue stops answering (a stall) or answers again.
        Silence(bool),
        /// Connects are refused, or accepted again.
        Refuse(bool),
        /// Time passes.
        Wait { ms: u64 },
        /// A malformed frame arrives.
        Garbage,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0usize..2, -2i64..=2).prop_map(|(book, shift)| Step::Delta { book, shift }),
            1 => (0usize..2).prop_map(|book| Step::Gap { book }),
            1 => (0usize..2).prop_map(|book| Step::Stale { book }),
            1 => Just(Step::Drop),
            1 => any::<bool>().prop_map(Step::Silence),
            1 => any::<bool>().prop_map(Step::Refuse),
            3 => (1u64..40_000).prop_map(|ms| Step::Wait { ms }),
            1 => Just(Step::Garbage),
        ]
    }

    const TOPICS: [&str; 2] = ["orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"];

    /// Every book the engine lets anyone read matches the venue at the same update id.
    fn check(w: &Wire) -> Result<(), TestCaseError> {
        let m = w.engine.market();
        for topic in TOPICS {
            let Some(id) = m.book_id(topic) else { continue };
            let b = m.book(id);
            if let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask()) {
                prop_assert!(bid.px < ask.px, "{topic} crossed");
                let (u, vb, va) = w.books[topic];
                prop_assert!(b.last_u() <= Some(u), "{topic} ahead of the venue");
                if b.last_u() == Some(u) {
                    prop_assert_eq!(bid.px, keel_core::Dec::from_int(vb as i64), "{} bid", topic);
                    prop_assert_eq!(ask.px, keel_core::Dec::from_int(va as i64), "{} ask", topic);
                }
            }
        }
        prop_assert!(w.engine.budget().taken_total() <= 500 + w.now.as_millis() / 600);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn engine_against_a_venue_model_stays_consistent_and_heals(steps in prop::collection::vec(step(), 1..60)) {
            let mut c = config(&["BTCUSDT", "ETHUSDT"]);
            c.preflight = false;
            let mut w = Wire::new(c);
            w.advance(Duration::from_millis(1));
            for s in steps {
                match s {
                    Step::Delta { book, shift } => w.delta_moving(TOPICS[book], 0, shift),
                    Step::Gap { book } => {
                        // The venue moves without the engine seeing it; the next delta only
                        // makes sense on top of that move.
                        let b = w.books.get_mut(TOPICS[book]).unwrap();
                        b.0 += 1;
                        b.1 += 5;
                        b.2 = b.1 + 2;
                        w.delta_moving(TOPICS[book], 0, 1);
                    }
                    Step::Stale { book } => {
                        let (u, bid, ask) = w.books[TOPICS[book]];
                        let text = book_frame(TOPICS[book], "delta", u.saturating_sub(1), bid, ask);
                        if let Some(conn) = w.open.get(&LinkId(0)).copied() {
                            w.input(Input::WsFrame { link: LinkId(0), conn, text: &text });
                        }
                    }
                    Step::Drop => {
                        if w.open.contains_key(&LinkId(0)) {
                            w.close_link("dropped");
                        }
                    }
                    Step::Silence(on) => {
                        w.silent = on;
                        w.stalled = on;
                    }
                    Step::Refuse(on) => w.refuse = on,
                    Step::Wait { ms } => w.advance(Duration::from_millis(ms)),
                    Step::Garbage => {
                        if let Some(conn) = w.open.get(&LinkId(0)).copied() {
                            w.input(Input::WsFrame { link: LinkId(0), conn, text: r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","data":"#});
                        }
                    }
                }
                check(&w)?;
            }
            // Heal: the venue answers and accepts again; within a minute every book is synced
            // and shows the venue's prices.
            w.silent = false;
            w.stalled = false;
            w.refuse = false;
            w.advance(Duration::from_secs(60));
            for t in TOPICS {
                w.delta_moving(t, 0, 1);
            }
            check(&w)?;
            let m = w.engine.market();
            for t in TOPICS {
                let b = m.book(m.book_id(t).unwrap());
                prop_assert_eq!(b.state(), BookState::Synced, "{} after healing", t);
                prop_assert_eq!(b.last_u(), Some(w.books[t].0), "{} caught up", t);
            }
        }
    }
}

fn bars(from_min: u64, n: u64) -> Vec<keel_core::market::kline::Bar> {
    (from_min..from_min + n)
        .map(|m| keel_core::market::kline::Bar {
            start_ms: m * 60_000,
            open: keel_core::Dec::ONE,
            high: keel_core::Dec::ONE,
            low: keel_core::Dec::ONE,
            close: keel_core::Dec::ONE,
            volume: keel_core::Dec::ONE,
            turnover: keel_core::Dec::ONE,
        })
        .collect()
}

/// No preflight or warm-up, 29,001 stored candles from END_MIN - 30,000 on, leaving a hole (a
/// merge big enough for a compute job), and compute jobs held for the test to run.
fn stored_history_wire() -> Wire {
    let mut c = history_config();
    c.preflight = false;
    c.warmup_candles = 0;
    let mut w = Wire::new(c);
    w.engine.seed_history(
        "BTCUSDT",
        keel_core::wire::topic::Interval::Min1,
        &bars(END_MIN - 30_000, 29_001),
    );
    w.hold_compute = true;
    w
}

fn history_config() -> EngineConfig {
    let mut c = config(&["BTCUSDT"]);
    c.kline_interval = Some(keel_core::wire::topic::Interval::Min1);
    c.warmup_candles = 1000;
    c.market.closed_candles_max = 100_000;
    c
}

/// Stored history up to just before the REST page, so the merge is one contiguous run.
const END_MIN: u64 = 1_700_000_000_000 / 60_000;

#[test]
fn big_history_merge_runs_as_a_compute_job_and_is_installed() {
    let mut w = Wire::with_listed(history_config(), vec!["BTCUSDT".into()]);
    assert!(
        w.http.iter().any(|p| p.starts_with("/v5/market/kline")),
        "warm-up asked for history"
    );
    // The REST page was merged inline (small); now a big stored history and a gap backfill.
    let mut w2 = stored_history_wire();
    // A live close after a hole: the engine asks REST for the hole, then merges it.
    let topic = "kline.1.BTCUSDT";
    let close = format!(
        r#"{{"topic":"{topic}","data":[{{"start":{},"open":"1","close":"1","high":"1","low":"1","volume":"1","turnover":"1","confirm":true}}],"ts":1,"type":"snapshot"}}"#,
        (END_MIN + 5) * 60_000
    );
    let conn = w2.open[&LinkId(0)];
    w2.input(Input::WsFrame {
        link: LinkId(0),
        conn,
        text: &close,
    });
    assert!(
        w2.http
            .iter()
            .any(|p| p.contains("start=") && p.starts_with("/v5/market/kline")),
        "{:?}",
        w2.http
    );
    let (job, run, work) = w2.held_compute.pop().expect("a merge job left the engine");
    assert!(matches!(work, Work::MergeHistory(_)));
    let result = Ok(compute::run(&work));
    w2.input(Input::ComputeDone { job, run, result });
    let m = w2.engine.market();
    let s = m.series(m.series_id(topic).unwrap());
    assert!(s.closed().len() >= 29_002, "{}", s.closed().len());
    assert_eq!(
        s.last_closed().unwrap().bar.start_ms,
        (END_MIN + 5) * 60_000
    );
    assert!(
        w2.notices
            .iter()
            .any(|n| n.contains("merged by a compute job (")),
        "{:?}",
        w2.notices
    );
    w.pump();
}

#[test]
fn a_live_close_during_a_merge_job_makes_the_engine_redo_it_and_lose_nothing() {
    let mut w = stored_history_wire();
    let topic = "kline.1.BTCUSDT";
    let close = |m: u64| {
        format!(
            r#"{{"topic":"{topic}","data":[{{"start":{},"open":"1","close":"7","high":"7","low":"1","volume":"1","turnover":"1","confirm":true}}],"ts":1,"type":"snapshot"}}"#,
            m * 60_000
        )
    };
    let conn = w.open[&LinkId(0)];
    w.input(Input::WsFrame {
        link: LinkId(0),
        conn,
        text: &close(END_MIN + 1),
    });
    let (job, run, work) = w.held_compute.pop().expect("a merge job");
    // Another close arrives before the job's answer: the snapshot it merged is now stale.
    w.input(Input::WsFrame {
        link: LinkId(0),
        conn,
        text: &close(END_MIN + 2),
    });
    w.input(Input::ComputeDone {
        job,
        run,
        result: Ok(compute::run(&work)),
    });
    assert!(
        w.notices.iter().any(|n| n.contains("redone inline")),
        "{:?}",
        w.notices
    );
    let m = w.engine.market();
    let s = m.series(m.series_id(topic).unwrap());
    let last: Vec<u64> = s
        .closed()
        .rev()
        .take(2)
        .map(|c| c.bar.start_ms / 60_000)
        .collect();
    assert_eq!(
        last,
        vec![END_MIN + 2, END_MIN + 1],
        "the live closes survive the merge"
    );
}
