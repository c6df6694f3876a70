//! A consumer that takes 500 ms per event must not slow the event loop: pings and frames go on,
//! drops are counted, loop lag stays small. Runs the real runtime against the embedded venue.

use std::time::Duration;

use keel_runtime::config::{FileConfig, LinkFile, Overrides, resolve};
use keel_runtime::driver::Exit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_never_slows_the_loop() {
    let file = FileConfig {
        consumer_delay_ms: Some(500),
        consumer_events_max: Some(16),
        db: Some(
            std::env::temp_dir()
                .join(format!("keel-slow-consumer-{}.db", std::process::id()))
                .to_string_lossy()
                .into_owned(),
        ),
        link: LinkFile {
            ping_interval_ms: Some(1_000),
            pong_timeout_ms: Some(1_000),
            ..LinkFile::default()
        },
        ..FileConfig::default()
    };
    let cfg = resolve(
        file,
        Overrides {
            ops_addr: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(keel_runtime::run::run(cfg, rx));
    tokio::time::sleep(Duration::from_secs(8)).await;
    tx.send(true).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.exit, Exit::Clean);
    let e = &report.engine;
    let link = &e.links()[0];
    println!(
        "frames={} pings={} consumer_took={} drops={} lag_max_ms={:.2} stalls={}",
        e.counters().frames,
        link.counters().pings,
        report.consumer.taken(),
        e.counters().consumer_drops,
        report.metrics.loop_lag_max().as_secs_f64() * 1e3,
        report.metrics.watchdog_stalls.get()
    );
    assert!(link.counters().pings >= 5, "pings went on");
    assert_eq!(link.counters().pong_timeouts, 0);
    assert_eq!(e.reconnects(), 0, "the connection never suffered");
    assert!(e.counters().frames > 500, "frames kept reaching the engine");
    assert!(
        report.consumer.taken() <= 20,
        "the consumer really was slow"
    );
    assert!(
        e.counters().consumer_drops > 0,
        "what it could not take was dropped and counted"
    );
    assert!(
        report.metrics.loop_lag_max() < Duration::from_millis(50),
        "loop lag stays under 50 ms"
    );
    assert_eq!(report.metrics.watchdog_stalls.get(), 0);
}
