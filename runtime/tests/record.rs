//! `keel record`: frames from a venue written one a line, read back by `keel replay` without a
//! refusal; a subscription the venue refuses is a clear error and a non-zero exit.

mod common;

use common::*;

#[test]
fn a_recording_of_the_embedded_venue_replays_without_a_bad_frame() {
    let dir = std::path::PathBuf::from(temp_db("record")).with_file_name("");
    for (category, topics) in [
        ("spot", "orderbook.200.BTCUSDT,publicTrade.BTCUSDT"),
        (
            "linear",
            "orderbook.50.ETHUSDT,tickers.ETHUSDT,kline.1.ETHUSDT",
        ),
    ] {
        let file = dir.join(format!("{category}.jsonl"));
        let out = keel()
            .args(["record", "--category", category, "--topics", topics])
            .args(["--frames", "40", "--seconds", "30", "--out"])
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{category}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("record done: frames=40 "), "{stdout}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 40);
        assert!(
            text.lines().all(|l| l.starts_with("{\"topic\":\"")),
            "{text}"
        );
        let replay = keel().arg("replay").arg(&file).output().unwrap();
        let said = String::from_utf8_lossy(&replay.stderr);
        assert!(replay.status.success(), "{said}");
        assert!(
            said.contains("lines=40 frames=40 bad=0"),
            "{category}: {said}"
        );
    }
}

#[test]
fn a_subscription_the_venue_refuses_is_a_clear_error() {
    let port = free_port();
    let _venue = spawn_venue(port, "ETHUSDT", &[]);
    let said = record_fails("refused", port, 10);
    assert!(
        said.contains("the venue refused the subscription"),
        "{said}"
    );
}

#[test]
fn a_venue_that_never_answers_ends_the_recording_within_its_seconds() {
    // Accepts the connection and says nothing: no handshake ever comes back.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || silent.accept().map(|(s, _)| s));
    let t = std::time::Instant::now();
    let said = record_fails("silent", port, 2);
    assert!(said.contains("no connection within 2 s"), "{said}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    drop(hold.join());
}

/// `keel record` of one ticker from the venue on `port` for at most `seconds`, which must fail:
/// what it said.
fn record_fails(name: &str, port: u16, seconds: u32) -> String {
    let file =
        std::path::PathBuf::from(temp_db(&format!("record-{name}"))).with_file_name("x.jsonl");
    let out = keel()
        .args([
            "record",
            "--topics",
            "tickers.BTCUSDT",
            "--seconds",
            &seconds.to_string(),
        ])
        .args(["--venue-url", &format!("http://127.0.0.1:{port}"), "--out"])
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{said}");
    said
}
