//! keel-runtime: the thin adapter between keel-core and the outside world.

pub mod replay;
