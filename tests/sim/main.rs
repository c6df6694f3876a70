//! Deterministic fault injection: the real runtime and the venue on a turmoil network.
//! Each scenario takes its seed from `KEEL_SEED` (a fixed default otherwise), runs every seed of
//! `KEEL_SEEDS`, asserts its bounds in virtual time, and prints how to reproduce a failure.
//! Every step is timed on the real clock: a step that blocks is a freeze and fails the test.

mod harness;
mod live;
mod trading;

use std::time::Duration;

use harness::{Consumer, Opts, Probe, SimRun, check};
use keel_core::engine::health::Overall;
use keel_core::rng::Rng;
use keel_venue::Fault;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Starts a run and waits until the bot is live with every book synced.
fn started<'a>(seed: u64, opts: Opts) -> Result<SimRun<'a>, String> {
    let mut run = SimRun::new(seed, opts);
    run.run_until(secs(10), "start", healthy)?;
    Ok(run)
}

fn healthy(p: &Probe) -> bool {
    p.live && p.books > 0 && p.books_synced == p.books
}

/// The engine defaults: reconnect delays are capped at 30 s.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

#[test]
fn partition_30s_then_repair_resyncs_within_the_backoff_cap() {
    check(
        "partition_30s_then_repair_resyncs_within_the_backoff_cap",
        101,
        |seed| {
            let mut run = started(seed, Opts::default())?;
            run.run_for(secs(5))?;
            run.sim.partition("bot", "venue");
            run.run_for(secs(30))?;
            run.sim.repair("bot", "venue");
            let took = run.run_until(BACKOFF_CAP + secs(5), "resynced after repair", healthy)?;
            run.books_match_venue(50)?;
            let p = run.finish()?;
            assert!(p.reconnects >= 1, "the zombie connection was detected");
            println!(
                "seed {seed}: resynced {took:?} after repair, {} reconnects",
                p.reconnects
            );
            Ok(())
        },
    );
}

#[test]
fn hold_60s_is_detected_by_a_timeout_and_the_link_recovers() {
    check(
        "hold_60s_is_detected_by_a_timeout_and_the_link_recovers",
        102,
        |seed| {
            let mut run = started(seed, Opts::default())?;
            run.run_for(secs(5))?;
            run.sim.hold("bot", "venue");
            // Idle timeout 30 s, pong timeout 10 s after a ping every 20 s: one fires within 30 s.
            let detected = run.run_until(secs(31), "stall detected", |p| {
                p.pong_timeouts + p.idle_timeouts > 0
            })?;
            run.run_for(secs(60) - detected)?;
            run.sim.release("bot", "venue");
            let took = run.run_until(BACKOFF_CAP + secs(10), "recovered after release", healthy)?;
            run.books_match_venue(50)?;
            let p = run.finish()?;
            println!(
                "seed {seed}: stall detected after {detected:?} (pong timeouts {}, idle {}), healthy {took:?} after release",
                p.pong_timeouts, p.idle_timeouts
            );
            Ok(())
        },
    );
}

#[test]
fn venue_bounce_resets_books_and_never_mixes_them() {
    check(
        "venue_bounce_resets_books_and_never_mixes_them",
        103,
        |seed| {
            let mut run = started(seed, Opts::default())?;
            run.run_for(secs(5))?;
            run.sim.bounce("venue");
            run.run_until(secs(40), "books out of sync after the bounce", |p| {
                p.books_synced < p.books || !p.live
            })?;
            run.run_until(BACKOFF_CAP + secs(10), "healthy after the bounce", healthy)?;
            // The venue restarted from u = 1: the bot's books are the new venue's, level for level.
            run.books_match_venue(50)?;
            run.fault(Fault::Restart);
            run.run_for(secs(2))?;
            run.books_match_venue(50)?;
            let p = run.finish()?;
            println!("seed {seed}: {} reconnects", p.reconnects);
            Ok(())
        },
    );
}

