//! The venue: Bybit v5 public WebSocket and REST on one address, plus `/admin` for faults.
//!
//! One stepping task advances the synthetic market every `step_ms` and publishes frames for the
//! topics that have subscribers on a bounded broadcast channel; each connection task forwards
//! the frames of its own topics. A connection that lags behind the channel is closed, as a real
//! venue drops a slow client. `serve` is generic over the listener, so the same venue runs on
//! loopback TCP or on a simulated network.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use keel_core::rng::Rng;
use keel_core::wire::codec::Decoder;
use keel_core::wire::frame::{Control, Frame};
use keel_core::wire::topic::{Channel, Interval, Topic};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::market::{BookView, SimCandle, SymbolMarket, SymbolSpec, history_candle};
use crate::replay::ReplayFeed;

/// Depths the venue serves (Bybit linear and spot today).
pub const VENUE_DEPTHS: [u16; 4] = [1, 50, 200, 1000];
/// Frames buffered per connection before it counts as lagging and is dropped.
pub const PUBLISH_CHANNEL_FRAMES: usize = 16_384;
/// Bybit: "Spot can input up to 10 args for each subscription request".
pub const SPOT_ARGS_MAX: usize = 10;

#[derive(Debug, Clone)]
pub struct VenueConfig {
    pub symbols: Vec<String>,
    pub seed: u64,
    pub step_ms: u64,
    /// Bybit's own REST limit: 600 requests per 5 s per IP, then 403.
    pub rest_limit: usize,
    pub rest_window_ms: u64,
    /// Push this many times faster than Bybit's rates (benchmarks under load).
    pub push_speedup: u64,
}

impl VenueConfig {
    pub fn new(symbols: Vec<String>) -> Self {
        VenueConfig {
            symbols,
            seed: 7,
            step_ms: 10,
            rest_limit: 600,
            rest_window_ms: 5_000,
            push_speedup: 1,
        }
    }
}

/// A fault to inject, as `POST /admin/fault` takes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Hold all WebSocket writes (no data, no pongs) while sockets stay open.
    Stall { secs: f64 },
    /// Close every WebSocket connection now.
    Drop,
    /// Refuse new connections for a while.
    Refuse { secs: f64 },
    /// The next delta of every book (or of one symbol's books) skips an update id.
    Skip { symbol: Option<String> },
    /// A service restart: every book starts again from a snapshot with `u` = 1.
    Restart,
    /// Answer REST after this delay, for a while.
    DelayRest { ms: u64, secs: f64 },
    /// Answer every REST request with HTTP 403, for a while.
    Forbid { secs: f64 },
    /// Answer REST with this status (429, 500, 503...) for a while.
    RestStatus { status: u16, secs: f64 },
    /// Lift every fault.
    Clear,
}

#[derive(Debug, Default)]
struct Faults {
    stall_until: Option<Instant>,
    refuse_until: Option<Instant>,
    forbid_until: Option<Instant>,
    delay_rest: Option<(Duration, Instant)>,
    rest_status: Option<(u16, Instant)>,
}

struct TopicState {
    subscribers: usize,
    u: u64,
    view: BookView,
    last_push_ms: u64,
    skip_next: bool,
    /// Tickers: the values last pushed, to send only what changed.
    last_fields: BTreeMap<&'static str, String>,
    last_forming: Option<SimCandle>,
}

impl TopicState {
    fn new() -> Self {
        TopicState {
            subscribers: 0,
            u: 0,
            view: (Vec::new(), Vec::new()),
            last_push_ms: 0,
            skip_next: false,
            last_fields: BTreeMap::new(),
            last_forming: None,
        }
    }
}

struct VenueState {
    rng: Rng,
    markets: BTreeMap<String, SymbolMarket>,
    topics: HashMap<String, TopicState>,
    seq: u64,
    faults: Faults,
    rest_sent: VecDeque<Instant>,
    push_speedup: u64,
    /// When set, frames come from capture files instead of the synthetic market.
    replay: Option<ReplayFeed>,
}

#[derive(Debug, Clone)]
pub struct Published {
    pub topic: Arc<str>,
    pub text: Arc<str>,
    /// Spot clients get their own ticker frames (snapshots only); `None` goes to every market.
    pub spot: Option<bool>,
}

/// A book as its subscribers hold it, prices and sizes as decimal strings, best first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedBook {
    pub u: u64,
    pub bids: Vec<(String, String)>,
    pub asks: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct VenueStats {
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub refused: AtomicU64,
    pub frames_sent: AtomicU64,
    pub rest_requests: AtomicU64,
    pub rest_forbidden: AtomicU64,
    pub lagged_drops: AtomicU64,
}

struct Inner {
    config: VenueConfig,
    /// Faults queued from outside the venue's runtime, applied on its next step.
    queued: Mutex<Vec<Fault>>,
    state: Mutex<VenueState>,
    tx: broadcast::Sender<Published>,
    drop_tx: watch::Sender<u64>,
    epoch_ms: u64,
    started: Instant,
    stats: VenueStats,
}

