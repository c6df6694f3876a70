//! `POST /api/signals`: signals from outside (a Python model, a notebook, another service) into
//! the same risk checks and order machine as the strategies' own. Off unless a token is set
//! (`KEEL_SIGNALS_TOKEN`); every request needs `Authorization: Bearer <token>`. A bad body gets
//! 400 naming the field, a wrong token 401, more than the configured rate 429; an accepted
//! signal is handed to the event loop through a bounded queue (503 when it is full) and answered
//! 202. The handler never waits for the loop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keel_core::engine::limiter::WindowLimiter;
use keel_core::trading::strategy::{Action, Signal, SignalSide, TimeInForce};
use keel_core::{Dec, Time};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::ConfigError;

/// Signals waiting for the event loop; past this the API answers 503.
pub const SIGNALS_QUEUED_MAX: usize = 256;
/// Longest `reason` accepted, in bytes.
pub const REASON_BYTES_MAX: usize = 512;
/// The strategy name external signals carry.
pub const EXTERNAL_STRATEGY: &str = "api";

/// `[signals]` in the config file. The token comes from `KEEL_SIGNALS_TOKEN` only.
#[derive(Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SignalsFile {
    /// Signals accepted per second (the burst is the same); default 10.
    pub per_second_max: Option<u32>,
    #[serde(skip)]
    pub token: Option<String>,
}

impl std::fmt::Debug for SignalsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalsFile")
            .field("per_second_max", &self.per_second_max)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SignalsConfig {
    /// `None`: the API is off.
    pub token: Option<String>,
    pub per_second_max: u32,
}

impl std::fmt::Debug for SignalsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalsConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("per_second_max", &self.per_second_max)
            .finish()
    }
}

pub fn resolve(file: &SignalsFile) -> Result<SignalsConfig, ConfigError> {
    let per_second_max = file.per_second_max.unwrap_or(10);
    if !(1..=10_000).contains(&per_second_max) {
        return Err(ConfigError(format!(
            "signals.per_second_max must be in 1..=10000, not {per_second_max}"
        )));
    }
    let token = file.token.clone().filter(|t| !t.is_empty());
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(ConfigError(
            "KEEL_SIGNALS_TOKEN must be at least 16 characters: it lets its holder trade".into(),
        ));
    }
    Ok(SignalsConfig {
        token,
        per_second_max,
    })
}

struct SignalsState {
    token: Option<String>,
    per_second_max: u32,
    /// The project's one rate limiter (a rolling one-second window), on time since `origin`.
    limiter: Mutex<WindowLimiter>,
    origin: Instant,
    symbols: Vec<String>,
    tx: mpsc::Sender<Signal>,
}

/// A refusal: the HTTP status, the field at fault (if one is) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub field: Option<&'static str>,
    pub error: String,
}

impl Refusal {
    fn bad(field: &'static str, error: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            field: Some(field),
            error: error.into(),
        }
    }
}

