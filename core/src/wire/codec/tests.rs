use super::*;
use crate::wire::frame::Control;
use crate::wire::frame::{CANDLES_PER_FRAME_MAX, TRADES_PER_FRAME_MAX, TickerField};
use crate::wire::topic::Interval;

fn d(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

#[test]
fn orderbook_delta_decodes_whatever_the_key_order() {
    let mut dec = Decoder::default();
    let a = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["30247.20","30.028"]],"a":[],"u":7,"seq":9},"cts":2}"#;
    let b = r#"{"data":{"seq":9,"u":7,"a":[],"b":[["30247.2","30.0280"]],"s":"BTCUSDT"},"cts":2,"ts":1,"type":"delta","topic":"orderbook.50.BTCUSDT"}"#;
    for text in [a, b] {
        let Frame::Book(f) = dec.decode(text).unwrap() else {
            panic!("not a book frame")
        };
        assert_eq!(f.topic, "orderbook.50.BTCUSDT");
        assert_eq!(f.depth, 50);
        assert_eq!(f.kind, UpdateKind::Delta);
        assert_eq!((f.u, f.seq, f.ts, f.cts), (7, Some(9), 1, Some(2)));
        let bids: Vec<Level> = f.bids.iter().map(WireLevel::level).collect();
        assert_eq!(
            bids,
            [Level {
                px: d("30247.2"),
                qty: d("30.028")
            }]
        );
        assert!(f.asks.is_empty());
    }
}

#[test]
fn kline_frame_with_two_candles_keeps_both() {
    let mut dec = Decoder::default();
    let text = r#"{"topic":"kline.1.DOGEUSDT","data":[{"start":1786310760000,"end":1786310819999,"interval":"1","open":"0.07055","close":"0.07053","high":"0.07055","low":"0.07052","volume":"690173","turnover":"48679.57044","confirm":true,"timestamp":1786310820696},{"start":1786310820000,"end":1786310879999,"interval":"1","open":"0.07053","close":"0.07053","high":"0.07053","low":"0.07053","volume":"0","turnover":"0","confirm":false,"timestamp":1786310820696}],"ts":1786310820696,"type":"snapshot"}"#;
    let Frame::Kline(k) = dec.decode(text).unwrap() else {
        panic!("not a kline frame")
    };
    assert_eq!(k.interval, Interval::Min1);
    assert_eq!(k.candles.len(), 2);
    assert!(k.candles[0].confirm && !k.candles[1].confirm);
    assert_eq!(k.candles[1].start, 1786310820000);
}

#[test]
fn ticker_delta_carries_only_changed_fields() {
    let mut dec = Decoder::default();
    let text = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"65114.20","bid1Size":"6.054","preOpenPrice":"","newField":{"x":[1]}},"cs":753843907770,"ts":1786310817883}"#;
    let Frame::Ticker(t) = dec.decode(text).unwrap() else {
        panic!("not a ticker frame")
    };
    assert_eq!(t.kind, UpdateKind::Delta);
    assert_eq!(
        t.fields,
        &[
            (TickerField::Bid1Price, Some(d("65114.2"))),
            (TickerField::Bid1Size, Some(d("6.054")))
        ]
    );
}

#[test]
fn rejected_subscription_names_its_topic() {
    let mut dec = Decoder::default();
    let text = r#"{"success":false,"ret_msg":"error:handler not found,topic:getOrderBook.1.BTCUSDT","conn_id":"958a","req_id":"2XX","op":"subscribe"}"#;
    let Frame::Control(Control::Ack(ack)) = dec.decode(text).unwrap() else {
        panic!("not an ack")
    };
    let err = ack.result().unwrap_err();
    assert_eq!(err.topics, vec!["getOrderBook.1.BTCUSDT".to_string()]);
    assert!(err.to_string().contains("getOrderBook.1.BTCUSDT"));
}

#[test]
fn pongs_of_every_market_are_recognised() {
    let mut dec = Decoder::default();
    for text in [
        r#"{"success":true,"ret_msg":"pong","conn_id":"0970","op":"ping"}"#,
        r#"{"success":true,"ret_msg":"pong","conn_id":"4657","req_id":"","op":"ping"}"#,
        r#"{"args":["1672916271846"],"op":"pong"}"#,
        r#"{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb"}"#,
    ] {
        assert!(
            matches!(dec.decode(text), Ok(Frame::Control(Control::Pong { .. }))),
            "{text}"
        );
    }
}

#[test]
fn bad_frames_get_typed_errors() {
    let mut dec = Decoder::new(200);
    let cases: [(&str, DecodeError); 8] = [
        ("not json", DecodeError::Json(JsonError::Syntax { at: 0 })),
        (
            r#"{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X","b":[["abc","1"]],"a":[],"u":1}}"#,
            DecodeError::BadNumber {
                field: "b",
                why: NumberWhy::Decimal(crate::decimal::DecError::Syntax),
            },
        ),
        (
            r#"{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X","b":[],"a":[]}}"#,
            DecodeError::MissingField("u"),
        ),
        (
            r#"{"topic":"candles.1.X","type":"snapshot","ts":1,"data":[]}"#,
            DecodeError::UnknownTopic(crate::wire::topic::TopicError::UnknownChannel),
        ),
        (
            &"x".repeat(201),
            DecodeError::Oversize { len: 201, max: 200 },
        ),
        (r#"[1,2]"#, DecodeError::Unrecognized),
        (
            r#"{"topic":"orderbook.50.X","type":"delta","ts":1,"ts":2,"data":{"s":"X","b":[],"a":[],"u":1}}"#,
            DecodeError::DuplicateField("ts"),
        ),
        (
            r#"{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"Y","b":[],"a":[],"u":1}}"#,
            DecodeError::BadValue { field: "s" },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(dec.decode(text).unwrap_err(), want, "{text}");
    }
}

#[test]
fn kline_and_trade_arrays_past_their_bound_are_refused_and_at_it_decode() {
    let candle = r#"{"start":1786310760000,"end":1786310819999,"interval":"1","open":"0.07055","close":"0.07053","high":"0.07055","low":"0.07052","volume":"690173","turnover":"48679.57044","confirm":true,"timestamp":1786310820696}"#;
    let trade = r#"{"T":1786310819680,"s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick","i":"a","BT":false}"#;
    let kline = |n: usize| {
        format!(
            r#"{{"topic":"kline.1.DOGEUSDT","data":[{}],"ts":1,"type":"snapshot"}}"#,
            vec![candle; n].join(",")
        )
    };
    let trades = |n: usize| {
        format!(
            r#"{{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{}]}}"#,
            vec![trade; n].join(",")
        )
    };
    let mut dec = Decoder::default();
    assert!(matches!(
        dec.decode(&kline(CANDLES_PER_FRAME_MAX)),
        Ok(Frame::Kline(k)) if k.candles.len() == CANDLES_PER_FRAME_MAX
    ));
    assert!(matches!(
        dec.decode(&trades(TRADES_PER_FRAME_MAX)),
        Ok(Frame::Trade(t)) if t.trades.len() == TRADES_PER_FRAME_MAX
    ));
    assert_eq!(
        dec.decode(&kline(CANDLES_PER_FRAME_MAX + 1)).unwrap_err(),
        DecodeError::TooMany {
            field: "data",
            max: CANDLES_PER_FRAME_MAX
        }
    );
    assert_eq!(
        dec.decode(&trades(TRADES_PER_FRAME_MAX + 1)).unwrap_err(),
        DecodeError::TooMany {
            field: "data",
            max: TRADES_PER_FRAME_MAX
        }
    );
}
