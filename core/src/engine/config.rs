//! The engine's configuration: what to subscribe to and every bound of every machine, checked
//! as a whole before anything starts.

use super::backoff::BackoffConfig;
use super::budget::BudgetConfig;
use super::history::{HistoryConfig, KLINE_PAGE_MAX};
use super::link::LinkConfig;
use super::scheduler::RestConfig;
use super::supervisor::JobConfig;
use crate::market::MarketConfig;
use crate::trading::broker::BrokerConfig;
use crate::trading::strategy::StrategyConfig;
use crate::wire::topic::{Interval, Topic};

/// Failures in a row after which a strategy is disabled, unless configured.
pub const STRATEGY_FAILURES_MAX_DEFAULT: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Linear,
    Spot,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Linear => "linear",
            Category::Spot => "spot",
        }
    }

    /// The category Bybit names `text` ("linear" or "spot").
    pub fn parse(text: &str) -> Option<Category> {
        [Category::Linear, Category::Spot]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Seeds the one RNG: backoff jitter and anything else random.
    pub seed: u64,
    pub category: Category,
    /// The WebSocket URL of the category, e.g. `wss://stream.bybit.com/v5/public/linear`.
    pub ws_url: String,
    pub symbols: Vec<String>,
    pub book_depth: u16,
    pub kline_interval: Option<Interval>,
    pub tickers: bool,
    pub trades: bool,
    pub link: LinkConfig,
    pub budget: BudgetConfig,
    pub rest: RestConfig,
    pub market: MarketConfig,
    /// Check the venue (time, instruments) before connecting.
    pub preflight: bool,
    pub heartbeat_interval_ms: u64,
    pub health_tick_ms: u64,
    /// A critical component out of service this long makes the bot down.
    pub down_after_ms: u64,
    pub signal_job: JobConfig,
    pub signal_levels: usize,
    /// At most one top-of-book event per book per this interval.
    pub book_event_interval_ms: u64,
    pub repair_backoff: BackoffConfig,
    pub strategy: StrategyConfig,
    /// Strategies beside the configured built-ins: a library user's own.
    pub strategies: Vec<crate::trading::strategy::SharedStrategy>,
    /// Failures in a row (panics, overruns) after which a strategy is disabled.
    pub strategy_failures_max: u32,
    /// Call every strategy when a candle closes, as well as on its schedule.
    pub strategies_on_close: bool,
    /// Turn signals into orders.
    pub auto_execute: bool,
    pub broker: BrokerConfig,
    /// The next orderLinkId's sequence number (past every one the store holds).
    pub orders_next_seq: u64,
    /// The order machine's settings (its defaults when `None`).
    pub orders: Option<crate::trading::orders::OrdersConfig>,
    /// Orders are answered by the paper venue against the engine's own books (the default:
    /// nothing leaves unless asked); when false they go to the runtime to sign and send.
    pub paper: bool,
    /// The venue's private stream (`.../v5/private`); live orders wait for it when set.
    pub private_url: Option<String>,
    /// Live: at exit, cancel every open order at the venue and wait for it to confirm.
    pub cancel_on_exit: bool,
    /// Load this many candles of REST history per series before the first signal cycle.
    pub warmup_candles: u32,
    /// Bounds on history merges: jobs in flight, waiting, deadline, attempts.
    pub history: HistoryConfig,
}

impl EngineConfig {
    /// Closed candles each series should load for every strategy to see its warm-up.
    pub fn history_needed(&self) -> usize {
        super::trading::candles_to_keep(
            self.strategy
                .strategies()
                .iter()
                .chain(&self.strategies)
                .map(|s| s.0.warmup()),
        )
    }

