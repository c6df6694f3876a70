//! Configuration: built-in defaults, then a TOML file, then `KEEL_*` environment variables,
//! then command-line flags. Unknown keys, bad URLs, bad symbols and out-of-range numbers are
//! refused with a message that names the key.

use std::net::SocketAddr;
use std::path::Path;

use keel_core::engine::{Category, EngineConfig};
use keel_core::wire::topic::{Interval, valid_symbol};
use serde::Deserialize;

pub const DEFAULT_SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
pub const DEFAULT_OPS_ADDR: &str = "127.0.0.1:9898";
pub const BYBIT_REST: &str = "https://api.bybit.com";
pub const BYBIT_WS: &str = "wss://stream.bybit.com";
pub const BYBIT_TESTNET_REST: &str = "https://api-testnet.bybit.com";
pub const BYBIT_TESTNET_WS: &str = "wss://stream-testnet.bybit.com";
/// Most REST retries a configuration may ask for: more only turns an outage into a storm.
pub const REST_RETRIES_MAX_LIMIT: u32 = 100;

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The file format; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub venue: Option<String>,
    pub venue_url: Option<String>,
    pub symbols: Option<Vec<String>>,
    pub category: Option<String>,
    pub ops_addr: Option<String>,
    pub seed: Option<u64>,
    pub log_format: Option<String>,
    /// Seconds between heartbeat log lines (also HEALTH_CHECK_INTERVAL).
    pub health_check_interval: Option<u64>,
    pub book_depth: Option<u16>,
    pub kline_interval: Option<String>,
    pub consumer_delay_ms: Option<u64>,
    /// Events each consumer may have waiting before new ones are dropped (and counted).
    pub consumer_events_max: Option<usize>,
    /// The SQLite store (default keel.db).
    pub db: Option<String>,
    /// Turn signals into paper orders.
    pub auto_execute: Option<bool>,
    /// REST candles loaded per series before the first signal cycle (0 disables).
    pub warmup_candles: Option<u32>,
    pub strategy: Option<keel_core::trading::strategy::StrategyConfig>,
    pub broker: Option<keel_core::trading::broker::BrokerConfig>,
    #[serde(default)]
    pub link: LinkFile,
    #[serde(default)]
    pub rest: RestFile,
    #[serde(default)]
    pub jobs: JobsFile,
    #[serde(default)]
    pub live: crate::execution::LiveFile,
    #[serde(default)]
    pub alerts: crate::alerts::AlertsFile,
    #[serde(default)]
    pub signals: crate::signals_api::SignalsFile,
    /// The ops server's bearer token, from KEEL_OPS_TOKEN only (never the file): required for
    /// every endpoint but /health when set, and required to listen beyond loopback.
    #[serde(skip)]
    pub ops_token: Option<crate::ops::OpsToken>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFile {
    pub ping_interval_ms: Option<u64>,
    pub pong_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub reconnect_delay_ms_base: Option<u64>,
    pub reconnect_delay_ms_max: Option<u64>,
    /// A link up this long without a failure starts its backoff again from the base delay.
    pub reconnect_reset_after_ms: Option<u64>,
    pub connects_per_window_max: Option<usize>,
    pub write_queue_frames_max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestFile {
    pub requests_per_window: Option<u32>,
    pub window_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries_max: Option<u32>,
    pub in_flight_max: Option<usize>,
    pub penalty_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    pub signal_every_ms: Option<u64>,
    pub signal_deadline_ms: Option<u64>,
    /// Failures in a row (panics, overruns) after which a strategy is disabled.
    pub strategy_failures_max: Option<u32>,
    /// Call every strategy when a candle closes too (what a backtest over a capture and a live
    /// run then see alike).
    pub strategies_on_candle_close: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueChoice {
    /// Start the simulated venue in-process on a free loopback port.
    Embedded,
    /// REST base (http/https); WebSocket is derived from it.
    Url(String),
    Bybit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `keel run` needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub venue: VenueChoice,
    pub engine: EngineConfig,
    pub ops_addr: SocketAddr,
    pub log_format: LogFormat,
    pub consumer_delay_ms: u64,
    pub consumer_events_max: usize,
    pub write_queue_frames_max: usize,
    pub db: std::path::PathBuf,
    /// The trading account's API key pair: made in memory for the embedded venue; for a real
    /// venue it comes with live execution.
    pub credentials: Option<Credentials>,
    /// Signals become signed orders at the venue (else paper fills).
    pub live: bool,
    pub ops_token: Option<crate::ops::OpsToken>,
    pub alerts: crate::alerts::AlertsConfig,
    pub signals: crate::signals_api::SignalsConfig,
}

/// An API key pair. Neither half reaches a log, an error or a Debug print.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// A fresh key pair from the OS's randomness, for the embedded venue.
    pub fn generate() -> std::io::Result<Credentials> {
        use std::io::Read;
        let mut bytes = [0u8; 40];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        Ok(Credentials {
            api_key: format!("keel{}", hex(&bytes[..8])),
            api_secret: hex(&bytes[8..]),
        })
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub venue: Option<String>,
    pub venue_url: Option<String>,
    pub symbols: Option<String>,
    pub ops_addr: Option<String>,
    pub seed: Option<u64>,
    pub log_format: Option<String>,
    pub consumer_delay_ms: Option<u64>,
    pub auto_execute: bool,
    pub db: Option<String>,
    pub paper: bool,
    pub live: bool,
}

pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

/// Applies `KEEL_*` variables (and HEALTH_CHECK_INTERVAL) from `env` onto the file config.
pub fn apply_env(
    file: &mut FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    fn num<T: std::str::FromStr>(key: &str, v: String) -> Result<T, ConfigError> {
        v.trim()
            .parse()
            .map_err(|_| ConfigError(format!("{key}={v:?} is not a number")))
    }
    if let Some(v) = env("KEEL_VENUE") {
        file.venue = Some(v);
    }
    if let Some(v) = env("KEEL_VENUE_URL") {
        file.venue_url = Some(v);
    }
    if let Some(v) = env("KEEL_SYMBOLS") {
        file.symbols = Some(split_symbols(&v));
    }
    if let Some(v) = env("KEEL_OPS_ADDR") {
        file.ops_addr = Some(v);
    }
    if let Some(v) = env("KEEL_SEED") {
        file.seed = Some(num("KEEL_SEED", v)?);
    }
    if let Some(v) = env("KEEL_DB") {
        file.db = Some(v);
    }
    if let Some(v) = env("KEEL_LOG_FORMAT") {
        file.log_format = Some(v);
    }
    if let Some(v) = env("KEEL_OPS_TOKEN") {
        file.ops_token = Some(crate::ops::OpsToken(v));
    }
    if let Some(v) = env("KEEL_API_KEY") {
        file.live.api_key = Some(v);
    }
    if let Some(v) = env("KEEL_API_SECRET") {
        file.live.api_secret = Some(v);
    }
    if let Some(v) = env("KEEL_ALERT_WEBHOOK_URL") {
        file.alerts.webhook_url = Some(v);
    }
    if let Some(v) = env("KEEL_TELEGRAM_TOKEN") {
        file.alerts.telegram_token = Some(v);
    }
    if let Some(v) = env("KEEL_SIGNALS_TOKEN") {
        file.signals.token = Some(v);
    }
    if let Some(v) = env("KEEL_TELEGRAM_CHAT_ID") {
        file.alerts.telegram_chat_id = Some(v);
    }
    if let Some(v) = env("HEALTH_CHECK_INTERVAL") {
        file.health_check_interval = Some(num("HEALTH_CHECK_INTERVAL", v)?);
    }
    Ok(())
}

/// A comma-separated symbol list, as flags and KEEL_SYMBOLS give it, checked.
pub fn parse_symbols(s: &str) -> Result<Vec<String>, ConfigError> {
    let symbols = split_symbols(s);
    check_symbols(&symbols)?;
    Ok(symbols)
}

fn check_symbols(symbols: &[String]) -> Result<(), ConfigError> {
    if symbols.is_empty() {
        return err("symbols: at least one symbol is needed");
    }
    for s in symbols {
        if !valid_symbol(s) {
            return err(format!(
                "symbols: {s:?} is not a symbol (upper-case letters, digits and '-')"
            ));
        }
    }
    Ok(())
}

fn split_symbols(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Resolves the layers into a checked configuration.
pub fn resolve(mut file: FileConfig, o: Overrides) -> Result<RunConfig, ConfigError> {
    if let Some(v) = o.venue {
        file.venue = Some(v);
    }
    if let Some(v) = o.venue_url {
        file.venue_url = Some(v);
    }
    if let Some(v) = o.symbols {
        file.symbols = Some(split_symbols(&v));
    }
    if let Some(v) = o.ops_addr {
        file.ops_addr = Some(v);
    }
    if let Some(v) = o.seed {
        file.seed = Some(v);
    }
    if let Some(v) = o.log_format {
        file.log_format = Some(v);
    }
    if let Some(v) = o.consumer_delay_ms {
        file.consumer_delay_ms = Some(v);
    }
    if o.auto_execute {
        file.auto_execute = Some(true);
    }
    if let Some(v) = o.db {
        file.db = Some(v);
    }

    let venue = match (file.venue.as_deref(), file.venue_url.as_deref()) {
        (Some(_), Some(_)) => return err("give either venue or venue_url, not both"),
        (None | Some("embedded"), None) => VenueChoice::Embedded,
        (Some("bybit"), None) => VenueChoice::Bybit,
        (Some("bybit-testnet"), None) => VenueChoice::Url(BYBIT_TESTNET_REST.into()),
        (Some(other), None) => {
            return err(format!(
                "venue must be \"embedded\", \"bybit\" or \"bybit-testnet\", not {other:?}"
            ));
        }
        (None, Some(url)) => VenueChoice::Url(check_http_url(url)?),
    };
    let symbols = file
        .symbols
        .unwrap_or_else(|| DEFAULT_SYMBOLS.iter().map(|s| s.to_string()).collect());
    check_symbols(&symbols)?;
    let category = match file.category.as_deref() {
        None => Category::Linear,
        Some(c) => Category::parse(c).ok_or_else(|| {
            ConfigError(format!(
                "category must be \"linear\" or \"spot\", not {c:?}"
            ))
        })?,
    };
    let ops_addr: SocketAddr = file
        .ops_addr
        .as_deref()
        .unwrap_or(DEFAULT_OPS_ADDR)
        .parse()
        .map_err(|_| {
            ConfigError(format!(
                "ops_addr {:?} is not HOST:PORT",
                file.ops_addr.unwrap_or_default()
            ))
        })?;
    let ops_token = file.ops_token.clone().filter(|t| !t.0.is_empty());
    if !ops_addr.ip().is_loopback() && ops_token.is_none() {
        return err(format!(
            "ops_addr {ops_addr} is reachable beyond this machine: set KEEL_OPS_TOKEN so every \
             endpoint but /health requires `Authorization: Bearer <token>`, or listen on 127.0.0.1"
        ));
    }
    let log_format = match file.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(f) => {
            return err(format!(
                "log_format must be \"text\" or \"json\", not {f:?}"
            ));
        }
    };

    let mut e = EngineConfig::new(ws_url(&venue, category)?, symbols);
    e.category = category;
    if category == Category::Spot {
        e.link.args_per_request_max = 10;
    }
    if let Some(seed) = file.seed {
        e.seed = seed;
    }
    if let Some(d) = file.book_depth {
        if ![1, 50, 200, 1000].contains(&d) {
            return err(format!("book_depth must be 1, 50, 200 or 1000, not {d}"));
        }
        e.book_depth = d;
    }
    if let Some(i) = file.kline_interval.as_deref() {
        e.kline_interval =
            Some(Interval::parse(i).ok_or_else(|| {
                ConfigError(format!("kline_interval {i:?} is not a Bybit interval"))
            })?);
    }
    if let Some(s) = file.health_check_interval {
        if s == 0 {
            return err("health_check_interval must be at least 1 second");
        }
        e.heartbeat_interval_ms = s.saturating_mul(1000);
    }
    let l = &file.link;
    set(
        &mut e.link.ping_interval_ms,
        l.ping_interval_ms,
        "link.ping_interval_ms",
        100,
        600_000,
    )?;
    set(
        &mut e.link.pong_timeout_ms,
        l.pong_timeout_ms,
        "link.pong_timeout_ms",
        100,
        600_000,
    )?;
    set(
        &mut e.link.idle_timeout_ms,
        l.idle_timeout_ms,
        "link.idle_timeout_ms",
        100,
        3_600_000,
    )?;
    set(
        &mut e.link.connect_timeout_ms,
        l.connect_timeout_ms,
        "link.connect_timeout_ms",
        100,
        600_000,
    )?;
    set(
        &mut e.link.backoff.delay_ms_base,
        l.reconnect_delay_ms_base,
        "link.reconnect_delay_ms_base",
        1,
        600_000,
    )?;
    set(
        &mut e.link.backoff.delay_ms_max,
        l.reconnect_delay_ms_max,
        "link.reconnect_delay_ms_max",
        1,
        3_600_000,
    )?;
    if e.link.backoff.delay_ms_max < e.link.backoff.delay_ms_base {
        return err("link.reconnect_delay_ms_max is below link.reconnect_delay_ms_base");
    }
    set(
        &mut e.link.backoff.reset_after_ms,
        l.reconnect_reset_after_ms,
        "link.reconnect_reset_after_ms",
        1_000,
        86_400_000,
    )?;
    if let Some(n) = l.connects_per_window_max {
        if n == 0 {
            return err("link.connects_per_window_max must be at least 1");
        }
        e.budget.window_connects_max = n;
    }
    let r = &file.rest;
    if let Some(n) = r.requests_per_window {
        if !(1..=600).contains(&n) {
            return err("rest.requests_per_window must be 1..=600 (Bybit allows 600 per 5 s)");
        }
        e.rest.requests_per_window = n;
    }
    set(
        &mut e.rest.window_ms,
        r.window_ms,
        "rest.window_ms",
        100,
        600_000,
    )?;
    set(
        &mut e.rest.timeout_ms,
        r.timeout_ms,
        "rest.timeout_ms",
        100,
        600_000,
    )?;
    set(
        &mut e.rest.penalty_ms,
        r.penalty_ms,
        "rest.penalty_ms",
        0,
        86_400_000,
    )?;
    if let Some(n) = r.retries_max {
        if n > REST_RETRIES_MAX_LIMIT {
            return err("rest.retries_max must be at most 100");
        }
        e.rest.retries_max = n;
    }
    if let Some(n) = r.in_flight_max {
        if !(1..=256).contains(&n) {
            return err("rest.in_flight_max must be 1..=256");
        }
        e.rest.in_flight_max = n;
    }
    e.auto_execute = file.auto_execute.unwrap_or(false);
    if let Some(n) = file.warmup_candles {
        e.warmup_candles = n;
    }
    if let Some(s) = file.strategy.clone() {
        e.strategy = s;
    }
    if let Some(b) = file.broker.clone() {
        e.broker = b;
    }
    set(
        &mut e.signal_job.every_ms,
        file.jobs.signal_every_ms,
        "jobs.signal_every_ms",
        10,
        86_400_000,
    )?;
    set(
        &mut e.signal_job.deadline_ms,
        file.jobs.signal_deadline_ms,
        "jobs.signal_deadline_ms",
        10,
        86_400_000,
    )?;
    e.strategies_on_close = file.jobs.strategies_on_candle_close.unwrap_or(false);
    if let Some(n) = file.jobs.strategy_failures_max {
        if !(1..=1_000).contains(&n) {
            return err(format!(
                "jobs.strategy_failures_max must be in 1..=1000, not {n}"
            ));
        }
        e.strategy_failures_max = n;
    }
    let live = crate::execution::resolve_mode(&venue, o.paper, o.live, &file.live)?;
    // Asking for live trading is asking for orders.
    if o.live {
        e.auto_execute = true;
    }
    let credentials = crate::execution::resolve_credentials(&venue, live, &file.live)?;
    e.cancel_on_exit = file.live.cancel_on_exit.unwrap_or(true);
    e.validate().map_err(|x| ConfigError(x.0))?;
    let write_queue_frames_max = l.write_queue_frames_max.unwrap_or(256);
    if !(1..=65_536).contains(&write_queue_frames_max) {
        return err("link.write_queue_frames_max must be 1..=65536");
    }
    let consumer_events_max = file.consumer_events_max.unwrap_or(1_024);
    if !(1..=1_000_000).contains(&consumer_events_max) {
        return err("consumer_events_max must be 1..=1000000");
    }
    let db = std::path::PathBuf::from(file.db.as_deref().unwrap_or("keel.db"));
    if db.as_os_str().is_empty() {
        return err("db must be a file path");
    }
    let alerts = crate::alerts::resolve(&file.alerts)?;
    let signals = crate::signals_api::resolve(&file.signals)?;
    Ok(RunConfig {
        alerts,
        signals,
        db,
        consumer_events_max,
        venue,
        engine: e,
        ops_addr,
        log_format,
        consumer_delay_ms: file.consumer_delay_ms.unwrap_or(0),
        write_queue_frames_max,
        credentials,
        live,
        ops_token,
    })
}

fn set(slot: &mut u64, v: Option<u64>, key: &str, min: u64, max: u64) -> Result<(), ConfigError> {
    if let Some(v) = v {
        if !(min..=max).contains(&v) {
            return err(format!("{key} must be in {min}..={max}, not {v}"));
        }
        *slot = v;
    }
    Ok(())
}

pub fn check_http_url(url: &str) -> Result<String, ConfigError> {
    let shown = keel_core::redact::redact_url(url);
    let u =
        reqwest::Url::parse(url).map_err(|e| ConfigError(format!("venue_url {shown:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return err(format!(
            "venue_url {shown:?} must be http://HOST[:PORT] or https://HOST[:PORT]"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The REST base of a venue choice (the embedded venue is resolved once it has a port).
pub fn rest_base(venue: &VenueChoice) -> Option<String> {
    match venue {
        VenueChoice::Embedded => None,
        VenueChoice::Url(u) => Some(u.clone()),
        VenueChoice::Bybit => Some(BYBIT_REST.to_string()),
    }
}

/// The private stream's URL: the same host as the public streams, path `/v5/private`.
pub fn private_ws_url(venue: &VenueChoice) -> Result<String, ConfigError> {
    let public = ws_url(venue, Category::Linear)?;
    Ok(public.replace("/v5/public/linear", "/v5/private"))
}

/// The WebSocket URL for a category: the same host as REST, ws for http and wss for https.
pub fn ws_url(venue: &VenueChoice, category: Category) -> Result<String, ConfigError> {
    let base = match venue {
        VenueChoice::Embedded => "ws://127.0.0.1:0".to_string(),
        VenueChoice::Bybit => BYBIT_WS.to_string(),
        VenueChoice::Url(u) if u == BYBIT_TESTNET_REST => BYBIT_TESTNET_WS.to_string(),
        VenueChoice::Url(u) => {
            if let Some(rest) = u.strip_prefix("https://") {
                format!("wss://{rest}")
            } else if let Some(rest) = u.strip_prefix("http://") {
                format!("ws://{rest}")
            } else {
                return err(format!(
                    "venue_url {u:?} must start with http:// or https://"
                ));
            }
        }
    };
    Ok(format!("{base}/v5/public/{}", category.as_str()))
}

#[cfg(test)]
mod tests;
