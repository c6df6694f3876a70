//! The engine: every machine of one venue composed behind the one shape.
//!
//! ```text
//! new(config, now) -> handle_input(now, input) / handle_timeout(now) -> poll_output() until None
//!                                                                     -> poll_timeout()
//! ```
//! It owns the links (one retry loop each), the shared connection budget, the REST scheduler,
//! the market state, the supervisor's jobs and health. The runtime only moves bytes and timers.

pub mod backfill;
pub mod backoff;
pub mod budget;
pub mod health;
pub mod limiter;
pub mod link;
pub mod scheduler;
pub mod supervisor;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::FastMap;
use crate::market::book::{Applied, BookState};
use crate::market::kline::ClosedCandle;
use crate::market::{BookId, Handled, Market, MarketConfig, MarketError, MarketEvent};
use crate::rng::Rng;
use crate::time::Time;
use crate::trading::broker::{Broker, BrokerConfig, Fill, Order};
use crate::trading::compute::{BookView, Cycle, SymbolSignal, Work, WorkResult};
use crate::trading::strategy::{Signal, StrategyConfig, StrategyInput};
use crate::wire::codec::Level;
use crate::wire::rest;
use crate::wire::topic::{Channel, Interval, Topic};

use backoff::{Backoff, BackoffConfig};
use budget::{BudgetConfig, ConnectBudget};
use health::{Health, Overall, Status};
use link::{Link, LinkConfig, LinkId, LinkOutput, LinkState};
use scheduler::{HttpError, RequestId, RestConfig, RestFailure, SchedOutput, Scheduler};
use supervisor::{Job, JobConfig, JobOutput};

/// Bybit: "for one public connection, you cannot have length of "args" array over 21,000
/// characters".
pub const ARGS_CHARS_PER_LINK_MAX: usize = 21_000;
/// Most links one engine opens.
pub const LINKS_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Linear,
    Spot,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Linear => "linear",
            Category::Spot => "spot",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Seeds the one RNG: backoff jitter and anything else random.
    pub seed: u64,
    pub category: Category,
    /// The WebSocket URL of the category, e.g. `wss://stream.bybit.com/v5/public/linear`.
    pub ws_url: String,
    pub symbols: Vec<String>,
    pub book_depth: u16,
    pub kline_interval: Option<Interval>,
    pub tickers: bool,
    pub trades: bool,
    pub link: LinkConfig,
    pub budget: BudgetConfig,
    pub rest: RestConfig,
    pub market: MarketConfig,
    /// Check the venue (time, instruments) before connecting.
    pub preflight: bool,
    pub heartbeat_interval_ms: u64,
    pub health_tick_ms: u64,
    /// A critical component out of service this long makes the bot down.
    pub down_after_ms: u64,
    pub signal_job: JobConfig,
    pub signal_levels: usize,
    /// At most one top-of-book event per book per this interval.
    pub book_event_interval_ms: u64,
    pub repair_backoff: BackoffConfig,
    pub strategy: StrategyConfig,
    /// Turn signals into paper orders.
    pub auto_execute: bool,
    pub broker: BrokerConfig,
    /// The next client order id's sequence number (from the store after a restart).
    pub broker_next_seq: u64,
    /// Load this many candles of REST history per series before the first signal cycle.
    pub warmup_candles: u32,
}

impl EngineConfig {
    pub fn new(ws_url: impl Into<String>, symbols: Vec<String>) -> Self {
        let ws_url = ws_url.into();
        EngineConfig {
            seed: 1,
            category: Category::Linear,
            link: LinkConfig::new(ws_url.clone()),
            ws_url,
            symbols,
            book_depth: 50,
            kline_interval: Some(Interval::Min1),
            tickers: true,
            trades: true,
            budget: BudgetConfig::default(),
            rest: RestConfig::default(),
            market: MarketConfig::default(),
            preflight: true,
            heartbeat_interval_ms: 300_000,
            health_tick_ms: 1_000,
            down_after_ms: 60_000,
            signal_job: JobConfig::new("signals", 5_000, 10_000),
            signal_levels: 5,
            book_event_interval_ms: 100,
            repair_backoff: BackoffConfig {
                delay_ms_base: 250,
                delay_ms_max: 30_000,
                reset_after_ms: 0,
            },
            strategy: StrategyConfig::default(),
            auto_execute: false,
            broker: BrokerConfig::default(),
            broker_next_seq: 0,
            warmup_candles: 200,
        }
    }

