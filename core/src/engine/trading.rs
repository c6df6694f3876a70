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

use super::health::Status;
use super::io::StoreWrite;
use super::io::{Event, Notice, Severity};
use super::supervisor::{Job, JobConfig, JobOutput, JobState};
use crate::decimal::Dec;
use crate::decimal::Level;
use crate::market::{BookId, Market, SeriesId};
use crate::rng::Rng;
use crate::time::Time;
use crate::trading::broker::{Broker, BrokerConfig, Fill, Position};
use crate::trading::compute::{BookView, Cycle, Work, WorkResult};
use crate::trading::orders::{
    ExecRecord, OrderRecord, Orders, OrdersConfig, OrdersOutput, Plan, RateLimit, Refused, Request,
};
use crate::trading::paper::{PaperBook, PaperVenue};
use crate::trading::strategy::{Signal, StrategyConfig, StrategyInput};
use crate::wire::private::Side;

/// Levels of each side a paper order may walk.
pub const ORDER_BOOK_LEVELS_MAX: usize = 200;

/// Rounds of paper answers in one wake-up (an answer may ask for a look-up, which is answered in
/// the next round); what is left waits for the next millisecond.
pub const PAPER_ROUNDS_MAX: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct TradingConfig {
    pub signal_job: JobConfig,
    /// Levels of each book the signal cycle sees.
    pub signal_levels: usize,
    pub strategy: StrategyConfig,
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
    /// The venue's lot step, once pre-flight has read it.
    pub qty_step: Option<Dec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TradingOutput {
    Compute {
        run: u64,
        work: Work,
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
    outputs: VecDeque<TradingOutput>,
}

impl Trading {
    pub fn new(config: TradingConfig, instruments: Vec<Instrument>, now: Time) -> Self {
        Trading {
            signals: Job::new(config.signal_job.clone(), now),
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
            outputs: VecDeque::new(),
        }
    }

    // ----- getters -----

    pub fn signal_job(&self) -> &Job {
        &self.signals
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
        self.health(Status::Running, None);
    }

    pub fn set_qty_step(&mut self, i: usize, step: Option<Dec>) {
        if let Some(x) = self.instruments.get_mut(i) {
            x.qty_step = step;
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

    /// At exit: cancel-all for every symbol at the venue. False when not trading live (nothing
    /// rests on paper).
    pub fn cancel_on_exit(&mut self, now: Time) -> bool {
        let symbols: Vec<String> = self.instruments.iter().map(|i| i.symbol.clone()).collect();
        let Some(o) = self.orders.as_mut().filter(|_| self.paper.is_none()) else {
            return false;
        };
        o.cancel_all(now, &symbols, "shutting down");
        self.drain_orders(now);
        true
    }

    pub fn cancels_pending(&self) -> bool {
        self.orders.as_ref().is_some_and(Orders::cancels_pending)
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
        if let Some(o) = self.orders.as_mut() {
            o.handle_timeout(now);
        }
        self.drain_orders(now);
        self.answer_paper(now, market, usable);
    }

    /// A signal cycle answered. Only the run the job waits for is acted on.
    pub fn handle_compute(
        &mut self,
        now: Time,
        run: u64,
        result: Result<WorkResult, String>,
        rng: &mut Rng,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        let ok = result.as_ref().map(|_| ()).map_err(Clone::clone);
        let current = matches!(self.signals.state(), JobState::Running { run: g, .. } if g == run);
        self.signals.handle_result(now, run, ok, rng);
        if current && let Ok(WorkResult::Signals { stats, signals }) = result {
            self.outputs
                .push_back(TradingOutput::Event(Event::Signals(stats)));
            if !signals.is_empty() {
                if self.config.auto_execute {
                    self.execute(now, market, &signals, usable);
                }
                self.outputs
                    .push_back(TradingOutput::Event(Event::StrategySignals(signals)));
            }
        }
        self.drain_job(now, market, usable);
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
                self.outputs.push_back(TradingOutput::Compute { run, work });
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

    /// Paper-trades signals against the current books; a book that is not synced, not fresh or
    /// not on a live link is never traded against.
    fn execute(
        &mut self,
        now: Time,
        market: &Market,
        signals: &[Signal],
        usable: &dyn Fn(BookId) -> bool,
    ) {
        if self.store_backlog > 0 {
            return;
        }
        for s in &decide(signals) {
            let Some(inst) = self.instruments.iter().find(|i| i.symbol == s.symbol) else {
                continue;
            };
            if !usable(inst.book) {
                continue;
            }
            let b = market.book(inst.book);
            let (Ok(bids), Ok(asks)) = (
                b.top_bids(ORDER_BOOK_LEVELS_MAX),
                b.top_asks(ORDER_BOOK_LEVELS_MAX),
            ) else {
                continue;
            };
            let (bids, asks): (Vec<Level>, Vec<Level>) = (bids.collect(), asks.collect());
            let ts = b.last_ts().unwrap_or(0);
            let step = inst.qty_step;
            let instruments = &self.instruments;
            let marks = |sym: &str| {
                let i = instruments.iter().find(|i| i.symbol == sym)?;
                market.book(i.book).mid().ok()
            };
            if let Some(reason) = self.broker.check_risk(ts, &marks) {
                if let Some(o) = self.orders.as_mut() {
                    let symbols: Vec<String> =
                        self.instruments.iter().map(|i| i.symbol.clone()).collect();
                    o.cancel_all(now, &symbols, &format!("kill switch: {reason}"));
                }
                self.outputs.push_back(TradingOutput::Notice(Notice {
                    level: Severity::Error,
                    text: format!("kill switch: {reason}"),
                }));
                self.outputs
                    .push_back(TradingOutput::Event(Event::KillSwitch { reason }));
            }
            self.send(now, s, &bids, &asks, step, ts);
        }
    }

    /// On paper, the order machine's requests are answered here, each create against its
    /// symbol's book as it stands now (none when the book is not usable: refused, not guessed).
    fn answer_paper(&mut self, now: Time, market: &Market, usable: &dyn Fn(BookId) -> bool) {
        for _ in 0..PAPER_ROUNDS_MAX {
            if self.paper_queue.is_empty() {
                break;
            }
            let round: Vec<Request> = self.paper_queue.drain(..).collect();
            for r in round {
                let (status, body) = {
                    let Some(venue) = self.paper.as_mut() else {
                        return;
                    };
                    let instruments = &self.instruments;
                    venue.answer(&r, |symbol, side| {
                        let inst = instruments.iter().find(|i| i.symbol == symbol)?;
                        if !usable(inst.book) {
                            return None;
                        }
                        let b = market.book(inst.book);
                        let levels = match side {
                            Side::Buy => b.top_asks(ORDER_BOOK_LEVELS_MAX).ok()?.collect(),
                            Side::Sell => b.top_bids(ORDER_BOOK_LEVELS_MAX).ok()?.collect(),
                        };
                        Some(PaperBook {
                            levels,
                            ts_ms: b.last_ts().unwrap_or(0),
                        })
                    })
                };
                if let Some(o) = self.orders.as_mut() {
                    o.handle_answer(now, r.id, status, &body, 0, None);
                }
                self.drain_orders(now);
            }
        }
        // Past the bound, the rest waits a millisecond: a deadline at `now` would spin the loop.
        self.paper_at =
            (!self.paper_queue.is_empty()).then(|| now + std::time::Duration::from_millis(1));
    }

    /// A decision becomes a market order for the order machine, sized and risk-checked by the
    /// broker; it is sent once the store holds its intent.
    fn send(
        &mut self,
        now: Time,
        s: &Signal,
        bids: &[Level],
        asks: &[Level],
        step: Option<Dec>,
        ts: u64,
    ) {
        let (Some(bid), Some(ask)) = (bids.first(), asks.first()) else {
            return;
        };
        let Some((qty, verdict)) = self.broker.size_order(s, bid.px, ask.px, step) else {
            return;
        };
        if let Err(why) = verdict {
            self.notice(
                Severity::Warn,
                format!("{} order not sent: {why}", s.symbol),
            );
            return;
        }
        let Some(orders) = self.orders.as_mut() else {
            return;
        };
        let plan = Plan::market(
            s.symbol.clone(),
            s.side.into(),
            qty,
            format!("{}: {}", s.strategy, s.reason),
        );
        match orders.place(ts, plan) {
            Ok(_) => {}
            // One order per symbol at a time: the next signal sees the position it made.
            Err(Refused::Busy) => {}
            Err(r) => self.notice(
                Severity::Warn,
                format!("{} order not sent: {r:?}", s.symbol),
            ),
        }
        self.drain_orders(now);
    }

    fn drain_orders(&mut self, now: Time) {
        let Some(orders) = self.orders.as_mut() else {
            return;
        };
        while let Some(o) = orders.poll_output() {
            match o {
                OrdersOutput::Persist(rec) => self
                    .outputs
                    .push_back(TradingOutput::Store(StoreWrite::Order(rec))),
                OrdersOutput::Fill(x) => {
                    self.broker.apply_fill(&Fill::from(&x));
                    self.outputs
                        .push_back(TradingOutput::Store(StoreWrite::Fill(x)));
                }
                OrdersOutput::Request(r) if self.paper.is_some() => {
                    self.paper_queue.push_back(r);
                    self.paper_at = Some(self.paper_at.map_or(now, |t| t.min(now)));
                }
                OrdersOutput::Request(r) => self.outputs.push_back(TradingOutput::Private(r)),
                OrdersOutput::Halted(why) => {
                    self.outputs.push_back(TradingOutput::Notice(Notice {
                        level: Severity::Error,
                        text: format!("live trading halted: {why}"),
                    }));
                    self.outputs.push_back(TradingOutput::Halted(why));
                }
                OrdersOutput::VenueWallet(w) => self.wallet = Some(w),
                OrdersOutput::VenuePositions(rows) => {
                    let diffs = reconcile_positions(&mut self.broker, &rows);
                    // A position that differed from the venue's is worth a person's look.
                    for d in &diffs {
                        self.outputs.push_back(TradingOutput::Notice(Notice {
                            level: Severity::Error,
                            text: format!("reconcile: {d}"),
                        }));
                    }
                    orders.note_diffs(diffs.len() as u64);
                }
                OrdersOutput::Notice { error, text } => {
                    let level = if error {
                        Severity::Error
                    } else {
                        Severity::Info
                    };
                    self.outputs
                        .push_back(TradingOutput::Notice(Notice { level, text }));
                }
            }
        }
    }

    fn signal_work(&self, market: &Market, usable: &dyn Fn(BookId) -> bool) -> Work {
        let n = self.config.signal_levels;
        // Strategies see only symbols whose book is synced right now.
        let keep = self.config.strategy.history_needed().max(1);
        let mut views = Vec::with_capacity(self.instruments.len());
        let mut inputs = Vec::with_capacity(self.instruments.len());
        for inst in self.instruments.iter().filter(|i| usable(i.book)) {
            let b = market.book(inst.book);
            let (Ok(bids), Ok(asks)) = (b.top_bids(n), b.top_asks(n)) else {
                continue;
            };
            let view = BookView {
                symbol: inst.symbol.clone(),
                bids: bids.collect(),
                asks: asks.collect(),
            };
            if let (Some(series), Some(bid), Some(ask)) =
                (inst.series, view.bids.first(), view.asks.first())
            {
                let s = market.series(series);
                let closed: Vec<f64> = s
                    .closed()
                    .rev()
                    .take(keep)
                    .map(|c| c.bar.close.to_f64())
                    .collect();
                inputs.push(StrategyInput {
                    symbol: inst.symbol.clone(),
                    closes: closed.into_iter().rev().collect(),
                    candle_ms: s.last_closed().map_or(0, |c| c.bar.start_ms),
                    last: s.forming().map(|f| f.bar.close.to_f64()),
                    top: Some((*bid, *ask)),
                });
            }
            views.push(view);
        }
        Work::SignalCycle(Cycle {
            views,
            strategy: self.config.strategy.clone(),
            inputs,
        })
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

pub use decide::decide;
use decide::reconcile_positions;
