//! One connection budget per venue, shared by all its links: at most one connect per
//! `connect_interval_ms` and `window_connects_max` per `window_ms` (Bybit: "Do not build over
//! 500 connections in 5 minutes").
//!
//! The spacing is there so that an outage does not turn into a storm of reconnects; a link's
//! first connect is not a reconnect, so it is held to the window alone. Spacing those too kept a
//! bot with a private stream blind to its fills, and refusing every order, for a second after
//! each start (a second more for each further link).

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

    /// The earliest time a link's first connect may start.
    pub fn earliest_first(&self, now: Time) -> Time {
        self.0.earliest_unspaced(now)
    }

    /// Takes one connect if the budget allows it now.
    pub fn try_take(&mut self, now: Time) -> bool {
        self.0.try_take(now)
    }

    /// Takes a link's first connect if the window allows it now: not spaced from the others,
    /// though the next reconnect is spaced from it.
    pub fn try_take_first(&mut self, now: Time) -> bool {
        self.0.try_take_unspaced(now)
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
    fn first_connects_go_at_once_and_the_next_reconnect_is_spaced_from_the_last() {
        let mut b = ConnectBudget::new(BudgetConfig::default());
        let t0 = Time::from_millis(5);
        assert!((0..4).all(|_| b.try_take_first(t0)));
        assert!(!b.try_take(Time::from_millis(1004)));
        assert_eq!(b.earliest(t0), Time::from_millis(1005));
        assert!(b.try_take(Time::from_millis(1005)));
        assert_eq!((b.taken_total(), b.deferred_total()), (5, 1));
    }

    #[test]
    fn first_connects_are_held_to_the_window() {
        let cfg = BudgetConfig {
            window_connects_max: 3,
            ..BudgetConfig::default()
        };
        let mut b = ConnectBudget::new(cfg);
        let took = (0..5).filter(|_| b.try_take_first(Time::ZERO)).count();
        assert_eq!(took, 3);
        assert!(!b.try_take_first(Time::from_millis(299_999)));
        assert!(b.try_take_first(Time::from_millis(300_000)));
        assert!(b.try_take_first(Time::from_millis(300_000)));
        // Two places free again at 600 s, the third at 600.5 s; a reconnect would also wait a
        // second from the last take.
        assert!(b.try_take_first(Time::from_millis(300_500)));
        let at = Time::from_millis(600_000);
        assert!(b.try_take_first(at) && b.try_take_first(at));
        assert_eq!(b.earliest_first(at), Time::from_millis(600_500));
        assert_eq!(b.earliest(at), Time::from_millis(601_000));
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