#[test]
fn skipped_update_id_resyncs_the_book_without_anyone_reading_it() {
    check(
        "skipped_update_id_resyncs_the_book_without_anyone_reading_it",
        104,
        |seed| {
            let mut run = started(seed, Opts::default())?;
            run.run_for(secs(6))?;
            run.fault(Fault::Skip {
                symbol: Some("BTCUSDT".into()),
            });
            run.run_until(secs(2), "gap noticed", |p| {
                p.unsynced_seen.contains("orderbook.50.BTCUSDT")
            })?;
            let took = run.run_until(secs(5), "book repaired", healthy)?;
            run.run_for(secs(6))?;
            run.books_match_venue(50)?;
            let p = run.finish()?;
            assert_eq!(p.reconnects, 0, "repaired without a reconnect");
            println!(
                "seed {seed}: repaired in {took:?}, {} signal cycles",
                p.signal_cycles
            );
            Ok(())
        },
    );
}

#[test]
fn refused_connections_for_10_min_stay_within_budget_and_cap() {
    check(
        "refused_connections_for_10_min_stay_within_budget_and_cap",
        105,
        |seed| {
            let mut run = started(seed, Opts::default())?;
            run.fault(Fault::Refuse { secs: 600.0 });
            run.fault(Fault::Drop);
            let t0 = run.elapsed();
            run.run_for(secs(600))?;
            let connects: Vec<Duration> =
                run.probe(|p| p.connects.iter().copied().filter(|t| *t > t0).collect());
            let gaps: Vec<Duration> = connects.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                connects.len() <= 500,
                "{} connects in 10 min, over the budget",
                connects.len()
            );
            assert!(
                gaps.iter()
                    .all(|g| *g >= secs(1) && *g <= BACKOFF_CAP + secs(11)),
                "{gaps:?}"
            );
            let took = run.run_until(
                BACKOFF_CAP + secs(10),
                "back once the venue accepts",
                healthy,
            )?;
            run.finish()?;
            println!(
                "seed {seed}: {} connect attempts in 10 min refused; back {took:?} after",
                connects.len()
            );
            Ok(())
        },
    );
}

#[test]
fn forbidden_rest_pauses_for_the_penalty_and_server_errors_retry_boundedly() {
    check(
        "forbidden_rest_pauses_for_the_penalty_and_server_errors_retry_boundedly",
        106,
        |seed| {
            let opts = Opts {
                symbols: vec!["BTCUSDT".into()],
                config: Box::new(|c| {
                    // The 1000-level book is repaired from REST snapshots.
                    c.book_depth = 1000;
                    c.rest.penalty_ms = 120_000;
                }),
                ..Opts::default()
            };
            let mut run = started(seed, opts)?;
            run.fault(Fault::Forbid { secs: 60.0 });
            run.fault(Fault::Skip { symbol: None });
            run.run_until(secs(5), "REST paused", |p| p.rest_paused)?;
            let paused_at = run.elapsed();
            let sent_before = run.probe(|p| p.http_sent.len());
            run.run_for(secs(119))?;
            let during = run.probe(|p| p.http_sent.len()) - sent_before;
            assert_eq!(during, 0, "nothing is sent during the penalty");
            run.run_until(secs(40), "book repaired after the penalty", healthy)?;
            assert!(run.elapsed() - paused_at >= secs(120));
            // Now 429s for 30 s: each repair request retries a bounded number of times.
            run.fault(Fault::RestStatus {
                status: 429,
                secs: 30.0,
            });
            let before = run.probe(|p| p.http_sent.len());
            run.fault(Fault::Skip { symbol: None });
            run.run_for(secs(30))?;
            let storm = run.probe(|p| p.http_sent.len()) - before;
            assert!(
                (1..=30).contains(&storm),
                "{storm} requests in 30 s of 429s"
            );
            run.run_until(secs(60), "repaired after the 429s", healthy)?;
            let p = run.finish()?;
            println!(
                "seed {seed}: 0 requests during the 403 penalty, {storm} during 30 s of 429s, {} in all",
                p.http_sent.len()
            );
            Ok(())
        },
    );
}

