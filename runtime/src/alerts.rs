//! Alerts where a bot's owner already looks: a generic webhook (a JSON POST) and Telegram. The
//! event loop only offers an alert to a bounded queue (a full queue drops it, counted); a
//! notifier on its own thread sends each to every sink with retries and backoff, under a rate
//! limit. A dead or slow endpoint costs the notifier time, never the loop.
//!
//! What is alerted: overall health changes (ok, degraded, down, and back), the kill switch,
//! every error the engine reports (reconciliation differences, rejected orders, a halt), and the
//! periodic heartbeat. The webhook URL (which often carries a secret in its path) and the
//! Telegram bot token are never logged; transport errors are logged without their URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::ConfigError;

/// Alerts waiting for the notifier; past this a new one is dropped and counted.
pub const ALERT_QUEUE_MAX: usize = 256;
/// Attempts at one sink for one alert.
pub const ALERT_ATTEMPTS_MAX: u32 = 4;
/// The first retry's wait; it doubles each time.
pub const ALERT_RETRY_DELAY_MS_BASE: u64 = 500;
/// One request's whole time.
pub const ALERT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Alerts sent per minute by default; the rest are dropped, counted, and said in the next one.
pub const ALERTS_PER_MINUTE_MAX_DEFAULT: u32 = 20;
/// Characters of one alert's text.
pub const ALERT_TEXT_CHARS_MAX: usize = 1_000;

/// `[alerts]` in the config file. The Telegram token comes from `KEEL_TELEGRAM_TOKEN` only.
#[derive(Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    /// Alerts as JSON POSTs here (also `KEEL_ALERT_WEBHOOK_URL`).
    pub webhook_url: Option<String>,
    /// The chat Telegram alerts go to (also `KEEL_TELEGRAM_CHAT_ID`).
    pub telegram_chat_id: Option<String>,
    /// Telegram's Bot API base (default `https://api.telegram.org`; tests point it at a local
    /// server).
    pub telegram_api_base: Option<String>,
    pub per_minute_max: Option<u32>,
    /// Send the periodic heartbeat too (default true).
    pub heartbeat: Option<bool>,
    #[serde(skip)]
    pub telegram_token: Option<String>,
}

impl std::fmt::Debug for AlertsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsFile")
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "<set>"))
            .field("telegram_chat_id", &self.telegram_chat_id)
            .field("telegram_api_base", &self.telegram_api_base)
            .field("per_minute_max", &self.per_minute_max)
            .field("heartbeat", &self.heartbeat)
            .field(
                "telegram_token",
                &self.telegram_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where alerts go, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    pub webhook_url: Option<String>,
    pub telegram: Option<Telegram>,
    pub per_minute_max: u32,
    pub heartbeat: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Telegram {
    pub api_base: String,
    pub token: String,
    pub chat_id: String,
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("webhook", &self.webhook_url.is_some())
            .field("telegram", &self.telegram.is_some())
            .field("per_minute_max", &self.per_minute_max)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

impl AlertsConfig {
    pub fn any(&self) -> bool {
        self.webhook_url.is_some() || self.telegram.is_some()
    }
}

fn http_url(what: &str, u: &str) -> Result<(), ConfigError> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        // The value itself is not quoted: it may hold a secret.
        Err(ConfigError(format!(
            "{what} must be an http:// or https:// URL"
        )))
    }
}

