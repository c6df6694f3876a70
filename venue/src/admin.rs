//! `/admin`: inject faults and read the venue's truth (books, counters, accounts) in tests.

use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::config::Category;
use crate::faults::Fault;
use crate::rest::json_response;
use crate::state::Venue;
use crate::trade::model::{execution_json, order_json, position_json};

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

#[derive(Deserialize)]
pub(crate) struct AccountQuery {
    /// The account's API key; the first account when absent.
    api_key: Option<String>,
}

/// The venue's truth for tests: an account's orders, executions or positions as JSON lists
/// (the same fields the private API writes).
fn account_view(venue: &Venue, q: &AccountQuery, what: &str) -> Response {
    match account_json(venue, q.api_key.as_deref(), what) {
        Some(body) => json_response(StatusCode::OK, body),
        None => json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"no such account"}"#.into(),
        ),
    }
}

/// An account's orders, executions or positions as a JSON array (the first account when no key
/// is given); `None` when there is no such account.
pub(crate) fn account_json(venue: &Venue, api_key: Option<&str>, what: &str) -> Option<String> {
    let st = venue.state();
    let a = st
        .accounts
        .iter()
        .find(|a| api_key.is_none_or(|k| k == a.api_key))?;
    let spec = |c: Category, s: &str| st.cat(c).markets.get(s).map(|m| m.spec.clone());
    let items: Vec<String> = match what {
        "orders" => a
            .orders
            .iter()
            .filter_map(|o| Some(order_json(o, &spec(o.category, &o.symbol)?, true)))
            .collect(),
        "executions" => a
            .executions
            .iter()
            .filter_map(|e| Some(execution_json(e, &spec(e.category, &e.symbol)?, true)))
            .collect(),
        _ => a
            .positions
            .iter()
            .filter_map(|(s, p)| {
                let m = st.cat(Category::Linear).markets.get(s)?;
                Some(position_json(
                    s,
                    p,
                    &m.spec,
                    (m.best_bid() + m.best_ask()) / 2,
                    true,
                ))
            })
            .collect(),
    };
    Some(format!("[{}]", items.join(",")))
}

pub(crate) async fn admin_orders(
    State(venue): State<Venue>,
    Query(q): Query<AccountQuery>,
) -> Response {
    account_view(&venue, &q, "orders")
}

pub(crate) async fn admin_executions(
    State(venue): State<Venue>,
    Query(q): Query<AccountQuery>,
) -> Response {
    account_view(&venue, &q, "executions")
}

pub(crate) async fn admin_positions(
    State(venue): State<Venue>,
    Query(q): Query<AccountQuery>,
) -> Response {
    account_view(&venue, &q, "positions")
}
