//! Live trading under faults: the store against the venue after lost acks, stalls, storms,
//! kills and swarms.

use super::*;

/// Trades for `before`, runs `fault` (any number of faults over `during`), lets it settle, checks
/// the store against the venue, and then that the faults did bite: `bit` sees the machine's
/// counters summed over the bot's lives and the orders sent before the first fault. A fault only
/// proves something when an order meets it, so it is applied again (at most four times) until
/// one has.
fn live_scenario(
    seed: u64,
    before: Duration,
    during: Duration,
    fault: impl Fn(&mut live::LiveRun<'_>) -> Result<(), String>,
    bit: impl Fn(&live::Seen, u64) -> bool,
) -> Result<(), String> {
    let mut run = live::LiveRun::new(seed, secs(900));
    run.run_for(before)?;
    if run.seen().creates == 0 {
        return Err(format!("no order sent in {before:?}: {:?}", run.seen()));
    }
    let creates_before = run.seen().creates;
    for _ in 0..4 {
        fault(&mut run)?;
        run.run_for(during)?;
        if std::env::var("KEEL_DEBUG").is_ok() {
            eprintln!("{:?}: {:?}", run.sim.elapsed(), run.seen());
        }
        if bit(&run.seen(), creates_before) {
            break;
        }
    }
    let summary = run.settle_and_check(secs(90))?;
    println!("seed {seed}: {summary}");
    if !bit(&run.seen(), creates_before) {
        return Err(format!("the fault never bit: {summary}"));
    }
    Ok(())
}

/// The private stream is held for `secs`. Under 30 s the link does not call it dead (it waits
/// that long for a frame): orders go on and fill, and their pushes are held.
fn stall_private(r: &live::LiveRun<'_>, secs: f64) {
    r.fault(Fault::StallPrivate { secs });
}

#[test]
fn live_lost_acks_are_looked_up_and_no_order_is_made_twice() {
    check(
        "live_lost_acks_are_looked_up_and_no_order_is_made_twice",
        41,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(40),
                |r| {
                    stall_private(r, 25.0);
                    r.fault(Fault::DropOrderAck { count: Some(4) });
                    Ok(())
                },
                // Four creates after the fault: each of their acks was lost, and each order was
                // found by a look-up or by its pushes, whichever came first.
                |s, before| s.creates >= before + 4,
            )
        },
    );
}

#[test]
fn live_acks_later_than_the_timeout_are_resolved_by_orderlinkid() {
    check(
        "live_acks_later_than_the_timeout_are_resolved_by_orderlinkid",
        42,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(40),
                |r| {
                    r.fault(Fault::DelayRest {
                        ms: 12_000,
                        secs: 30.0,
                    });
                    Ok(())
                },
                |s, _| s.counters.ambiguous > 0,
            )
        },
    );
}

#[test]
fn live_private_stream_stalls_while_orders_fill_and_nothing_is_lost() {
    check(
        "live_private_stream_stalls_while_orders_fill_and_nothing_is_lost",
        43,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(40),
                |r| {
                    stall_private(r, 25.0);
                    Ok(())
                },
                |s, _| s.counters.lookups > 0,
            )
        },
    );
}

#[test]
fn live_10006_and_10016_storms_pass_without_a_duplicate() {
    check(
        "live_10006_and_10016_storms_pass_without_a_duplicate",
        44,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(30),
                |r| {
                    r.fault(Fault::PrivateRetCode {
                        code: 10006,
                        secs: 20.0,
                    });
                    r.run_for(secs(25))?;
                    r.fault(Fault::PrivateRetCode {
                        code: 10016,
                        secs: 20.0,
                    });
                    Ok(())
                },
                |s, _| s.counters.rate_limited > 0 && s.counters.ambiguous > 0,
            )
        },
    );
}

#[test]
fn live_duplicate_filled_pushes_count_once() {
    check("live_duplicate_filled_pushes_count_once", 45, |seed| {
        live_scenario(
            seed,
            secs(20),
            secs(40),
            |r| {
                r.fault(Fault::DuplicateFilled { secs: 40.0 });
                Ok(())
            },
            |s, before| s.creates > before && s.counters.duplicate_fills > 0,
        )
    });
}

#[test]
fn live_venue_forgetting_its_recent_orders_loses_nothing() {
    check(
        "live_venue_forgetting_its_recent_orders_loses_nothing",
        46,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(10),
                |r| {
                    stall_private(r, 25.0);
                    for _ in 0..4 {
                        r.fault(Fault::ClearRecentOrders);
                        r.run_for(secs(7))?;
                    }
                    Ok(())
                },
                |s, _| s.counters.lookups > 0,
            )
        },
    );
}

