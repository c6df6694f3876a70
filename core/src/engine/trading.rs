//! Trading (a time-driven machine): the supervised signal job, the work each cycle hands to the
//! pool, the netting of what the strategies say per symbol, and the order machine that every
//! decision goes through, on paper as live: on paper its requests are answered here by the
//! paper venue walking the engine's own books; live they go to the runtime to sign and send.
//!
//! It reads market state (books and series, by their dense ids) and owns its own: the job, the
//! broker (positions and risk), the order machine, the paper venue and the gate on the store's
//! backlog. An order is never placed from a book that is not synced, nor while orders wait for
//! the store to make them durable.

use std::collections::VecDeque;
use std::sync::Arc;

use super::health::Status;
use super::io::StoreWrite;
use super::io::{Event, JobId, Notice, Severity};
use super::supervisor::{Job, JobConfig, JobOutput, JobState};
use crate::decimal::Dec;
use crate::decimal::Level;
use crate::market::{BookId, Market, SeriesId};
use crate::rng::Rng;
use crate::time::Time;
pub use crate::trading::broker::Steps;
use crate::trading::broker::{Broker, BrokerConfig, Fill, Position};
use crate::trading::compute::{BookView, Cycle, StrategyRun, Work, WorkResult};
use crate::trading::orders::{
    ExecRecord, OrderRecord, Orders, OrdersConfig, OrdersOutput, Plan, RateLimit, Refused, Request,
};
use crate::trading::paper::{PaperBook, PaperVenue};
use crate::trading::strategy::{
    Action, Candle, OpenOrder, SharedStrategy, Signal, StrategyConfig, SymbolInput, Trade,
};
use crate::wire::private::Side;

/// Levels of each side a paper order may walk.
pub const ORDER_BOOK_LEVELS_MAX: usize = 200;

/// How often orders resting on the paper venue are checked against the books.
pub const PAPER_MATCH_EVERY_MS: u64 = 100;

/// Rounds of paper answers in one wake-up (an answer may ask for a look-up, which is answered in
/// the next round); what is left waits for the next millisecond.
pub const PAPER_ROUNDS_MAX: usize = 16;

/// Closed candles kept for strategies with these warm-ups: four warm-ups of the longest, at
/// least [`STRATEGY_CANDLES_MIN`], at most what a series holds.
pub fn candles_to_keep(warmups: impl Iterator<Item = usize>) -> usize {
    warmups.max().unwrap_or(0).saturating_mul(4).clamp(
        STRATEGY_CANDLES_MIN,
        crate::market::kline::CLOSED_CANDLES_MAX_DEFAULT,
    )
}

/// The signal cycle's book statistics.
pub const SIGNAL_JOB: JobId = JobId(0);
/// Strategy `i` runs as job `STRATEGY_JOB_FIRST + i`.
pub const STRATEGY_JOB_FIRST: u32 = 16;
/// Strategies one engine runs.
pub const STRATEGIES_MAX: usize = 64;
/// Closed candles a strategy's window keeps at least, whatever its warm-up.
pub const STRATEGY_CANDLES_MIN: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct TradingConfig {
    pub signal_job: JobConfig,
    /// Levels of each book the signal cycle sees.
    pub signal_levels: usize,
    pub strategy: StrategyConfig,
    /// Strategies beside the configured built-ins (a library user's own).
    pub strategies: Vec<SharedStrategy>,
    /// Failures in a row (panics, overruns) after which a strategy is disabled.
    pub strategy_failures_max: u32,
    /// Call every strategy when a candle closes, as well as on its schedule.
    pub strategies_on_close: bool,
    /// Turn signals into orders.
    pub auto_execute: bool,
    pub broker: BrokerConfig,
    /// The next orderLinkId's sequence number (past every one the store holds).
    pub orders_next_seq: u64,
    /// The order machine's settings (its defaults when `None`).
    pub orders: Option<OrdersConfig>,
    /// Orders are answered by the paper venue against the engine's books; when false they go
    /// to the runtime to sign and send to the venue.
    pub paper: bool,
}

