//! The ops API with paper trading on: signals and orders appear within seconds on a fresh
//! start, and bad parameters get HTTP 400 with a JSON error.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn auto_execute_serves_signals_and_orders_and_refuses_bad_parameters() {
    let port = free_port();
    let child = keel()
        .args([
            "run",
            "--auto-execute",
            "--paper",
            "--duration",
            "60",
            "--ops-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--db", &temp_db("api")])
        .args(["--config", &{
            // Every symbol trades at the first cycle; the default threshold is exercised by the
            // strategy tests, not here.
            let p = std::env::temp_dir().join(format!("keel-api-{}.toml", std::process::id()));
            std::fs::write(&p, "[strategy]\nconfidence_min = 0.0\n").unwrap();
            p.to_string_lossy().into_owned()
        }])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Guard(child);
    let start = Instant::now();
    let mut orders = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(40) {
        if let Some((200, v)) = get_json(port, "/api/orders?limit=5")
            && v["orders"].as_array().is_some_and(|o| !o.is_empty())
        {
            orders = v;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = start.elapsed();
    let first = &orders["orders"][0];
    assert!(
        first["order_link_id"]
            .as_str()
            .is_some_and(keel_core::wire::private::valid_link_id),
        "no order within 40 s: {orders}"
    );
    println!("first paper order after {took:?}: {first}");
    let (status, signals) = get_json(port, "/api/signals/latest").unwrap();
    assert_eq!(status, 200);
    let list = signals["signals"].as_array().unwrap();
    assert!(
        !list.is_empty() && list.len() <= 20,
        "default limit 20: {}",
        list.len()
    );
    for s in list {
        let c = s["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        assert!(matches!(s["side"].as_str(), Some("Buy" | "Sell")));
    }
    let (status, _) = get_json(port, "/api/signals/latest?limit=1").unwrap();
    assert_eq!(status, 200);
    // Positions are published with health, every 250 ms: give the first one a moment.
    let t = Instant::now();
    let positions = loop {
        let (status, positions) = get_json(port, "/api/positions").unwrap();
        assert_eq!(status, 200);
        if positions["positions"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
            || t.elapsed() > Duration::from_secs(3)
        {
            break positions;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let list = positions["positions"].as_array().unwrap();
    assert!(
        !list.is_empty(),
        "an order was filled, so there is a position"
    );
    for p in list {
        assert!(
            p["realized_pnl"].is_string() && p["unrealized_pnl"].is_string(),
            "{p}"
        );
    }
    for bad in [
        "/api/signals/latest?limit=0",
        "/api/signals/latest?limit=1001",
        "/api/signals/latest?limit=ten",
        "/api/signals/latest?limit=-1",
        "/api/orders?limit=1.5",
        "/api/orders?since=yesterday",
        "/api/positions?symbol=BTCUSDT",
    ] {
        let (status, body) = get_json(port, bad).unwrap();
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
}
