//! How an order book stores a side: each level as two `u64` counts of the book's units (sixteen
//! bytes), sorted with the best level last.
//!
//! A `Level` of two `Dec`s is 32 bytes of `i128`. Every insert or delete moves a run of levels
//! and every search compares prices, so halving the level and comparing one word instead of two
//! halves the book's memory traffic (BENCHMARKS.md, "Closing the gap"). The units are decimal
//! places chosen per book, the fewest that hold every value it has seen exactly, so nothing is
//! rounded: 65114.20 is 6511420 hundredths, and a later price with three places widens the whole
//! book to thousandths first.

use std::collections::VecDeque;

use crate::codec::{Level, WireLevel};
use crate::decimal::{DEC_SCALE_DIGITS, Dec, POW10, powers_of};

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
    fn px(&self) -> u64;
    fn qty(&self) -> u64;
    fn slot(&self) -> Slot;
}

impl InUnits for Slot {
    #[inline(always)]
    fn px(&self) -> u64 {
        self.px
    }
    #[inline(always)]
    fn qty(&self) -> u64 {
        self.qty
    }
    #[inline(always)]
    fn slot(&self) -> Slot {
        *self
    }
}

/// Only where [`Countable::as_counted`] said so: the places are the book's.
impl InUnits for WireLevel {
    #[inline(always)]
    fn px(&self) -> u64 {
        self.px_parts().0
    }
    #[inline(always)]
    fn qty(&self) -> u64 {
        self.qty_parts().0
    }
    #[inline(always)]
    fn slot(&self) -> Slot {
        Slot {
            px: InUnits::px(self),
            qty: InUnits::qty(self),
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
    counted: [&mut VecDeque<Slot>; 2],
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
    counted: [&mut VecDeque<Slot>; 2],
) -> Result<(), OutOfRange> {
    let mut wider = *units;
    for l in levels.iter().flat_map(|side| side.iter()) {
        wider = l.widened(wider).ok_or(OutOfRange)?;
    }
    let [stored_bids, stored_asks] = counted;
    let (b0, b1) = stored_bids.as_mut_slices();
    let (a0, a1) = stored_asks.as_mut_slices();
    rescale(&mut [b0, b1, a0, a1], *units, wider)?;
    *units = wider;
    let [out_bids, out_asks] = out;
    let fit = count_into(levels[0], wider, out_bids) & count_into(levels[1], wider, out_asks);
    // Widened to every level's places, a level still out is one too large for them.
    if fit { Ok(()) } else { Err(OutOfRange) }
}

/// Multiplies every slot from `from` units into `to` units, or changes none when one would not
/// fit.
#[cold]
fn rescale(slots: &mut [&mut [Slot]], from: Units, to: Units) -> Result<(), OutOfRange> {
    let px_by = 10u64.pow(to.px_digits - from.px_digits);
    let qty_by = 10u64.pow(to.qty_digits - from.qty_digits);
    let fits = slots.iter().all(|run| {
        run.iter()
            .all(|s| s.px.checked_mul(px_by).is_some() && s.qty.checked_mul(qty_by).is_some())
    });
    if !fits {
        return Err(OutOfRange);
    }
    for s in slots.iter_mut().flat_map(|run| run.iter_mut()) {
        s.px *= px_by;
        s.qty *= qty_by;
    }
    Ok(())
}

/// Applies a delta's bids and asks to their sides and keeps each within `depth`; returns how
/// many levels that dropped.
#[inline]
pub(crate) fn apply_sides<L: InUnits>(
    [bids, asks]: [&mut VecDeque<Slot>; 2],
    [bid_levels, ask_levels]: [&[L]; 2],
    depth: usize,
) -> u64 {
    apply_side::<false, L>(bids, bid_levels);
    apply_side::<true, L>(asks, ask_levels);
    truncate_worst(bids, depth) + truncate_worst(asks, depth)
}

/// Most levels whose places are searched for together; a delta carries about ten.
const SEARCH_BATCH_LEVELS_MAX: usize = 16;

/// Applies one side of a delta. `ASK` says the side is stored descending (asks); bids ascend.
///
/// Bybit lists a side best first with each price once; then the levels' places in storage only
/// move towards the worst end, so all of them can be searched for against the side as it stands
/// and applied in the order given: a change at one place never moves a place still to come.
/// Searching them together overlaps their memory loads; one binary search after another waited
/// on each load in turn and took over a quarter of a frame's time (BENCHMARKS.md, "Closing the
/// gap"). A side in any other order goes one level at a time.
#[inline]
fn apply_side<const ASK: bool, L: InUnits>(side: &mut VecDeque<Slot>, levels: &[L]) {
    let best_first = levels.windows(2).all(|w| {
        if ASK {
            w[1].px() > w[0].px()
        } else {
            w[1].px() < w[0].px()
        }
    });
    let batch = if best_first {
        SEARCH_BATCH_LEVELS_MAX
    } else {
        1
    };
    for chunk in levels.chunks(batch) {
        let mut at = [0usize; SEARCH_BATCH_LEVELS_MAX];
        let at = &mut at[..chunk.len()];
        lower_bounds::<ASK, L>(side, chunk, at);
        for (l, &i) in chunk.iter().zip(at.iter()) {
            let found = side.get(i).is_some_and(|s| s.px == l.px());
            match (found, l.qty() == 0) {
                (true, true) => {
                    side.remove(i);
                }
                (true, false) => side[i].qty = l.qty(),
                // "If you receive an amount that does not exist, insert it" - but a zero for a
                // price we do not hold has nothing to delete.
                (false, true) => {}
                (false, false) => side.insert(i, l.slot()),
            }
        }
    }
}

/// Searches run side by side in [`lower_bounds`]: four bases fit in registers; a longer array
/// of them lived on the stack, and every round waited on a store and a reload.
const SEARCH_LANES: usize = 4;

/// For each level, the first place in storage order not before it, searched in lock step: every
/// search takes the same number of halvings, so each round issues one independent load per level.
/// Branch-free so that the rounds do not wait on comparisons.
#[inline]
fn lower_bounds<const ASK: bool, L: InUnits>(
    side: &mut VecDeque<Slot>,
    keys: &[L],
    out: &mut [usize],
) {
    // Rotates only when the deque has wrapped; the rounds then index one slice instead of
    // choosing between two halves at every load (BENCHMARKS.md: 700 -> 658 ns a frame).
    let all: &[Slot] = side.make_contiguous();
    let n = all.len();
    if n == 0 {
        out.fill(0);
        return;
    }
    let (mut keys, mut out) = (keys, out);
    // Four at a time, then two, then one: a padded lane searched for nothing, and a side of a
    // delta often has fewer than four levels.
    while !keys.is_empty() {
        let lanes = match keys.len() {
            1 => search_lanes::<ASK, 1, L>(all, keys, out),
            2 | 3 => search_lanes::<ASK, 2, L>(all, keys, out),
            _ => search_lanes::<ASK, SEARCH_LANES, L>(all, keys, out),
        };
        keys = &keys[lanes..];
        out = &mut out[lanes..];
    }
}

/// [`lower_bounds`] for the first `LANES` keys, searched in lock step; returns `LANES`.
#[inline(always)]
fn search_lanes<const ASK: bool, const LANES: usize, L: InUnits>(
    all: &[Slot],
    keys: &[L],
    out: &mut [usize],
) -> usize {
    let before = |stored: u64, key: u64| if ASK { stored > key } else { stored < key };
    let key: [u64; LANES] = std::array::from_fn(|j| keys[j].px());
    let mut base = [0usize; LANES];
    let mut size = all.len();
    while size > 1 {
        let half = size / 2;
        for j in 0..LANES {
            let mid = base[j] + half;
            // Without the hint the compiler branches on a comparison that is a coin toss.
            base[j] = std::hint::select_unpredictable(before(all[mid].px, key[j]), mid, base[j]);
        }
        size -= half;
    }
    for j in 0..LANES {
        out[j] = base[j] + before(all[base[j]].px, key[j]) as usize;
    }
    LANES
}

/// Drops the worst levels beyond `depth`; returns how many.
fn truncate_worst(side: &mut VecDeque<Slot>, depth: usize) -> u64 {
    let excess = side.len().saturating_sub(depth);
    if excess > 0 {
        side.drain(..excess);
    }
    excess as u64
}

/// Loads a snapshot side (any order, repeats allowed, the venue's last word for a price wins,
/// zero sizes dropped); returns how many levels did not fit the depth.
pub(crate) fn fill<const ASK: bool>(dst: &mut VecDeque<Slot>, src: &[Slot], depth: usize) -> u64 {
    let mut v: Vec<Slot> = std::mem::take(dst).into();
    v.clear();
    v.extend_from_slice(src);
    // Venue snapshots arrive best first, so the reversed slice is already in storage order and
    // the stable sort below is a single linear pass; it still copes with any order.
    v.reverse();
    if ASK {
        v.sort_by_key(|l| std::cmp::Reverse(l.px));
    } else {
        v.sort_by_key(|l| l.px);
    }
    // The reverse put the venue's later entry for a repeated price first, and the sort is
    // stable, so keeping the first of each run keeps what the venue said last.
    v.dedup_by(|next, kept| next.px == kept.px);
    v.retain(|l| l.qty != 0);
    *dst = v.into();
    truncate_worst(dst, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn inverses_of_the_powers_of_five_are_exact() {
        for k in 0..19 {
            assert_eq!(POW5[k].wrapping_mul(INV5[k]), 1, "5^{k}");
        }
    }

    #[test]
    fn counts_are_exact_or_refused() {
        assert_eq!(Units::count(dec("65114.20"), 2), Some(6_511_420));
        assert_eq!(Units::count(dec("65114.20"), 1), Some(651_142));
        assert_eq!(Units::count(dec("65114.25"), 1), None);
        assert_eq!(Units::count(dec("0"), 0), Some(0));
        assert_eq!(Units::count(dec("-1"), 0), None);
        assert_eq!(Units::count(dec("0.000000000000000001"), 18), Some(1));
        // u64::MAX hundredths fits; one more hundredth does not.
        assert_eq!(
            Units::count(dec("184467440737095516.15"), 2),
            Some(u64::MAX)
        );
        assert_eq!(Units::count(dec("184467440737095516.16"), 2), None);
        assert_eq!(places(dec("65114.20")), Some(1));
        assert_eq!(places(dec("0.001")), Some(3));
        assert_eq!(places(dec("100")), Some(0));
    }

    proptest::proptest! {
        #[test]
        fn a_count_read_back_is_the_same_decimal(
            mantissa in proptest::prelude::any::<u64>(),
            frac in 0u32..=18,
            digits in 0u32..=18,
        ) {
            let v = Dec::from_parts(mantissa, frac, false);
            match Units::count(v, digits) {
                Some(c) => proptest::prop_assert_eq!(Dec::from_parts(c, digits, false), v),
                None => {
                    // Refused only when inexact or too large at these places.
                    let wide = v.raw() / 10i128.pow(DEC_SCALE_DIGITS - digits);
                    let exact = v.raw() % 10i128.pow(DEC_SCALE_DIGITS - digits) == 0;
                    proptest::prop_assert!(!exact || wide > u64::MAX as i128, "{v:?} at {digits}");
                }
            }
        }
    }
}