/// A handle to a running venue; cheap to clone.
#[derive(Clone)]
pub struct Venue {
    inner: Arc<Inner>,
}

impl Venue {
    /// Builds the venue; `epoch_ms` is the wall-clock time that venue time 0 stands for.
    pub fn new(config: VenueConfig, epoch_ms: u64) -> Venue {
        let mut rng = Rng::new(config.seed);
        let mut markets = BTreeMap::new();
        for s in &config.symbols {
            let spec = SymbolSpec::guess(s);
            markets.insert(
                s.clone(),
                SymbolMarket::new(spec, &mut rng, epoch_ms, config.seed),
            );
        }
        let (tx, _) = broadcast::channel(PUBLISH_CHANNEL_FRAMES);
        let (drop_tx, _) = watch::channel(0);
        Venue {
            inner: Arc::new(Inner {
                queued: Mutex::new(Vec::new()),
                state: Mutex::new(VenueState {
                    rng,
                    markets,
                    topics: HashMap::new(),
                    seq: 1_000_000,
                    faults: Faults::default(),
                    rest_sent: VecDeque::new(),
                    push_speedup: config.push_speedup.max(1),
                    replay: None,
                }),
                config,
                tx,
                drop_tx,
                epoch_ms,
                started: Instant::now(),
                stats: VenueStats::default(),
            }),
        }
    }

    /// A venue that serves recorded frames (see [`ReplayFeed`]) instead of a synthetic market.
    pub fn replaying(config: VenueConfig, feed: ReplayFeed, epoch_ms: u64) -> Venue {
        let v = Venue::new(
            VenueConfig {
                symbols: Vec::new(),
                ..config
            },
            epoch_ms,
        );
        v.state().replay = Some(feed);
        v
    }

    pub fn stats(&self) -> &VenueStats {
        &self.inner.stats
    }

    pub fn symbols(&self) -> &[String] {
        &self.inner.config.symbols
    }

