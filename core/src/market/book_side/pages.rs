//! A book side's levels in pages of neighbouring prices, found by the price itself.

use std::collections::VecDeque;

use crate::market::book_side::{InUnits, Slot};

/// Neighbouring prices a page holds, in steps: one bit each of its `held` word. Small enough
/// that a sparse book (one level a page, a page 264 bytes) stays within about 350 bytes a level
/// with its hollow pages.
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
    /// The bits below 2^`shift`, which a multiple of the step has clear.
    low_bits: u64,
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
            low_bits: (1u64 << shift) - 1,
            inverse,
            quotient_max: u64::MAX / odd,
        }
    }

    /// `px` in steps, when it is a whole number of them.
    #[inline(always)]
    fn steps(self, px: u64) -> Option<u64> {
        let q = (px >> self.shift).wrapping_mul(self.inverse);
        // One branch for both checks: nearly every price passes both.
        ((px & self.low_bits == 0) & (q <= self.quotient_max)).then_some(q)
    }
}

/// How far from the last page found a side looks for the next before searching all of it.
const NEAR_PLACES_MAX: usize = 8;

/// No page has this number: prices in steps are below 2^64, their pages below 2^59.
const NO_PAGE: u64 = u64::MAX;

/// Hollow pages a side keeps beyond a quarter of its pages before it drops them all.
const HOLLOW_SLACK: usize = 16;

/// One side of a book: its levels in pages of [`PAGE_STEPS`] neighbouring prices, found by the
/// price itself.
///
/// A sorted array of levels needed a binary search for every level of a delta and moved the
/// levels behind every insert; on a spot frame whose ladder moves each delta that was about
/// half the frame's time (BENCHMARKS.md, "Session 12"). Here a level's page is the one the
/// last level used, or the one at its number's distance from the first page (a book's pages
/// near the top are contiguous), or looked for near the last one found, then by a binary
/// search over the pages; within the page it is a bit and a store. A page that empties inside
/// the side stays for the next level near it, as a sparse book's levels come and go (removing
/// and reinserting its entry moved half the pages each time); the hollow pages leave once they
/// pass a quarter of the pages. So a side holds at most about 4/3 as many pages as levels (plus
/// [`HOLLOW_SLACK`]), and the pages no longer used are kept for reuse.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// The best level is the lowest price on the asks, the highest on the bids.
    ask: bool,
    /// The pages, by number (price in steps / [`PAGE_STEPS`]) ascending, each with its place in
    /// `pages`. The pages at both ends hold a level; a page inside that empties stays (hollow)
    /// until a level fills it again or the hollow ones pass a quarter of the pages.
    order: VecDeque<(u64, u32)>,
    /// Pages in `order` that hold no level.
    hollow: usize,
    pages: Vec<Page>,
    /// Places in `pages` that `order` does not name.
    free: Vec<u32>,
    step: Step,
    /// Levels held.
    live: usize,
    /// The page last found, by number and place.
    hint: (u64, u32),
    /// Where in `order` the last page found or opened was: where a search starts. It may be
    /// out of date (pages come and go at the ends), which costs steps, not answers.
    near: usize,
}

impl Side {
    pub(crate) fn new(ask: bool) -> Side {
        Side {
            ask,
            order: VecDeque::new(),
            hollow: 0,
            pages: Vec::new(),
            free: Vec::new(),
            step: Step::new(1),
            live: 0,
            hint: (NO_PAGE, 0),
            near: 0,
        }
    }

    /// The best level.
    pub(crate) fn best(&self) -> Option<Slot> {
        self.end_level(!self.ask)
    }

    /// The page at the high or the low end of `order`.
    #[inline(always)]
    fn end(&self, high: bool) -> Option<(u64, u32)> {
        if high {
            self.order.back().copied()
        } else {
            self.order.front().copied()
        }
    }

    /// The highest or the lowest level (the ends of `order` hold one).
    #[inline(always)]
    fn end_level(&self, high: bool) -> Option<Slot> {
        let (number, at) = self.end(high)?;
        Some(self.slot(number, at, end_bit(self.pages[at as usize].held, high)))
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
        self.hollow = 0;
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
        let was_hollow = page.held == 0;
        page.qty[bit as usize] = qty;
        if qty != 0 {
            page.held |= mask;
            self.live += !was as usize;
            self.hollow -= was_hollow as usize;
        } else {
            page.held &= !mask;
            self.live -= was as usize;
            if was && page.held == 0 {
                self.hollow += 1;
                self.emptied();
            }
        }
    }

    /// The place in `pages` of page `number`, or where in `order` it would go.
    #[inline(always)]
    fn find(&mut self, number: u64) -> Result<u32, usize> {
        if self.hint.0 == number {
            return Ok(self.hint.1);
        }
        let first = self.end(false).map_or(NO_PAGE, |p| p.0);
        let guess = number.wrapping_sub(first) as usize;
        let place = match self.order.get(guess) {
            Some(&(n, _)) if n == number => Ok(guess),
            _ => self.search_near(number),
        };
        match place {
            Ok(i) => {
                let at = self.order[i].1;
                self.hint = (number, at);
                self.near = i;
                Ok(at)
            }
            Err(i) => Err(i),
        }
    }

