//! keel-venue: a Bybit-v5-compatible venue. `keel run` starts it in-process by default, `keel
//! venue` runs it alone, and the fault-injection suites drive it through `/admin/fault`.

#![forbid(unsafe_code)]

pub mod market;
pub mod replay;
pub mod venue;

pub use venue::{Fault, Venue, VenueConfig, serve};