    /// Venue time in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.epoch_ms + self.inner.started.elapsed().as_millis() as u64
    }

    fn state(&self) -> MutexGuard<'_, VenueState> {
        // A panic while holding the lock would be a venue bug; keep serving what is there.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a fault to apply on the venue's next step, on the venue's own clock: how code
    /// outside the venue's runtime (a simulation's driver) injects faults.
    pub fn queue_fault(&self, fault: Fault) {
        self.inner
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    pub fn apply_fault(&self, fault: Fault) {
        let now = Instant::now();
        let until = |secs: f64| now + Duration::from_secs_f64(secs.clamp(0.0, 86_400.0));
        match fault {
            Fault::Drop => {
                self.inner.drop_tx.send_modify(|g| *g += 1);
            }
            Fault::Restart => self.restart_books(),
            other => {
                let mut st = self.state();
                match other {
                    Fault::Stall { secs } => st.faults.stall_until = Some(until(secs)),
                    Fault::Refuse { secs } => st.faults.refuse_until = Some(until(secs)),
                    Fault::Forbid { secs } => st.faults.forbid_until = Some(until(secs)),
                    Fault::DelayRest { ms, secs } => {
                        st.faults.delay_rest =
                            Some((Duration::from_millis(ms.min(600_000)), until(secs)))
                    }
                    Fault::RestStatus { status, secs } => {
                        st.faults.rest_status = Some((status, until(secs)))
                    }
                    Fault::Skip { symbol } => {
                        for (topic, t) in st.topics.iter_mut() {
                            if topic.starts_with("orderbook.")
                                && symbol
                                    .as_ref()
                                    .is_none_or(|s| topic.ends_with(&format!(".{s}")))
                            {
                                t.skip_next = true;
                            }
                        }
                    }
                    Fault::Clear => st.faults = Faults::default(),
                    Fault::Drop | Fault::Restart => {}
                }
            }
        }
    }

    fn stalled(&self) -> bool {
        self.state()
            .faults
            .stall_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// Whether new connections are refused right now.
    pub fn refusing(&self) -> bool {
        self.state()
            .faults
            .refuse_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// The book a client of `orderbook.{depth}.{symbol}` holds after the last published frame.
    pub fn published_book(&self, symbol: &str, depth: u16) -> Option<PublishedBook> {
        let st = self.state();
        let spec = &st.markets.get(symbol)?.spec;
        let t = st.topics.get(&format!("orderbook.{depth}.{symbol}"))?;
        let conv = |v: &[(i64, u64)]| {
            v.iter()
                .map(|(p, q)| (spec.px(*p).to_string(), spec.qty(*q).to_string()))
                .collect()
        };
        Some(PublishedBook {
            u: t.u,
            bids: conv(&t.view.0),
            asks: conv(&t.view.1),
        })
    }

    fn restart_books(&self) {
        let mut st = self.state();
        let now_ms = self.now_ms();
        // Sorted: the same frames in the same order on every run.
        let mut topics: Vec<String> = st
            .topics
            .keys()
            .filter(|t| t.starts_with("orderbook."))
            .cloned()
            .collect();
        topics.sort();
        for topic in topics {
            let Ok(Topic {
                channel: Channel::OrderBook { depth },
                symbol,
            }) = Topic::parse(&topic)
            else {
                continue;
            };
            let symbol = symbol.to_string();
            let view = st.markets[&symbol].top(depth as usize);
            st.seq += 1;
            let seq = st.seq;
            let t = st.topics.get_mut(&topic).expect("listed above");
            t.u = 1;
            t.view = view;
            let active = t.subscribers > 0;
            let text = book_frame(
                &st.markets[&symbol].spec,
                &topic,
                "snapshot",
                now_ms,
                &st.topics[&topic].view,
                1,
                seq,
            );
            if active {
                let _ = self.inner.tx.send(Published {
                    topic: topic.as_str().into(),
                    text: text.into(),
                    spot: None,
                });
            }
        }
    }

    /// Starts the stepping task; it ends when `shutdown` flips to true.
    pub fn spawn_stepper(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let venue = self.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(venue.inner.config.step_ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                    _ = tick.tick() => venue.step(),
                }
            }
        })
    }

    /// One market step and the frames it causes.
    pub fn step(&self) {
        let queued =
            std::mem::take(&mut *self.inner.queued.lock().unwrap_or_else(|p| p.into_inner()));
        for f in queued {
            self.apply_fault(f);
        }
        let now_ms = self.now_ms();
        let seed = self.inner.config.seed;
        let mut out = Vec::new();
        {
            let mut st = self.state();
            let st = &mut *st;
            if let Some(feed) = st.replay.as_mut() {
                for r in feed.due(now_ms) {
                    if st.topics.get(&r.topic).is_some_and(|t| t.subscribers > 0) {
                        out.push(Published {
                            topic: r.topic.into(),
                            text: r.text.into(),
                            spot: None,
                        });
                    }
                }
            }
            for m in st.markets.values_mut() {
                m.step(&mut st.rng, now_ms, seed);
            }
            let symbols: Vec<String> = st.markets.keys().cloned().collect();
            for symbol in &symbols {
                for depth in VENUE_DEPTHS {
                    publish_book(st, symbol, depth, now_ms, &mut out);
                }
                publish_klines(st, symbol, now_ms, &mut out);
                publish_ticker(st, symbol, now_ms, &mut out);
                publish_trades(st, symbol, now_ms, &mut out);
            }
        }
        for p in out {
            // No receivers is fine: nobody is subscribed.
            let _ = self.inner.tx.send(p);
        }
    }

    /// The router: REST, WebSocket and admin on one address.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v5/public/{category}", get(ws_upgrade))
            .route("/v5/market/time", get(rest_time))
            .route("/v5/market/instruments-info", get(rest_instruments))
            .route("/v5/market/orderbook", get(rest_orderbook))
            .route("/v5/market/kline", get(rest_kline))
            .route("/v5/market/tickers", get(rest_tickers))
            .route("/admin/fault", post(admin_fault))
            .route("/admin/book", get(admin_book))
            .route("/admin/stats", get(admin_stats))
            .with_state(self.clone())
    }
}

/// Serves the venue on `listener` until `shutdown` resolves; new connections are refused
/// (accepted and closed at once) while a `refuse` fault is active.
pub async fn serve<L>(
    listener: L,
    venue: Venue,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let listener = Refusing {
        inner: listener,
        venue: venue.clone(),
    };
    axum::serve(listener, venue.router())
        .with_graceful_shutdown(shutdown)
        .await
}

struct Refusing<L> {
    inner: L,
    venue: Venue,
}