    /// Every topic this configuration subscribes to, checked against the codec's rules.
    pub fn topics(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for s in &self.symbols {
            let mut t = vec![format!("orderbook.{}.{s}", self.book_depth)];
            if let Some(i) = self.kline_interval {
                t.push(format!("kline.{}.{s}", i.as_str()));
            }
            if self.tickers {
                t.push(format!("tickers.{s}"));
            }
            if self.trades {
                t.push(format!("publicTrade.{s}"));
            }
            for topic in t {
                Topic::parse(&topic).map_err(|e| ConfigError(format!("topic {topic}: {e}")))?;
                out.push(topic);
            }
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.symbols.is_empty() {
            return Err(ConfigError("no symbols".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.symbols {
            if !seen.insert(s) {
                return Err(ConfigError(format!("symbol {s} listed twice")));
            }
        }
        if !(self.ws_url.starts_with("ws://") || self.ws_url.starts_with("wss://")) {
            return Err(ConfigError(format!(
                "WebSocket URL must be ws:// or wss://: {}",
                self.ws_url
            )));
        }
        if self.link.ping_interval_ms == 0
            || self.link.pong_timeout_ms == 0
            || self.link.idle_timeout_ms == 0
        {
            return Err(ConfigError(
                "ping interval and timeouts must be above zero".into(),
            ));
        }
        if self.rest.requests_per_window == 0 || self.rest.in_flight_max == 0 {
            return Err(ConfigError("REST limits must be above zero".into()));
        }
        if self.signal_job.every_ms == 0 || self.signal_job.deadline_ms == 0 {
            return Err(ConfigError("job intervals must be above zero".into()));
        }
        self.strategy
            .validate()
            .map_err(|e| ConfigError(format!("strategy: {e}")))?;
        self.broker
            .validate()
            .map_err(|e| ConfigError(format!("broker: {e}")))?;
        if self.warmup_candles > 1000 {
            return Err(ConfigError(
                "warmup_candles must be at most 1000 (one REST page)".into(),
            ));
        }
        self.topics().map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u32);

/// Everything that happens to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    WsConnected {
        link: LinkId,
        conn: u64,
    },
    WsConnectFailed {
        link: LinkId,
        conn: u64,
        error: String,
    },
    WsFrame {
        link: LinkId,
        conn: u64,
        text: &'a str,
    },
    WsClosed {
        link: LinkId,
        conn: u64,
        reason: String,
    },
    /// The connection's write queue was full: the link replaces the connection.
    WsWriteOverflow {
        link: LinkId,
        conn: u64,
    },
    /// An HTTP answer; `wall_ms` is the runtime's wall clock at receipt (for the skew).
    HttpResponse {
        id: RequestId,
        status: u16,
        body: String,
        wall_ms: u64,
    },
    HttpError {
        id: RequestId,
        error: HttpError,
    },
    ComputeDone {
        job: JobId,
        run: u64,
        result: Result<WorkResult, String>,
    },
    /// Events a consumer could not take (its channel was full) since the last report.
    ConsumerLag {
        dropped: u64,
    },
    /// How late the runtime's loop ran, measured by its own ticker.
    LoopLag {
        lag: Duration,
    },
    /// Orders waiting for the store to make them durable; while any wait, no new order is
    /// placed (an order is acknowledged only once it is stored).
    StoreBacklog {
        pending: usize,
    },
    Shutdown,
}

/// Events for consumers (strategies, the store, the ops API).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Top {
        symbol: String,
        bid: Level,
        ask: Level,
        u: u64,
    },
    CandleClosed {
        symbol: String,
        interval: Interval,
        candle: ClosedCandle,
    },
    Signals(Vec<SymbolSignal>),
    /// Strategy signals that cleared the confidence threshold.
    StrategySignals(Vec<Signal>),
    /// A paper order, filled or rejected, with its fills.
    Order {
        order: Order,
        fills: Vec<Fill>,
    },
    /// The daily loss limit tripped: no more orders.
    KillSwitch {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

/// Something an operator should read, with its level.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub level: Severity,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub uptime: Duration,
    pub status: Overall,
    pub symbols: usize,
    pub synced_books: usize,
    pub frames_per_s: f64,
    pub reconnects: u64,
    pub loop_lag_max: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Connect {
        link: LinkId,
        conn: u64,
        url: String,
    },
    Send {
        link: LinkId,
        conn: u64,
        text: String,
    },
    Close {
        link: LinkId,
        conn: u64,
    },
    Http {
        id: RequestId,
        path: String,
        timeout: Duration,
    },
    Compute {
        job: JobId,
        run: u64,
        work: Work,
    },
    Event(Event),
    Notice(Notice),
    Heartbeat(Heartbeat),
    /// The engine cannot run (a pre-flight check failed): exit non-zero with this message.
    Fatal(String),
    /// Shut down: every connection was closed.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Time,
    Instrument {
        symbol: String,
    },
    BookSnapshot {
        book: BookId,
        attempt: u32,
    },
    /// REST klines for a series: the warm-up, or a gap the live stream left.
    History {
        symbol: String,
        interval: Interval,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preflight,
    Running,
    Stopped,
    Failed,
}

#[derive(Debug, Clone)]
struct Repair {
    not_before: Time,
    attempts: u32,
    backoff: Backoff,
    in_progress: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub frames: u64,
    pub stale_conn_frames: u64,
    pub consumer_drops: u64,
    pub repairs_resubscribe: u64,
    pub repairs_rest: u64,
    pub books_resynced: u64,
}

pub struct Engine {
    config: EngineConfig,
    phase: Phase,
    started: Time,
    rng: Rng,
    market: Market,
    links: Vec<Link>,
    topic_link: FastMap<String, LinkId>,
    budget: ConnectBudget,
    sched: Scheduler<Purpose>,
    signals: Job,
    health: Health,
    /// Ordered, so repairs go out in the same order on every run with the same seed.
    repairs: BTreeMap<BookId, Repair>,
    /// When each book (by [`BookId::index`]) last sent a top-of-book event.
    book_event_at: Vec<Option<Time>>,
    preflight_left: usize,
    clock_skew_ms: Option<i64>,
    /// The wall clock at receipt of the latest pre-flight answer, for the clock skew.
    pending_wall_ms: Option<u64>,
    announced: bool,
    next_health_tick: Time,
    next_heartbeat: Time,
    hb_frames: u64,
    hb_at: Time,
    loop_lag_max: Duration,
    last_bad_notice: Option<Time>,
    outputs: VecDeque<Output>,
    counters: EngineCounters,
    broker: Broker,
    /// Lot sizes from instruments-info, for rounding paper orders.
    qty_steps: FastMap<String, crate::Dec>,
    store_backlog: usize,
    merge_jobs: BTreeMap<u64, MergeJob>,
    merge_runs: u64,
}

const SIGNAL_JOB: JobId = JobId(0);
/// History merges big enough to leave the engine.
const MERGE_JOB: JobId = JobId(1);

/// A merge job in flight: the series, its version when the snapshot was taken, and the bars,
/// kept so the merge can be redone if the series moved on meanwhile.
#[derive(Debug, Clone)]
struct MergeJob {
    series: crate::market::SeriesId,
    version: (u64, u64, usize),
    bars: Vec<crate::market::kline::Bar>,
}

impl Engine {
    pub fn new(config: EngineConfig, now: Time) -> Result<Engine, ConfigError> {
        config.validate()?;
        let topics = config.topics()?;
        let links = pack_links(&config, topics)?;
        let mut topic_link = FastMap::default();
        for l in &links {
            for s in l.subscriptions() {
                topic_link.insert(s.topic.clone(), l.id());
            }
        }
        let mut health = Health::default();
        for l in &links {
            health.register(&link_name(l.id()), true, now);
        }
        health.register("rest", false, now);
        health.register("market", false, now);
        health.register("job.signals", false, now);
        health.register("consumers", false, now);
        health.set("consumers", Status::Running, now);
        let mut e = Engine {
            rng: Rng::new(config.seed),
            market: Market::new(config.market.clone()),
            budget: ConnectBudget::new(config.budget),
            sched: Scheduler::new(config.rest.clone()),
            signals: Job::new(config.signal_job.clone(), now),
            phase: Phase::Preflight,
            started: now,
            links,
            topic_link,
            health,
            repairs: BTreeMap::new(),
            book_event_at: Vec::new(),
            preflight_left: 0,
            clock_skew_ms: None,
            pending_wall_ms: None,
            announced: false,
            next_health_tick: now,
            next_heartbeat: now + Duration::from_millis(config.heartbeat_interval_ms),
            hb_frames: 0,
            hb_at: now,
            loop_lag_max: Duration::ZERO,
            last_bad_notice: None,
            outputs: VecDeque::new(),
            counters: EngineCounters::default(),
            broker: Broker::new(config.broker.clone(), config.seed, config.broker_next_seq),
            qty_steps: FastMap::default(),
            store_backlog: 0,
            merge_jobs: BTreeMap::new(),
            merge_runs: 0,
            config,
        };
        e.health.set("rest", Status::Starting, now);
        if e.config.preflight {
            e.notice(
                Severity::Info,
                "pre-flight 1/3: asking the venue for its time".into(),
            );
            e.submit(now, "/v5/market/time".into(), Purpose::Time);
        } else {
            e.start_links(now);
        }
        e.drain_children(now);
        Ok(e)
    }

    // ----- getters -----

    pub fn market(&self) -> &Market {
        &self.market
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn overall(&self, now: Time) -> Overall {
        self.health
            .overall(now, Duration::from_millis(self.config.down_after_ms))
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    pub fn rest(&self) -> &scheduler::SchedCounters {
        self.sched.counters()
    }

    pub fn rest_paused_until(&self) -> Option<Time> {
        self.sched.paused_until()
    }

    pub fn signal_job(&self) -> &Job {
        &self.signals
    }

    pub fn budget(&self) -> &ConnectBudget {
        &self.budget
    }

    pub fn clock_skew_ms(&self) -> Option<i64> {
        self.clock_skew_ms
    }

    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Merges stored closed candles into a series (all of them closed: the store never holds an
    /// open one), before REST and the live stream add to them.
    pub fn seed_history(
        &mut self,
        symbol: &str,
        interval: Interval,
        bars: &[crate::market::kline::Bar],
    ) -> usize {
        let Some(series) = self.market.series_for(symbol, interval) else {
            return 0;
        };
        let r = self.market.series_mut(series).merge_rest(bars, u64::MAX);
        r.added + r.replaced
    }

    /// The mark of `symbol`: the mid of its synced book, if it has one.
    pub fn mark(&self, symbol: &str) -> Option<crate::Dec> {
        mark(&self.market, self.config.book_depth, symbol)
    }

    /// Restores a position from the store before trading starts.
    pub fn restore_position(&mut self, p: crate::trading::broker::Position) {
        self.broker.restore_position(p);
    }

    pub fn reconnects(&self) -> u64 {
        self.links.iter().map(|l| l.counters().reconnects).sum()
    }

    pub fn connect_attempts(&self) -> u64 {
        self.links
            .iter()
            .map(|l| l.counters().connect_attempts)
            .sum()
    }

    // ----- inputs -----

    pub fn handle_input(&mut self, now: Time, input: Input<'_>) {
        match input {
            Input::WsConnected { link, conn } => {
                if let Some(l) = self.link_mut(link) {
                    l.handle_connected(now, conn);
                }
            }
            Input::WsConnectFailed { link, conn, error } => {
                let rng = &mut self.rng;
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_connect_failed(now, conn, rng, error);
                }
            }
            Input::WsClosed { link, conn, reason } => {
                let rng = &mut self.rng;
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_closed(now, conn, rng, reason);
                }
            }
            Input::WsWriteOverflow { link, conn } => {
                let rng = &mut self.rng;
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_write_overflow(now, conn, rng);
                }
            }
            Input::WsFrame { link, conn, text } => self.on_frame(now, link, conn, text),
            Input::HttpResponse {
                id,
                status,
                body,
                wall_ms,
            } => {
                if self.phase == Phase::Preflight {
                    // Only the time answer needs the wall clock; remember it for that one.
                    self.pending_wall_ms = Some(wall_ms);
                }
                self.sched
                    .handle_response(now, id, status, body, &mut self.rng);
            }
            Input::HttpError { id, error } => {
                self.sched.handle_error(now, id, error, &mut self.rng)
            }
            Input::ComputeDone { job, run, result } => self.on_compute(now, job, run, result),
            Input::ConsumerLag { dropped } => {
                self.counters.consumer_drops += dropped;
                self.health.set("consumers", Status::Degraded, now);
                self.health.error(
                    "consumers",
                    format!("{} events dropped in all", self.counters.consumer_drops),
                    now,
                );
            }
            Input::LoopLag { lag } => self.loop_lag_max = self.loop_lag_max.max(lag),
            Input::StoreBacklog { pending } => {
                if pending > 0 && self.store_backlog == 0 {
                    self.notice(Severity::Warn, format!("store is behind by {pending} orders: no new orders until they are durable"));
                }
                self.store_backlog = pending;
            }
            Input::Shutdown => self.shutdown(now),
        }
        self.drain_children(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if matches!(self.phase, Phase::Stopped | Phase::Failed) {
            return;
        }
        for l in &mut self.links {
            l.handle_timeout(now, &mut self.budget, &mut self.rng);
        }
        self.sched.handle_timeout(now, &mut self.rng);
        if self.phase == Phase::Running {
            self.signals.handle_timeout(now, &mut self.rng);
            self.run_repairs(now);
        }
        if now >= self.next_health_tick {
            self.health_tick(now);
            self.next_health_tick = now + Duration::from_millis(self.config.health_tick_ms);
        }
        if now >= self.next_heartbeat {
            self.heartbeat(now);
        }
        self.drain_children(now);
    }

    // ----- outputs -----

    /// The next output; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest deadline of every machine inside.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        if matches!(self.phase, Phase::Stopped | Phase::Failed) {
            return None;
        }
        let mut t = Some(self.next_health_tick.min(self.next_heartbeat));
        let mut take = |x: Option<Time>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Time| t.min(x)));
            }
        };
        for l in &self.links {
            take(l.poll_timeout());
        }
        take(self.sched.poll_timeout());
        if self.phase == Phase::Running {
            take(self.signals.poll_timeout());
            take(
                self.repairs
                    .values()
                    .filter(|r| !r.in_progress)
                    .map(|r| r.not_before)
                    .min(),
            );
        }
        t
    }

    // ----- internals -----

    fn link_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        self.links.get_mut(id.0 as usize)
    }

    fn notice(&mut self, level: Severity, text: String) {
        self.outputs
            .push_back(Output::Notice(Notice { level, text }));
    }

    fn submit(&mut self, now: Time, path: String, purpose: Purpose) {
        if let Err(e) = self.sched.submit(now, path.clone(), purpose) {
            self.notice(Severity::Warn, format!("REST {path} not queued: {e}"));
        }
    }

    fn start_links(&mut self, now: Time) {
        self.phase = Phase::Running;
        self.notice(
            Severity::Info,
            format!(
                "connecting {} link(s) for {} topic(s) to {}",
                self.links.len(),
                self.topic_link.len(),
                self.config.ws_url
            ),
        );
        for l in &mut self.links {
            l.start(now);
            // Connect now rather than on the next timer turn; the budget still decides.
            l.handle_timeout(now, &mut self.budget, &mut self.rng);
            self.health.set(&link_name(l.id()), Status::Starting, now);
        }
        if let (Some(interval), n) = (self.config.kline_interval, self.config.warmup_candles)
            && n > 0
        {
            for symbol in self.config.symbols.clone() {
                let path = format!(
                    "/v5/market/kline?category={}&symbol={symbol}&interval={}&limit={n}",
                    self.config.category.as_str(),
                    interval.as_str()
                );
                self.submit(now, path, Purpose::History { symbol, interval });
            }
        }
        // The signal job's first run is one interval after the market starts flowing; a job
        // waiting on its schedule is healthy.
        self.signals = Job::new(self.config.signal_job.clone(), now);
        self.health.set("job.signals", Status::Running, now);
    }

    fn shutdown(&mut self, now: Time) {
        for l in &mut self.links {
            l.stop();
        }
        self.drain_links(now);
        self.phase = Phase::Stopped;
        for l in &self.links {
            self.health.set(&link_name(l.id()), Status::Stopped, now);
        }
        self.outputs.push_back(Output::Stopped);
    }

    fn on_frame(&mut self, now: Time, link: LinkId, conn: u64, text: &str) {
        let Some(l) = self.links.get_mut(link.0 as usize) else {
            return;
        };
        if !l.note_frame(now, conn) {
            self.counters.stale_conn_frames += 1;
            return;
        }
        self.counters.frames += 1;
        match self.market.handle_frame(now, text) {
            Ok(Handled::Book { book, applied }) => self.on_book(now, book, applied),
            Ok(_) => {}
            Err(e) => {
                let quiet = self
                    .last_bad_notice
                    .is_some_and(|t| now.since(t) < Duration::from_secs(10));
                if !quiet {
                    self.last_bad_notice = Some(now);
                    let total = self.market.counters().bad.total();
                    let what = match &e {
                        MarketError::Decode(d) => format!("{d} ({})", d.reason().as_str()),
                        other => other.to_string(),
                    };
                    self.notice(
                        Severity::Warn,
                        format!(
                            "refused a frame on {}: {what}; {total} refused so far",
                            link_name(link)
                        ),
                    );
                }
            }
        }
        while let Some(ev) = self.market.poll_event() {
            self.on_market_event(now, link, ev);
        }
    }

    fn on_book(&mut self, now: Time, book: BookId, applied: Applied) {
        let synced = self.market.book(book).state() == BookState::Synced;
        if applied == Applied::Snapshot && synced && self.repairs.remove(&book).is_some() {
            self.counters.books_resynced += 1;
            let topic = self.market.book_topic(book).to_string();
            self.notice(Severity::Info, format!("{topic} synced again"));
        }
        let b = self.market.book(book);
        if !synced {
            return;
        }
        let due = self
            .book_event_at
            .get(book.index())
            .copied()
            .flatten()
            .is_none_or(|t| {
                now.since(t) >= Duration::from_millis(self.config.book_event_interval_ms)
            });
        if due && let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask()) {
            let u = b.last_u().unwrap_or(0);
            if self.book_event_at.len() <= book.index() {
                self.book_event_at.resize(book.index() + 1, None);
            }
            self.book_event_at[book.index()] = Some(now);
            let symbol = self.market.book_symbol(book).to_string();
            self.outputs.push_back(Output::Event(Event::Top {
                symbol,
                bid,
                ask,
                u,
            }));
        }
    }

    fn on_market_event(&mut self, now: Time, link: LinkId, ev: MarketEvent) {
        match ev {
            MarketEvent::Control(c) => {
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_control(now, &c);
                }
            }
            MarketEvent::ResyncNeeded { book, reason } => {
                let topic = self.market.book_topic(book).to_string();
                self.notice(
                    Severity::Warn,
                    format!("{topic} out of sync ({reason:?}); repairing"),
                );
                self.repairs.entry(book).or_insert_with(|| Repair {
                    not_before: now,
                    attempts: 0,
                    backoff: Backoff::new(self.config.repair_backoff),
                    in_progress: false,
                });
                self.run_repairs(now);
            }
            MarketEvent::CandleClosed { series, candle } => {
                let symbol = self.market.series_symbol(series).to_string();
                let interval = self.market.series(series).interval();
                self.outputs.push_back(Output::Event(Event::CandleClosed {
                    symbol,
                    interval,
                    candle,
                }));
            }
            MarketEvent::KlineGap { series, gap } => {
                let topic = self.market.series_topic(series).to_string();
                let symbol = self.market.series_symbol(series).to_string();
                let interval = self.market.series(series).interval();
                self.notice(
                    Severity::Warn,
                    format!(
                        "{topic}: candles missing from {} to {}; backfilling",
                        gap.from_ms, gap.to_ms
                    ),
                );
                // Pages of at most 1000 candles; a longer gap is asked for page by page.
                let missing: Vec<u64> = std::iter::successors(Some(gap.from_ms), |s| {
                    Some(interval.next_start(*s)).filter(|n| *n < gap.to_ms)
                })
                .take(100_000)
                .collect();
                for (start, end) in crate::engine::backfill::pages(&missing, interval) {
                    let path = format!(
                        "/v5/market/kline?category={}&symbol={symbol}&interval={}&start={start}&end={end}&limit=1000",
                        self.config.category.as_str(),
                        interval.as_str(),
                    );
                    self.submit(
                        now,
                        path,
                        Purpose::History {
                            symbol: symbol.clone(),
                            interval,
                        },
                    );
                }
            }
        }
    }

    /// Repairs out-of-sync books: by REST where the REST snapshot continues the stream's
    /// update ids (the 1000-level book), otherwise by subscribing again on a live link.
    fn run_repairs(&mut self, now: Time) {
        let due: Vec<BookId> = self
            .repairs
            .iter()
            .filter(|(_, r)| !r.in_progress && r.not_before <= now)
            .map(|(b, _)| *b)
            .collect();
        for book in due {
            if self.market.book(book).state() == BookState::Synced {
                self.repairs.remove(&book);
                continue;
            }
            let topic = self.market.book_topic(book).to_string();
            let Some(link_id) = self.topic_link.get(&topic).copied() else {
                self.repairs.remove(&book);
                continue;
            };
            let depth = match Topic::parse(&topic).map(|t| t.channel) {
                Ok(Channel::OrderBook { depth }) => depth,
                _ => 0,
            };
            let Some(repair) = self.repairs.get_mut(&book) else {
                continue;
            };
            repair.attempts += 1;
            let attempt = repair.attempts;
            repair.not_before = now
                + repair
                    .backoff
                    .next_delay(&mut self.rng)
                    .max(Duration::from_millis(100));
            if depth == 1000 {
                repair.in_progress = true;
                self.counters.repairs_rest += 1;
                self.market
                    .book_mut(book)
                    .hold_deltas(crate::market::book::HELD_DELTAS_MAX_DEFAULT);
                let symbol = self.market.book_symbol(book).to_string();
                let path = format!(
                    "/v5/market/orderbook?category={}&symbol={symbol}&limit=1000",
                    self.config.category.as_str()
                );
                self.submit(now, path, Purpose::BookSnapshot { book, attempt });
            } else if self.links[link_id.0 as usize].resubscribe(now, &topic) {
                self.counters.repairs_resubscribe += 1;
            }
            // A link that is down brings fresh snapshots when it comes back.
        }
    }

    fn on_rest_done(&mut self, now: Time, purpose: Purpose, result: Result<String, RestFailure>) {
        match purpose {
            Purpose::Time => match result
                .map_err(|e| e.to_string())
                .and_then(|b| rest::parse_time(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    let wall = self.pending_wall_ms.take();
                    self.clock_skew_ms = wall.map(|w| r.result as i64 - w as i64);
                    let skew = self
                        .clock_skew_ms
                        .map_or("unknown".to_string(), |s| format!("{s} ms"));
                    self.notice(
                        Severity::Info,
                        format!("pre-flight 1/3: venue time ok, clock skew {skew}"),
                    );
                    self.notice(
                        Severity::Info,
                        format!(
                            "pre-flight 2/3: checking {} symbol(s) exist on the venue",
                            self.config.symbols.len()
                        ),
                    );
                    self.preflight_left = self.config.symbols.len();
                    for s in self.config.symbols.clone() {
                        let path = format!(
                            "/v5/market/instruments-info?category={}&symbol={s}",
                            self.config.category.as_str()
                        );
                        self.submit(now, path, Purpose::Instrument { symbol: s });
                    }
                }
                Err(e) => self.fail(format!(
                    "pre-flight: the venue's time could not be read: {e}"
                )),
            },
            Purpose::Instrument { symbol } => {
                if self.phase != Phase::Preflight {
                    return;
                }
                let page = result
                    .map_err(|e| e.to_string())
                    .and_then(|b| rest::parse_instruments(&b).map_err(|e| e.to_string()));
                match page {
                    Ok(p) if p.result.instruments.iter().any(|i| i.symbol == symbol) => {
                        if let Some(step) = p
                            .result
                            .instruments
                            .iter()
                            .find(|i| i.symbol == symbol)
                            .and_then(|i| i.qty_step)
                        {
                            self.qty_steps.insert(symbol.clone(), step);
                        }
                        self.preflight_left -= 1;
                        if self.preflight_left == 0 {
                            self.notice(
                                Severity::Info,
                                "pre-flight 2/3: every symbol is listed".into(),
                            );
                            self.notice(
                                Severity::Info,
                                "pre-flight 3/3: connecting and subscribing".into(),
                            );
                            self.health.set("rest", Status::Running, now);
                            self.start_links(now);
                        }
                    }
                    Ok(_) => self.fail(format!(
                        "unknown symbol {symbol}: the venue does not list it in category {}",
                        self.config.category.as_str()
                    )),
                    Err(e) => self.fail(format!(
                        "pre-flight: instruments for {symbol} could not be read: {e}"
                    )),
                }
            }
            Purpose::History { symbol, interval } => {
                match result
                    .map_err(|e| e.to_string())
                    .and_then(|b| rest::parse_kline(&b).map_err(|e| e.to_string()))
                {
                    Ok(r) => {
                        let Some(series) = self.market.series_for(&symbol, interval) else {
                            return;
                        };
                        // The venue's clock decides which candle is still open.
                        let venue_now = r.time_ms.unwrap_or(0);
                        let s = self.market.series(series);
                        let bars = s.closed_bars(&r.result.bars, venue_now);
                        if s.closed().len() + bars.len()
                            >= crate::trading::compute::MERGE_PARALLEL_CANDLES_MIN
                        {
                            // Big: a compute job on the pool, never on the loop.
                            self.merge_runs += 1;
                            let run = self.merge_runs;
                            let input = crate::trading::compute::MergeInput {
                                existing: s.closed_vec(),
                                rest: bars.clone(),
                            };
                            self.merge_jobs.insert(
                                run,
                                MergeJob {
                                    series,
                                    version: s.version(),
                                    bars,
                                },
                            );
                            self.outputs.push_back(Output::Compute {
                                job: MERGE_JOB,
                                run,
                                work: Work::MergeHistory(vec![input]),
                            });
                            return;
                        }
                        let report = self
                            .market
                            .series_mut(series)
                            .merge_rest(&r.result.bars, venue_now);
                        self.notice(
                            Severity::Info,
                            format!(
                                "kline.{}.{symbol}: {} candles of history merged ({} kept live, {} still open, {} gaps)",
                                interval.as_str(),
                                report.added + report.replaced,
                                report.kept_live,
                                report.open_skipped,
                                report.gaps_total
                            ),
                        );
                    }
                    Err(e) => self.notice(Severity::Warn, format!("history for {symbol}: {e}")),
                }
            }
            Purpose::BookSnapshot { book, attempt } => {
                let Some(repair) = self.repairs.get_mut(&book) else {
                    return;
                };
                if repair.attempts != attempt {
                    return; // an older attempt's answer
                }
                repair.in_progress = false;
                match result
                    .map_err(|e| e.to_string())
                    .and_then(|b| rest::parse_orderbook(&b).map_err(|e| e.to_string()))
                {
                    Ok(r) => {
                        let b = r.result;
                        let applied = self
                            .market
                            .book_mut(book)
                            .apply_snapshot(&b.bids, &b.asks, b.u, b.seq, b.ts);
                        self.on_book(now, book, applied);
                    }
                    Err(e) => {
                        let topic = self.market.book_topic(book).to_string();
                        self.notice(
                            Severity::Warn,
                            format!("{topic}: REST snapshot failed: {e}"),
                        );
                    }
                }
            }
        }
    }

    fn fail(&mut self, message: String) {
        if self.phase == Phase::Failed {
            return;
        }
        self.phase = Phase::Failed;
        self.outputs.push_back(Output::Fatal(message));
    }

    fn on_compute(&mut self, now: Time, job: JobId, run: u64, result: Result<WorkResult, String>) {
        if job == MERGE_JOB {
            return self.on_merge(run, result);
        }
        if job != SIGNAL_JOB {
            return;
        }
        let ok = result.as_ref().map(|_| ()).map_err(Clone::clone);
        let current = matches!(self.signals.state(), supervisor::JobState::Running { run: g, .. } if g == run);
        self.signals.handle_result(now, run, ok, &mut self.rng);
        if current && let Ok(WorkResult::Signals { stats, signals }) = result {
            self.outputs.push_back(Output::Event(Event::Signals(stats)));
            if !signals.is_empty() {
                if self.config.auto_execute {
                    self.execute(&signals);
                }
                self.outputs
                    .push_back(Output::Event(Event::StrategySignals(signals)));
            }
        }
    }

    fn on_merge(&mut self, run: u64, result: Result<WorkResult, String>) {
        let Some(job) = self.merge_jobs.remove(&run) else {
            return;
        };
        let topic = self.market.series_topic(job.series).to_string();
        let series = self.market.series_mut(job.series);
        let fresh = series.version() == job.version;
        let report = match result {
            Ok(WorkResult::Merged(mut out)) if fresh && out.len() == 1 => {
                let (merged, _) = out.remove(0);
                series.install_merged(merged)
            }
            // The series moved on (a live close came in) or the job failed: redo it here; the
            // bars are already closed and sorted, so nothing is lost or taken as closed twice.
            _ => series.merge_rest(&job.bars, u64::MAX),
        };
        self.notice(
            Severity::Info,
            format!(
                "{topic}: {} candles of history merged by a compute job{} ({} gaps)",
                job.bars.len(),
                if fresh {
                    ""
                } else {
                    ", redone inline after a live close"
                },
                report.gaps_total
            ),
        );
    }

    /// Paper-trades signals against the current books; a book that is not synced is never
    /// traded against.
    fn execute(&mut self, signals: &[Signal]) {
        if self.store_backlog > 0 {
            return;
        }
        let depth = 200;
        // Strategies may disagree (a trend follower and a mean reverter often do): per symbol
        // the strongest signal decides, and the others are named in its reason. Netting them
        // instead cancels both out whenever they disagree.
        let mut best: BTreeMap<&str, (&Signal, Vec<&Signal>)> = BTreeMap::new();
        for s in signals {
            match best.get_mut(s.symbol.as_str()) {
                Some((top, rest)) => {
                    if s.confidence > top.confidence {
                        rest.push(*top);
                        *top = s;
                    } else {
                        rest.push(s);
                    }
                }
                None => {
                    best.insert(s.symbol.as_str(), (s, Vec::new()));
                }
            }
        }
        let decided: Vec<Signal> = best
            .into_values()
            .map(|(top, rest)| {
                let mut d = top.clone();
                for r in rest {
                    d.reason.push_str(&format!(
                        "; over {} {:?} {:.2}",
                        r.strategy, r.side, r.confidence
                    ));
                }
                d
            })
            .collect();
        for s in &decided {
            let topic = format!("orderbook.{}.{}", self.config.book_depth, s.symbol);
            let Some(id) = self.market.book_id(&topic) else {
                continue;
            };
            let b = self.market.book(id);
            let (Ok(bids), Ok(asks)) = (b.top_bids(depth), b.top_asks(depth)) else {
                continue;
            };
            let (bids, asks): (Vec<Level>, Vec<Level>) = (bids.collect(), asks.collect());
            let ts = b.last_ts().unwrap_or(0);
            let (market, depth_cfg) = (&self.market, self.config.book_depth);
            let marks = |sym: &str| mark(market, depth_cfg, sym);
            if let Some(reason) = self.broker.check_risk(ts, &marks) {
                self.notice(Severity::Error, format!("kill switch: {reason}"));
                self.outputs
                    .push_back(Output::Event(Event::KillSwitch { reason }));
            }
            let step = self.qty_steps.get(&s.symbol).copied();
            if let Some(e) = self.broker.on_signal(s, &bids, &asks, step, ts) {
                self.outputs.push_back(Output::Event(Event::Order {
                    order: e.order,
                    fills: e.fills,
                }));
            }
        }
    }

    fn signal_work(&self) -> Work {
        let n = self.config.signal_levels;
        let views: Vec<BookView> = self
            .market
            .book_ids()
            .filter_map(|id| {
                let b = self.market.book(id);
                Some(BookView {
                    symbol: self.market.book_symbol(id).to_string(),
                    bids: b.top_bids(n).ok()?.collect(),
                    asks: b.top_asks(n).ok()?.collect(),
                })
            })
            .collect();
        // Strategies see only symbols whose book is synced right now.
        let keep = self.config.strategy.history_needed().max(1);
        let inputs = match self.config.kline_interval {
            Some(interval) => views
                .iter()
                .filter_map(|v| {
                    let series = self.market.series_id(&format!(
                        "kline.{}.{}",
                        interval.as_str(),
                        v.symbol
                    ))?;
                    let s = self.market.series(series);
                    let closed: Vec<f64> = s
                        .closed()
                        .rev()
                        .take(keep)
                        .map(|c| c.bar.close.to_f64())
                        .collect();
                    Some(StrategyInput {
                        symbol: v.symbol.clone(),
                        closes: closed.into_iter().rev().collect(),
                        candle_ms: s.last_closed().map_or(0, |c| c.bar.start_ms),
                        last: s.forming().map(|f| f.bar.close.to_f64()),
                        top: Some((*v.bids.first()?, *v.asks.first()?)),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        Work::SignalCycle(Cycle {
            views,
            strategy: self.config.strategy.clone(),
            inputs,
        })
    }

    fn drain_children(&mut self, now: Time) {
        // Children may produce work for each other (a REST answer starts the links); loop
        // until all are quiet. Each pass only moves what is queued, so this ends.
        for _ in 0..8 {
            let mut moved = self.drain_links(now);
            while let Some(o) = self.sched.poll_output() {
                moved = true;
                match o {
                    SchedOutput::Http { id, path, timeout } => {
                        self.outputs.push_back(Output::Http { id, path, timeout })
                    }
                    SchedOutput::Done {
                        purpose, result, ..
                    } => self.on_rest_done(now, purpose, result),
                    SchedOutput::Paused { until } => {
                        let secs = until.since(now).as_secs();
                        self.health.set("rest", Status::Degraded, now);
                        self.health
                            .error("rest", "HTTP 403: access too frequent".into(), now);
                        self.notice(
                            Severity::Error,
                            format!("venue answered 403: all REST paused for {secs} s"),
                        );
                    }
                    SchedOutput::Resumed => {
                        self.health.set("rest", Status::Running, now);
                        self.notice(Severity::Info, "REST penalty over: resuming".into());
                    }
                }
            }
            while let Some(o) = self.signals.poll_output() {
                moved = true;
                self.on_job_output(now, o);
            }
            if !moved {
                return;
            }
        }
    }

    fn on_job_output(&mut self, now: Time, o: JobOutput) {
        let name = "job.signals";
        match o {
            JobOutput::Run { run } => {
                let work = self.signal_work();
                self.outputs.push_back(Output::Compute {
                    job: SIGNAL_JOB,
                    run,
                    work,
                });
            }
            JobOutput::Succeeded { .. } => {
                if !self.signals.is_crashed() {
                    self.health.set(name, Status::Running, now);
                }
            }
            JobOutput::Failed {
                error,
                consecutive,
                retry_in,
                ..
            } => {
                if !self.signals.is_crashed() {
                    self.health.set(name, Status::Degraded, now);
                }
                self.health.error(name, error.clone(), now);
                self.notice(
                    Severity::Warn,
                    format!(
                        "signal cycle failed ({consecutive} in a row): {error}; retrying in {} ms",
                        retry_in.as_millis()
                    ),
                );
            }
            JobOutput::Warn { consecutive } => self.notice(
                Severity::Warn,
                format!("signal cycle has failed {consecutive} times in a row"),
            ),
            JobOutput::Crashed { consecutive } => {
                self.health.set(name, Status::Crashed, now);
                self.notice(
                    Severity::Error,
                    format!("signal cycle crashed after {consecutive} failures; still retrying"),
                );
            }
            JobOutput::Recovered => {
                self.health.set(name, Status::Running, now);
                self.notice(Severity::Info, "signal cycle recovered".into());
            }
        }
    }

    fn drain_links(&mut self, now: Time) -> bool {
        let mut moved = false;
        for i in 0..self.links.len() {
            while let Some(o) = self.links[i].poll_output() {
                moved = true;
                let id = self.links[i].id();
                self.on_link_output(now, id, o);
            }
        }
        moved
    }

    fn on_link_output(&mut self, now: Time, id: LinkId, o: LinkOutput) {
        let name = link_name(id);
        match o {
            LinkOutput::Connect { conn, url } => self.outputs.push_back(Output::Connect {
                link: id,
                conn,
                url,
            }),
            LinkOutput::Send { conn, text } => self.outputs.push_back(Output::Send {
                link: id,
                conn,
                text,
            }),
            LinkOutput::Close { conn } => self.outputs.push_back(Output::Close { link: id, conn }),
            LinkOutput::Opened { .. } => {
                // A book never survives a reconnect: wait for the new snapshots.
                let topics: Vec<String> = self.links[id.0 as usize]
                    .subscriptions()
                    .iter()
                    .map(|s| s.topic.clone())
                    .collect();
                for t in topics {
                    if let Some(b) = self.market.book_id(&t) {
                        self.market.book_mut(b).invalidate();
                        self.repairs.remove(&b);
                    }
                }
            }
            LinkOutput::Lost { reason, retry_in } => {
                self.health.set(&name, Status::Degraded, now);
                self.health.error(&name, reason.to_string(), now);
                self.notice(
                    Severity::Warn,
                    format!(
                        "{name} lost: {reason}; reconnecting in {} ms",
                        retry_in.as_millis()
                    ),
                );
            }
            LinkOutput::SubscribeFailed { topics, message } => {
                self.health
                    .error(&name, format!("subscription refused: {message}"), now);
                self.notice(
                    Severity::Error,
                    format!("{name}: venue refused {}: {message}", topics.join(",")),
                );
            }
            LinkOutput::Live => {
                let failed = self.links[id.0 as usize]
                    .subscriptions()
                    .iter()
                    .any(|s| matches!(s.state, link::SubState::Failed(_)));
                self.health.set(
                    &name,
                    if failed {
                        Status::Degraded
                    } else {
                        Status::Running
                    },
                    now,
                );
                if !self.announced && self.links.iter().all(Link::is_live) {
                    self.announced = true;
                    self.notice(
                        Severity::Info,
                        format!(
                            "processing {} symbols: {}",
                            self.config.symbols.len(),
                            self.config.symbols.join(",")
                        ),
                    );
                }
            }
        }
    }

    fn health_tick(&mut self, now: Time) {
        let mut unsynced = Vec::new();
        let mut stale = Vec::new();
        for id in self.market.book_ids() {
            let b = self.market.book(id);
            let topic = self.market.book_topic(id);
            if b.state() != BookState::Synced {
                unsynced.push(topic.to_string());
            }
            let limit = stale_after(b.depth());
            if let Some(t) = self.market.book_last_frame_at(id)
                && now.since(t) > limit
            {
                stale.push(topic.to_string());
            }
        }
        let status = if unsynced.is_empty() && stale.is_empty() {
            if self.market.book_ids().count() == 0 {
                Status::Starting
            } else {
                Status::Running
            }
        } else {
            Status::Degraded
        };
        self.health.set("market", status, now);
        let mut detail = Vec::new();
        if !unsynced.is_empty() {
            detail.push(format!("not synced: {}", unsynced.join(",")));
        }
        if !stale.is_empty() {
            detail.push(format!("stale: {}", stale.join(",")));
        }
        self.health.set_detail("market", detail.join("; "));
        if self.counters.consumer_drops > 0
            && self.health.get("consumers").is_some_and(|c| {
                c.status == Status::Degraded && now.since(c.since) > Duration::from_secs(30)
            })
            && self
                .health
                .get("consumers")
                .and_then(|c| c.last_error.as_ref())
                .is_some_and(|(_, t)| now.since(*t) > Duration::from_secs(30))
        {
            self.health.set("consumers", Status::Running, now);
        }
        for l in &self.links {
            let name = link_name(l.id());
            let detail = match l.state() {
                LinkState::Open if l.is_live() => "live".to_string(),
                LinkState::Open => "subscribing".to_string(),
                LinkState::Waiting { until } => {
                    format!("reconnecting in {} ms", until.since(now).as_millis())
                }
                LinkState::Connecting { .. } => "connecting".to_string(),
                LinkState::Idle => "idle".to_string(),
                LinkState::Stopped => "stopped".to_string(),
            };
            self.health.set_detail(&name, detail);
        }
        if let Some(until) = self.sched.paused_until() {
            self.health.set_detail(
                "rest",
                format!("paused by 403 for {} s more", until.since(now).as_secs()),
            );
        } else {
            self.health.set_detail("rest", String::new());
        }
    }

    fn heartbeat(&mut self, now: Time) {
        let elapsed = now.since(self.hb_at).as_secs_f64().max(1e-9);
        let frames = self.counters.frames - self.hb_frames;
        let hb = Heartbeat {
            uptime: now.since(self.started),
            status: self.overall(now),
            symbols: self.config.symbols.len(),
            synced_books: self
                .market
                .book_ids()
                .filter(|b| self.market.book(*b).state() == BookState::Synced)
                .count(),
            frames_per_s: frames as f64 / elapsed,
            reconnects: self.reconnects(),
            loop_lag_max: self.loop_lag_max,
        };
        self.hb_frames = self.counters.frames;
        self.hb_at = now;
        self.loop_lag_max = Duration::ZERO;
        self.next_heartbeat = now + Duration::from_millis(self.config.heartbeat_interval_ms);
        self.outputs.push_back(Output::Heartbeat(hb));
    }
}

/// A stream is stale when it has been silent for many of its push intervals (Bybit: level 1
/// every 10 ms, 50 every 20 ms, 200 every 100 ms, 1000 every 200 ms).
fn stale_after(depth: usize) -> Duration {
    let push_ms = match depth {
        1 => 10,
        0..=50 => 20,
        51..=200 => 100,
        _ => 200,
    };
    Duration::from_millis((push_ms * 100).max(5_000))
}

fn mark(market: &Market, depth: u16, symbol: &str) -> Option<crate::Dec> {
    let id = market.book_id(&format!("orderbook.{depth}.{symbol}"))?;
    market.book(id).mid().ok()
}

pub fn link_name(id: LinkId) -> String {
    format!("link.{}", id.0)
}

/// Splits the topics into links whose `args` stay under Bybit's per-connection limit.
fn pack_links(config: &EngineConfig, topics: Vec<String>) -> Result<Vec<Link>, ConfigError> {
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    let mut chars = 0;
    for t in topics {
        let cost = t.len() + 3;
        if chars + cost > ARGS_CHARS_PER_LINK_MAX && !groups.last().is_some_and(Vec::is_empty) {
            groups.push(Vec::new());
            chars = 0;
        }
        chars += cost;
        groups.last_mut().expect("one group at least").push(t);
    }
    if groups.len() > LINKS_MAX {
        return Err(ConfigError(format!(
            "more than {LINKS_MAX} connections would be needed"
        )));
    }
    let mut link_cfg = config.link.clone();
    link_cfg.url = config.ws_url.clone();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| Link::new(LinkId(i as u32), link_cfg.clone(), g))
        .collect())
}
