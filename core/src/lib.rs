//! keel-core: the sans-IO heart of keel.
//!
//! No sockets, files, threads, clocks or OS randomness live here: time comes in as a parameter
//! ([`time::Time`]) and every byte comes in as an argument. That is what lets the same code run
//! in production, in a replay and inside a deterministic simulation.

pub mod backfill;
pub mod book;
mod book_side;
mod book_template;
pub mod broker;
pub mod codec;
pub mod compute;
pub mod decimal;
pub mod engine;
pub mod error;
pub mod json;
pub mod kline;
pub mod market;
pub mod rest;
pub mod rng;
pub mod strategy;
mod swar;
pub mod ticker;
pub mod time;
pub mod topic;

/// The core's hash maps: keyed by topics and symbols and read per frame, hashed fast and with a
/// fixed seed so that nothing in the core depends on OS randomness.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

pub use book::{Applied, BookState, OrderBook};
pub use codec::{Decoder, Frame, Level};
pub use decimal::Dec;
pub use engine::{Engine, EngineConfig, Input, Output};
pub use error::{BadReason, DecodeError};
pub use market::{Market, MarketConfig, MarketEvent};
pub use time::Time;
