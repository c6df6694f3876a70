//! Exponential backoff with full jitter: the delay before attempt n is uniform in
//! [0, min(cap, base * 2^n)], drawn from the engine's seeded RNG. Full jitter spreads a fleet of
//! reconnecting links apart instead of having them retry in lockstep.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub delay_ms_base: u64,
    pub delay_ms_max: u64,
    /// After this long without a failure the attempt counter starts again from zero.
    pub reset_after_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            delay_ms_base: 500,
            delay_ms_max: 30_000,
            reset_after_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, attempt: 0 }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling_ms(&self) -> u64 {
        let exp = self
            .config
            .delay_ms_base
            .saturating_mul(1u64 << self.attempt.min(40));
        exp.min(self.config.delay_ms_max)
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self, rng: &mut Rng) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(rng.up_to(ceiling))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_until_cap_with_jitter() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut rng = Rng::new(42);
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling_ms());
            let d = b.next_delay(&mut rng);
            assert!(d.as_millis() as u64 <= *ceilings.last().unwrap());
        }
        assert_eq!(&ceilings[..7], &[500, 1000, 2000, 4000, 8000, 16000, 30000]);
        assert!(ceilings[7..].iter().all(|c| *c == 30_000));
    }

    #[test]
    fn jitter_spreads_delays_across_the_whole_range() {
        let mut rng = Rng::new(3);
        let delays: Vec<u64> = (0..200)
            .map(|_| {
                let mut b = Backoff::new(BackoffConfig::default());
                for _ in 0..6 {
                    b.next_delay(&mut rng);
                }
                b.next_delay(&mut rng).as_millis() as u64
            })
            .collect();
        let (lo, hi) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(
            *lo < 5_000 && *hi > 25_000,
            "jitter covers [0, cap]: {lo}..{hi}"
        );
    }

    #[test]
    fn reset_starts_from_the_base_again() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut rng = Rng::new(1);
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        b.reset();
        assert_eq!(b.ceiling_ms(), 500);
    }
}
