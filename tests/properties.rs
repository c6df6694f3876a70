//! Property tests: each machine against a simple reference model, and hostile input against
//! the decoder.

use std::collections::BTreeMap;

use keel_core::decimal::Level;
use keel_core::market::Market;
use keel_core::market::book::{Applied, BookState, OrderBook};
use keel_core::market::kline::{Bar, CandleSource, KlineSeries};
use keel_core::wire::frame::{BookFrame, KlineData, UpdateKind, WireLevel};
use keel_core::wire::topic::Interval;
use keel_core::{Dec, MarketConfig, Time};
use keel_suite::fixtures_dir;
use proptest::prelude::*;

// ----- the book against a BTreeMap -----

#[derive(Debug, Clone)]
enum BookOp {
    Snapshot {
        bids: Vec<(u32, u32)>,
        asks: Vec<(u32, u32)>,
        u: u64,
    },
    /// `u` relative to the last applied: 1 is in order, 0 or less stale, 2+ a gap. Half of
    /// them list each price once, best first, as the venue does (the book then searches all the
    /// levels of a side together); the rest come in any order.
    Delta {
        bids: Vec<(u32, u32)>,
        asks: Vec<(u32, u32)>,
        du: i64,
        /// Applied as a decoded frame (the live path) rather than as decimals (REST, replays).
        as_frame: bool,
    },
    Restart {
        bids: Vec<(u32, u32)>,
        asks: Vec<(u32, u32)>,
    },
}

/// Bids from ticks 1..=60, asks from 40..=100: the ranges overlap so crossed books happen;
/// a size of 0 deletes.
fn side(lo: u32, hi: u32) -> impl Strategy<Value = Vec<(u32, u32)>> {
    prop::collection::vec((lo..=hi, 0u32..4), 0..24)
}

fn book_op() -> impl Strategy<Value = BookOp> {
    prop_oneof![
        1 => (side(1, 60), side(40, 100), 1u64..1000).prop_map(|(bids, asks, u)| BookOp::Snapshot { bids, asks, u }),
        8 => (side(1, 60), side(40, 100), prop_oneof![8 => Just(1i64), 1 => -3i64..=0, 1 => 2i64..5], any::<bool>(), any::<bool>())
            .prop_map(|(mut bids, mut asks, du, best_first, as_frame)| {
                if best_first {
                    bids.sort_by_key(|l| std::cmp::Reverse(l.0));
                    bids.dedup_by_key(|l| l.0);
                    asks.sort_by_key(|l| l.0);
                    asks.dedup_by_key(|l| l.0);
                }
                BookOp::Delta { bids, asks, du, as_frame }
            }),
        1 => (side(1, 60), side(40, 100)).prop_map(|(bids, asks)| BookOp::Restart { bids, asks }),
    ]
}

/// Ticks as hundredths of a price ("0.5" and "0.37" need different places, so the book widens
/// its units as levels arrive; the order of the ticks is kept) and sizes with 3, 2 or no places.
fn lv(v: &[(u32, u32)]) -> Vec<Level> {
    const SIZES: [(u64, u32); 4] = [(0, 0), (1, 3), (1, 2), (2, 0)];
    v.iter()
        .map(|(p, q)| {
            let (count, places) = SIZES[*q as usize % SIZES.len()];
            Level {
                px: Dec::from_parts(*p as u64, 2, false),
                qty: Dec::from_parts(count, places, false),
            }
        })
        .collect()
}

/// The same levels as the decoder hands them over, for the book's frame path.
fn wire(v: &[(u32, u32)]) -> Vec<WireLevel> {
    lv(v)
        .into_iter()
        .map(|l| WireLevel::from_level(l).unwrap())
        .collect()
}

#[derive(Debug)]
struct BookModel {
    depth: usize,
    state: BookState,
    u: Option<u64>,
    bids: BTreeMap<u32, u32>,
    asks: BTreeMap<u32, u32>,
}