/// Reads a signal from a request body: `{"symbol", "side", "confidence", "reason", "order":
/// {"type", "qty", "price", "tif"}}`, `reason` and `order` optional. Every refusal of a field
/// names it (read field by field: serde's own type errors do not say which).
pub fn parse(body: &[u8], symbols: &[String]) -> Result<Signal, Refusal> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(body).map_err(|e| Refusal {
        status: 400,
        field: None,
        error: format!("the body is not JSON: {e}"),
    })?;
    let Value::Object(o) = v else {
        return Err(Refusal {
            status: 400,
            field: None,
            error: "the body must be a JSON object".into(),
        });
    };
    known_keys(&o, &["symbol", "side", "confidence", "reason", "order"])?;
    let text = |o: &serde_json::Map<String, Value>, k: &'static str| match o.get(k) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(Refusal::bad(k, "must be a string")),
    };
    let symbol = text(&o, "symbol")?.ok_or_else(|| Refusal::bad("symbol", "is required"))?;
    if !symbols.contains(&symbol) {
        return Err(Refusal::bad(
            "symbol",
            format!(
                "{symbol:?} is not traded here (symbols: {})",
                symbols.join(",")
            ),
        ));
    }
    let side = match text(&o, "side")?.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("buy") => SignalSide::Buy,
        Some("sell") => SignalSide::Sell,
        _ => return Err(Refusal::bad("side", "must be \"buy\" or \"sell\"")),
    };
    let confidence = o
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=1.0).contains(c))
        .ok_or_else(|| Refusal::bad("confidence", "must be a number from 0 to 1"))?;
    let reason = text(&o, "reason")?.unwrap_or_default();
    if reason.len() > REASON_BYTES_MAX || reason.chars().any(char::is_control) {
        return Err(Refusal::bad(
            "reason",
            format!("must be at most {REASON_BYTES_MAX} bytes of printable text"),
        ));
    }
    let action = match o.get("order") {
        None | Some(Value::Null) => Action::Signal { side, confidence },
        Some(Value::Object(order)) => {
            known_keys(order, &["type", "qty", "price", "tif"])?;
            let qty = order.get("qty").and_then(positive).ok_or_else(|| {
                Refusal::bad("qty", "must be a positive number (\"0.01\" or 0.01)")
            })?;
            let price = match order.get("price") {
                None | Some(Value::Null) => None,
                Some(p) => Some(
                    positive(p)
                        .ok_or_else(|| Refusal::bad("price", "must be a positive number"))?,
                ),
            };
            let tif = match text(order, "tif")?.as_deref() {
                None | Some("GTC") => TimeInForce::Gtc,
                Some("IOC") => TimeInForce::Ioc,
                Some("FOK") => TimeInForce::Fok,
                Some("PostOnly") => TimeInForce::PostOnly,
                Some(_) => {
                    return Err(Refusal::bad("tif", "must be GTC, IOC, FOK or PostOnly"));
                }
            };
            let kind = text(order, "type")?.map(|t| t.to_ascii_lowercase());
            match (kind.as_deref(), price) {
                (Some("market"), None) => Action::Market { side, qty },
                (Some("market"), Some(_)) => {
                    return Err(Refusal::bad("price", "a market order takes no price"));
                }
                (Some("limit"), Some(price)) => Action::Limit {
                    side,
                    qty,
                    price,
                    tif,
                },
                (Some("limit"), None) => {
                    return Err(Refusal::bad("price", "a limit order needs one"));
                }
                _ => return Err(Refusal::bad("type", "must be \"market\" or \"limit\"")),
            }
        }
        Some(_) => return Err(Refusal::bad("order", "must be an object")),
    };
    Ok(Signal {
        symbol,
        strategy: EXTERNAL_STRATEGY.into(),
        action,
        reason: reason.into(),
        candle_ms: 0,
    })
}

/// Refuses a key the body may not have, naming it.
fn known_keys(
    o: &serde_json::Map<String, serde_json::Value>,
    known: &[&'static str],
) -> Result<(), Refusal> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(Refusal {
            status: 400,
            field: None,
            error: format!("unknown field `{k}` (known: {})", known.join(", ")),
        }),
    }
}

fn positive(v: &serde_json::Value) -> Option<Dec> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Dec::parse(&text).ok().filter(|d| *d > Dec::ZERO)
}

/// The route, and the receiving end the event loop reads accepted signals from.
pub fn router(cfg: &SignalsConfig, symbols: Vec<String>) -> (Router, mpsc::Receiver<Signal>) {
    let (tx, rx) = mpsc::channel(SIGNALS_QUEUED_MAX);
    let state = Arc::new(SignalsState {
        token: cfg.token.clone(),
        per_second_max: cfg.per_second_max,
        limiter: Mutex::new(WindowLimiter::new(
            cfg.per_second_max,
            Duration::from_secs(1),
        )),
        origin: now(),
        symbols,
        tx,
    });
    let app = Router::new()
        .route("/api/signals", post(post_signal))
        .with_state(state);
    (app, rx)
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn post_signal(
    State(s): State<Arc<SignalsState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = &s.token else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "the signals API is off: set KEEL_SIGNALS_TOKEN to turn it on"}),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !keel_core::wire::sign::signatures_equal(given, token) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong bearer token (Authorization: Bearer ...)"}),
        );
    }
    if let Some(wait) = s.take() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": format!("more than {} signals a second", s.per_second_max), "retry_after_s": secs}),
        );
        if let Ok(v) = secs.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let signal = match parse(&body, &s.symbols) {
        Ok(x) => x,
        Err(r) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": r.error, "field": r.field}),
            );
        }
    };
    let shown = json!({"accepted": true, "signal": &signal});
    match s.tx.try_send(signal) {
        Ok(()) => answer(StatusCode::ACCEPTED, shown),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the engine is behind on signals: try again shortly"}),
        ),
    }
}

impl SignalsState {
    /// Takes one of the second's signals; when none is left, how long until one is.
    fn take(&self) -> Option<Duration> {
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let t = Time::from_nanos(now().saturating_duration_since(self.origin).as_nanos() as u64);
        if l.try_take(t) {
            None
        } else {
            Some(l.earliest(t).since(t))
        }
    }
}

#[cfg(test)]
mod tests;
