//! `keel replay` against an independent model of the book and kline rules, written here with
//! serde_json::Value, BTreeMaps and string decimals: nothing shared with keel-core's code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use keel_runtime::replay::{ReplayArgs, run};
use keel_suite::{canonical_decimal, decimal_key, fixtures_dir, ws_captures};
use serde_json::Value;

type Key = (u128, u128);

#[derive(Default)]
struct ModelBook {
    depth: usize,
    state: &'static str,
    u: Option<u64>,
    seq: Option<u64>,
    bids: BTreeMap<Key, (String, String)>,
    asks: BTreeMap<Key, (String, String)>,
}

impl ModelBook {
    fn best_bids(&self) -> Vec<&(String, String)> {
        self.bids.values().rev().collect()
    }
    fn best_asks(&self) -> Vec<&(String, String)> {
        self.asks.values().collect()
    }
    fn truncate(&mut self) {
        while self.bids.len() > self.depth {
            let k = *self.bids.keys().next().unwrap();
            self.bids.remove(&k);
        }
        while self.asks.len() > self.depth {
            let k = *self.asks.keys().next_back().unwrap();
            self.asks.remove(&k);
        }
    }
    fn crossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(b), Some(a)) => b >= a,
            _ => false,
        }
    }
}

fn levels(v: &Value) -> Vec<(Key, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let p = l[0].as_str().unwrap();
            let q = l[1].as_str().unwrap();
            (
                decimal_key(p).unwrap(),
                canonical_decimal(p).unwrap(),
                canonical_decimal(q).unwrap(),
            )
        })
        .collect()
}

