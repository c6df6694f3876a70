//! GET /api/signals/latest, /api/positions and /api/orders on the ops server. The driver keeps
//! bounded rings of what the engine emitted; handlers only read them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_core::trading::broker::Position;
use keel_core::trading::orders::{ExecRecord, OrderRecord};
use keel_core::trading::strategy::Signal;
use serde_json::json;

/// Most signals and orders kept for the API.
pub const API_ITEMS_MAX: usize = 1_000;
/// Points the status page's charts keep (one a second: ten minutes).
pub const PAGE_SAMPLES_MAX: usize = 600;
pub const API_LIMIT_DEFAULT: usize = 20;

#[derive(Default)]
pub struct ApiState {
    pub signals: VecDeque<Signal>,
    /// Positions with their mark (the synced book's mid) when there is one.
    pub positions: Vec<(Position, Option<keel_core::Dec>)>,
    pub kill_switch: Option<String>,
    /// Orders (paper or live), the latest durable state of each, newest last.
    pub orders: VecDeque<serde_json::Value>,
    /// Durable fills, newest last.
    pub fills: VecDeque<serde_json::Value>,
    /// The status page's chart points, oldest first: wall ms, worst loop lag since the last
    /// point, frames a second, equity (realised PnL less fees, plus unrealised at the marks).
    pub series: VecDeque<serde_json::Value>,
    /// The venue's wallet at the latest reconciliation (live only).
    pub wallet: Option<keel_core::wire::private::Wallet>,
}

pub type SharedApi = Arc<Mutex<ApiState>>;

impl ApiState {
    pub fn push_signals(&mut self, s: &[Signal]) {
        for x in s {
            if self.signals.len() == API_ITEMS_MAX {
                self.signals.pop_front();
            }
            self.signals.push_back(x.clone());
        }
    }

    /// The latest state of an order replaces its earlier one.
    pub fn push_order(&mut self, r: &OrderRecord) {
        let v = json!({
            "order_link_id": r.link_id,
            "order_id": r.order_id,
            "symbol": r.plan.symbol,
            "side": r.plan.side,
            "qty": r.plan.qty,
            "filled": r.cum_qty,
            "stage": r.stage,
            "reason": r.plan.reason,
            "created_ms": r.created_ms,
        });
        if let Some(slot) = self
            .orders
            .iter_mut()
            .rev()
            .find(|o| o["order_link_id"] == v["order_link_id"])
        {
            *slot = v;
            return;
        }
        if self.orders.len() == API_ITEMS_MAX {
            self.orders.pop_front();
        }
        self.orders.push_back(v);
    }

    /// Each position with its mark and unrealised PnL at that mark.
    pub fn positions_json(&self) -> Vec<serde_json::Value> {
        self.positions
            .iter()
            .map(|(p, mark)| {
                let mut v = json!(p);
                v["mark"] = json!(mark);
                v["unrealized_pnl"] = json!(mark.map(|m| p.unrealized(m)));
                v
            })
            .collect()
    }

    /// A chart point, from the positions as they stand.
    pub fn push_sample(&mut self, wall_ms: u64, lag: std::time::Duration, frames_per_s: f64) {
        let equity: f64 = self
            .positions
            .iter()
            .map(|(p, mark)| {
                p.realized_pnl.to_f64() - p.fees.to_f64()
                    + mark.map_or(0.0, |m| p.unrealized(m).to_f64())
            })
            .sum();
        if self.series.len() == PAGE_SAMPLES_MAX {
            self.series.pop_front();
        }
        self.series.push_back(json!({
            "t": wall_ms,
            "lag_ms": lag.as_secs_f64() * 1e3,
            "fps": frames_per_s,
            "equity": equity,
        }));
    }

    pub fn push_fill(&mut self, x: &ExecRecord) {
        if self.fills.len() == API_ITEMS_MAX {
            self.fills.pop_front();
        }
        self.fills.push_back(json!({
            "exec_id": x.exec_id,
            "order_link_id": x.link_id,
            "symbol": x.symbol,
            "side": x.side,
            "px": x.px,
            "qty": x.qty,
            "fee": x.fee,
            "ts_ms": x.ts_ms,
        }));
    }
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

/// The query of a list endpoint: `limit` (1..=1000, default 20) and nothing else; anything else
/// is refused with a 400 that names it.
pub struct Limit(pub usize);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Limit {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        limit(&q).map(Limit).map_err(bad)
    }
}

fn limit(q: &HashMap<String, String>) -> Result<usize, String> {
    if let Some(k) = q.keys().find(|k| k.as_str() != "limit") {
        return Err(format!(
            "unknown parameter {k:?}; only \"limit\" is accepted"
        ));
    }
    match q.get("limit") {
        None => Ok(API_LIMIT_DEFAULT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=API_ITEMS_MAX).contains(&n) => Ok(n),
            _ => Err(format!(
                "limit must be a whole number from 1 to {API_ITEMS_MAX}, not {v:?}"
            )),
        },
    }
}

fn state(api: &SharedApi) -> std::sync::MutexGuard<'_, ApiState> {
    api.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn signals_latest(State(api): State<SharedApi>, Limit(n): Limit) -> Response {
    let s = state(&api);
    let items: Vec<&Signal> = s.signals.iter().rev().take(n).collect();
    Json(json!({"signals": items})).into_response()
}

pub async fn orders(State(api): State<SharedApi>, Limit(n): Limit) -> Response {
    let s = state(&api);
    let orders: Vec<&serde_json::Value> = s.orders.iter().rev().take(n).collect();
    let fills: Vec<&serde_json::Value> = s.fills.iter().rev().take(n).collect();
    Json(json!({"orders": orders, "fills": fills, "kill_switch": s.kill_switch})).into_response()
}

pub async fn positions(
    State(api): State<SharedApi>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(k) = q.keys().next() {
        return bad(format!(
            "unknown parameter {k:?}; /api/positions takes none"
        ));
    }
    let s = state(&api);
    Json(json!({"positions": s.positions_json(), "wallet": s.wallet, "kill_switch": s.kill_switch}))
        .into_response()
}

pub fn router(api: SharedApi) -> axum::Router {
    axum::Router::new()
        .route("/api/signals/latest", axum::routing::get(signals_latest))
        .route("/api/orders", axum::routing::get(orders))
        .route("/api/positions", axum::routing::get(positions))
        .with_state(api)
}
