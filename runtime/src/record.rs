//! `keel record`: a venue's public frames written as they come, one raw frame a line: the
//! capture files `keel replay`, `keel bench`, `keel backtest --capture` and `keel venue --replay`
//! read. Recording from Bybit itself is how a backtest meets real data; recording from the
//! embedded venue is how the benchmark's shapes are made again from a clone.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_core::wire::topic::Topic;
use tokio_tungstenite::tungstenite::Message;

use crate::config::VenueChoice;
use crate::transport::TcpConnector;

/// Topics one recording subscribes to: Bybit takes at most 10 per request on spot.
pub const RECORD_TOPICS_MAX: usize = 10;
/// Frames one recording writes at most.
pub const RECORD_FRAMES_MAX: u64 = 10_000_000;
/// Longest recording, seconds.
pub const RECORD_SECONDS_MAX: u64 = 7 * 86_400;
/// Longest wait for the connection and its handshake, seconds.
const CONNECT_TIMEOUT_S: u64 = 10;
/// Bybit closes a public connection that has not pinged for 30 s.
const PING_EVERY_S: u64 = 20;

pub struct RecordArgs {
    pub venue: VenueChoice,
    pub category: keel_core::engine::Category,
    pub topics: Vec<String>,
    pub frames: u64,
    pub seconds: u64,
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    pub frames: u64,
    pub bytes: u64,
    /// Frames that were not a topic's (pongs, the subscription's answer): not written.
    pub other: u64,
}

impl std::fmt::Display for RecordSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record done: frames={} bytes={} other={}",
            self.frames, self.bytes, self.other
        )
    }
}

/// Checks the topics (each a Bybit public topic, at most [`RECORD_TOPICS_MAX`], none twice).
pub fn parse_topics(list: &str) -> Result<Vec<String>, String> {
    let topics: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    if topics.is_empty() || topics.len() > RECORD_TOPICS_MAX {
        return Err(format!("--topics takes 1 to {RECORD_TOPICS_MAX} topics"));
    }
    for (i, t) in topics.iter().enumerate() {
        Topic::parse(t).map_err(|e| format!("--topics: {t:?}: {e}"))?;
        if topics[..i].contains(t) {
            return Err(format!("--topics: {t:?} given twice"));
        }
    }
    Ok(topics)
}

/// Records until `frames` topic frames are written or `seconds` pass, whichever comes first.
pub async fn run(args: RecordArgs) -> Result<RecordSummary, String> {
    crate::run::install_crypto();
    if !(1..=RECORD_FRAMES_MAX).contains(&args.frames) {
        return Err(format!("--frames must be 1..={RECORD_FRAMES_MAX}"));
    }
    if !(1..=RECORD_SECONDS_MAX).contains(&args.seconds) {
        return Err(format!("--seconds must be 1..={RECORD_SECONDS_MAX}"));
    }
    let mut _venue = None;
    let url = match &args.venue {
        VenueChoice::Embedded => {
            let mut symbols: Vec<String> = Vec::new();
            for t in &args.topics {
                let s = Topic::parse(t)
                    .map_err(|e| e.to_string())?
                    .symbol
                    .to_string();
                if !symbols.contains(&s) {
                    symbols.push(s);
                }
            }
            let v = crate::run::RunningVenue::start_isolated(
                "127.0.0.1:0".parse().expect("literal"),
                keel_venue::VenueConfig::new(symbols),
            )?;
            let url = format!("ws://{}/v5/public/{}", v.addr, args.category.as_str());
            _venue = Some(v);
            url
        }
        other => crate::config::ws_url(other, args.category).map_err(|e| e.to_string())?,
    };
    let file = std::fs::File::create(&args.out)
        .map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    // The connect is bounded too: a host that never answers would otherwise hold the command
    // for the operating system's own timeout, past `--seconds`.
    let connect_s = args.seconds.min(CONNECT_TIMEOUT_S);
    let mut ws: crate::driver::Ws = tokio::time::timeout(
        Duration::from_secs(connect_s),
        crate::driver::open_ws(&url, Arc::new(TcpConnector)),
    )
    .await
    .map_err(|_| format!("no connection within {connect_s} s"))??;
    let subscribe = serde_json::json!({"op": "subscribe", "args": args.topics}).to_string();
    ws.send(Message::text(subscribe))
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let deadline = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(deadline);
    let mut ping = tokio::time::interval(Duration::from_secs(PING_EVERY_S));
    ping.tick().await;
    let mut done = RecordSummary {
        frames: 0,
        bytes: 0,
        other: 0,
    };
    while done.frames < args.frames {
        let msg = tokio::select! {
            biased;
            _ = &mut deadline => break,
            _ = ping.tick() => {
                ws.send(Message::text(r#"{"op":"ping"}"#))
                    .await
                    .map_err(|e| format!("ping: {e}"))?;
                continue;
            }
            m = ws.next() => m,
        };
        let text = match msg {
            None => return Err(format!("the venue closed the connection after {done}")),
            Some(Err(e)) => return Err(format!("read: {e} (after {done})")),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) => {
                return Err(format!("the venue closed the connection after {done}"));
            }
            Some(Ok(_)) => continue,
        };
        let line = text.as_str().trim();
        // One frame a line: a frame with a line break in it would read as two. Only what is
        // not a topic's frame is parsed to see whether it refuses the subscription.
        if !line.contains("\"topic\"") || line.contains('\n') {
            if let Some(refused) = refusal(line) {
                return Err(format!("the venue refused the subscription: {refused}"));
            }
            done.other += 1;
            continue;
        }
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| format!("--out {}: {e}", args.out.display()))?;
        done.frames += 1;
        done.bytes += line.len() as u64 + 1;
    }
    out.flush()
        .map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    let _ = ws.close(None).await;
    Ok(done)
}

/// The venue's answer to a subscription it refused: `{"success":false,"ret_msg":...}`.
fn refusal(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v.get("op")? == "subscribe" && v.get("success")? == false).then(|| {
        v.get("ret_msg")
            .and_then(|m| m.as_str())
            .unwrap_or("no reason given")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_checked_before_anything_connects() {
        assert_eq!(
            parse_topics("orderbook.50.BTCUSDT, publicTrade.BTCUSDT").unwrap(),
            vec!["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
        );
        for (bad, why) in [
            ("", "1 to 10"),
            ("orderbook.7.BTCUSDT", "unsupported orderbook depth"),
            ("candles.BTCUSDT", "unknown channel"),
            ("tickers.btc", "malformed symbol"),
            ("tickers.BTCUSDT,tickers.BTCUSDT", "twice"),
        ] {
            let e = parse_topics(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("tickers.S{i}")).collect();
        assert!(parse_topics(&many.join(",")).is_err());
    }

    #[test]
    fn a_refused_subscription_is_told_from_a_frame() {
        assert_eq!(
            refusal(r#"{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}"#),
            Some("error:handler not found".into())
        );
        assert_eq!(
            refusal(r#"{"success":true,"ret_msg":"","op":"subscribe"}"#),
            None
        );
        assert_eq!(refusal(r#"{"topic":"tickers.BTCUSDT","data":{}}"#), None);
    }
}