#[test]
fn live_clock_skewed_past_recv_window_resyncs_and_trades_on() {
    check(
        "live_clock_skewed_past_recv_window_resyncs_and_trades_on",
        47,
        |seed| {
            live_scenario(
                seed,
                secs(20),
                secs(40),
                |r| {
                    r.skew_ms.store(8_000, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                },
                |s, _| s.counters.clock_resyncs > 0,
            )
        },
    );
}

#[test]
fn live_process_killed_at_random_moments_restarts_without_a_duplicate_or_a_lost_fill() {
    check(
        "live_process_killed_at_random_moments_restarts_without_a_duplicate_or_a_lost_fill",
        48,
        |seed| {
            live_scenario(
                seed,
                secs(15),
                secs(10),
                |r| {
                    // Answers take 2.5 s, so the kills land between intent, send, ack and fill.
                    r.fault(Fault::DelayRest {
                        ms: 2_500,
                        secs: 60.0,
                    });
                    let mut rng = Rng::new(seed ^ 0x5eed);
                    for _ in 0..8 {
                        // Die at a random moment within 3 s of an order going out: between
                        // intent, send, ack and fill, or just after.
                        let creates = r.seen().creates;
                        let waited = r.sim.elapsed();
                        while r.seen().creates == creates {
                            if r.sim.elapsed() - waited > secs(120) {
                                return Err("no order went out to kill the bot after".into());
                            }
                            r.run_for(Duration::from_millis(50))?;
                        }
                        r.run_for(Duration::from_millis(rng.next_u64() % 3_000))?;
                        r.sim.bounce("bot");
                    }
                    Ok(())
                },
                |s, _| s.starts > 8 && s.counters.lookups > 0,
            )
        },
    );
}

/// One thing that goes wrong during a live swarm.
#[derive(Debug, Clone)]
enum LiveChaos {
    Venue(Fault),
    Bounce,
    Partition(u64),
    Repair,
    Skew(i64),
}

/// A live fault plan drawn from the seed: every few seconds for `span`, one of the live
/// scenarios' faults, a partition between the bot and the venue, a clock jump, or a kill.
fn live_plan(seed: u64, span: Duration) -> Vec<(Duration, LiveChaos)> {
    let mut rng = Rng::new(seed ^ 0x11fe_5a4d);
    let mut t = secs(20);
    let mut out = Vec::new();
    while t < span {
        let d = 3 + rng.up_to(25);
        let c = match rng.up_to(10) {
            0 => LiveChaos::Venue(Fault::DropOrderAck {
                count: Some(1 + rng.up_to(3) as u32),
            }),
            1 => LiveChaos::Venue(Fault::DelayRest {
                ms: 500 + rng.up_to(11_500),
                secs: d as f64,
            }),
            2 => LiveChaos::Venue(Fault::StallPrivate { secs: d as f64 }),
            3 => LiveChaos::Venue(Fault::DropPrivate),
            4 => LiveChaos::Venue(Fault::PrivateRetCode {
                code: if rng.up_to(2) == 0 { 10006 } else { 10016 },
                secs: d as f64,
            }),
            5 => LiveChaos::Venue(Fault::DuplicateFilled { secs: d as f64 }),
            6 => LiveChaos::Venue(Fault::ClearRecentOrders),
            7 => LiveChaos::Bounce,
            8 => LiveChaos::Partition(d),
            _ => LiveChaos::Skew(rng.up_to(16_000) as i64 - 8_000),
        };
        out.push((t, c));
        t += Duration::from_secs(3 + rng.up_to(15));
    }
    out
}

#[test]
fn live_swarm_of_faults_then_heal_leaves_the_store_equal_to_the_venue() {
    check(
        "live_swarm_of_faults_then_heal_leaves_the_store_equal_to_the_venue",
        401,
        |seed| {
            let mut run = live::LiveRun::new(seed, secs(900));
            let mut plan = live_plan(seed, secs(240));
            let mut done = Vec::new();
            while let Some(i) = (0..plan.len()).min_by_key(|i| plan[*i].0) {
                let (at, c) = plan.remove(i);
                let now = run.sim.elapsed();
                if at > now {
                    run.run_for(at - now)?;
                }
                match &c {
                    LiveChaos::Venue(f) => run.fault(f.clone()),
                    LiveChaos::Bounce => run.sim.bounce("bot"),
                    LiveChaos::Partition(d) => {
                        run.sim.partition("bot", keel_sim::harness::VENUE_HOST);
                        plan.push((at + secs(*d), LiveChaos::Repair));
                    }
                    LiveChaos::Repair => run.sim.repair("bot", keel_sim::harness::VENUE_HOST),
                    LiveChaos::Skew(ms) => {
                        run.skew_ms.store(*ms, std::sync::atomic::Ordering::Relaxed)
                    }
                }
                done.push(format!("{at:?} {c:?}"));
            }
            let summary = run
                .settle_and_check(secs(120))
                .map_err(|e| format!("{e}\nplan:\n{}", done.join("\n")))?;
            println!("seed {seed}: {} faults; {summary}", done.len());
            Ok(())
        },
    );
}
