//! Backtests over capture files: the engine itself (market state, strategy slots, the broker,
//! the order machine and the paper venue that fills against the engine's own books, exactly as
//! `keel run --paper`) fed the recorded frames in virtual time, as fast as the CPU goes. Time is
//! the frames' own `ts`; the engine's timers fire in between, compute jobs run inline, the store
//! makes every intent durable at once, and REST history answers empty (the capture is all the
//! engine knows). The same files give the same signals, orders and fills, byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use keel_core::backtest::{Ledger, Report, Totals};
use keel_core::engine::StoreWrite;
use keel_core::engine::link::LinkId;
use keel_core::trading::broker::{BrokerConfig, Fill};
use keel_core::trading::compute;
use keel_core::trading::orders::{OrderRecord, OrdersConfig, Stage};
use keel_core::trading::strategy::{SharedStrategy, Signal, StrategyConfig};
use keel_core::wire::json::topic_and_ts;
use keel_core::wire::topic::Interval;
use keel_core::{Engine, EngineConfig, Input, Output, Time};
use serde::Serialize;

/// Market time the engine runs past the last frame, so a cycle after it happens.
pub const TAIL_MS: u64 = 10_000;
/// The engine's notices a report keeps (the rest are counted).
pub const NOTICES_KEPT_MAX: usize = 200;

#[derive(Debug, Clone)]
pub struct CaptureArgs {
    pub files: Vec<PathBuf>,
    pub strategy: StrategyConfig,
    pub strategies: Vec<SharedStrategy>,
    pub broker: BrokerConfig,
    pub signal_every_ms: u64,
    /// Call the strategies at every candle close too.
    pub on_close: bool,
    /// Starting equity for the report's figures.
    pub balance: f64,
}

