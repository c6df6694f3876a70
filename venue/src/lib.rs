//! keel-venue: a Bybit-v5-compatible venue. `keel run` starts it in-process by default, `keel
//! venue` runs it alone, and the fault-injection suites drive it through `/admin/fault`.
//!
//! By concern: [`config`], [`state`] (the markets, the topics, the stepping task and the
//! router), [`publish`] (frames), [`ws`] (the public WebSocket), [`rest`] (the public REST API),
//! [`admin`], [`faults`], [`serve`]; [`market`] is the synthetic market and [`replay`] the
//! capture-file feed.

#![forbid(unsafe_code)]

mod admin;
pub mod config;
pub mod faults;
pub mod market;
mod publish;
pub mod replay;
mod rest;
pub mod serve;
pub mod state;
mod trade;
mod ws;

pub use config::{
    AccountConfig, Category, PUBLISH_CHANNEL_FRAMES, SPOT_ARGS_MAX, VENUE_DEPTHS, VenueConfig,
};
pub use faults::Fault;
pub use serve::serve;
pub use state::{Published, PublishedBook, Venue, VenueStats};
