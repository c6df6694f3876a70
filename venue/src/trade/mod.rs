//! The private side of the venue: accounts, signed order entry, the matching engine against the
//! venue's own book, positions and wallets, the private WebSocket.

mod funds;
pub(crate) mod matching;
pub(crate) mod model;
mod orders;
mod queries;
pub(crate) mod rest;
pub(crate) mod ws;
