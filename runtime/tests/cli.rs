//! The `keel` binary's command line, run as a user would.

mod common;

use common::*;
use std::path::PathBuf;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/bybit")
        .join(rel)
}

#[test]
fn replay_each_prints_one_line_per_book_frame_then_the_final_books() {
    let out = keel()
        .args(["replay", "--each", "--levels", "1"])
        .arg(fixture("ws/linear/orderbook.1.BTCUSDT.small.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5 + 1, "{stdout}");
    assert_eq!(
        lines[0],
        r#"{"topic":"orderbook.1.BTCUSDT","u":42452159,"state":"synced","bid":["27646.8","5.317"],"ask":["27646.9","18.74"]}"#
    );
    assert_eq!(
        lines[5],
        r#"{"topic":"orderbook.1.BTCUSDT","u":42452163,"seq":88215706515,"state":"synced","bids":[["27646.8","4.743"]],"asks":[["27646.9","19.615"]]}"#
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("lines=5 frames=5 bad=0"), "{stderr}");
    assert!(stderr.contains("ns_per_frame="), "{stderr}");
}

#[test]
fn replay_counts_bad_lines_by_reason_and_prints_nothing_for_them() {
    let dir = std::env::temp_dir().join(format!("keel-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.jsonl");
    std::fs::write(
        &f,
        "not json\n{\"topic\":\"nope.1.X\",\"type\":\"snapshot\",\"ts\":1,\"data\":{}}\n\
         {\"topic\":\"orderbook.50.X\",\"type\":\"delta\",\"ts\":1,\"data\":{\"s\":\"X\",\"b\":[[\"1x\",\"1\"]],\"a\":[],\"u\":2}}\n",
    )
    .unwrap();
    let out = keel().args(["replay", "--each"]).arg(&f).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("bad=3 not_json=1 bad_number=1 unknown_topic=1"),
        "{stderr}"
    );
}

#[test]
fn replay_of_a_missing_file_fails_with_its_name() {
    let out = keel()
        .args(["replay", "/nonexistent/keel.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/keel.jsonl"), "{stderr}");
}

#[test]
fn venue_refuses_a_fault_at_infinite_seconds_with_a_message_not_a_panic() {
    for at in ["inf", "NaN", "-1"] {
        let out = keel()
            .args(["venue", "--addr", "127.0.0.1:0", "--duration", "1"])
            .arg(format!("--fault={at}:{{\"kind\":\"drop\"}}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{at}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("not a finite number of seconds"),
            "{at}: {stderr}"
        );
    }
}

#[test]
fn venue_refuses_a_volatility_out_of_range() {
    let out = keel()
        .args(["venue", "--addr", "127.0.0.1:0", "--duration", "1"])
        .arg("--volatility-bps=5000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--volatility-bps")
    );
}

#[test]
fn bench_each_measures_every_file_alone_in_one_run() {
    let files = [
        fixture("ws/linear/orderbook.200.BTCUSDT.jsonl"),
        fixture("ws/linear/orderbook.200.SOLUSDT.jsonl"),
    ];
    let out = keel()
        .args(["bench", "--each", "--json", "--reps", "1"])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, f) in rows.iter().zip(&files) {
        assert_eq!(row["file"], f.display().to_string());
        let frames = std::fs::read_to_string(f).unwrap().lines().count() as u64;
        assert_eq!(row["codec"]["frames"].as_u64(), Some(frames));
        assert!(row["codec"]["keel_ns_per_frame"].as_f64().unwrap() > 0.0);
    }
}
