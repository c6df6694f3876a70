//! The order machine (time-driven, sans-IO): every order's life from intent to a final state,
//! with the venue (or, on paper, the paper venue) as the truth.
//!
//! The rules it keeps, whatever fails:
//! - An order is written to the store as an intent, and sent only once the store says it is
//!   durable. A store that fails halts every new send.
//! - Every order has its own `orderLinkId`, never reused, and is sent once only. When the outcome
//!   of the send is unknown (a timeout, a transport error, 10016, an unreadable answer, a
//!   duplicate-id answer) the machine asks the venue by `orderLinkId` and follows what it finds.
//!   An order the venue never acknowledged and cannot find once its create's receive window has
//!   passed never reached it: it is closed, not sent again; a create the venue refused before
//!   placing it (10006, 10002) is closed too. The next decision is a new order with a new id.
//! - Fills come from executions, applied once each by `execId`; an order is final only when the
//!   fills it has add up to what the venue says it filled.
//! - After a restart every order the store holds without a final state is resolved this way
//!   before anything new is sent.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::decimal::Dec;
use crate::time::Time;
use crate::wire::private::{
    self, CATEGORY_LINEAR, ExecRow, NewOrder, OrderRow, OrderStatus, OrderType,
};
use crate::wire::rest::{RestError, parse_time};

/// Added to the receive window before an unanswered create is taken as never placed: the
/// venue's clock and ours may differ by this much (preflight refuses larger skews).
pub const RESEND_MARGIN_MS: u64 = 2_000;

/// ExecIds remembered after their order ended, to apply a late or replayed execution once.
pub const KNOWN_EXECS_MAX: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Create,
    Realtime,
    History,
    Executions,
}

#[derive(Debug, Clone)]
struct Live {
    rec: OrderRecord,
    acked: bool,
    sends: u32,
    /// When the last create left (or, after a restart, when the order was resumed): until its
    /// receive window has passed, the venue may still accept it.
    sent_at: Option<Time>,
    lookups_failed: u32,
    /// The request in flight for this order and when it times out.
    pending: Option<(u64, Call, Time)>,
    /// When the next look-up is due.
    next_at: Option<Time>,
    /// Fills applied, by execId.
    execs: Vec<String>,
    filled: Dec,
    cursor: Option<String>,
    /// The venue's final status, waiting for the fills to add up.
    final_seen: Option<Stage>,
}

impl Live {
    /// An order with nothing in flight and no fill applied yet.
    fn new(rec: OrderRecord, acked: bool, sends: u32, sent_at: Option<Time>) -> Live {
        Live {
            rec,
            acked,
            sends,
            sent_at,
            lookups_failed: 0,
            pending: None,
            next_at: None,
            execs: Vec::new(),
            filled: Dec::ZERO,
            cursor: None,
            final_seen: None,
        }
    }
}

pub struct Orders {
    config: OrdersConfig,
    next_seq: u64,
    next_req: u64,
    orders: BTreeMap<String, Live>,
    /// Ids of orders waiting for a send slot, oldest first.
    ready: VecDeque<String>,
    creates: VecDeque<Time>,
    paused_until: Option<Time>,
    clock_offset_ms: i64,
    time_req: Option<(u64, Time)>,
    halted: Option<String>,
    stream_live: bool,
    reconciled: bool,
    /// The reconciliation step in flight, its request and deadline.
    recon: Option<(reconcile::Step, u64, Time)>,
    next_reconcile_at: Option<Time>,
    /// Executions are reconciled through this venue time (ms): the next reconciliation reads
    /// from there (pushes do not move it: a push lost between two older ones must still be
    /// found).
    exec_cursor_ms: Option<u64>,
    /// The venue's time at the latest answer (our wall clock plus the offset).
    venue_now_ms: Option<u64>,
    /// Recent execIds already applied, oldest first (bounded by [`KNOWN_EXECS_MAX`]).
    known_execs: VecDeque<String>,
    known_set: std::collections::BTreeSet<String>,
    /// Cancel-alls asked for (the kill switch), per symbol, until the venue confirms each.
    cancels: Vec<CancelAll>,
    outputs: VecDeque<OrdersOutput>,
    counters: OrdersCounters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrdersCounters {
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub lookups: u64,
    pub ambiguous: u64,
    pub duplicate_ids: u64,
    pub rate_limited: u64,
    pub fills: u64,
    pub duplicate_fills: u64,
    pub late_answers: u64,
    pub reconciles: u64,
    /// Times the venue's clock was read again after a 10002.
    pub clock_resyncs: u64,
    /// Differences the venue's truth corrected (`keel_reconcile_diffs_total`).
    pub reconcile_diffs: u64,
    pub bad_answers: u64,
}

impl Orders {
    /// `next_seq`: the first sequence number not in the store.
    pub fn new(config: OrdersConfig, next_seq: u64) -> Orders {
        Orders {
            config,
            next_seq,
            next_req: 1,
            orders: BTreeMap::new(),
            ready: VecDeque::new(),
            creates: VecDeque::new(),
            paused_until: None,
            clock_offset_ms: 0,
            time_req: None,
            halted: None,
            stream_live: false,
            reconciled: false,
            recon: None,
            next_reconcile_at: None,
            exec_cursor_ms: None,
            venue_now_ms: None,
            known_execs: VecDeque::new(),
            known_set: Default::default(),
            cancels: Vec::new(),
            outputs: VecDeque::new(),
            counters: OrdersCounters::default(),
        }
    }

