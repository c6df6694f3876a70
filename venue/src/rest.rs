//! The public REST API: time, instruments, order book, klines, tickers; Bybit's envelope, its
//! rate limit and the REST faults.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_core::wire::topic::Interval;
use serde::Deserialize;
use tokio::time::Instant;

use crate::market::history_candle;
use crate::publish::{levels_json, ticker_fields, ticker_json};
use crate::state::Venue;

pub(crate) fn envelope(venue: &Venue, result: &str) -> String {
    format!(
        r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    )
}

pub(crate) fn rest_error(venue: &Venue, code: i64, msg: &str) -> Response {
    let body = format!(
        r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    );
    json_response(StatusCode::OK, body)
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The venue's own limits and faults, in front of every REST endpoint.
pub(crate) async fn rest_gate(venue: &Venue) -> Option<Response> {
    venue.stats().rest_requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let (delay, forbid, status) = {
        let mut st = venue.state();
        let window = Duration::from_millis(venue.inner.config.rest_window_ms);
        while st
            .rest_sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            st.rest_sent.pop_front();
        }
        let over = st.rest_sent.len() >= venue.inner.config.rest_limit;
        if !over {
            st.rest_sent.push_back(now);
        }
        let forbid = over || st.faults.forbid_until.is_some_and(|t| now < t);
        let delay = st
            .faults
            .delay_rest
            .filter(|(_, until)| now < *until)
            .map(|(d, _)| d);
        let status = st
            .faults
            .rest_status
            .filter(|(_, until)| now < *until)
            .map(|(s, _)| s);
        (delay, forbid, status)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if forbid {
        venue.stats().rest_forbidden.fetch_add(1, Ordering::Relaxed);
        return Some((StatusCode::FORBIDDEN, "403 Forbidden: access too frequent").into_response());
    }
    if let Some(s) = status {
        let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some((code, "injected").into_response());
    }
    None
}

pub(crate) async fn rest_time(State(venue): State<Venue>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let ms = venue.now_ms();
    let result = format!(
        r#"{{"timeSecond":"{}","timeNano":"{}"}}"#,
        ms / 1000,
        ms as u128 * 1_000_000
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
pub(crate) struct SymbolQuery {
    category: Option<String>,
    symbol: Option<String>,
    limit: Option<u32>,
}

pub(crate) fn category_ok(c: &Option<String>) -> bool {
    matches!(c.as_deref(), None | Some("linear") | Some("spot"))
}

pub(crate) async fn rest_instruments(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    if !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error: category is invalid");
    }
    let st = venue.state();
    let mut list = String::new();
    let replayed = st
        .replay
        .as_ref()
        .map(|f| f.symbols.clone())
        .unwrap_or_default();
    for sym in replayed
        .iter()
        .filter(|s| q.symbol.as_ref().is_none_or(|w| w == *s))
    {
        if !list.is_empty() {
            list.push(',');
        }
        let _ = write!(
            list,
            r#"{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading"}}"#
        );
    }
    for (sym, m) in st
        .markets
        .iter()
        .filter(|(s, _)| q.symbol.as_ref().is_none_or(|w| w == *s))
    {
        if !list.is_empty() {
            list.push(',');
        }
        let _ = write!(
            list,
            r#"{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading","priceFilter":{{"tickSize":"{}"}},"lotSizeFilter":{{"qtyStep":"{}","minOrderQty":"{}"}}}}"#,
            m.spec.tick, m.spec.qty_step, m.spec.qty_step
        );
    }
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    drop(st);
    json_response(
        StatusCode::OK,
        envelope(
            &venue,
            &format!(r#"{{"category":"{cat}","list":[{list}],"nextPageCursor":""}}"#),
        ),
    )
}

pub(crate) async fn rest_orderbook(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let Some(symbol) = q.symbol.clone() else {
        return rest_error(&venue, 10001, "params error: symbol is required");
    };
    let limit = q.limit.unwrap_or(25);
    if !(1..=1000).contains(&limit) || !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error");
    }
    let now_ms = venue.now_ms();
    let st = venue.state();
    let Some(m) = st.markets.get(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    // The REST book is the 1000-level stream's last published view, with its `u`.
    let t = st.topics.get(&format!("orderbook.1000.{symbol}"));
    let (u, view) = match t {
        Some(t) if t.u > 0 => (t.u, t.view.clone()),
        _ => (1, m.top(1000)),
    };
    let n = limit as usize;
    let view = (
        view.0.into_iter().take(n).collect::<Vec<_>>(),
        view.1.into_iter().take(n).collect::<Vec<_>>(),
    );
    let mut result = format!(r#"{{"s":"{symbol}","b":["#);
    levels_json(&mut result, &m.spec, &view.0);
    result.push_str(r#"],"a":["#);
    levels_json(&mut result, &m.spec, &view.1);
    let _ = write!(
        result,
        r#"],"ts":{now_ms},"u":{u},"seq":{},"cts":{now_ms}}}"#,
        st.seq
    );
    drop(st);
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
pub(crate) struct KlineQuery {
    category: Option<String>,
    symbol: Option<String>,
    interval: Option<String>,
    start: Option<u64>,
    end: Option<u64>,
    limit: Option<u32>,
}

/// Candles newest first within [start, end], at most `limit`; the first may still be open.
pub(crate) async fn rest_kline(
    State(venue): State<Venue>,
    Query(q): Query<KlineQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let (Some(symbol), Some(interval)) = (
        q.symbol.clone(),
        q.interval.as_deref().and_then(Interval::parse),
    ) else {
        return rest_error(
            &venue,
            10001,
            "params error: symbol and interval are required",
        );
    };
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) || !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error");
    }
    let now_ms = venue.now_ms();
    let seed = venue.inner.config.seed;
    let mut st = venue.state();
    let Some(m) = st.markets.get_mut(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    let series = m.series(interval, now_ms).clone();
    let spec = m.spec.clone();
    drop(st);
    let end = q.end.unwrap_or(now_ms).min(now_ms);
    let first_live = series
        .closed
        .front()
        .map_or(series.forming.start_ms, |c| c.start_ms);
    let mut rows = Vec::new();
    let mut start = interval.floor(end);
    while rows.len() < limit as usize {
        if q.start.is_some_and(|s| start < s) {
            break;
        }
        let c = if start == series.forming.start_ms {
            Some((series.forming, false))
        } else if start >= first_live {
            series
                .closed
                .iter()
                .find(|c| c.start_ms == start)
                .map(|c| (*c, true))
        } else {
            Some((history_candle(&spec, seed, interval, start), true))
        };
        if let Some((c, _)) = c {
            let turnover = keel_core::Dec::from_raw(
                spec.tick.raw() * spec.qty_step.raw() / keel_core::Dec::ONE.raw() * c.notional,
            );
            rows.push(format!(
                r#"["{}","{}","{}","{}","{}","{}","{}"]"#,
                c.start_ms,
                spec.px(c.open),
                spec.px(c.high),
                spec.px(c.low),
                spec.px(c.close),
                spec.qty(c.volume_lots),
                turnover
            ));
        }
        if start == 0 {
            break;
        }
        // The previous candle's start.
        let prev = interval.floor(start - 1);
        start = prev;
    }
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    let result = format!(
        r#"{{"symbol":"{symbol}","category":"{cat}","list":[{}]}}"#,
        rows.join(",")
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

pub(crate) async fn rest_tickers(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    if !category_ok(&q.category) {
        return rest_error(&venue, 10001, "params error: category is invalid");
    }
    let st = venue.state();
    let list: Vec<String> = st
        .markets
        .iter()
        .filter(|(s, _)| q.symbol.as_ref().is_none_or(|w| w == *s))
        .map(|(s, m)| ticker_json(s, &ticker_fields(m)))
        .collect();
    drop(st);
    let cat = q.category.clone().unwrap_or_else(|| "linear".into());
    json_response(
        StatusCode::OK,
        envelope(
            &venue,
            &format!(r#"{{"category":"{cat}","list":[{}]}}"#, list.join(",")),
        ),
    )
}
