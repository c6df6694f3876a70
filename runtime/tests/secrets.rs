//! Secrets never reach anything keel prints: a run with credentials in its venue URL, every
//! line of its output and its /health read back and searched for them.

mod common;

use std::time::{Duration, Instant};

use common::*;

const USER: &str = "keeluser7";
const PASSWORD: &str = "S3cretPWxyz";

#[test]
fn credentials_in_the_venue_url_appear_in_no_output_and_no_health() {
    let vport = free_port();
    let _venue = spawn_venue(vport, "BTCUSDT", &["--duration", "60"]);
    let ops = free_port();
    let url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{vport}");
    let child = keel()
        .args(["run", "--venue-url", &url, "--symbols", "BTCUSDT"])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}"), "--duration", "6"])
        .args(["--db", &temp_db("secrets")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut health = String::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Some((_, body)) = get(ops, "/health") {
            health = body;
            if health.contains("\"ok\"") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(!health.is_empty(), "/health answered during the run");
    assert!(
        printed.contains("connecting") && printed.contains("***@127.0.0.1"),
        "the venue URL is shown, redacted: {printed}"
    );
    for secret in [USER, PASSWORD] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        assert!(!health.contains(secret), "{secret} in /health: {health}");
    }
}

const API_KEY: &str = "KeyAbCdEf0123456789";
const API_SECRET: &str = "SecretZyXwVu9876543210abcdef";
const OPS_TOKEN: &str = "OpsTokenQwErTy5678";
const SIGNALS_TOKEN: &str = "SignalsTokenPoIuYt4321";

/// A live run that trades: keys in the environment, an ops token, credentials in the venue
/// URL, logging at debug. Everything it prints and every endpoint it serves is searched for
/// each secret, and for the part of the URL's password a careless redaction would leave.
#[test]
fn a_live_run_that_trades_prints_and_serves_no_key_secret_token_or_url_password() {
    let vport = free_port();
    let _venue = spawn_venue(
        vport,
        "BTCUSDT",
        &[
            "--duration",
            "90",
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
        ],
    );
    let ops = free_port();
    let db = temp_db("secrets-live");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let eager = dir.join("eager.toml");
    std::fs::write(&eager, "[strategy]\nconfidence_min = 0.0\n").unwrap();
    let url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{vport}");
    let mut cmd = keel();
    cmd.args(["run", "--venue-url", &url, "--symbols", "BTCUSDT"])
        .args(["--live", "--auto-execute", "--duration", "25"])
        .args(["--ops-addr", &format!("127.0.0.1:{ops}"), "--db", &db])
        .args(["--config", &eager.to_string_lossy()])
        .env("KEEL_API_KEY", API_KEY)
        .env("KEEL_API_SECRET", API_SECRET)
        .env("KEEL_OPS_TOKEN", OPS_TOKEN)
        .env("KEEL_SIGNALS_TOKEN", SIGNALS_TOKEN)
        .env("RUST_LOG", "debug");
    let child = Printing::spawn(cmd);
    let mut served = String::new();
    let t = Instant::now();
    let mut traded = false;
    while t.elapsed() < Duration::from_secs(20) && !traded {
        if let Some((200, body)) = get_with_token(ops, "/api/orders", Some(OPS_TOKEN)) {
            traded = body.contains("\"filled\"");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for path in [
        "/health",
        "/metrics",
        "/api/orders",
        "/api/positions",
        "/api/signals/latest",
    ] {
        if let Some((_, body)) = get_with_token(ops, path, Some(OPS_TOKEN)) {
            served.push_str(&body);
        }
    }
    // A signal sent with the signals token, and one with a wrong token: neither answer (nor the
    // log of what the signal did) shows the token.
    for token in [SIGNALS_TOKEN, "wrong-token-0123456789"] {
        if let Some((_, body)) = post_with_token(
            ops,
            "/api/signals",
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":0.5,"reason":"secrets test"}"#,
            Some(token),
        ) {
            served.push_str(&body);
        }
    }
    // Without the token: refused, and the refusal names no secret either.
    let refused = get(ops, "/api/orders").unwrap();
    assert_eq!(refused.0, 401, "{refused:?}");
    served.push_str(&refused.1);
    let (status, printed) = child.stop();
    assert!(status.success(), "{printed}");
    assert!(traded, "the run traded live within 20 s:\n{printed}");
    assert!(
        printed.contains("fill (durable)"),
        "the run's fills are in its output:\n{printed}"
    );
    for secret in [
        API_KEY,
        API_SECRET,
        OPS_TOKEN,
        SIGNALS_TOKEN,
        USER,
        PASSWORD,
        &PASSWORD[..6],
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        assert!(!served.contains(secret), "{secret} served:\n{served}");
    }
    println!(
        "searched {} bytes printed and {} bytes served",
        printed.len(),
        served.len()
    );
}
