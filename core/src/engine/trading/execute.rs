//! The trading machine's execution: what a strategy said becomes orders through the broker's
//! checks and the order machine, and on paper the paper venue answers them.

use super::*;
use crate::trading::broker::{Refusal, Sized};

impl Trading {
    /// The decision on every symbol `said` holds a view of: the strongest of every strategy's
    /// latest view of it (the others named in its reason), in the order the symbols came.
    pub(super) fn netted(&self, said: &[Signal]) -> Vec<Signal> {
        let mut symbols: Vec<&str> = Vec::new();
        for s in said {
            if s.action.is_view() && !symbols.contains(&s.symbol.as_str()) {
                symbols.push(&s.symbol);
            }
        }
        symbols
            .into_iter()
            .flat_map(|sym| {
                let all: Vec<Signal> = self
                    .views
                    .iter()
                    .filter_map(|m| m.get(sym).cloned())
                    .collect();
                decide(&all)
            })
            .collect()
    }

    /// Acts on decided `views` and on the exact orders, targets and cancels among `signals`,
    /// against the current books; a book that is not synced, not fresh or not on a live link is
    /// never traded against.
    pub(super) fn execute(
        &mut self,
        now: Time,
        market: &Market,
        views: Vec<Signal>,
        signals: &[Signal],
        usable: &dyn Fn(BookId) -> bool,
    ) {
        if self.store_backlog > 0 {
            return;
        }
        let exact = signals.iter().filter(|s| !s.action.is_view());
        for s in views.iter().chain(exact) {
            if s.action == Action::Cancel {
                if let Some(o) = self.orders.as_mut() {
                    o.cancel_symbol(now, &s.symbol);
                }
                self.drain_orders(now);
                continue;
            }
            let Some(inst) = self.instruments.iter().find(|i| i.symbol == s.symbol) else {
                continue;
            };
            if !usable(inst.book) {
                continue;
            }
            // Sizing reads the touch only; the paper venue walks the book when it answers.
            let b = market.book(inst.book);
            let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask()) else {
                continue;
            };
            let ts = b.last_ts().unwrap_or(0);
            let steps = inst.steps;
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
            self.send(now, s, bid, ask, steps, ts);
        }
    }

    /// On paper, the order machine's requests are answered here, each create against its
    /// symbol's book as it stands now (none when the book is not usable: refused, not guessed).
    pub(super) fn answer_paper(
        &mut self,
        now: Time,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) {
        let Some(venue) = self.paper.as_mut() else {
            return;
        };
        if venue.resting() > 0 {
            venue.match_resting(|symbol, side| {
                paper_book(&self.instruments, market, usable, symbol, side)
            });
        }
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
                        paper_book(instruments, market, usable, symbol, side)
                    })
                };
                if let Some(o) = self.orders.as_mut() {
                    o.handle_answer(now, r.id, status, &body, 0, None);
                }
                self.drain_orders(now);
            }
        }
        // Past the bound, the rest waits a millisecond: a deadline at `now` would spin the loop.
        // Resting orders are checked against the books at a steady pace.
        let resting = self.paper.as_ref().is_some_and(|v| v.resting() > 0);
        self.paper_at = if !self.paper_queue.is_empty() {
            Some(now + std::time::Duration::from_millis(1))
        } else if resting {
            Some(now + std::time::Duration::from_millis(PAPER_MATCH_EVERY_MS))
        } else {
            None
        };
    }

    /// A decision becomes a market order for the order machine, sized and risk-checked by the
    /// broker; it is sent once the store holds its intent.
    pub(super) fn send(
        &mut self,
        now: Time,
        s: &Signal,
        bid: Level,
        ask: Level,
        steps: Steps,
        ts: u64,
    ) {
        let Some(Sized {
            side,
            qty,
            price,
            tif,
            reduce_only,
            verdict,
        }) = self
            .broker
            .size_action(&s.symbol, &s.action, bid.px, ask.px, steps)
        else {
            return;
        };
        if let Err(why) = verdict {
            let sym = &s.symbol;
            let text = match (why, self.broker.killed()) {
                (Refusal::KillSwitch, Some(k)) => format!("{sym} order not sent: kill switch: {k}"),
                (Refusal::BelowMinimum, _) => format!(
                    "{sym} order not sent: {qty} is below the venue's minimum of {}",
                    steps.min_qty.unwrap_or_default()
                ),
                (Refusal::BelowOneTick, _) => format!(
                    "{sym} order not sent: limit {} is below one tick",
                    price.unwrap_or_default()
                ),
                _ => format!("{sym} order not sent: {why}"),
            };
            self.notice(Severity::Warn, text);
            return;
        }
        let Some(orders) = self.orders.as_mut() else {
            return;
        };
        let mut plan = Plan::market(
            s.symbol.clone(),
            side.into(),
            qty,
            format!("{}: {}", s.strategy, s.reason),
        );
        if let Some(p) = price {
            plan.order_type = crate::wire::private::OrderType::Limit;
            plan.price = Some(p);
            plan.time_in_force = tif;
        }
        plan.reduce_only = reduce_only;
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

    pub(super) fn drain_orders(&mut self, now: Time) {
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
                    let (level, venue) = match (self.exiting, self.paper.is_some()) {
                        (true, _) => (Severity::Info, "orders"),
                        (false, true) => (Severity::Error, "paper trading"),
                        (false, false) => (Severity::Error, "live trading"),
                    };
                    self.outputs.push_back(TradingOutput::Notice(Notice {
                        level,
                        text: format!("{venue} halted: {why}"),
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
}

/// The side of `symbol`'s book an order of `side` takes from, best first, when the book may be
/// traded against now.
fn paper_book(
    instruments: &[Instrument],
    market: &Market,
    usable: &dyn Fn(BookId) -> bool,
    symbol: &str,
    side: Side,
) -> Option<PaperBook> {
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
}
