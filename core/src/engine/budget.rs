//! One connection budget per venue, shared by all its links: at most one connect per
//! `connect_interval_ms` and `window_connects_max` per `window_ms` (Bybit: "Do not build over
//! 500 connections in 5 minutes").

use std::time::Duration;

use super::limiter::WindowLimiter;
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

/// The venue's connection budget: a [`WindowLimiter`] with its limit, window and spacing.
#[derive(Debug, Clone)]
pub struct ConnectBudget(WindowLimiter);

impl ConnectBudget {
    pub fn new(config: BudgetConfig) -> Self {
        ConnectBudget(WindowLimiter::spaced(
            config.window_connects_max,
            Duration::from_millis(config.window_ms),
            Duration::from_millis(config.connect_interval_ms),
        ))
    }

    pub fn taken_total(&self) -> u64 {
        self.0.taken_total()
    }

    pub fn deferred_total(&self) -> u64 {
        self.0.deferred_total()
    }

    /// The earliest time a connect may start.
    pub fn earliest(&self, now: Time) -> Time {
        self.0.earliest(now)
    }

    /// Takes one connect if the budget allows it now.
    pub fn try_take(&mut self, now: Time) -> bool {
        self.0.try_take(now)
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