    // ----- getters -----

    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Orders from before a restart (or whose outcome is unknown) are being resolved.
    pub fn resolving(&self) -> bool {
        self.orders
            .values()
            .any(|o| o.rec.stage == Stage::Resolving)
    }

    pub fn working(&self) -> impl Iterator<Item = &OrderRecord> {
        self.orders.values().map(|o| &o.rec)
    }

    pub fn busy(&self, symbol: &str) -> bool {
        self.orders.values().any(|o| o.rec.plan.symbol == symbol)
    }

    /// Orders may be placed as far as the private stream goes: it is up and reconciled (or
    /// there is none).
    pub fn stream_ready(&self) -> bool {
        !self.config.stream || (self.stream_live && self.reconciled)
    }

    /// Cancel-alls not yet confirmed by the venue.
    pub fn cancels_pending(&self) -> bool {
        !self.cancels.is_empty()
    }

    pub fn counters(&self) -> &OrdersCounters {
        &self.counters
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn link_id(prefix: &str, seq: u64) -> String {
        format!("{prefix}-{seq:010}")
    }

    // ----- inputs -----

    pub fn set_clock_offset(&mut self, offset_ms: i64) {
        self.clock_offset_ms = offset_ms;
    }

    /// The venue's time (ms) as last read: reconciliation reads executions up to it.
    pub fn set_venue_now(&mut self, venue_now_ms: Option<u64>) {
        self.venue_now_ms = self.venue_now_ms.max(venue_now_ms);
    }

    /// Fills the store already holds (newest last): applied once only, and reconciliation reads
    /// executions from the newest on.
    pub fn remember_execs(
        &mut self,
        ids: impl IntoIterator<Item = String>,
        newest_ms: Option<u64>,
    ) {
        for id in ids {
            self.remember(id);
        }
        self.exec_cursor_ms = self.exec_cursor_ms.max(newest_ms);
    }

    /// The private stream is up (reconcile now, then trade) or down (no new orders).
    pub fn set_stream(&mut self, now: Time, live: bool) {
        self.stream_live = live;
        self.reconciled = false;
        self.recon = None;
        if live {
            self.start_reconcile(now);
        } else {
            self.next_reconcile_at = None;
        }
    }

    /// A push from the private stream: orders and executions of orders this machine follows
    /// are applied (each execution once); an execution of one of our orders that ended
    /// earlier and that we never saw is a missed fill, applied and counted.
    pub fn handle_push(&mut self, now: Time, frame: private::PrivateFrame) {
        match frame {
            private::PrivateFrame::Orders(rows) => {
                for row in rows {
                    let link = row.order_link_id.clone();
                    if self.orders.contains_key(&link) {
                        self.apply_row(now, &link, row);
                    }
                }
            }
            private::PrivateFrame::Executions(rows) => {
                for x in rows {
                    self.take_exec(now, x);
                }
            }
            _ => {}
        }
    }

    /// Differences another machine corrected from the venue's truth (positions).
    pub fn note_diffs(&mut self, n: u64) {
        self.counters.reconcile_diffs += n;
    }

    /// Orders the store holds without a final state, with the fills it already has: each is
    /// looked up before anything new is sent.
    pub fn resume(&mut self, now: Time, rec: OrderRecord, execs: Vec<ExecRecord>) {
        let filled = execs
            .iter()
            .fold(Dec::ZERO, |a, x| a.checked_add(x.qty).unwrap_or(a));
        let acked = rec.order_id.is_some();
        self.next_seq = self.next_seq.max(rec.seq + 1);
        // The last send may have left just before the crash.
        let mut live = Live::new(rec, acked, 1, Some(now));
        live.next_at = Some(now);
        live.execs = execs.into_iter().map(|x| x.exec_id).collect();
        live.filled = filled;
        live.rec.stage = Stage::Resolving;
        self.orders.insert(live.rec.link_id.clone(), live);
    }

    /// Takes an order: it becomes an intent for the store; it is sent once durable.
    pub fn place(&mut self, now_ms: u64, plan: Plan) -> Result<String, Refused> {
        if let Some(h) = &self.halted {
            return Err(Refused::Halted(h.clone()));
        }
        if self.resolving() {
            return Err(Refused::Resolving);
        }
        if self.config.stream && !(self.stream_live && self.reconciled) {
            return Err(Refused::StreamDown);
        }
        if self.busy(&plan.symbol) {
            return Err(Refused::Busy);
        }
        if self.orders.len() >= self.config.working_max {
            return Err(Refused::WorkingFull);
        }
        if plan.qty <= Dec::ZERO {
            return Err(Refused::BadPlan("quantity must be positive"));
        }
        if plan.order_type == OrderType::Limit && plan.price.is_none_or(|p| p <= Dec::ZERO) {
            return Err(Refused::BadPlan("a limit order needs a positive price"));
        }
        let seq = self.next_seq;
        let link_id = Self::link_id(&self.config.link_prefix, seq);
        if !private::valid_link_id(&link_id) {
            return Err(Refused::BadPlan("link id prefix too long or not plain"));
        }
        self.next_seq += 1;
        let rec = OrderRecord {
            link_id: link_id.clone(),
            seq,
            plan,
            stage: Stage::Intent,
            order_id: None,
            cum_qty: Dec::ZERO,
            created_ms: now_ms,
        };
        self.outputs.push_back(OrdersOutput::Persist(rec.clone()));
        self.orders
            .insert(link_id.clone(), Live::new(rec, false, 0, None));
        Ok(link_id)
    }

    /// The store wrote the intent: it may be sent.
    pub fn durable(&mut self, now: Time, link_id: &str) {
        if let Some(o) = self.orders.get_mut(link_id)
            && o.rec.stage == Stage::Intent
        {
            o.rec.stage = Stage::Ready;
            self.ready.push_back(link_id.to_string());
        }
        self.send_ready(now);
    }

    /// The store could not write: no order may be sent again in this run.
    pub fn store_failed(&mut self, error: &str) {
        self.halt(format!("store cannot write: {error}"));
    }

    /// An HTTP answer to request `id`; `wall_ms` is the runtime's wall clock at receipt.
    pub fn handle_answer(
        &mut self,
        now: Time,
        id: u64,
        status: u16,
        body: &str,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        if wall_ms > 0 {
            self.venue_now_ms =
                Some((wall_ms as i64).saturating_add(self.clock_offset_ms).max(0) as u64);
        }
        if let Some(l) = limit
            && l.limit > 0
            && l.remaining == 0
        {
            self.pause_until_wall(now, wall_ms, l.reset_ms);
        }
        let answer = if status == 200 {
            Ok(body)
        } else {
            Err(format!("HTTP {status}"))
        };
        self.route(now, id, answer, wall_ms, limit);
    }

    /// Request `id` failed in transport (the runtime's timeout included).
    pub fn handle_error(&mut self, now: Time, id: u64, error: &str) {
        self.route(now, id, Err(error.to_string()), 0, None);
    }

    /// An answer (or a failure) goes back to whoever asked: the clock, a cancel-all, the
    /// reconciliation or an order.
    fn route(
        &mut self,
        now: Time,
        id: u64,
        answer: Result<&str, String>,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        if self.time_req.is_some_and(|(r, _)| r == id) {
            self.time_req = None;
            if let Ok(t) = answer.and_then(|b| parse_time(b).map_err(|e| e.to_string())) {
                self.counters.clock_resyncs += 1;
                self.clock_offset_ms = t.result as i64 - wall_ms as i64;
                self.note(
                    false,
                    format!("clock offset to the venue now {} ms", self.clock_offset_ms),
                );
            }
        } else if let Some(i) = self
            .cancels
            .iter()
            .position(|c| c.req.is_some_and(|r| r.0 == id))
        {
            self.on_cancel_answer(now, i, answer);
        } else if self.recon.as_ref().is_some_and(|r| r.1 == id) {
            self.on_reconcile_answer(now, answer);
        } else if let Some((link, call)) = self.take_pending(id) {
            match call {
                Call::Create => self.on_create(now, &link, answer, wall_ms, limit),
                Call::Realtime | Call::History => self.on_lookup(now, &link, call, answer),
                Call::Executions => self.on_executions(now, &link, answer),
            }
        } else {
            self.counters.late_answers += 1;
            return;
        }
        self.send_ready(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if self.paused_until.is_some_and(|t| now >= t) {
            self.paused_until = None;
        }
        if self.time_req.is_some_and(|(_, t)| now >= t) {
            self.time_req = None;
        }
        let expired: Vec<u64> = self
            .orders
            .values()
            .filter_map(|o| o.pending.as_ref().filter(|p| now >= p.2).map(|p| p.0))
            .collect();
        for id in expired {
            self.handle_error(now, id, "no answer before the request's deadline");
        }
        let due: Vec<String> = self
            .orders
            .iter()
            .filter(|(_, o)| o.pending.is_none() && o.next_at.is_some_and(|t| now >= t))
            .map(|(k, _)| k.clone())
            .collect();
        for link in due {
            if let Some(o) = self.orders.get_mut(&link) {
                o.next_at = None;
            }
            self.look_up(now, &link);
        }
        if self.recon.as_ref().is_some_and(|r| now >= r.2) {
            self.on_reconcile_answer(now, Err("no answer before the request's deadline".into()));
        }
        if self.recon.is_none() && self.next_reconcile_at.is_some_and(|t| now >= t) {
            self.start_reconcile(now);
        }
        let late: Vec<u64> = self
            .cancels
            .iter()
            .filter_map(|c| c.req.filter(|r| now >= r.1).map(|r| r.0))
            .collect();
        for id in late {
            self.handle_error(now, id, "no answer before the request's deadline");
        }
        self.send_cancels(now);
        self.send_ready(now);
    }

    // ----- outputs -----

    #[must_use]
    pub fn poll_output(&mut self) -> Option<OrdersOutput> {
        self.outputs.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t: Option<Time> = self.paused_until;
        let mut min = |x: Time| t = Some(t.map_or(x, |y| y.min(x)));
        for o in self.orders.values() {
            if let Some(p) = &o.pending {
                min(p.2);
            } else if let Some(n) = o.next_at {
                min(n);
            }
        }
        if let Some((_, d)) = self.time_req {
            min(d);
        }
        for c in &self.cancels {
            match (c.req, c.next_at) {
                (Some(r), _) => min(r.1),
                (None, Some(n)) => min(n),
                _ => {}
            }
        }
        match &self.recon {
            Some(r) => min(r.2),
            None => {
                if let Some(n) = self.next_reconcile_at {
                    min(n)
                }
            }
        }
        // Orders wait on the window only when it is full; waiting on anything else (a pause,
        // the clock, a halt) has its own deadline or none. A deadline already past here would
        // wake the loop for nothing, again and again.
        if !self.ready.is_empty()
            && self.paused_until.is_none()
            && self.time_req.is_none()
            && self.halted.is_none()
            && self.creates.len() as u32 >= self.config.creates_per_s_max
            && let Some(first) = self.creates.front()
        {
            min(*first + Duration::from_secs(1));
        }
        t
    }
}

mod cancel;
mod flow;
mod reconcile;
mod types;

pub use cancel::CANCEL_ALL_ATTEMPTS_MAX;
use cancel::CancelAll;
pub use types::*;

#[cfg(test)]
mod test_venue;
#[cfg(test)]
mod tests;
