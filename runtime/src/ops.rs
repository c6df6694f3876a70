//! The ops HTTP server: GET /health (JSON; 200 when ok or degraded, 503 when down) and
//! GET /metrics (Prometheus text). It reads snapshots the driver publishes, so a slow scrape can
//! never touch the event loop.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_core::engine::health::Overall;
use keel_core::{Engine, Time};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The health of the engine at one moment, already rendered.
#[derive(Debug, Clone)]
pub struct HealthView {
    pub status: Overall,
    pub body: Value,
}

impl HealthView {
    pub fn starting() -> HealthView {
        HealthView {
            status: Overall::Degraded,
            body: json!({"status": "degraded", "components": {}}),
        }
    }

    pub fn from_engine(engine: &Engine, now: Time) -> HealthView {
        let status = engine.overall(now);
        let mut components = serde_json::Map::new();
        for (name, c) in engine.health().components() {
            let mut v = json!({
                "status": c.status.as_str(),
                "since_s": now.since(c.since).as_secs(),
            });
            if let Some((e, at)) = &c.last_error {
                v["last_error"] = json!(e);
                v["last_error_age_s"] = json!(now.since(*at).as_secs());
            }
            if !c.detail.is_empty() {
                v["detail"] = json!(c.detail);
            }
            components.insert(name.to_string(), v);
        }
        let market = engine.market();
        let books: serde_json::Map<String, Value> = market
            .book_ids()
            .map(|id| {
                (
                    market.book_topic(id).to_string(),
                    json!(market.book(id).state().as_str()),
                )
            })
            .collect();
        HealthView {
            status,
            body: json!({
                "status": status.as_str(),
                "components": components,
                "books": books,
                "frames": engine.counters().frames,
                "reconnects": engine.reconnects(),
                "clock_skew_ms": engine.clock_skew_ms(),
            }),
        }
    }
}

#[derive(Clone)]
struct OpsState {
    health: watch::Receiver<Arc<HealthView>>,
    metrics: Arc<Metrics>,
}

pub fn router(health: watch::Receiver<Arc<HealthView>>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(get_health))
        .route("/metrics", get(get_metrics))
        .with_state(OpsState { health, metrics })
}

async fn get_health(State(s): State<OpsState>) -> Response {
    let view = s.health.borrow().clone();
    let code = match view.status {
        Overall::Ok | Overall::Degraded => StatusCode::OK,
        Overall::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        view.body.to_string(),
    )
        .into_response()
}

async fn get_metrics(State(s): State<OpsState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// Binds the ops server; the error names the address when it is taken.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("ops server cannot listen on {addr}: {e}"))
}
