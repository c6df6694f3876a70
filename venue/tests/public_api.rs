//! The venue's public API as a client meets it: real sockets on loopback, Bybit's shapes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_venue::{Venue, VenueConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn start() -> (String, tokio::sync::watch::Sender<bool>) {
    let venue = Venue::new(
        VenueConfig::new(vec!["BTCUSDT".into(), "ETHUSDT".into()]),
        1_767_225_600_000,
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    venue.spawn_stepper(stop_rx.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut rx = stop_rx;
    tokio::spawn(keel_venue::serve(listener, venue, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (addr, stop)
}

async fn get(addr: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

async fn ws(addr: &str, category: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v5/public/{category}"))
        .await
        .unwrap();
    ws
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next text frame that satisfies `pred`, within a few seconds.
async fn next_where(ws: &mut Ws, pred: impl Fn(&str) -> bool) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await
                && pred(&t)
            {
                return t.to_string();
            }
        }
    })
    .await
    .expect("a matching frame within 5 s")
}

#[tokio::test]
async fn req_ids_are_echoed_as_given_numbers_and_strings_alike() {
    let (addr, _stop) = start().await;
    let mut c = ws(&addr, "linear").await;
    send(
        &mut c,
        r#"{"req_id":17,"op":"subscribe","args":["tickers.BTCUSDT"]}"#,
    )
    .await;
    let ack = next_where(&mut c, |t| t.contains(r#""op":"subscribe""#)).await;
    assert!(ack.contains(r#""req_id":17,"#), "{ack}");
    assert!(ack.contains(r#""success":true"#), "{ack}");
    send(&mut c, r#"{"req_id":"abc","op":"ping"}"#).await;
    let pong = next_where(&mut c, |t| t.contains("pong")).await;
    assert!(pong.contains(r#""req_id":"abc""#), "{pong}");
    send(&mut c, r#"{"req_id":99,"op":"subscribe","args":[7]}"#).await;
    let err = next_where(&mut c, |t| t.contains("invalid request")).await;
    assert!(err.contains(r#""req_id":99"#), "{err}");
}

#[tokio::test]
async fn subscribing_to_a_topic_twice_is_refused_as_bybit_refuses_it() {
    let (addr, _stop) = start().await;
    let mut c = ws(&addr, "linear").await;
    send(
        &mut c,
        r#"{"req_id":"1","op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#,
    )
    .await;
    next_where(&mut c, |t| t.contains(r#""req_id":"1""#)).await;
    send(
        &mut c,
        r#"{"req_id":"2","op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#,
    )
    .await;
    let ack = next_where(&mut c, |t| t.contains(r#""req_id":"2""#)).await;
    assert!(ack.contains(r#""success":false"#), "{ack}");
    assert!(
        ack.contains("error:already subscribed,topic:orderbook.50.BTCUSDT"),
        "{ack}"
    );
}

#[tokio::test]
async fn spot_is_its_own_market_with_its_own_frame_shape() {
    let (addr, _stop) = start().await;
    let mut lin = ws(&addr, "linear").await;
    let mut spot = ws(&addr, "spot").await;
    let sub = r#"{"req_id":"s","op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#;
    send(&mut lin, sub).await;
    send(&mut spot, sub).await;
    let l = next_where(&mut lin, |t| t.starts_with(r#"{"topic":"orderbook"#)).await;
    let s = next_where(&mut spot, |t| t.starts_with(r#"{"topic":"orderbook"#)).await;
    // Key order: linear topic,type,ts,...; spot topic,ts,type,...
    assert!(
        l.starts_with(r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":"#),
        "{l}"
    );
    assert!(
        s.starts_with(r#"{"topic":"orderbook.50.BTCUSDT","ts":"#),
        "{s}"
    );
    let (lv, sv): (Value, Value) = (
        serde_json::from_str(&l).unwrap(),
        serde_json::from_str(&s).unwrap(),
    );
    let best = |v: &Value| v["data"]["b"][0][0].as_str().unwrap().to_string();
    assert_ne!(best(&lv), best(&sv), "spot has its own book");
    // Linear writes the instrument's scale ("65000.10"); spot trims zeros.
    assert_eq!(
        best(&lv).split_once('.').map(|(_, f)| f.len()),
        Some(2),
        "{l}"
    );
    for level in sv["data"]["b"]
        .as_array()
        .unwrap()
        .iter()
        .chain(sv["data"]["a"].as_array().unwrap())
    {
        for x in level.as_array().unwrap() {
            let x = x.as_str().unwrap();
            assert!(
                !(x.contains('.') && x.ends_with('0')),
                "spot decimal {x} keeps a trailing zero"
            );
        }
    }
}

#[tokio::test]
async fn rest_requires_the_category_and_serves_full_instruments_tickers_and_trades() {
    let (addr, _stop) = start().await;
    let e = get(&addr, "/v5/market/instruments-info").await;
    assert_eq!(e["retCode"], 10001, "{e}");
    let lin = get(&addr, "/v5/market/instruments-info?category=linear").await;
    let i = &lin["result"]["list"][0];
    for key in [
        "baseCoin",
        "quoteCoin",
        "settleCoin",
        "leverageFilter",
        "priceScale",
        "lotSizeFilter",
        "priceFilter",
    ] {
        assert!(i.get(key).is_some(), "linear instrument lacks {key}: {i}");
    }
    assert_eq!(i["contractType"], "LinearPerpetual");
    let spot = get(&addr, "/v5/market/instruments-info?category=spot").await;
    let i = &spot["result"]["list"][0];
    assert!(i.get("contractType").is_none(), "spot is no perpetual: {i}");
    assert!(i["lotSizeFilter"].get("basePrecision").is_some(), "{i}");
    let none = get(
        &addr,
        "/v5/market/instruments-info?category=linear&status=Closed",
    )
    .await;
    assert_eq!(
        none["result"]["list"].as_array().unwrap().len(),
        0,
        "{none}"
    );
    let t = get(&addr, "/v5/market/tickers?category=linear&symbol=BTCUSDT").await;
    let t = &t["result"]["list"][0];
    for key in [
        "highPrice24h",
        "lowPrice24h",
        "price24hPcnt",
        "turnover24h",
        "openInterest",
        "nextFundingTime",
        "fundingRate",
        "prevPrice1h",
    ] {
        assert!(t.get(key).is_some(), "linear ticker lacks {key}: {t}");
    }
    let t = get(&addr, "/v5/market/tickers?category=spot&symbol=BTCUSDT").await;
    let t = &t["result"]["list"][0];
    assert!(
        t.get("fundingRate").is_none() && t.get("usdIndexPrice").is_some(),
        "{t}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tr = get(
        &addr,
        "/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=3",
    )
    .await;
    let list = tr["result"]["list"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 3, "{tr}");
    for key in ["execId", "price", "size", "side", "time"] {
        assert!(list[0].get(key).is_some(), "trade lacks {key}: {tr}");
    }
    let bad = get(
        &addr,
        "/v5/market/recent-trade?category=spot&symbol=BTCUSDT&limit=61",
    )
    .await;
    assert_eq!(bad["retCode"], 10001, "spot allows at most 60: {bad}");
}
