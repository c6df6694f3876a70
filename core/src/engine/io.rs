//! What goes into the engine and what comes out of it: the runtime's whole view of the core.

use std::time::Duration;

use super::health::Overall;
use super::link::LinkId;
use super::scheduler::{HttpError, RequestId};
use crate::decimal::Level;
use crate::market::kline::ClosedCandle;
use crate::trading::compute::{SymbolSignal, Work, WorkResult};
use crate::trading::orders::{ExecRecord, OrderRecord, RateLimit, Request};
use crate::trading::strategy::Signal;
use crate::wire::topic::Interval;

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
    /// A signal from outside the engine (the signals API), checked and acted on like a
    /// strategy's.
    Signal(crate::trading::strategy::Signal),
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
    /// The answer to a private request (`Output::Private`), with the venue's rate-limit headers.
    PrivateAnswer {
        id: u64,
        status: u16,
        body: &'a str,
        wall_ms: u64,
        limit: Option<RateLimit>,
    },
    PrivateError {
        id: u64,
        error: HttpError,
    },
    /// The store committed a live order's intent.
    Durable {
        link_id: String,
    },
    /// The store could not write: live trading halts.
    StoreFailed {
        error: String,
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
    /// The daily loss limit tripped: no more orders.
    KillSwitch {
        reason: String,
    },
}

/// What the store must write for live trading: order states (intents first) and fills.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreWrite {
    Order(OrderRecord),
    Fill(ExecRecord),
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
    /// Send the signed `op: auth` on this connection (the runtime holds the key pair).
    Authenticate {
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
    /// Sign and send this private request; answer with `PrivateAnswer` or `PrivateError`.
    Private(Request),
    /// Write this to the store, in order; an order intent answers with `Durable` (or
    /// `StoreFailed`).
    Store(StoreWrite),
    /// The engine cannot run (a pre-flight check failed): exit non-zero with this message.
    Fatal(String),
    /// Shut down: every connection was closed.
    Stopped,
}
