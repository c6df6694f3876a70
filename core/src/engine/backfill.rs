//! Backfill: which REST pages to fetch so every closed candle of a range is stored, given what
//! the store already holds. The requests go through the engine's REST scheduler (rate limit,
//! retries, the 403 penalty), so nothing here sleeps and nothing retries on its own.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::history::{KLINE_PAGE_MAX, pages};
use crate::engine::scheduler::{
    HttpError, RequestId, RestConfig, RestFailure, SchedOutput, Scheduler,
};
use crate::market::kline::Bar;
use crate::rng::Rng;
use crate::time::Time;
use crate::wire::rest;
use crate::wire::topic::Interval;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillConfig {
    pub category: String,
    pub symbols: Vec<String>,
    pub interval: Interval,
    /// The range of candle starts wanted: [from_ms, to_ms).
    pub from_ms: u64,
    pub to_ms: u64,
    pub rest: RestConfig,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackfillOutput {
    Http {
        id: RequestId,
        path: String,
        timeout: Duration,
    },
    /// Closed candles to store (the venue's clock said their period had ended).
    Store { symbol: String, bars: Vec<Bar> },
    Progress {
        symbol: String,
        have: u64,
        want: u64,
    },
    /// A page failed for good; its range stays missing and is reported as a gap.
    PageFailed { symbol: String, error: String },
    /// Every page answered: `gaps` lists ranges the venue could not fill, per symbol.
    Done { gaps: Vec<(String, u64, u64)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Page {
    symbol: usize,
    start: u64,
    end: u64,
}

pub struct Backfill {
    config: BackfillConfig,
    sched: Scheduler<Page>,
    rng: Rng,
    have: Vec<BTreeSet<u64>>,
    want: Vec<u64>,
    pending: usize,
    outputs: VecDeque<BackfillOutput>,
    requests: u64,
    stored: u64,
    done: bool,
}

impl Backfill {
    /// `have[i]`: the candle starts already stored for `config.symbols[i]`.
    pub fn new(config: BackfillConfig, have: Vec<BTreeSet<u64>>, now: Time) -> Backfill {
        let mut b = Backfill {
            sched: Scheduler::new(config.rest.clone()),
            rng: Rng::new(config.seed),
            want: vec![0; config.symbols.len()],
            have,
            pending: 0,
            outputs: VecDeque::new(),
            requests: 0,
            stored: 0,
            done: false,
            config,
        };
        b.have.resize(b.config.symbols.len(), BTreeSet::new());
        for i in 0..b.config.symbols.len() {
            let starts = b.starts();
            b.want[i] = starts.len() as u64;
            let missing: Vec<u64> = starts
                .into_iter()
                .filter(|s| !b.have[i].contains(s))
                .collect();
            for (start, end) in pages(&missing, b.config.interval) {
                b.request(
                    now,
                    Page {
                        symbol: i,
                        start,
                        end,
                    },
                );
            }
            b.progress(i);
        }
        b.drain(now);
        b
    }

    /// Every candle start in the wanted range.
    fn starts(&self) -> Vec<u64> {
        let iv = self.config.interval;
        let mut out = Vec::new();
        let mut s = iv.floor(self.config.from_ms);
        if s < self.config.from_ms {
            s = iv.next_start(s);
        }
        while s < self.config.to_ms && out.len() < 10_000_000 {
            out.push(s);
            s = iv.next_start(s);
        }
        out
    }

    fn request(&mut self, now: Time, p: Page) {
        let path = format!(
            "/v5/market/kline?category={}&symbol={}&interval={}&start={}&end={}&limit={KLINE_PAGE_MAX}",
            self.config.category,
            self.config.symbols[p.symbol],
            self.config.interval.as_str(),
            p.start,
            p.end
        );
        match self.sched.submit(now, path, p) {
            Ok(_) => self.pending += 1,
            Err(e) => self.outputs.push_back(BackfillOutput::PageFailed {
                symbol: "?".into(),
                error: e.to_string(),
            }),
        }
    }

    fn progress(&mut self, i: usize) {
        self.outputs.push_back(BackfillOutput::Progress {
            symbol: self.config.symbols[i].clone(),
            have: self.have[i].len().min(self.want[i] as usize) as u64,
            want: self.want[i],
        });
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn stored(&self) -> u64 {
        self.stored
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn rest_counters(&self) -> &crate::engine::scheduler::SchedCounters {
        self.sched.counters()
    }

    pub fn handle_response(&mut self, now: Time, id: RequestId, status: u16, body: String) {
        self.sched
            .handle_response(now, id, status, body, &mut self.rng);
        self.drain(now);
    }

    pub fn handle_error(&mut self, now: Time, id: RequestId, error: HttpError) {
        self.sched.handle_error(now, id, error, &mut self.rng);
        self.drain(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.sched.handle_timeout(now, &mut self.rng);
        self.drain(now);
    }

    fn drain(&mut self, _now: Time) {
        while let Some(o) = self.sched.poll_output() {
            match o {
                SchedOutput::Http { id, path, timeout } => {
                    self.requests += 1;
                    self.outputs
                        .push_back(BackfillOutput::Http { id, path, timeout });
                }
                SchedOutput::Done {
                    purpose, result, ..
                } => {
                    self.pending -= 1;
                    self.on_page(purpose, result);
                }
                SchedOutput::Paused { .. } | SchedOutput::Resumed => {}
            }
        }
        if self.pending == 0 && !self.done {
            self.done = true;
            let mut gaps = Vec::new();
            for i in 0..self.config.symbols.len() {
                let missing: Vec<u64> = self
                    .starts()
                    .into_iter()
                    .filter(|s| !self.have[i].contains(s))
                    .collect();
                for (from, to) in pages(&missing, self.config.interval) {
                    gaps.push((self.config.symbols[i].clone(), from, to));
                }
            }
            self.outputs.push_back(BackfillOutput::Done { gaps });
        }
    }

    fn on_page(&mut self, p: Page, result: Result<String, RestFailure>) {
        let symbol = self.config.symbols[p.symbol].clone();
        let page = match result
            .map_err(|e| e.to_string())
            .and_then(|b| rest::parse_kline(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(error) => {
                self.outputs
                    .push_back(BackfillOutput::PageFailed { symbol, error });
                return;
            }
        };
        // A candle whose period has not ended on the venue's clock is still open: never stored.
        let venue_now = page.time_ms.unwrap_or(0);
        let iv = self.config.interval;
        let bars: Vec<Bar> = page
            .result
            .bars
            .into_iter()
            .filter(|b| {
                b.start_ms >= p.start
                    && b.start_ms <= p.end
                    && iv.next_start(b.start_ms) <= venue_now
            })
            .filter(|b| b.start_ms >= self.config.from_ms && b.start_ms < self.config.to_ms)
            .collect();
        for b in &bars {
            self.have[p.symbol].insert(b.start_ms);
        }
        self.stored += bars.len() as u64;
        if !bars.is_empty() {
            self.outputs
                .push_back(BackfillOutput::Store { symbol, bars });
        }
        self.progress(p.symbol);
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<BackfillOutput> {
        self.outputs.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.sched.poll_timeout()
    }
}

/// How long the rate limit alone needs for `requests`: a window for every full `limit` after
/// the first burst.
pub fn rate_bound(requests: u64, limit: u32, window: Duration) -> Duration {
    if requests == 0 {
        return Duration::ZERO;
    }
    window * ((requests - 1) / limit.max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 60_000;

    #[test]
    fn missing_runs_are_cut_into_pages_of_a_thousand() {
        let missing: Vec<u64> = (0..2500)
            .map(|i| i * M)
            .chain([3000 * M, 3001 * M])
            .collect();
        let p = pages(&missing, Interval::Min1);
        assert_eq!(
            p,
            vec![
                (0, 999 * M),
                (1000 * M, 1999 * M),
                (2000 * M, 2499 * M),
                (3000 * M, 3001 * M)
            ]
        );
    }

    #[test]
    fn what_is_stored_is_never_fetched_again() {
        let cfg = BackfillConfig {
            category: "linear".into(),
            symbols: vec!["A".into(), "B".into()],
            interval: Interval::Min1,
            from_ms: 0,
            to_ms: 2000 * M,
            rest: RestConfig::default(),
            seed: 1,
        };
        let full: BTreeSet<u64> = (0..2000).map(|i| i * M).collect();
        let mut half = full.clone();
        half.retain(|s| *s < 1500 * M);
        let mut b = Backfill::new(cfg, vec![full, half], Time::ZERO);
        let reqs: Vec<String> = std::iter::from_fn(|| b.poll_output())
            .filter_map(|o| match o {
                BackfillOutput::Http { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        assert_eq!(reqs.len(), 1, "{reqs:?}");
        assert!(reqs[0].contains("symbol=B") && reqs[0].contains(&format!("start={}", 1500 * M)));
    }

    #[test]
    fn rate_bound_counts_whole_windows_after_the_first_burst() {
        let w = Duration::from_secs(5);
        assert_eq!(rate_bound(1, 500, w), Duration::ZERO);
        assert_eq!(rate_bound(500, 500, w), Duration::ZERO);
        assert_eq!(rate_bound(501, 500, w), w);
        assert_eq!(rate_bound(1500, 500, w), w * 2);
    }
}
