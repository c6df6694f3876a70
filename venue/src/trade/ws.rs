//! The private WebSocket at `/v5/private`: `op: auth` with Bybit's signature, pings, and the
//! `order`, `execution`, `position` and `wallet` topics (all-in-one or per category) in Bybit's
//! envelope: `{"id","topic","creationTime","data":[...]}`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use keel_core::wire::sign::{signatures_equal, ws_auth_signature};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::config::{ANSWER_DELAY_MS, Category};
use crate::state::Venue;

/// Topics the private stream serves, all-in-one and per category.
const TOPICS: [&str; 10] = [
    "order",
    "order.linear",
    "order.spot",
    "execution",
    "execution.linear",
    "execution.spot",
    "position",
    "position.linear",
    "wallet",
    "greeks",
];

pub(crate) async fn private_ws(ws: WebSocketUpgrade, State(venue): State<Venue>) -> Response {
    if venue.refusing() {
        venue.stats().refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "refusing connections").into_response();
    }
    ws.on_upgrade(move |socket| connection(socket, venue))
}

/// Whether a push of `topic` in `category` goes to a subscription to `sub`.
fn matches(sub: &str, topic: &str, category: Option<Category>) -> bool {
    match sub.split_once('.') {
        None => sub == topic,
        Some((t, c)) => t == topic && category.is_some_and(|x| x.as_str() == c),
    }
}

async fn connection(socket: WebSocket, venue: Venue) {
    let stats = venue.stats();
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let conn_id = format!(
        "sim-private-{}",
        stats.connections_total.load(Ordering::Relaxed)
    );
    let mut pushes = venue.inner.private_tx.subscribe();
    let mut drop_rx = venue.inner.drop_private_tx.subscribe();
    let mut drop_all = venue.inner.drop_tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut uid: Option<u64> = None;
    let mut subs: HashSet<String> = HashSet::new();
    let mut pushed = 0u64;
    loop {
        let stalled = venue
            .state()
            .faults
            .stall_private_until
            .is_some_and(|t| Instant::now() < t);
        let replies: Vec<String> = tokio::select! {
            biased;
            _ = drop_rx.changed() => break,
            _ = drop_all.changed() => break,
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if stalled {
                    continue;
                }
                let request = serde_json::from_str::<Value>(&text).ok();
                let op = request.as_ref().and_then(|v| v.get("op")?.as_str());
                if matches!(op, Some("auth" | "subscribe")) {
                    tokio::time::sleep(std::time::Duration::from_millis(ANSWER_DELAY_MS)).await;
                }
                answer(&venue, &conn_id, request, &mut uid, &mut subs)
            }
            p = pushes.recv(), if !stalled => {
                let p = match p {
                    Ok(p) => p,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        stats.lagged_drops.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let (owner, push) = &*p;
                if Some(*owner) != uid {
                    continue;
                }
                let now = venue.now_ms();
                subs.iter()
                    .filter(|s| matches(s, push.topic, push.category))
                    .map(|s| {
                        pushed += 1;
                        format!(
                            r#"{{"id":"{owner}_{}_{now}_{pushed}","topic":"{s}","creationTime":{now},"data":[{}]}}"#,
                            push.topic, push.data
                        )
                    })
                    .collect()
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)), if stalled => continue,
        };
        let mut failed = false;
        for r in replies {
            if sink.send(Message::Text(r.into())).await.is_err() {
                failed = true;
                break;
            }
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        if failed {
            break;
        }
    }
    let _ = sink.close().await;
    stats.connections.fetch_sub(1, Ordering::Relaxed);
}

fn answer(
    venue: &Venue,
    conn_id: &str,
    request: Option<Value>,
    uid: &mut Option<u64>,
    subs: &mut HashSet<String>,
) -> Vec<String> {
    let Some(v) = request else {
        return vec![format!(
            r#"{{"success":false,"ret_msg":"error:invalid request","op":"","conn_id":"{conn_id}"}}"#
        )];
    };
    let rid = v
        .get("req_id")
        .map_or_else(String::new, |r| format!(r#","req_id":{r}"#));
    let op = v.get("op").and_then(Value::as_str).unwrap_or("");
    let args: Vec<&Value> = v
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let fail = |op: &str, msg: &str| {
        vec![format!(
            r#"{{"success":false,"ret_msg":"{msg}","op":"{op}","conn_id":"{conn_id}"{rid}}}"#
        )]
    };
    match op {
        "auth" => {
            let key = args.first().and_then(|x| x.as_str()).unwrap_or("");
            let expires = args
                .get(1)
                .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()));
            let sign = args.get(2).and_then(|x| x.as_str()).unwrap_or("");
            let st = venue.state();
            let Some(a) = st.accounts.iter().find(|a| a.api_key == key) else {
                return fail("auth", "Invalid apikey");
            };
            // The docs name no failure texts for auth; these follow the REST ones.
            let Some(expires) = expires.filter(|e| *e > venue.now_ms()) else {
                return fail("auth", "Params Error: request expired");
            };
            if !signatures_equal(&ws_auth_signature(&a.api_secret, expires), sign) {
                return fail("auth", "Invalid sign");
            }
            *uid = Some(a.uid);
            vec![format!(
                r#"{{"success":true,"ret_msg":"","op":"auth","conn_id":"{conn_id}"{rid}}}"#
            )]
        }
        "ping" => vec![format!(
            r#"{{"op":"pong","args":["{}"],"conn_id":"{conn_id}"{rid}}}"#,
            venue.now_ms()
        )],
        "subscribe" | "unsubscribe" => {
            // A subscription may come before the auth it depends on (pybit sends both at once
            // from two threads, and works against Bybit): it is kept, and pushes flow once the
            // connection is authenticated.
            let topics: Vec<&str> = args.iter().filter_map(|x| x.as_str()).collect();
            if let Some(bad) = topics.iter().find(|t| !TOPICS.contains(t)) {
                return fail(op, &format!("error:handler not found,topic:{bad}"));
            }
            for t in topics {
                if op == "subscribe" {
                    subs.insert(t.to_string());
                } else {
                    subs.remove(t);
                }
            }
            vec![format!(
                r#"{{"success":true,"ret_msg":"","op":"{op}","conn_id":"{conn_id}"{rid}}}"#
            )]
        }
        other => fail(other, "error:unknown op"),
    }
}
