//! The public WebSocket: subscribe and unsubscribe, pings, and forwarding the frames of a
//! connection's own topics.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use keel_core::wire::topic::{Channel, Topic};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::config::{ANSWER_DELAY_MS, Category, SPOT_ARGS_MAX, VENUE_DEPTHS};
use crate::publish::{book_frame, candle_json, ticker_fields, ticker_json};
use crate::state::{TopicState, Venue};

pub(crate) async fn ws_upgrade(
    ws: WebSocketUpgrade,
    Path(category): Path<String>,
    State(venue): State<Venue>,
) -> Response {
    let Some(category) = Category::parse(&category) else {
        return (StatusCode::NOT_FOUND, "unknown category").into_response();
    };
    if venue.refusing() {
        venue.stats().refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "refusing connections").into_response();
    }
    ws.on_upgrade(move |socket| connection(socket, venue, category))
}

/// A client's request as Bybit takes it: `op`, `args`, and a `req_id` of any JSON type, which
/// every answer echoes as it was given (ccxt sends numbers, pybit strings).
struct Request {
    op: String,
    args: Vec<String>,
    /// The raw JSON of `req_id`, if the request had one.
    req_id: Option<String>,
}

fn parse_request(text: &str) -> Result<Request, Option<String>> {
    let v: Value = serde_json::from_str(text).map_err(|_| None)?;
    let req_id = v.get("req_id").map(Value::to_string);
    let op = v.get("op").and_then(Value::as_str).ok_or(req_id.clone())?;
    let args = match v.get("args") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(req_id.clone())?,
        Some(_) => return Err(req_id),
    };
    Ok(Request {
        op: op.to_string(),
        args,
        req_id,
    })
}

/// `,"req_id":<as given>` when the request had one; Bybit adds nothing otherwise.
fn req_id_field(req_id: &Option<String>) -> String {
    req_id
        .as_ref()
        .map_or_else(String::new, |r| format!(r#","req_id":{r}"#))
}

/// What a subscription answer says and which snapshots follow it.
pub(crate) fn subscribe(
    venue: &Venue,
    topics: &[String],
    category: Category,
    subs: &mut HashSet<String>,
) -> (Option<String>, Vec<String>) {
    let spot = category == Category::Spot;
    if spot && topics.len() > SPOT_ARGS_MAX {
        return (Some(format!("args size >{SPOT_ARGS_MAX}")), Vec::new());
    }
    let now_ms = venue.now_ms();
    let mut st = venue.state();
    let st = &mut *st;
    let mut failed = None;
    let mut snapshots = Vec::new();
    for topic in topics {
        if subs.contains(topic) {
            // Bybit: "error:already subscribed,topic:<topic>".
            failed.get_or_insert_with(|| format!("error:already subscribed,topic:{topic}"));
            continue;
        }
        if category == Category::Linear
            && let Some(feed) = st.replay.as_ref()
        {
            if !feed.topics.contains(topic) {
                failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
                continue;
            }
            subs.insert(topic.clone());
            st.cats[category.index()]
                .topics
                .entry(topic.clone())
                .or_insert_with(TopicState::new)
                .subscribers += 1;
            snapshots.extend(feed.book_snapshot(topic, now_ms));
            continue;
        }
        let cs = &mut st.cats[category.index()];
        let parsed = Topic::parse(topic)
            .ok()
            .filter(|t| cs.markets.contains_key(t.symbol));
        let ok = match parsed.map(|t| t.channel) {
            Some(Channel::OrderBook { depth }) => VENUE_DEPTHS.contains(&depth),
            Some(_) => true,
            None => false,
        };
        if !ok {
            failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
            continue;
        }
        subs.insert(topic.clone());
        let t = parsed.expect("checked above");
        let symbol = t.symbol.to_string();
        let state = cs
            .topics
            .entry(topic.clone())
            .or_insert_with(TopicState::new);
        state.subscribers += 1;
        match t.channel {
            Channel::OrderBook { depth } => {
                let running = state.subscribers > 1 || depth == 1000;
                if !running || state.u == 0 {
                    state.view = cs.markets[&symbol].top(depth as usize);
                    state.u += 1;
                    state.last_push_ms = now_ms;
                }
                st.seq += 1;
                let state = &cs.topics[topic];
                snapshots.push(book_frame(
                    category,
                    &cs.markets[&symbol].spec,
                    topic,
                    "snapshot",
                    now_ms,
                    &state.view,
                    state.u,
                    st.seq,
                ));
            }
            Channel::Ticker => {
                let fields = ticker_fields(category, &cs.markets[&symbol], now_ms);
                let data = ticker_json(&symbol, &fields);
                state.last_fields = fields;
                snapshots.push(match category {
                    Category::Linear => format!(
                        r#"{{"topic":"{topic}","type":"snapshot","data":{data},"cs":{},"ts":{now_ms}}}"#,
                        st.seq
                    ),
                    Category::Spot => format!(
                        r#"{{"topic":"{topic}","ts":{now_ms},"type":"snapshot","cs":{},"data":{data}}}"#,
                        st.seq
                    ),
                });
            }
            Channel::Kline { interval } => {
                let m = cs.markets.get_mut(&symbol).expect("known symbol");
                let forming = m.series(interval, now_ms).forming;
                let mut data = String::new();
                candle_json(
                    &mut data, category, &m.spec, interval, &forming, false, now_ms,
                );
                snapshots.push(format!(
                    r#"{{"topic":"{topic}","data":[{data}],"ts":{now_ms},"type":"snapshot"}}"#
                ));
            }
            Channel::Trade => {}
        }
    }
    (failed, snapshots)
}

pub(crate) fn unsubscribe(
    venue: &Venue,
    category: Category,
    topics: &[String],
    subs: &mut HashSet<String>,
) {
    let mut st = venue.state();
    let cs = st.cat_mut(category);
    for topic in topics {
        if subs.remove(topic)
            && let Some(t) = cs.topics.get_mut(topic)
        {
            t.subscribers = t.subscribers.saturating_sub(1);
        }
    }
}

/// The answers to one request.
fn answer(
    venue: &Venue,
    category: Category,
    conn_id: &str,
    req: Request,
    subs: &mut HashSet<String>,
) -> Vec<String> {
    let rid = req_id_field(&req.req_id);
    match req.op.as_str() {
        // Spot pongs carry no req_id (Bybit v5 docs, "Connect"); linear echoes it.
        "ping" => vec![match category {
            Category::Spot => {
                format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}","op":"ping"}}"#)
            }
            Category::Linear => {
                let rid = if rid.is_empty() {
                    r#","req_id":"""#.to_string()
                } else {
                    rid
                };
                format!(
                    r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}"{rid},"op":"ping"}}"#
                )
            }
        }],
        "subscribe" => {
            let (failed, snapshots) = subscribe(venue, &req.args, category, subs);
            let ok_msg = if category == Category::Spot {
                "subscribe"
            } else {
                ""
            };
            let (success, msg) = match &failed {
                Some(m) => (false, m.as_str()),
                None => (true, ok_msg),
            };
            let mut out = vec![format!(
                r#"{{"success":{success},"ret_msg":"{msg}","conn_id":"{conn_id}"{rid},"op":"subscribe"}}"#
            )];
            out.extend(snapshots);
            out
        }
        "unsubscribe" => {
            unsubscribe(venue, category, &req.args, subs);
            vec![format!(
                r#"{{"success":true,"ret_msg":"","conn_id":"{conn_id}"{rid},"op":"unsubscribe"}}"#
            )]
        }
        other => {
            let other = other.escape_default();
            vec![format!(
                r#"{{"success":false,"ret_msg":"error:unknown op {other}","conn_id":"{conn_id}"{rid},"op":"{other}"}}"#
            )]
        }
    }
}

