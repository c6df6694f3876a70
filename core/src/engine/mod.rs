//! The engine (a time-driven machine): every machine of one venue composed behind one face.
//!
//! ```text
//! new(config, now) -> handle_input(now, input) / handle_timeout(now) -> poll_output() until None
//!                                                                     -> poll_timeout()
//! ```
//! The engine is a router: it owns its child machines and passes each input to the one that owns
//! it, and each child's outputs to where they go. It holds no concern's state itself:
//! - links ([`link`]), packed by [`links`], under one shared connect [`budget`];
//! - the REST [`scheduler`] (rate limit, retries, the 403 penalty), shared by
//!   [`preflight`], [`history`] and [`book_sync`];
//! - market state ([`crate::market::Market`]), fed by frames;
//! - [`trading`]: the supervised signal job and the broker;
//! - [`health`] and the [`status`] monitor (health refresh, heartbeat, top-of-book throttle).

pub mod backfill;
pub mod backoff;
pub mod book_sync;
pub mod budget;
mod config;
pub mod health;
pub mod history;
mod io;
pub mod limiter;
pub mod link;
mod links;
pub mod preflight;
mod route;
pub mod scheduler;
pub mod status;
pub mod supervisor;
pub mod trading;

use std::collections::VecDeque;

use crate::market::{BookId, Market};
use crate::rng::Rng;
use crate::time::Time;
use crate::trading::broker::{Broker, Position};
use crate::wire::topic::Interval;

use book_sync::BookSync;
use budget::ConnectBudget;
use health::{ComponentId, Health, Overall, Status};
use history::History;
use link::{Link, LinkConfig, LinkId};
use preflight::Preflight;
use scheduler::Scheduler;
use status::{StatusConfig, StatusMonitor};
use supervisor::Job;
use trading::{Instrument, Steps, Trading, TradingConfig};

pub use config::{Category, ConfigError, EngineConfig};
pub use io::{Event, Heartbeat, Input, JobId, Notice, Output, Severity, StoreWrite};
pub use links::{ARGS_CHARS_PER_LINK_MAX, LINKS_MAX, link_name};

pub use trading::{SIGNAL_JOB, STRATEGY_JOB_FIRST};
/// History merges big enough to leave the engine.
pub const MERGE_JOB: JobId = JobId(1);
/// How long a live engine waits at exit for the venue to confirm its cancel-alls.
pub const CANCEL_ON_EXIT_MS_MAX: u64 = 3_000;
/// At most one notice about refused frames per this interval (they are counted regardless).
pub const BAD_FRAME_NOTICE_INTERVAL_MS: u64 = 10_000;
/// Passes over the children per `handle_*`: each pass only moves what is queued, and no chain of
/// children is longer than this.
const DRAIN_PASSES_MAX: usize = 8;

/// What a REST request was for, so its answer goes back to the machine that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Preflight(preflight::Ask),
    Snapshot { book: BookId, attempt: u32 },
    History(history::Ask),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preflight,
    Running,
    Stopped,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub frames: u64,
    pub stale_conn_frames: u64,
    pub consumer_drops: u64,
    /// Private-stream frames refused unread.
    pub private_bad: u64,
}

pub struct Engine {
    config: EngineConfig,
    phase: Phase,
    rng: Rng,
    market: Market,
    links: Vec<Link>,
    budget: ConnectBudget,
    sched: Scheduler<Purpose>,
    preflight: Preflight,
    book_sync: BookSync,
    history: History,
    trading: Trading,
    health: Health,
    status: StatusMonitor,
    announced: bool,
    /// The wall clock at receipt of the latest pre-flight answer, for the clock skew.
    pending_wall_ms: Option<u64>,
    /// The private stream's link, when trading live with one.
    private_link: Option<LinkId>,
    /// Shutting down once the venue confirmed the exit's cancel-alls, or at this time.
    stopping_until: Option<Time>,
    last_bad_notice: Option<Time>,
    outputs: VecDeque<Output>,
    counters: EngineCounters,
}

