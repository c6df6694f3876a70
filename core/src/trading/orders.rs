//! The order machine (time-driven, sans-IO): every live order's life from intent to a final
//! state, with the venue as the truth.
//!
//! The rules it keeps, whatever fails:
//! - An order is written to the store as an intent, and sent only once the store says it is
//!   durable. A store that fails halts every new send.
//! - Every order has its own `orderLinkId`, never reused, and is only ever sent under it. When the
//!   outcome of a send is unknown (a timeout, a transport error, 10016, an unreadable answer, a
//!   duplicate-id answer) the machine asks the venue by `orderLinkId` and follows what it finds;
//!   it re-sends only an order the venue has never acknowledged and cannot find, under the same
//!   id, which the venue refuses as a duplicate if the first send did arrive.
//! - Fills come from executions, applied once each by `execId`; an order is final only when the
//!   fills it has add up to what the venue says it filled.
//! - After a restart every order the store holds without a final state is resolved this way
//!   before anything new is sent.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::decimal::Dec;
use crate::time::Time;
use crate::wire::private::{
    self, CATEGORY_LINEAR, ExecRow, NewOrder, OrderRow, OrderStatus, OrderType, Side, TimeInForce,
};
use crate::wire::rest::{RestError, parse_time};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersConfig {
    /// What the link ids start with: unique to the store that holds them (the runtime makes it
    /// from the store's creation), so ids never repeat across runs or databases.
    pub link_prefix: String,
    /// A request the runtime has not answered after this long is treated as a timeout.
    pub request_timeout_ms: u64,
    /// An acknowledged order is first looked up this long after its ack.
    pub first_look_ms: u64,
    /// An open order is looked up again at this interval.
    pub poll_ms: u64,
    /// A failed look-up is retried after this long (doubling up to `poll_ms` times eight).
    pub retry_ms: u64,
    pub recv_window_ms: u64,
    /// Order creates per second (Bybit's default for linear: 10/s per UID).
    pub creates_per_s_max: u32,
    /// Sends of one order that the venue never acknowledged and cannot find.
    pub resends_max: u32,
    /// Look-ups of one order that failed in a row before trading halts.
    pub lookups_failed_max: u32,
    /// Orders not yet final at one time.
    pub working_max: usize,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            link_prefix: "keel".into(),
            request_timeout_ms: 10_000,
            first_look_ms: 100,
            poll_ms: 1_000,
            retry_ms: 250,
            recv_window_ms: private_recv_window(),
            creates_per_s_max: 10,
            resends_max: 3,
            lookups_failed_max: 20,
            working_max: 64,
        }
    }
}

fn private_recv_window() -> u64 {
    crate::wire::sign::RECV_WINDOW_MS_DEFAULT
}

/// What a strategy's decision asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub symbol: String,
    pub side: Side,
    pub qty: Dec,
    pub order_type: OrderType,
    pub price: Option<Dec>,
    pub time_in_force: Option<TimeInForce>,
    pub reduce_only: bool,
    pub reason: String,
}

/// Where an order is in its life.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Stage {
    /// Waiting for the store to make the intent durable.
    Intent,
    /// Durable; waiting for a send slot.
    Ready,
    /// The create is on its way.
    Sent,
    /// The venue has it (acknowledged or found); open.
    Open,
    /// What happened is being asked of the venue.
    Resolving,
    /// Final: fills complete.
    Filled,
    Cancelled,
    Rejected(String),
}

impl Stage {
    pub fn is_final(&self) -> bool {
        matches!(self, Stage::Filled | Stage::Cancelled | Stage::Rejected(_))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Intent => "intent",
            Stage::Ready => "ready",
            Stage::Sent => "sent",
            Stage::Open => "open",
            Stage::Resolving => "resolving",
            Stage::Filled => "filled",
            Stage::Cancelled => "cancelled",
            Stage::Rejected(_) => "rejected",
        }
    }
}

/// An order as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub link_id: String,
    pub seq: u64,
    pub plan: Plan,
    pub stage: Stage,
    pub order_id: Option<String>,
    /// What the venue says it filled.
    pub cum_qty: Dec,
    pub created_ms: u64,
}

