use super::*;
use crate::market::book::BookState;
use crate::wire::error::BadReason;

const SNAP: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[["100","1"]],"a":[["101","1"]],"u":10,"seq":1}}"#;

fn kline(start: u64, o: &str, h: &str, l: &str, c: &str, v: &str) -> String {
    format!(
        r#"{{"topic":"kline.1.BTCUSDT","data":[{{"start":{start},"end":{},"interval":"1","open":"{o}","close":"{c}","high":"{h}","low":"{l}","volume":"{v}","turnover":"1","confirm":false,"timestamp":1}}],"ts":1,"type":"snapshot"}}"#,
        start + 59_999
    )
}

/// Every frame that parses but cannot be true is refused as implausible, counted, and
/// changes nothing: the market looks the same as before it came.
#[test]
fn frames_that_parse_but_cannot_be_true_are_refused_and_change_nothing() {
    let mut m = Market::new(MarketConfig::default());
    m.handle_frame(Time::ZERO, &kline(60_000, "100", "110", "90", "105", "1"))
        .unwrap();
    let trade_ok = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"100","L":"PlusTick","i":"a","BT":false}]}"#;
    m.handle_frame(Time::ZERO, trade_ok).unwrap();
    let ticker_ok = r#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","lastPrice":"100","markPrice":"100"},"cs":1,"ts":1}"#;
    m.handle_frame(Time::ZERO, ticker_ok).unwrap();
    let series = m.series_id("kline.1.BTCUSDT").unwrap();
    let forming = *m.series(series).forming().unwrap();
    let last_trade = m.last_trade("BTCUSDT").unwrap().clone();
    let ticker = m.ticker("BTCUSDT").cloned();
    let bad = [
        kline(60_000, "100", "104", "90", "105", "1"),
        kline(60_000, "100", "110", "101", "105", "1"),
        kline(60_000, "-5", "110", "90", "105", "1"),
        kline(60_000, "100", "110", "90", "0", "1"),
        kline(60_000, "100", "110", "90", "105", "-1"),
        kline(60_001, "100", "110", "90", "105", "1"),
        trade_ok.replace(r#""p":"100""#, r#""p":"0""#),
        trade_ok.replace(r#""v":"1""#, r#""v":"-1""#),
        ticker_ok.replace(r#""lastPrice":"100""#, r#""lastPrice":"-1""#),
        ticker_ok.replace(r#""markPrice":"100""#, r#""markPrice":"0""#),
    ];
    for (n, frame) in bad.iter().enumerate() {
        match m.handle_frame(Time::ZERO, frame) {
            Err(MarketError::Decode(DecodeError::Implausible { .. })) => {}
            other => panic!("frame {n} was not refused as implausible: {other:?}\n{frame}"),
        }
    }
    assert_eq!(
        m.counters()
            .bad
            .get(crate::wire::error::BadReason::Implausible),
        bad.len() as u64
    );
    assert_eq!(*m.series(series).forming().unwrap(), forming);
    assert_eq!(*m.last_trade("BTCUSDT").unwrap(), last_trade);
    assert_eq!(m.ticker("BTCUSDT").cloned(), ticker);
}

fn delta(u: u64, bid: &str) -> String {
    format!(
        r#"{{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{{"s":"BTCUSDT","b":[["{bid}","2"]],"a":[],"u":{u},"seq":2}}}}"#
    )
}

#[test]
fn frames_of_many_interleaved_topics_each_reach_their_own_book() {
    // More topics than the decoder's topic table and the market's key memory hold, so slots
    // are shared and topics come back after being pushed out.
    let mut m = Market::new(MarketConfig::default());
    let frame = |i: u64, kind: &str, u: u64, bid: u64| {
        format!(
            r#"{{"topic":"orderbook.50.S{i}USDT","type":"{kind}","ts":1,"data":{{"s":"S{i}USDT","b":[["{bid}","1"]],"a":[["9999","1"]],"u":{u}}}}}"#
        )
    };
    let topics = 150u64;
    for i in 0..topics {
        m.handle_frame(Time::ZERO, &frame(i, "snapshot", 1, 1000 + i))
            .unwrap();
    }
    for round in 0..3u64 {
        // A different order each round: forwards, backwards, odd then even.
        let mut order: Vec<u64> = (0..topics).collect();
        match round {
            1 => order.reverse(),
            2 => order.sort_by_key(|i| (i % 2 == 0, *i)),
            _ => {}
        }
        for i in order {
            let bid = 2000 + round * 1000 + i;
            m.handle_frame(Time::ZERO, &frame(i, "delta", round + 2, bid))
                .unwrap();
        }
    }
    for i in 0..topics {
        let id = m.book_id(&format!("orderbook.50.S{i}USDT")).unwrap();
        let book = m.book(id);
        assert_eq!(book.state(), BookState::Synced, "S{i}");
        assert_eq!(book.last_u(), Some(4), "S{i}");
        assert_eq!(
            book.best_bid().unwrap().px,
            crate::Dec::from_int(4000 + i as i64),
            "S{i}"
        );
    }
}

#[test]
fn delta_after_gap_marks_book_resyncing_and_asks_for_a_resync() {
    let mut m = Market::new(MarketConfig::default());
    m.handle_frame(Time::ZERO, SNAP).unwrap();
    let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
    m.handle_frame(Time::ZERO, &delta(12, "99")).unwrap();
    assert_eq!(m.book(id).state(), BookState::Resyncing);
    assert_eq!(
        m.poll_event(),
        Some(MarketEvent::ResyncNeeded {
            book: id,
            reason: ResyncReason::Gap {
                expected: 11,
                got: 12
            }
        })
    );
    assert_eq!(m.poll_event(), None);
}

#[test]
fn bad_frame_is_counted_and_changes_no_state() {
    let mut m = Market::new(MarketConfig::default());
    m.handle_frame(Time::ZERO, SNAP).unwrap();
    let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
    let before: Vec<_> = m.book(id).raw_bids().collect();
    // Valid until the last level, whose size is not a number.
    let bad = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":2,"data":{"s":"BTCUSDT","b":[["99","2"],["98","x"]],"a":[],"u":11}}"#;
    assert!(m.handle_frame(Time::ZERO, bad).is_err());
    assert_eq!(m.book(id).raw_bids().collect::<Vec<_>>(), before);
    assert_eq!(m.book(id).last_u(), Some(10));
    assert_eq!(m.counters().bad.get(BadReason::BadNumber), 1);
    assert_eq!(m.counters().frames, 1);
    m.handle_frame(Time::ZERO, &delta(11, "99")).unwrap();
    assert_eq!(m.book(id).last_u(), Some(11));
}

#[test]
fn topics_beyond_the_limit_are_refused() {
    let mut m = Market::new(MarketConfig {
        topics_max: 1,
        ..MarketConfig::default()
    });
    m.handle_frame(Time::ZERO, SNAP).unwrap();
    let other = SNAP.replace("BTCUSDT", "ETHUSDT");
    assert_eq!(
        m.handle_frame(Time::ZERO, &other),
        Err(MarketError::TooManyTopics { max: 1 })
    );
    assert_eq!(m.counters().too_many_topics, 1);
}

#[test]
fn failed_subscription_is_handed_back_without_an_event() {
    let mut m = Market::new(MarketConfig::default());
    let text = r#"{"success":false,"ret_msg":"error:handler not found,topic:orderbook.500.BTCUSDT","conn_id":"c","req_id":"r","op":"subscribe"}"#;
    let Ok(Handled::Control(Control::Ack(ack))) = m.handle_frame(Time::ZERO, text) else {
        panic!("no ack handed back")
    };
    assert_eq!(m.poll_event(), None);
    assert_eq!(
        ack.result().unwrap_err().topics,
        vec!["orderbook.500.BTCUSDT"]
    );
    assert_eq!(m.counters().subscribe_failures, 1);
}

#[test]
fn invalidated_books_refuse_reads_until_their_next_snapshot() {
    let mut m = Market::new(MarketConfig::default());
    m.handle_frame(Time::ZERO, SNAP).unwrap();
    let id = m.book_id("orderbook.50.BTCUSDT").unwrap();
    m.invalidate_books();
    assert!(m.book(id).best_bid().is_err());
    m.handle_frame(Time::ZERO, SNAP).unwrap();
    assert!(m.book(id).best_bid().is_ok());
}

#[test]
fn recent_trades_are_kept_oldest_first_up_to_their_bound() {
    let mut m = Market::new(MarketConfig::default());
    let trade = |t: usize| {
        format!(
            r#"{{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":{t},"data":[{{"T":{t},"s":"BTCUSDT","S":"Buy","v":"1","p":"{}","L":"PlusTick","i":"a{t}","BT":false}}]}}"#,
            100 + t
        )
    };
    for t in 1..=RECENT_TRADES_MAX + 10 {
        m.handle_frame(Time::ZERO, &trade(t)).unwrap();
    }
    let last = m.last_trade("BTCUSDT").unwrap();
    assert_eq!(last.count, (RECENT_TRADES_MAX + 10) as u64);
    assert_eq!(last.recent.len(), RECENT_TRADES_MAX);
    assert_eq!(last.recent.front().unwrap().time_ms, 11);
    assert_eq!(
        last.recent.back().unwrap().time_ms,
        (RECENT_TRADES_MAX + 10) as u64
    );
}
