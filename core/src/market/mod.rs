//! Market state: order books and their sides, kline series, tickers and trades, and the
//! [`Market`] that owns them all under dense ids handed out once per topic.

pub mod book;
mod book_side;
pub mod kline;
mod state;
pub mod ticker;

pub use state::*;