pub(crate) async fn connection(socket: WebSocket, venue: Venue, category: Category) {
    let stats = venue.stats();
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let conn_id = format!("sim-{}", stats.connections_total.load(Ordering::Relaxed));
    let mut rx = venue.inner.tx.subscribe();
    let mut drop_rx = venue.inner.drop_tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut subs: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            biased;
            _ = drop_rx.changed() => break,
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if venue.stalled() {
                    continue;
                }
                let req = parse_request(&text);
                if req.as_ref().is_ok_and(|r| r.op == "subscribe") {
                    tokio::time::sleep(std::time::Duration::from_millis(ANSWER_DELAY_MS)).await;
                }
                let replies = match req {
                    Ok(req) => answer(&venue, category, &conn_id, req, &mut subs),
                    Err(req_id) => {
                        let rid = req_id_field(&req_id);
                        vec![format!(r#"{{"success":false,"ret_msg":"error:invalid request","conn_id":"{conn_id}"{rid},"op":""}}"#)]
                    }
                };
                let mut failed = false;
                for r in replies {
                    if sink.send(Message::Text(r.into())).await.is_err() { failed = true; break }
                    stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                if failed { break }
            }
            p = rx.recv() => {
                let p = match p {
                    Ok(p) => p,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        stats.lagged_drops.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if p.category != category || !subs.contains(&*p.topic) || venue.stalled() {
                    continue;
                }
                if sink.send(Message::Text(p.text.to_string().into())).await.is_err() { break }
                stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let all: Vec<String> = subs.iter().cloned().collect();
    unsubscribe(&venue, category, &all, &mut subs);
    let _ = sink.close().await;
    stats.connections.fetch_sub(1, Ordering::Relaxed);
}
