//! `keel backtest --capture`: the engine itself over recorded frames, paper-trading against its
//! own books in virtual time. Half an hour of two symbols' frames (Bybit's linear layout: book
//! snapshot then deltas, klines each second and at each close, trades), made here from a seeded
//! walk; two runs give byte-identical JSON with signals, orders and fills.

mod common;

use common::*;

#[test]
fn a_capture_backtest_trades_the_engine_over_recorded_frames_and_repeats_exactly() {
    let db = temp_db("capture");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let file = dir.join("capture.jsonl");
    std::fs::write(&file, synthetic_capture(&["AAAUSDT", "BBBUSDT"], 30, 7)).unwrap();
    let config = dir.join("fast.toml");
    std::fs::write(
        &config,
        "[strategy]\nconfidence_min = 0.3\nema_cross = { fast = 3, slow = 8, full_gap = 0.002 }\n",
    )
    .unwrap();
    let run = |json: &str| {
        let out = keel()
            .args(["backtest", "--capture"])
            .arg(&file)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .arg(dir.join(json))
            .arg("--equity")
            .arg(dir.join("equity.svg"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let printed = run("a.json");
    println!("{printed}");
    run("b.json");
    let (a, b) = (
        std::fs::read(dir.join("a.json")).unwrap(),
        std::fs::read(dir.join("b.json")).unwrap(),
    );
    assert!(a == b, "two runs over the same capture differ");
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["bad_frames"], 0, "every frame went to its topic's link");
    assert!(v["frames"].as_u64().unwrap() > 20_000);
    let signals = v["signals"].as_array().unwrap();
    assert!(
        signals.iter().any(|s| s["strategy"] == "ema_cross"),
        "the strategy warmed up on the capture's own candles"
    );
    let orders = v["orders"].as_array().unwrap();
    let filled: Vec<_> = orders.iter().filter(|o| o["stage"] == "filled").collect();
    assert!(filled.len() >= 3, "{orders:?}");
    assert!(
        filled.len() * 10 >= orders.len() * 9,
        "a deep book fills nearly every order: {orders:?}"
    );
    assert!(
        filled
            .iter()
            .all(|o| o["reason"].as_str().unwrap().starts_with("ema_cross: ")),
        "{filled:?}"
    );
    // Fills add up to each filled order's size.
    for o in &filled {
        let sum: f64 = v["fills"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["order_link_id"] == o["order_link_id"])
            .map(|f| f["qty"].as_str().unwrap().parse::<f64>().unwrap())
            .sum();
        let qty: f64 = o["qty"].as_str().unwrap().parse().unwrap();
        assert!((sum - qty).abs() < 1e-9, "{o} vs fills {sum}");
    }
    assert!(printed.contains("frames/s"), "{printed}");
    // The same figures as a backtest over candles: trades from the fills, equity, drawdown.
    let trades = v["trades"].as_array().unwrap();
    assert!(!trades.is_empty());
    assert_eq!(
        v["totals"]["trades"].as_u64().unwrap() as usize,
        trades.len()
    );
    assert_eq!(
        v["totals"]["fills"].as_u64().unwrap() as usize,
        v["fills"].as_array().unwrap().len()
    );
    assert!(v["equity"].as_array().unwrap().len() > 100);
    let image = std::fs::read_to_string(dir.join("equity.svg")).unwrap();
    assert!(image.starts_with("<svg") && image.contains("<polyline"));
    for want in ["TOTAL", "max drawdown", "profit factor", "exposure"] {
        assert!(printed.contains(want), "{want} missing:\n{printed}");
    }
}
