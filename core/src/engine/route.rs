//! Where each input and each child machine's outputs go: the engine's routing table, kept apart
//! from its face (`mod.rs`) so that each reads on its own.

use std::time::Duration;

use super::book_sync::{self, BookSyncInput, BookSyncOutput};
use super::health::{ComponentId, Status};
use super::history::HistoryOutput;
use super::link::{Link, LinkId, LinkOutput, SubState};
use super::preflight::PreflightOutput;
use super::scheduler::{RestFailure, SchedOutput};
use super::trading::{Steps, TradingOutput};
use super::{
    BAD_FRAME_NOTICE_INTERVAL_MS, DRAIN_PASSES_MAX, Engine, Event, MERGE_JOB, Output, Purpose,
    Severity, link_name,
};
use crate::market::book::{Applied, BookState, HELD_DELTAS_MAX_DEFAULT};
use crate::market::{BookId, Handled, MarketError, MarketEvent};
use crate::time::Time;
use crate::wire::rest;

impl Engine {
    fn on_rest_done(&mut self, now: Time, purpose: Purpose, result: Result<String, RestFailure>) {
        let result = result.map_err(|e| e.to_string());
        match purpose {
            Purpose::Preflight(ask) => {
                let wall = self.pending_wall_ms.take();
                self.preflight.handle_answer(ask, result, wall);
            }
            Purpose::History(ask) => self
                .history
                .handle_answer(now, ask, result, &mut self.market),
            Purpose::Snapshot { book, attempt } => {
                if !self.book_sync.expects_snapshot(book, attempt) {
                    self.book_sync.handle_snapshot_answer(book, attempt);
                    return; // an older attempt's answer
                }
                self.book_sync.handle_snapshot_answer(book, attempt);
                match result.and_then(|b| rest::parse_orderbook(&b).map_err(|e| e.to_string())) {
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

    /// Moves every child's outputs to where they go. Children may produce work for each other
    /// (a REST answer starts the links); loop until all are quiet.
    pub(super) fn drain_children(&mut self, now: Time) {
        for _ in 0..DRAIN_PASSES_MAX {
            let mut moved = self.drain_links(now);
            while let Some(o) = self.sched.poll_output() {
                moved = true;
                self.on_sched_output(now, o);
            }
            while let Some(o) = self.preflight.poll_output() {
                moved = true;
                match o {
                    PreflightOutput::Request { path, ask } => {
                        self.submit(now, path, Purpose::Preflight(ask))
                    }
                    PreflightOutput::Notice(n) => self.outputs.push_back(Output::Notice(n)),
                    PreflightOutput::Passed => {
                        for i in 0..self.config.symbols.len() {
                            let p = &self.preflight;
                            let steps = Steps {
                                qty: p.qty_step(i),
                                tick: p.tick_size(i),
                                min_qty: p.min_order_qty(i),
                            };
                            self.trading.set_steps(i, steps);
                        }
                        // Signed requests carry the venue's time, not ours.
                        if let Some(skew) = self.preflight.clock_skew_ms() {
                            self.trading.set_clock(skew, self.preflight.venue_time_ms());
                        }
                        self.health.set(ComponentId::Rest, Status::Running, now);
                        self.start_links(now);
                    }
                    PreflightOutput::Failed(m) => self.fail(m),
                }
            }
            while let Some(o) = self.book_sync.poll_output() {
                moved = true;
                self.on_book_sync_output(now, o);
            }
            while let Some(o) = self.history.poll_output() {
                moved = true;
                match o {
                    HistoryOutput::Request { path, ask } => {
                        self.submit(now, path, Purpose::History(ask))
                    }
                    HistoryOutput::Compute { run, work } => {
                        self.outputs.push_back(Output::Compute {
                            job: MERGE_JOB,
                            run,
                            work,
                        })
                    }
                    HistoryOutput::Notice(n) => self.outputs.push_back(Output::Notice(n)),
                }
            }
            while let Some(o) = self.trading.poll_output() {
                moved = true;
                match o {
                    TradingOutput::Compute { job, run, work } => {
                        self.outputs.push_back(Output::Compute { job, run, work })
                    }
                    TradingOutput::StrategyHealth {
                        slot,
                        name,
                        status,
                        error,
                        detail,
                    } => {
                        let id = ComponentId::Strategy(slot as u16);
                        self.health
                            .register_named(id, &format!("strategy.{name}"), now);
                        self.health.set(id, status, now);
                        if let Some(e) = error {
                            self.health.error(id, e, now);
                        }
                        self.health.set_detail(id, detail);
                    }
                    TradingOutput::Event(e) => self.outputs.push_back(Output::Event(e)),
                    TradingOutput::Private(r) => self.outputs.push_back(Output::Private(r)),
                    TradingOutput::Store(w) => self.outputs.push_back(Output::Store(w)),
                    TradingOutput::Halted(why) => {
                        self.health
                            .set(ComponentId::Execution, Status::Crashed, now);
                        self.health.error(ComponentId::Execution, why, now);
                    }
                    TradingOutput::Notice(n) => self.outputs.push_back(Output::Notice(n)),
                    TradingOutput::Health { status, error } => {
                        self.health.set(ComponentId::SignalJob, status, now);
                        if let Some(e) = error {
                            self.health.error(ComponentId::SignalJob, e, now);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn on_sched_output(&mut self, now: Time, o: SchedOutput<Purpose>) {
        match o {
            SchedOutput::Http { id, path, timeout } => {
                self.outputs.push_back(Output::Http { id, path, timeout })
            }
            SchedOutput::Done {
                purpose, result, ..
            } => self.on_rest_done(now, purpose, result),
            SchedOutput::Paused { until } => {
                let secs = until.since(now).as_secs();
                self.health.set(ComponentId::Rest, Status::Degraded, now);
                self.health.error(
                    ComponentId::Rest,
                    "HTTP 403: access too frequent".into(),
                    now,
                );
                self.notice(
                    Severity::Error,
                    format!("venue answered 403: all REST paused for {secs} s"),
                );
            }
            SchedOutput::Resumed => {
                self.health.set(ComponentId::Rest, Status::Running, now);
                self.notice(Severity::Info, "REST penalty over: resuming".into());
            }
        }
    }

    pub(super) fn on_book_sync_output(&mut self, now: Time, o: BookSyncOutput) {
        match o {
            BookSyncOutput::Resubscribe { book, link } => {
                let topic = self.market.book_topic(book);
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.resubscribe(now, topic);
                }
            }
            BookSyncOutput::FetchSnapshot { book, attempt } => {
                self.market
                    .book_mut(book)
                    .hold_deltas(HELD_DELTAS_MAX_DEFAULT);
                let path = format!(
                    "/v5/market/orderbook?category={}&symbol={}&limit={}",
                    self.config.category.as_str(),
                    self.market.book_symbol(book),
                    book_sync::REST_REPAIR_DEPTH
                );
                self.submit(now, path, Purpose::Snapshot { book, attempt });
            }
            BookSyncOutput::Notice(n) => self.outputs.push_back(Output::Notice(n)),
        }
    }

    pub(super) fn drain_links(&mut self, now: Time) -> bool {
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
        let component = ComponentId::Link(id);
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
            LinkOutput::Authenticate { conn } => self
                .outputs
                .push_back(Output::Authenticate { link: id, conn }),
            LinkOutput::Opened { .. } => {
                // A book never survives a reconnect: wait for the new snapshots.
                for book in self.book_sync.books_of(id) {
                    self.market.book_mut(book).invalidate();
                }
                self.book_sync
                    .handle_input(now, BookSyncInput::LinkOpened { link: id });
            }
            LinkOutput::Lost { reason, retry_in } => {
                if self.private_link == Some(id) {
                    // Fills may be happening unseen: no new order until it is back and
                    // reconciled.
                    self.trading.set_stream(now, false);
                }
                self.health.set(component, Status::Degraded, now);
                self.health.error(component, reason.to_string(), now);
                self.notice(
                    Severity::Warn,
                    format!(
                        "{} lost: {reason}; reconnecting in {} ms",
                        link_name(id),
                        retry_in.as_millis()
                    ),
                );
            }
            LinkOutput::SubscribeFailed { topics, message } => {
                self.health
                    .error(component, format!("subscription refused: {message}"), now);
                self.notice(
                    Severity::Error,
                    format!(
                        "{}: venue refused {}: {message}",
                        link_name(id),
                        topics.join(",")
                    ),
                );
            }
            LinkOutput::Live => {
                let failed = self.links[id.0 as usize]
                    .subscriptions()
                    .iter()
                    .any(|s| matches!(s.state, SubState::Failed(_)));
                let status = if failed {
                    Status::Degraded
                } else {
                    Status::Running
                };
                self.health.set(component, status, now);
                if self.private_link == Some(id) {
                    self.trading.set_stream(now, true);
                }
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

    pub(super) fn on_frame(&mut self, now: Time, link: LinkId, conn: u64, text: &str) {
        let Some(l) = self.links.get_mut(link.0 as usize) else {
            return;
        };
        if !l.note_frame(now, conn) {
            self.counters.stale_conn_frames += 1;
            return;
        }
        self.counters.frames += 1;
        if self.private_link == Some(link) {
            return self.on_private_frame(now, link, text);
        }
        match self.market.handle_frame(now, text) {
            Ok(Handled::Book { book, applied }) => self.on_book(now, book, applied),
            // Control frames go straight to the link that owns the connection.
            Ok(Handled::Control(c)) => l.handle_control(now, &mut self.rng, &c),
            Ok(_) => {}
            Err(e) => self.on_bad_frame(now, link, e),
        }
        while let Some(ev) = self.market.poll_event() {
            self.on_market_event(now, ev);
        }
    }

    /// The private stream: control answers to its link, order and execution pushes to the
    /// order machine; a frame that cannot be read is refused and counted, changing nothing.
    fn on_private_frame(&mut self, now: Time, link: LinkId, text: &str) {
        use crate::wire::private::{PrivateFrame, parse_private_frame};
        match parse_private_frame(text) {
            Ok(PrivateFrame::Control(c)) => {
                if let Some(l) = self.links.get_mut(link.0 as usize) {
                    l.handle_control(now, &mut self.rng, &c);
                }
            }
            Ok(PrivateFrame::Other(_)) => {}
            Ok(push) => self.trading.private_push(now, push),
            Err(e) => {
                self.counters.private_bad += 1;
                self.notice(
                    Severity::Warn,
                    format!("refused a private frame on {}: {e}", link_name(link)),
                );
            }
        }
    }

    fn on_bad_frame(&mut self, now: Time, link: LinkId, e: MarketError) {
        let interval = Duration::from_millis(BAD_FRAME_NOTICE_INTERVAL_MS);
        if self
            .last_bad_notice
            .is_some_and(|t| now.since(t) < interval)
        {
            return;
        }
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

    fn on_book(&mut self, now: Time, book: BookId, applied: Applied) {
        let b = self.market.book(book);
        if b.state() != BookState::Synced {
            return;
        }
        if applied == Applied::Snapshot {
            self.book_sync
                .handle_input(now, BookSyncInput::Synced { book });
        }
        if self.status.top_event_due(now, book)
            && let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask())
        {
            self.outputs.push_back(Output::Event(Event::Top {
                symbol: self.market.book_symbol(book).to_string(),
                bid,
                ask,
                u: b.last_u().unwrap_or(0),
            }));
        }
    }

    fn on_market_event(&mut self, now: Time, ev: MarketEvent) {
        match ev {
            MarketEvent::ResyncNeeded { book, reason } => {
                self.book_sync
                    .handle_input(now, BookSyncInput::Desynced { book, reason });
                // The first attempt goes at once, not on the next timer turn.
                let links = &self.links;
                self.book_sync.handle_timeout(now, &mut self.rng, |l| {
                    links.get(l.0 as usize).is_some_and(Link::is_live)
                });
            }
            MarketEvent::CandleClosed { series, candle } => {
                if self.phase == super::Phase::Running {
                    self.trading.candle_closed(now);
                }
                let symbol = self.market.series_symbol(series).to_string();
                let interval = self.market.series(series).interval();
                self.outputs.push_back(Output::Event(Event::CandleClosed {
                    symbol,
                    interval,
                    candle,
                }));
            }
            MarketEvent::KlineGap { series, gap } => {
                let symbol = self.market.series_symbol(series).to_string();
                let interval = self.market.series(series).interval();
                self.history.fill_gap(&symbol, interval, gap);
            }
        }
    }
}