impl<L: axum::serve::Listener> axum::serve::Listener for Refusing<L> {
    type Io = L::Io;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            if self.venue.refusing() {
                self.venue.stats().refused.fetch_add(1, Ordering::Relaxed);
                drop(io);
                continue;
            }
            return (io, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

// ----- publication -----

fn push_interval_ms(depth: u16) -> u64 {
    match depth {
        1 => 10,
        50 => 20,
        200 => 100,
        _ => 200,
    }
}

fn publish_book(
    st: &mut VenueState,
    symbol: &str,
    depth: u16,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let topic = format!("orderbook.{depth}.{symbol}");
    // The 1000-level sequence always runs: REST snapshots carry its `u`.
    let always = depth == 1000;
    let t = st
        .topics
        .entry(topic.clone())
        .or_insert_with(TopicState::new);
    if t.subscribers == 0 && !always {
        return;
    }
    if now_ms < t.last_push_ms + (push_interval_ms(depth) / st.push_speedup).max(1) {
        return;
    }
    let m = &st.markets[symbol];
    let view = m.top(depth as usize);
    let repeat_l1 = depth == 1 && view == t.view && now_ms >= t.last_push_ms + 3_000;
    if view == t.view && !repeat_l1 {
        return;
    }
    t.last_push_ms = now_ms;
    st.seq += 1 + st.rng.up_to(5);
    if depth == 1 {
        // Level 1 is snapshot-only; an unchanged book is re-pushed every 3 s with the same `u`.
        if !repeat_l1 {
            t.u += 1;
        }
        t.view = view;
        if t.subscribers > 0 {
            let text = book_frame(&m.spec, &topic, "snapshot", now_ms, &t.view, t.u, st.seq);
            out.push(Published {
                topic: topic.into(),
                text: text.into(),
                spot: None,
            });
        }
        return;
    }
    let (bids, asks) = (
        diff(&t.view.0, &view.0, true),
        diff(&t.view.1, &view.1, false),
    );
    t.u += if std::mem::take(&mut t.skip_next) {
        2
    } else {
        1
    };
    t.view = view;
    if t.subscribers > 0 {
        let text = book_frame(&m.spec, &topic, "delta", now_ms, &(bids, asks), t.u, st.seq);
        out.push(Published {
            topic: topic.into(),
            text: text.into(),
            spot: None,
        });
    }
}

/// Levels that changed from `old` to `new` (both best first), with 0 for levels that left.
fn diff(old: &[(i64, u64)], new: &[(i64, u64)], bids: bool) -> Vec<(i64, u64)> {
    let old_map: HashMap<i64, u64> = old.iter().copied().collect();
    let new_map: HashMap<i64, u64> = new.iter().copied().collect();
    let mut out: Vec<(i64, u64)> = new
        .iter()
        .filter(|(p, q)| old_map.get(p) != Some(q))
        .copied()
        .collect();
    out.extend(
        old.iter()
            .filter(|(p, _)| !new_map.contains_key(p))
            .map(|(p, _)| (*p, 0)),
    );
    out.sort_by_key(|(p, _)| if bids { -*p } else { *p });
    out
}

fn book_frame(
    spec: &SymbolSpec,
    topic: &str,
    kind: &str,
    ts: u64,
    view: &BookView,
    u: u64,
    seq: u64,
) -> String {
    let mut s = String::with_capacity(64 + 24 * (view.0.len() + view.1.len()));
    let _ = write!(
        s,
        r#"{{"topic":"{topic}","type":"{kind}","ts":{ts},"data":{{"s":"{}","b":["#,
        spec.symbol
    );
    levels_json(&mut s, spec, &view.0);
    s.push_str(r#"],"a":["#);
    levels_json(&mut s, spec, &view.1);
    let _ = write!(
        s,
        r#"],"u":{u},"seq":{seq}}},"cts":{}}}"#,
        ts.saturating_sub(1)
    );
    s
}

fn levels_json(s: &mut String, spec: &SymbolSpec, levels: &[(i64, u64)]) {
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"["{}","{}"]"#, spec.px(*p), spec.qty(*q));
    }
}

fn candle_json(
    s: &mut String,
    spec: &SymbolSpec,
    interval: Interval,
    c: &SimCandle,
    confirm: bool,
    ts: u64,
) {
    let end = interval.next_start(c.start_ms) - 1;
    let turnover = keel_core::Dec::from_raw(
        spec.tick.raw() * spec.qty_step.raw() / keel_core::Dec::ONE.raw() * c.notional,
    );
    let _ = write!(
        s,
        r#"{{"start":{},"end":{end},"interval":"{}","open":"{}","close":"{}","high":"{}","low":"{}","volume":"{}","turnover":"{}","confirm":{confirm},"timestamp":{ts}}}"#,
        c.start_ms,
        interval.as_str(),
        spec.px(c.open),
        spec.px(c.close),
        spec.px(c.high),
        spec.px(c.low),
        spec.qty(c.volume_lots),
        turnover
    );
}

fn publish_klines(st: &mut VenueState, symbol: &str, now_ms: u64, out: &mut Vec<Published>) {
    let m = st.markets.get_mut(symbol).expect("known symbol");
    let closes = std::mem::take(&mut m.fresh_closes);
    let intervals: Vec<Interval> = m.series.keys().copied().collect();
    for interval in intervals {
        let topic = format!("kline.{}.{symbol}", interval.as_str());
        let Some(t) = st.topics.get_mut(&topic) else {
            continue;
        };
        if t.subscribers == 0 {
            continue;
        }
        let m = &st.markets[symbol];
        let forming = m.series[&interval].forming;
        let mut data = String::new();
        for (_, c) in closes.iter().filter(|(i, _)| *i == interval) {
            if !data.is_empty() {
                data.push(',');
            }
            candle_json(&mut data, &m.spec, interval, c, true, now_ms);
        }
        let due = now_ms >= t.last_push_ms + 1_000 && t.last_forming != Some(forming);
        if data.is_empty() && !due {
            continue;
        }
        if !data.is_empty() {
            data.push(',');
        }
        candle_json(&mut data, &m.spec, interval, &forming, false, now_ms);
        t.last_push_ms = now_ms;
        t.last_forming = Some(forming);
        out.push(Published {
            text: format!(
                r#"{{"topic":"{topic}","data":[{data}],"ts":{now_ms},"type":"snapshot"}}"#
            )
            .into(),
            topic: topic.into(),
            spot: None,
        });
    }
}

fn ticker_fields(m: &SymbolMarket) -> BTreeMap<&'static str, String> {
    let spec = &m.spec;
    let (bb, ba) = (m.best_bid(), m.best_ask());
    let mut f = BTreeMap::new();
    f.insert("lastPrice", spec.px(m.last_trade).to_string());
    f.insert("bid1Price", spec.px(bb).to_string());
    f.insert("bid1Size", spec.qty(m.bids[&bb]).to_string());
    f.insert("ask1Price", spec.px(ba).to_string());
    f.insert("ask1Size", spec.qty(m.asks[&ba]).to_string());
    f.insert("markPrice", spec.px((bb + ba) / 2).to_string());
    f.insert("indexPrice", spec.px((bb + ba) / 2).to_string());
    f.insert("volume24h", spec.qty(m.volume_lots_total).to_string());
    f.insert("fundingRate", "0.0001".to_string());
    f
}

fn ticker_json(symbol: &str, fields: &BTreeMap<&'static str, String>) -> String {
    let mut s = format!(r#"{{"symbol":"{symbol}""#);
    for (k, v) in fields {
        let _ = write!(s, r#","{k}":"{v}""#);
    }
    s.push('}');
    s
}

fn publish_ticker(st: &mut VenueState, symbol: &str, now_ms: u64, out: &mut Vec<Published>) {
    let topic = format!("tickers.{symbol}");
    let Some(t) = st.topics.get_mut(&topic) else {
        return;
    };
    if t.subscribers == 0 || now_ms < t.last_push_ms + 100 {
        return;
    }
    let fields = ticker_fields(&st.markets[symbol]);
    let changed: BTreeMap<&'static str, String> = fields
        .iter()
        .filter(|(k, v)| t.last_fields.get(*k) != Some(*v))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    if changed.is_empty() {
        return;
    }
    t.last_push_ms = now_ms;
    st.seq += 1;
    let cs = st.seq;
    out.push(Published {
        topic: topic.as_str().into(),
        text: format!(
            r#"{{"topic":"{topic}","type":"delta","data":{},"cs":{cs},"ts":{now_ms}}}"#,
            ticker_json(symbol, &changed)
        )
        .into(),
        spot: Some(false),
    });
    out.push(Published {
        topic: topic.as_str().into(),
        text: format!(
            r#"{{"topic":"{topic}","ts":{now_ms},"type":"snapshot","cs":{cs},"data":{}}}"#,
            ticker_json(symbol, &fields)
        )
        .into(),
        spot: Some(true),
    });
    t.last_fields = fields;
}

fn publish_trades(st: &mut VenueState, symbol: &str, now_ms: u64, out: &mut Vec<Published>) {
    let m = st.markets.get_mut(symbol).expect("known symbol");
    let trades = std::mem::take(&mut m.fresh_trades);
    let topic = format!("publicTrade.{symbol}");
    if trades.is_empty() || st.topics.get(&topic).is_none_or(|t| t.subscribers == 0) {
        return;
    }
    let spec = &st.markets[symbol].spec;
    for chunk in trades.chunks(1024) {
        let mut data = String::new();
        for (i, t) in chunk.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            let _ = write!(
                data,
                r#"{{"T":{},"s":"{symbol}","S":"{}","v":"{}","p":"{}","L":"{}","i":"{:016x}","BT":false,"RPI":false,"seq":{}}}"#,
                t.time_ms,
                if t.buy { "Buy" } else { "Sell" },
                spec.qty(t.lots),
                spec.px(t.ticks),
                if t.buy { "PlusTick" } else { "MinusTick" },
                t.id,
                st.seq
            );
        }
        out.push(Published {
            topic: topic.as_str().into(),
            text: format!(
                r#"{{"topic":"{topic}","type":"snapshot","ts":{now_ms},"data":[{data}]}}"#
            )
            .into(),
            spot: None,
        });
    }
}

// ----- WebSocket -----

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    Path(category): Path<String>,
    State(venue): State<Venue>,
) -> Response {
    let spot = match category.as_str() {
        "spot" => true,
        "linear" => false,
        _ => return (StatusCode::NOT_FOUND, "unknown category").into_response(),
    };
    if venue.refusing() {
        venue.stats().refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "refusing connections").into_response();
    }
    ws.on_upgrade(move |socket| connection(socket, venue, spot))
}

