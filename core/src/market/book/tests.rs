use super::*;

fn l(px: &str, qty: &str) -> Level {
    Level {
        px: Dec::parse(px).unwrap(),
        qty: Dec::parse(qty).unwrap(),
    }
}

fn synced_book() -> OrderBook {
    let mut b = OrderBook::new(50);
    let bids = [l("100", "1"), l("99", "2"), l("98", "3")];
    let asks = [l("101", "1"), l("102", "2")];
    assert_eq!(
        b.apply_snapshot(&bids, &asks, 10, Some(1), 0),
        Applied::Snapshot
    );
    b
}

fn bids(b: &OrderBook) -> Vec<Level> {
    b.raw_bids().collect()
}

#[test]
fn reads_fail_before_the_first_snapshot() {
    let b = OrderBook::new(50);
    assert_eq!(b.state(), BookState::Empty);
    assert_eq!(
        b.best_bid(),
        Err(BookReadError::NotSynced(BookState::Empty))
    );
}

#[test]
fn snapshot_sorts_dedupes_and_drops_zero_levels() {
    let mut b = OrderBook::new(50);
    let bids = [l("98", "3"), l("100", "1"), l("99", "0"), l("100", "4")];
    b.apply_snapshot(&bids, &[l("101", "1")], 5, None, 0);
    assert_eq!(bids_of(&b), vec![l("100", "4"), l("98", "3")]);
    fn bids_of(b: &OrderBook) -> Vec<Level> {
        b.raw_bids().collect()
    }
}

#[test]
fn delta_in_sequence_inserts_updates_and_deletes() {
    let mut b = synced_book();
    let applied = b.apply_delta(
        &[l("100.5", "7"), l("99", "0"), l("98", "9")],
        &[],
        11,
        Some(2),
        0,
    );
    assert_eq!(applied, Applied::Delta);
    assert_eq!(bids(&b), vec![l("100.5", "7"), l("100", "1"), l("98", "9")]);
    assert_eq!(b.best_bid(), Ok(l("100.5", "7")));
    assert_eq!(b.last_u(), Some(11));
    assert_eq!(b.last_seq(), Some(2));
}

#[test]
fn stale_delta_is_ignored_and_counted() {
    let mut b = synced_book();
    assert_eq!(
        b.apply_delta(&[l("100", "5")], &[], 10, None, 0),
        Applied::Stale
    );
    assert_eq!(
        b.apply_delta(&[l("100", "5")], &[], 3, None, 0),
        Applied::Stale
    );
    assert_eq!(b.counters().stale, 2);
    assert_eq!(b.best_bid(), Ok(l("100", "1")));
}

#[test]
fn delta_after_gap_marks_book_resyncing_until_next_snapshot() {
    let mut b = synced_book();
    assert_eq!(
        b.apply_delta(&[l("100", "5")], &[], 12, None, 0),
        Applied::Desynced(ResyncReason::Gap {
            expected: 11,
            got: 12
        })
    );
    assert_eq!(b.state(), BookState::Resyncing);
    assert_eq!(
        b.best_bid(),
        Err(BookReadError::NotSynced(BookState::Resyncing))
    );
    assert_eq!(
        b.apply_delta(&[l("100", "5")], &[], 13, None, 0),
        Applied::Ignored
    );
    assert_eq!(b.last_u(), Some(10));
    b.apply_snapshot(&[l("90", "1")], &[l("91", "1")], 500, None, 0);
    assert_eq!(b.state(), BookState::Synced);
    assert_eq!(b.best_bid(), Ok(l("90", "1")));
}

#[test]
fn restart_snapshot_with_u_one_resets_the_book() {
    let mut b = synced_book();
    assert_eq!(
        b.apply_snapshot(&[l("50", "1")], &[l("51", "1")], 1, None, 0),
        Applied::Snapshot
    );
    assert_eq!(bids(&b), vec![l("50", "1")]);
    assert_eq!(
        b.apply_delta(&[l("50", "2")], &[], 2, None, 0),
        Applied::Delta
    );
}

