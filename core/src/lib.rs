//! keel-core: the sans-IO heart of keel.
//!
//! No sockets, files, threads, clocks or OS randomness live here: time comes in as a parameter
//! ([`time::Time`]) and every byte comes in as an argument. That is what lets the same code run
//! in production, in a replay and inside a deterministic simulation.
//!
//! The folders name the layers, and dependencies point down this list only:
//! - [`engine`]: the router and its time-driven machines (links, budget, scheduler, book sync,
//!   history, preflight, trading, health, supervised jobs);
//! - [`trading`]: strategies, the broker, compute work;
//! - [`market`]: market state (books and their sides, kline series, tickers, trades);
//! - [`wire`]: bytes to typed frames (topics, the JSON scanner, decoders, REST bodies, errors);
//! - [`decimal`], [`rng`], [`time`]: the values everything else is made of.

#![forbid(unsafe_code)]

pub mod backtest;
pub mod decimal;
pub mod engine;
pub mod market;
pub mod redact;
pub mod rng;
pub mod time;
pub mod trading;
pub mod wire;

/// The core's hash maps: keyed by topics and symbols and read per frame, hashed fast and with a
/// fixed seed so that nothing in the core depends on OS randomness.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

pub use decimal::Dec;
pub use decimal::Level;
pub use engine::{Engine, EngineConfig, Input, Output};
pub use market::book::{Applied, BookState, OrderBook};
pub use market::{Market, MarketConfig, MarketEvent};
pub use time::Time;
pub use wire::codec::Decoder;
pub use wire::error::{BadReason, DecodeError};
pub use wire::frame::Frame;
