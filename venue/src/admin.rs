//! `/admin`: inject faults and read the venue's truth (books, counters) in tests.

use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::faults::Fault;
use crate::rest::json_response;
use crate::state::Venue;

pub(crate) async fn admin_fault(State(venue): State<Venue>, body: String) -> Response {
    match serde_json::from_str::<Fault>(&body) {
        Ok(f) => {
            tracing::info!(fault = ?f, "venue: fault injected");
            venue.apply_fault(f);
            json_response(StatusCode::OK, r#"{"ok":true}"#.into())
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"ok": false, "error": format!("bad fault: {e}")}).to_string(),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct BookQuery {
    symbol: String,
    depth: Option<u16>,
}

pub(crate) async fn admin_book(State(venue): State<Venue>, Query(q): Query<BookQuery>) -> Response {
    match venue.published_book(&q.symbol, q.depth.unwrap_or(1000)) {
        Some(b) => json_response(
            StatusCode::OK,
            serde_json::to_string(&b).unwrap_or_default(),
        ),
        None => json_response(StatusCode::NOT_FOUND, r#"{"error":"no such book"}"#.into()),
    }
}

pub(crate) async fn admin_stats(State(venue): State<Venue>) -> Response {
    let s = venue.stats();
    let body = serde_json::json!({
        "connections": s.connections.load(Ordering::Relaxed),
        "connections_total": s.connections_total.load(Ordering::Relaxed),
        "refused": s.refused.load(Ordering::Relaxed),
        "frames_sent": s.frames_sent.load(Ordering::Relaxed),
        "rest_requests": s.rest_requests.load(Ordering::Relaxed),
        "rest_forbidden": s.rest_forbidden.load(Ordering::Relaxed),
        "lagged_drops": s.lagged_drops.load(Ordering::Relaxed),
    });
    json_response(StatusCode::OK, body.to_string())
}
