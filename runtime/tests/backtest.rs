//! `keel backfill` then `keel backtest` from the command line, as a user runs them: 3 symbols x
//! 30 days of candles from the embedded venue; the report, the JSON (identical on a second run)
//! and the equity image; and a sweep of 20 combinations, ranked.

mod common;

use common::*;

fn keel_ok(args: &[&str]) -> String {
    let out = keel().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "keel {args:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn backfill_then_backtest_reports_writes_identical_json_and_an_image_and_sweeps_rank() {
    let db = temp_db("backtest");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let symbols = "BTCUSDT,ETHUSDT,SOLUSDT";
    let done = keel_ok(&[
        "backfill",
        "--symbols",
        symbols,
        "--days",
        "30",
        "--db",
        &db,
    ]);
    assert!(done.contains("candles=129600"), "{done}");

    let (a, b, svg) = (path("a.json"), path("b.json"), path("equity.svg"));
    let report = keel_ok(&[
        "backtest",
        "--db",
        &db,
        "--symbols",
        symbols,
        "--json",
        &a,
        "--equity",
        &svg,
    ]);
    println!("{report}");
    for want in [
        "129600 candles",
        "BTCUSDT",
        "ETHUSDT",
        "SOLUSDT",
        "TOTAL",
        "max drawdown",
        "Sharpe",
        "Sortino",
        "profit factor",
        "exposure",
    ] {
        assert!(report.contains(want), "{want} missing from:\n{report}");
    }
    keel_ok(&["backtest", "--db", &db, "--symbols", symbols, "--json", &b]);
    let (ja, jb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        ja == jb,
        "two runs over the same candles gave different JSON"
    );
    let v: serde_json::Value = serde_json::from_slice(&ja).unwrap();
    let trades = v["trades"].as_array().unwrap();
    assert_eq!(
        v["totals"]["trades"].as_u64().unwrap() as usize,
        trades.len()
    );
    assert!(!trades.is_empty());
    assert_eq!(v["symbols"].as_array().unwrap().len(), 3);
    // The per-symbol PnL adds up to the closed trades'.
    let by_symbol: f64 = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pnl"].as_f64().unwrap())
        .sum();
    let by_trade: f64 = trades.iter().map(|t| t["pnl"].as_f64().unwrap()).sum();
    assert!(
        (by_symbol - by_trade).abs() < 1e-6,
        "{by_symbol} vs {by_trade}"
    );
    let image = std::fs::read_to_string(&svg).unwrap();
    assert!(
        image.starts_with("<svg") && image.contains("<polyline"),
        "{image}"
    );
    let points = image
        .split("points=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(points.split_whitespace().count() > 100);

    let ranked = keel_ok(&[
        "backtest",
        "--db",
        &db,
        "--symbols",
        symbols,
        "--sweep",
        "ema_cross.fast=5..9:1,ema_cross.slow=20..35:5",
        "--rank",
        "return",
    ]);
    println!("{ranked}");
    assert!(ranked.contains("20 combinations"), "{ranked}");
    let returns: Vec<f64> = ranked
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(returns.len(), 20, "{ranked}");
    assert!(
        returns.windows(2).all(|w| w[0] >= w[1]),
        "not ranked: {returns:?}"
    );

    // Bad input: a clear error, nothing written.
    let out = keel()
        .args(["backtest", "--db", &path("missing.db")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keel backfill"));
    let out = keel()
        .args(["backtest", "--db", &db, "--sweep", "ema_cross.fast=9..1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("FROM <= TO"));
}
