//! Pure functions of the trading machine: which of the strategies' signals decides per symbol,
//! and the venue's positions taken over ours.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::decimal::Dec;
use crate::trading::broker::{Broker, Position};
use crate::trading::strategy::Signal;

/// The venue's positions are the truth: each symbol whose position differs from ours takes the
/// venue's size and entry price. Returns what differed.
pub(super) fn reconcile_positions(
    broker: &mut Broker,
    rows: &[crate::trading::orders::VenuePosition],
) -> Vec<String> {
    let mut diffs = Vec::new();
    // The venue lists non-zero positions only: one of ours it does not list is flat there.
    let flat: Vec<crate::trading::orders::VenuePosition> = broker
        .positions()
        .filter(|p| !p.qty.is_zero() && !rows.iter().any(|r| r.symbol == p.symbol))
        .map(|p| crate::trading::orders::VenuePosition {
            symbol: p.symbol.clone(),
            qty: Dec::ZERO,
            avg_price: Dec::ZERO,
        })
        .collect();
    for r in rows.iter().chain(&flat) {
        let ours = broker.position(&r.symbol).map_or(Dec::ZERO, |p| p.qty);
        if ours != r.qty {
            diffs.push(format!(
                "{} position {} at the venue, {} here: taking the venue's",
                r.symbol, r.qty, ours
            ));
            let mut p = broker.position(&r.symbol).cloned().unwrap_or(Position {
                symbol: r.symbol.clone(),
                ..Position::default()
            });
            p.qty = r.qty;
            p.avg_entry = r.avg_price;
            broker.restore_position(p);
        }
    }
    diffs
}

/// The views among `signals`, the strongest per symbol as [`decide`] takes them.
pub fn decided_views(signals: &[Signal]) -> Vec<Signal> {
    let views: Vec<Signal> = signals
        .iter()
        .filter(|s| s.action.is_view())
        .cloned()
        .collect();
    decide(&views)
}

/// Strategies may disagree (a trend follower and a mean reverter often do): per symbol the
/// strongest signal decides, and the others are named in its reason. Netting them instead
/// cancels both out whenever they disagree.
pub fn decide(signals: &[Signal]) -> Vec<Signal> {
    let mut best: BTreeMap<&str, (&Signal, Vec<&Signal>)> = BTreeMap::new();
    for s in signals {
        match best.get_mut(s.symbol.as_str()) {
            Some((top, rest)) => {
                if s.confidence() > top.confidence() {
                    rest.push(*top);
                    *top = s;
                } else {
                    rest.push(s);
                }
            }
            None => {
                best.insert(s.symbol.as_str(), (s, Vec::new()));
            }
        }
    }
    best.into_values()
        .map(|(top, rest)| {
            let mut d = top.clone();
            if !rest.is_empty() {
                let mut text = d.reason.to_string();
                for r in rest {
                    let _ = write!(
                        text,
                        "; over {} {:?} {:.2}",
                        r.strategy,
                        r.label(),
                        r.confidence()
                    );
                }
                d.reason = text.into();
            }
            d
        })
        .collect()
}