/// One fill, applied once.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecRecord {
    pub exec_id: String,
    pub link_id: String,
    pub symbol: String,
    pub side: Side,
    pub px: Dec,
    pub qty: Dec,
    pub fee: Dec,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A private request for the runtime to sign and send: the payload is the exact query string
/// (GET) or JSON body (POST) to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub method: Method,
    pub path: &'static str,
    pub payload: String,
    pub recv_window_ms: u64,
    /// Added to the runtime's wall clock for `X-BAPI-TIMESTAMP` (the venue's clock minus ours).
    pub clock_offset_ms: i64,
    pub timeout: Duration,
}

/// The venue's per-UID limit as its headers state it (rate-limit.mdx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub remaining: u32,
    pub limit: u32,
    /// Wall ms at which the limit resets.
    pub reset_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrdersOutput {
    /// Write this state of the order; an intent answers with [`Orders::durable`].
    Persist(OrderRecord),
    /// A new fill: store it and apply it to the position.
    Fill(ExecRecord),
    Request(Request),
    /// Trading halted: nothing new is sent until a restart.
    Halted(String),
    Notice {
        error: bool,
        text: String,
    },
}

/// Why an order was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Halted(String),
    /// Orders from before a restart are still being resolved.
    Resolving,
    /// An order for this symbol is not final yet.
    Busy,
    WorkingFull,
    BadPlan(&'static str),
}

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
    outputs: VecDeque<OrdersOutput>,
    counters: OrdersCounters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrdersCounters {
    pub sent: u64,
    pub resent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub lookups: u64,
    pub ambiguous: u64,
    pub duplicate_ids: u64,
    pub rate_limited: u64,
    pub fills: u64,
    pub duplicate_fills: u64,
    pub late_answers: u64,
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

    /// Orders the store holds without a final state, with the fills it already has: each is
    /// looked up before anything new is sent.
    pub fn resume(&mut self, now: Time, rec: OrderRecord, execs: Vec<ExecRecord>) {
        let filled = execs
            .iter()
            .fold(Dec::ZERO, |a, x| a.checked_add(x.qty).unwrap_or(a));
        let acked = rec.order_id.is_some();
        self.next_seq = self.next_seq.max(rec.seq + 1);
        let mut live = Live {
            rec,
            acked,
            sends: 1,
            lookups_failed: 0,
            pending: None,
            next_at: Some(now),
            execs: execs.into_iter().map(|x| x.exec_id).collect(),
            filled,
            cursor: None,
            final_seen: None,
        };
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
        self.orders.insert(
            link_id.clone(),
            Live {
                rec,
                acked: false,
                sends: 0,
                lookups_failed: 0,
                pending: None,
                next_at: None,
                execs: Vec::new(),
                filled: Dec::ZERO,
                cursor: None,
                final_seen: None,
            },
        );
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
        if let Some(l) = limit
            && l.limit > 0
            && l.remaining == 0
        {
            self.pause_until_wall(now, wall_ms, l.reset_ms);
        }
        if self.time_req.is_some_and(|(r, _)| r == id) {
            self.time_req = None;
            if let Ok(t) = parse_time(body).map(|r| r.result) {
                self.clock_offset_ms = t as i64 - wall_ms as i64;
                self.note(
                    false,
                    format!("clock offset to the venue now {} ms", self.clock_offset_ms),
                );
            }
            self.send_ready(now);
            return;
        }
        let Some((link, call)) = self.take_pending(id) else {
            self.counters.late_answers += 1;
            return;
        };
        let answer = if status == 200 {
            Ok(body)
        } else {
            Err(format!("HTTP {status}"))
        };
        match call {
            Call::Create => self.on_create(now, &link, answer, wall_ms, limit),
            Call::Realtime | Call::History => self.on_lookup(now, &link, call, answer),
            Call::Executions => self.on_executions(now, &link, answer),
        }
        self.send_ready(now);
    }

    /// Request `id` failed in transport (the runtime's timeout included).
    pub fn handle_error(&mut self, now: Time, id: u64, error: &str) {
        if self.time_req.is_some_and(|(r, _)| r == id) {
            self.time_req = None;
            self.send_ready(now);
            return;
        }
        let Some((link, call)) = self.take_pending(id) else {
            self.counters.late_answers += 1;
            return;
        };
        let e = Err(error.to_string());
        match call {
            Call::Create => self.on_create(now, &link, e, 0, None),
            Call::Realtime | Call::History => self.on_lookup(now, &link, call, e),
            Call::Executions => self.on_executions(now, &link, e),
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
        if !self.ready.is_empty()
            && self.paused_until.is_none()
            && let Some(first) = self.creates.front()
        {
            min(*first + Duration::from_secs(1));
        }
        t
    }

    // ----- internals -----

    fn halt(&mut self, why: String) {
        if self.halted.is_none() {
            self.halted = Some(why.clone());
            self.outputs.push_back(OrdersOutput::Halted(why));
        }
    }

    fn note(&mut self, error: bool, text: String) {
        self.outputs.push_back(OrdersOutput::Notice { error, text });
    }

    fn take_pending(&mut self, id: u64) -> Option<(String, Call)> {
        let (link, o) = self
            .orders
            .iter_mut()
            .find(|(_, o)| o.pending.as_ref().is_some_and(|p| p.0 == id))?;
        let (_, call, _) = o.pending.take()?;
        Some((link.clone(), call))
    }

    fn request(
        &mut self,
        now: Time,
        method: Method,
        path: &'static str,
        payload: String,
    ) -> (u64, Time) {
        let id = self.next_req;
        self.next_req += 1;
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        self.outputs.push_back(OrdersOutput::Request(Request {
            id,
            method,
            path,
            payload,
            recv_window_ms: self.config.recv_window_ms,
            clock_offset_ms: self.clock_offset_ms,
            timeout,
        }));
        (id, now + timeout)
    }

    fn pause_until_wall(&mut self, now: Time, wall_ms: u64, reset_ms: u64) {
        let wait = Duration::from_millis(reset_ms.saturating_sub(wall_ms).clamp(50, 60_000));
        let until = now + wait;
        if self.paused_until.is_none_or(|t| t < until) {
            self.paused_until = Some(until);
        }
    }

    /// Sends durable orders while the window and the venue's limit allow.
    fn send_ready(&mut self, now: Time) {
        if self.halted.is_some() || self.time_req.is_some() {
            return;
        }
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        while self
            .creates
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.creates.pop_front();
        }
        while (self.creates.len() as u32) < self.config.creates_per_s_max {
            let Some(link) = self.ready.pop_front() else {
                return;
            };
            let Some(o) = self.orders.get(&link) else {
                continue;
            };
            if o.rec.stage != Stage::Ready {
                continue;
            }
            let p = &o.rec.plan;
            let body = private::create_body(&NewOrder {
                category: CATEGORY_LINEAR,
                symbol: &p.symbol,
                side: p.side,
                order_type: p.order_type,
                qty: p.qty,
                price: p.price,
                time_in_force: p.time_in_force,
                reduce_only: p.reduce_only,
                order_link_id: &link,
            });
            let resend = o.sends > 0;
            let (id, deadline) = self.request(now, Method::Post, "/v5/order/create", body);
            self.creates.push_back(now);
            self.counters.sent += 1;
            self.counters.resent += resend as u64;
            if let Some(o) = self.orders.get_mut(&link) {
                o.sends += 1;
                o.rec.stage = Stage::Sent;
                o.pending = Some((id, Call::Create, deadline));
            }
        }
    }

    fn on_create(
        &mut self,
        now: Time,
        link: &str,
        answer: Result<&str, String>,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        let parsed = answer.map(|b| private::parse_ack(b).map(|r| r.result));
        match parsed {
            Ok(Ok(ack)) if ack.order_link_id.is_empty() || ack.order_link_id == link => {
                self.counters.acked += 1;
                let Some(o) = self.orders.get_mut(link) else {
                    return;
                };
                o.acked = true;
                o.rec.order_id = Some(ack.order_id);
                o.rec.stage = Stage::Open;
                o.next_at = Some(now + Duration::from_millis(self.config.first_look_ms));
                let rec = o.rec.clone();
                self.outputs.push_back(OrdersOutput::Persist(rec));
            }
            Ok(Err(RestError::Api { ret_code, ret_msg })) => {
                self.on_create_refused(now, link, ret_code, ret_msg, wall_ms, limit)
            }
            // A transport error, a timeout, an HTTP error, an ack for another id, an answer we
            // cannot read: the order may or may not exist.
            other => {
                self.counters.ambiguous += 1;
                let why = match other {
                    Err(e) => e,
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "acknowledgement for another orderLinkId".into(),
                };
                self.note(
                    false,
                    format!("order {link}: outcome unknown ({why}); asking the venue"),
                );
                self.resolve(now, link);
            }
        }
    }

    fn on_create_refused(
        &mut self,
        now: Time,
        link: &str,
        code: i64,
        msg: String,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        use private::*;
        match code {
            crate::wire::rest::RET_CODE_RATE_LIMIT => {
                // Refused before it was placed: the same id goes again after the reset.
                self.counters.rate_limited += 1;
                let reset = limit.map_or(wall_ms + 1_000, |l| l.reset_ms);
                self.pause_until_wall(now, wall_ms, reset);
                self.requeue(link);
            }
            RET_CODE_TIME_WINDOW => {
                // Refused for its timestamp: re-read the venue's clock, then the same id again.
                let over = self
                    .orders
                    .get(link)
                    .is_some_and(|o| o.sends > self.config.resends_max);
                if over {
                    self.finish(link, Stage::Rejected(format!("{code}: {msg}")));
                    return;
                }
                if self.time_req.is_none() {
                    let (id, d) = self.request(now, Method::Get, "/v5/market/time", String::new());
                    self.time_req = Some((id, d));
                }
                self.requeue(link);
            }
            RET_CODE_DUPLICATE_LINK_ID | RET_CODE_DUPLICATE_CLIENT_ID_SPOT => {
                // Our id is already there: an earlier send arrived. Follow that order.
                self.counters.duplicate_ids += 1;
                if let Some(o) = self.orders.get_mut(link) {
                    o.acked = true;
                }
                self.resolve(now, link);
            }
            RET_CODE_SERVER_ERROR | RET_CODE_SERVICE_RESTARTING | RET_CODE_PROCESSING => {
                self.counters.ambiguous += 1;
                self.resolve(now, link);
            }
            10003..=10005 => {
                self.finish(link, Stage::Rejected(format!("{code}: {msg}")));
                self.halt(format!("the venue refused our credentials ({code}: {msg})"));
            }
            _ => {
                // 110007 (available balance), 110004, 110012, 110017, 110094, 10001, ...: the
                // venue refused the order; it does not exist.
                self.counters.rejected += 1;
                self.note(true, format!("order {link} rejected: {code} {msg}"));
                self.finish(link, Stage::Rejected(format!("{code}: {msg}")));
            }
        }
    }

    fn requeue(&mut self, link: &str) {
        if let Some(o) = self.orders.get_mut(link) {
            o.rec.stage = Stage::Ready;
            self.ready.push_front(link.to_string());
        }
    }

    /// The outcome of a send is unknown: look the order up now.
    fn resolve(&mut self, now: Time, link: &str) {
        if let Some(o) = self.orders.get_mut(link) {
            if !o.rec.stage.is_final() && o.rec.stage != Stage::Open {
                o.rec.stage = Stage::Resolving;
            }
            o.next_at = None;
        }
        self.look_up(now, link);
    }

    fn look_up(&mut self, now: Time, link: &str) {
        let Some(o) = self.orders.get(link) else {
            return;
        };
        if o.pending.is_some() {
            return;
        }
        // Fills the venue reported that we do not have yet come first.
        let call = if o.final_seen.is_some() || o.rec.cum_qty > o.filled {
            Call::Executions
        } else {
            Call::Realtime
        };
        self.issue(now, link, call);
    }

    fn issue(&mut self, now: Time, link: &str, call: Call) {
        let (path, payload) = match call {
            Call::Realtime => (
                "/v5/order/realtime",
                private::order_query(CATEGORY_LINEAR, link),
            ),
            Call::History => (
                "/v5/order/history",
                private::order_query(CATEGORY_LINEAR, link),
            ),
            Call::Executions => {
                let cursor = self.orders.get(link).and_then(|o| o.cursor.clone());
                (
                    "/v5/execution/list",
                    private::executions_query(CATEGORY_LINEAR, link, cursor.as_deref()),
                )
            }
            Call::Create => return,
        };
        self.counters.lookups += 1;
        let (id, deadline) = self.request(now, Method::Get, path, payload);
        if let Some(o) = self.orders.get_mut(link) {
            o.pending = Some((id, call, deadline));
        }
    }

    /// A look-up failed: retry with a growing delay; past the bound, halt (the order stays
    /// unresolved and is looked up again after a restart).
    fn lookup_failed(&mut self, now: Time, link: &str, why: String) {
        let (max, retry, poll) = (
            self.config.lookups_failed_max,
            self.config.retry_ms,
            self.config.poll_ms,
        );
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.lookups_failed += 1;
        let n = o.lookups_failed;
        let delay = (retry << n.min(10)).min(poll * 8);
        o.next_at = Some(now + Duration::from_millis(delay));
        if n == max {
            self.halt(format!(
                "order {link}: {n} look-ups failed in a row ({why}); no new orders"
            ));
        }
    }

    fn on_lookup(&mut self, now: Time, link: &str, call: Call, answer: Result<&str, String>) {
        let rows = match answer.map(private::parse_orders) {
            Ok(Ok(r)) => r.result.list,
            Ok(Err(e)) => {
                self.counters.bad_answers += 1;
                return self.lookup_failed(now, link, e.to_string());
            }
            Err(e) => return self.lookup_failed(now, link, e),
        };
        if let Some(o) = self.orders.get_mut(link) {
            o.lookups_failed = 0;
        }
        match rows.into_iter().find(|r| r.order_link_id == link) {
            Some(row) => self.apply_row(now, link, row),
            None if call == Call::Realtime => self.issue(now, link, Call::History),
            None => self.not_found(now, link),
        }
    }

    /// Neither the open orders nor the history know the order.
    fn not_found(&mut self, now: Time, link: &str) {
        let Some(o) = self.orders.get(link) else {
            return;
        };
        if !o.acked {
            if o.sends <= self.config.resends_max {
                // Never acknowledged, not there: the send was lost (or never made before a
                // crash). The same id again: a copy that did arrive makes the venue refuse it.
                self.note(
                    false,
                    format!("order {link} is not at the venue: sending it again under the same id"),
                );
                self.requeue(link);
                self.send_ready(now);
            } else {
                // Fills, if any, are the last word before giving the order up.
                let sends = o.sends;
                if let Some(o) = self.orders.get_mut(link) {
                    o.final_seen = Some(Stage::Rejected(format!(
                        "not at the venue after {sends} sends"
                    )));
                    o.cursor = None;
                }
                self.issue(now, link, Call::Executions);
            }
            return;
        }
        // Acknowledged but gone (the venue restarted and cleared its lists): what it filled is
        // in the executions; the order no longer works.
        self.note(
            true,
            format!("order {link} was acknowledged but the venue has no record of it: closing it with its executions"),
        );
        if let Some(o) = self.orders.get_mut(link) {
            o.final_seen = Some(Stage::Cancelled);
            o.cursor = None;
        }
        self.issue(now, link, Call::Executions);
    }

    fn apply_row(&mut self, now: Time, link: &str, row: OrderRow) {
        let poll = self.config.poll_ms;
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.acked = true;
        o.rec.order_id = Some(row.order_id.clone());
        let cum = row.cum_exec_qty.unwrap_or(Dec::ZERO);
        let changed = cum != o.rec.cum_qty || o.rec.stage != Stage::Open;
        o.rec.cum_qty = cum;
        if row.order_status.is_final() {
            o.final_seen = Some(match row.order_status {
                OrderStatus::Filled => Stage::Filled,
                OrderStatus::Rejected => Stage::Rejected(row.reject_reason.clone()),
                _ => Stage::Cancelled,
            });
            o.cursor = None;
        } else {
            o.rec.stage = Stage::Open;
        }
        let need_fills = o.rec.cum_qty > o.filled;
        let is_final = o.final_seen.is_some();
        if changed && !is_final {
            let rec = o.rec.clone();
            self.outputs.push_back(OrdersOutput::Persist(rec));
        }
        if need_fills {
            self.issue(now, link, Call::Executions);
        } else if is_final {
            self.complete(link);
        } else if let Some(o) = self.orders.get_mut(link) {
            o.next_at = Some(now + Duration::from_millis(poll));
        }
    }

    fn on_executions(&mut self, now: Time, link: &str, answer: Result<&str, String>) {
        let page = match answer.map(private::parse_executions) {
            Ok(Ok(r)) => r.result,
            Ok(Err(e)) => {
                self.counters.bad_answers += 1;
                return self.lookup_failed(now, link, e.to_string());
            }
            Err(e) => return self.lookup_failed(now, link, e),
        };
        for x in page.list {
            if x.order_link_id == link && x.exec_type.as_str() != "Funding" {
                self.apply_exec(link, x);
            }
        }
        let poll = self.config.poll_ms;
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.lookups_failed = 0;
        if !page.next_page_cursor.is_empty() && o.cursor.as_deref() != Some(&page.next_page_cursor)
        {
            o.cursor = Some(page.next_page_cursor);
            return self.issue(now, link, Call::Executions);
        }
        o.cursor = None;
        // An order closed without a record of it: what the executions show is its fill.
        let unrecorded = matches!(o.final_seen, Some(Stage::Cancelled | Stage::Rejected(_)));
        if unrecorded && o.rec.cum_qty < o.filled {
            o.rec.cum_qty = o.filled;
            o.final_seen = Some(Stage::Cancelled);
        }
        if o.filled >= o.rec.cum_qty && o.final_seen.is_some() {
            self.complete(link);
        } else {
            // The execution list can lag the order; look again.
            o.next_at = Some(now + Duration::from_millis(poll.min(self.config.retry_ms * 2)));
        }
    }

    fn apply_exec(&mut self, link: &str, x: ExecRow) {
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        if o.execs.iter().any(|e| *e == x.exec_id) {
            self.counters.duplicate_fills += 1;
            return;
        }
        let Some(filled) = o.filled.checked_add(x.exec_qty) else {
            self.counters.bad_answers += 1;
            return;
        };
        o.filled = filled;
        o.execs.push(x.exec_id.clone());
        self.counters.fills += 1;
        self.outputs.push_back(OrdersOutput::Fill(ExecRecord {
            exec_id: x.exec_id,
            link_id: link.to_string(),
            symbol: x.symbol,
            side: x.side,
            px: x.exec_price,
            qty: x.exec_qty,
            fee: x.exec_fee.unwrap_or(Dec::ZERO),
            ts_ms: x.exec_time as u64,
        }));
    }

    fn complete(&mut self, link: &str) {
        let stage = self
            .orders
            .get(link)
            .and_then(|o| o.final_seen.clone())
            .unwrap_or(Stage::Cancelled);
        self.finish(link, stage);
    }

    /// The order is final: its last state goes to the store after its fills, and it leaves the
    /// machine.
    fn finish(&mut self, link: &str, stage: Stage) {
        let Some(mut o) = self.orders.remove(link) else {
            return;
        };
        self.ready.retain(|l| l != link);
        o.rec.stage = stage;
        self.outputs.push_back(OrdersOutput::Persist(o.rec));
    }
}

#[cfg(test)]
mod tests;