    pub fn new(ws_url: impl Into<String>, symbols: Vec<String>) -> Self {
        let ws_url = ws_url.into();
        EngineConfig {
            seed: 1,
            category: Category::Linear,
            link: LinkConfig::new(ws_url.clone()),
            ws_url,
            symbols,
            book_depth: 50,
            kline_interval: Some(Interval::Min1),
            tickers: true,
            trades: true,
            budget: BudgetConfig::default(),
            rest: RestConfig::default(),
            market: MarketConfig::default(),
            preflight: true,
            heartbeat_interval_ms: 300_000,
            health_tick_ms: 1_000,
            down_after_ms: 60_000,
            signal_job: JobConfig::new("signals", 5_000, 10_000),
            signal_levels: 5,
            book_event_interval_ms: 100,
            repair_backoff: BackoffConfig {
                delay_ms_base: 250,
                delay_ms_max: 30_000,
                reset_after_ms: 0,
            },
            strategy: StrategyConfig::default(),
            strategies: Vec::new(),
            strategy_failures_max: STRATEGY_FAILURES_MAX_DEFAULT,
            strategies_on_close: false,
            auto_execute: false,
            broker: BrokerConfig::default(),
            orders_next_seq: 0,
            orders: None,
            paper: true,
            private_url: None,
            cancel_on_exit: true,
            warmup_candles: 200,
            history: HistoryConfig::default(),
        }
    }

    /// The order-book topic of `symbol`: built here, at the edge, once per symbol.
    pub fn book_topic(&self, symbol: &str) -> String {
        format!("orderbook.{}.{symbol}", self.book_depth)
    }

    /// Every topic this configuration subscribes to, checked against the codec's rules.
    pub fn topics(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for s in &self.symbols {
            let mut t = vec![self.book_topic(s)];
            if let Some(i) = self.kline_interval {
                t.push(format!("kline.{}.{s}", i.as_str()));
            }
            if self.tickers {
                t.push(format!("tickers.{s}"));
            }
            if self.trades {
                t.push(format!("publicTrade.{s}"));
            }
            for topic in t {
                Topic::parse(&topic).map_err(|e| ConfigError(format!("topic {topic}: {e}")))?;
                out.push(topic);
            }
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.symbols.is_empty() {
            return Err(ConfigError("no symbols".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.symbols {
            if !seen.insert(s) {
                return Err(ConfigError(format!("symbol {s} listed twice")));
            }
        }
        if !(self.ws_url.starts_with("ws://")
            || crate::redact::redact_url(&self.ws_url).starts_with("wss://"))
        {
            return Err(ConfigError(format!(
                "WebSocket URL must be ws:// or wss://: {}",
                self.ws_url
            )));
        }
        // The order machine writes category "linear" on every request: on a spot run it would
        // trade the perpetual of the same name. Refused until spot orders exist.
        if self.auto_execute && self.category == Category::Spot {
            return Err(ConfigError(
                "orders are placed on linear perpetuals only: a spot run watches its markets but \
                 cannot trade them (leave out auto-execute, or set category = \"linear\")"
                    .into(),
            ));
        }
        if self.link.ping_interval_ms == 0
            || self.link.pong_timeout_ms == 0
            || self.link.idle_timeout_ms == 0
        {
            return Err(ConfigError(
                "ping interval and timeouts must be above zero".into(),
            ));
        }
        if self.rest.requests_per_window == 0 || self.rest.in_flight_max == 0 {
            return Err(ConfigError("REST limits must be above zero".into()));
        }
        if self.signal_job.every_ms == 0 || self.signal_job.deadline_ms == 0 {
            return Err(ConfigError("job intervals must be above zero".into()));
        }
        self.strategy
            .validate()
            .map_err(|e| ConfigError(format!("strategy: {e}")))?;
        self.broker
            .validate()
            .map_err(|e| ConfigError(format!("broker: {e}")))?;
        if u64::from(self.warmup_candles) > KLINE_PAGE_MAX {
            return Err(ConfigError(
                "warmup_candles must be at most 1000 (one REST page)".into(),
            ));
        }
        self.topics().map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
