//! `keel run` as a user runs it: against the embedded venue on loopback, read over HTTP, stopped
//! with SIGTERM. Every server here binds 127.0.0.1 and every process is stopped by the test.

mod common;

use common::*;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn run_serves_health_and_metrics_and_exits_zero_on_sigterm() {
    let port = free_port();
    let child = keel()
        .args([
            "run",
            "--duration",
            "120",
            "--ops-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--db", &temp_db("health")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let started = Instant::now();
    let mut ok_at = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Some((200, body)) = get(port, "/health")
            && body.contains(r#""status":"ok""#)
        {
            ok_at = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok_at = ok_at.expect("/health says ok within 20 s");
    println!("health ok after {ok_at:?}");
    let (_, health) = get(port, "/health").unwrap();
    assert!(
        health.contains(r#""orderbook.50.BTCUSDT":"synced""#),
        "{health}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let (status, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    for name in [
        "keel_frames_total",
        "keel_bad_frames_total",
        "keel_reconnects_total",
        "keel_connect_attempts_total",
        "keel_rest_requests_total",
        "keel_loop_lag_seconds_bucket",
        "keel_watchdog_stalls_total",
        "keel_job_restarts_total",
        "keel_consumer_drops_total",
        "keel_book_state",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let frames: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keel_frames_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(frames > 50, "frames counted: {frames}");

    let t = Instant::now();
    sigterm(&child.0);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "exit within 2 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("exited {status:?} {:?} after SIGTERM", t.elapsed());
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("processing 3 symbols: BTCUSDT,ETHUSDT,SOLUSDT"),
        "{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(get(port, "/health").is_none(), "the ops server is gone");
}

#[test]
fn bad_configuration_is_a_clear_error_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("keel-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("symbolz = [\"BTCUSDT\"]\n", "symbolz"),
        ("venue_url = \"ftp://example\"\n", "venue_url"),
        ("symbols = [\"btc\"]\n", "symbols"),
        ("[link]\nping_interval_ms = 0\n", "link.ping_interval_ms"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = keel()
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(key), "{text}: {err}");
    }
    let out = keel()
        .args(["run", "--config", "/nonexistent/keel.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keel.toml"));
    let out = keel()
        .args(["run", "--venue-url", "not a url"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = keel()
        .args(["run", "--duration", "5"])
        .env("HEALTH_CHECK_INTERVAL", "soon")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEALTH_CHECK_INTERVAL"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unknown_symbol_on_the_venue_is_a_clear_error_and_a_non_zero_exit() {
    let vport = free_port();
    let _venue = spawn_venue(vport, "BTCUSDT", &["--duration", "60"]);
    let out = keel()
        .args([
            "run",
            "--venue-url",
            &format!("http://127.0.0.1:{vport}"),
            "--symbols",
            "BTCUSDT,NOPEUSDT",
        ])
        .args([
            "--ops-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--duration",
            "30",
        ])
        .args(["--db", &temp_db("unknown")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("unknown symbol NOPEUSDT"), "{err}");
}
