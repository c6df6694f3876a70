//! `POST /api/signals` on a running keel: a signal from outside goes through the same risk
//! checks and order machine as a strategy's; a wrong token gets 401, a bad body 400 naming the
//! field, a flood 429; the signals token is not the ops token.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SIGNALS_TOKEN: &str = "signals-token-for-the-test-0123";
const OPS_TOKEN: &str = "ops-token-for-the-test-456789";

#[test]
fn signals_from_outside_trade_through_the_order_machine_and_bad_ones_are_refused() {
    let port = free_port();
    let config = std::env::temp_dir().join(format!("keel-signals-{}.toml", std::process::id()));
    // No built-in strategy may trade here: every order comes from this test. And a slow rate,
    // so the flood below is seen.
    std::fs::write(
        &config,
        "[strategy]\nconfidence_min = 1.0\nema_cross = { fast = 2, slow = 1000, full_gap = 1000.0 }\n[signals]\nper_second_max = 5\n",
    )
    .unwrap();
    let mut cmd = keel();
    cmd.args([
        "run",
        "--auto-execute",
        "--paper",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--duration",
        "60",
        "--ops-addr",
        &format!("127.0.0.1:{port}"),
        "--db",
        &temp_db("signals"),
        "--config",
        &config.to_string_lossy(),
    ])
    .env("KEEL_SIGNALS_TOKEN", SIGNALS_TOKEN)
    .env("KEEL_OPS_TOKEN", OPS_TOKEN);
    let run = Printing::spawn(cmd);
    let start = Instant::now();
    // Wait for a synced book (the page's snapshot says so).
    loop {
        assert!(start.elapsed() < Duration::from_secs(30), "no synced book");
        if let Some((200, body)) = get_with_token(port, "/health", None)
            && body.contains(r#""orderbook.50.BTCUSDT":"synced""#)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let send = |body: &str, token: Option<&str>| {
        post_with_token(port, "/api/signals", body, token).expect("an answer")
    };
    let good = r#"{"symbol":"BTCUSDT","side":"buy","confidence":0.9,"reason":"from a python model","order":{"type":"market","qty":"0.01"}}"#;

    assert_eq!(send(good, None).0, 401);
    assert_eq!(
        send(good, Some(OPS_TOKEN)).0,
        401,
        "the ops token cannot trade"
    );
    let (code, body) = send(
        r#"{"symbol":"BTCUSDT","side":"up","confidence":0.9}"#,
        Some(SIGNALS_TOKEN),
    );
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "side", "{body}");
    let (code, body) = send(good, Some(SIGNALS_TOKEN));
    assert_eq!(code, 202, "{body}");

    // The order it made: through the order machine, filled on paper, with its reason.
    let mut found = None;
    while start.elapsed() < Duration::from_secs(40) {
        if let Some((200, body)) = get_with_token(port, "/api/orders?limit=20", Some(OPS_TOKEN)) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            found = v["orders"].as_array().and_then(|o| {
                o.iter()
                    .find(|o| {
                        o["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("api: from a python model"))
                            && o["stage"] == "Filled"
                    })
                    .cloned()
            });
            if found.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let order = found.expect("the signal's order, filled");
    assert_eq!(order["symbol"], "BTCUSDT");
    assert_eq!(order["side"], "Buy");
    assert_eq!(order["qty"], "0.01");

    // A good-till-cancelled limit far from the market rests on the paper venue, as on Bybit.
    let (code, body) = send(
        r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"reason":"resting bid","order":{"type":"limit","qty":"0.01","price":"1000","tif":"GTC"}}"#,
        Some(SIGNALS_TOKEN),
    );
    assert_eq!(code, 202, "{body}");
    let resting = || {
        let (_, body) = get_with_token(port, "/api/orders?limit=20", Some(OPS_TOKEN))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["orders"].as_array()?.iter().find_map(|o| {
            let ours = o["reason"].as_str()?.contains("api: resting bid");
            ours.then(|| o["stage"].as_str().unwrap_or_default().to_string())
        })
    };
    let t = Instant::now();
    while resting().as_deref() != Some("Open") {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", resting());
        std::thread::sleep(Duration::from_millis(200));
    }

    // A flood: past 5 a second (a burst of 5), 429 with a Retry-After.
    let codes: Vec<u16> = (0..20)
        .map(|_| {
            send(
                r#"{"symbol":"ETHUSDT","side":"sell","confidence":0.1}"#,
                Some(SIGNALS_TOKEN),
            )
            .0
        })
        .collect();
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 202 || *c == 429), "{codes:?}");
    let (status, printed) = run.stop();
    assert!(status.success(), "{printed}");
    // The exit cancelled the resting order before the process ended.
    assert!(
        printed.contains("cancel-all for BTCUSDT confirmed"),
        "{printed}"
    );
    assert!(!printed.contains(SIGNALS_TOKEN), "the token was printed");
}