impl Engine {
    pub fn new(config: EngineConfig, now: Time) -> Result<Engine, ConfigError> {
        config.validate()?;
        let links = links::pack_links(&config, config.topics()?)?;
        let mut market = Market::new(config.market.clone());
        let mut book_sync = BookSync::new(config.repair_backoff);
        let mut instruments = Vec::with_capacity(config.symbols.len());
        for symbol in &config.symbols {
            // Every id is handed out here, once: nothing later finds a book by its topic.
            let topic = config.book_topic(symbol);
            let too_many = || ConfigError(format!("more than {} topics", config.market.topics_max));
            let book = market
                .add_book(&topic, symbol, config.book_depth)
                .ok_or_else(too_many)?;
            let link = links
                .iter()
                .find(|l| l.carries(&topic))
                .map(Link::id)
                .ok_or_else(|| ConfigError(format!("{topic} is on no link")))?;
            book_sync.register(book, &topic, link, config.book_depth);
            let series = match config.kline_interval {
                Some(i) => Some(market.series_for(symbol, i).ok_or_else(too_many)?),
                None => None,
            };
            instruments.push(Instrument {
                symbol: symbol.clone(),
                book,
                series,
                steps: Steps::default(),
            });
        }
        let mut links = links;
        let mut orders = config.orders.clone().unwrap_or_default();
        let mut private_link = None;
        if let (false, true, Some(url)) = (
            config.paper,
            config.auto_execute,
            config.private_url.as_ref(),
        ) {
            // The private stream: authenticated, under the same connection budget; orders wait
            // for it and for the reconciliation it starts.
            let id = LinkId(links.len() as u32);
            let cfg = LinkConfig {
                url: url.clone(),
                auth: true,
                ..config.link.clone()
            };
            links.push(Link::new(id, cfg, vec!["order".into(), "execution".into()]));
            orders.stream = true;
            private_link = Some(id);
        }
        let mut health = Health::default();
        for l in &links {
            health.register(ComponentId::Link(l.id()), true, now);
        }
        health.register(ComponentId::Rest, false, now);
        health.register(ComponentId::Market, false, now);
        health.register(ComponentId::SignalJob, false, now);
        health.register(ComponentId::Consumers, false, now);
        health.set(ComponentId::Consumers, Status::Running, now);
        health.set(ComponentId::Rest, Status::Starting, now);
        if config.auto_execute {
            // A halted order machine takes the bot down: it no longer does its job.
            health.register(ComponentId::Execution, true, now);
            health.set(ComponentId::Execution, Status::Running, now);
        }
        let trading = TradingConfig {
            signal_job: config.signal_job.clone(),
            signal_levels: config.signal_levels,
            strategy: config.strategy.clone(),
            strategies: config.strategies.clone(),
            strategy_failures_max: config.strategy_failures_max,
            strategies_on_close: config.strategies_on_close,
            auto_execute: config.auto_execute,
            broker: config.broker.clone(),
            orders_next_seq: config.orders_next_seq,
            orders: Some(orders),
            paper: config.paper,
        };
        let status = StatusConfig {
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            health_tick_ms: config.health_tick_ms,
            down_after_ms: config.down_after_ms,
            book_event_interval_ms: config.book_event_interval_ms,
        };
        let mut e = Engine {
            rng: Rng::new(config.seed),
            market,
            budget: ConnectBudget::new(config.budget),
            sched: Scheduler::new(config.rest.clone()),
            preflight: Preflight::new(config.category, config.symbols.clone()),
            book_sync,
            history: History::new(config.history.clone(), config.category),
            trading: Trading::new(trading, instruments, now),
            phase: Phase::Preflight,
            links,
            health,
            status: StatusMonitor::new(status, now),
            announced: false,
            pending_wall_ms: None,
            private_link,
            stopping_until: None,
            last_bad_notice: None,
            outputs: VecDeque::new(),
            counters: EngineCounters::default(),
            config,
        };
        if e.config.preflight {
            e.preflight.start();
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
        self.status.overall(&self.health, now)
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
        self.trading.signal_job()
    }

    /// Every strategy's slot: name, counters, and why it was disabled if it was.
    pub fn strategy_slots(&self) -> &[trading::Slot] {
        self.trading.strategy_slots()
    }

    pub fn book_sync(&self) -> &BookSync {
        &self.book_sync
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn budget(&self) -> &ConnectBudget {
        &self.budget
    }

    /// The live order machine, when trading live.
    pub fn orders(&self) -> Option<&crate::trading::orders::Orders> {
        self.trading.orders()
    }

    /// The paper venue, when trading on paper.
    pub fn paper(&self) -> Option<&crate::trading::paper::PaperVenue> {
        self.trading.paper()
    }

    /// The venue's wallet at the latest reconciliation (live only).
    pub fn wallet(&self) -> Option<&crate::wire::private::Wallet> {
        self.trading.wallet()
    }

    pub fn clock_skew_ms(&self) -> Option<i64> {
        self.preflight.clock_skew_ms()
    }

    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn broker(&self) -> &Broker {
        self.trading.broker()
    }

    /// The mark of `symbol`: the mid of its synced book, if it has one.
    pub fn mark(&self, symbol: &str) -> Option<crate::Dec> {
        self.trading.mark(&self.market, symbol)
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

    // ----- mutators (before the first input) -----

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

    /// Restores a position from the store before trading starts.
    pub fn restore_position(&mut self, p: Position) {
        self.trading.restore_position(p);
    }

    /// A live order the store holds without a final state: resolved with the venue before any
    /// new order is sent.
    pub fn resume_order(
        &mut self,
        now: Time,
        rec: crate::trading::orders::OrderRecord,
        execs: Vec<crate::trading::orders::ExecRecord>,
    ) {
        self.trading.resume_order(now, rec, execs);
    }

    /// Live fills the store holds: never applied twice; reconciliation reads from the newest.
    pub fn remember_fills(
        &mut self,
        ids: impl IntoIterator<Item = String>,
        newest_ms: Option<u64>,
    ) {
        self.trading.remember_fills(ids, newest_ms);
    }

    // ----- inputs -----

    pub fn handle_input(&mut self, now: Time, input: Input<'_>) {
        let rng = &mut self.rng;
        match input {
            Input::WsConnected { link, conn } => {
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_connected(now, conn);
                }
            }
            Input::WsConnectFailed { link, conn, error } => {
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_connect_failed(now, conn, rng, error);
                }
            }
            Input::WsClosed { link, conn, reason } => {
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_closed(now, conn, rng, reason);
                }
            }
            Input::WsWriteOverflow { link, conn } => {
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
                self.sched.handle_response(now, id, status, body, rng);
            }
            Input::HttpError { id, error } => self.sched.handle_error(now, id, error, rng),
            Input::ComputeDone { job, run, result } => match job {
                MERGE_JOB => self
                    .history
                    .handle_compute(now, run, result, &mut self.market),
                job => {
                    let usable = usable_books(now, &self.market, &self.book_sync, &self.links);
                    self.trading
                        .handle_compute(now, job, run, result, rng, &self.market, &usable)
                }
            },
            Input::ConsumerLag { dropped } => {
                self.counters.consumer_drops += dropped;
                self.health
                    .set(ComponentId::Consumers, Status::Degraded, now);
                self.health.error(
                    ComponentId::Consumers,
                    format!("{} events dropped in all", self.counters.consumer_drops),
                    now,
                );
            }
            Input::LoopLag { lag } => self.status.note_loop_lag(lag),
            Input::StoreBacklog { pending } => self.trading.set_store_backlog(pending),
            Input::PrivateAnswer {
                id,
                status,
                body,
                wall_ms,
                limit,
            } => self
                .trading
                .private_answer(now, id, status, body, wall_ms, limit),
            Input::PrivateError { id, error } => {
                self.trading.private_error(now, id, &format!("{error:?}"))
            }
            Input::Durable { link_id } => self.trading.durable(now, &link_id),
            Input::StoreFailed { error } => self.trading.store_failed(now, &error),
            Input::Signal(signal) => {
                if self.phase == Phase::Running {
                    let usable = usable_books(now, &self.market, &self.book_sync, &self.links);
                    self.trading
                        .external_signal(now, &self.market, signal, &usable);
                } else {
                    self.notice(
                        Severity::Warn,
                        format!(
                            "signal for {} from {} not acted on: the engine is not trading yet",
                            signal.symbol, signal.strategy
                        ),
                    );
                }
            }
            Input::Shutdown => self.begin_shutdown(now),
        }
        self.drain_children(now);
        self.finish_stopping(now);
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
            {
                let usable = usable_books(now, &self.market, &self.book_sync, &self.links);
                self.trading
                    .handle_timeout(now, &mut self.rng, &self.market, &usable);
            }
            let links = &self.links;
            self.book_sync.handle_timeout(now, &mut self.rng, |l| {
                links.get(l.0 as usize).is_some_and(Link::is_live)
            });
            self.history.handle_timeout(now, &mut self.market);
        }
        if self.status.health_due(now) {
            let (book_sync, links) = (&self.book_sync, &self.links);
            let on_live_link = |book| on_live_link(book_sync, links, book);
            self.status.refresh(
                now,
                &mut self.health,
                &self.market,
                &self.links,
                &on_live_link,
                self.sched.paused_until(),
                self.counters.consumer_drops,
            );
        }
        self.finish_stopping(now);
        if self.status.heartbeat_due(now) {
            let reconnects = self.reconnects();
            let hb = self.status.heartbeat(
                now,
                &self.health,
                &self.market,
                self.counters.frames,
                reconnects,
            );
            self.outputs.push_back(Output::Heartbeat(hb));
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
        let running = self.phase == Phase::Running;
        let children = [
            self.sched.poll_timeout(),
            running.then(|| self.trading.poll_timeout()).flatten(),
            running.then(|| self.book_sync.poll_timeout()).flatten(),
            running.then(|| self.history.poll_timeout()).flatten(),
        ];
        self.links
            .iter()
            .filter_map(Link::poll_timeout)
            .chain(children.into_iter().flatten())
            .chain(self.stopping_until)
            .fold(self.status.poll_timeout(), Time::min)
            .into()
    }