impl BookModel {
    fn load(&mut self, bids: &[(u32, u32)], asks: &[(u32, u32)], u: u64) {
        self.bids.clear();
        self.asks.clear();
        self.apply(bids, asks);
        self.u = Some(u);
        self.state = BookState::Synced;
        self.check();
    }
    fn apply(&mut self, bids: &[(u32, u32)], asks: &[(u32, u32)]) {
        for (m, v) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for &(p, q) in v {
                if q == 0 {
                    m.remove(&p);
                } else {
                    m.insert(p, q);
                }
            }
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
    }
    fn check(&mut self) {
        if let (Some(b), Some(a)) = (self.bids.keys().next_back(), self.asks.keys().next())
            && b >= a
        {
            self.state = BookState::Resyncing;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn book_matches_a_btreemap_model(depth in prop_oneof![1usize..8, 8usize..40], ops in prop::collection::vec(book_op(), 1..60)) {
        let mut book = OrderBook::new(depth);
        let mut m = BookModel { depth, state: BookState::Empty, u: None, bids: BTreeMap::new(), asks: BTreeMap::new() };
        for op in ops {
            match op {
                BookOp::Snapshot { bids, asks, u } => {
                    let repeat = depth == 1 && m.state == BookState::Synced && m.u == Some(u);
                    let got = book.apply_snapshot(&lv(&bids), &lv(&asks), u, None, 0);
                    if repeat {
                        prop_assert_eq!(got, Applied::Repeat);
                    } else {
                        m.load(&bids, &asks, u);
                    }
                }
                BookOp::Restart { bids, asks } => {
                    let repeat = depth == 1 && m.state == BookState::Synced && m.u == Some(1);
                    book.apply_snapshot(&lv(&bids), &lv(&asks), 1, None, 0);
                    if !repeat {
                        m.load(&bids, &asks, 1);
                    }
                }
                BookOp::Delta { bids, asks, du, as_frame } => {
                    let last = m.u.unwrap_or(0);
                    let u = (last as i64 + du).max(0) as u64;
                    let got = if as_frame {
                        let (b, a) = (wire(&bids), wire(&asks));
                        book.apply(&BookFrame {
                            topic: "orderbook.50.T",
                            symbol: "T",
                            depth: 50,
                            kind: UpdateKind::Delta,
                            ts: 0,
                            u,
                            seq: None,
                            cts: None,
                            bids: &b,
                            asks: &a,
                            topic_key: 0,
                        })
                    } else {
                        book.apply_delta(&lv(&bids), &lv(&asks), u, None, 0)
                    };
                    if m.state != BookState::Synced {
                        prop_assert_eq!(got, Applied::Ignored);
                    } else if u <= last {
                        prop_assert_eq!(got, Applied::Stale);
                    } else if u != last + 1 {
                        m.state = BookState::Resyncing;
                    } else {
                        m.apply(&bids, &asks);
                        m.u = Some(u);
                        m.check();
                    }
                }
            }
            prop_assert_eq!(book.state(), m.state);
            prop_assert_eq!(book.last_u(), m.u);
            let want_bids: Vec<Level> = lv(&m.bids.iter().rev().map(|(p, q)| (*p, *q)).collect::<Vec<_>>());
            let want_asks: Vec<Level> = lv(&m.asks.iter().map(|(p, q)| (*p, *q)).collect::<Vec<_>>());
            prop_assert_eq!(book.raw_bids().collect::<Vec<_>>(), want_bids.clone());
            prop_assert_eq!(book.raw_asks().collect::<Vec<_>>(), want_asks);
            // Reads succeed exactly when the book is synced, and then show its best level.
            match book.best_bid() {
                Ok(b) => prop_assert_eq!(Some(b), want_bids.first().copied()),
                Err(_) => prop_assert!(m.state != BookState::Synced || want_bids.is_empty()),
            }
            prop_assert!(book.raw_bids().len() <= depth && book.raw_asks().len() <= depth);
        }
    }
}

// ----- the kline series against a naive model -----

const MIN: u64 = 60_000;

#[derive(Debug, Clone)]
enum KOp {
    Live {
        slot: u64,
        confirm: bool,
        close: i64,
    },
    Rest {
        slots: Vec<(u64, i64)>,
        now_slot: u64,
    },
}

fn k_op() -> impl Strategy<Value = KOp> {
    prop_oneof![
        4 => (0u64..40, any::<bool>(), 1i64..100).prop_map(|(slot, confirm, close)| KOp::Live { slot, confirm, close }),
        1 => (prop::collection::vec((0u64..40, 1i64..100), 0..30), 0u64..45)
            .prop_map(|(slots, now_slot)| KOp::Rest { slots, now_slot }),
    ]
}

fn kd(slot: u64, close: i64, confirm: bool) -> KlineData {
    KlineData {
        start: slot * MIN,
        end: Some(slot * MIN + MIN - 1),
        open: Dec::from_int(close),
        high: Dec::from_int(close),
        low: Dec::from_int(close),
        close: Dec::from_int(close),
        volume: Dec::ONE,
        turnover: Dec::ONE,
        confirm,
        timestamp: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn kline_series_matches_a_naive_model(ops in prop::collection::vec(k_op(), 1..50)) {
        let mut s = KlineSeries::new(Interval::Min1, 10_000);
        // start -> (close, from live)
        let mut model: BTreeMap<u64, (i64, bool)> = BTreeMap::new();
        let mut emitted: Vec<u64> = Vec::new();
        for op in ops {
            match op {
                KOp::Live { slot, confirm: true, close } => {
                    let start = slot * MIN;
                    let before = s.counters().closes;
                    s.apply_live(&kd(slot, close, true));
                    if s.counters().closes > before {
                        emitted.push(start);
                    }
                    match model.get(&start) {
                        Some((_, true)) => {}
                        _ => { model.insert(start, (close, true)); }
                    }
                }
                KOp::Live { slot, confirm: false, close } => {
                    s.apply_live(&kd(slot, close, false));
                }
                KOp::Rest { slots, now_slot } => {
                    let bars: Vec<Bar> = slots.iter().map(|(sl, c)| Bar::from_kline(&kd(*sl, *c, true))).collect();
                    s.merge_rest(&bars, now_slot * MIN);
                    // Naive: one by one; the first of repeated starts in a page wins, open ones skipped.
                    let mut seen = std::collections::BTreeSet::new();
                    let mut sorted = slots.clone();
                    sorted.sort_by_key(|(sl, _)| *sl);
                    for (sl, c) in sorted {
                        if (sl + 1) * MIN > now_slot * MIN || !seen.insert(sl) {
                            continue;
                        }
                        match model.get(&(sl * MIN)) {
                            Some((_, true)) => {}
                            _ => { model.insert(sl * MIN, (c, false)); }
                        }
                    }
                }
            }
            let got: Vec<(u64, i64, bool)> = s.closed()
                .map(|c| (c.bar.start_ms, (c.bar.close.raw() / Dec::ONE.raw()) as i64, c.source == CandleSource::Live))
                .collect();
            let want: Vec<(u64, i64, bool)> = model.iter().map(|(st, (c, l))| (*st, *c, *l)).collect();
            prop_assert_eq!(got, want);
            if let (Some(f), Some(last)) = (s.forming(), s.last_closed()) {
                prop_assert!(f.bar.start_ms > last.bar.start_ms, "a forming candle is never older than a closed one");
            }
        }
        // Each start was emitted at most once.
        let mut sorted = emitted.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), emitted.len());
    }
}

// ----- hostile input -----

/// Everything a strategy or a report could read from the market, as text.
fn state_digest(m: &Market) -> String {
    let mut out = String::new();
    for id in m.book_ids() {
        let b = m.book(id);
        out += &format!(
            "{} {:?} {:?} {:?}",
            m.book_topic(id),
            b.state(),
            b.last_u(),
            b.last_seq()
        );
        out += &format!(
            "{:?}{:?}",
            b.raw_bids().collect::<Vec<_>>(),
            b.raw_asks().collect::<Vec<_>>()
        );
    }
    for id in m.series_ids() {
        let s = m.series(id);
        out += &format!("{:?}{:?}", s.closed().collect::<Vec<_>>(), s.forming());
    }
    for sym in ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"] {
        out += &format!("{:?}{:?}", m.ticker(sym), m.last_trade(sym));
    }
    out
}

