//! keel-runtime: the thin adapter between keel-core and the outside world.

pub mod alerts;
pub mod api;
pub mod backfill;
pub mod backtest;
pub mod bot;
// Only `keel bench` uses these: not part of the library's public surface.
mod baselines;
mod bench;
pub mod cli;
pub mod config;
pub mod driver;
pub mod execution;
pub mod metrics;
pub mod ops;
pub mod ops_listener;
pub mod page;
pub mod priority;
pub mod record;
pub mod replay;
pub mod run;
pub mod signals_api;
pub mod store;
pub mod store_live;
pub mod transport;

pub use bot::{Bot, BotBuilder};
/// The core, for a library user's types (decimals, levels).
pub use keel_core;
/// The strategy API: what a strategy sees and what it may ask for.
pub use keel_core::trading::strategy;
