//! `keel backfill` against the venue: complete, then free on a re-run; and under 429s, 403s
//! and timeouts, bounded and resumable until it is complete.

mod common;

use common::*;

/// Runs `keel` with `args`, which must succeed: (candles, requests) from its summary line.
fn backfill(args: &[&str]) -> (u64, u64) {
    let out = keel().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backfill done:"))
        .unwrap_or_else(|| {
            panic!(
                "no summary: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert!(
        line.contains("elapsed_s=") && line.contains("bound_s="),
        "{line}"
    );
    (field("candles"), field("requests"))
}

const WANT: u64 = 3 * 2 * 24 * 60;

#[test]
fn backfill_stores_every_closed_candle_and_a_rerun_asks_at_most_once_per_symbol() {
    let db = temp_db("clean");
    let args = [
        "backfill",
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--interval",
        "1",
        "--days",
        "2",
        "--db",
        &db,
    ];
    let (candles, requests) = backfill(&args);
    assert_eq!(candles, WANT, "every closed candle of 2 days for 3 symbols");
    assert_eq!(requests, 9, "pages of 1000");
    let (_, again) = backfill(&args);
    assert!(
        again <= 3,
        "a re-run makes at most one request per symbol: {again}"
    );
}

#[test]
fn backfill_under_429s_403s_and_timeouts_is_bounded_resumable_and_completes() {
    let port = free_port();
    let _venue = spawn_venue(
        port,
        "BTCUSDT,ETHUSDT,SOLUSDT",
        &[
            "--duration",
            "90",
            "--fault",
            r#"0:{"kind":"rest_status","status":429,"secs":2.0}"#,
            "--fault",
            r#"2:{"kind":"forbid","secs":1.5}"#,
            "--fault",
            r#"4:{"kind":"delay_rest","ms":1500,"secs":3.0}"#,
        ],
    );
    let db = temp_db("faults");
    let url = format!("http://127.0.0.1:{port}");
    let args = [
        "backfill",
        "--symbols",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--days",
        "2",
        "--db",
        &db,
        "--venue-url",
        &url,
        "--rest-penalty-ms",
        "2000",
        "--rest-timeout-ms",
        "1000",
    ];
    let mut total = 0;
    let mut runs = 0;
    let mut requests_all = 0;
    while total < WANT {
        runs += 1;
        assert!(
            runs <= 4,
            "not complete after {} runs: {total} of {WANT}",
            runs - 1
        );
        let (candles, requests) = backfill(&args);
        // Nine pages, each tried at most retries_max + 1 = 5 times.
        assert!(requests <= 9 * 5, "bounded retries: {requests} requests");
        total += candles;
        requests_all += requests;
    }
    assert_eq!(total, WANT);
    println!("complete after {runs} run(s), {requests_all} requests in all");
}
