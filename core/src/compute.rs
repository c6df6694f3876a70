//! Work that leaves the engine as a compute job: pure functions over owned inputs, so the
//! runtime may run them on a thread pool and a simulation may run them inline.

use crate::codec::Level;
use crate::decimal::Dec;

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

#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    SignalCycle(Vec<BookView>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkResult {
    Signals(Vec<SymbolSignal>),
}

pub fn run(work: &Work) -> WorkResult {
    match work {
        Work::SignalCycle(views) => WorkResult::Signals(views.iter().filter_map(signal).collect()),
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
        let w = Work::SignalCycle(vec![BookView {
            symbol: "X".into(),
            bids: vec![l("99", "3")],
            asks: vec![l("101", "1")],
        }]);
        let WorkResult::Signals(s) = run(&w);
        assert_eq!(s[0].mid, Dec::from_int(100));
        assert!((s[0].spread_bps - 200.0).abs() < 1e-9);
        assert!((s[0].imbalance - 0.5).abs() < 1e-9);
    }
}