    /// The place of page `number` in `order`, or where it would go. A delta's levels come in
    /// price order, so in a sparse side (a page a level, where the guess by distance misses) the
    /// next level's page is most often within a few places of the last one's: looked for there
    /// first, by steps of 1, 2, 4 and 8 places, then in the bracket that leaves. Otherwise a
    /// binary search over the side, which was a fifth of a sparse frame. (Galloping on without a
    /// bound took fewer instructions on a deep sparse side but mispredicted more: 5% slower on a
    /// sparse linear orderbook.1000.)
    #[inline]
    fn search_near(&self, number: u64) -> Result<usize, usize> {
        let Some((lo, hi)) = self.bracket_near(number) else {
            return self.order.binary_search_by_key(&number, |p| p.0);
        };
        // The steps leave at most four places: looked at in turn.
        let place = (lo..hi).find(|&i| self.order[i].0 >= number).unwrap_or(hi);
        match self.order.get(place) {
            Some(&(n, _)) if n == number => Ok(place),
            _ => Err(place),
        }
    }

    /// Places `lo..hi` of `order` within [`NEAR_PLACES_MAX`] of `near`, at most four, such that
    /// every page before `lo` is below `number` and every page from `hi` on is above it.
    #[inline]
    fn bracket_near(&self, number: u64) -> Option<(usize, usize)> {
        let len = self.order.len();
        let near = self.near;
        let at = |i: usize| self.order[i].0;
        if near >= len {
            return None;
        }
        let mut step = 1;
        if at(near) < number {
            let mut lo = near + 1;
            while step <= NEAR_PLACES_MAX {
                let probe = near + step;
                if probe >= len {
                    return Some((lo, len));
                }
                if at(probe) >= number {
                    return Some((lo, probe + 1));
                }
                lo = probe + 1;
                step *= 2;
            }
        } else {
            let mut hi = near + 1;
            while step <= NEAR_PLACES_MAX {
                let Some(probe) = near.checked_sub(step) else {
                    return Some((0, hi));
                };
                if at(probe) <= number {
                    return Some((probe, hi));
                }
                hi = probe;
                step *= 2;
            }
        }
        None
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
        // Hollow until the level that opened it is set, a moment later.
        self.hollow += 1;
        self.hint = (number, at);
        self.near = place;
        at
    }

    /// A page has just emptied: the hollow pages at either end leave, and all of them once they
    /// pass a quarter of the pages (and [`HOLLOW_SLACK`]).
    fn emptied(&mut self) {
        if self.live == 0 {
            self.clear();
            return;
        }
        self.trim_ends();
        if self.hollow > self.order.len() / 4 + HOLLOW_SLACK {
            self.compact();
        }
    }

    /// Drops the hollow pages at both ends, so that each end holds the side's best or worst
    /// level.
    fn trim_ends(&mut self) {
        for high in [true, false] {
            while let Some((_, at)) = self.end(high) {
                if self.pages[at as usize].held != 0 {
                    break;
                }
                if high {
                    self.order.pop_back();
                } else {
                    self.order.pop_front();
                }
                self.drop_page(at);
            }
        }
    }

    /// Every hollow page leaves, in one pass.
    #[cold]
    fn compact(&mut self) {
        let pages = &self.pages;
        let free = &mut self.free;
        self.order.retain(|&(_, at)| {
            let keep = pages[at as usize].held != 0;
            if !keep {
                free.push(at);
            }
            keep
        });
        self.hollow = 0;
        self.hint = (NO_PAGE, 0);
    }

    /// The hollow page at `at` has left `order`.
    fn drop_page(&mut self, at: u32) {
        self.free.push(at);
        self.hollow -= 1;
        if self.hint.1 == at {
            self.hint = (NO_PAGE, 0);
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
            let Some((_, at)) = self.end(self.ask) else {
                break;
            };
            let count = self.pages[at as usize].held.count_ones() as usize;
            if count <= left {
                left -= count;
                self.live -= count;
                self.pages[at as usize].held = 0;
                self.hollow += 1;
                self.emptied();
                continue;
            }
            let page = &mut self.pages[at as usize];
            for _ in 0..left {
                page.held &= !(1u32 << end_bit(page.held, self.ask));
            }
            self.live -= left;
            left = 0;
        }
        excess as u64
    }

    /// Whether every price and size, and the step, still fit a `u64` multiplied by `px_by` and
    /// `qty_by`.
    pub(crate) fn rescales(&self, px_by: u64, qty_by: u64) -> bool {
        let Some(highest) = self.end_level(true).map(|s| s.px) else {
            return true;
        };
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

/// The highest or the lowest set bit of `held`, which has one.
#[inline(always)]
fn end_bit(held: u32, high: bool) -> u32 {
    if high {
        31 - held.leading_zeros()
    } else {
        held.trailing_zeros()
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
        let bit = end_bit(self.held, !side.ask);
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
