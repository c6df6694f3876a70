//! REST rate limiting over a rolling window: at most `limit` requests in ANY `window`, which is
//! how Bybit counts ("600 requests within a 5-second window"). A GCRA would allow a full burst
//! and then a steady pace, up to twice the limit inside one window; a log of send times bounded
//! by `limit` is exact and still tiny.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Time;

#[derive(Debug, Clone)]
pub struct WindowLimiter {
    limit: usize,
    window: Duration,
    /// Send times inside the current window, oldest first; never more than `limit`.
    sent: VecDeque<Time>,
}

impl WindowLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1) as usize;
        WindowLimiter {
            limit,
            window,
            sent: VecDeque::with_capacity(limit.min(4096)),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// When the next request may go.
    pub fn earliest(&self, now: Time) -> Time {
        if self.sent.len() < self.limit {
            return now;
        }
        // The oldest of the last `limit` sends must have left the window.
        let oldest = self.sent[self.sent.len() - self.limit];
        now.max(oldest + self.window)
    }

    pub fn try_take(&mut self, now: Time) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|t| now.since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.limit {
            return false;
        }
        self.sent.push_back(now);
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
