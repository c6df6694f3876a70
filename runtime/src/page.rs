//! The status page on the ops server: `GET /` is one HTML file built into the binary (no CDN, no
//! Node build), and `GET /api/stream` feeds it a snapshot a second as server-sent events;
//! `GET /api/page` is the same snapshot once. Everything here reads what the event loop already
//! published (the health view, the API's rings): nothing waits on the loop.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::api::SharedApi;
use crate::ops::HealthView;

const PAGE_HTML: &str = include_str!("page/index.html");

/// A snapshot is sent this often on each stream.
pub const PAGE_STREAM_MS: u64 = 1_000;
/// Rows of each list (orders, fills, signals) a snapshot carries.
pub const PAGE_ROWS_MAX: usize = 20;

#[derive(Clone)]
struct PageState {
    health: watch::Receiver<Arc<HealthView>>,
    api: SharedApi,
}

pub fn router(health: watch::Receiver<Arc<HealthView>>, api: SharedApi) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/page", get(once))
        .route("/api/stream", get(stream))
        .with_state(PageState { health, api })
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE_HTML,
    )
        .into_response()
}

/// What the page shows, as it stands.
fn snapshot(s: &PageState) -> Value {
    let view = s.health.borrow().clone();
    let (_, health) = crate::ops::health_answer(&view, tokio::time::Instant::now().into_std());
    let a = s.api.lock().unwrap_or_else(|p| p.into_inner());
    let newest = |q: &std::collections::VecDeque<Value>| -> Vec<Value> {
        q.iter().rev().take(PAGE_ROWS_MAX).cloned().collect()
    };
    let signals: Vec<&keel_core::trading::strategy::Signal> =
        a.signals.iter().rev().take(PAGE_ROWS_MAX).collect();
    json!({
        "status": health["status"],
        "health": health,
        "books": view.page["books"],
        "links": view.page["links"],
        "series": a.series,
        "positions": a.positions_json(),
        "orders": newest(&a.orders),
        "fills": newest(&a.fills),
        "signals": signals,
        "wallet": a.wallet,
        "kill_switch": a.kill_switch,
    })
}

async fn once(State(s): State<PageState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        snapshot(&s).to_string(),
    )
        .into_response()
}

async fn stream(
    State(s): State<PageState>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut every = tokio::time::interval(Duration::from_millis(PAGE_STREAM_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let events = futures_util::stream::unfold((s, every), |(s, mut every)| async move {
        every.tick().await;
        let data = snapshot(&s).to_string();
        Some((Ok(Event::default().data(data)), (s, every)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_one_self_contained_file() {
        assert!(PAGE_HTML.contains("/api/stream"));
        for outside in ["http://", "https://", "//cdn", "<link ", "src=\""] {
            assert!(
                !PAGE_HTML.contains(outside),
                "the page fetches {outside}... from elsewhere"
            );
        }
    }
}
