//! How an order book stores a side: each price as a count of the book's units, each level in a
//! page of 32 neighbouring prices found by the price itself, so applying a level is arithmetic
//! and one store, not a search.
//!
//! The units are decimal places chosen per book, the fewest that hold every value it has seen
//! exactly, so nothing is rounded: 65114.20 is 6511420 hundredths, and a later price with three
//! places widens the whole book to thousandths first. Prices are further counted in the side's
//! step, the largest count dividing every price it holds (the venue's tick, once two levels
//! have been seen), so that a page of 32 steps covers 32 ticks.
use crate::decimal::Level;
use crate::decimal::{DEC_SCALE_DIGITS, Dec, POW10, powers_of};
use crate::wire::frame::WireLevel;

mod pages;
pub(crate) use pages::Side;

/// A level as a side stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub px: u64,
    pub qty: u64,
}

/// The decimal places a book counts prices and sizes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Units {
    pub px_digits: u32,
    pub qty_digits: u32,
}

/// A value no count of the book's units can hold: negative, or so large at the places the book
/// needs that it passes `u64`. Each value the codec accepts (19 digits at most) fits on its own;
/// this takes a book holding both a huge price and one with many decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange;

const POW5: [u64; 20] = powers_of(5);

/// The inverse of each power of five modulo 2^64 (Newton's iteration doubles the correct bits each
/// step): an exact quotient by 5^k is then one multiply.
const INV5: [u64; 19] = {
    let mut t = [1u64; 19];
    let mut i = 0;
    while i < 19 {
        let d = POW5[i];
        let mut inv = d; // correct to 3 bits for any odd d
        let mut step = 0;
        while step < 5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(inv)));
            step += 1;
        }
        t[i] = inv;
        i += 1;
    }
    t
};

impl Units {
    /// `v` as a count of 10^-`digits`, when that is exact and fits.
    ///
    /// Dividing the `i128` by 10^k was a library call; 10^k is 2^k * 5^k, so the count is a shift
    /// and, when the division is exact, one multiply by the inverse of 5^k, checked by multiplying
    /// back.
    #[inline(always)]
    fn count(v: Dec, digits: u32) -> Option<u64> {
        let raw = v.raw();
        if raw < 0 {
            return None;
        }
        let k = (DEC_SCALE_DIGITS - digits) as usize;
        let x = raw as u128;
        if x & ((1u128 << k) - 1) != 0 {
            return None;
        }
        let y = x >> k;
        let q = (y as u64).wrapping_mul(INV5[k]);
        (q as u128 * POW5[k] as u128 == y).then_some(q)
    }

    #[inline]
    pub(crate) fn level(self, s: Slot) -> Level {
        Level {
            px: Dec::from_parts(s.px, self.px_digits, false),
            qty: Dec::from_parts(s.qty, self.qty_digits, false),
        }
    }
}

/// A level a book can count in its units.
pub(crate) trait Countable: Copy {
    /// The level in `units`, when they hold it exactly.
    fn slot(&self, units: Units) -> Option<Slot>;
    /// `units` widened to hold the level exactly; `None` when no units can (a negative value).
    fn widened(&self, units: Units) -> Option<Units>;
    fn level(&self) -> Level;
    /// `levels` as they are, when each is already a count of `units` (the same places, or zero):
    /// then the frame needs no conversion pass at all.
    fn as_counted(_levels: &[Self], _units: Units) -> Option<&[WireLevel]> {
        None
    }
}

/// A level whose price and size are counts of the book's units.
pub(crate) trait InUnits: Copy {
    fn as_slot(&self) -> Slot;
}

impl InUnits for Slot {
    #[inline(always)]
    fn as_slot(&self) -> Slot {
        *self
    }
}

/// Only where [`Countable::as_counted`] said so: the places are the book's.
impl InUnits for WireLevel {
    #[inline(always)]
    fn as_slot(&self) -> Slot {
        Slot {
            px: self.px_parts().0,
            qty: self.qty_parts().0,
        }
    }
}

/// Decimals from REST snapshots and callers: an exact division each, off the hot path.
impl Countable for Level {
    #[inline]
    fn slot(&self, units: Units) -> Option<Slot> {
        Some(Slot {
            px: Units::count(self.px, units.px_digits)?,
            qty: Units::count(self.qty, units.qty_digits)?,
        })
    }

    fn widened(&self, units: Units) -> Option<Units> {
        Some(Units {
            px_digits: units.px_digits.max(places(self.px)?),
            qty_digits: units.qty_digits.max(places(self.qty)?),
        })
    }

    fn level(&self) -> Level {
        *self
    }
}

/// Levels straight from the decoder: one multiply each.
impl Countable for WireLevel {
    #[inline(always)]
    fn slot(&self, units: Units) -> Option<Slot> {
        let (px, px_places) = self.px_parts();
        let (qty, qty_places) = self.qty_parts();
        Some(Slot {
            px: in_digits(px, px_places, units.px_digits)?,
            qty: in_digits(qty, qty_places, units.qty_digits)?,
        })
    }

