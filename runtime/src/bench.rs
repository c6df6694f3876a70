//! `keel bench`: keel against the baselines on the same frames, in one process, so the ratios
//! hold on a noisy machine; and the runtime path measured end to end on loopback.

pub(crate) mod command;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_core::{Market, MarketConfig, Time};

use crate::baselines::{Resort, Typical, floor};
use crate::replay::load_lines;

#[derive(Debug, Clone, serde::Serialize)]
pub struct CodecReport {
    pub frames: usize,
    pub bytes_per_frame: f64,
    pub repetitions: usize,
    pub keel_ns_per_frame: f64,
    pub typical_ns_per_frame: f64,
    pub resort_ns_per_frame: f64,
    pub floor_ns_per_frame: f64,
    pub keel_vs_floor: f64,
    pub typical_vs_keel: f64,
    pub resort_vs_keel: f64,
}

fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// One pass of `f` over every line from fresh state (built outside the timed region); ns per
/// frame.
fn time<S>(lines: &[Vec<u8>], fresh: impl FnOnce() -> S, mut f: impl FnMut(&mut S, &[u8])) -> f64 {
    let mut state = fresh();
    let t = Instant::now();
    for l in lines {
        f(&mut state, l);
    }
    let ns = t.elapsed().as_nanos() as f64 / lines.len() as f64;
    std::hint::black_box(&state);
    ns
}

