//! Helpers the runtime's integration tests share: the binary, free ports, temporary stores, a
//! minimal HTTP GET, a venue to test against, and a guard that stops a child process however a
//! test ends.
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

pub fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

/// A fresh directory for this process and `name`, and the store path inside it.
pub fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("keel-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("keel.db").to_string_lossy().into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET on 127.0.0.1: (status, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_with_token(port, path, None)
}

/// As [`get`], with `Authorization: Bearer <token>` when one is given.
pub fn get_with_token(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    request(port, "GET", path, None, token)
}

/// A minimal HTTP/1.1 request on 127.0.0.1, with a JSON body and a bearer token when given:
/// (status, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let content = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{content}Connection: close\r\n\r\n{}",
        body.unwrap_or_default()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

pub fn get_json(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let (status, body) = get(port, path)?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// Kills the child if the test ends before it stops it.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `keel venue` on 127.0.0.1:`port` for `symbols`, with `extra` flags; returns once its REST
/// answers (at most 10 s), and stops it when the guard drops.
pub fn spawn_venue(port: u16, symbols: &str, extra: &[&str]) -> Guard {
    let child = keel()
        .args([
            "venue",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--symbols",
            symbols,
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = Guard(child);
    let t = std::time::Instant::now();
    while get(port, "/v5/market/time").is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "venue starts");
        std::thread::sleep(Duration::from_millis(20));
    }
    guard
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A minimal HTTP/1.1 POST of a JSON body on 127.0.0.1: the status.
pub fn post(port: u16, path: &str, body: &str) -> Option<u16> {
    post_with_token(port, path, body, None).map(|(status, _)| status)
}

/// As [`post`], with `Authorization: Bearer <token>` when one is given: (status, body).
pub fn post_with_token(
    port: u16,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    request(port, "POST", path, Some(body), token)
}

/// Reads a child's pipe to its end on a thread of its own (a pipe nobody reads fills, and stalls
/// the child's logging): join the handle for everything it printed.
pub fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// A child whose stdout and stderr are read as it runs (by [`drain`]); killed if dropped.
pub struct Printing {
    pub child: Guard,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

impl Printing {
    pub fn spawn(mut cmd: Command) -> Printing {
        let mut child = Guard(
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let out = drain(child.0.stdout.take().unwrap());
        let err = drain(child.0.stderr.take().unwrap());
        Printing { child, out, err }
    }

    /// SIGTERM, then the exit status and everything it printed (stdout, then stderr).
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.0.wait().unwrap();
        let printed = format!("{}{}", self.out.join().unwrap(), self.err.join().unwrap());
        (status, printed)
    }
}

/// Bybit-shaped frames (linear layout) for `symbols` over `minutes`, one line each, in time order.
pub fn synthetic_capture(symbols: &[&str], minutes: u64, seed: u64) -> String {
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