#[test]
fn level_one_snapshot_repeating_u_is_a_no_op() {
    let mut b = OrderBook::new(1);
    b.apply_snapshot(&[l("10", "1")], &[l("11", "1")], 7, None, 0);
    assert_eq!(
        b.apply_snapshot(&[l("10", "1")], &[l("11", "1")], 7, None, 3000),
        Applied::Repeat
    );
    assert_eq!(b.last_ts(), Some(0));
    assert_eq!(b.counters().repeats, 1);
}

#[test]
fn crossing_delta_marks_book_resyncing() {
    let mut b = synced_book();
    assert_eq!(
        b.apply_delta(&[l("101", "1")], &[], 11, None, 0),
        Applied::Desynced(ResyncReason::Crossed)
    );
    assert_eq!(b.state(), BookState::Resyncing);
}

#[test]
fn sides_never_exceed_the_depth() {
    let mut b = OrderBook::new(2);
    b.apply_snapshot(
        &[l("3", "1"), l("2", "1"), l("1", "1")],
        &[l("4", "1")],
        1,
        None,
        0,
    );
    assert_eq!(bids(&b), vec![l("3", "1"), l("2", "1")]);
    b.apply_delta(&[l("2.5", "1")], &[], 2, None, 0);
    assert_eq!(bids(&b), vec![l("3", "1"), l("2.5", "1")]);
    assert_eq!(b.counters().levels_truncated, 2);
}

#[test]
fn rest_repair_replays_the_deltas_held_since_the_gap() {
    let mut b = synced_book();
    b.apply_delta(&[l("100", "5")], &[], 12, None, 0); // gap: 11 is missing
    b.hold_deltas(10);
    b.apply_delta(&[l("99", "7")], &[], 13, None, 0);
    b.apply_delta(&[l("97", "1")], &[], 14, None, 0);
    // The REST snapshot is at u = 13: delta 13 is already in it, delta 14 is not.
    let got = b.apply_snapshot(
        &[l("100", "5"), l("99", "7")],
        &[l("101", "1")],
        13,
        None,
        0,
    );
    assert_eq!(got, Applied::Snapshot);
    assert_eq!(b.state(), BookState::Synced);
    assert_eq!(b.last_u(), Some(14));
    assert_eq!(bids(&b), vec![l("100", "5"), l("99", "7"), l("97", "1")]);
    assert!(!b.is_holding());
}

#[test]
fn rest_snapshot_older_than_the_held_deltas_leaves_the_book_resyncing() {
    let mut b = synced_book();
    b.apply_delta(&[], &[], 12, None, 0);
    b.hold_deltas(10);
    b.apply_delta(&[l("99", "7")], &[], 20, None, 0);
    let got = b.apply_snapshot(&[l("100", "5")], &[l("101", "1")], 13, None, 0);
    assert!(matches!(
        got,
        Applied::Desynced(ResyncReason::Gap {
            expected: 14,
            got: 20
        })
    ));
    assert_eq!(b.state(), BookState::Resyncing);
}

#[test]
fn mid_is_the_middle_of_the_best_levels_and_refused_out_of_sync() {
    let mut b = synced_book();
    assert_eq!(b.mid(), Ok(Dec::parse("100.5").unwrap()));
    b.invalidate();
    assert_eq!(b.mid(), Err(BookReadError::NotSynced(BookState::Resyncing)));
}

#[test]
fn a_level_with_more_places_widens_the_book_without_changing_it() {
    let mut b = synced_book();
    b.apply_delta(&[l("99.125", "0.5")], &[l("101.5", "2.25")], 11, None, 0);
    assert_eq!(
        bids(&b),
        vec![
            l("100", "1"),
            l("99.125", "0.5"),
            l("99", "2"),
            l("98", "3")
        ]
    );
    assert_eq!(b.best_ask(), Ok(l("101", "1")));
    assert_eq!(
        b.raw_asks().collect::<Vec<_>>(),
        vec![l("101", "1"), l("101.5", "2.25"), l("102", "2")]
    );
}

