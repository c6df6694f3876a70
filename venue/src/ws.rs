//! The public WebSocket: subscribe and unsubscribe, pings, and forwarding the frames of a
//! connection's own topics.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use keel_core::wire::codec::Decoder;
use keel_core::wire::frame::{Control, Frame};
use keel_core::wire::topic::{Channel, Topic};
use tokio::sync::broadcast;

use crate::config::{SPOT_ARGS_MAX, VENUE_DEPTHS};
use crate::publish::{book_frame, candle_json, ticker_fields, ticker_json};
use crate::state::{TopicState, Venue};

pub(crate) async fn ws_upgrade(
    ws: WebSocketUpgrade,
    Path(category): Path<String>,
    State(venue): State<Venue>,
) -> Response {
    let spot = match category.as_str() {
        "spot" => true,
        "linear" => false,
        _ => return (StatusCode::NOT_FOUND, "unknown category").into_response(),
    };
    if venue.refusing() {
        venue.stats().refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "refusing connections").into_response();
    }
    ws.on_upgrade(move |socket| connection(socket, venue, spot))
}

/// What a subscription answer says and which snapshots follow it.
pub(crate) fn subscribe(
    venue: &Venue,
    topics: &[String],
    spot: bool,
    subs: &mut HashSet<String>,
) -> (Option<String>, Vec<String>) {
    if spot && topics.len() > SPOT_ARGS_MAX {
        return (Some(format!("args size >{SPOT_ARGS_MAX}")), Vec::new());
    }
    let now_ms = venue.now_ms();
    let mut st = venue.state();
    let st = &mut *st;
    let mut failed = None;
    let mut snapshots = Vec::new();
    for topic in topics {
        if let Some(feed) = st.replay.as_ref() {
            if !feed.topics.contains(topic) {
                failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
                continue;
            }
            if subs.insert(topic.clone()) {
                st.topics
                    .entry(topic.clone())
                    .or_insert_with(TopicState::new)
                    .subscribers += 1;
                snapshots.extend(feed.book_snapshot(topic, now_ms));
            }
            continue;
        }
        let parsed = Topic::parse(topic)
            .ok()
            .filter(|t| st.markets.contains_key(t.symbol));
        let ok = match parsed.map(|t| t.channel) {
            Some(Channel::OrderBook { depth }) => VENUE_DEPTHS.contains(&depth),
            Some(_) => true,
            None => false,
        };
        if !ok {
            failed.get_or_insert_with(|| format!("error:handler not found,topic:{topic}"));
            continue;
        }
        if !subs.insert(topic.clone()) {
            continue; // already subscribed on this connection
        }
        let t = parsed.expect("checked above");
        let symbol = t.symbol.to_string();
        let state = st
            .topics
            .entry(topic.clone())
            .or_insert_with(TopicState::new);
        state.subscribers += 1;
        match t.channel {
            Channel::OrderBook { depth } => {
                let running = state.subscribers > 1 || depth == 1000;
                if !running || state.u == 0 {
                    state.view = st.markets[&symbol].top(depth as usize);
                    state.u += 1;
                    state.last_push_ms = now_ms;
                }
                st.seq += 1;
                let state = &st.topics[topic];
                snapshots.push(book_frame(
                    &st.markets[&symbol].spec,
                    topic,
                    "snapshot",
                    now_ms,
                    &state.view,
                    state.u,
                    st.seq,
                ));
            }
            Channel::Ticker => {
                let fields = ticker_fields(&st.markets[&symbol]);
                snapshots.push(format!(
                    r#"{{"topic":"{topic}","type":"snapshot","data":{},"cs":{},"ts":{now_ms}}}"#,
                    ticker_json(&symbol, &fields),
                    st.seq
                ));
            }
            Channel::Kline { interval } => {
                let m = st.markets.get_mut(&symbol).expect("known symbol");
                let forming = m.series(interval, now_ms).forming;
                let mut data = String::new();
                candle_json(&mut data, &m.spec, interval, &forming, false, now_ms);
                snapshots.push(format!(
                    r#"{{"topic":"{topic}","data":[{data}],"ts":{now_ms},"type":"snapshot"}}"#
                ));
            }
            Channel::Trade => {}
        }
    }
    (failed, snapshots)
}

pub(crate) fn unsubscribe(venue: &Venue, topics: &[String], subs: &mut HashSet<String>) {
    let mut st = venue.state();
    for topic in topics {
        if subs.remove(topic)
            && let Some(t) = st.topics.get_mut(topic)
        {
            t.subscribers = t.subscribers.saturating_sub(1);
        }
    }
}

pub(crate) async fn connection(socket: WebSocket, venue: Venue, spot: bool) {
    let stats = venue.stats();
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let conn_id = format!("sim-{}", stats.connections_total.load(Ordering::Relaxed));
    let mut rx = venue.inner.tx.subscribe();
    let mut drop_rx = venue.inner.drop_tx.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut subs: HashSet<String> = HashSet::new();
    let mut decoder = Decoder::default();
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
                let Ok(Frame::Control(Control::Request(req))) = decoder.decode(&text) else {
                    let reply = format!(r#"{{"success":false,"ret_msg":"error:invalid request","conn_id":"{conn_id}","op":""}}"#);
                    if sink.send(Message::Text(reply.into())).await.is_err() { break }
                    continue;
                };
                let req_id = req.req_id.clone().unwrap_or_default();
                let mut replies = Vec::new();
                match req.op.as_str() {
                    "ping" => replies.push(if spot {
                        // Spot pongs carry no req_id (Bybit v5 docs, "Connect").
                        format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}","op":"ping"}}"#)
                    } else {
                        format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"{conn_id}","req_id":"{req_id}","op":"ping"}}"#)
                    }),
                    "subscribe" => {
                        let (failed, snapshots) = subscribe(&venue, &req.args, spot, &mut subs);
                        let ok_msg = if spot { "subscribe" } else { "" };
                        let (success, msg) = match &failed { Some(m) => (false, m.as_str()), None => (true, ok_msg) };
                        replies.push(format!(r#"{{"success":{success},"ret_msg":"{msg}","conn_id":"{conn_id}","req_id":"{req_id}","op":"subscribe"}}"#));
                        replies.extend(snapshots);
                    }
                    "unsubscribe" => {
                        unsubscribe(&venue, &req.args, &mut subs);
                        replies.push(format!(r#"{{"success":true,"ret_msg":"","conn_id":"{conn_id}","req_id":"{req_id}","op":"unsubscribe"}}"#));
                    }
                    other => replies.push(format!(r#"{{"success":false,"ret_msg":"error:unknown op {other}","conn_id":"{conn_id}","req_id":"{req_id}","op":"{other}"}}"#)),
                }
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
                if !subs.contains(&*p.topic) || p.spot.is_some_and(|s| s != spot) || venue.stalled() {
                    continue;
                }
                if sink.send(Message::Text(p.text.to_string().into())).await.is_err() { break }
                stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let all: Vec<String> = subs.iter().cloned().collect();
    unsubscribe(&venue, &all, &mut subs);
    let _ = sink.close().await;
    stats.connections.fetch_sub(1, Ordering::Relaxed);
}
