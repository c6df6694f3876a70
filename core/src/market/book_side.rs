//! How an order book stores a side: each price as a count of the book's units, each level in a
//! page of 64 neighbouring prices found by the price itself, so applying a level is arithmetic
//! and one store, not a search.
//!
//! The units are decimal places chosen per book, the fewest that hold every value it has seen
//! exactly, so nothing is rounded: 65114.20 is 6511420 hundredths, and a later price with three
//! places widens the whole book to thousandths first. Prices are further counted in the side's
//! step, the largest count dividing every price it holds (the venue's tick, once two levels
//! have been seen), so that a page of 64 steps covers 64 ticks.
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

/// Neighbouring prices a page holds, in steps: one bit each of its `held` word. Small enough
/// that a sparse book (one level a page) stays within 264 bytes a level.
const PAGE_STEPS: u64 = 32;

/// [`PAGE_STEPS`] neighbouring prices of a side.
#[derive(Debug, Clone)]
struct Page {
    /// Bit `i`: the price `i` steps into the page holds a level.
    held: u32,
    /// The sizes; a slot whose bit is clear holds nothing meaningful.
    qty: [u64; PAGE_STEPS as usize],
}

const EMPTY_PAGE: Page = Page {
    held: 0,
    qty: [0; PAGE_STEPS as usize],
};

/// The price of one step of a side, and how to count a price in steps: the step is 2^`shift`
/// times an odd number, and an exact quotient by an odd number is one multiply by its inverse
/// modulo 2^64 (a division was about 25 cycles a level).
#[derive(Debug, Clone, Copy)]
struct Step {
    step: u64,
    shift: u32,
    inverse: u64,
    /// The largest quotient a multiple of the odd part gives: a larger product means "not a
    /// multiple".
    quotient_max: u64,
}

impl Step {
    fn new(step: u64) -> Step {
        let step = step.max(1);
        let shift = step.trailing_zeros();
        let odd = step >> shift;
        // Correct to 3 bits for any odd number; Newton's iteration doubles them each round.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        Step {
            step,
            shift,
            inverse,
            quotient_max: u64::MAX / odd,
        }
    }

    /// `px` in steps, when it is a whole number of them.
    #[inline(always)]
    fn steps(self, px: u64) -> Option<u64> {
        let q = (px >> self.shift).wrapping_mul(self.inverse);
        (px & ((1u64 << self.shift) - 1) == 0 && q <= self.quotient_max).then_some(q)
    }
}

/// No page has this number: prices in steps are below 2^64, their pages below 2^59.
const NO_PAGE: u64 = u64::MAX;

/// One side of a book: its levels in pages of [`PAGE_STEPS`] neighbouring prices, found by the
/// price itself.
///
/// A sorted array of levels needed a binary search for every level of a delta and moved the
/// levels behind every insert; on a spot frame whose ladder moves each delta that was about
/// half the frame's time (BENCHMARKS.md, "Session 12"). Here a level's page is the one the
/// last level used, or the one at its number's distance from the first page (a book's pages
/// near the top are contiguous), or found by a binary search over the pages; within the page
/// it is a bit and a store. Each page holds at least one level, so a side holds at most as
/// many pages as levels, and the pages no longer used are kept for reuse.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// The best level is the lowest price on the asks, the highest on the bids.
    ask: bool,
    /// The pages holding a level, by number (price in steps / [`PAGE_STEPS`]) ascending, each
    /// with its place in `pages`.
    order: Vec<(u64, u32)>,
    pages: Vec<Page>,
    /// Places in `pages` that `order` does not name.
    free: Vec<u32>,
    step: Step,
    /// Levels held.
    live: usize,
    /// The page last found, by number and place.
    hint: (u64, u32),
}

impl Side {
    pub(crate) fn new(ask: bool) -> Side {
        Side {
            ask,
            order: Vec::new(),
            pages: Vec::new(),
            free: Vec::new(),
            step: Step::new(1),
            live: 0,
            hint: (NO_PAGE, 0),
        }
    }

    /// The best level.
    pub(crate) fn best(&self) -> Option<Slot> {
        let &(number, at) = if self.ask {
            self.order.first()?
        } else {
            self.order.last()?
        };
        Some(self.slot(number, at, self.end_bit(at, self.ask)))
    }

