//! Candles per (symbol, interval): one forming candle and a bounded run of closed ones.
//!
//! A forming candle and a closed candle are different types, so code that wants closed data
//! cannot be handed a candle that may still change. A close is emitted once per start even if
//! the venue repeats it; REST history merges in start order with live candles winning on
//! overlap; a REST candle whose period has not ended is never taken as closed.

use std::collections::VecDeque;

/// A candle's values are the wire's: REST history and live frames both carry them.
pub use crate::wire::frame::Bar;
use crate::wire::frame::KlineData;
use crate::wire::topic::Interval;

/// Default bound on the closed candles a series keeps.
pub const CLOSED_CANDLES_MAX_DEFAULT: usize = 5_000;
/// Most gaps one merge reports one by one; the rest are only counted.
pub const GAPS_REPORTED_MAX: usize = 64;

/// A candle whose period is still running: its values may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormingCandle {
    pub bar: Bar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleSource {
    Live,
    Rest,
}

/// A candle whose period has ended: final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedCandle {
    pub bar: Bar,
    pub source: CandleSource,
}

/// Missing periods: candles starting at `from_ms` up to (not including) `to_ms` are absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What one live candle did to the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveOutcome {
    /// The forming candle was created or updated.
    Forming,
    /// A candle closed for the first time; `gap` is set when periods are missing before it.
    Closed {
        candle: ClosedCandle,
        gap: Option<Gap>,
    },
    /// A live close for a period REST had already filled: the live values replace it and
    /// nothing is emitted again.
    Corrected,
    /// A repeat of a close already emitted.
    Duplicate,
    /// Older than what the series holds.
    Stale,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    pub added: usize,
    pub replaced: usize,
    /// Overlaps where the live candle was kept.
    pub kept_live: usize,
    /// REST candles whose period had not ended at `now`: not taken as closed.
    pub open_skipped: usize,
    pub evicted: usize,
    pub gaps: Vec<Gap>,
    pub gaps_total: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KlineCounters {
    pub updates: u64,
    pub closes: u64,
    pub duplicates: u64,
    pub stale: u64,
    pub gaps: u64,
    pub evicted: u64,
    /// Changes to closed candles other than a new newest one (a correction, a merge): a copy
    /// kept up to date by appending must be rebuilt.
    pub rewrites: u64,
}

#[derive(Debug, Clone)]
pub struct KlineSeries {
    interval: Interval,
    closed_max: usize,
    closed: VecDeque<ClosedCandle>,
    forming: Option<FormingCandle>,
    counters: KlineCounters,
}

