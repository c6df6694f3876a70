//! Trading: strategies (pure functions of market slices), the paper broker, and the compute
//! work that leaves the engine for the pool.

pub mod broker;
pub mod compute;
pub mod orders;
pub mod strategy;
