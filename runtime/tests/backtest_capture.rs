//! `keel backtest --capture`: the engine itself over recorded frames, paper-trading against its
//! own books in virtual time. Half an hour of two symbols' frames (Bybit's linear layout: book
//! snapshot then deltas, klines each second and at each close, trades), made here from a seeded
//! walk; two runs give byte-identical JSON with signals, orders and fills.

mod common;

use std::fmt::Write as _;

use common::*;

/// Bybit-shaped frames for `symbols` over `minutes`, one line each, in time order.
fn capture(symbols: &[&str], minutes: u64, seed: u64) -> String {
    let mut out = String::new();
    let mut x = seed;
    let mut rnd = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    let t0 = 1_790_000_000_000u64 - 1_790_000_000_000 % 60_000;
    let mut px: Vec<f64> = symbols.iter().map(|_| 100.0).collect();
    let mut u: Vec<u64> = vec![1; symbols.len()];
    let mut candle: Vec<(f64, f64, f64)> = px.iter().map(|p| (*p, *p, *p)).collect();
    // Each book is one level a side around the walk: a delta removes the old touch.
    let mut touch: Vec<f64> = vec![100.0; symbols.len()];
    for (k, s) in symbols.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"{{"topic":"orderbook.50.{s}","type":"snapshot","ts":{t0},"data":{{"s":"{s}","b":[["99.90","50000"]],"a":[["100.10","50000"]],"u":1,"seq":1}},"cts":{t0}}}"#
        );
        let _ = k;
    }
    for step in 1..=minutes * 60 * 5 {
        let t = t0 + step * 200;
        for (k, s) in symbols.iter().enumerate() {
            // A trending walk: a slow sine and noise, in cents.
            let drift = ((step as f64) / 900.0 + k as f64).sin() * 0.02;
            px[k] = (px[k] + drift + (rnd() - 0.5) * 0.05).max(1.0);
            let mid = (px[k] * 10.0).round() / 10.0;
            u[k] += 1;
            let gone = if (mid - touch[k]).abs() > 1e-9 {
                (
                    format!(r#"["{:.2}","0"],"#, touch[k] - 0.1),
                    format!(r#"["{:.2}","0"],"#, touch[k] + 0.1),
                )
            } else {
                (String::new(), String::new())
            };
            touch[k] = mid;
            let _ = writeln!(
                out,
                r#"{{"topic":"orderbook.50.{s}","type":"delta","ts":{t},"data":{{"s":"{s}","b":[{}["{:.2}","50000"]],"a":[{}["{:.2}","50000"]],"u":{},"seq":{}}},"cts":{t}}}"#,
                gone.0,
                mid - 0.1,
                gone.1,
                mid + 0.1,
                u[k],
                u[k]
            );
            let c = &mut candle[k];
            c.1 = c.1.max(px[k]);
            c.2 = c.2.min(px[k]);
            let start = t - t % 60_000;
            let closing = (t + 200).is_multiple_of(60_000);
            if step.is_multiple_of(5) || closing {
                let _ = writeln!(
                    out,
                    r#"{{"topic":"kline.1.{s}","data":[{{"start":{start},"end":{},"interval":"1","open":"{:.2}","close":"{:.2}","high":"{:.2}","low":"{:.2}","volume":"10","turnover":"1000","confirm":{closing},"timestamp":{t}}}],"ts":{t},"type":"snapshot"}}"#,
                    start + 59_999,
                    c.0,
                    px[k],
                    c.1.max(c.0).max(px[k]),
                    c.2.min(c.0).min(px[k]),
                );
            }
            if closing {
                *c = (px[k], px[k], px[k]);
            }
            if step.is_multiple_of(3) {
                let _ = writeln!(
                    out,
                    r#"{{"topic":"publicTrade.{s}","type":"snapshot","ts":{t},"data":[{{"T":{t},"s":"{s}","S":"Buy","v":"0.5","p":"{mid:.2}","L":"PlusTick","i":"t{step}","BT":false}}]}}"#
                );
            }
        }
    }
    out
}

#[test]
fn a_capture_backtest_trades_the_engine_over_recorded_frames_and_repeats_exactly() {
    let db = temp_db("capture");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let file = dir.join("capture.jsonl");
    std::fs::write(&file, capture(&["AAAUSDT", "BBBUSDT"], 30, 7)).unwrap();
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
}
