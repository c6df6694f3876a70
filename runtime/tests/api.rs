//! The ops API with paper trading on: signals and orders appear within seconds on a fresh
//! start, and bad parameters get HTTP 400 with a JSON error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("keel-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("keel.db").to_string_lossy().into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).ok()?))
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn auto_execute_serves_signals_and_orders_and_refuses_bad_parameters() {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "run",
            "--auto-execute",
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
        if let Some((200, v)) = get(port, "/api/orders?limit=5")
            && v["orders"].as_array().is_some_and(|o| !o.is_empty())
        {
            orders = v;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = start.elapsed();
    let first = &orders["orders"][0]["order"];
    assert!(
        first["client_order_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("keel-")),
        "no order within 40 s: {orders}"
    );
    println!("first paper order after {took:?}: {first}");
    let (status, signals) = get(port, "/api/signals/latest").unwrap();
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
    let (status, _) = get(port, "/api/signals/latest?limit=1").unwrap();
    assert_eq!(status, 200);
    // Positions are published with health, every 250 ms: give the first one a moment.
    let t = Instant::now();
    let positions = loop {
        let (status, positions) = get(port, "/api/positions").unwrap();
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
        let (status, body) = get(port, bad).unwrap();
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
}
