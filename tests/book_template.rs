//! The order-book template (the decoder's fast path) against the general scanner: it must take
//! every real order-book frame, and whatever it accepts, real or damaged, must decode to exactly
//! what the general path gives.

use keel_core::Decoder;
use keel_suite::ws_captures;
use proptest::prelude::*;

fn capture_lines() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for f in ws_captures() {
        let text = std::fs::read_to_string(&f).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    assert!(lines.len() > 1000, "captures missing: {}", lines.len());
    lines
}

/// A decoder's answer as text to compare. `topic_key` is the decoder's own topic-table key: the
/// template path has one and the general path has none, by design, so it is left out.
fn shown(answer: impl std::fmt::Debug) -> String {
    let text = format!("{answer:?}");
    match text.split_once(", topic_key: ") {
        Some((head, tail)) => {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            format!("{head}{}", &tail[digits..])
        }
        None => text,
    }
}

/// What the general path says of `bytes`, as text to compare.
fn general(bytes: &[u8]) -> String {
    let mut d = Decoder::default();
    match std::str::from_utf8(bytes) {
        Ok(text) => shown(d.decode_general(text)),
        Err(_) => format!(
            "{:?}",
            Err::<keel_core::Frame, _>(keel_core::DecodeError::NotUtf8)
        ),
    }
}

#[test]
fn every_captured_order_book_frame_takes_the_template_and_decodes_as_the_scanner_does() {
    let (mut taken, mut books) = (0, 0);
    // One decoder for the whole run, as a connection has: topics come back from its table.
    let mut warm = Decoder::default();
    for line in capture_lines() {
        let is_book = line.starts_with(br#"{"topic":"orderbook."#);
        books += is_book as usize;
        let mut d = Decoder::default();
        match d.decode_template(&line) {
            Some(f) => {
                taken += 1;
                assert_eq!(shown(Ok::<_, keel_core::DecodeError>(f)), general(&line));
            }
            None => assert!(!is_book, "{}", String::from_utf8_lossy(&line)),
        }
        // And the decoder's own answer, whichever path it took, fresh and warm.
        let mut d = Decoder::default();
        assert_eq!(shown(d.decode_bytes(&line)), general(&line));
        assert_eq!(shown(warm.decode_bytes(&line)), general(&line));
    }
    assert!(books > 1000 && taken == books, "{taken} of {books}");
}

/// An order-book frame as Bybit's spot stream lays it out: `ts` before `type`, and decimals
/// without trailing zeros (`"65114.20"` -> `"65114.2"`, `"65114.00"` -> `"65114"`).
fn spot_shaped(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let d = v.get("data")?;
    let side = |k: &str| -> Option<String> {
        let levels: Option<Vec<String>> = d[k]
            .as_array()?
            .iter()
            .map(|l| {
                let px = keel_suite::canonical_decimal(l[0].as_str()?)?;
                let qty = keel_suite::canonical_decimal(l[1].as_str()?)?;
                Some(format!("[\"{px}\",\"{qty}\"]"))
            })
            .collect();
        Some(format!("[{}]", levels?.join(",")))
    };
    let seq = d
        .get("seq")
        .map_or(String::new(), |q| format!(",\"seq\":{q}"));
    let cts = v
        .get("cts")
        .map_or(String::new(), |c| format!(",\"cts\":{c}"));
    Some(
        format!(
            "{{\"topic\":{},\"ts\":{},\"type\":{},\"data\":{{\"s\":{},\"b\":{},\"a\":{},\"u\":{}{seq}}}{cts}}}",
            v["topic"], v["ts"], v["type"], d["s"], side("b")?, side("a")?, d["u"]
        )
        .into_bytes(),
    )
}

#[test]
fn spot_shaped_frames_take_the_template_and_build_the_same_books() {
    use keel_core::{Market, MarketConfig, Time};
    let (mut linear, mut spot) = (
        Market::new(MarketConfig::default()),
        Market::new(MarketConfig::default()),
    );
    let mut taken = 0;
    for line in capture_lines()
        .into_iter()
        .filter(|l| l.starts_with(br#"{"topic":"orderbook."#))
    {
        let shaped = spot_shaped(&line).expect("a book frame reshapes");
        let mut d = Decoder::default();
        let f = d
            .decode_template(&shaped)
            .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&shaped)));
        taken += 1;
        assert_eq!(shown(Ok::<_, keel_core::DecodeError>(f)), general(&shaped));
        let a = linear.handle_frame_bytes(Time::ZERO, &line).map(|_| ());
        let b = spot.handle_frame_bytes(Time::ZERO, &shaped).map(|_| ());
        assert_eq!(a, b);
        while linear.poll_event().is_some() {}
        while spot.poll_event().is_some() {}
    }
    for id in linear.book_ids() {
        let (l, s) = (linear.book(id), spot.book(id));
        let levels = |b: &keel_core::market::book::OrderBook| {
            (
                b.top_bids(1_000).map(|x| x.collect::<Vec<_>>()),
                b.top_asks(1_000).map(|x| x.collect::<Vec<_>>()),
            )
        };
        assert_eq!(levels(l), levels(s), "{}", linear.book_topic(id));
    }
    assert!(taken > 1000, "{taken}");
}