/// One traded symbol: where its book and its candles live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub symbol: String,
    pub book: BookId,
    pub series: Option<SeriesId>,
    /// The venue's lot step, price tick and smallest order, once pre-flight has read them.
    pub steps: Steps,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TradingOutput {
    Compute {
        job: JobId,
        run: u64,
        work: Work,
    },
    /// Strategy `slot`'s health changed (or its counters did).
    StrategyHealth {
        slot: usize,
        name: String,
        status: Status,
        error: Option<String>,
        detail: String,
    },
    Event(Event),
    Notice(Notice),
    /// The signal job's health changed.
    Health {
        status: Status,
        error: Option<String>,
    },
    /// A private request for the runtime to sign and send.
    Private(Request),
    /// A write for the store; an order intent answers with `durable`.
    Store(StoreWrite),
    /// Live trading halted (the store failed, the venue refused our keys, look-ups kept
    /// failing): nothing new is sent until a restart.
    Halted(String),
}

pub struct Trading {
    config: TradingConfig,
    instruments: Vec<Instrument>,
    signals: Job,
    slots: Vec<Slot>,
    /// Each strategy's latest view per symbol (its strongest in its latest answer): a symbol's
    /// decision is taken over every strategy's, so two that disagree do not each trade their
    /// own way in turn. An answer replaces its strategy's views; a failed call withdraws them.
    views: Vec<crate::FastMap<String, Signal>>,
    /// Each instrument's closed candles as strategies see them, kept up to date by appending.
    windows: Vec<Option<CandleWindow>>,
    /// The inputs built for a cycle, shared by every strategy that runs at the same instant on
    /// the same market and account (a frame, an order or a fill in between changes what they
    /// see).
    inputs: Option<([u64; 4], Arc<Vec<SymbolInput>>)>,
    broker: Broker,
    orders: Option<Orders>,
    /// On paper: the venue that answers the order machine, and its requests waiting for a
    /// book (answered at the next wake-up, which `paper_at` asks for).
    paper: Option<PaperVenue>,
    paper_queue: VecDeque<Request>,
    paper_at: Option<Time>,
    /// The venue's wallet at the latest reconciliation.
    wallet: Option<crate::wire::private::Wallet>,
    store_backlog: usize,
    /// The exit's cancel-all was asked for: the halt that follows is the plan, not a fault.
    exiting: bool,
    outputs: VecDeque<TradingOutput>,
}

impl Trading {
    pub fn new(config: TradingConfig, instruments: Vec<Instrument>, now: Time) -> Self {
        let slots = Self::slots(&config, now);
        Trading {
            signals: Job::new(config.signal_job.clone(), now),
            views: vec![crate::FastMap::default(); slots.len()],
            slots,
            windows: vec![None; instruments.len()],
            inputs: None,
            broker: Broker::new(config.broker.clone()),
            orders: config.auto_execute.then(|| {
                let c = config.orders.clone().unwrap_or_default();
                Orders::new(c, config.orders_next_seq)
            }),
            paper: (config.auto_execute && config.paper)
                .then(|| PaperVenue::new(config.broker.fee_bps, config.broker.slippage_bps)),
            paper_queue: VecDeque::new(),
            paper_at: None,
            config,
            instruments,
            wallet: None,
            store_backlog: 0,
            exiting: false,
            outputs: VecDeque::new(),
        }
    }

    fn slots(config: &TradingConfig, now: Time) -> Vec<Slot> {
        let job = &config.signal_job;
        config
            .strategy
            .strategies()
            .into_iter()
            .chain(config.strategies.iter().cloned())
            .take(STRATEGIES_MAX)
            .map(|s| {
                Slot::new(
                    s,
                    job.every_ms,
                    job.deadline_ms,
                    config.strategy_failures_max,
                    now,
                )
            })
            .collect()
    }

    // ----- getters -----

    pub fn signal_job(&self) -> &Job {
        &self.signals
    }

