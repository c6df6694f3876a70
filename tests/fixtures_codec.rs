//! Real Bybit fixtures through the codec: official examples (some invalid on purpose), REST
//! bodies, and control frames.

use keel_core::Dec;
use keel_core::wire::codec::Decoder;
use keel_core::wire::error::DecodeError;
use keel_core::wire::frame::{Control, Frame, UpdateKind};
use keel_core::wire::rest;
use keel_suite::fixtures_dir;
use serde_json::Value;

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn websocket_doc_examples_decode_or_are_refused_as_not_json() {
    let mut dec = Decoder::default();
    let dir = fixtures_dir().join("docs");
    let mut decoded = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("v5__websocket") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let valid_json = serde_json::from_str::<Value>(&text).is_ok();
        match dec.decode(&text) {
            Ok(frame) => {
                assert!(valid_json, "{name}: accepted invalid JSON");
                decoded += 1;
                if let Frame::Book(b) = frame {
                    assert!(b.u > 0 && !b.bids.is_empty(), "{name}");
                }
            }
            Err(err) => {
                assert!(!valid_json, "{name}: refused valid frame: {err}");
                assert!(matches!(err, DecodeError::Json(_)), "{name}: {err:?}");
            }
        }
    }
    assert!(decoded >= 15, "only {decoded} examples decoded");
}

#[test]
fn doc_orderbook_delta_example_decodes_with_exact_levels() {
    let mut dec = Decoder::default();
    let text = read("docs/v5__websocket__public__orderbook__ex1.json");
    let Ok(Frame::Book(b)) = dec.decode(&text) else {
        panic!("not a book")
    };
    assert_eq!(b.topic, "orderbook.50.BTCUSDT");
    assert_eq!(b.kind, UpdateKind::Delta);
    assert_eq!(
        (b.u, b.seq, b.cts),
        (177400507, Some(66544703342), Some(1687940967464))
    );
    assert_eq!(b.bids.len(), 5);
    assert_eq!(b.asks.len(), 7);
    assert_eq!(b.bids[0].px(), Dec::parse("30247.2").unwrap());
    assert!(b.bids[4].qty().is_zero());
}

#[test]
fn observed_control_frames_are_a_rejection_naming_its_topic_and_a_pong() {
    let mut dec = Decoder::default();
    let text = read("control/ws_control_frames_observed.jsonl");
    let mut lines = text.lines();
    let Ok(Frame::Control(Control::Ack(ack))) = dec.decode(lines.next().unwrap()) else {
        panic!("first line is not an ack")
    };
    let err = ack.result().unwrap_err();
    assert_eq!(err.topics, ["getOrderBook.1.BTCUSDT"]);
    assert!(matches!(
        dec.decode(lines.next().unwrap()),
        Ok(Frame::Control(Control::Pong { .. }))
    ));
}

#[test]
fn rest_kline_is_newest_first_with_exact_prices() {
    let r = rest::parse_kline(&read("rest/kline_linear_BTCUSDT.json")).unwrap();
    assert_eq!(r.time_ms, Some(1694674505073));
    let bars = r.result.bars;
    assert_eq!(bars.len(), 3);
    assert!(bars.windows(2).all(|w| w[0].start_ms > w[1].start_ms));
    assert_eq!(bars[0].high.to_string(), "26527.2");
    assert_eq!(bars[1].high.to_string(), "34343");
    let doc = rest::parse_kline(&read("docs/v5__market__kline__ex0.json")).unwrap();
    assert_eq!(doc.result.category.as_deref(), Some("inverse"));
}

#[test]
fn rest_time_and_orderbook_parse() {
    let t = rest::parse_time(&read("rest/time.json")).unwrap();
    assert_eq!(t.result, 1694667737126);
    let b = rest::parse_orderbook(&read("docs/v5__market__orderbook__ex0.json")).unwrap();
    assert_eq!(b.result.u, 230704);
    assert_eq!(b.result.asks[0].qty.to_string(), "16.606555");
}

#[test]
fn rest_instruments_list_every_linear_symbol_with_filters() {
    let page = rest::parse_instruments(&read("rest/instruments_info_linear.jsonl"))
        .unwrap()
        .result;
    assert_eq!(page.instruments.len(), 800);
    let btc = page
        .instruments
        .iter()
        .find(|i| i.symbol == "BTCUSDT")
        .expect("BTCUSDT listed");
    assert_eq!(btc.status, "Trading");
    assert!(btc.tick_size.is_some() && btc.qty_step.is_some());
}

#[test]
fn ccxt_responses_with_stringified_numbers_still_parse() {
    let all: Value = serde_json::from_str(&read("rest/ccxt_market_responses.json")).unwrap();
    let mut books = 0;
    let mut klines = 0;
    for entry in all.as_array().unwrap() {
        let body = entry["httpResponse"].to_string();
        match entry["method"].as_str().unwrap() {
            "fetchOrderBook" => {
                let b = rest::parse_orderbook(&body).unwrap().result;
                assert!(!b.bids.is_empty() && !b.asks.is_empty());
                books += 1;
            }
            "fetchOHLCV" => {
                assert!(!rest::parse_kline(&body).unwrap().result.bars.is_empty());
                klines += 1;
            }
            _ => {}
        }
    }
    assert_eq!((books, klines), (2, 1));
}