#[test]
fn a_level_the_book_cannot_hold_is_refused_and_the_book_left_as_it_was() {
    let mut b = synced_book();
    // A price of 10^17 and one with 3 places cannot share u64 thousandths.
    let huge = l("100000000000000000", "1");
    assert_eq!(
        b.apply_delta(&[], &[huge], 11, None, 0),
        Applied::Delta,
        "alone it fits"
    );
    let asks_before: Vec<Level> = b.raw_asks().collect();
    let got = b.apply_delta(&[l("99.125", "1")], &[], 12, None, 0);
    assert_eq!(got, Applied::Desynced(ResyncReason::OutOfRange));
    assert_eq!(b.state(), BookState::Resyncing);
    assert_eq!(b.counters().out_of_range, 1);
    assert_eq!(b.last_u(), Some(11));
    assert_eq!(bids(&b), vec![l("100", "1"), l("99", "2"), l("98", "3")]);
    assert_eq!(b.raw_asks().collect::<Vec<_>>(), asks_before);
    assert_eq!(asks_before.last(), Some(&huge));
    // A negative size is refused the same way, before any level moves.
    let mut b = synced_book();
    let got = b.apply_snapshot(&[l("90", "-1")], &[l("91", "1")], 20, None, 0);
    assert_eq!(got, Applied::Desynced(ResyncReason::OutOfRange));
    assert_eq!(bids(&b), vec![l("100", "1"), l("99", "2"), l("98", "3")]);
}

#[test]
fn top_levels_come_best_first() {
    let b = synced_book();
    let top: Vec<_> = b.top_asks(5).unwrap().collect();
    assert_eq!(top, vec![l("101", "1"), l("102", "2")]);
    let top: Vec<_> = b.top_bids(2).unwrap().collect();
    assert_eq!(top, vec![l("100", "1"), l("99", "2")]);
}

/// A book learns whether its deltas come in its own units; whichever way they come next, and
/// however often that changes, the book is the one the plain decimals build.
#[test]
fn deltas_switching_between_trimmed_and_fixed_places_build_the_same_book() {
    use crate::wire::codec::Decoder;
    use crate::wire::frame::Frame;
    let frame = |kind: &str, u: u64, bids: &str, asks: &str| {
        format!(
            r#"{{"topic":"orderbook.50.BTCUSDT","type":"{kind}","ts":1,"data":{{"s":"BTCUSDT","b":[{bids}],"a":[{asks}],"u":{u},"seq":{u}}},"cts":1}}"#
        )
    };
    let (mut decoder, mut book, mut plain) =
        (Decoder::default(), OrderBook::new(50), OrderBook::new(50));
    let snapshot = frame(
        "snapshot",
        1,
        r#"["100.00","1.000"]"#,
        r#"["101.00","1.000"]"#,
    );
    let Ok(Frame::Book(f)) = decoder.decode(&snapshot) else {
        panic!()
    };
    assert_eq!(book.apply(&f), Applied::Snapshot);
    plain.apply_snapshot(&[l("100", "1")], &[l("101", "1")], 1, Some(1), 1);
    for u in 2..300u64 {
        // Runs of each shape, longer and shorter than the recheck period.
        let trimmed = (u / 50) % 2 == 0 || u % 7 == 0;
        let (px, qty) = (
            format!("{}.{:02}", 90 + u % 10, u % 100),
            format!("{}.{:03}", u % 5, u % 1000),
        );
        let show = |v: &str| {
            if trimmed {
                Dec::parse(v).unwrap().to_string()
            } else {
                v.to_string()
            }
        };
        let text = frame(
            "delta",
            u,
            &format!(r#"["{}","{}"]"#, show(&px), show(&qty)),
            "",
        );
        let Ok(Frame::Book(f)) = decoder.decode(&text) else {
            panic!("{text}")
        };
        assert_eq!(book.apply(&f), Applied::Delta, "{text}");
        plain.apply_delta(&[l(&px, &qty)], &[], u, Some(u), 1);
        assert_eq!(bids(&book), bids(&plain), "after {text}");
    }
}
