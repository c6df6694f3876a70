//! Work that leaves the engine as a compute job: pure functions over owned inputs, so the
//! runtime may run them on a thread pool and a simulation may run them inline.

use rayon::prelude::*;

use crate::decimal::Dec;
use crate::decimal::Level;
use crate::market::kline::{Bar, ClosedCandle, MergeStats, merge_runs};
use crate::trading::strategy::{SharedStrategy, Signal, StrategyFault, SymbolInput, evaluate_all};

/// Below this many symbols a signal cycle runs on one thread: handing a few hundred
/// nanoseconds of work per symbol to the pool costs more than it saves (see BENCHMARKS.md,
/// "compute crossover").
pub const SIGNAL_PARALLEL_SYMBOLS_MIN: usize = 512;
/// Below this many candles in all, history merges run on one thread (BENCHMARKS.md).
pub const MERGE_PARALLEL_CANDLES_MIN: usize = 20_000;

/// The top of one synced book, copied out for the signal cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookView {
    pub symbol: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSignal {
    pub symbol: String,
    pub mid: Dec,
    pub spread_bps: f64,
    /// (bid size - ask size) / (bid size + ask size) over the levels in view, in [-1, 1].
    pub imbalance: f64,
}

/// One series' history merge: its closed candles and the REST bars to merge in.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeInput {
    pub existing: Vec<ClosedCandle>,
    pub rest: Vec<Bar>,
}

/// One signal cycle: book statistics for every synced book.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    pub views: Vec<BookView>,
}

/// One strategy over every symbol whose book is usable. The inputs are shared by every
/// strategy of the cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyRun {
    pub strategy: SharedStrategy,
    pub inputs: std::sync::Arc<Vec<SymbolInput>>,
    /// Views below this confidence are dropped.
    pub confidence_min: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    SignalCycle(Cycle),
    Strategy(StrategyRun),
    MergeHistory(Vec<MergeInput>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkResult {
    Signals {
        stats: Vec<SymbolSignal>,
    },
    /// What a strategy said, with how many malformed intents were dropped; or why it said
    /// nothing.
    Said(Result<(Vec<Signal>, u64), StrategyFault>),
    Merged(Vec<(Vec<ClosedCandle>, MergeStats)>),
}

/// Runs a job, fanning out across symbols on the current rayon pool when it is big enough.
/// The results are in input order either way.
pub fn run(work: &Work) -> WorkResult {
    match work {
        Work::SignalCycle(c) => WorkResult::Signals {
            stats: signals(&c.views, c.views.len() >= SIGNAL_PARALLEL_SYMBOLS_MIN),
        },
        Work::Strategy(r) => WorkResult::Said(strategy_signals(
            r,
            r.inputs.len() >= SIGNAL_PARALLEL_SYMBOLS_MIN,
        )),
        Work::MergeHistory(inputs) => {
            let total: usize = inputs.iter().map(|i| i.existing.len() + i.rest.len()).sum();
            WorkResult::Merged(merges(
                inputs,
                total >= MERGE_PARALLEL_CANDLES_MIN && inputs.len() > 1,
            ))
        }
    }
}

pub fn signals(views: &[BookView], parallel: bool) -> Vec<SymbolSignal> {
    if parallel {
        views.par_iter().filter_map(signal).collect()
    } else {
        views.iter().filter_map(signal).collect()
    }
}

/// One strategy over every input; across symbols on the pool when `parallel`. The order is the
/// inputs' either way, and a panic in any chunk is the run's fault.
pub fn strategy_signals(
    r: &StrategyRun,
    parallel: bool,
) -> Result<(Vec<Signal>, u64), StrategyFault> {
    let s = r.strategy.0.as_ref();
    if !parallel {
        return evaluate_all(s, &r.inputs, r.confidence_min);
    }
    let chunks: Vec<_> = r
        .inputs
        .par_chunks(32)
        .map(|c| evaluate_all(s, c, r.confidence_min))
        .collect();
    let (mut said, mut dropped) = (Vec::new(), 0);
    for c in chunks {
        let (s, d) = c?;
        said.extend(s);
        dropped += d;
    }
    Ok((said, dropped))
}

pub fn merges(inputs: &[MergeInput], parallel: bool) -> Vec<(Vec<ClosedCandle>, MergeStats)> {
    let one = |i: &MergeInput| merge_runs(&i.existing, &i.rest);
    if parallel {
        inputs.par_iter().map(one).collect()
    } else {
        inputs.iter().map(one).collect()
    }
}

fn signal(v: &BookView) -> Option<SymbolSignal> {
    let (bid, ask) = (v.bids.first()?, v.asks.first()?);
    let mid = bid.px.checked_add(ask.px)?.checked_div(Dec::from_int(2))?;
    let spread = ask.px.checked_sub(bid.px)?;
    let spread_bps = spread.to_f64() / mid.to_f64() * 10_000.0;
    let b: f64 = v.bids.iter().map(|l| l.qty.to_f64()).sum();
    let a: f64 = v.asks.iter().map(|l| l.qty.to_f64()).sum();
    let imbalance = if a + b > 0.0 { (b - a) / (a + b) } else { 0.0 };
    Some(SymbolSignal {
        symbol: v.symbol.clone(),
        mid,
        spread_bps,
        imbalance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: &str, q: &str) -> Level {
        Level {
            px: Dec::parse(p).unwrap(),
            qty: Dec::parse(q).unwrap(),
        }
    }

    #[test]
    fn signal_cycle_computes_mid_spread_and_imbalance() {
        let w = Work::SignalCycle(Cycle {
            views: vec![BookView {
                symbol: "X".into(),
                bids: vec![l("99", "3")],
                asks: vec![l("101", "1")],
            }],
        });
        let WorkResult::Signals { stats: s, .. } = run(&w) else {
            panic!("not signals")
        };
        assert_eq!(s[0].mid, Dec::from_int(100));
        assert!((s[0].spread_bps - 200.0).abs() < 1e-9);
        assert!((s[0].imbalance - 0.5).abs() < 1e-9);
    }
}
