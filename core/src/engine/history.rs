//! Kline history (a time-driven machine): the warm-up at start, the pages that fill a gap the
//! live stream left, and the merges of REST history into the market's series.
//!
//! A small merge runs inline (two sorted runs, microseconds). A big one leaves the engine as a
//! compute job with a deadline; at most `merge_jobs_max` are in flight and at most
//! `merges_waiting_max` wait behind them. A job past its deadline is abandoned (its late answer
//! is dropped by its run number) and started again, up to `merge_attempts_max` times. A job
//! whose series moved on meanwhile is redone inline from the bars it kept, so nothing is lost
//! and nothing is taken as closed twice.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::config::Category;
use super::io::{Notice, Severity};
use crate::market::kline::{Bar, Gap};
use crate::market::{Market, SeriesId};
use crate::time::Time;
use crate::trading::compute::{MERGE_PARALLEL_CANDLES_MIN, MergeInput, Work, WorkResult};
use crate::wire::rest;
use crate::wire::topic::Interval;

/// Bybit: "Limit for data size per page. [1, 1000]".
pub const KLINE_PAGE_MAX: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    pub merge_jobs_max: usize,
    pub merges_waiting_max: usize,
    pub merge_deadline_ms: u64,
    pub merge_attempts_max: u32,
    /// Most candles one gap may ask for; a longer gap is filled up to this many.
    pub gap_candles_max: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            merge_jobs_max: 4,
            merges_waiting_max: 64,
            merge_deadline_ms: 30_000,
            merge_attempts_max: 3,
            gap_candles_max: 100_000,
        }
    }
}