    fn widened(&self, units: Units) -> Option<Units> {
        // A zero needs no places ("0.000" is held at any).
        let need = |(count, places): (u64, u32), have: u32| {
            if count == 0 { have } else { have.max(places) }
        };
        Some(Units {
            px_digits: need(self.px_parts(), units.px_digits),
            qty_digits: need(self.qty_parts(), units.qty_digits),
        })
    }

    fn level(&self) -> Level {
        WireLevel::level(self)
    }

    /// Bybit writes a symbol's prices and sizes with fixed places ("65114.20", "0.002"), so after
    /// the first snapshot a delta's counts are almost always the book's own.
    #[inline]
    fn as_counted(levels: &[Self], units: Units) -> Option<&[WireLevel]> {
        let mut same = true;
        for l in levels {
            let ((px, pp), (qty, qp)) = (l.px_parts(), l.qty_parts());
            same &= (pp == units.px_digits || px == 0) & (qp == units.qty_digits || qty == 0);
        }
        same.then_some(levels)
    }
}

/// `count` * 10^-`places` as a count of 10^-`digits`, when that is exact and fits.
#[inline(always)]
fn in_digits(count: u64, places: u32, digits: u32) -> Option<u64> {
    // More places than the book's digits wraps to an index past the table.
    match POW10.get(digits.wrapping_sub(places) as usize) {
        Some(scale) => count.checked_mul(*scale),
        None => (count == 0).then_some(0),
    }
}

/// The fewest decimal places that hold `v` exactly, when a count can hold it at all.
fn places(v: Dec) -> Option<u32> {
    (!v.is_negative()).then(|| v.places())
}

/// Converts a frame's levels into slots of `units`, widening `units` and rescaling the slots
/// already counted in them (`counted`) when a level needs more places. On an error nothing a
/// reader can see has changed: a rescale that would not fit is refused before any slot moves.
#[inline]
pub(crate) fn encode<L: Countable>(
    levels: [&[L]; 2],
    units: &mut Units,
    out: [&mut Vec<Slot>; 2],
    counted: [&mut Side; 2],
) -> Result<(), OutOfRange> {
    let [out_bids, out_asks] = out;
    let bids_fit = count_into(levels[0], *units, out_bids);
    let asks_fit = count_into(levels[1], *units, out_asks);
    if bids_fit && asks_fit {
        return Ok(());
    }
    widen(levels, units, [out_bids, out_asks], counted)
}

/// The levels in `units` into `out`; whether every one fitted. Branch-free per level, and the
/// vector's length is set once: pushing one at a time through the `&mut Vec` stored and reloaded
/// its length per level, a chain that took about a tenth of a frame.
#[inline]
fn count_into<L: Countable>(levels: &[L], units: Units, out: &mut Vec<Slot>) -> bool {
    out.clear();
    let mut fit = true;
    out.extend(levels.iter().map(|l| {
        let s = l.slot(units);
        fit &= s.is_some();
        s.unwrap_or(Slot { px: 0, qty: 0 })
    }));
    fit
}

/// The units that hold every level of the frame, with the book rescaled into them, then the
/// frame counted again.
#[cold]
fn widen<L: Countable>(
    levels: [&[L]; 2],
    units: &mut Units,
    out: [&mut Vec<Slot>; 2],
    counted: [&mut Side; 2],
) -> Result<(), OutOfRange> {
    let mut wider = *units;
    for l in levels.iter().flat_map(|side| side.iter()) {
        wider = l.widened(wider).ok_or(OutOfRange)?;
    }
    let px_by = 10u64.pow(wider.px_digits - units.px_digits);
    let qty_by = 10u64.pow(wider.qty_digits - units.qty_digits);
    let [stored_bids, stored_asks] = counted;
    if !(stored_bids.rescales(px_by, qty_by) && stored_asks.rescales(px_by, qty_by)) {
        return Err(OutOfRange);
    }
    stored_bids.rescale(px_by, qty_by);
    stored_asks.rescale(px_by, qty_by);
    *units = wider;
    let [out_bids, out_asks] = out;
    let fit = count_into(levels[0], wider, out_bids) & count_into(levels[1], wider, out_asks);
    // Widened to every level's places, a level still out is one too large for them.
    if fit { Ok(()) } else { Err(OutOfRange) }
}

/// Applies a delta's bids and asks to their sides and keeps each within `depth`; returns how
/// many levels that dropped.
#[inline]
pub(crate) fn apply_sides<L: InUnits>(
    [bids, asks]: [&mut Side; 2],
    [bid_levels, ask_levels]: [&[L]; 2],
    depth: usize,
) -> u64 {
    bids.apply(bid_levels);
    asks.apply(ask_levels);
    bids.truncate_worst(depth) + asks.truncate_worst(depth)
}

#[cfg(test)]
mod tests;