pub fn codec(files: &[PathBuf], reps: usize) -> std::io::Result<CodecReport> {
    let lines = load_lines(files)?;
    if lines.is_empty() {
        return Err(std::io::Error::other("no frames in the files"));
    }
    let reps = reps.max(1);
    // Interleave the methods repetition by repetition so drift on the machine hits all alike.
    let (mut k, mut t, mut r, mut fl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        k.push(time(
            &lines,
            || Market::new(MarketConfig::default()),
            |m, l| {
                let _ = m.handle_frame_bytes(Time::ZERO, l);
                while m.poll_event().is_some() {}
            },
        ));
        t.push(time(&lines, Typical::default, |s, l| {
            s.handle(l);
        }));
        r.push(time(&lines, Resort::default, |s, l| {
            s.handle(l);
        }));
        // Twice, the first figure dropped: the floor's vector loop right after the others' scalar
        // code ran its first microseconds slowly, and the same file's floor moved 3x between runs.
        let floor_pass = || time(&lines, || 0usize, |n, l| *n += floor(l));
        floor_pass();
        fl.push(floor_pass());
    }
    // The best repetition of each: on a shared machine a neighbour only ever adds time, and the
    // floor, a tenth of keel's time, moved 2x between medians of runs minutes apart.
    let (keel, typical, resort, fl) = (best(k), best(t), best(r), best(fl));
    let bytes: usize = lines.iter().map(Vec::len).sum();
    Ok(CodecReport {
        frames: lines.len(),
        bytes_per_frame: bytes as f64 / lines.len() as f64,
        repetitions: reps,
        keel_ns_per_frame: keel,
        typical_ns_per_frame: typical,
        resort_ns_per_frame: resort,
        floor_ns_per_frame: fl,
        keel_vs_floor: keel / fl.max(1e-9),
        typical_vs_keel: typical / keel.max(1e-9),
        resort_vs_keel: resort / keel.max(1e-9),
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeReport {
    pub symbols: usize,
    pub seconds: f64,
    pub frames: u64,
    pub frames_per_s: f64,
    pub ingest_p50_us: f64,
    pub ingest_p99_us: f64,
    pub ingest_max_us: f64,
    pub loop_lag_p99_ms: f64,
    pub loop_lag_max_ms: f64,
    pub consumer_delay_ms: u64,
    pub consumer_drops: u64,
}

/// The runtime against the embedded venue on loopback: `symbols` symbols of orderbook.50 with
/// the venue stepping `speedup` times faster than Bybit pushes, and a consumer that takes
/// `consumer_delay_ms` per event.
pub async fn runtime(
    symbols: usize,
    seconds: f64,
    speedup: u64,
    consumer_delay_ms: u64,
) -> Result<RuntimeReport, String> {
    let names: Vec<String> = (0..symbols).map(|i| format!("SYM{i}USDT")).collect();
    let mut file = crate::config::FileConfig {
        symbols: Some(names),
        consumer_delay_ms: Some(consumer_delay_ms),
        // A short queue, so that a slow consumer overflows it within the run and the loop is
        // measured while events are being dropped, not while a long queue is still filling.
        consumer_events_max: Some(64),
        ops_addr: Some("127.0.0.1:0".into()),
        db: Some(
            std::env::temp_dir()
                .join(format!(
                    "keel-bench-{}-{consumer_delay_ms}.db",
                    std::process::id()
                ))
                .to_string_lossy()
                .into_owned(),
        ),
        ..Default::default()
    };
    file.kline_interval = Some("1".into());
    let cfg = crate::config::resolve(file, Default::default()).map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(crate::run::run_with_venue_speedup(cfg, rx, speedup));
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let _ = tx.send(true);
    let report = run.await.map_err(|e| e.to_string())??;
    let m = &report.metrics;
    let ingest = m.ingest_histogram();
    let lag = m.loop_lag_histogram();
    Ok(RuntimeReport {
        symbols,
        seconds,
        frames: report.engine.counters().frames,
        frames_per_s: report.engine.counters().frames as f64 / seconds,
        ingest_p50_us: ingest.value_at_quantile(0.5) as f64 / 1e3,
        ingest_p99_us: ingest.value_at_quantile(0.99) as f64 / 1e3,
        ingest_max_us: ingest.max() as f64 / 1e3,
        loop_lag_p99_ms: lag.value_at_quantile(0.99) as f64 / 1e6,
        loop_lag_max_ms: lag.max() as f64 / 1e6,
        consumer_delay_ms,
        consumer_drops: report.engine.counters().consumer_drops,
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TickToOrderReport {
    pub ticks: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// The store's write-ahead commit of an intent (SQLite, synchronous = FULL) on this disk.
    pub intent_commit_p50_us: f64,
    pub intent_commit_p99_us: f64,
}

/// From a book frame's bytes in to the signed order's bytes out, on one thread: decode and
/// apply the frame, read the top of the book, size and risk-check the order, the order
/// machine's intent and send, the request's JSON body and its HMAC signature with its headers.
/// A decision is taken on every tick (alternating sides) so every tick makes an order. The
/// strategy's hop to the compute pool and the store's commit of the intent are not inside this
/// figure; the commit is measured on its own (`intent_commit_*`), as it is on the path too.
pub fn tick_to_order(files: &[PathBuf], reps: usize) -> Result<TickToOrderReport, String> {
    use keel_core::decimal::Dec;
    use keel_core::market::Handled;
    use keel_core::trading::broker::{Broker, BrokerConfig};
    use keel_core::trading::orders::{Orders, OrdersConfig, OrdersOutput, Plan, Stage};
    use keel_core::trading::strategy::SignalSide;
    use keel_core::wire::private::Side;
    use keel_core::wire::sign::rest_signature;

    let lines = load_lines(files).map_err(|e| e.to_string())?;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let broker = Broker::new(BrokerConfig {
        position_notional_max: 1e12,
        gross_notional_max: 1e12,
        ..Default::default()
    });
    let (key, secret) = ("benchkey", "benchsecretbenchsecretbenchsecret");
    let ack_refused =
        r#"{"retCode":110007,"retMsg":"ab not enough for new order","result":{},"time":1}"#;
    let mut ticks = 0u64;
    for _ in 0..reps.max(1) {
        let mut market = Market::new(MarketConfig::default());
        let mut orders = Orders::new(
            OrdersConfig {
                link_prefix: "kbench".into(),
                creates_per_s_max: u32::MAX,
                ..Default::default()
            },
            0,
        );
        let mut side = SignalSide::Buy;
        for l in &lines {
            let t = Instant::now();
            let Ok(Handled::Book { book, .. }) = market.handle_frame_bytes(Time::ZERO, l) else {
                while market.poll_event().is_some() {}
                continue;
            };
            while market.poll_event().is_some() {}
            let b = market.book(book);
            let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask()) else {
                continue;
            };
            side = match side {
                SignalSide::Buy => SignalSide::Sell,
                SignalSide::Sell => SignalSide::Buy,
            };
            let symbol = market.book_symbol(book);
            let Some((qty, Ok(()))) = broker.size_order(symbol, side, bid.px, ask.px, None) else {
                continue;
            };
            let plan = Plan::market(symbol, side.into(), qty, "");
            let Ok(link) = orders.place(0, plan) else {
                continue;
            };
            orders.durable(Time::ZERO, &link);
            let mut sent = None;
            while let Some(o) = orders.poll_output() {
                if let OrdersOutput::Request(r) = o {
                    let ts = 1_700_000_000_000u64;
                    let sign = rest_signature(secret, ts, key, r.recv_window_ms, &r.payload);
                    let headers = [
                        ("X-BAPI-API-KEY", key.to_string()),
                        ("X-BAPI-TIMESTAMP", ts.to_string()),
                        ("X-BAPI-RECV-WINDOW", r.recv_window_ms.to_string()),
                        ("X-BAPI-SIGN", sign),
                    ];
                    std::hint::black_box((&r.payload, &headers));
                    sent = Some(r.id);
                }
            }
            let took = t.elapsed();
            let Some(id) = sent else {
                continue;
            };
            hist.record(took.as_nanos().max(1) as u64)
                .map_err(|e| e.to_string())?;
            ticks += 1;
            // Outside the timed region: the venue refuses it, so the symbol is free again.
            orders.handle_answer(Time::ZERO, id, 200, ack_refused, 0, None);
            while orders.poll_output().is_some() {}
        }
    }
    if ticks == 0 {
        return Err("no order-book frames with both sides in the files".into());
    }
    // The intent's commit, as the store thread does it before every send.
    let dir = std::env::temp_dir().join(format!("keel-bench-commit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut store = crate::store::Store::open(&dir.join("k.db"))?;
    let mut commits = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for seq in 0..200u64 {
        let rec = keel_core::trading::orders::OrderRecord {
            link_id: format!("kbench-{seq:010}"),
            seq,
            plan: Plan::market("BTCUSDT", Side::Buy, Dec::ONE, ""),
            stage: Stage::Intent,
            order_id: None,
            cum_qty: Dec::ZERO,
            created_ms: 0,
        };
        let t = Instant::now();
        store.record_live_order(&rec)?;
        commits
            .record(t.elapsed().as_nanos().max(1) as u64)
            .map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(TickToOrderReport {
        ticks,
        p50_us: us(&hist, 0.5),
        p99_us: us(&hist, 0.99),
        max_us: hist.max() as f64 / 1e3,
        intent_commit_p50_us: us(&commits, 0.5),
        intent_commit_p99_us: us(&commits, 0.99),
    })
}