/// What a history request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub symbol: String,
    pub interval: Interval,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HistoryOutput {
    Request { path: String, ask: Ask },
    Compute { run: u64, work: Work },
    Notice(Notice),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryCounters {
    pub pages_merged: u64,
    pub merge_jobs: u64,
    pub merges_timed_out: u64,
    pub merges_redone_inline: u64,
    /// Merges dropped: the waiting line was full, or every attempt overran.
    pub merges_dropped: u64,
}

/// A merge job: the series, its version when the snapshot was taken, and the bars, kept so the
/// merge can be redone if the series moved on meanwhile.
#[derive(Debug, Clone)]
struct MergeJob {
    series: SeriesId,
    version: (u64, u64, usize),
    bars: Vec<Bar>,
    attempts: u32,
    deadline: Time,
}

#[derive(Debug, Clone)]
pub struct History {
    config: HistoryConfig,
    category: Category,
    in_flight: BTreeMap<u64, MergeJob>,
    waiting: VecDeque<MergeJob>,
    runs: u64,
    outputs: VecDeque<HistoryOutput>,
    counters: HistoryCounters,
}

impl History {
    pub fn new(config: HistoryConfig, category: Category) -> Self {
        History {
            config,
            category,
            in_flight: BTreeMap::new(),
            waiting: VecDeque::new(),
            runs: 0,
            outputs: VecDeque::new(),
            counters: HistoryCounters::default(),
        }
    }

    // ----- getters -----

    pub fn counters(&self) -> &HistoryCounters {
        &self.counters
    }

    pub fn jobs_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // ----- inputs -----

    /// Asks for the last `candles` closed candles of `symbol`.
    pub fn warm_up(&mut self, symbol: &str, interval: Interval, candles: u32) {
        let path = format!(
            "/v5/market/kline?category={}&symbol={symbol}&interval={}&limit={candles}",
            self.category.as_str(),
            interval.as_str()
        );
        self.request(path, symbol, interval);
    }

    /// Asks for the candles of a gap the live stream left, a page at a time.
    pub fn fill_gap(&mut self, symbol: &str, interval: Interval, gap: Gap) {
        self.notice(
            Severity::Warn,
            format!(
                "kline.{}.{symbol}: candles missing from {} to {}; backfilling",
                interval.as_str(),
                gap.from_ms,
                gap.to_ms
            ),
        );
        let missing: Vec<u64> = std::iter::successors(Some(gap.from_ms), |s| {
            Some(interval.next_start(*s)).filter(|n| *n < gap.to_ms)
        })
        .take(self.config.gap_candles_max)
        .collect();
        for (start, end) in pages(&missing, interval) {
            let path = format!(
                "/v5/market/kline?category={}&symbol={symbol}&interval={}&start={start}&end={end}&limit={KLINE_PAGE_MAX}",
                self.category.as_str(),
                interval.as_str(),
            );
            self.request(path, symbol, interval);
        }
    }

    /// A history page arrived (or failed): merge it into its series.
    pub fn handle_answer(
        &mut self,
        now: Time,
        ask: Ask,
        result: Result<String, String>,
        market: &mut Market,
    ) {
        let r = match result.and_then(|b| rest::parse_kline(&b).map_err(|e| e.to_string())) {
            Ok(r) => r,
            Err(e) => {
                let text = format!("history for {}: {e}", ask.symbol);
                return self.notice(Severity::Warn, text);
            }
        };
        let Some(series) = market.series_for(&ask.symbol, ask.interval) else {
            return;
        };
        // The venue's clock decides which candle is still open.
        let venue_now = r.time_ms.unwrap_or(0);
        let s = market.series(series);
        let bars = s.closed_bars(&r.result.bars, venue_now);
        if s.closed().len() + bars.len() >= MERGE_PARALLEL_CANDLES_MIN {
            // Big: a compute job on the pool, never on the loop.
            let job = MergeJob {
                series,
                version: s.version(),
                bars,
                attempts: 0,
                deadline: now,
            };
            return self.enqueue(now, job, market);
        }
        let report = market
            .series_mut(series)
            .merge_rest(&r.result.bars, venue_now);
        self.counters.pages_merged += 1;
        self.notice(
            Severity::Info,
            format!(
                "kline.{}.{}: {} candles of history merged ({} kept live, {} still open, {} gaps)",
                ask.interval.as_str(),
                ask.symbol,
                report.added + report.replaced,
                report.kept_live,
                report.open_skipped,
                report.gaps_total
            ),
        );
    }

    /// A merge job answered. An answer for a run no longer awaited is dropped.
    pub fn handle_compute(
        &mut self,
        now: Time,
        run: u64,
        result: Result<WorkResult, String>,
        market: &mut Market,
    ) {
        let Some(job) = self.in_flight.remove(&run) else {
            return;
        };
        let topic = market.series_topic(job.series).to_string();
        let series = market.series_mut(job.series);
        let fresh = series.version() == job.version;
        let report = match result {
            Ok(WorkResult::Merged(mut out)) if fresh && out.len() == 1 => {
                let (merged, _) = out.remove(0);
                series.install_merged(merged)
            }
            // The series moved on (a live close came in) or the job failed: redo it here; the
            // bars are already closed and sorted, so nothing is lost or taken as closed twice.
            _ => {
                self.counters.merges_redone_inline += 1;
                series.merge_rest(&job.bars, u64::MAX)
            }
        };
        self.counters.pages_merged += 1;
        self.notice(
            Severity::Info,
            format!(
                "{topic}: {} candles of history merged by a compute job{} ({} gaps)",
                job.bars.len(),
                if fresh {
                    ""
                } else {
                    ", redone inline after a live close"
                },
                report.gaps_total
            ),
        );
        self.start_waiting(now, market);
    }

    /// Abandons merge jobs past their deadline and starts them again, boundedly.
    pub fn handle_timeout(&mut self, now: Time, market: &mut Market) {
        let late: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, j)| j.deadline <= now)
            .map(|(r, _)| *r)
            .collect();
        for run in late {
            let Some(job) = self.in_flight.remove(&run) else {
                continue;
            };
            self.counters.merges_timed_out += 1;
            let topic = market.series_topic(job.series).to_string();
            if job.attempts >= self.config.merge_attempts_max {
                self.counters.merges_dropped += 1;
                self.notice(
                    Severity::Error,
                    format!(
                        "{topic}: a history merge overran its deadline {} times; dropped",
                        job.attempts
                    ),
                );
                continue;
            }
            self.notice(
                Severity::Warn,
                format!("{topic}: a history merge overran its deadline; starting it again"),
            );
            self.waiting.push_front(job);
        }
        self.start_waiting(now, market);
    }

    // ----- outputs -----

    /// The next output; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<HistoryOutput> {
        self.outputs.pop_front()
    }

    /// The earliest merge deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.in_flight.values().map(|j| j.deadline).min()
    }

    // ----- internals -----

    fn request(&mut self, path: String, symbol: &str, interval: Interval) {
        self.outputs.push_back(HistoryOutput::Request {
            path,
            ask: Ask {
                symbol: symbol.to_string(),
                interval,
            },
        });
    }

    fn enqueue(&mut self, now: Time, job: MergeJob, market: &mut Market) {
        if self.waiting.len() >= self.config.merges_waiting_max {
            self.counters.merges_dropped += 1;
            let topic = market.series_topic(job.series).to_string();
            self.notice(
                Severity::Error,
                format!("{topic}: too many history merges waiting; this page was dropped"),
            );
            return;
        }
        self.waiting.push_back(job);
        self.start_waiting(now, market);
    }

    fn start_waiting(&mut self, now: Time, market: &Market) {
        while self.in_flight.len() < self.config.merge_jobs_max {
            let Some(mut job) = self.waiting.pop_front() else {
                return;
            };
            let s = market.series(job.series);
            job.version = s.version();
            job.attempts += 1;
            job.deadline = now + Duration::from_millis(self.config.merge_deadline_ms);
            self.runs += 1;
            let run = self.runs;
            let input = MergeInput {
                existing: s.closed_vec(),
                rest: job.bars.clone(),
            };
            self.in_flight.insert(run, job);
            self.counters.merge_jobs += 1;
            self.outputs.push_back(HistoryOutput::Compute {
                run,
                work: Work::MergeHistory(vec![input]),
            });
        }
    }

    fn notice(&mut self, level: Severity, text: String) {
        self.outputs
            .push_back(HistoryOutput::Notice(Notice { level, text }));
    }
}

/// Contiguous runs of missing starts, cut into pages of at most 1000 candles: (first, last).
pub fn pages(missing: &[u64], interval: Interval) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut count = 0;
    for &s in missing {
        match out.last_mut() {
            Some((_, last)) if interval.next_start(*last) == s && count < KLINE_PAGE_MAX => {
                *last = s;
                count += 1;
            }
            _ => {
                out.push((s, s));
                count = 1;
            }
        }
    }
    out
}
