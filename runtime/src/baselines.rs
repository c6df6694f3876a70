//! What users would otherwise run, written as a competent engineer would write it, for
//! `keel bench` and the criterion benches to measure keel against in the same run.

use std::collections::{BTreeMap, HashMap};

use keel_core::decimal::Level;

use keel_core::wire::frame::{Frame, UpdateKind, WireLevel};

use keel_core::wire::codec::Decoder;
use rust_decimal::Decimal;
use serde_json::Value;

/// The typical implementation: every frame into `serde_json::Value`, books as BTreeMaps keyed
/// by parsed decimal prices.
/// One side of a typical book: price to size.
type TypicalSide = BTreeMap<Decimal, Decimal>;

#[derive(Default)]
pub struct Typical {
    books: HashMap<String, (TypicalSide, TypicalSide, u64)>,
}

impl Typical {
    pub fn handle(&mut self, line: &[u8]) -> bool {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        let Some(topic) = v.get("topic").and_then(Value::as_str) else {
            return true;
        };
        if !topic.starts_with("orderbook.") {
            return true;
        }
        let data = &v["data"];
        let snapshot = v["type"] == "snapshot";
        let book = self.books.entry(topic.to_string()).or_default();
        if snapshot {
            book.0.clear();
            book.1.clear();
        }
        for (side, key) in [(&mut book.0, "b"), (&mut book.1, "a")] {
            for l in data[key].as_array().into_iter().flatten() {
                let (Some(p), Some(q)) = (l[0].as_str(), l[1].as_str()) else {
                    continue;
                };
                let (Ok(p), Ok(q)) = (p.parse::<Decimal>(), q.parse::<Decimal>()) else {
                    continue;
                };
                if q.is_zero() {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
        book.2 = data["u"].as_u64().unwrap_or(0);
        true
    }
}

/// The failure mode keel exists to remove: the book kept as a plain list and re-sorted after
/// every delta. Parsing uses keel's own decoder so the difference is the re-sort alone.
#[derive(Default)]
pub struct Resort {
    decoder: Decoder,
    books: HashMap<String, (Vec<Level>, Vec<Level>)>,
}

impl Resort {
    pub fn handle(&mut self, line: &[u8]) -> bool {
        let Ok(Frame::Book(f)) = self.decoder.decode_bytes(line) else {
            return true;
        };
        let book = self.books.entry(f.topic.to_string()).or_default();
        if f.kind == UpdateKind::Snapshot {
            book.0.clear();
            book.1.clear();
        }
        for (side, levels) in [(&mut book.0, f.bids), (&mut book.1, f.asks)] {
            for l in levels.iter().map(WireLevel::level) {
                match side.iter().position(|x| x.px == l.px) {
                    Some(i) if l.qty.is_zero() => {
                        side.swap_remove(i);
                    }
                    Some(i) => side[i].qty = l.qty,
                    None if l.qty.is_zero() => {}
                    None => side.push(l),
                }
            }
        }
        book.0.sort_by_key(|l| std::cmp::Reverse(l.px));
        book.1.sort_by_key(|l| l.px);
        true
    }
}

/// The least any JSON reader must do: find every string.
pub fn floor(line: &[u8]) -> usize {
    memchr::memchr_iter(b'"', line).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::{Market, MarketConfig, Time};

    /// The typical baseline builds the very book keel builds: the ratios compare equal work.
    #[test]
    fn the_typical_baseline_ends_with_the_book_keel_ends_with() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/bybit/ws/linear/orderbook.200.BTCUSDT.jsonl"
        );
        let data = std::fs::read(path).unwrap();
        let (mut typical, mut market) = (Typical::default(), Market::new(MarketConfig::default()));
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(typical.handle(line));
            market.handle_frame_bytes(Time::ZERO, line).unwrap();
        }
        let topic = "orderbook.200.BTCUSDT";
        let (bids, asks, _) = &typical.books[topic];
        let book = market.book(market.book_id(topic).unwrap());
        let dec = |d: &Decimal| keel_core::Dec::parse(&d.to_string()).unwrap();
        assert_eq!(
            dec(bids.keys().next_back().unwrap()),
            book.best_bid().unwrap().px
        );
        assert_eq!(
            dec(asks.keys().next().unwrap()),
            book.best_ask().unwrap().px
        );
        assert_eq!(bids.len(), book.top_bids(10_000).unwrap().count());
        assert_eq!(asks.len(), book.top_asks(10_000).unwrap().count());
    }
}