fn pair(l: Option<&(String, String)>) -> String {
    match l {
        Some((p, q)) => format!(r#"["{p}","{q}"]"#),
        None => "null".into(),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

#[derive(Default)]
struct Model {
    out: String,
    books: BTreeMap<String, ModelBook>,
    candles: BTreeMap<(String, u64), String>,
}

impl Model {
    fn feed(&mut self, line: &str, each: bool) {
        let (out, books, candles) = (&mut self.out, &mut self.books, &mut self.candles);
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let Some(topic) = v.get("topic").and_then(Value::as_str) else {
            return;
        };
        if let Some(rest) = topic.strip_prefix("orderbook.") {
            let depth: usize = rest.split('.').next().unwrap().parse().unwrap();
            let d = &v["data"];
            let u = d["u"].as_u64().unwrap();
            let seq = d.get("seq").and_then(Value::as_u64);
            let book = books.entry(topic.to_string()).or_insert_with(|| ModelBook {
                depth,
                state: "empty",
                ..ModelBook::default()
            });
            let snapshot = v["type"] == "snapshot";
            if snapshot {
                if !(depth == 1 && book.state == "synced" && book.u == Some(u)) {
                    book.bids.clear();
                    book.asks.clear();
                    for (k, p, q) in levels(&d["b"]) {
                        if q != "0" {
                            book.bids.insert(k, (p, q));
                        }
                    }
                    for (k, p, q) in levels(&d["a"]) {
                        if q != "0" {
                            book.asks.insert(k, (p, q));
                        }
                    }
                    book.truncate();
                    book.u = Some(u);
                    book.seq = seq;
                    book.state = if book.crossed() {
                        "resyncing"
                    } else {
                        "synced"
                    };
                }
            } else if book.state == "synced" {
                let last = book.u.unwrap();
                if u == last + 1 {
                    for (side, lv) in [(&mut book.bids, &d["b"]), (&mut book.asks, &d["a"])] {
                        for (k, p, q) in levels(lv) {
                            if q == "0" {
                                side.remove(&k);
                            } else {
                                side.insert(k, (p, q));
                            }
                        }
                    }
                    book.truncate();
                    book.u = Some(u);
                    book.seq = seq;
                    if book.crossed() {
                        book.state = "resyncing";
                    }
                } else if u > last {
                    book.state = "resyncing";
                }
            }
            if each {
                out.push_str(&format!(
                    r#"{{"topic":"{topic}","u":{},"state":"{}","bid":{},"ask":{}}}"#,
                    opt(book.u),
                    book.state,
                    pair(book.best_bids().first().copied()),
                    pair(book.best_asks().first().copied())
                ));
                out.push('\n');
            }
        } else if topic.starts_with("kline.") {
            for c in v["data"].as_array().unwrap() {
                if c["confirm"] != Value::Bool(true) {
                    return;
                }
                let start = c["start"].as_u64().unwrap();
                let f = |k: &str| canonical_decimal(c[k].as_str().unwrap()).unwrap();
                candles.entry((topic.to_string(), start)).or_insert_with(|| {
                    format!(
                        r#"{{"topic":"{topic}","start":{start},"open":"{}","high":"{}","low":"{}","close":"{}","volume":"{}","turnover":"{}"}}"#,
                        f("open"),
                        f("high"),
                        f("low"),
                        f("close"),
                        f("volume"),
                        f("turnover")
                    )
                });
            }
        }
    }

    /// The expected stdout of `keel replay [--each] [--levels N]` over what was fed.
    fn finish(mut self, levels_max: Option<usize>) -> String {
        let out = &mut self.out;
        for (topic, b) in &self.books {
            let n = levels_max.unwrap_or(usize::MAX);
            let side = |v: Vec<&(String, String)>| {
                v.into_iter()
                    .take(n)
                    .map(|l| pair(Some(l)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push_str(&format!(
                r#"{{"topic":"{topic}","u":{},"seq":{},"state":"{}","bids":[{}],"asks":[{}]}}"#,
                opt(b.u),
                opt(b.seq),
                b.state,
                side(b.best_bids()),
                side(b.best_asks())
            ));
            out.push('\n');
        }
        for line in self.candles.values() {
            out.push_str(line);
            out.push('\n');
        }

        self.out
    }
}

/// The expected stdout of `keel replay [--each] [--levels N]` over these lines.
fn model(lines: &[String], each: bool, levels_max: Option<usize>) -> String {
    let mut m = Model::default();
    for l in lines {
        m.feed(l, each);
    }
    m.finish(levels_max)
}

fn keel(files: Vec<PathBuf>, each: bool, levels: Option<usize>) -> (String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    run(
        &ReplayArgs {
            files,
            each,
            levels,
        },
        &mut out,
        &mut err,
    )
    .expect("replay runs");
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn read_lines(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn assert_same(want: &str, got: &str, what: &str) {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        assert_eq!(g, w, "{what}: first difference at output line {}", i + 1);
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{what}: line count"
    );
}

#[test]
fn replay_agrees_with_the_model_on_every_capture_frame_by_frame() {
    for f in ws_captures() {
        let lines = read_lines(std::slice::from_ref(&f));
        let (got, err) = keel(vec![f.clone()], true, None);
        assert_same(&model(&lines, true, None), &got, &f.display().to_string());
        assert!(err.contains(" bad=0 "), "{}: {err}", f.display());
    }
}

#[test]
fn replay_of_all_captures_at_once_agrees_with_the_model() {
    let files = ws_captures();
    let lines = read_lines(&files);
    let (got, _) = keel(files.clone(), false, Some(3));
    assert_same(
        &model(&lines, false, Some(3)),
        &got,
        "all captures, --levels 3",
    );
    let (got, _) = keel(files, true, None);
    assert_same(&model(&lines, true, None), &got, "all captures, --each");
}

/// A snapshot frame carrying `book` as it stands, with update id `u`: how a venue resends a
/// book, made from the clean replay of real data.
fn snapshot_frame(topic: &str, book: &ModelBook, u: u64, extra_bid: Option<&str>) -> String {
    let symbol = topic.rsplit('.').next().unwrap();
    let side = |v: Vec<&(String, String)>| {
        v.into_iter()
            .map(|l| pair(Some(l)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut bids = side(book.best_bids());
    if let Some(px) = extra_bid {
        bids = format!(r#"["{px}","1"],{bids}"#);
    }
    format!(
        r#"{{"topic":"{topic}","type":"snapshot","ts":1,"data":{{"s":"{symbol}","b":[{bids}],"a":[{}],"u":{u},"seq":{}}}}}"#,
        side(book.best_asks()),
        opt(book.seq)
    )
}

/// Real frames damaged in every way the rules cover: dropped (a gap), repeated and replayed
/// late (stale), a venue restart with `u` = 1, a crossed snapshot, and resends that resync.
#[test]
fn replay_agrees_with_the_model_on_damaged_streams() {
    let src = fixtures_dir().join("ws/linear/orderbook.200.ETHUSDT.jsonl");
    let topic = "orderbook.200.ETHUSDT";
    let lines = read_lines(&[src]);
    let mut clean = Model::default();
    let mut damaged = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        clean.feed(l, false);
        let now = &clean.books[topic];
        match i % 50 {
            10 => {} // dropped: the next delta is a gap
            20 => damaged.push(snapshot_frame(topic, now, now.u.unwrap(), None)),
            30 => {
                damaged.push(l.clone());
                damaged.push(l.clone()); // repeated: stale
            }
            35 => {
                damaged.push(l.clone());
                damaged.push(lines[i - 5].clone()); // late: stale
            }
            45 if i % 100 == 45 => {
                let ask = now.best_asks()[0].0.clone();
                damaged.push(snapshot_frame(topic, now, now.u.unwrap(), Some(&ask)));
            }
            _ => damaged.push(l.clone()),
        }
        if i == 200 {
            damaged.push(snapshot_frame(topic, now, 1, None)); // a restart
        }
    }
    let dir = std::env::temp_dir().join(format!("keel-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("damaged.jsonl");
    std::fs::write(&path, damaged.join("\n")).unwrap();
    let (got, err) = keel(vec![path.clone()], true, None);
    std::fs::remove_dir_all(dir).ok();
    let mut want = Model::default();
    for l in &damaged {
        want.feed(l, true);
    }
    assert_same(&want.finish(None), &got, "damaged stream");
    let states: Vec<&str> = got
        .lines()
        .map(|l| if l.contains("resyncing") { "r" } else { "s" })
        .collect();
    let resyncs = states.windows(2).filter(|w| w == &["r", "s"]).count();
    assert!(
        resyncs >= 6,
        "the damage must show and heal repeatedly, healed {resyncs} times"
    );
    assert!(err.contains(" bad=0 "), "{err}");
}

#[test]
fn every_capture_ends_synced_with_its_depth_in_levels() {
    for f in ws_captures() {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let Some(depth) = name
            .strip_prefix("orderbook.")
            .and_then(|r| r.split('.').next())
            .and_then(|d| d.parse::<usize>().ok())
        else {
            continue;
        };
        let (got, err) = keel(vec![f.clone()], false, None);
        assert!(err.contains(" bad=0 "), "{name}: {err}");
        let line: Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
        assert_eq!(line["state"], "synced", "{name}");
        assert_eq!(line["bids"].as_array().unwrap().len(), depth, "{name} bids");
        assert_eq!(line["asks"].as_array().unwrap().len(), depth, "{name} asks");
    }
}
