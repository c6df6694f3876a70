//! The private REST API: signed exactly as Bybit signs, rate-limited per account as Bybit
//! limits, answering with Bybit's envelope, fields and retCodes.
//!
//! Every private response carries `X-Bapi-Limit`, `X-Bapi-Limit-Status` and
//! `X-Bapi-Limit-Reset-Timestamp`. A request is checked in Bybit's order: the key (10003), the
//! time window (10002), the signature (10004), the rate limit (10006), then its parameters
//! (10001) and its business rules (110001, 110007, 110008, 110072...).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keel_core::Dec;
use keel_core::wire::sign::{
    RECV_WINDOW_MS_DEFAULT, check_window, rest_signature, signatures_equal,
};
use serde_json::Value;
use tokio::time::Instant;

use super::matching::Refusal;
use super::{orders, queries};
use crate::config::Category;
use crate::state::{Venue, VenueState};

/// The request rate window Bybit counts in: "per second per UID".
const RATE_WINDOW_MS: u64 = 1_000;
/// Most orders one batch request may carry (linear; spot 10).
pub(super) const BATCH_ORDERS_MAX: usize = 20;
/// Longest execution query window: "endTime - startTime <= 7 days".
pub(super) const EXECUTION_WINDOW_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// A request's answer: retCode, retMsg, result JSON, and the limit headers' values.
pub(super) struct Answer {
    pub(super) code: i64,
    pub(super) msg: String,
    pub(super) result: String,
    pub(super) ext: String,
}

pub(super) fn ok(result: String) -> Answer {
    Answer {
        code: 0,
        msg: "OK".into(),
        result,
        ext: "{}".into(),
    }
}

pub(super) fn refuse(code: i64, msg: &str) -> Answer {
    Answer {
        code,
        msg: msg.into(),
        result: "{}".into(),
        ext: "{}".into(),
    }
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Answer {
        refuse(r.code, r.msg)
    }
}

/// Bybit's per-UID limits (rate-limit.mdx, UTA Pro) by endpoint and category, per second.
fn limit_of(path: &str, category: Option<Category>) -> u32 {
    let spot = category == Some(Category::Spot);
    match path {
        "/v5/order/create"
        | "/v5/order/cancel"
        | "/v5/order/cancel-all"
        | "/v5/order/create-batch" => {
            if spot {
                20
            } else {
                10
            }
        }
        "/v5/order/amend" => 10,
        "/v5/account/fee-rate" => 5,
        _ => 50,
    }
}

