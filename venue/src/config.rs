//! The venue's configuration and the limits it serves under.

/// Depths the venue serves (Bybit linear and spot today).
pub const VENUE_DEPTHS: [u16; 4] = [1, 50, 200, 1000];
/// Frames buffered per connection before it counts as lagging and is dropped.
pub const PUBLISH_CHANNEL_FRAMES: usize = 16_384;
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
        }
    }
}