impl KlineSeries {
    pub fn new(interval: Interval, closed_max: usize) -> Self {
        KlineSeries {
            interval,
            closed_max: closed_max.max(1),
            closed: VecDeque::new(),
            forming: None,
            counters: KlineCounters::default(),
        }
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    pub fn forming(&self) -> Option<&FormingCandle> {
        self.forming.as_ref()
    }

    /// Closed candles, oldest first.
    pub fn closed(&self) -> impl ExactSizeIterator<Item = &ClosedCandle> + DoubleEndedIterator {
        self.closed.iter()
    }

    pub fn last_closed(&self) -> Option<&ClosedCandle> {
        self.closed.back()
    }

    pub fn counters(&self) -> &KlineCounters {
        &self.counters
    }

    /// The most recent closes, as one contiguous slice, oldest first.
    pub fn closed_slice(&mut self) -> &[ClosedCandle] {
        self.closed.make_contiguous()
    }

    fn find(&self, start: u64) -> Result<usize, usize> {
        self.closed.binary_search_by_key(&start, |c| c.bar.start_ms)
    }

    pub fn apply_live(&mut self, k: &KlineData) -> LiveOutcome {
        self.counters.updates += 1;
        let bar = Bar::from_kline(k);
        let newest = self.closed.back().map(|c| c.bar.start_ms);
        if !k.confirm {
            let behind_closed = newest.is_some_and(|n| bar.start_ms <= n);
            let behind_forming = self.forming.is_some_and(|f| bar.start_ms < f.bar.start_ms);
            if behind_closed || behind_forming {
                self.counters.stale += 1;
                return LiveOutcome::Stale;
            }
            self.forming = Some(FormingCandle { bar });
            return LiveOutcome::Forming;
        }
        let candle = ClosedCandle {
            bar,
            source: CandleSource::Live,
        };
        if self.forming.is_some_and(|f| f.bar.start_ms <= bar.start_ms) {
            self.forming = None;
        }
        match self.find(bar.start_ms) {
            Ok(i) if self.closed[i].source == CandleSource::Rest => {
                self.closed[i] = candle;
                self.counters.rewrites += 1;
                LiveOutcome::Corrected
            }
            Ok(_) => {
                self.counters.duplicates += 1;
                LiveOutcome::Duplicate
            }
            Err(0) if self.closed.len() >= self.closed_max => {
                // Older than everything kept: it may have been emitted and evicted already.
                self.counters.stale += 1;
                LiveOutcome::Stale
            }
            Err(i) => {
                let gap = match newest {
                    Some(n) if i == self.closed.len() => {
                        let expected = self.interval.next_start(n);
                        (bar.start_ms != expected).then_some(Gap {
                            from_ms: expected,
                            to_ms: bar.start_ms,
                        })
                    }
                    _ => None,
                };
                if gap.is_some() {
                    self.counters.gaps += 1;
                }
                self.closed.insert(i, candle);
                self.counters.closes += 1;
                self.evict();
                LiveOutcome::Closed { candle, gap }
            }
        }
    }

    /// Merges REST history (any order, as the venue sends it: newest first). `now_ms` is the
    /// venue's clock: a candle whose period ends after it is still open and is skipped.
    pub fn merge_rest(&mut self, rest: &[Bar], now_ms: u64) -> MergeReport {
        let mut report = MergeReport::default();
        let mut incoming: Vec<Bar> = Vec::with_capacity(rest.len());
        for b in rest {
            if self.interval.next_start(b.start_ms) > now_ms {
                report.open_skipped += 1;
            } else {
                incoming.push(*b);
            }
        }
        incoming.sort_by_key(|b| b.start_ms);
        incoming.dedup_by_key(|b| b.start_ms);
        let existing = self.closed.make_contiguous();
        let (merged, stats) = merge_runs(existing, &incoming);
        report.added = stats.added;
        report.replaced = stats.replaced;
        report.kept_live = stats.kept_live;
        self.install(merged, &mut report);
        report
    }

    /// Takes `merged` as the closed candles: bounds them, drops a forming candle they
    /// superseded, and reports the gaps left.
    fn install(&mut self, merged: Vec<ClosedCandle>, report: &mut MergeReport) {
        self.closed = merged.into();
        self.counters.rewrites += 1;
        report.evicted = self.evict();
        if let (Some(f), Some(n)) = (self.forming, self.closed.back())
            && f.bar.start_ms <= n.bar.start_ms
        {
            self.forming = None;
        }
        let gaps = find_gaps(self.interval, self.closed.make_contiguous());
        report.gaps_total = gaps.len();
        self.counters.gaps += gaps.len() as u64;
        report.gaps = gaps.into_iter().take(GAPS_REPORTED_MAX).collect();
    }

    /// Changes whenever a candle is added or evicted: a compute job that merged a snapshot of
    /// the series applies its result only if this is unchanged.
    pub fn version(&self) -> (u64, u64, usize) {
        (
            self.counters.closes,
            self.counters.evicted,
            self.closed.len(),
        )
    }

    /// The closed candles, for a merge job to work on.
    pub fn closed_vec(&self) -> Vec<ClosedCandle> {
        self.closed.iter().copied().collect()
    }

    /// Installs the result of a merge job made from this series' current version.
    pub fn install_merged(&mut self, merged: Vec<ClosedCandle>) -> MergeReport {
        let mut report = MergeReport::default();
        self.install(merged, &mut report);
        // A new version, so an older job's result is never installed over this one.
        self.counters.closes += 1;
        report
    }

    /// REST bars that are closed at `now_ms`, sorted and unique: what a merge takes.
    pub fn closed_bars(&self, rest: &[Bar], now_ms: u64) -> Vec<Bar> {
        let mut v: Vec<Bar> = rest
            .iter()
            .filter(|b| self.interval.next_start(b.start_ms) <= now_ms)
            .copied()
            .collect();
        v.sort_by_key(|b| b.start_ms);
        v.dedup_by_key(|b| b.start_ms);
        v
    }

    fn evict(&mut self) -> usize {
        let excess = self.closed.len().saturating_sub(self.closed_max);
        self.closed.drain(..excess);
        self.counters.evicted += excess as u64;
        excess
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub added: usize,
    pub replaced: usize,
    pub kept_live: usize,
}

/// Merges two runs sorted by start (REST bars must be closed and unique). Live candles win on
/// overlap; a REST candle replaces an older REST candle. Linear in the total length: the big
/// merges of a backfill never re-sort.
pub fn merge_runs(existing: &[ClosedCandle], rest: &[Bar]) -> (Vec<ClosedCandle>, MergeStats) {
    let mut out = Vec::with_capacity(existing.len() + rest.len());
    let mut stats = MergeStats::default();
    let (mut i, mut j) = (0, 0);
    while i < existing.len() && j < rest.len() {
        let (e, r) = (existing[i], rest[j]);
        match e.bar.start_ms.cmp(&r.start_ms) {
            std::cmp::Ordering::Less => {
                out.push(e);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(rest_candle(r));
                stats.added += 1;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if e.source == CandleSource::Live {
                    out.push(e);
                    stats.kept_live += 1;
                } else {
                    out.push(rest_candle(r));
                    stats.replaced += 1;
                }
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&existing[i..]);
    stats.added += rest.len() - j;
    out.extend(rest[j..].iter().copied().map(rest_candle));
    (out, stats)
}

fn rest_candle(bar: Bar) -> ClosedCandle {
    ClosedCandle {
        bar,
        source: CandleSource::Rest,
    }
}

/// Every run of missing periods between consecutive candles.
pub fn find_gaps(interval: Interval, candles: &[ClosedCandle]) -> Vec<Gap> {
    candles
        .windows(2)
        .filter_map(|w| {
            let expected = interval.next_start(w[0].bar.start_ms);
            (w[1].bar.start_ms != expected).then_some(Gap {
                from_ms: expected,
                to_ms: w[1].bar.start_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Dec;

    const M: u64 = 60_000;

    fn k(start: u64, close: i64, confirm: bool) -> KlineData {
        KlineData {
            start,
            end: Some(start + M - 1),
            open: Dec::from_int(close),
            high: Dec::from_int(close),
            low: Dec::from_int(close),
            close: Dec::from_int(close),
            volume: Dec::ONE,
            turnover: Dec::ONE,
            confirm,
            timestamp: None,
        }
    }

    fn bar(start: u64, close: i64) -> Bar {
        Bar::from_kline(&k(start, close, true))
    }

    fn starts(s: &KlineSeries) -> Vec<u64> {
        s.closed().map(|c| c.bar.start_ms).collect()
    }

    #[test]
    fn forming_updates_then_one_close_per_start() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        assert_eq!(s.apply_live(&k(0, 1, false)), LiveOutcome::Forming);
        assert_eq!(s.forming().unwrap().bar.close, Dec::from_int(1));
        assert!(matches!(
            s.apply_live(&k(0, 2, true)),
            LiveOutcome::Closed { gap: None, .. }
        ));
        assert!(s.forming().is_none());
        assert_eq!(s.apply_live(&k(0, 2, true)), LiveOutcome::Duplicate);
        assert_eq!(s.counters().closes, 1);
        assert_eq!(s.counters().duplicates, 1);
    }

    #[test]
    fn forming_update_for_a_closed_period_is_stale() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        s.apply_live(&k(M, 1, true));
        assert_eq!(s.apply_live(&k(M, 5, false)), LiveOutcome::Stale);
        assert!(s.forming().is_none());
    }

    #[test]
    fn close_after_missing_periods_reports_the_gap() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        s.apply_live(&k(0, 1, true));
        let out = s.apply_live(&k(3 * M, 1, true));
        assert!(matches!(
            out,
            LiveOutcome::Closed {
                gap: Some(Gap { from_ms, to_ms }),
                ..
            } if from_ms == M && to_ms == 3 * M
        ));
    }

    #[test]
    fn series_is_bounded_and_refuses_evicted_repeats() {
        let mut s = KlineSeries::new(Interval::Min1, 3);
        for i in 0..5 {
            s.apply_live(&k(i * M, 1, true));
        }
        assert_eq!(starts(&s), vec![2 * M, 3 * M, 4 * M]);
        assert_eq!(s.counters().evicted, 2);
        assert_eq!(s.apply_live(&k(0, 1, true)), LiveOutcome::Stale);
    }

    #[test]
    fn rest_merge_keeps_live_on_overlap_and_skips_the_open_candle() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        s.apply_live(&k(2 * M, 42, true));
        // Newest first, as REST sends it; the candle at 4M is still open at now = 4M + 30s.
        let rest = [
            bar(4 * M, 9),
            bar(3 * M, 9),
            bar(2 * M, 9),
            bar(M, 9),
            bar(0, 9),
        ];
        let r = s.merge_rest(&rest, 4 * M + 30_000);
        assert_eq!(r.open_skipped, 1);
        assert_eq!(r.kept_live, 1);
        assert_eq!(r.added, 3);
        assert_eq!(starts(&s), vec![0, M, 2 * M, 3 * M]);
        assert_eq!(s.closed().nth(2).unwrap().bar.close, Dec::from_int(42));
        assert!(r.gaps.is_empty());
    }

    #[test]
    fn live_close_over_rest_history_corrects_without_emitting_again() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        s.merge_rest(&[bar(0, 9)], 10 * M);
        assert_eq!(s.apply_live(&k(0, 10, true)), LiveOutcome::Corrected);
        assert_eq!(s.last_closed().unwrap().source, CandleSource::Live);
    }

    #[test]
    fn rest_merge_reports_gaps_it_cannot_fill() {
        let mut s = KlineSeries::new(Interval::Min1, 100);
        let r = s.merge_rest(&[bar(5 * M, 1), bar(M, 1), bar(0, 1)], 100 * M);
        assert_eq!(
            r.gaps,
            vec![Gap {
                from_ms: 2 * M,
                to_ms: 5 * M
            }]
        );
    }
}