    /// Every strategy's slot: its name, counters and whether it was disabled.
    pub fn strategy_slots(&self) -> &[Slot] {
        &self.slots
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The order machine, when signals become orders.
    pub fn orders(&self) -> Option<&Orders> {
        self.orders.as_ref()
    }

    /// The paper venue, when trading on paper.
    pub fn paper(&self) -> Option<&PaperVenue> {
        self.paper.as_ref()
    }

    /// The venue's wallet at the latest reconciliation (live only).
    pub fn wallet(&self) -> Option<&crate::wire::private::Wallet> {
        self.wallet.as_ref()
    }

    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// The mark of `symbol`: the mid of its synced book, if it has one.
    pub fn mark(&self, market: &Market, symbol: &str) -> Option<Dec> {
        let i = self.instruments.iter().find(|i| i.symbol == symbol)?;
        market.book(i.book).mid().ok()
    }

    // ----- inputs -----

    /// The market is flowing: the signal job's first run is one interval from now (a job
    /// waiting on its schedule is healthy).
    pub fn start(&mut self, now: Time) {
        self.signals = Job::new(self.config.signal_job.clone(), now);
        self.slots = Self::slots(&self.config, now);
        self.health(Status::Running, None);
        let mut events = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            events.push((
                i,
                SlotEvent::Health {
                    status: Status::Running,
                    error: None,
                    detail: format!("{}: waiting for its first call", slot.name()),
                },
            ));
        }
        for (i, e) in events {
            self.on_slot_event(now, i, e, None, None);
        }
    }

    pub fn set_steps(&mut self, i: usize, steps: Steps) {
        if let Some(x) = self.instruments.get_mut(i) {
            x.steps = steps;
        }
    }

    pub fn restore_position(&mut self, p: Position) {
        self.broker.restore_position(p);
    }

    /// An order the store holds without a final state: looked up before anything new is sent.
    pub fn resume_order(&mut self, now: Time, rec: OrderRecord, execs: Vec<ExecRecord>) {
        if let Some(o) = self.orders.as_mut() {
            o.resume(now, rec, execs);
        }
    }

    pub fn remember_fills(
        &mut self,
        ids: impl IntoIterator<Item = String>,
        newest_ms: Option<u64>,
    ) {
        if let Some(o) = self.orders.as_mut() {
            o.remember_execs(ids, newest_ms);
        }
    }

    /// The store wrote an order's intent: it may be sent.
    pub fn durable(&mut self, now: Time, link_id: &str) {
        if let Some(o) = self.orders.as_mut() {
            o.durable(now, link_id);
        }
        self.drain_orders(now);
    }

    /// The store failed a write: live trading halts.
    pub fn store_failed(&mut self, now: Time, error: &str) {
        if let Some(o) = self.orders.as_mut() {
            o.store_failed(error);
        }
        self.drain_orders(now);
    }

    pub fn private_answer(
        &mut self,
        now: Time,
        id: u64,
        status: u16,
        body: &str,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        if let Some(o) = self.orders.as_mut() {
            o.handle_answer(now, id, status, body, wall_ms, limit);
        }
        self.drain_orders(now);
    }

    pub fn private_error(&mut self, now: Time, id: u64, error: &str) {
        if let Some(o) = self.orders.as_mut() {
            o.handle_error(now, id, error);
        }
        self.drain_orders(now);
    }

    /// At exit: cancel-all for every symbol at the venue. False when there is nothing to
    /// cancel: not trading, or on paper with nothing resting.
    pub fn cancel_on_exit(&mut self, now: Time) -> bool {
        let symbols: Vec<String> = self.instruments.iter().map(|i| i.symbol.clone()).collect();
        let nothing_rests = self.paper.as_ref().is_some_and(|p| p.resting() == 0);
        let Some(o) = self.orders.as_mut().filter(|_| !nothing_rests) else {
            return false;
        };
        self.exiting = true;
        o.cancel_all(now, &symbols, "shutting down");
        self.drain_orders(now);
        true
    }

