//! Alerts reach a webhook and Telegram (a local stand-in for its Bot API) within seconds of a
//! venue fault and again when health is back; neither the webhook's secret path nor the bot
//! token appears in anything keel prints; and an alert endpoint that never answers does not
//! hold up trading.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const HOOK_SECRET: &str = "T0HOOKSECRET9";
const BOT_TOKEN: &str = "123456:AAbotTokenSecret42";

/// What a receiver got: (path, JSON body, when).
type Got = Arc<Mutex<Vec<(String, serde_json::Value, Instant)>>>;

/// Answers every POST with 200 `{"ok":true}` and keeps what came; `hold` instead keeps each
/// connection open without a word (a dead endpoint).
fn receiver(hold: bool) -> (u16, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Got = Default::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            if hold {
                held.push(s);
                continue;
            }
            let g = g.clone();
            std::thread::spawn(move || serve(s, &g));
        }
    });
    (port, got)
}

fn serve(s: TcpStream, got: &Got) {
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        got.lock().unwrap().push((path, v, Instant::now()));
        let _ = r
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}");
    }
}

fn texts(got: &Got, path_part: &str) -> Vec<(String, Instant)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p.contains(path_part))
        .map(|(_, v, t)| {
            let text = v["text"].as_str().unwrap_or("").to_string();
            (text, *t)
        })
        .collect()
}

fn wait_for(got: &Got, path_part: &str, want: &str, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        if texts(got, path_part).iter().any(|(x, _)| x.contains(want)) {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_venue_fault_and_the_recovery_reach_the_webhook_and_telegram_within_seconds() {
    let (hook, hooked) = receiver(false);
    let (tg, tged) = receiver(false);
    let vport = free_port();
    let _venue = spawn_venue(vport, "BTCUSDT", &["--duration", "60"]);
    let ops = free_port();
    let dir = std::path::PathBuf::from(temp_db("alerts"));
    let config = dir.parent().unwrap().join("alerts.toml");
    std::fs::write(
        &config,
        format!("[alerts]\ntelegram_api_base = \"http://127.0.0.1:{tg}\"\n"),
    )
    .unwrap();
    let mut cmd = keel();
    cmd.args(["run", "--venue-url", &format!("http://127.0.0.1:{vport}")])
        .args(["--symbols", "BTCUSDT", "--duration", "40"])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}")])
        .args(["--db", &dir.to_string_lossy()])
        .args(["--config", &config.to_string_lossy()])
        .env(
            "KEEL_ALERT_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook}/hooks/{HOOK_SECRET}"),
        )
        .env("KEEL_TELEGRAM_TOKEN", BOT_TOKEN)
        .env("KEEL_TELEGRAM_CHAT_ID", "4242");
    let child = Printing::spawn(cmd);
    let t = Instant::now();
    while get_json(ops, "/health").is_none_or(|(_, v)| v["status"] != "ok") {
        assert!(t.elapsed() < Duration::from_secs(20), "never ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The venue goes away for a few seconds: every socket closed, then reconnects refused (the
    // refusal covers the admin port too, so it comes second, before the link's first retry).
    assert_eq!(post(vport, "/admin/fault", r#"{"kind":"drop"}"#), Some(200));
    assert_eq!(
        post(vport, "/admin/fault", r#"{"kind":"refuse","secs":6}"#),
        Some(200)
    );
    let faulted_at = Instant::now();
    let fault_to_alert = wait_for(
        &hooked,
        HOOK_SECRET,
        "health ok -> ",
        Duration::from_secs(5),
    )
    .expect("no webhook alert within 5 s of the fault");
    // Health back: an alert after the fault's that says so.
    let t = Instant::now();
    let back = loop {
        let after: Vec<(String, Instant)> = texts(&hooked, HOOK_SECRET)
            .into_iter()
            .filter(|(x, at)| *at >= faulted_at && x.ends_with("-> ok"))
            .collect();
        if !after.is_empty() {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no webhook alert when health came back: {:?}",
            texts(&hooked, "")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        wait_for(&tged, "/sendMessage", "-> ok", Duration::from_secs(5)).is_some(),
        "Telegram got: {:?}",
        texts(&tged, "")
    );
    let tg_paths: Vec<String> = tged.lock().unwrap().iter().map(|x| x.0.clone()).collect();
    assert!(
        tg_paths
            .iter()
            .all(|p| p == &format!("/bot{BOT_TOKEN}/sendMessage"))
    );
    assert!(
        tged.lock()
            .unwrap()
            .iter()
            .all(|x| x.1["chat_id"] == "4242")
    );
    let first = hooked.lock().unwrap()[0].1.clone();
    assert_eq!(first["source"], "keel");
    assert_eq!(first["kind"], "health");
    let (_, printed) = child.stop();
    for secret in [HOOK_SECRET, BOT_TOKEN, &BOT_TOKEN[7..]] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    println!(
        "fault -> webhook alert in {fault_to_alert:?}; recovery alert {back:?} after that; webhook got {:?}",
        texts(&hooked, "")
            .iter()
            .map(|x| x.0.clone())
            .collect::<Vec<_>>()
    );
}

#[test]
fn an_alert_endpoint_that_never_answers_does_not_hold_up_trading() {
    let (hook, _) = receiver(true);
    let ops = free_port();
    let db = temp_db("alerts-dead");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let eager = dir.join("eager.toml");
    // Every signal trades, and every error and heartbeat is an alert to the dead endpoint.
    std::fs::write(
        &eager,
        "health_check_interval = 1\n[strategy]\nconfidence_min = 0.0\n[alerts]\nper_minute_max = 1000\n",
    )
    .unwrap();
    let child = keel()
        .args(["run", "--auto-execute", "--duration", "30", "--db", &db])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}")])
        .args(["--config", &eager.to_string_lossy()])
        .env(
            "KEEL_ALERT_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook}/dead"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _child = Guard(child);
    let t = Instant::now();
    let mut filled = 0;
    while t.elapsed() < Duration::from_secs(25) && filled == 0 {
        if let Some((200, v)) = get_json(ops, "/api/orders") {
            filled = v["fills"].as_array().map_or(0, Vec::len);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(filled > 0, "no fill within 25 s while alerts hung");
    let (_, page) = get_json(ops, "/api/page").unwrap();
    let worst_lag_ms = page["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["lag_ms"].as_f64())
        .fold(0.0, f64::max);
    let (_, metrics) = get(ops, "/metrics").unwrap();
    let queued = metrics
        .lines()
        .find(|l| l.starts_with("keel_alerts_total{event=\"queued\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(queued >= 1.0, "no alert was offered:\n{metrics}");
    assert!(
        worst_lag_ms < 100.0,
        "loop lag reached {worst_lag_ms} ms while alerts hung"
    );
    println!(
        "{filled} fills in {:?} with the webhook hung; {queued} alerts queued; worst loop lag {worst_lag_ms:.3} ms",
        t.elapsed()
    );
}
