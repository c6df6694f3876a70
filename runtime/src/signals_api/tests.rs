use super::*;

fn symbols() -> Vec<String> {
    vec!["BTCUSDT".into(), "ETHUSDT".into()]
}

fn refused(body: &str) -> Refusal {
    parse(body.as_bytes(), &symbols()).expect_err(body)
}

#[test]
fn a_view_and_orders_are_read_as_the_strategies_would_say_them() {
    let s = parse(
        br#"{"symbol":"BTCUSDT","side":"buy","confidence":0.8,"reason":"model v3"}"#,
        &symbols(),
    )
    .unwrap();
    assert_eq!(
        s.action,
        Action::Signal {
            side: SignalSide::Buy,
            confidence: 0.8
        }
    );
    assert_eq!(s.strategy, "api");
    assert_eq!(s.reason, "model v3");
    let s = parse(
        br#"{"symbol":"ETHUSDT","side":"Sell","confidence":1,"order":{"type":"limit","qty":"0.5","price":2500.5,"tif":"PostOnly"}}"#,
        &symbols(),
    )
    .unwrap();
    assert_eq!(
        s.action,
        Action::Limit {
            side: SignalSide::Sell,
            qty: Dec::parse("0.5").unwrap(),
            price: Dec::parse("2500.5").unwrap(),
            tif: TimeInForce::PostOnly
        }
    );
    let s = parse(
        br#"{"symbol":"ETHUSDT","side":"buy","confidence":1,"order":{"type":"market","qty":0.01}}"#,
        &symbols(),
    )
    .unwrap();
    assert!(matches!(s.action, Action::Market { .. }));
}

#[test]
fn every_bad_body_is_refused_naming_its_field() {
    let cases = [
        (r#"{"side":"buy","confidence":1}"#, "symbol"),
        (
            r#"{"symbol":"DOGEUSDT","side":"buy","confidence":1}"#,
            "symbol",
        ),
        (r#"{"symbol":"BTCUSDT","confidence":1}"#, "side"),
        (
            r#"{"symbol":"BTCUSDT","side":"long","confidence":1}"#,
            "side",
        ),
        (r#"{"symbol":"BTCUSDT","side":"buy"}"#, "confidence"),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1.5}"#,
            "confidence",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":-0.1}"#,
            "confidence",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":"high"}"#,
            "confidence",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"reason":"a\u0000b"}"#,
            "reason",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"stop","qty":1}}"#,
            "type",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"market","qty":0}}"#,
            "qty",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"market","qty":"lots"}}"#,
            "qty",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"market","qty":1,"price":5}}"#,
            "price",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"limit","qty":1}}"#,
            "price",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"limit","qty":1,"price":-3}}"#,
            "price",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"order":{"type":"limit","qty":1,"price":3,"tif":"forever"}}"#,
            "tif",
        ),
    ];
    for (body, field) in cases {
        let r = refused(body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.field, Some(field), "{body}: {r:?}");
    }
    let long = format!(
        r#"{{"symbol":"BTCUSDT","side":"buy","confidence":1,"reason":"{}"}}"#,
        "x".repeat(REASON_BYTES_MAX + 1)
    );
    assert_eq!(refused(&long).field, Some("reason"));
    let r = refused(r#"{"symbol":"BTCUSDT","side":"buy","confidence":1,"size":3}"#);
    assert!(r.error.contains("unknown field `size`"), "{r:?}");
    assert_eq!(refused("not json").status, 400);
}

#[test]
fn a_short_token_is_refused_and_debug_never_shows_one() {
    let file = SignalsFile {
        per_second_max: None,
        token: Some("short".into()),
    };
    assert!(resolve(&file).is_err());
    let file = SignalsFile {
        per_second_max: Some(5),
        token: Some("a-long-enough-signals-token".into()),
    };
    let cfg = resolve(&file).unwrap();
    for shown in [format!("{file:?}"), format!("{cfg:?}")] {
        assert!(!shown.contains("long-enough"), "{shown}");
    }
    let file = SignalsFile {
        per_second_max: Some(0),
        token: None,
    };
    assert!(resolve(&file).is_err());
}

#[tokio::test]
async fn without_a_token_the_api_is_off() {
    let cfg = resolve(&SignalsFile::default()).unwrap();
    let (app, mut rx) = router(&cfg, symbols());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    crate::run::install_crypto();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/signals"))
        .header("Authorization", "Bearer anything-at-all-long-enough")
        .body(r#"{"symbol":"BTCUSDT","side":"buy","confidence":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("KEEL_SIGNALS_TOKEN"));
    assert!(rx.try_recv().is_err(), "nothing reached the engine");
}