#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop::sample::select(b"0123456789.-+eE\"',:[]{} \\\x01\x7f\x80\xffab".to_vec());
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
    ]
}

fn apply(line: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = line.to_vec();
    for e in edits {
        let n = v.len().max(1);
        match *e {
            Edit::Set(i, b) if !v.is_empty() => v[i % n] = b,
            Edit::Delete(i) if !v.is_empty() => {
                v.remove(i % n);
            }
            Edit::Insert(i, b) => v.insert(i % (v.len() + 1), b),
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_order_book_frames_decode_as_the_scanner_decodes_them(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        thread_local! {
            static BOOKS: Vec<Vec<u8>> = capture_lines()
                .into_iter()
                .filter(|l| l.starts_with(br#"{"topic":"orderbook."#))
                .collect();
        }
        let (original, damaged) = BOOKS.with(|b| {
            let original = b[pick.index(b.len())].clone();
            let damaged = apply(&original, &edits);
            (original, damaged)
        });
        // Once with the topic new to the decoder, once with it already in its topic table.
        for warm in [false, true] {
            let mut d = Decoder::default();
            if warm {
                prop_assert!(d.decode_template(&original).is_some());
            }
            if let Some(f) = d.decode_template(&damaged) {
                prop_assert_eq!(shown(Ok::<_, keel_core::DecodeError>(f)), general(&damaged));
            }
            let mut d = Decoder::default();
            if warm {
                prop_assert!(d.decode_bytes(&original).is_ok());
            }
            prop_assert_eq!(shown(d.decode_bytes(&damaged)), general(&damaged));
        }
    }
}

#[test]
fn levels_within_a_word_of_the_frame_end_decode_as_the_scanner_does() {
    // The template reads a level through a 48-byte window when the frame has one left, and from
    // the frame itself near its end: short frames put every level there.
    let sides = [
        r#"[["1.5","2"]]"#,
        r#"[["1","0"],["0.5","2.25"]]"#,
        r#"[["65114.20","0.002"]]"#,
        r#"[["123456789.5","0.000000001"]]"#,
        r#"[["0.000012345","12345678901"],["7","1"]]"#,
    ];
    for bids in sides {
        for asks in sides {
            for tail in [r#""u":7}}"#, r#""u":7,"seq":8},"cts":9}"#] {
                let line = format!(
                    r#"{{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{{"s":"X","b":{bids},"a":{asks},{tail}"#
                );
                let mut d = Decoder::default();
                let f = d.decode_template(line.as_bytes());
                assert!(f.is_some(), "{line}");
                assert_eq!(
                    shown(Ok::<_, keel_core::DecodeError>(f.unwrap())),
                    general(line.as_bytes()),
                    "{line}"
                );
            }
        }
    }
}

proptest! {
    /// Numbers of any width from one to twenty characters, the point anywhere (a spot price past
    /// 99,999.99, a size to eight places): the template takes every frame whose prices are
    /// positive, and whatever path a frame takes it decodes as the scanner does.
    #[test]
    fn levels_of_any_width_take_the_template_and_decode_as_the_scanner_does(
        levels in prop::collection::vec(
            ("[0-9]{1,10}(\\.[0-9]{1,9})?", "[0-9]{1,10}(\\.[0-9]{1,9})?"),
            1..30,
        ),
    ) {
        let side: Vec<String> = levels.iter().map(|(p, q)| format!(r#"["{p}","{q}"]"#)).collect();
        let side = side.join(",");
        let line = format!(
            r#"{{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1,"data":{{"s":"BTCUSDT","b":[{side}],"a":[{side}],"u":7,"seq":8}},"cts":9}}"#
        );
        let mut d = Decoder::default();
        prop_assert_eq!(shown(d.decode_bytes(line.as_bytes())), general(line.as_bytes()));
        let readable = levels
            .iter()
            .all(|(p, _)| keel_core::Dec::parse(p).is_ok_and(|p| !p.is_zero()));
        if readable {
            // Again with the numbers in the decoder's memo.
            let taken = d.decode_template(line.as_bytes());
            prop_assert!(taken.is_some(), "{}", line);
            prop_assert_eq!(
                shown(Ok::<_, keel_core::DecodeError>(taken.unwrap())),
                general(line.as_bytes())
            );
        }
    }
}