    /// Cancel-alls not yet confirmed; at exit, also orders still working, so the store keeps
    /// each order's final state (after a confirmed cancel-all each is looked up at once).
    pub fn cancels_pending(&self) -> bool {
        self.orders
            .as_ref()
            .is_some_and(|o| o.cancels_pending() || (self.exiting && o.working().next().is_some()))
    }

    /// The private stream came up (reconcile, then trade) or went down (stop sending).
    pub fn set_stream(&mut self, now: Time, live: bool) {
        if let Some(o) = self.orders.as_mut() {
            o.set_stream(now, live);
        }
        self.drain_orders(now);
    }

    /// An order or execution push from the private stream.
    pub fn private_push(&mut self, now: Time, push: crate::wire::private::PrivateFrame) {
        if let Some(o) = self.orders.as_mut() {
            o.handle_push(now, push);
        }
        self.drain_orders(now);
    }

    /// The venue's clock minus ours, and the venue's time when it was read.
    pub fn set_clock(&mut self, offset_ms: i64, venue_now_ms: Option<u64>) {
        if let Some(o) = self.orders.as_mut() {
            o.set_clock_offset(offset_ms);
            o.set_venue_now(venue_now_ms);
        }
    }

    /// Orders waiting for the store; while any wait, no new order is placed.
    pub fn set_store_backlog(&mut self, pending: usize) {
        if pending > 0 && self.store_backlog == 0 {
            self.notice(
                Severity::Warn,
                format!(
                    "store is behind by {pending} orders: no new orders until they are durable"
                ),
            );
        }
        self.store_backlog = pending;
    }

    /// `usable` says whether a book may be read for trading now: fresh, on a live link.
    pub fn handle_timeout(
        &mut self,
        now: Time,
        rng: &mut Rng,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        self.signals.handle_timeout(now, rng);
        self.drain_job(now, market, usable);
        let mut events = Vec::new();
        for i in 0..self.slots.len() {
            self.slots[i].handle_timeout(now, rng, &mut events);
            for e in events.drain(..) {
                self.on_slot_event(now, i, e, Some(market), Some(usable));
            }
        }
        if let Some(o) = self.orders.as_mut() {
            o.handle_timeout(now);
        }
        self.drain_orders(now);
        self.answer_paper(now, market, usable);
    }

