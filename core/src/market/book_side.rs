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

use crate::decimal::Level;
use crate::decimal::{DEC_SCALE_DIGITS, Dec, POW10, powers_of};
use crate::wire::frame::WireLevel;

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
    let [stored_bids, stored_asks] = counted;
    let (b0, b1) = stored_bids.slots.as_mut_slices();
    let (a0, a1) = stored_asks.slots.as_mut_slices();
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
    [bids, asks]: [&mut Side; 2],
    [bid_levels, ask_levels]: [&[L]; 2],
    depth: usize,
) -> u64 {
    bids.apply::<false, L>(bid_levels);
    asks.apply::<true, L>(ask_levels);
    bids.truncate_worst(depth) + asks.truncate_worst(depth)
}

/// Most levels whose places are searched for together; a delta carries about ten.
const SEARCH_BATCH_LEVELS_MAX: usize = 16;

/// Holes a side keeps beyond a quarter of its levels before it closes them all.
const HOLES_SLACK: usize = 16;

/// One side of a book: its levels sorted in storage order (bids ascending, asks descending, so
/// the best is last), in a `VecDeque` so that an insert moves whichever part of the side is
/// shorter.
///
/// A deleted level stays where it was as a hole (its price kept, its size zero), so the side
/// stays sorted and nothing moves; a later insert of that price, or of a price between the
/// hole's neighbours, fills it. On the orderbook.200 captures that leaves 802 moves where there
/// were 3,590 (every insert and delete): 852 of 1,795 inserts bring back a price that had left.
/// Each move went through `memmove`, whose dispatch on the length is a branch on the data, and
/// with the branch predictors cold that made BTCUSDT's frames 10 to 12% slower (BENCHMARKS.md,
/// "Session 4"). Holes are never at either end, so the best level is the last slot, and a side
/// closes its holes when they pass a quarter of its levels (and [`HOLES_SLACK`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Side {
    slots: VecDeque<Slot>,
    /// Slots that are levels, not holes.
    live: usize,
}

/// An iterator that knows how many items it will give: the side's levels without its holes.
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let next = self.inner.next();
        self.left -= next.is_some() as usize;
        next
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: DoubleEndedIterator> DoubleEndedIterator for Counted<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        let next = self.inner.next_back();
        self.left -= next.is_some() as usize;
        next
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

impl Side {
    pub(crate) fn with_capacity(levels: usize) -> Side {
        Side {
            slots: VecDeque::with_capacity(levels),
            live: 0,
        }
    }

    /// The best level.
    pub(crate) fn back(&self) -> Option<&Slot> {
        self.slots.back()
    }

