//! The venue's private API as a signed client meets it: Bybit's signing rule, its refusals,
//! and orders that change the public book and the account.

use keel_core::Dec;
use keel_core::wire::sign::rest_signature;
use keel_venue::{AccountConfig, Venue, VenueConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

/// The venue on a loopback port; the returned sender keeps its stepper running.
async fn start() -> (String, Venue, tokio::sync::watch::Sender<bool>) {
    start_with(&["BTCUSDT"], 100_000).await
}

async fn start_with(
    symbols: &[&str],
    usdt: i64,
) -> (String, Venue, tokio::sync::watch::Sender<bool>) {
    let mut config = VenueConfig::new(symbols.iter().map(|s| s.to_string()).collect());
    config.accounts.push(AccountConfig {
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        balances: vec![("USDT".into(), Dec::from_int(usdt))],
    });
    let venue = Venue::new(config, 1_767_225_600_000);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    venue.spawn_stepper(stop_rx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(keel_venue::serve(
        listener,
        venue.clone(),
        std::future::pending(),
    ));
    (addr, venue, stop)
}

/// A signed request; `secret` and `ts_offset_ms` let a test get either wrong.
async fn signed(
    addr: &str,
    venue: &Venue,
    method: &str,
    path: &str,
    payload: &str,
    secret: &str,
    ts_offset_ms: i64,
) -> Value {
    let ts = (venue.now_ms() as i64 + ts_offset_ms) as u64;
    let sign = rest_signature(secret, ts, KEY, 5000, payload);
    let (target, body) = if method == "GET" {
        (format!("{path}?{payload}"), String::new())
    } else {
        (path.to_string(), payload.to_string())
    };
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nX-BAPI-API-KEY: {KEY}\r\nX-BAPI-TIMESTAMP: {ts}\r\nX-BAPI-RECV-WINDOW: 5000\r\nX-BAPI-SIGN: {sign}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("x-bapi-limit-status"),
        "every private answer carries the limit headers: {head}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[tokio::test]
async fn signing_errors_are_bybits_codes() {
    let (addr, v, _stop) = start().await;
    let q = "category=linear&symbol=BTCUSDT";
    let ok = signed(&addr, &v, "GET", "/v5/order/realtime", q, SECRET, 0).await;
    assert_eq!(ok["retCode"], 0, "{ok}");
    let bad = signed(&addr, &v, "GET", "/v5/order/realtime", q, "wrong", 0).await;
    assert_eq!(bad["retCode"], 10004, "{bad}");
    let late = signed(&addr, &v, "GET", "/v5/order/realtime", q, SECRET, -60_000).await;
    assert_eq!(late["retCode"], 10002, "{late}");
    let early = signed(&addr, &v, "GET", "/v5/order/realtime", q, SECRET, 5_000).await;
    assert_eq!(early["retCode"], 10002, "{early}");
}

#[tokio::test]
async fn a_resting_order_shows_in_the_book_and_a_duplicate_link_id_is_refused() {
    let (addr, v, _stop) = start().await;
    // Well below the touch: it rests.
    let body = r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"30000","orderLinkId":"t-1"}"#;
    let r = signed(&addr, &v, "POST", "/v5/order/create", body, SECRET, 0).await;
    assert_eq!(r["retCode"], 0, "{r}");
    assert_eq!(r["result"]["orderLinkId"], "t-1");
    let dup = signed(&addr, &v, "POST", "/v5/order/create", body, SECRET, 0).await;
    assert_eq!(dup["retCode"], 110072, "{dup}");
    let open = signed(
        &addr,
        &v,
        "GET",
        "/v5/order/realtime",
        "category=linear&orderLinkId=t-1",
        SECRET,
        0,
    )
    .await;
    assert_eq!(open["result"]["list"][0]["orderStatus"], "New", "{open}");
    let cancel = r#"{"category":"linear","symbol":"BTCUSDT","orderLinkId":"t-1"}"#;
    let c = signed(&addr, &v, "POST", "/v5/order/cancel", cancel, SECRET, 0).await;
    assert_eq!(c["retCode"], 0, "{c}");
    let again = signed(&addr, &v, "POST", "/v5/order/cancel", cancel, SECRET, 0).await;
    assert_eq!(
        again["retCode"], 110008,
        "cancelling a cancelled order: {again}"
    );
    let gone = r#"{"category":"linear","symbol":"BTCUSDT","orderLinkId":"never-sent"}"#;
    let n = signed(&addr, &v, "POST", "/v5/order/cancel", gone, SECRET, 0).await;
    assert_eq!(n["retCode"], 110001, "{n}");
}

#[tokio::test]
async fn a_market_order_fills_once_and_the_position_and_execution_agree() {
    let (addr, v, _stop) = start().await;
    let body = r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.010","orderLinkId":"m-1"}"#;
    let r = signed(&addr, &v, "POST", "/v5/order/create", body, SECRET, 0).await;
    assert_eq!(r["retCode"], 0, "{r}");
    let ex = signed(
        &addr,
        &v,
        "GET",
        "/v5/execution/list",
        "category=linear&symbol=BTCUSDT",
        SECRET,
        0,
    )
    .await;
    let list = ex["result"]["list"].as_array().unwrap();
    let qty: f64 = list
        .iter()
        .map(|e| e["execQty"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((qty - 0.01).abs() < 1e-9, "{ex}");
    let pos = signed(
        &addr,
        &v,
        "GET",
        "/v5/position/list",
        "category=linear&symbol=BTCUSDT",
        SECRET,
        0,
    )
    .await;
    assert_eq!(pos["result"]["list"][0]["size"], "0.010", "{pos}");
    assert_eq!(pos["result"]["list"][0]["side"], "Buy", "{pos}");
    let too_big = r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"100.000"}"#;
    let refused = signed(&addr, &v, "POST", "/v5/order/create", too_big, SECRET, 0).await;
    assert_eq!(refused["retCode"], 110007, "{refused}");
}

async fn admin(addr: &str, method: &str, path: &str, body: &str) -> String {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test]
async fn a_dropped_order_ack_applies_the_order_and_answers_nothing() {
    let (addr, v, _stop) = start().await;
    admin(
        &addr,
        "POST",
        "/admin/fault",
        r#"{"kind":"drop_order_ack"}"#,
    )
    .await;
    let body = r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001","price":"30000","orderLinkId":"lost-1"}"#;
    let answer = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        signed(&addr, &v, "POST", "/v5/order/create", body, SECRET, 0),
    )
    .await;
    assert!(answer.is_err(), "the answer never comes: {answer:?}");
    let orders = admin(&addr, "GET", "/admin/orders", "").await;
    assert!(
        orders.contains(r#""orderLinkId":"lost-1""#),
        "applied: {orders}"
    );
    // Asked by its orderLinkId, the venue tells the truth; the next order is answered again.
    let q = signed(
        &addr,
        &v,
        "GET",
        "/v5/order/realtime",
        "category=linear&orderLinkId=lost-1",
        SECRET,
        0,
    )
    .await;
    assert_eq!(q["result"]["list"][0]["orderStatus"], "New", "{q}");
    let again = body.replace("lost-1", "kept-2");
    let r = signed(&addr, &v, "POST", "/v5/order/create", &again, SECRET, 0).await;
    assert_eq!(r["retCode"], 0, "{r}");
}

#[tokio::test]
async fn an_injected_ret_code_answers_every_private_request_until_cleared() {
    let (addr, v, _stop) = start().await;
    admin(
        &addr,
        "POST",
        "/admin/fault",
        r#"{"kind":"private_ret_code","code":10016,"secs":60}"#,
    )
    .await;
    let q = "category=linear&symbol=BTCUSDT";
    let r = signed(&addr, &v, "GET", "/v5/order/realtime", q, SECRET, 0).await;
    assert_eq!(r["retCode"], 10016, "{r}");
    admin(&addr, "POST", "/admin/fault", r#"{"kind":"clear"}"#).await;
    let r = signed(&addr, &v, "GET", "/v5/order/realtime", q, SECRET, 0).await;
    assert_eq!(r["retCode"], 0, "{r}");
}

#[tokio::test]
async fn margin_held_by_an_order_in_another_symbol_is_valued_in_that_symbols_units() {
    let (addr, v, _stop) = start_with(&["BTCUSDT", "SOLUSDT"], 1_000).await;
    // SOL 10 at 100, above the market: it rests and holds 100 USDT of margin (value 1000 / 10).
    let sol = r#"{"category":"linear","symbol":"SOLUSDT","side":"Sell","orderType":"Limit","qty":"10.0","price":"100.000"}"#;
    let r = signed(&addr, &v, "POST", "/v5/order/create", sol, SECRET, 0).await;
    assert_eq!(r["retCode"], 0, "{r}");
    // BTC 0.150 at 62700 needs 949.9 (margin and fee): more than the 900 left.
    let btc = r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.150","price":"62700.0"}"#;
    let r = signed(&addr, &v, "POST", "/v5/order/create", btc, SECRET, 0).await;
    assert_eq!(r["retCode"], 110007, "{r}");
}