/// Checks `[alerts]` and the variables; `None` sinks mean no alerts.
pub fn resolve(file: &AlertsFile) -> Result<AlertsConfig, ConfigError> {
    let webhook_url = file.webhook_url.clone().filter(|u| !u.is_empty());
    if let Some(u) = &webhook_url {
        http_url("alerts.webhook_url (KEEL_ALERT_WEBHOOK_URL)", u)?;
    }
    let token = file.telegram_token.clone().filter(|t| !t.is_empty());
    let chat = file.telegram_chat_id.clone().filter(|c| !c.is_empty());
    let telegram = match (token, chat) {
        (Some(token), Some(chat_id)) => {
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
            {
                return Err(ConfigError(
                    "KEEL_TELEGRAM_TOKEN is not a bot token (digits, a colon, letters)".into(),
                ));
            }
            let api_base = file
                .telegram_api_base
                .clone()
                .unwrap_or_else(|| "https://api.telegram.org".into());
            http_url("alerts.telegram_api_base", &api_base)?;
            Some(Telegram {
                api_base: api_base.trim_end_matches('/').to_string(),
                token,
                chat_id,
            })
        }
        (None, None) => None,
        _ => {
            return Err(ConfigError(
                "Telegram alerts need both KEEL_TELEGRAM_TOKEN and KEEL_TELEGRAM_CHAT_ID".into(),
            ));
        }
    };
    let per_minute_max = file.per_minute_max.unwrap_or(ALERTS_PER_MINUTE_MAX_DEFAULT);
    if per_minute_max == 0 {
        return Err(ConfigError(
            "alerts.per_minute_max must be at least 1".into(),
        ));
    }
    Ok(AlertsConfig {
        webhook_url,
        telegram,
        per_minute_max,
        heartbeat: file.heartbeat.unwrap_or(true),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Health,
    KillSwitch,
    Error,
    Heartbeat,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Health => "health",
            AlertKind::KillSwitch => "kill_switch",
            AlertKind::Error => "error",
            AlertKind::Heartbeat => "heartbeat",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    pub text: String,
    /// The overall health when it was raised.
    pub status: &'static str,
    pub wall_ms: u64,
}

/// What the notifier did, mirrored into `keel_alerts_total{event}`.
#[derive(Debug, Default)]
pub struct AlertCounters {
    pub queued: AtomicU64,
    /// The queue was full.
    pub dropped: AtomicU64,
    /// Over the per-minute limit.
    pub rate_limited: AtomicU64,
    pub sent: AtomicU64,
    /// Given up on one sink after every attempt.
    pub failed: AtomicU64,
    pub retries: AtomicU64,
}

/// The loop's side: offering an alert never waits.
#[derive(Clone)]
pub struct Alerts {
    tx: Option<tokio::sync::mpsc::Sender<Alert>>,
    pub counters: Arc<AlertCounters>,
    pub heartbeat: bool,
}

impl Alerts {
    /// Alerts that go nowhere (no sink configured).
    pub fn off() -> Alerts {
        Alerts {
            tx: None,
            counters: Default::default(),
            heartbeat: false,
        }
    }

    pub fn offer(&self, kind: AlertKind, text: &str, status: &'static str, wall_ms: u64) {
        let Some(tx) = &self.tx else {
            return;
        };
        let mut text = keel_core::redact::redact_urls_in(text).into_owned();
        if text.chars().count() > ALERT_TEXT_CHARS_MAX {
            text = text.chars().take(ALERT_TEXT_CHARS_MAX).collect::<String>() + "…";
        }
        let alert = Alert {
            kind,
            text,
            status,
            wall_ms,
        };
        match tx.try_send(alert) {
            Ok(()) => self.counters.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Starts the notifier on a thread of its own; with no sink, nothing starts.
pub fn start(config: AlertsConfig) -> Result<Alerts, String> {
    if !config.any() {
        return Ok(Alerts::off());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(ALERT_QUEUE_MAX);
    let counters: Arc<AlertCounters> = Default::default();
    let c = counters.clone();
    let heartbeat = config.heartbeat;
    let client = reqwest::Client::builder()
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_millis(ALERT_REQUEST_TIMEOUT_MS))
        .build()
        .map_err(|e| format!("alert HTTP client: {e}"))?;
    crate::run::spawn_background_runtime("keel-alerts", move || notify(config, client, rx, c))?;
    Ok(Alerts {
        tx: Some(tx),
        counters,
        heartbeat,
    })
}

async fn notify(
    config: AlertsConfig,
    client: reqwest::Client,
    mut rx: tokio::sync::mpsc::Receiver<Alert>,
    counters: Arc<AlertCounters>,
) {
    let mut window_start = tokio::time::Instant::now();
    let (mut in_window, mut suppressed) = (0u32, 0u64);
    while let Some(alert) = rx.recv().await {
        let now = tokio::time::Instant::now();
        if now.duration_since(window_start) >= Duration::from_secs(60) {
            window_start = now;
            in_window = 0;
        }
        if in_window >= config.per_minute_max {
            suppressed += 1;
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        in_window += 1;
        let mut text = alert.text.clone();
        if suppressed > 0 {
            text.push_str(&format!(
                " ({suppressed} earlier alerts not sent: over {} a minute)",
                config.per_minute_max
            ));
            suppressed = 0;
        }
        if let Some(url) = &config.webhook_url {
            let body = json!({
                "source": "keel",
                "kind": alert.kind.as_str(),
                "status": alert.status,
                "text": text,
                "at_ms": alert.wall_ms,
            })
            .to_string();
            deliver(&client, "webhook", url, body, &counters).await;
        }
        if let Some(t) = &config.telegram {
            let url = format!("{}/bot{}/sendMessage", t.api_base, t.token);
            let body = json!({
                "chat_id": t.chat_id,
                "text": format!("keel [{}] {}: {}", alert.status, alert.kind.as_str(), text),
                "disable_web_page_preview": true,
            })
            .to_string();
            deliver(&client, "telegram", &url, body, &counters).await;
        }
    }
}

/// POSTs `body` to `url`, retrying with backoff; `sink` names it in the log (never the URL).
async fn deliver(
    client: &reqwest::Client,
    sink: &str,
    url: &str,
    body: String,
    counters: &AlertCounters,
) {
    let mut last = String::new();
    for attempt in 0..ALERT_ATTEMPTS_MAX {
        if attempt > 0 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = ALERT_RETRY_DELAY_MS_BASE << (attempt - 1);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.without_url().to_string(),
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("{sink} alert not delivered after {ALERT_ATTEMPTS_MAX} attempts: {last}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_alert_settings_are_refused_without_quoting_a_secret() {
        let file = AlertsFile {
            webhook_url: Some("ftp://hooks.example/T0/SECRETPATH".into()),
            ..Default::default()
        };
        let e = resolve(&file).unwrap_err().0;
        assert!(
            e.contains("webhook_url") && !e.contains("SECRETPATH"),
            "{e}"
        );
        let half = AlertsFile {
            telegram_token: Some("123:abc".into()),
            ..Default::default()
        };
        assert!(
            resolve(&half)
                .unwrap_err()
                .0
                .contains("KEEL_TELEGRAM_CHAT_ID")
        );
        let odd = AlertsFile {
            telegram_token: Some("123:abc/../x".into()),
            telegram_chat_id: Some("42".into()),
            ..Default::default()
        };
        let e = resolve(&odd).unwrap_err().0;
        assert!(!e.contains("abc/../x"), "{e}");
        assert!(!resolve(&AlertsFile::default()).unwrap().any());
    }

    #[test]
    fn debug_prints_of_the_alert_settings_hold_no_secret() {
        let file = AlertsFile {
            webhook_url: Some("https://hooks.example/T0/SECRETPATH".into()),
            telegram_token: Some("123456:TOKENSECRET".into()),
            telegram_chat_id: Some("42".into()),
            ..Default::default()
        };
        let resolved = resolve(&file).unwrap();
        for shown in [format!("{file:?}"), format!("{resolved:?}")] {
            assert!(
                !shown.contains("SECRETPATH") && !shown.contains("TOKENSECRET"),
                "{shown}"
            );
        }
    }

    #[test]
    fn offering_to_a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = tokio::sync::mpsc::channel(2);
        let a = Alerts {
            tx: Some(tx),
            counters: Default::default(),
            heartbeat: true,
        };
        for i in 0..5 {
            a.offer(AlertKind::Error, &format!("e{i}"), "ok", 0);
        }
        assert_eq!(a.counters.queued.load(Ordering::Relaxed), 2);
        assert_eq!(a.counters.dropped.load(Ordering::Relaxed), 3);
    }
}
