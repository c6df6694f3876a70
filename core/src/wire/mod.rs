//! The wire layer: bytes in, typed frames out. Topics, the JSON scanner and its word-at-a-time
//! helpers, the order-book template decoder and the general one, control frames, REST bodies,
//! and the typed errors every refusal carries. Nothing here keeps market state.

pub mod codec;
pub mod error;
pub mod frame;
pub mod json;
mod memo;
pub mod private;
pub mod rest;
pub mod sign;
mod swar;
mod template;
pub mod topic;
