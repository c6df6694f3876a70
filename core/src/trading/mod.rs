//! Trading: strategies (pure functions of market slices), the broker (positions and risk), the
//! order machine, the paper venue that answers it on paper, and the compute work that leaves
//! the engine for the pool.

pub mod broker;
pub mod compute;
pub mod orders;
pub mod paper;
pub mod strategy;
