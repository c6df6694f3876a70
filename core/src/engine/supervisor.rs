//! The supervisor of periodic jobs. A run is a compute job with a deadline; a failed or
//! overdue run never stops the schedule: the job is restarted with backoff, its consecutive
//! failures are counted (a warning at `failures_warn`), and after `failures_crash` in a row it
//! is reported crashed while the supervisor keeps trying at the capped backoff. Each run has a
//! generation; the result of an older one is dropped.

use std::time::Duration;

use super::backoff::{Backoff, BackoffConfig};
use crate::rng::Rng;
use crate::time::Time;

/// Never restart a failed run sooner than this, whatever the backoff draws.
pub const RETRY_DELAY_MS_MIN: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    pub name: String,
    pub every_ms: u64,
    pub deadline_ms: u64,
    pub failures_warn: u32,
    pub failures_crash: u32,
    pub backoff: BackoffConfig,
}

impl JobConfig {
    pub fn new(name: &str, every_ms: u64, deadline_ms: u64) -> Self {
        JobConfig {
            name: name.to_string(),
            every_ms,
            deadline_ms,
            failures_warn: 10,
            failures_crash: 10,
            backoff: BackoffConfig {
                delay_ms_base: 1_000,
                delay_ms_max: 60_000,
                reset_after_ms: 0,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Idle { next_at: Time },
    Running { run: u64, started: Time },
    Backoff { until: Time },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// Start run `run` now.
    Run {
        run: u64,
    },
    Succeeded {
        run: u64,
        took: Duration,
    },
    Failed {
        run: u64,
        error: String,
        consecutive: u32,
        retry_in: Duration,
    },
    /// `consecutive` failures in a row reached the warning threshold.
    Warn {
        consecutive: u32,
    },
    Crashed {
        consecutive: u32,
    },
    Recovered,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounters {
    pub runs: u64,
    pub successes: u64,
    pub failures: u64,
    pub overdue: u64,
    pub restarts: u64,
    pub stale_results: u64,
}

#[derive(Debug, Clone)]
pub struct Job {
    config: JobConfig,
    state: JobState,
    run: u64,
    consecutive: u32,
    crashed: bool,
    backoff: Backoff,
    outputs: std::collections::VecDeque<JobOutput>,
    counters: JobCounters,
    last_error: Option<(String, Time)>,
}

impl Job {
    pub fn new(config: JobConfig, now: Time) -> Self {
        Job {
            backoff: Backoff::new(config.backoff),
            state: JobState::Idle {
                next_at: now + Duration::from_millis(config.every_ms),
            },
            config,
            run: 0,
            consecutive: 0,
            crashed: false,
            outputs: Default::default(),
            counters: JobCounters::default(),
            last_error: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn state(&self) -> JobState {
        self.state
    }

    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    pub fn counters(&self) -> &JobCounters {
        &self.counters
    }

    pub fn last_error(&self) -> Option<&(String, Time)> {
        self.last_error.as_ref()
    }

    /// Brings an idle job's next run forward to `at` (a run waiting out a backoff keeps
    /// waiting); returns whether it will run by then.
    pub fn run_by(&mut self, at: Time) -> bool {
        match &mut self.state {
            JobState::Idle { next_at } => {
                *next_at = (*next_at).min(at);
                true
            }
            JobState::Running { .. } | JobState::Backoff { .. } => false,
        }
    }

    pub fn handle_timeout(&mut self, now: Time, rng: &mut Rng) {
        match self.state {
            JobState::Idle { next_at } | JobState::Backoff { until: next_at } if now >= next_at => {
                self.run += 1;
                self.counters.runs += 1;
                self.state = JobState::Running {
                    run: self.run,
                    started: now,
                };
                self.outputs.push_back(JobOutput::Run { run: self.run });
            }
            JobState::Running { run, started }
                if now.since(started) >= Duration::from_millis(self.config.deadline_ms) =>
            {
                self.counters.overdue += 1;
                self.fail(
                    now,
                    run,
                    format!("overdue: no result within {} ms", self.config.deadline_ms),
                    rng,
                );
            }
            _ => {}
        }
    }

    /// The result of run `run`.
    pub fn handle_result(
        &mut self,
        now: Time,
        run: u64,
        result: Result<(), String>,
        rng: &mut Rng,
    ) {
        let JobState::Running {
            run: current,
            started,
        } = self.state
        else {
            self.counters.stale_results += 1;
            return;
        };
        if run != current {
            self.counters.stale_results += 1;
            return;
        }
        match result {
            Ok(()) => {
                self.counters.successes += 1;
                self.consecutive = 0;
                self.backoff.reset();
                if std::mem::take(&mut self.crashed) {
                    self.outputs.push_back(JobOutput::Recovered);
                }
                // The schedule keeps its cadence from the start of the run.
                let mut next_at = started + Duration::from_millis(self.config.every_ms);
                if next_at <= now {
                    next_at = now;
                }
                self.state = JobState::Idle { next_at };
                self.outputs.push_back(JobOutput::Succeeded {
                    run,
                    took: now.since(started),
                });
            }
            Err(e) => self.fail(now, run, e, rng),
        }
    }

    fn fail(&mut self, now: Time, run: u64, error: String, rng: &mut Rng) {
        self.counters.failures += 1;
        self.counters.restarts += 1;
        self.consecutive += 1;
        self.last_error = Some((error.clone(), now));
        let retry_in = self
            .backoff
            .next_delay(rng)
            .max(Duration::from_millis(RETRY_DELAY_MS_MIN));
        self.state = JobState::Backoff {
            until: now + retry_in,
        };
        self.outputs.push_back(JobOutput::Failed {
            run,
            error,
            consecutive: self.consecutive,
            retry_in,
        });
        if self.consecutive == self.config.failures_warn {
            self.outputs.push_back(JobOutput::Warn {
                consecutive: self.consecutive,
            });
        }
        if self.consecutive >= self.config.failures_crash && !self.crashed {
            self.crashed = true;
            self.outputs.push_back(JobOutput::Crashed {
                consecutive: self.consecutive,
            });
        }
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<JobOutput> {
        self.outputs.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        Some(match self.state {
            JobState::Idle { next_at } => next_at,
            JobState::Backoff { until } => until,
            JobState::Running { started, .. } => {
                started + Duration::from_millis(self.config.deadline_ms)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(j: &mut Job) -> Vec<JobOutput> {
        std::iter::from_fn(|| j.poll_output()).collect()
    }

    #[test]
    fn job_runs_on_its_schedule() {
        let mut j = Job::new(JobConfig::new("signals", 5_000, 10_000), Time::ZERO);
        let mut rng = Rng::new(1);
        assert_eq!(j.poll_timeout(), Some(Time::from_secs(5)));
        j.handle_timeout(Time::from_secs(5), &mut rng);
        assert_eq!(drain(&mut j), vec![JobOutput::Run { run: 1 }]);
        j.handle_result(Time::from_millis(5_200), 1, Ok(()), &mut rng);
        assert_eq!(j.poll_timeout(), Some(Time::from_secs(10)));
    }

    #[test]
    fn overdue_run_is_timed_out_and_restarted_with_backoff() {
        let mut j = Job::new(JobConfig::new("signals", 5_000, 10_000), Time::ZERO);
        let mut rng = Rng::new(1);
        j.handle_timeout(Time::from_secs(5), &mut rng);
        drain(&mut j);
        j.handle_timeout(Time::from_secs(15), &mut rng);
        let out = drain(&mut j);
        assert!(
            matches!(
                out[0],
                JobOutput::Failed {
                    run: 1,
                    consecutive: 1,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(j.counters().overdue, 1);
        // The late result of run 1 is dropped.
        j.handle_result(Time::from_secs(16), 1, Ok(()), &mut rng);
        assert_eq!(j.counters().stale_results, 1);
        let t = j.poll_timeout().unwrap();
        assert!(t <= Time::from_secs(16));
        j.handle_timeout(t, &mut rng);
        assert_eq!(drain(&mut j), vec![JobOutput::Run { run: 2 }]);
    }

    #[test]
    fn ten_consecutive_failures_crash_the_job_but_never_stop_the_schedule() {
        let mut j = Job::new(JobConfig::new("signals", 5_000, 10_000), Time::ZERO);
        let mut rng = Rng::new(1);
        let mut outs = Vec::new();
        for _ in 0..12 {
            let now = j.poll_timeout().unwrap();
            j.handle_timeout(now, &mut rng);
            let run = match drain(&mut j)[..] {
                [JobOutput::Run { run }] => run,
                ref o => panic!("{o:?}"),
            };
            j.handle_result(now, run, Err("boom".into()), &mut rng);
            outs.extend(drain(&mut j));
        }
        assert!(outs.contains(&JobOutput::Warn { consecutive: 10 }));
        assert!(outs.contains(&JobOutput::Crashed { consecutive: 10 }));
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(o, JobOutput::Crashed { .. }))
                .count(),
            1
        );
        assert!(j.is_crashed());
        let backoffs: Vec<u64> = outs
            .iter()
            .filter_map(|o| match o {
                JobOutput::Failed { retry_in, .. } => Some(retry_in.as_millis() as u64),
                _ => None,
            })
            .collect();
        assert!(backoffs.iter().all(|b| *b <= 60_000));
        // Still scheduled, and a success recovers it.
        let now = j.poll_timeout().unwrap();
        j.handle_timeout(now, &mut rng);
        let [JobOutput::Run { run }] = drain(&mut j)[..] else {
            panic!()
        };
        j.handle_result(now, run, Ok(()), &mut rng);
        assert!(drain(&mut j).contains(&JobOutput::Recovered));
        assert!(!j.is_crashed());
    }
}
