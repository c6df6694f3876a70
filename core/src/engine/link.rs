//! One WebSocket connection: connect, subscribe, keep alive, detect silence, reconnect.
//!
//! There is exactly one retry loop per link and it is this state machine: a failure anywhere
//! (connect error, close, pong timeout, data idle, ack timeout) lands in `Waiting`, whose
//! deadline comes from the backoff and the venue's shared connection budget. Nothing nests.

use std::collections::VecDeque;
use std::time::Duration;

use super::backoff::{Backoff, BackoffConfig};
use super::budget::ConnectBudget;
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::frame::{Ack, Control};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub url: String,
    /// Bybit: "Spot can input up to 10 args for each subscription request".
    pub args_per_request_max: usize,
    pub ping_interval_ms: u64,
    pub pong_timeout_ms: u64,
    /// No frame of any kind for this long: the socket is open but dead.
    pub idle_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub ack_timeout_ms: u64,
    pub backoff: BackoffConfig,
    /// A private stream: every connection authenticates (the runtime signs) before it
    /// subscribes.
    pub auth: bool,
}

impl LinkConfig {
    pub fn new(url: impl Into<String>) -> Self {
        LinkConfig {
            url: url.into(),
            args_per_request_max: 10,
            ping_interval_ms: 20_000,
            pong_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            ack_timeout_ms: 10_000,
            backoff: BackoffConfig::default(),
            auth: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    Pending,
    Active,
    /// Refused by the venue: never retried on this connection, reported once.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub state: SubState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Idle,
    /// Waiting for the backoff or the connection budget before the next connect.
    Waiting {
        until: Time,
    },
    Connecting {
        deadline: Time,
    },
    Open,
    Stopped,
}

/// Why a connection was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossReason {
    ConnectFailed(String),
    ConnectTimeout,
    Closed(String),
    PongTimeout,
    Idle,
    AckTimeout,
    WriteQueueFull,
    /// The venue refused the connection's authentication.
    AuthFailed(String),
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            LossReason::ConnectTimeout => f.write_str("connect timed out"),
            LossReason::Closed(e) => write!(f, "connection closed: {e}"),
            LossReason::PongTimeout => f.write_str("no pong in time"),
            LossReason::Idle => f.write_str("no data in time"),
            LossReason::AckTimeout => f.write_str("subscription not acknowledged in time"),
            LossReason::WriteQueueFull => f.write_str("write queue full"),
            LossReason::AuthFailed(e) => write!(f, "authentication refused: {e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutput {
    /// Open connection number `conn` to the link's URL.
    Connect {
        conn: u64,
        url: String,
    },
    Send {
        conn: u64,
        text: String,
    },
    Close {
        conn: u64,
    },
    /// Authenticate connection `conn` (the runtime signs `op: auth` with the key pair).
    Authenticate {
        conn: u64,
    },
    /// The connection is open; every book it carries must now wait for a fresh snapshot.
    Opened {
        conn: u64,
    },
    Lost {
        reason: LossReason,
        retry_in: Duration,
    },
    SubscribeFailed {
        topics: Vec<String>,
        message: String,
    },
    /// Every topic has an answer (active or failed).
    Live,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub connect_attempts: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub pings: u64,
    pub pong_timeouts: u64,
    pub idle_timeouts: u64,
    pub frames: u64,
    pub subscribe_failures: u64,
}

#[derive(Debug, Clone)]
struct PendingReq {
    req_id: String,
    topics: Vec<usize>,
    deadline: Time,
}

#[derive(Debug, Clone)]
pub struct Link {
    id: LinkId,
    config: LinkConfig,
    subs: Vec<Subscription>,
    state: LinkState,
    conn: u64,
    backoff: Backoff,
    opened_at: Option<Time>,
    last_rx: Time,
    next_ping_at: Time,
    ping_deadline: Option<Time>,
    pending: Vec<PendingReq>,
    req_seq: u64,
    live: bool,
    /// Waiting for the answer to `op: auth` until then.
    auth_deadline: Option<Time>,
    last_error: Option<(String, Time)>,
    outputs: VecDeque<LinkOutput>,
    counters: LinkCounters,
}

impl Link {
    pub fn new(id: LinkId, config: LinkConfig, topics: Vec<String>) -> Self {
        Link {
            id,
            backoff: Backoff::new(config.backoff),
            config,
            subs: topics
                .into_iter()
                .map(|topic| Subscription {
                    topic,
                    state: SubState::Pending,
                })
                .collect(),
            state: LinkState::Idle,
            conn: 0,
            opened_at: None,
            last_rx: Time::ZERO,
            next_ping_at: Time::MAX,
            ping_deadline: None,
            pending: Vec::new(),
            req_seq: 0,
            live: false,
            auth_deadline: None,
            last_error: None,
            outputs: VecDeque::new(),
            counters: LinkCounters::default(),
        }
    }

    // ----- getters -----

    pub fn id(&self) -> LinkId {
        self.id
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// The number of the current (or last) connection.
    pub fn conn(&self) -> u64 {
        self.conn
    }

    pub fn is_live(&self) -> bool {
        self.state == LinkState::Open && self.live
    }

    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subs
    }

    pub fn carries(&self, topic: &str) -> bool {
        self.subs.iter().any(|s| s.topic == topic)
    }

    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    pub fn last_error(&self) -> Option<&(String, Time)> {
        self.last_error.as_ref()
    }

    pub fn opened_at(&self) -> Option<Time> {
        self.opened_at
    }

    pub fn backoff_attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    // ----- inputs -----

    /// Asks for the first connection.
    pub fn start(&mut self, now: Time) {
        if self.state == LinkState::Idle {
            self.state = LinkState::Waiting { until: now };
        }
    }

    pub fn stop(&mut self) {
        if self.state == LinkState::Open || matches!(self.state, LinkState::Connecting { .. }) {
            self.outputs
                .push_back(LinkOutput::Close { conn: self.conn });
        }
        self.state = LinkState::Stopped;
    }

    pub fn handle_connected(&mut self, now: Time, conn: u64) {
        if conn != self.conn || !matches!(self.state, LinkState::Connecting { .. }) {
            return;
        }
        self.state = LinkState::Open;
        self.counters.connects += 1;
        self.opened_at = Some(now);
        self.last_rx = now;
        self.next_ping_at = now + Duration::from_millis(self.config.ping_interval_ms);
        self.ping_deadline = None;
        self.live = false;
        self.pending.clear();
        self.auth_deadline = None;
        self.outputs.push_back(LinkOutput::Opened { conn });
        for s in &mut self.subs {
            if !matches!(s.state, SubState::Failed(_)) {
                s.state = SubState::Pending;
            }
        }
        if self.config.auth {
            self.auth_deadline = Some(now + Duration::from_millis(self.config.ack_timeout_ms));
            self.outputs.push_back(LinkOutput::Authenticate { conn });
            return;
        }
        self.subscribe_all(now);
    }

    fn subscribe_all(&mut self, now: Time) {
        let todo: Vec<usize> = (0..self.subs.len())
            .filter(|i| self.subs[*i].state == SubState::Pending)
            .collect();
        for chunk in todo.chunks(self.config.args_per_request_max.max(1)) {
            self.send_subscribe(now, chunk.to_vec());
        }
        self.check_live();
    }

    pub fn handle_connect_failed(&mut self, now: Time, conn: u64, rng: &mut Rng, error: String) {
        if conn == self.conn && matches!(self.state, LinkState::Connecting { .. }) {
            self.lose(now, rng, LossReason::ConnectFailed(error));
        }
    }

    pub fn handle_closed(&mut self, now: Time, conn: u64, rng: &mut Rng, why: String) {
        if conn == self.conn && self.state == LinkState::Open {
            self.lose(now, rng, LossReason::Closed(why));
        }
    }

    /// The runtime could not queue a write: the connection cannot keep up and is replaced.
    pub fn handle_write_overflow(&mut self, now: Time, conn: u64, rng: &mut Rng) {
        if conn == self.conn && self.state == LinkState::Open {
            self.lose(now, rng, LossReason::WriteQueueFull);
        }
    }

    /// Any frame on the current connection proves it alive. Returns false for frames of an
    /// older connection, which the caller must drop.
    pub fn note_frame(&mut self, now: Time, conn: u64) -> bool {
        if conn != self.conn || self.state != LinkState::Open {
            return false;
        }
        self.last_rx = now;
        self.counters.frames += 1;
        true
    }

    pub fn handle_control(&mut self, now: Time, rng: &mut Rng, c: &Control) {
        match c {
            Control::Pong { .. } => self.ping_deadline = None,
            Control::Ack(ack) if ack.op == "auth" => self.handle_auth(now, rng, ack),
            Control::Ack(ack) => self.handle_ack(now, ack),
            Control::Request(_) => {}
        }
    }

    fn handle_auth(&mut self, now: Time, rng: &mut Rng, ack: &Ack) {
        if self.auth_deadline.take().is_none() || self.state != LinkState::Open {
            return;
        }
        if ack.success {
            self.subscribe_all(now);
        } else {
            self.lose(now, rng, LossReason::AuthFailed(ack.ret_msg.clone()));
        }
    }

    fn handle_ack(&mut self, _now: Time, ack: &Ack) {
        if ack.op != "subscribe" {
            return;
        }
        // Answers without a req_id settle the oldest outstanding request.
        let idx = match &ack.req_id {
            Some(r) if !r.is_empty() => self.pending.iter().position(|p| &p.req_id == r),
            _ => (!self.pending.is_empty()).then_some(0),
        };
        let Some(idx) = idx else { return };
        let req = self.pending.remove(idx);
        match ack.result() {
            Ok(()) => {
                for i in req.topics {
                    if self.subs[i].state == SubState::Pending {
                        self.subs[i].state = SubState::Active;
                    }
                }
            }
            Err(e) => {
                // A rejection naming topics fails those; one naming none fails the request.
                let named: Vec<usize> = req
                    .topics
                    .iter()
                    .copied()
                    .filter(|i| e.topics.iter().any(|t| *t == self.subs[*i].topic))
                    .collect();
                let failed = if named.is_empty() {
                    req.topics.clone()
                } else {
                    named
                };
                let topics: Vec<String> =
                    failed.iter().map(|i| self.subs[*i].topic.clone()).collect();
                for i in &failed {
                    self.subs[*i].state = SubState::Failed(e.message.clone());
                }
                for i in req.topics.iter().filter(|i| !failed.contains(i)) {
                    self.subs[*i].state = SubState::Active;
                }
                self.counters.subscribe_failures += topics.len() as u64;
                self.outputs.push_back(LinkOutput::SubscribeFailed {
                    topics,
                    message: e.message,
                });
            }
        }
        self.check_live();
    }

    /// Asks the venue for a fresh snapshot of `topic` by subscribing again.
    pub fn resubscribe(&mut self, now: Time, topic: &str) -> bool {
        if self.state != LinkState::Open {
            return false;
        }
        let Some(i) = self.subs.iter().position(|s| s.topic == topic) else {
            return false;
        };
        if matches!(self.subs[i].state, SubState::Failed(_)) {
            return false;
        }
        self.req_seq += 1;
        let req_id = format!("unsub-{}-{}", self.conn, self.req_seq);
        self.outputs.push_back(LinkOutput::Send {
            conn: self.conn,
            text: format!(r#"{{"req_id":"{req_id}","op":"unsubscribe","args":["{topic}"]}}"#),
        });
        self.subs[i].state = SubState::Pending;
        self.send_subscribe(now, vec![i]);
        true
    }

    pub fn handle_timeout(&mut self, now: Time, budget: &mut ConnectBudget, rng: &mut Rng) {
        match self.state {
            LinkState::Waiting { until } if now >= until => {
                let first = self.counters.connect_attempts == 0;
                let granted = if first {
                    budget.try_take_first(now)
                } else {
                    budget.try_take(now)
                };
                if granted {
                    self.conn += 1;
                    self.counters.connect_attempts += 1;
                    self.state = LinkState::Connecting {
                        deadline: now + Duration::from_millis(self.config.connect_timeout_ms),
                    };
                    self.outputs.push_back(LinkOutput::Connect {
                        conn: self.conn,
                        url: self.config.url.clone(),
                    });
                } else {
                    self.state = LinkState::Waiting {
                        until: if first {
                            budget.earliest_first(now)
                        } else {
                            budget.earliest(now)
                        },
                    };
                }
            }
            LinkState::Connecting { deadline } if now >= deadline => {
                self.outputs
                    .push_back(LinkOutput::Close { conn: self.conn });
                self.lose(now, rng, LossReason::ConnectTimeout);
            }
            LinkState::Open => self.open_timers(now, rng),
            _ => {}
        }
    }

    fn open_timers(&mut self, now: Time, rng: &mut Rng) {
        if let Some(d) = self.ping_deadline
            && now >= d
        {
            self.counters.pong_timeouts += 1;
            return self.lose(now, rng, LossReason::PongTimeout);
        }
        if now.since(self.last_rx) >= Duration::from_millis(self.config.idle_timeout_ms) {
            self.counters.idle_timeouts += 1;
            return self.lose(now, rng, LossReason::Idle);
        }
        if self.pending.iter().any(|p| now >= p.deadline)
            || self.auth_deadline.is_some_and(|d| now >= d)
        {
            return self.lose(now, rng, LossReason::AckTimeout);
        }
        if now >= self.next_ping_at {
            self.req_seq += 1;
            self.counters.pings += 1;
            self.outputs.push_back(LinkOutput::Send {
                conn: self.conn,
                text: format!(r#"{{"req_id":"ping-{}","op":"ping"}}"#, self.req_seq),
            });
            self.next_ping_at = now + Duration::from_millis(self.config.ping_interval_ms);
            if self.ping_deadline.is_none() {
                self.ping_deadline = Some(now + Duration::from_millis(self.config.pong_timeout_ms));
            }
        }
        if let Some(opened) = self.opened_at
            && self.backoff.attempt() > 0
            && now.since(opened) >= Duration::from_millis(self.config.backoff.reset_after_ms)
        {
            self.backoff.reset();
        }
    }

    fn lose(&mut self, now: Time, rng: &mut Rng, reason: LossReason) {
        if self.state == LinkState::Open {
            self.outputs
                .push_back(LinkOutput::Close { conn: self.conn });
            self.counters.reconnects += 1;
        }
        let retry_in = self.backoff.next_delay(rng);
        self.last_error = Some((reason.to_string(), now));
        self.state = LinkState::Waiting {
            until: now + retry_in,
        };
        self.live = false;
        self.pending.clear();
        self.auth_deadline = None;
        self.ping_deadline = None;
        self.next_ping_at = Time::MAX;
        self.outputs
            .push_back(LinkOutput::Lost { reason, retry_in });
    }

    fn send_subscribe(&mut self, now: Time, topics: Vec<usize>) {
        self.req_seq += 1;
        let req_id = format!("sub-{}-{}", self.conn, self.req_seq);
        let args: Vec<String> = topics
            .iter()
            .map(|i| format!("\"{}\"", self.subs[*i].topic))
            .collect();
        self.outputs.push_back(LinkOutput::Send {
            conn: self.conn,
            text: format!(
                r#"{{"req_id":"{req_id}","op":"subscribe","args":[{}]}}"#,
                args.join(",")
            ),
        });
        self.pending.push(PendingReq {
            req_id,
            topics,
            deadline: now + Duration::from_millis(self.config.ack_timeout_ms),
        });
    }

    fn check_live(&mut self) {
        if !self.live
            && self.state == LinkState::Open
            && self.pending.is_empty()
            && self.auth_deadline.is_none()
        {
            self.live = true;
            self.outputs.push_back(LinkOutput::Live);
        }
    }

    // ----- outputs -----

    #[must_use]
    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        self.outputs.pop_front()
    }

    /// The earliest deadline; a pure function of the state.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            LinkState::Waiting { until } => Some(until),
            LinkState::Connecting { deadline } => Some(deadline),
            LinkState::Open => {
                let idle = self.last_rx + Duration::from_millis(self.config.idle_timeout_ms);
                let mut t = idle.min(self.next_ping_at);
                if let Some(d) = self.ping_deadline {
                    t = t.min(d);
                }
                if let Some(p) = self.pending.iter().map(|p| p.deadline).min() {
                    t = t.min(p);
                }
                if let Some(opened) = self.opened_at
                    && self.backoff.attempt() > 0
                {
                    t = t.min(opened + Duration::from_millis(self.config.backoff.reset_after_ms));
                }
                Some(t)
            }
            LinkState::Idle | LinkState::Stopped => None,
        }
    }
}

#[cfg(test)]
mod tests;
