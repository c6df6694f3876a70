//! One connection budget per venue, shared by all its links: at most one connect per
//! `connect_interval_ms` and `window_connects_max` per `window_ms` (Bybit: "Do not build over
//! 500 connections in 5 minutes").

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    pub connect_interval_ms: u64,
    pub window_ms: u64,
    pub window_connects_max: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            connect_interval_ms: 1_000,
            window_ms: 300_000,
            window_connects_max: 500,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectBudget {
    config: BudgetConfig,
    /// Start times of connects inside the window; never longer than `window_connects_max`.
    recent: VecDeque<Time>,
    taken_total: u64,
    deferred_total: u64,
}

impl ConnectBudget {
    pub fn new(config: BudgetConfig) -> Self {
        ConnectBudget {
            config,
            recent: VecDeque::with_capacity(config.window_connects_max.min(1024)),
            taken_total: 0,
            deferred_total: 0,
        }
    }

    pub fn taken_total(&self) -> u64 {
        self.taken_total
    }

    pub fn deferred_total(&self) -> u64 {
        self.deferred_total
    }

    /// The earliest time a connect may start.
    pub fn earliest(&self, now: Time) -> Time {
        let mut t = now;
        if let Some(last) = self.recent.back() {
            t = t.max(*last + Duration::from_millis(self.config.connect_interval_ms));
        }
        if self.recent.len() >= self.config.window_connects_max
            && let Some(oldest) = self.recent.front()
        {
            t = t.max(*oldest + Duration::from_millis(self.config.window_ms));
        }
        t
    }

    /// Takes one connect if the budget allows it now.
    pub fn try_take(&mut self, now: Time) -> bool {
        let window = Duration::from_millis(self.config.window_ms);
        while self.recent.front().is_some_and(|t| now.since(*t) >= window) {
            self.recent.pop_front();
        }
        if self.earliest(now) > now {
            self.deferred_total += 1;
            return false;
        }
        self.recent.push_back(now);
        self.taken_total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_are_spaced_by_the_interval() {
        let mut b = ConnectBudget::new(BudgetConfig::default());
        assert!(b.try_take(Time::from_millis(0)));
        assert!(!b.try_take(Time::from_millis(999)));
        assert_eq!(b.earliest(Time::from_millis(999)), Time::from_millis(1000));
        assert!(b.try_take(Time::from_millis(1000)));
    }

    #[test]
    fn shared_budget_caps_connects_per_window() {
        let cfg = BudgetConfig {
            connect_interval_ms: 0,
            window_ms: 300_000,
            window_connects_max: 500,
        };
        let mut b = ConnectBudget::new(cfg);
        let mut taken = 0;
        for ms in 0..300_000u64 {
            if b.try_take(Time::from_millis(ms)) {
                taken += 1;
            }
        }
        assert_eq!(taken, 500);
        assert_eq!(
            b.earliest(Time::from_millis(299_999)),
            Time::from_millis(300_000)
        );
        assert!(b.try_take(Time::from_millis(300_000)));
    }
}