    /// The levels in storage order (worst first).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Slot> + ExactSizeIterator {
        Counted {
            inner: self.slots.iter().filter(|s| s.qty != 0),
            left: self.live,
        }
    }

    /// Loads a snapshot side (any order, repeats allowed, the venue's last word for a price
    /// wins, zero sizes dropped); returns how many levels did not fit the depth.
    pub(crate) fn fill<const ASK: bool>(&mut self, src: &[Slot], depth: usize) -> u64 {
        let mut v: Vec<Slot> = std::mem::take(&mut self.slots).into();
        v.clear();
        v.extend_from_slice(src);
        // Venue snapshots arrive best first, so the reversed slice is already in storage order
        // and the stable sort below is a single linear pass; it still copes with any order.
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
        self.live = v.len();
        self.slots = v.into();
        self.truncate_worst(depth)
    }

    /// Drops the worst levels beyond `depth`; returns how many.
    #[inline]
    pub(crate) fn truncate_worst(&mut self, depth: usize) -> u64 {
        let excess = self.live.saturating_sub(depth);
        if excess > 0 {
            self.drop_worst(excess);
        }
        excess as u64
    }

    /// Drops the `excess` (at most the live count) worst levels and the holes among them.
    fn drop_worst(&mut self, excess: usize) {
        self.live -= excess;
        if self.slots.len() == self.live + excess {
            self.slots.drain(..excess);
            return;
        }
        let mut left = excess;
        while left > 0 {
            match self.slots.pop_front() {
                Some(s) => left -= (s.qty != 0) as usize,
                None => break,
            }
        }
        self.trim_holes();
        // Fewer levels raise the share of the holes left between them.
        self.bound_holes();
    }

    /// Closes the holes once they pass a quarter of the levels (and [`HOLES_SLACK`]).
    #[inline]
    fn bound_holes(&mut self) {
        if self.slots.len() - self.live > self.live / 4 + HOLES_SLACK {
            self.close_holes();
        }
    }

    /// Drops the holes at both ends.
    #[inline]
    fn trim_holes(&mut self) {
        while self.slots.back().is_some_and(|s| s.qty == 0) {
            self.slots.pop_back();
        }
        while self.slots.front().is_some_and(|s| s.qty == 0) {
            self.slots.pop_front();
        }
    }

    /// Applies one side of a delta. `ASK` says the side is stored descending (asks).
    ///
    /// Bybit lists a side best first with each price once; then the levels' places in storage
    /// only move towards the worst end, so all of them can be searched for against the side as
    /// it stands and applied in the order given: a change at one place never moves a place
    /// still to come, and a hole filled just below a place brings the places still to come down
    /// to it. Searching them together overlaps their memory loads; one binary search after
    /// another waited on each load in turn and took over a quarter of a frame's time
    /// (BENCHMARKS.md, "Closing the gap"). A side in any other order goes one level at a time.
    #[inline]
    pub(crate) fn apply<const ASK: bool, L: InUnits>(&mut self, levels: &[L]) {
        let best_first = levels.windows(2).all(|w| {
            if ASK {
                w[1].as_slot().px > w[0].as_slot().px
            } else {
                w[1].as_slot().px < w[0].as_slot().px
            }
        });
        let batch = if best_first {
            SEARCH_BATCH_LEVELS_MAX
        } else {
            1
        };
        let mut holes_made = false;
        for chunk in levels.chunks(batch) {
            let mut at = [0usize; SEARCH_BATCH_LEVELS_MAX];
            let at = &mut at[..chunk.len()];
            lower_bounds::<ASK, L>(&mut self.slots, chunk, at);
            let mut ceiling = usize::MAX;
            for (l, &i) in chunk.iter().zip(at.iter()) {
                match self.apply_at(i.min(ceiling), l.as_slot()) {
                    Change::InPlace => {}
                    Change::HoleMade => holes_made = true,
                    Change::FilledBelow(place) => ceiling = place,
                }
            }
        }
        if holes_made {
            self.trim_holes();
            self.bound_holes();
        }
    }

    /// Moves every level down over the holes below it, in one pass without a branch per slot
    /// (`VecDeque::retain`, closing at an eighth of the levels, cost about 150 instructions a
    /// BTCUSDT frame).
    #[cold]
    fn close_holes(&mut self) {
        let all = self.slots.make_contiguous();
        let mut kept = 0;
        for i in 0..all.len() {
            all[kept] = all[i];
            kept += (all[i].qty != 0) as usize;
        }
        self.slots.truncate(kept);
    }

    /// Applies one level whose place is `i`.
    #[inline]
    fn apply_at(&mut self, i: usize, l: Slot) -> Change {
        if let Some(s) = self.slots.get_mut(i).filter(|s| s.px == l.px) {
            // An update, a delete (the level becomes a hole) or a hole filled again.
            let (was, is) = (s.qty != 0, l.qty != 0);
            s.qty = l.qty;
            self.live = self.live + is as usize - was as usize;
            return if was & !is {
                Change::HoleMade
            } else {
                Change::InPlace
            };
        }
        // "If you receive an amount that does not exist, insert it" - but a zero for a price we
        // do not hold has nothing to delete.
        if l.qty == 0 {
            return Change::InPlace;
        }
        self.live += 1;
        // A hole on either side of the place takes the level: the hole's price lies between the
        // level's neighbours, so the side stays sorted.
        if let Some(below) = i.checked_sub(1).and_then(|b| self.slots.get_mut(b))
            && below.qty == 0
        {
            *below = l;
            return Change::FilledBelow(i - 1);
        }
        match self.slots.get_mut(i) {
            Some(above) if above.qty == 0 => *above = l,
            // New levels most often come at either end (a new best, a level entering at the deep
            // edge): `insert` there still went through its general copy and a `memmove` call,
            // about a tenth of a spot frame whose ladder moves each delta.
            None => self.slots.push_back(l),
            Some(_) if i == 0 => self.slots.push_front(l),
            Some(_) => self.slots.insert(i, l),
        }
        Change::InPlace
    }
}

/// What applying one level did to the places of the levels still to come.
enum Change {
    /// Nothing a place still to come depends on.
    InPlace,
    /// A level became a hole: the ends and the count of holes need a look afterwards.
    HoleMade,
    /// The hole at this place took the level: places still to come may not pass it.
    FilledBelow(usize),
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
    let key: [u64; LANES] = std::array::from_fn(|j| keys[j].as_slot().px);
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

#[cfg(test)]
mod tests;