#[test]
fn slow_consumer_never_holds_up_pings_or_frames() {
    check(
        "slow_consumer_never_holds_up_pings_or_frames",
        107,
        |seed| {
            let opts = Opts {
                consumer: Consumer::Slow(secs(2)),
                consumer_events_max: 16,
                ..Opts::default()
            };
            let mut run = started(seed, opts)?;
            let frames0 = run.probe(|p| p.frames);
            run.run_for(secs(60))?;
            let p = run.finish()?;
            assert!(p.pings >= 2, "pings went on: {}", p.pings);
            assert_eq!(p.pong_timeouts + p.idle_timeouts, 0);
            assert_eq!(p.reconnects, 0);
            assert!(
                p.frames > frames0 + 1000,
                "frames kept coming: {}",
                p.frames - frames0
            );
            assert!(p.consumer_drops > 0, "drops are counted");
            println!(
                "seed {seed}: {} frames, {} pings, {} events dropped",
                p.frames - frames0,
                p.pings,
                p.consumer_drops
            );
            Ok(())
        },
    );
}

#[test]
fn slow_signal_job_is_timed_out_and_restarted_while_data_flows() {
    check(
        "slow_signal_job_is_timed_out_and_restarted_while_data_flows",
        108,
        |seed| {
            let opts = Opts {
                compute_cost: secs(30),
                config: Box::new(|c| {
                    c.signal_job.every_ms = 5_000;
                    c.signal_job.deadline_ms = 10_000;
                }),
                ..Opts::default()
            };
            let mut run = started(seed, opts)?;
            let frames0 = run.probe(|p| p.frames);
            run.run_for(secs(120))?;
            let synced = run.probe(healthy);
            let p = run.finish()?;
            assert!(p.job_overdue >= 2, "overdue runs: {}", p.job_overdue);
            assert!(p.job_restarts >= 2, "restarts: {}", p.job_restarts);
            assert!(synced, "market data unaffected");
            assert!(p.frames > frames0 + 2000, "frames kept coming");
            assert_eq!(p.reconnects, 0);
            println!(
                "seed {seed}: {} overdue runs, {} restarts, {} frames",
                p.job_overdue,
                p.job_restarts,
                p.frames - frames0
            );
            Ok(())
        },
    );
}

#[test]
fn a_real_blocking_call_is_caught_by_the_freeze_detector_and_the_watchdog() {
    check(
        "a_real_blocking_call_is_caught_by_the_freeze_detector_and_the_watchdog",
        109,
        |seed| {
            let opts = Opts {
                consumer: Consumer::Blocking(Duration::from_millis(300)),
                watchdog: true,
                ..Opts::default()
            };
            let mut run = SimRun::new(seed, opts);
            let err = run
                .run_for(secs(20))
                .expect_err("a 300 ms block must be caught");
            assert!(err.contains("freeze"), "{err}");
            // The runtime's own watchdog (a real thread) saw the loop stop too.
            let t = std::time::Instant::now();
            while run.metrics.watchdog_stalls.get() == 0 && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                run.metrics.watchdog_stalls.get() >= 1,
                "watchdog counted the stall"
            );
            println!("seed {seed}: {err}");
            Ok(())
        },
    );
}

#[test]
fn same_seed_twice_gives_the_same_trace() {
    check("same_seed_twice_gives_the_same_trace", 202, |seed| {
        let trace = |seed| -> Result<(u64, u64), String> {
            let mut run = started(seed, Opts::default())?;
            run.run_for(secs(20))?;
            run.fault(Fault::Skip { symbol: None });
            run.run_for(secs(10))?;
            let p = run.finish()?;
            Ok((p.trace, p.outputs))
        };
        let (a, b) = (trace(seed)?, trace(seed)?);
        assert_eq!(a, b, "same seed, same trace");
        assert!(a.1 > 300, "a real trace: {} outputs", a.1);
        Ok(())
    });
}

/// One fault of the swarm's plan.
#[derive(Debug, Clone, Copy)]
enum Chaos {
    Partition(u64),
    Hold(u64),
    Bounce,
    Refuse(u64),
    Skip,
    Restart,
    Drop,
    Forbid(u64),
    Rest500(u64),
    Latency(u64),
    SlowConsumer(u64),
}