/// What a subscription answer says and which snapshots follow it.
fn subscribe(
    venue: &Venue,
    topics: &[String],
    spot: bool,
    subs: &mut HashSet<String>,
) -> (Option<String>, Vec<String>) {
    if spot && topics.len() > SPOT_ARGS_MAX {
        return (Some(format!("args size >{SPOT_ARGS_MAX}")), Vec::new());
    }
    let now_ms = venue.now_ms();
    let mut st = venue.state();
    let st = &mut *st;
    let mut failed = None;
    let mut snapshots = Vec::new();
    for topic in topics {
        if let Some(feed) = st.replay.as_ref() {
            if !feed.topics.contains(topic) {
                failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
                continue;
            }
            if subs.insert(topic.clone()) {
                st.topics
                    .entry(topic.clone())
                    .or_insert_with(TopicState::new)
                    .subscribers += 1;
                snapshots.extend(feed.book_snapshot(topic, now_ms));
            }
            continue;
        }
        let parsed = Topic::parse(topic)
            .ok()
            .filter(|t| st.markets.contains_key(t.symbol));
        let ok = match parsed.map(|t| t.channel) {
            Some(Channel::OrderBook { depth }) => VENUE_DEPTHS.contains(&depth),
            Some(_) => true,
            None => false,
        };
        if !ok {
            failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
            continue;
        }
        if !subs.insert(topic.clone()) {
            continue; // already subscribed on this connection
        }
        let t = parsed.expect("checked above");
        let symbol = t.symbol.to_string();
        let state = st
            .topics
            .entry(topic.clone())
            .or_insert_with(TopicState::new);
        state.subscribers += 1;
        match t.channel {
            Channel::OrderBook { depth } => {
                let running = state.subscribers > 1 || depth == 1000;
                if !running || state.u == 0 {
                    state.view = st.markets[&symbol].top(depth as usize);
                    state.u += 1;
                    state.last_push_ms = now_ms;
                }
                st.seq += 1;
                let state = &st.topics[topic];
                snapshots.push(book_frame(
                    &st.markets[&symbol].spec,
                    topic,
                    "snapshot",
                    now_ms,
                    &state.view,
                    state.u,
                    st.seq,
                ));
            }
            Channel::Ticker => {
                let fields = ticker_fields(&st.markets[&symbol]);
                snapshots.push(format!(
                    r#"{{"topic":"{topic}","type":"snapshot","data":{},"cs":{},"ts":{now_ms}}}"#,
                    ticker_json(&symbol, &fields),
                    st.seq
                ));
            }
            Channel::Kline { interval } => {
                let m = st.markets.get_mut(&symbol).expect("known symbol");
                let forming = m.series(interval, now_ms).forming;
                let mut data = String::new();
                candle_json(&mut data, &m.spec, interval, &forming, false, now_ms);
                snapshots.push(format!(
                    r#"{{"topic":"{topic}","data":[{data}],"ts":{now_ms},"type":"snapshot"}}"#
                ));
            }
            Channel::Trade => {}
        }
    }
    (failed, snapshots)
}