fn fixture_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for f in keel_suite::ws_captures() {
        lines.extend(
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    lines.extend(
        std::fs::read_to_string(fixtures_dir().join("control/ws_control_frames_observed.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned),
    );
    lines
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Cut { at: usize },
    Insert { at: usize, text: &'static str },
    Delete { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "\"", ",", "]", "}", "-", "0", ".", "e5", "null", "[[", "\\u0000", "\"x\":1,"
            ])
        )
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

fn mutate(line: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    for m in muts {
        if b.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip { at, byte } => {
                let i = at % b.len();
                b[i] = byte;
            }
            Mutation::Cut { at } => b.truncate(at % b.len()),
            Mutation::Insert { at, text } => {
                let i = at % (b.len() + 1);
                b.splice(i..i, text.bytes());
            }
            Mutation::Delete { at, len } => {
                let i = at % b.len();
                let j = (i + len).min(b.len());
                b.drain(i..j);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_or_change_state(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut m = Market::new(MarketConfig::default());
        let lines = fixture_lines();
        m.handle_frame(Time::ZERO, &lines[0]).ok();
        let before = state_digest(&m);
        if m.handle_frame_bytes(Time::ZERO, &bytes).is_err() {
            prop_assert_eq!(state_digest(&m), before);
        }
    }

    #[test]
    fn mutated_real_frames_never_panic_and_refusals_change_nothing(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let lines = fixture_lines();
        let i = pick.index(lines.len());
        let mut m = Market::new(MarketConfig::default());
        // Bring the market to the state just before this frame, within its own file.
        for l in &lines[..i] {
            let _ = m.handle_frame(Time::ZERO, l);
            while m.poll_event().is_some() {}
        }
        let before = state_digest(&m);
        let bad = mutate(&lines[i], &muts);
        if m.handle_frame_bytes(Time::ZERO, &bad).is_err() {
            prop_assert_eq!(state_digest(&m), before);
        }
    }
}