/// One handler for every private endpoint: authenticate, limit, dispatch.
pub(crate) async fn private(
    State(venue): State<Venue>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = crate::rest::rest_gate(&venue).await {
        return r;
    }
    let path = uri.path().to_string();
    let payload = if method == Method::GET {
        uri.query().unwrap_or("").to_string()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let (answer, limits, lost) = handle(&venue, &method, &path, &payload, &headers);
    if lost {
        // Applied, but the answer never comes back: the client sees its own timeout.
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    reply(&venue, answer, limits)
}

/// The request's limit headers: (limit, left, reset timestamp).
type Limits = Option<(u32, u32, u64)>;

/// Everything but the waiting: authenticate, limit, apply. The last value says the answer is
/// to be lost (a `drop_order_ack` fault).
fn handle(
    venue: &Venue,
    method: &Method,
    path: &str,
    payload: &str,
    headers: &HeaderMap,
) -> (Answer, Limits, bool) {
    let now_ms = venue.now_ms();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (key, ts, sign) = (
        header("x-bapi-api-key"),
        header("x-bapi-timestamp"),
        header("x-bapi-sign"),
    );
    let recv_window = header("x-bapi-recv-window")
        .parse()
        .unwrap_or(RECV_WINDOW_MS_DEFAULT);
    let params = if *method == Method::GET {
        query_params(payload)
    } else {
        match serde_json::from_str::<Value>(if payload.is_empty() { "{}" } else { payload }) {
            Ok(Value::Object(m)) => m.into_iter().collect(),
            _ => {
                let limit = limit_of(path, None);
                return (
                    refuse(10001, "params error: body is not a JSON object"),
                    Some((limit, limit, now_ms)),
                    false,
                );
            }
        }
    };
    let category = params
        .get("category")
        .and_then(Value::as_str)
        .and_then(Category::parse);
    // Refused before it counts: the headers still say the limit, untouched.
    let limit = limit_of(path, category);
    let early: Limits = Some((limit, limit, now_ms));
    let mut st = venue.state();
    let Some(ai) = st.accounts.iter().position(|a| a.api_key == key) else {
        return (refuse(10003, "API key is invalid."), early, false);
    };
    let Ok(ts) = ts.parse::<u64>() else {
        return (
            refuse(
                10002,
                "invalid request, please check your timestamp and recv_window param",
            ),
            None,
            false,
        );
    };
    if check_window(now_ms, ts, recv_window).is_err() {
        let msg = format!(
            "invalid request, please check your server timestamp or recv_window param. req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{recv_window}]"
        );
        return (refuse(10002, &msg), early, false);
    }
    let expected = rest_signature(&st.accounts[ai].api_secret, ts, &key, recv_window, payload);
    if !signatures_equal(&expected, &sign) {
        return (
            refuse(10004, "error sign! origin_string[...]"),
            early,
            false,
        );
    }
    let uid = st.accounts[ai].uid;
    let (left, reset) = take_rate(&mut st, uid, path, limit, now_ms);
    if left == u32::MAX {
        return (
            refuse(10006, "Too many visits. Exceeded the API Rate Limit."),
            Some((limit, 0, reset)),
            false,
        );
    }
    let limits = Some((limit, left, reset));
    if let Some(fault) = st
        .faults
        .private_ret_code
        .filter(|(_, until)| Instant::now() < *until)
    {
        return (refuse(fault.0, "injected"), limits, false);
    }
    let lost =
        st.faults.drop_order_ack > 0 && path.starts_with("/v5/order/") && *method == Method::POST;
    if lost {
        st.faults.drop_order_ack -= 1;
    }
    let answer = dispatch(&mut st, ai, path, &params, now_ms);
    venue.flush_pushes(&mut st);
    (answer, limits, lost)
}

fn reply(venue: &Venue, a: Answer, limits: Limits) -> Response {
    let body = format!(
        r#"{{"retCode":{},"retMsg":"{}","result":{},"retExtInfo":{},"time":{}}}"#,
        a.code,
        a.msg.replace('"', "'"),
        a.result,
        a.ext,
        venue.now_ms()
    );
    let mut r = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some((limit, status, reset)) = limits {
        let h = r.headers_mut();
        let v = |x: String| HeaderValue::from_str(&x).unwrap_or(HeaderValue::from_static("0"));
        h.insert("X-Bapi-Limit", v(limit.to_string()));
        h.insert("X-Bapi-Limit-Status", v(status.to_string()));
        h.insert("X-Bapi-Limit-Reset-Timestamp", v(reset.to_string()));
    }
    r
}

/// Counts a request against the account's limit for `path`: (requests left, reset time), or
/// `u32::MAX` left when the limit is already used up.
fn take_rate(st: &mut VenueState, uid: u64, path: &str, limit: u32, now_ms: u64) -> (u32, u64) {
    let q = st.rate.entry((uid, path.to_string())).or_default();
    while q
        .front()
        .is_some_and(|t| now_ms.saturating_sub(*t) >= RATE_WINDOW_MS)
    {
        q.pop_front();
    }
    let reset = q.front().map_or(now_ms, |t| t + RATE_WINDOW_MS);
    if q.len() as u32 >= limit {
        return (u32::MAX, reset);
    }
    q.push_back(now_ms);
    (limit - q.len() as u32, reset)
}

/// `k=v&k=v` as the client sent it (values percent-decoded).
fn query_params(q: &str) -> BTreeMap<String, Value> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .map(|(k, v)| (k.to_string(), Value::String(percent_decode(v))))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parameter as a string, whether the client sent it as a JSON string, number or bool.
pub(super) fn text(p: &BTreeMap<String, Value>, k: &str) -> Option<String> {
    match p.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

pub(super) fn flag(p: &BTreeMap<String, Value>, k: &str) -> bool {
    matches!(text(p, k).as_deref(), Some("true") | Some("1"))
}

pub(super) fn need_category(p: &BTreeMap<String, Value>) -> Result<Category, Answer> {
    match text(p, "category") {
        None => Err(refuse(10001, "params error: category is required")),
        Some(c) => Category::parse(&c).ok_or(refuse(10001, "params error: category is invalid")),
    }
}

/// A decimal that must be a positive multiple of `unit`, in units.
pub(super) fn units_of(v: &str, unit: Dec, what: &'static str) -> Result<i128, Answer> {
    let d = Dec::parse(v).map_err(|_| refuse(10001, what))?;
    if d <= Dec::ZERO || unit.raw() == 0 || d.raw() % unit.raw() != 0 {
        return Err(refuse(10001, what));
    }
    Ok(d.raw() / unit.raw())
}

fn dispatch(
    st: &mut VenueState,
    ai: usize,
    path: &str,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Answer {
    let r = match path {
        "/v5/order/create" => orders::create(st, ai, p, now_ms),
        "/v5/order/create-batch" => orders::create_batch(st, ai, p, now_ms),
        "/v5/order/amend" => orders::amend(st, ai, p, now_ms),
        "/v5/order/cancel" => orders::cancel(st, ai, p, now_ms),
        "/v5/order/cancel-all" => orders::cancel_all(st, ai, p, now_ms),
        "/v5/order/realtime" => queries::realtime(st, ai, p),
        "/v5/order/history" => queries::history(st, ai, p),
        "/v5/execution/list" => queries::executions(st, ai, p, now_ms),
        "/v5/position/list" => queries::positions(st, ai, p),
        "/v5/account/wallet-balance" => Ok(ok(format!(r#"{{"list":[{}]}}"#, queries::wallet_json(&st.accounts[ai])))),
        "/v5/account/fee-rate" => queries::fee_rate(st, p),
        "/v5/account/info" => Ok(ok(r#"{"marginMode":"REGULAR_MARGIN","updatedTime":"0","unifiedMarginStatus":6,"dcpStatus":"OFF","timeWindow":10,"smpGroup":0,"isMasterTrader":false,"spotHedgingStatus":"OFF"}"#.into())),
        "/v5/user/query-api" => Ok(ok(queries::query_api(&st.accounts[ai]))),
        "/v5/asset/coin/query-info" => Ok(ok(queries::coin_info(st))),
        _ => Err(refuse(10001, "params error: unknown endpoint")),
    };
    r.unwrap_or_else(|a| a)
}