/// Market time between two samples of the equity.
pub const EQUITY_SAMPLE_MS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRow {
    pub order_link_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: String,
    pub filled: String,
    pub stage: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillRow {
    pub exec_id: String,
    pub order_link_id: String,
    pub symbol: String,
    pub side: String,
    pub px: String,
    pub qty: String,
    pub fee: String,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureReport {
    /// The same figures as a backtest over candles: per symbol, totals, every trade, equity.
    #[serde(flatten)]
    pub report: Report,
    pub frames: u64,
    pub bad_frames: u64,
    pub signals: Vec<Signal>,
    pub orders: Vec<OrderRow>,
    pub fills: Vec<FillRow>,
    /// What the engine said (books out of sync, orders not sent and why), the first
    /// [`NOTICES_KEPT_MAX`] of `notices_total`.
    pub notices: Vec<String>,
    pub notices_total: u64,
}

/// What the capture holds: its symbols, book depth, kline interval, trades and tickers.
fn shape(lines: &[Vec<u8>]) -> Result<EngineConfig, String> {
    let mut symbols = BTreeSet::new();
    let (mut depth, mut interval, mut trades, mut tickers) = (None, None, false, false);
    for l in lines {
        let Some(topic) = topic_of(l) else { continue };
        let parts: Vec<&str> = topic.split('.').collect();
        match parts.as_slice() {
            ["orderbook", d, s] => {
                depth = depth.or(d.parse::<u16>().ok());
                symbols.insert(s.to_string());
            }
            ["kline", i, s] => {
                interval = interval.or(Interval::parse(i));
                symbols.insert(s.to_string());
            }
            ["publicTrade", s] => {
                trades = true;
                symbols.insert(s.to_string());
            }
            ["tickers", s] => {
                tickers = true;
                symbols.insert(s.to_string());
            }
            _ => {}
        }
    }
    let Some(depth) = depth else {
        return Err("the capture holds no order-book frames: nothing to trade against".into());
    };
    let mut c = EngineConfig::new(
        "ws://capture/v5/public/linear",
        symbols.into_iter().collect(),
    );
    c.book_depth = depth;
    c.kline_interval = interval;
    c.trades = trades;
    c.tickers = tickers;
    c.preflight = false;
    c.warmup_candles = 0;
    Ok(c)
}

/// The frame's topic and time, read by the wire's own scanner.
fn header(line: &[u8]) -> Option<(&str, Option<u64>)> {
    topic_and_ts(std::str::from_utf8(line).ok()?)
}

fn topic_of(line: &[u8]) -> Option<&str> {
    header(line).map(|(t, _)| t)
}

fn ts_of(line: &[u8]) -> Option<u64> {
    header(line).and_then(|(_, ts)| ts)
}

struct Wire {
    engine: Engine,
    /// Which link and connection subscribed to each topic.
    routes: HashMap<String, (LinkId, u64)>,
    open: HashMap<LinkId, u64>,
    signals: Vec<Signal>,
    orders: BTreeMap<String, OrderRecord>,
    fills: Vec<FillRow>,
    notices: Vec<String>,
    notices_total: u64,
    /// The fills again, through a broker of its own: trades, equity, drawdown.
    ledger: Ledger,
}

impl Wire {
    /// Answers everything the engine asks for until it is quiet.
    fn pump(&mut self, now: Time) {
        let mut replies: Vec<(LinkId, u64, String)> = Vec::new();
        loop {
            let Some(o) = self.engine.poll_output() else {
                if replies.is_empty() {
                    return;
                }
                for (link, conn, text) in std::mem::take(&mut replies) {
                    if self.open.get(&link) == Some(&conn) {
                        self.engine.handle_input(
                            now,
                            Input::WsFrame {
                                link,
                                conn,
                                text: &text,
                            },
                        );
                    }
                }
                continue;
            };
            match o {
                Output::Connect { link, conn, .. } => {
                    self.open.insert(link, conn);
                    self.engine
                        .handle_input(now, Input::WsConnected { link, conn });
                }
                Output::Close { link, conn } => {
                    if self.open.get(&link) == Some(&conn) {
                        self.open.remove(&link);
                    }
                }
                Output::Send { link, conn, text } => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    let op = v["op"].as_str().unwrap_or_default().to_string();
                    let req_id = v["req_id"].as_str().unwrap_or_default();
                    if op == "subscribe" {
                        for t in v["args"].as_array().into_iter().flatten() {
                            if let Some(t) = t.as_str() {
                                self.routes.insert(t.to_string(), (link, conn));
                            }
                        }
                    }
                    replies.push((
                        link,
                        conn,
                        format!(
                            r#"{{"success":true,"ret_msg":"{}","conn_id":"capture","req_id":"{req_id}","op":"{op}"}}"#,
                            if op == "ping" { "pong" } else { "" }
                        ),
                    ));
                }
                Output::Http { id, .. } => self.engine.handle_input(
                    now,
                    Input::HttpResponse {
                        id,
                        status: 200,
                        body: r#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","symbol":"","list":[]},"time":0}"#.into(),
                        wall_ms: 0,
                    },
                ),
                Output::Compute { job, run, work } => {
                    let result = Ok(compute::run(&work));
                    self.engine
                        .handle_input(now, Input::ComputeDone { job, run, result });
                }
                Output::Event(keel_core::engine::Event::StrategySignals(s)) => {
                    self.signals.extend(s)
                }
                Output::Store(StoreWrite::Order(rec)) => {
                    let link_id = rec.link_id.clone();
                    let intent = rec.stage == Stage::Intent;
                    self.orders.insert(link_id.clone(), rec);
                    if intent {
                        self.engine.handle_input(now, Input::Durable { link_id });
                    }
                }
                Output::Store(StoreWrite::Fill(x)) => {
                    // The strategy that made the order: its reason starts with its name.
                    let strategy = self.orders.get(&x.link_id).map_or("", |o| {
                        o.plan.reason.split(": ").next().unwrap_or_default()
                    });
                    self.ledger.fill(&Fill::from(&x), strategy);
                    self.fills.push(FillRow {
                    exec_id: x.exec_id,
                    order_link_id: x.link_id,
                    symbol: x.symbol,
                    side: format!("{:?}", x.side),
                    px: x.px.to_string(),
                    qty: x.qty.to_string(),
                    fee: x.fee.to_string(),
                    ts_ms: x.ts_ms,
                    })
                }
                Output::Notice(n) => {
                    self.notices_total += 1;
                    if self.notices.len() < NOTICES_KEPT_MAX {
                        self.notices.push(n.text);
                    }
                }
                Output::Event(_)
                | Output::Heartbeat(_)
                | Output::Authenticate { .. }
                | Output::Private(_)
                | Output::Fatal(_)
                | Output::Stopped => {}
            }
        }
    }

    fn run_timers_until(&mut self, t: Time) {
        while let Some(d) = self.engine.poll_timeout().filter(|d| *d <= t) {
            self.engine.handle_timeout(d);
            self.pump(d);
        }
    }
}

/// Runs the engine over the capture files.
pub fn run(args: &CaptureArgs) -> Result<CaptureReport, String> {
    let mut lines = crate::replay::load_lines(&args.files).map_err(|e| e.to_string())?;
    // Several files (one per topic, as captures often come) play as one stream, by time; frames
    // stamped alike keep their order.
    lines.sort_by_key(|l| ts_of(l).unwrap_or(0));
    let mut cfg = shape(&lines)?;
    cfg.strategy = args.strategy.clone();
    cfg.strategies = args.strategies.clone();
    cfg.broker = args.broker.clone();
    cfg.auto_execute = true;
    cfg.paper = true;
    cfg.orders = Some(OrdersConfig {
        link_prefix: "backtest".into(),
        ..Default::default()
    });
    cfg.signal_job.every_ms = args.signal_every_ms;
    cfg.strategies_on_close = args.on_close;
    cfg.validate().map_err(|e| e.0)?;
    let symbols = cfg.symbols.clone();
    let engine = Engine::new(cfg, Time::ZERO).map_err(|e| e.to_string())?;
    let mut w = Wire {
        engine,
        routes: HashMap::new(),
        open: HashMap::new(),
        signals: Vec::new(),
        orders: BTreeMap::new(),
        fills: Vec::new(),
        notices: Vec::new(),
        notices_total: 0,
        ledger: Ledger::new(args.broker.clone(), args.balance),
    };
    w.pump(Time::ZERO);
    let first = lines.iter().find_map(|l| ts_of(l)).unwrap_or(0);
    let (mut now_ms, mut frames, mut bad) = (0u64, 0u64, 0u64);
    let mut next_sample = EQUITY_SAMPLE_MS;
    for l in &lines {
        // Time never runs backwards: a frame stamped earlier than the last is read at the last.
        let (topic, ts) = header(l).unwrap_or(("", None));
        now_ms = now_ms.max(ts.map_or(0, |t| t.saturating_sub(first)));
        let now = Time::from_millis(now_ms);
        w.run_timers_until(now);
        let Ok(text) = std::str::from_utf8(l) else {
            bad += 1;
            continue;
        };
        let Some(&(link, conn)) = w.routes.get(topic) else {
            bad += 1;
            continue;
        };
        w.engine
            .handle_input(now, Input::WsFrame { link, conn, text });
        w.pump(now);
        frames += 1;
        while next_sample <= now_ms {
            let e = &w.engine;
            w.ledger.sample(first + next_sample, &|s: &str| e.mark(s));
            next_sample += EQUITY_SAMPLE_MS;
        }
    }
    w.run_timers_until(Time::from_millis(now_ms + TAIL_MS));
    let orders = w
        .orders
        .values()
        .map(|r| OrderRow {
            order_link_id: r.link_id.clone(),
            symbol: r.plan.symbol.clone(),
            side: format!("{:?}", r.plan.side),
            qty: r.plan.qty.to_string(),
            filled: r.cum_qty.to_string(),
            stage: r.stage.as_str().to_string(),
            reason: r.plan.reason.clone(),
        })
        .collect();
    let e = &w.engine;
    let marks = |s: &str| e.mark(s);
    let totals = Totals {
        start_ms: first,
        end_ms: first + now_ms,
        signals: w.signals.len() as u64,
        orders: w.orders.len() as u64,
        ..Totals::default()
    };
    let listed: Vec<(String, u64)> = symbols.iter().map(|s| (s.clone(), 0)).collect();
    let report = w.ledger.finish(totals, &listed, &marks);
    Ok(CaptureReport {
        report,
        frames,
        bad_frames: bad,
        signals: w.signals,
        orders,
        fills: w.fills,
        notices: w.notices,
        notices_total: w.notices_total,
    })
}