fn plan(seed: u64, span: Duration) -> Vec<(Duration, Chaos)> {
    let mut rng = Rng::new(seed ^ 0x5157_4a52);
    let mut t = Duration::from_secs(10);
    let mut out = Vec::new();
    while t < span {
        let d = 5 + rng.up_to(40);
        let c = match rng.up_to(10) {
            0 => Chaos::Partition(d),
            1 => Chaos::Hold(d),
            2 => Chaos::Bounce,
            3 => Chaos::Refuse(d),
            4 => Chaos::Skip,
            5 => Chaos::Restart,
            6 => Chaos::Drop,
            7 => Chaos::Forbid(d),
            8 => Chaos::Rest500(d),
            9 => Chaos::SlowConsumer(d * 20),
            _ => Chaos::Latency(d),
        };
        out.push((t, c));
        t += Duration::from_secs(10 + rng.up_to(50));
    }
    out
}

#[test]
fn swarm_of_faults_then_heal_leaves_the_bot_live_and_consistent() {
    check(
        "swarm_of_faults_then_heal_leaves_the_bot_live_and_consistent",
        301,
        |seed| {
            let consumer_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let opts = Opts {
                jitter: true,
                consumer: Consumer::Dynamic(consumer_ms.clone()),
                config: Box::new(|c| {
                    c.rest.penalty_ms = 60_000;
                    // Trade on paper throughout, so order ids are checked under every fault.
                    c.auto_execute = true;
                    c.strategy.confidence_min = 0.0;
                }),
                ..Opts::default()
            };
            let mut run = started(seed, opts)?;
            let span = secs(600);
            let start = run.elapsed();
            let mut heal_at: Vec<(Duration, &str)> = Vec::new();
            for (at, chaos) in plan(seed, span) {
                run.run_for((start + at).saturating_sub(run.elapsed()))?;
                let now = run.elapsed();
                let until = |d: u64| now + secs(d);
                match chaos {
                    Chaos::Partition(d) => {
                        run.sim.partition("bot", "venue");
                        heal_at.push((until(d), "partition"));
                    }
                    Chaos::Hold(d) => {
                        run.sim.hold("bot", "venue");
                        heal_at.push((until(d), "hold"));
                    }
                    Chaos::Bounce => run.sim.bounce("venue"),
                    Chaos::Refuse(d) => run.fault(Fault::Refuse { secs: d as f64 }),
                    Chaos::Skip => run.fault(Fault::Skip { symbol: None }),
                    Chaos::Restart => run.fault(Fault::Restart),
                    Chaos::Drop => run.fault(Fault::Drop),
                    Chaos::Forbid(d) => run.fault(Fault::Forbid { secs: d as f64 }),
                    Chaos::Rest500(d) => run.fault(Fault::RestStatus {
                        status: 500,
                        secs: d as f64,
                    }),
                    Chaos::Latency(ms) => run
                        .sim
                        .set_max_message_latency(Duration::from_millis(ms * 10)),
                    Chaos::SlowConsumer(ms) => {
                        consumer_ms.store(ms, std::sync::atomic::Ordering::Relaxed)
                    }
                }
                // Network faults heal on their own schedule; several may overlap.
                let now = run.elapsed();
                heal_at.retain(|(t, what)| {
                    if *t <= now {
                        match *what {
                            "partition" => run.sim.repair("bot", "venue"),
                            _ => run.sim.release("bot", "venue"),
                        }
                        false
                    } else {
                        true
                    }
                });
            }
            run.run_for((start + span).saturating_sub(run.elapsed()))?;
            // Heal everything.
            run.sim.repair("bot", "venue");
            run.sim.release("bot", "venue");
            run.sim.set_max_message_latency(Duration::from_millis(50));
            run.fault(Fault::Clear);
            consumer_ms.store(0, std::sync::atomic::Ordering::Relaxed);
            let took = run.run_until(secs(60), "live and synced after healing", |p| {
                healthy(p) && p.overall == Some(Overall::Ok)
            })?;
            // Messages delayed by an earlier latency fault may still be in flight.
            run.books_match_venue_within(50, secs(60) - took)?;
            let p = run.finish()?;
            println!(
                "seed {seed}: worst step {:?} of {} steps",
                p.worst_step, p.steps
            );
            assert!(!p.order_ids.is_empty(), "the bot traded during the swarm");
            println!(
                "seed {seed}: healed in {took:?}; {} reconnects, {} frames, {} outputs, {} paper orders",
                p.reconnects,
                p.frames,
                p.outputs,
                p.order_ids.len()
            );
            Ok(())
        },
    );
}
