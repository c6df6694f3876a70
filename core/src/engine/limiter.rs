//! Rate limiting over a rolling window (a data structure: `try_take(now)` and getters): at most
//! `limit` takes in ANY `window`, which is how Bybit counts both its REST limit ("600 requests
//! within a 5-second window") and its connection limit ("500 connections in 5 minutes"), and at
//! least `spacing` between two takes. A GCRA would allow a full burst and then a steady pace, up
//! to twice the limit inside one window; a log of take times bounded by `limit` is exact and
//! still tiny. The connect budget and the REST scheduler both use this one limiter.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Time;

/// Take times allocated up front; a larger limit grows the log as it fills.
const TAKES_PREALLOCATED_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct WindowLimiter {
    limit: usize,
    window: Duration,
    spacing: Duration,
    /// Take times inside the current window, oldest first; never more than `limit`.
    taken: VecDeque<Time>,
    taken_total: u64,
    deferred_total: u64,
}

impl WindowLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::spaced(limit as usize, window, Duration::ZERO)
    }

    /// As [`WindowLimiter::new`], and never two takes closer than `spacing`.
    pub fn spaced(limit: usize, window: Duration, spacing: Duration) -> Self {
        let limit = limit.max(1);
        WindowLimiter {
            limit,
            window,
            spacing,
            taken: VecDeque::with_capacity(limit.min(TAKES_PREALLOCATED_MAX)),
            taken_total: 0,
            deferred_total: 0,
        }
    }

    // ----- getters -----

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Takes granted since the start.
    pub fn taken_total(&self) -> u64 {
        self.taken_total
    }

    /// Takes refused (asked too early) since the start.
    pub fn deferred_total(&self) -> u64 {
        self.deferred_total
    }

    /// When the next take may happen.
    pub fn earliest(&self, now: Time) -> Time {
        let t = self.earliest_unspaced(now);
        match self.taken.back() {
            Some(last) => t.max(*last + self.spacing),
            None => t,
        }
    }

    /// When the window's limit allows the next take, spacing aside.
    pub fn earliest_unspaced(&self, now: Time) -> Time {
        match self.taken.len().checked_sub(self.limit) {
            // The oldest of the last `limit` takes must have left the window.
            Some(i) => now.max(self.taken[i] + self.window),
            None => now,
        }
    }

    // ----- apply -----

    /// Takes one if the limits allow it at `now`; a refusal is counted and changes nothing else.
    pub fn try_take(&mut self, now: Time) -> bool {
        self.forget_before(now);
        self.take_if(now, self.earliest(now))
    }

    /// As [`WindowLimiter::try_take`], held to the window's limit but not to the spacing (the
    /// take still counts, and the next spaced take waits for it).
    pub fn try_take_unspaced(&mut self, now: Time) -> bool {
        self.forget_before(now);
        self.take_if(now, self.earliest_unspaced(now))
    }

    fn forget_before(&mut self, now: Time) {
        while self
            .taken
            .front()
            .is_some_and(|t| now.since(*t) >= self.window)
        {
            self.taken.pop_front();
        }
    }

    fn take_if(&mut self, now: Time, earliest: Time) -> bool {
        if earliest > now {
            self.deferred_total += 1;
            return false;
        }
        self.taken.push_back(now);
        self.taken_total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_the_limit_then_waits_for_the_window() {
        let mut g = WindowLimiter::new(600, Duration::from_secs(5));
        let t0 = Time::from_secs(100);
        let burst = (0..1000).filter(|_| g.try_take(t0)).count();
        assert_eq!(burst, 600);
        assert_eq!(g.earliest(t0), t0 + Duration::from_secs(5));
        assert!(!g.try_take(t0 + Duration::from_millis(4999)));
        assert!(g.try_take(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        let mut g = WindowLimiter::new(50, Duration::from_secs(1));
        let mut sent = Vec::new();
        for ms in 0..10_000u64 {
            let now = Time::from_millis(ms);
            if ms % 7 == 0 {
                while g.try_take(now) {
                    sent.push(ms);
                }
            }
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|s| **s < t + 1000).count();
            assert!(
                in_window <= 50,
                "{in_window} requests in the second from {t} ms"
            );
        }
        assert!(
            sent.len() >= 450,
            "the limiter also lets the full rate through: {}",
            sent.len()
        );
    }
}