    /// A compute job answered: the signal cycle's statistics or a strategy's intents. Only the
    /// run a job waits for is acted on.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_compute(
        &mut self,
        now: Time,
        job: JobId,
        run: u64,
        result: Result<WorkResult, String>,
        rng: &mut Rng,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        if job == SIGNAL_JOB {
            let ok = result.as_ref().map(|_| ()).map_err(Clone::clone);
            let current =
                matches!(self.signals.state(), JobState::Running { run: g, .. } if g == run);
            self.signals.handle_result(now, run, ok, rng);
            if current && let Ok(WorkResult::Signals { stats }) = result {
                self.outputs
                    .push_back(TradingOutput::Event(Event::Signals(stats)));
            }
            self.drain_job(now, market, usable);
            return;
        }
        let Some(i) = job
            .0
            .checked_sub(STRATEGY_JOB_FIRST)
            .map(|i| i as usize)
            .filter(|i| *i < self.slots.len())
        else {
            return;
        };
        let (outcome, said, panicked) = match result {
            Ok(WorkResult::Said(Ok((said, dropped)))) => {
                (Ok((said.len() as u64, dropped)), said, false)
            }
            Ok(WorkResult::Said(Err(fault))) => (Err(fault.to_string()), Vec::new(), true),
            Ok(_) => (Err("not a strategy's answer".into()), Vec::new(), false),
            // The pool caught a panic outside the strategy's own guard.
            Err(e) => (Err(e), Vec::new(), true),
        };
        let mut events = Vec::new();
        let current = self.slots[i].handle_result(now, run, outcome, panicked, rng, &mut events);
        for e in events {
            self.on_slot_event(now, i, e, Some(market), Some(usable));
        }
        // An answer replaces its strategy's views (a failure withdraws them at its health event).
        if current {
            self.views[i].clear();
            for v in decided_views(&said) {
                self.views[i].insert(v.symbol.clone(), v);
            }
        }
        if current && !said.is_empty() {
            if self.config.auto_execute {
                let views = self.netted(&said);
                self.execute(now, market, views, &said, usable);
            }
            self.outputs
                .push_back(TradingOutput::Event(Event::StrategySignals(said)));
        }
    }

    /// A candle closed: with `strategies_on_close`, every strategy is called now, so what it
    /// sees is the market as of that close (the same in a live run and a backtest).
    pub fn candle_closed(&mut self, now: Time) {
        if self.config.strategies_on_close {
            for s in &mut self.slots {
                s.call_now(now);
            }
        }
    }

    /// A signal from outside (the signals API): the same checks and order machine as a
    /// strategy's.
    pub fn external_signal(
        &mut self,
        now: Time,
        market: &Market,
        signal: Signal,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        if self.config.auto_execute {
            // Not netted with the strategies': a signal sent from outside is acted on as sent.
            let one = std::slice::from_ref(&signal);
            self.execute(now, market, decided_views(one), one, usable);
        }
        self.outputs
            .push_back(TradingOutput::Event(Event::StrategySignals(vec![signal])));
    }

    // ----- outputs -----

    /// The next output; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<TradingOutput> {
        self.outputs.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.signals.poll_timeout(),
            self.orders.as_ref().and_then(Orders::poll_timeout),
            self.paper_at,
        ]
        .into_iter()
        .chain(self.slots.iter().map(Slot::poll_timeout))
        .flatten()
        .min()
    }

    // ----- internals -----

    fn drain_job(&mut self, now: Time, market: &Market, usable: &dyn Fn(BookId) -> bool) {
        while let Some(o) = self.signals.poll_output() {
            self.on_job_output(now, o, market, usable);
        }
    }

    fn on_job_output(
        &mut self,
        _now: Time,
        o: JobOutput,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        match o {
            JobOutput::Run { run } => {
                let work = self.signal_work(market, usable);
                self.outputs.push_back(TradingOutput::Compute {
                    job: SIGNAL_JOB,
                    run,
                    work,
                });
            }
            JobOutput::Succeeded { .. } => {
                if !self.signals.is_crashed() {
                    self.health(Status::Running, None);
                }
            }
            JobOutput::Failed {
                error,
                consecutive,
                retry_in,
                ..
            } => {
                let status = if self.signals.is_crashed() {
                    Status::Crashed
                } else {
                    Status::Degraded
                };
                self.health(status, Some(error.clone()));
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
                self.health(Status::Crashed, None);
                self.notice(
                    Severity::Error,
                    format!("signal cycle crashed after {consecutive} failures; still retrying"),
                );
            }
            JobOutput::Recovered => {
                self.health(Status::Running, None);
                self.notice(Severity::Info, "signal cycle recovered".into());
            }
        }
    }

    fn signal_work(&self, market: &Market, usable: &dyn Fn(BookId) -> bool) -> Work {
        let n = self.config.signal_levels;
        let views = self
            .instruments
            .iter()
            .filter(|i| usable(i.book))
            .filter_map(|inst| {
                let b = market.book(inst.book);
                let (bids, asks) = (b.top_bids(n).ok()?, b.top_asks(n).ok()?);
                Some(BookView {
                    symbol: inst.symbol.clone(),
                    bids: bids.collect(),
                    asks: asks.collect(),
                })
            })
            .collect();
        Work::SignalCycle(Cycle { views })
    }

    fn health(&mut self, status: Status, error: Option<String>) {
        self.outputs
            .push_back(TradingOutput::Health { status, error });
    }

    fn notice(&mut self, level: Severity, text: String) {
        self.outputs
            .push_back(TradingOutput::Notice(Notice { level, text }));
    }
}

mod decide;
mod execute;
mod slots;
mod strategies;
mod window;

pub use decide::decide;
use decide::{decided_views, reconcile_positions};
use slots::SlotEvent;
pub use slots::{Slot, SlotCounters};
use window::CandleWindow;