    // ----- routing -----

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
        let topics: usize = self.links.iter().map(|l| l.subscriptions().len()).sum();
        self.notice(
            Severity::Info,
            format!(
                "connecting {} link(s) for {topics} topic(s) to {}",
                self.links.len(),
                crate::redact::redact_url(&self.config.ws_url)
            ),
        );
        for l in &mut self.links {
            l.start(now);
            // Connect now rather than on the next timer turn; the budget still decides.
            l.handle_timeout(now, &mut self.budget, &mut self.rng);
            self.health
                .set(ComponentId::Link(l.id()), Status::Starting, now);
        }
        if let (Some(interval), n) = (self.config.kline_interval, self.config.warmup_candles)
            && n > 0
        {
            for symbol in &self.config.symbols {
                self.history.warm_up(symbol, interval, n);
            }
        }
        self.trading.start(now);
    }

    /// Live with `cancel_on_exit`: every symbol's open orders are cancelled at the venue first,
    /// and the engine stops once the venue has confirmed (or after
    /// [`CANCEL_ON_EXIT_MS_MAX`]). Otherwise it stops at once.
    fn begin_shutdown(&mut self, now: Time) {
        if self.stopping_until.is_some() {
            return;
        }
        if self.phase == Phase::Running
            && self.config.cancel_on_exit
            && self.trading.cancel_on_exit(now)
        {
            self.stopping_until =
                Some(now + std::time::Duration::from_millis(CANCEL_ON_EXIT_MS_MAX));
            self.notice(
                Severity::Info,
                "shutting down: cancelling open orders at the venue first".into(),
            );
            return;
        }
        self.shutdown(now);
    }

    fn finish_stopping(&mut self, now: Time) {
        if let Some(until) = self.stopping_until
            && self.phase == Phase::Running
            && (now >= until || !self.trading.cancels_pending())
        {
            if self.trading.cancels_pending() {
                self.notice(
                    Severity::Error,
                    "shutting down before the venue confirmed every cancel-all and open order"
                        .into(),
                );
            }
            self.shutdown(now);
            self.drain_children(now);
        }
    }

    fn shutdown(&mut self, now: Time) {
        for l in &mut self.links {
            l.stop();
        }
        self.drain_links(now);
        self.phase = Phase::Stopped;
        for l in &self.links {
            self.health
                .set(ComponentId::Link(l.id()), Status::Stopped, now);
        }
        self.outputs.push_back(Output::Stopped);
    }

    fn fail(&mut self, message: String) {
        if self.phase == Phase::Failed {
            return;
        }
        self.phase = Phase::Failed;
        self.outputs.push_back(Output::Fatal(message));
    }
}

/// Whether a book may be read for trading at `now`: it had a frame within its stale bound (the
/// same bound /health uses) and its link is live. Synced is checked where it is read.
fn usable_books<'a>(
    now: Time,
    market: &'a Market,
    book_sync: &'a BookSync,
    links: &'a [Link],
) -> impl Fn(BookId) -> bool + 'a {
    move |book| {
        let fresh = market
            .book_last_frame_at(book)
            .is_some_and(|t| now.since(t) <= status::stale_after(market.book(book).depth()));
        fresh && on_live_link(book_sync, links, book)
    }
}

/// Whether the link that carries `book` is live.
fn on_live_link(book_sync: &BookSync, links: &[Link], book: BookId) -> bool {
    book_sync
        .link_of(book)
        .and_then(|l| links.get(l.0 as usize))
        .is_some_and(Link::is_live)
}
