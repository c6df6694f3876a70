//! The status page's server side: `/` serves the page without a token (it holds no data), its
//! data needs the token when one is set, and the event stream stays open past the ops server's
//! idle timeout because keel keeps writing to it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn start(name: &str, token: Option<&str>) -> (Guard, u16) {
    let ops = free_port();
    let mut cmd = keel();
    cmd.args(["run", "--duration", "40", "--db", &temp_db(name)])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(t) = token {
        cmd.env("KEEL_OPS_TOKEN", t);
    }
    let guard = Guard(cmd.spawn().unwrap());
    let t = Instant::now();
    while get(ops, "/health").is_none() {
        assert!(t.elapsed() < Duration::from_secs(20), "no /health");
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, ops)
}

#[test]
fn the_event_stream_outlives_the_idle_timeout_and_carries_a_snapshot_a_second() {
    let (_keel, ops) = start("page-stream", None);
    let (status, html) = get(ops, "/").unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("<title>keel</title>") && html.contains("/api/stream"));
    let mut s = TcpStream::connect(("127.0.0.1", ops)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(
        s,
        "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let idle = Duration::from_millis(keel_runtime::ops_listener::OPS_IDLE_MS);
    let until = Instant::now() + idle + Duration::from_secs(3);
    let mut got = String::new();
    let mut buf = [0u8; 65_536];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("the stream stopped after {} bytes: {e}", got.len()),
        }
    }
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "{}",
        &got[..got.len().min(300)]
    );
    assert!(got.contains("text/event-stream"));
    let events: Vec<&str> = got.lines().filter(|l| l.starts_with("data: ")).collect();
    assert!(
        events.len() as u64 >= idle.as_secs() + 2,
        "{} events in {:?}",
        events.len(),
        idle + Duration::from_secs(3)
    );
    let last: serde_json::Value = serde_json::from_str(&events.last().unwrap()[6..]).unwrap();
    assert_eq!(last["books"].as_array().unwrap().len(), 3, "{last}");
    assert!(last["series"].as_array().is_some_and(|s| !s.is_empty()));
    println!(
        "{} events over {:?}",
        events.len(),
        idle + Duration::from_secs(3)
    );
}

#[test]
fn with_a_token_the_page_loads_but_its_data_needs_the_token() {
    let token = "page-token-91c2";
    let (_keel, ops) = start("page-token", Some(token));
    assert_eq!(get(ops, "/").unwrap().0, 200);
    for path in ["/api/page", "/api/stream"] {
        assert_eq!(get(ops, path).unwrap().0, 401, "{path}");
    }
    let (status, body) = get_with_token(ops, "/api/page", Some(token)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"books\""));
    assert!(!body.contains(token));
}