fn unsubscribe(venue: &Venue, topics: &[String], subs: &mut HashSet<String>) {
    let mut st = venue.state();
    for topic in topics {
        if subs.remove(topic)
            && let Some(t) = st.topics.get_mut(topic)
        {
            t.subscribers = t.subscribers.saturating_sub(1);
        }
    }
}

async fn connection(socket: WebSocket, venue: Venue, spot: bool) {
    let stats = venue.stats();
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let conn_id = format!("sim-{}", stats.connections_total.load(Ordering::Relaxed));
    let mut rx = venue.inner.tx.subscribe();
    let mut drop_rx = venue.inner.drop_tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut subs: HashSet<String> = HashSet::new();
    let mut decoder = Decoder::default();
    loop {
        tokio::select! {
            biased;
            _ = drop_rx.changed() => break,
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if venue.stalled() {
                    continue;
                }
                let Ok(Frame::Control(Control::Request(req))) = decoder.decode(&text) else {
                    let reply = format!(r#"{{"success":false,"ret_msg":"error:invalid request","conn_id":"{conn_id}","op":""}}"#);
                    if sink.send(Message::Text(reply.into())).await.is_err() { break }
                    continue;
                };
                let req_id = req.req_id.clone().unwrap_or_default();
                let mut replies = Vec::new();
                match req.op.as_str() {
                    "ping" => replies.push(if spot {
                        // Spot pongs carry no req_id (Bybit v5 docs, "Connect").
                        format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}","op":"ping"}}"#)
                    } else {
                        format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}","req_id":"{req_id}","op":"ping"}}"#)
                    }),
                    "subscribe" => {
                        let (failed, snapshots) = subscribe(&venue, &req.args, spot, &mut subs);
                        let ok_msg = if spot { "subscribe" } else { "" };
                        let (success, msg) = match &failed { Some(m) => (false, m.as_str()), None => (true, ok_msg) };
                        replies.push(format!(r#"{{"success":{success},"ret_msg":"{msg}","conn_id":"{conn_id}","req_id":"{req_id}","op":"subscribe"}}"#));
                        replies.extend(snapshots);
                    }
                    "unsubscribe" => {
                        unsubscribe(&venue, &req.args, &mut subs);
                        replies.push(format!(r#"{{"success":true,"ret_msg":"","conn_id":"{conn_id}","req_id":"{req_id}","op":"unsubscribe"}}"#));
                    }
                    other => replies.push(format!(r#"{{"success":false,"ret_msg":"error:unknown op {other}","conn_id":"{conn_id}","req_id":"{req_id}","op":"{other}"}}"#)),
                }
                let mut failed = false;
                for r in replies {
                    if sink.send(Message::Text(r.into())).await.is_err() { failed = true; break }
                    stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                if failed { break }
            }
            p = rx.recv() => {
                let p = match p {
                    Ok(p) => p,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        stats.lagged_drops.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !subs.contains(&*p.topic) || p.spot.is_some_and(|s| s != spot) || venue.stalled() {
                    continue;
                }
                if sink.send(Message::Text(p.text.to_string().into())).await.is_err() { break }
                stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let all: Vec<String> = subs.iter().cloned().collect();
    unsubscribe(&venue, &all, &mut subs);
    let _ = sink.close().await;
    stats.connections.fetch_sub(1, Ordering::Relaxed);
}

// ----- REST -----

fn envelope(venue: &Venue, result: &str) -> String {
    format!(
        r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    )
}

fn rest_error(venue: &Venue, code: i64, msg: &str) -> Response {
    let body = format!(
        r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    );
    json_response(StatusCode::OK, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The venue's own limits and faults, in front of every REST endpoint.
async fn rest_gate(venue: &Venue) -> Option<Response> {
    venue.stats().rest_requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let (delay, forbid, status) = {
        let mut st = venue.state();
        let window = Duration::from_millis(venue.inner.config.rest_window_ms);
        while st
            .rest_sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            st.rest_sent.pop_front();
        }
        let over = st.rest_sent.len() >= venue.inner.config.rest_limit;
        if !over {
            st.rest_sent.push_back(now);
        }
        let forbid = over || st.faults.forbid_until.is_some_and(|t| now < t);
        let delay = st
            .faults
            .delay_rest
            .filter(|(_, until)| now < *until)
            .map(|(d, _)| d);
        let status = st
            .faults
            .rest_status
            .filter(|(_, until)| now < *until)
            .map(|(s, _)| s);
        (delay, forbid, status)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if forbid {
        venue.stats().rest_forbidden.fetch_add(1, Ordering::Relaxed);
        return Some((StatusCode::FORBIDDEN, "403 Forbidden: access too frequent").into_response());
    }
    if let Some(s) = status {
        let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some((code, "injected").into_response());
    }
    None
}

async fn rest_time(State(venue): State<Venue>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let ms = venue.now_ms();
    let result = format!(
        r#"{{"timeSecond":"{}","timeNano":"{}"}}"#,
        ms / 1000,
        ms as u128 * 1_000_000
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
struct SymbolQuery {
    category: Option<String>,
    symbol: Option<String>,
    limit: Option<u32>,
}

fn category_ok(c: &Option<String>) -> bool {
    matches!(c.as_deref(), None | Some("linear") | Some("spot"))
}

async fn rest_instruments(State(venue): State<Venue>, Query(q): Query<SymbolQuery>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    if !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error: category is invalid");
    }
    let st = venue.state();
    let mut list = String::new();
    let replayed = st
        .replay
        .as_ref()
        .map(|f| f.symbols.clone())
        .unwrap_or_default();
    for sym in replayed
        .iter()
        .filter(|s| q.symbol.as_ref().is_none_or(|w| w == *s))
    {
        if !list.is_empty() {
            list.push(',');
        }
        let _ = write!(
            list,
            r#"{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading"}}"#
        );
    }
    for (sym, m) in st
        .markets
        .iter()
        .filter(|(s, _)| q.symbol.as_ref().is_none_or(|w| w == *s))
    {
        if !list.is_empty() {
            list.push(',');
        }
        let _ = write!(
            list,
            r#"{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading","priceFilter":{{"tickSize":"{}"}},"lotSizeFilter":{{"qtyStep":"{}","minOrderQty":"{}"}}}}"#,
            m.spec.tick, m.spec.qty_step, m.spec.qty_step
        );
    }
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    drop(st);
    json_response(
        StatusCode::OK,
        envelope(
            &venue,
            &format!(r#"{{"category":"{cat}","list":[{list}],"nextPageCursor":""}}"#),
        ),
    )
}

async fn rest_orderbook(State(venue): State<Venue>, Query(q): Query<SymbolQuery>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let Some(symbol) = q.symbol.clone() else {
        return rest_error(&venue, 10001, "params error: symbol is required");
    };
    let limit = q.limit.unwrap_or(25);
    if !(1..=1000).contains(&limit) || !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error");
    }
    let now_ms = venue.now_ms();
    let st = venue.state();
    let Some(m) = st.markets.get(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    // The REST book is the 1000-level stream's last published view, with its `u`.
    let t = st.topics.get(&format!("orderbook.1000.{symbol}"));
    let (u, view) = match t {
        Some(t) if t.u > 0 => (t.u, t.view.clone()),
        _ => (1, m.top(1000)),
    };
    let n = limit as usize;
    let view = (
        view.0.into_iter().take(n).collect::<Vec<_>>(),
        view.1.into_iter().take(n).collect::<Vec<_>>(),
    );
    let mut result = format!(r#"{{"s":"{symbol}","b":["#);
    levels_json(&mut result, &m.spec, &view.0);
    result.push_str(r#"],"a":["#);
    levels_json(&mut result, &m.spec, &view.1);
    let _ = write!(
        result,
        r#"],"ts":{now_ms},"u":{u},"seq":{},"cts":{now_ms}}}"#,
        st.seq
    );
    drop(st);
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
struct KlineQuery {
    category: Option<String>,
    symbol: Option<String>,
    interval: Option<String>,
    start: Option<u64>,
    end: Option<u64>,
    limit: Option<u32>,
}

/// Candles newest first within [start, end], at most `limit`; the first may still be open.
async fn rest_kline(State(venue): State<Venue>, Query(q): Query<KlineQuery>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let (Some(symbol), Some(interval)) = (
        q.symbol.clone(),
        q.interval.as_deref().and_then(Interval::parse),
    ) else {
        return rest_error(
            &venue,
            10001,
            "params error: symbol and interval are required",
        );
    };
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) || !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error");
    }
    let now_ms = venue.now_ms();
    let seed = venue.inner.config.seed;
    let mut st = venue.state();
    let Some(m) = st.markets.get_mut(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    let series = m.series(interval, now_ms).clone();
    let spec = m.spec.clone();
    drop(st);
    let end = q.end.unwrap_or(now_ms).min(now_ms);
    let first_live = series
        .closed
        .front()
        .map_or(series.forming.start_ms, |c| c.start_ms);
    let mut rows = Vec::new();
    let mut start = interval.floor(end);
    while rows.len() < limit as usize {
        if q.start.is_some_and(|s| start < s) {
            break;
        }
        let c = if start == series.forming.start_ms {
            Some((series.forming, false))
        } else if start >= first_live {
            series
                .closed
                .iter()
                .find(|c| c.start_ms == start)
                .map(|c| (*c, true))
        } else {
            Some((history_candle(&spec, seed, interval, start), true))
        };
        if let Some((c, _)) = c {
            let turnover = keel_core::Dec::from_raw(
                spec.tick.raw() * spec.qty_step.raw() / keel_core::Dec::ONE.raw() * c.notional,
            );
            rows.push(format!(
                r#"["{}","{}","{}","{}","{}","{}","{}"]"#,
                c.start_ms,
                spec.px(c.open),
                spec.px(c.high),
                spec.px(c.low),
                spec.px(c.close),
                spec.qty(c.volume_lots),
                turnover
            ));
        }
        if start == 0 {
            break;
        }
        // The previous candle's start.
        let prev = interval.floor(start - 1);
        start = prev;
    }
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    let result = format!(
        r#"{{"symbol":"{symbol}","category":"{cat}","list":[{}]}}"#,
        rows.join(",")
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

async fn rest_tickers(State(venue): State<Venue>, Query(q): Query<SymbolQuery>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    if !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error: category is invalid");
    }
    let st = venue.state();
    let list: Vec<String> = st
        .markets
        .iter()
        .filter(|(s, _)| q.symbol.as_ref().is_none_or(|w| w == *s))
        .map(|(s, m)| ticker_json(s, &ticker_fields(m)))
        .collect();
    drop(st);
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    json_response(
        StatusCode::OK,
        envelope(
            &venue,
            &format!(r#"{{"category":"{cat}","list":[{}]}}"#, list.join(",")),
        ),
    )
}

// ----- admin -----

async fn admin_fault(State(venue): State<Venue>, body: String) -> Response {
    match serde_json::from_str::<Fault>(&body) {
        Ok(f) => {
            tracing::info!(fault = ?f, "venue: fault injected");
            venue.apply_fault(f);
            json_response(StatusCode::OK, r#"{"ok":true}"#.into())
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"ok": false, "error": format!("bad fault: {e}")}).to_string(),
        ),
    }
}

#[derive(Deserialize)]
struct BookQuery {
    symbol: String,
    depth: Option<u16>,
}

async fn admin_book(State(venue): State<Venue>, Query(q): Query<BookQuery>) -> Response {
    match venue.published_book(&q.symbol, q.depth.unwrap_or(1000)) {
        Some(b) => json_response(
            StatusCode::OK,
            serde_json::to_string(&b).unwrap_or_default(),
        ),
        None => json_response(StatusCode::NOT_FOUND, r#"{"error":"no such book"}"#.into()),
    }
}

async fn admin_stats(State(venue): State<Venue>) -> Response {
    let s = venue.stats();
    let body = serde_json::json!({
        "connections": s.connections.load(Ordering::Relaxed),
        "connections_total": s.connections_total.load(Ordering::Relaxed),
        "refused": s.refused.load(Ordering::Relaxed),
        "frames_sent": s.frames_sent.load(Ordering::Relaxed),
        "rest_requests": s.rest_requests.load(Ordering::Relaxed),
        "rest_forbidden": s.rest_forbidden.load(Ordering::Relaxed),
        "lagged_drops": s.lagged_drops.load(Ordering::Relaxed),
    });
    json_response(StatusCode::OK, body.to_string())
}
