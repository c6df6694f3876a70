//! Ticker state per symbol: linear deltas merge into the last snapshot, spot snapshots replace.

use crate::decimal::Dec;
use crate::wire::frame::{TickDirection, TickerField, TickerFrame, UpdateKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickerOutcome {
    Replaced,
    Merged,
    /// A delta with no snapshot to merge into: ignored until a snapshot arrives.
    NoSnapshot,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticker {
    values: [Option<Dec>; TickerField::COUNT],
    tick: Option<TickDirection>,
    have_snapshot: bool,
    ts: u64,
    cs: Option<u64>,
}

impl Ticker {
    pub fn get(&self, f: TickerField) -> Option<Dec> {
        self.values[f as usize]
    }

    pub fn last_price(&self) -> Option<Dec> {
        self.get(TickerField::LastPrice)
    }

    pub fn mark_price(&self) -> Option<Dec> {
        self.get(TickerField::MarkPrice)
    }

    pub fn tick_direction(&self) -> Option<TickDirection> {
        self.tick
    }

    pub fn ts(&self) -> u64 {
        self.ts
    }

    pub fn cross_seq(&self) -> Option<u64> {
        self.cs
    }

    pub fn has_snapshot(&self) -> bool {
        self.have_snapshot
    }

    pub fn apply(&mut self, f: &TickerFrame<'_>) -> TickerOutcome {
        let outcome = match f.kind {
            UpdateKind::Snapshot => {
                *self = Ticker::default();
                self.have_snapshot = true;
                TickerOutcome::Replaced
            }
            UpdateKind::Delta if !self.have_snapshot => return TickerOutcome::NoSnapshot,
            UpdateKind::Delta => TickerOutcome::Merged,
        };
        for (field, v) in f.fields {
            self.values[*field as usize] = *v;
        }
        if f.tick.is_some() {
            self.tick = f.tick;
        }
        self.ts = f.ts;
        self.cs = f.cs.or(self.cs);
        outcome
    }
}
