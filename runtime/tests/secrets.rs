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
