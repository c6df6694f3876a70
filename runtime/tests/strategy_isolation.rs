//! Strategies on real threads (part 3 of the strategies issue): one that sleeps 10 s a call
//! and one that panics every third call, beside a healthy one, in a real `keel run` on the
//! embedded venue. The healthy one keeps trading, the event loop's lag stays under 1 ms at p99,
//! and /health names both faults while the bot stays up.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use keel_runtime::cli::Extras;
use keel_runtime::config::{self, FileConfig, Overrides};
use keel_runtime::strategy::{Context, Intent, SharedStrategy, SignalSide, Strategy};

struct Sleeper;

impl Strategy for Sleeper {
    fn name(&self) -> &str {
        "sleeper"
    }
    fn evaluate(&self, _: &Context<'_>, _: &mut Vec<Intent>) {
        std::thread::sleep(Duration::from_secs(10));
    }
}

#[derive(Default)]
struct Panicker(AtomicU64);

impl Strategy for Panicker {
    fn name(&self) -> &str {
        "panicker"
    }
    fn evaluate(&self, _: &Context<'_>, _: &mut Vec<Intent>) {
        if self.0.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
            panic!("every third call");
        }
    }
}

/// Long, then short, then long: one order every call.
#[derive(Default)]
struct Flipper(AtomicU64);

impl Strategy for Flipper {
    fn name(&self) -> &str {
        "flipper"
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        if ctx.symbol != "BTCUSDT" {
            return;
        }
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let side = if n.is_multiple_of(2) {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        out.push(Intent::signal(side, 1.0, format!("call {n}")));
    }
}

#[test]
fn a_sleeping_and_a_panicking_strategy_never_stop_a_healthy_one() {
    let port = free_port();
    let mut file = FileConfig::default();
    file.jobs.signal_every_ms = Some(1_000);
    file.jobs.signal_deadline_ms = Some(2_000);
    let mut cfg = config::resolve(
        file,
        Overrides {
            symbols: Some("BTCUSDT,ETHUSDT".into()),
            ops_addr: Some(format!("127.0.0.1:{port}")),
            auto_execute: true,
            db: Some(temp_db("isolation")),
            ..Default::default()
        },
    )
    .unwrap();
    Extras {
        strategies: vec![
            SharedStrategy::new(Flipper::default()),
            SharedStrategy::new(Sleeper),
            SharedStrategy::new(Panicker::default()),
        ],
        builtins: false,
    }
    .apply(&mut cfg.engine)
    .unwrap();

    // /health from outside while it runs, once the sleeper has had time to be disabled.
    let probe = std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(40) {
            if let Some((code, v)) = get_json(port, "/health") {
                let c = &v["components"];
                let done = c["strategy.sleeper"]["status"] == "stopped"
                    && c["strategy.panicker"]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("every third call"));
                last = Some((code, v));
                if done && start.elapsed() > Duration::from_secs(25) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        last
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(async move {
            let (tx, rx) = tokio::sync::watch::channel(false);
            keel_runtime::run::spawn_shutdown(tx, Some(Duration::from_secs(45)));
            keel_runtime::run::run(cfg, rx).await
        })
        .unwrap();
    // A sleeping call may still be out: the runtime does not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));

    let (code, health) = probe.join().unwrap().expect("/health answered");
    let c = &health["components"];
    println!("{}", serde_json::to_string_pretty(c).unwrap());
    assert_eq!(code, 200, "degraded, not down: {health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(c["strategy.sleeper"]["status"], "stopped");
    let detail = c["strategy.sleeper"]["detail"].as_str().unwrap();
    assert!(detail.contains("disabled after 5 failures"), "{detail}");
    assert!(!detail.contains("overruns 0"), "{detail}");
    let detail = c["strategy.panicker"]["detail"].as_str().unwrap();
    assert!(!detail.contains("panics 0,"), "{detail}");
    assert_eq!(c["strategy.flipper"]["status"], "running");

    let slots = report.engine.strategy_slots();
    let (flipper, sleeper, panicker) = (
        slots[0].counters(),
        slots[1].counters(),
        slots[2].counters(),
    );
    println!("flipper {flipper:?}\nsleeper {sleeper:?}\npanicker {panicker:?}");
    assert!(flipper.succeeded >= 30, "{flipper:?}");
    assert_eq!(flipper.panics + flipper.overruns + flipper.busy, 0);
    assert!(sleeper.overruns >= 1 && slots[1].disabled().is_some());
    assert!(panicker.panics >= 8, "{panicker:?}");
    assert!(slots[2].disabled().is_none());
    let orders = report.engine.orders().unwrap().counters();
    println!("orders {orders:?}");
    assert!(
        orders.fills >= 20,
        "the healthy strategy kept trading: {orders:?}"
    );

    let lag = report.metrics.loop_lag_histogram();
    let p99_ms = lag.value_at_quantile(0.99) as f64 / 1e6;
    println!(
        "loop lag: {} samples, p99 {p99_ms:.3} ms, max {:.3} ms",
        lag.len(),
        lag.max() as f64 / 1e6
    );
    assert!(lag.len() > 1_000);
    assert!(p99_ms < 1.0, "loop lag p99 {p99_ms} ms");
}
