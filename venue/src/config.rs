//! The venue's configuration and the limits it serves under.

/// Depths the venue serves (Bybit linear and spot today).
pub const VENUE_DEPTHS: [u16; 4] = [1, 50, 200, 1000];
/// Frames buffered per connection before it counts as lagging and is dropped.
pub const PUBLISH_CHANNEL_FRAMES: usize = 16_384;
/// How long an answer to a subscribe or auth request waits, as a real venue's round trip would.
/// pybit records a subscription only after sending it, and an answer faster than its thread
/// switch arrives before the record (a KeyError in its callback that closes the connection).
pub const ANSWER_DELAY_MS: u64 = 20;
/// Bybit: "Spot can input up to 10 args for each subscription request".
pub const SPOT_ARGS_MAX: usize = 10;

/// A Bybit product category the venue serves. Each is its own market: its own books, update
/// ids, trades, frame shapes and ticker fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Linear,
    Spot,
}

impl Category {
    pub const ALL: [Category; 2] = [Category::Linear, Category::Spot];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Linear => "linear",
            Category::Spot => "spot",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "linear" => Some(Category::Linear),
            "spot" => Some(Category::Spot),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
pub struct VenueConfig {
    pub symbols: Vec<String>,
    pub seed: u64,
    pub step_ms: u64,
    /// Bybit's own REST limit: 600 requests per 5 s per IP, then 403.
    pub rest_limit: usize,
    pub rest_window_ms: u64,
    /// Push this many times faster than Bybit's rates (benchmarks under load).
    pub push_speedup: u64,
    /// The synthetic fair price's standard deviation over one minute, in basis points.
    pub volatility_bps_per_min: f64,
    /// Trading accounts the private API serves.
    pub accounts: Vec<AccountConfig>,
}

/// One trading account: its key pair and starting balances (coin, amount).
#[derive(Clone)]
pub struct AccountConfig {
    pub api_key: String,
    pub api_secret: String,
    pub balances: Vec<(String, keel_core::Dec)>,
}

impl std::fmt::Debug for AccountConfig {
    // The secret never reaches a log or a Debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("balances", &self.balances)
            .finish()
    }
}

impl VenueConfig {
    pub fn new(symbols: Vec<String>) -> Self {
        VenueConfig {
            symbols,
            seed: 7,
            step_ms: 10,
            rest_limit: 600,
            rest_window_ms: 5_000,
            push_speedup: 1,
            volatility_bps_per_min: crate::market::Dynamics::default().volatility_bps_per_min,
            accounts: Vec::new(),
        }
    }
}
