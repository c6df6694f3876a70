//! One slot per strategy: its own supervised job, so a strategy that panics, overruns or hangs
//! costs only itself. A panic is a failed run (restarted with backoff); a call past its
//! deadline is discarded and counted; while a call is still out no second one starts (a hung
//! strategy holds one pool thread, never all of them); and after `failures_max` failures in a
//! row the strategy is disabled, with the reason in /health, while the others trade on.

use crate::engine::backoff::BackoffConfig;
use crate::engine::health::Status;
use crate::engine::supervisor::{Job, JobConfig, JobOutput, JobState};
use crate::rng::Rng;
use crate::time::Time;
use crate::trading::strategy::SharedStrategy;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotCounters {
    pub runs: u64,
    pub succeeded: u64,
    pub panics: u64,
    /// Calls past their deadline: their results were discarded.
    pub overruns: u64,
    /// Runs not started because the previous call was still out.
    pub busy: u64,
    /// Intents dropped as malformed (a confidence out of [0, 1], an order of no size).
    pub dropped: u64,
    pub intents: u64,
}

/// What the trading machine must do after a slot changed.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotEvent {
    /// Call the strategy now as run `run`.
    Run {
        run: u64,
    },
    Health {
        status: Status,
        error: Option<String>,
        detail: String,
    },
    Notice {
        error: bool,
        text: String,
    },
}

pub struct Slot {
    pub strategy: SharedStrategy,
    job: Job,
    in_flight: Option<u64>,
    /// A call was asked for while one ran: the next starts as soon as this one answers.
    again: bool,
    disabled: Option<String>,
    counters: SlotCounters,
}

impl Slot {
    pub fn new(
        strategy: SharedStrategy,
        every_ms: u64,
        deadline_ms: u64,
        failures_max: u32,
        now: Time,
    ) -> Slot {
        let mut cfg = JobConfig::new(
            &format!("strategy.{}", strategy.0.name()),
            every_ms,
            deadline_ms,
        );
        cfg.failures_warn = failures_max.max(1);
        cfg.failures_crash = failures_max.max(1);
        cfg.backoff = BackoffConfig {
            delay_ms_base: every_ms.clamp(100, 5_000),
            delay_ms_max: 60_000,
            reset_after_ms: 0,
        };
        Slot {
            strategy,
            job: Job::new(cfg, now),
            in_flight: None,
            again: false,
            disabled: None,
            counters: SlotCounters::default(),
        }
    }

    pub fn name(&self) -> &str {
        self.strategy.0.name()
    }

    pub fn counters(&self) -> &SlotCounters {
        &self.counters
    }

    /// Why the strategy was disabled, if it was.
    pub fn disabled(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        if self.disabled.is_some() {
            return None;
        }
        self.job.poll_timeout()
    }

    /// Calls the strategy at `now` (a candle closed), or right after the call running now.
    pub fn call_now(&mut self, now: Time) {
        if self.disabled.is_none() && !self.job.run_by(now) {
            self.again = matches!(self.job.state(), JobState::Running { .. });
        }
    }

    pub fn handle_timeout(&mut self, now: Time, rng: &mut Rng, out: &mut Vec<SlotEvent>) {
        if self.disabled.is_some() {
            return;
        }
        let overdue = self.job.counters().overdue;
        self.job.handle_timeout(now, rng);
        self.counters.overruns += self.job.counters().overdue - overdue;
        self.drain(now, rng, out);
    }

    /// The result of run `run`: `Ok` with the intents it produced, or the fault. Returns
    /// whether the run is the one the slot waits for (only its intents are acted on).
    pub fn handle_result(
        &mut self,
        now: Time,
        run: u64,
        result: Result<(u64, u64), String>,
        panicked: bool,
        rng: &mut Rng,
        out: &mut Vec<SlotEvent>,
    ) -> bool {
        if self.in_flight == Some(run) {
            self.in_flight = None;
        }
        let current = matches!(self.job.state(), JobState::Running { run: r, .. } if r == run);
        if current && self.disabled.is_none() {
            match &result {
                Ok((intents, dropped)) => {
                    self.counters.succeeded += 1;
                    self.counters.intents += intents;
                    self.counters.dropped += dropped;
                }
                Err(_) if panicked => self.counters.panics += 1,
                Err(_) => {}
            }
            self.job.handle_result(now, run, result.map(|_| ()), rng);
        } else if panicked {
            // A late call that panicked is still a panic.
            self.counters.panics += 1;
        }
        if std::mem::take(&mut self.again) {
            self.job.run_by(now);
        }
        self.drain(now, rng, out);
        current
    }

    fn drain(&mut self, now: Time, rng: &mut Rng, out: &mut Vec<SlotEvent>) {
        while let Some(o) = self.job.poll_output() {
            match o {
                JobOutput::Run { run } => {
                    self.counters.runs += 1;
                    if self.in_flight.is_some() {
                        self.counters.busy += 1;
                        self.job.handle_result(
                            now,
                            run,
                            Err("its previous call is still running".into()),
                            rng,
                        );
                    } else {
                        self.in_flight = Some(run);
                        out.push(SlotEvent::Run { run });
                    }
                }
                JobOutput::Succeeded { .. } | JobOutput::Recovered => {
                    out.push(self.health(Status::Running, None))
                }
                JobOutput::Failed {
                    error,
                    consecutive,
                    retry_in,
                    ..
                } => {
                    out.push(self.health(Status::Degraded, Some(error.clone())));
                    out.push(SlotEvent::Notice {
                        error: false,
                        text: format!(
                            "strategy {} failed ({consecutive} in a row): {error}; next call in {} ms",
                            self.name(),
                            retry_in.as_millis()
                        ),
                    });
                }
                JobOutput::Warn { .. } => {}
                JobOutput::Crashed { consecutive } => {
                    let last = self
                        .job
                        .last_error()
                        .map_or_else(String::new, |(e, _)| e.clone());
                    let why =
                        format!("disabled after {consecutive} failures in a row (last: {last})");
                    self.disabled = Some(why.clone());
                    out.push(self.health(Status::Stopped, Some(why.clone())));
                    out.push(SlotEvent::Notice {
                        error: true,
                        text: format!("strategy {} {why}; the others trade on", self.name()),
                    });
                }
            }
        }
    }

    fn health(&self, status: Status, error: Option<String>) -> SlotEvent {
        let c = &self.counters;
        let mut detail = format!(
            "{}: runs {}, ok {}, panics {}, overruns {}, still running {}, intents {}, dropped {}",
            self.name(),
            c.runs,
            c.succeeded,
            c.panics,
            c.overruns,
            c.busy,
            c.intents,
            c.dropped
        );
        if let Some(d) = &self.disabled {
            detail = format!("{detail}; {d}");
        }
        SlotEvent::Health {
            status,
            error,
            detail,
        }
    }
}
