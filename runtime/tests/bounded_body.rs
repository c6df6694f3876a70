//! A REST answer is read with a running byte limit: a chunked body that never ends is refused
//! with a typed error once it passes the limit, and memory stays bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use keel_core::engine::scheduler::HttpError;
use keel_runtime::transport::{HTTP_BODY_BYTES_MAX, HttpTransport, ReqwestTransport};

/// Bytes the server offers in all: far more than the limit.
const OFFERED_BYTES: usize = 100 << 20;
const CHUNK_BYTES: usize = 64 << 10;

/// The peak resident memory of this process, in bytes (Linux: VmHWM).
fn peak_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Answers one request with a chunked body of `OFFERED_BYTES`, or until the client hangs up.
fn serve_endless_chunks() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = format!("{CHUNK_BYTES:x}\r\n{}\r\n", "7".repeat(CHUNK_BYTES));
        for _ in 0..OFFERED_BYTES / CHUNK_BYTES {
            if s.write_all(chunk.as_bytes()).is_err() {
                return; // the client stopped reading: as it should
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    format!("http://{addr}/v5/market/kline")
}

#[test]
fn a_chunked_100_mb_body_is_refused_and_memory_stays_bounded() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = serve_endless_chunks();
    let before = peak_rss_bytes();
    let http = ReqwestTransport::new().unwrap();
    let got = rt.block_on(http.get(url, Duration::from_secs(60)));
    assert_eq!(
        got,
        Err(HttpError::TooLarge {
            bytes_max: HTTP_BODY_BYTES_MAX
        })
    );
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(
        grown < HTTP_BODY_BYTES_MAX * 2 + (16 << 20),
        "peak memory grew {grown} bytes reading a {OFFERED_BYTES}-byte body"
    );
}
