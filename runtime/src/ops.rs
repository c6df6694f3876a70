//! The ops HTTP server: GET /health (JSON; 200 when ok or degraded, 503 when down) and
//! GET /metrics (Prometheus text). It runs on a thread of its own and reads snapshots the driver
//! publishes, so a scrape never takes turns on the event loop; and a loop that stops publishing
//! shows as down within [`HEALTH_STALE_MS`] instead of leaving its last answer standing.

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

/// A health view older than this means the event loop stopped publishing (it publishes every
/// [`crate::driver::PUBLISH_MS`]).
pub const HEALTH_STALE_MS: u64 = 2_000;

/// The health of the engine at one moment, already rendered.
#[derive(Debug, Clone)]
pub struct HealthView {
    pub status: Overall,
    pub body: Value,
    /// What the status page shows beyond /health: each book's age and spread, each link.
    pub page: Value,
    /// When the loop published it.
    pub at: std::time::Instant,
}

fn wall_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl HealthView {
    pub fn starting() -> HealthView {
        HealthView {
            status: Overall::Degraded,
            body: json!({"status": "degraded", "components": {}}),
            page: json!({"books": [], "links": []}),
            at: wall_now(),
        }
    }

    pub fn from_engine(engine: &Engine, now: Time) -> HealthView {
        let status = engine.overall(now);
        let mut components = serde_json::Map::new();
        for (id, c) in engine.health().components() {
            let name = engine.health().name(id);
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
        let book_rows: Vec<Value> = market
            .book_ids()
            .map(|id| {
                let b = market.book(id);
                let (bid, ask) = (b.best_bid().ok(), b.best_ask().ok());
                let spread = match (bid, ask) {
                    (Some(b), Some(a)) => a.px.checked_sub(b.px),
                    _ => None,
                };
                json!({
                    "topic": market.book_topic(id),
                    "symbol": market.book_symbol(id),
                    "state": b.state().as_str(),
                    "age_ms": market
                        .book_last_frame_at(id)
                        .map(|t| now.since(t).as_millis() as u64),
                    "bid": bid.map(|l| l.px),
                    "ask": ask.map(|l| l.px),
                    "spread": spread,
                })
            })
            .collect();
        let links: Vec<Value> = engine
            .links()
            .iter()
            .map(|l| {
                let state = match l.state() {
                    keel_core::engine::link::LinkState::Idle => "idle",
                    keel_core::engine::link::LinkState::Waiting { .. } => "waiting",
                    keel_core::engine::link::LinkState::Connecting { .. } => "connecting",
                    keel_core::engine::link::LinkState::Open if l.is_live() => "live",
                    keel_core::engine::link::LinkState::Open => "open",
                    keel_core::engine::link::LinkState::Stopped => "stopped",
                };
                json!({
                    "id": l.id().0,
                    "url": keel_core::redact::redact_url(&l.config().url),
                    "state": state,
                    "topics": l.subscriptions().len(),
                    "reconnects": l.counters().reconnects,
                    "last_error": l.last_error().map(|(e, _)| keel_core::redact::redact_urls_in(e).into_owned()),
                })
            })
            .collect();
        HealthView {
            status,
            page: json!({"books": book_rows, "links": links}),
            at: wall_now(),
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
    let (code, body) = health_answer(&view, wall_now());
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn health_answer(view: &HealthView, now: std::time::Instant) -> (StatusCode, Value) {
    let age_ms = now.saturating_duration_since(view.at).as_millis() as u64;
    if age_ms > HEALTH_STALE_MS {
        let body = json!({
            "status": "down",
            "reason": format!("the event loop has not published health for {age_ms} ms"),
            "last": view.body,
        });
        return (StatusCode::SERVICE_UNAVAILABLE, body);
    }
    let code = match view.status {
        Overall::Ok | Overall::Degraded => StatusCode::OK,
        Overall::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, view.body.clone())
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

/// The bearer token every ops endpoint but /health requires when the server is reachable from
/// beyond loopback. Never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct OpsToken(pub String);

impl std::fmt::Debug for OpsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsToken(<redacted>)")
    }
}

/// Every route of `app` but /health and the status page's empty shell answers 401 without `Authorization: Bearer <token>`
/// (compared in constant time).
pub fn require_token(app: Router, token: OpsToken) -> Router {
    let token = Arc::new(token);
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            async move {
                // /health for probes; / is the status page itself, which holds no data and
                // asks for the token to read any.
                // /api/signals has a token of its own.
                if matches!(req.uri().path(), "/health" | "/" | "/api/signals") {
                    return next.run(req).await;
                }
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if keel_core::wire::sign::signatures_equal(given, &token.0) {
                    next.run(req).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"error":"missing or wrong bearer token (Authorization: Bearer ...)"}"#,
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// Binds the ops server; the error names the address when it is taken.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    let err = |e: std::io::Error| format!("ops server cannot listen on {addr}: {e}");
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    // A burst of connections waits in the kernel's queue, not in SYN retries, while the
    // listener closes the oldest to take them (the kernel caps this at its somaxconn).
    socket.listen(OPS_BACKLOG).map_err(err)
}

/// The ops listener's accept queue.
pub const OPS_BACKLOG: u32 = 4_096;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_a_token_every_endpoint_but_health_needs_it() {
        let (_tx, rx) = watch::channel(Arc::new(HealthView::starting()));
        let app = require_token(
            router(rx, Arc::new(Metrics::new())),
            OpsToken("s3cret-token".into()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::run::install_crypto();
        let client = reqwest::Client::new();
        let get = |path: &str, token: Option<&str>| {
            let mut r = client.get(format!("http://{addr}{path}"));
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            r.send()
        };
        assert_eq!(get("/health", None).await.unwrap().status(), 200);
        assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
        assert_eq!(get("/metrics", Some("wrong")).await.unwrap().status(), 401);
        assert_eq!(
            get("/metrics", Some("s3cret-token"))
                .await
                .unwrap()
                .status(),
            200
        );
        let shown = format!("{:?}", OpsToken("s3cret-token".into()));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn a_health_view_the_loop_stopped_refreshing_reads_as_down() {
        let mut view = HealthView::starting();
        view.status = Overall::Ok;
        let (code, _) = health_answer(&view, view.at + std::time::Duration::from_millis(300));
        assert_eq!(code, StatusCode::OK);
        let later = view.at + std::time::Duration::from_millis(HEALTH_STALE_MS + 1);
        let (code, body) = health_answer(&view, later);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "down");
        assert!(
            body["reason"]
                .as_str()
                .unwrap()
                .contains("has not published")
        );
    }
}