    /// The lowest (`low`) or highest held bit of the page at `at`, which holds one.
    #[inline(always)]
    fn end_bit(&self, at: u32, low: bool) -> u32 {
        let held = self.pages[at as usize].held;
        if low {
            held.trailing_zeros()
        } else {
            31 - held.leading_zeros()
        }
    }

    #[inline(always)]
    fn slot(&self, number: u64, at: u32, bit: u32) -> Slot {
        Slot {
            px: (number * PAGE_STEPS + bit as u64) * self.step.step,
            qty: self.pages[at as usize].qty[bit as usize],
        }
    }

    /// The levels, best first.
    pub(crate) fn best_first(&self) -> BestFirst<'_> {
        BestFirst {
            side: self,
            pages_left: 0..self.order.len(),
            page: (0, 0),
            held: 0,
            left: self.live,
        }
    }

    /// Loads a snapshot side (any order, repeats allowed, the venue's last word for a price
    /// wins, zero sizes dropped); returns how many levels did not fit the depth.
    pub(crate) fn fill(&mut self, src: &[Slot], depth: usize) -> u64 {
        self.clear();
        for s in src {
            self.set(s.px, s.qty);
        }
        self.truncate_worst(depth)
    }

    /// Drops every level; the next level sets the step afresh.
    fn clear(&mut self) {
        self.free.extend(self.order.iter().map(|&(_, at)| at));
        self.order.clear();
        self.live = 0;
        self.hint = (NO_PAGE, 0);
        self.step = Step::new(1);
    }

    /// Applies one side of a delta, in any order: each level is found by its price alone.
    #[inline]
    pub(crate) fn apply<L: InUnits>(&mut self, levels: &[L]) {
        for l in levels {
            let s = l.as_slot();
            self.set(s.px, s.qty);
        }
    }

    /// Sets the size at `px`; zero removes the level, if there is one ("If you receive an
    /// amount that does not exist, insert it": a zero for a price we do not hold has nothing to
    /// delete).
    #[inline(always)]
    fn set(&mut self, px: u64, qty: u64) {
        if self.live == 0 {
            // The first level of an empty side sets the step; the next price not a multiple of
            // it brings it down to their common divisor.
            self.step = Step::new(px);
        }
        self.put(px, qty);
    }

    /// [`Side::set`] in the side's step as it is.
    #[inline(always)]
    fn put(&mut self, px: u64, qty: u64) {
        let steps = match self.step.steps(px) {
            Some(steps) => steps,
            None => self.restep(px),
        };
        let (number, bit) = (steps / PAGE_STEPS, (steps % PAGE_STEPS) as u32);
        let at = match self.find(number) {
            Ok(at) => at,
            Err(_) if qty == 0 => return,
            Err(place) => self.open(number, place),
        };
        let page = &mut self.pages[at as usize];
        let mask = 1u32 << bit;
        let was = page.held & mask != 0;
        page.qty[bit as usize] = qty;
        if qty != 0 {
            page.held |= mask;
            self.live += !was as usize;
        } else {
            page.held &= !mask;
            self.live -= was as usize;
            if page.held == 0 {
                self.close(number);
            }
        }
    }

    /// The place in `pages` of page `number`, or where in `order` it would go.
    #[inline(always)]
    fn find(&mut self, number: u64) -> Result<u32, usize> {
        if self.hint.0 == number {
            return Ok(self.hint.1);
        }
        let first = self.order.first().map_or(NO_PAGE, |p| p.0);
        let guess = number.wrapping_sub(first) as usize;
        let found = match self.order.get(guess) {
            Some(&(n, at)) if n == number => Ok(at),
            _ => self
                .order
                .binary_search_by_key(&number, |p| p.0)
                .map(|i| self.order[i].1),
        };
        if let Ok(at) = found {
            self.hint = (number, at);
        }
        found
    }

    /// A new empty page `number` at `place` in `order`.
    fn open(&mut self, number: u64, place: usize) -> u32 {
        let at = match self.free.pop() {
            Some(at) => {
                self.pages[at as usize].held = 0;
                at
            }
            None => {
                self.pages.push(EMPTY_PAGE);
                (self.pages.len() - 1) as u32
            }
        };
        self.order.insert(place, (number, at));
        self.hint = (number, at);
        at
    }

    /// Removes page `number`, which holds no level now.
    fn close(&mut self, number: u64) {
        if let Ok(i) = self.order.binary_search_by_key(&number, |p| p.0) {
            self.free.push(self.order.remove(i).1);
        }
        if self.hint.0 == number {
            self.hint = (NO_PAGE, 0);
        }
        if self.live == 0 {
            self.clear();
        }
    }

    /// A price that is not a whole number of steps: the step becomes the largest that divides
    /// both, the levels held are counted in it again, and `px` in the new step is returned. Every change at least halves
    /// the step, so a side restarts its pages at most 64 times between snapshots.
    #[cold]
    fn restep(&mut self, px: u64) -> u64 {
        let held: Vec<Slot> = self.best_first().collect();
        let step = Step::new(gcd(self.step.step, px));
        self.clear();
        self.step = step;
        for s in held {
            self.put(s.px, s.qty);
        }
        // A divisor of `px`: always a whole number of steps.
        step.steps(px).unwrap_or(0)
    }

    /// Drops the worst levels beyond `depth`; returns how many.
    #[inline]
    pub(crate) fn truncate_worst(&mut self, depth: usize) -> u64 {
        let excess = self.live.saturating_sub(depth);
        let mut left = excess;
        while left > 0 {
            // The worst page: the highest on the asks, the lowest on the bids.
            let Some(&(number, at)) = (if self.ask {
                self.order.last()
            } else {
                self.order.first()
            }) else {
                break;
            };
            let count = self.pages[at as usize].held.count_ones() as usize;
            if count <= left {
                left -= count;
                self.live -= count;
                self.pages[at as usize].held = 0;
                self.close(number);
                continue;
            }
            let page = &mut self.pages[at as usize];
            for _ in 0..left {
                let bit = if self.ask {
                    31 - page.held.leading_zeros()
                } else {
                    page.held.trailing_zeros()
                };
                page.held &= !(1u32 << bit);
            }
            self.live -= left;
            left = 0;
        }
        excess as u64
    }

    /// Whether every price and size, and the step, still fit a `u64` multiplied by `px_by` and
    /// `qty_by`.
    pub(crate) fn rescales(&self, px_by: u64, qty_by: u64) -> bool {
        let Some(&(number, at)) = self.order.last() else {
            return true;
        };
        let highest = self.slot(number, at, self.end_bit(at, false)).px;
        highest.checked_mul(px_by).is_some()
            && self.step.step.checked_mul(px_by).is_some()
            && self
                .best_first()
                .all(|s| s.qty.checked_mul(qty_by).is_some())
    }

    /// Multiplies every price and size; [`Side::rescales`] said they fit.
    pub(crate) fn rescale(&mut self, px_by: u64, qty_by: u64) {
        if self.live == 0 {
            self.clear();
            return;
        }
        // Every price is its steps times the step: multiplying the step multiplies them all.
        self.step = Step::new(self.step.step * px_by);
        for &(_, at) in &self.order {
            let page = &mut self.pages[at as usize];
            let mut held = page.held;
            while held != 0 {
                let bit = held.trailing_zeros() as usize;
                page.qty[bit] *= qty_by;
                held &= held - 1;
            }
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A side's levels, best first.
pub(crate) struct BestFirst<'a> {
    side: &'a Side,
    /// Positions in `order` of the pages not yet started.
    pages_left: std::ops::Range<usize>,
    /// The page being read: its number and place.
    page: (u64, u32),
    /// Its levels not yet given.
    held: u32,
    left: usize,
}

impl Iterator for BestFirst<'_> {
    type Item = Slot;

    #[inline]
    fn next(&mut self) -> Option<Slot> {
        let side = self.side;
        while self.held == 0 {
            let next = if side.ask {
                self.pages_left.next()
            } else {
                self.pages_left.next_back()
            };
            self.page = side.order[next?];
            self.held = side.pages[self.page.1 as usize].held;
        }
        let bit = if side.ask {
            self.held.trailing_zeros()
        } else {
            31 - self.held.leading_zeros()
        };
        self.held &= !(1u32 << bit);
        self.left -= 1;
        Some(side.slot(self.page.0, self.page.1, bit))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for BestFirst<'_> {}

#[cfg(test)]
mod tests;
