//! What goes into the order machine and what comes out of it: its configuration, the orders and
//! fills it hands the store, the requests it hands the runtime, and why it refuses an order.

use std::time::Duration;

use crate::decimal::Dec;
use crate::wire::private::{self, OrderType, Side, TimeInForce};

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
    /// Look-ups of one order that failed in a row before trading halts.
    pub lookups_failed_max: u32,
    /// Orders not yet final at one time.
    pub working_max: usize,
    /// A private stream carries pushes: no order is placed while it is down or before the
    /// reconciliation it starts has finished.
    pub stream: bool,
    /// The venue's open orders, executions and positions are compared with ours this often
    /// (and after every private reconnect).
    pub reconcile_every_ms: u64,
    /// The settle coin whose open orders and positions are reconciled.
    pub settle_coin: String,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            link_prefix: "keel".into(),
            request_timeout_ms: 10_000,
            first_look_ms: 100,
            poll_ms: 1_000,
            retry_ms: 250,
            recv_window_ms: crate::wire::sign::RECV_WINDOW_MS_DEFAULT,
            creates_per_s_max: 10,
            lookups_failed_max: 20,
            working_max: 64,
            stream: false,
            reconcile_every_ms: 60_000,
            settle_coin: "USDT".into(),
        }
    }
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

impl Plan {
    /// A market order for `qty`: no price, time in force or reduce-only.
    pub fn market(
        symbol: impl Into<String>,
        side: Side,
        qty: Dec,
        reason: impl Into<String>,
    ) -> Plan {
        Plan {
            symbol: symbol.into(),
            side,
            qty,
            order_type: OrderType::Market,
            price: None,
            time_in_force: None,
            reduce_only: false,
            reason: reason.into(),
        }
    }
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
    /// The venue's positions, read by a reconciliation: the venue is the truth.
    VenuePositions(Vec<VenuePosition>),
    /// The account's wallet as the venue reports it, read by a reconciliation.
    VenueWallet(private::Wallet),
    Notice {
        error: bool,
        text: String,
    },
}

/// One of the venue's positions, signed (a short is negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenuePosition {
    pub symbol: String,
    pub qty: Dec,
    pub avg_price: Dec,
}

/// Why an order was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Halted(String),
    /// Orders from before a restart are still being resolved.
    Resolving,
    /// An order for this symbol is not final yet.
    Busy,
    /// The private stream is down or its reconciliation has not finished.
    StreamDown,
    WorkingFull,
    BadPlan(&'static str),
}
