//! Feeding the venue from capture files instead of the synthetic market: frames go out in their
//! recorded order and spacing, and the venue keeps the replayed books in a keel-core `Market`
//! so that a client subscribing half-way still starts from a proper snapshot.

use std::collections::BTreeSet;
use std::path::Path;

use keel_core::market::book::BookState;
use keel_core::wire::codec::Decoder;
use keel_core::wire::frame::Frame;
use keel_core::{Market, MarketConfig, Time};

/// One recorded frame.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub ts: u64,
    pub topic: String,
    pub text: String,
}

pub struct ReplayFeed {
    frames: Vec<Recorded>,
    cursor: usize,
    /// Venue time (ms) at which the current pass started.
    pass_started_ms: Option<u64>,
    pub speed: f64,
    pub market: Market,
    pub symbols: BTreeSet<String>,
    pub topics: BTreeSet<String>,
    pub passes: u64,
    /// Wait until every replayed topic has a subscriber before the first frame goes out, so a
    /// client sees the capture from its start (what a comparison with a backtest needs).
    pub hold_until_subscribed: bool,
    /// Play the capture once, then nothing more.
    pub once: bool,
}

impl ReplayFeed {
    /// Loads topic frames from capture files (one raw frame per line); control frames and
    /// client requests are skipped, bad lines are an error naming the file and line.
    pub fn load(files: &[impl AsRef<Path>], speed: f64) -> Result<ReplayFeed, String> {
        let mut frames = Vec::new();
        let mut dec = Decoder::default();
        for f in files {
            let f = f.as_ref();
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let (topic, ts) = match dec.decode(line) {
                    Ok(Frame::Book(b)) => (b.topic.to_string(), b.ts),
                    Ok(Frame::Kline(k)) => (k.topic.to_string(), k.ts),
                    Ok(Frame::Ticker(t)) => (t.topic.to_string(), t.ts),
                    Ok(Frame::Trade(t)) => (t.topic.to_string(), t.ts),
                    Ok(Frame::Control(_)) => continue,
                    Err(e) => return Err(format!("{}:{}: {e}", f.display(), n + 1)),
                };
                frames.push(Recorded {
                    ts,
                    topic,
                    text: line.to_string(),
                });
            }
        }
        if frames.is_empty() {
            return Err("no topic frames in the replay files".into());
        }
        // Stable: frames with the same ts keep their file order.
        frames.sort_by_key(|r| r.ts);
        let topics: BTreeSet<String> = frames.iter().map(|r| r.topic.clone()).collect();
        let symbols = topics
            .iter()
            .filter_map(|t| t.rsplit('.').next().map(str::to_string))
            .collect();
        Ok(ReplayFeed {
            frames,
            cursor: 0,
            pass_started_ms: None,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            market: Market::new(MarketConfig::default()),
            symbols,
            topics,
            passes: 0,
            hold_until_subscribed: false,
            once: false,
        })
    }

    /// The frames due at venue time `now_ms`; the replay starts over when it ends.
    pub fn due(&mut self, now_ms: u64) -> Vec<Recorded> {
        if self.once && self.passes > 0 {
            return Vec::new();
        }
        let started = *self.pass_started_ms.get_or_insert(now_ms);
        let first_ts = self.frames[0].ts;
        let elapsed = ((now_ms - started) as f64 * self.speed) as u64;
        let mut out = Vec::new();
        while let Some(r) = self.frames.get(self.cursor) {
            if r.ts - first_ts > elapsed {
                break;
            }
            let _ = self.market.handle_frame(Time::ZERO, &r.text);
            while self.market.poll_event().is_some() {}
            out.push(r.clone());
            self.cursor += 1;
        }
        if self.cursor == self.frames.len() {
            self.cursor = 0;
            self.passes += 1;
            self.pass_started_ms = Some(now_ms + 1_000);
        }
        out
    }

    /// A snapshot frame of a replayed book as it stands, for a client subscribing now.
    pub fn book_snapshot(&self, topic: &str, now_ms: u64) -> Option<String> {
        let id = self.market.book_id(topic)?;
        let b = self.market.book(id);
        if b.state() != BookState::Synced {
            return None;
        }
        let side = |it: &mut dyn Iterator<Item = keel_core::Level>| {
            it.map(|l| format!(r#"["{}","{}"]"#, l.px, l.qty))
                .collect::<Vec<_>>()
                .join(",")
        };
        let symbol = self.market.book_symbol(id);
        Some(format!(
            r#"{{"topic":"{topic}","type":"snapshot","ts":{now_ms},"data":{{"s":"{symbol}","b":[{}],"a":[{}],"u":{},"seq":{}}}}}"#,
            side(&mut b.raw_bids()),
            side(&mut b.raw_asks()),
            b.last_u().unwrap_or(0),
            b.last_seq().unwrap_or(0)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/bybit/ws/linear")
    }

    #[test]
    fn replay_delivers_every_frame_in_time_and_snapshots_late_subscribers() {
        let files = [
            fixtures().join("orderbook.200.BTCUSDT.jsonl"),
            fixtures().join("client_sent.jsonl"),
        ];
        let mut feed = ReplayFeed::load(&files, 1.0).unwrap();
        assert_eq!(
            feed.topics.iter().collect::<Vec<_>>(),
            ["orderbook.200.BTCUSDT"]
        );
        let first = feed.due(1_000);
        assert!(
            !first.is_empty() && first.len() < 414,
            "only what is due at the start"
        );
        let mut n = first.len();
        let mut now = 1_000;
        while feed.passes == 0 {
            now += 100;
            n += feed.due(now).len();
        }
        assert_eq!(n, 414);
        // The capture spans 43.5 s from its first frame to its last.
        assert!(
            (43_500..43_600).contains(&(now - 1_000)),
            "recorded spacing kept: {} ms",
            now - 1_000
        );
        let snap = feed.book_snapshot("orderbook.200.BTCUSDT", now).unwrap();
        let mut m = Market::new(MarketConfig::default());
        m.handle_frame(Time::ZERO, &snap).unwrap();
        let id = m.book_id("orderbook.200.BTCUSDT").unwrap();
        assert_eq!(m.book(id).raw_bids().len(), 200);
        assert_eq!(m.book(id).last_u(), feed.market.book(id).last_u());
    }

    #[test]
    fn a_bad_line_in_a_replay_file_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("keel-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.jsonl");
        std::fs::write(&f, "{\"topic\":\"tickers.X\"}\nnot json\n").unwrap();
        let err = ReplayFeed::load(&[&f], 1.0).err().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("bad.jsonl:1"), "{err}");
    }
}
