//! REST scheduling: a bounded queue, a rolling-window rate limit, bounded in-flight requests,
//! per-request timeouts, bounded retries with backoff, and the venue's penalties.
//!
//! HTTP 403 ("access too frequent") pauses ALL requests to the venue for the penalty (Bybit: "wait
//! for at least 10 minutes"); retCode 10006 backs off and retries; 429, 5xx, timeouts and connect
//! errors retry up to `retries_max`. Every request has an id; an answer for an id that is no
//! longer in flight (it timed out, or belongs to an older generation) is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use super::backoff::{Backoff, BackoffConfig};
use super::limiter::WindowLimiter;
use crate::rng::Rng;
use crate::time::Time;

/// Characters of an unexpected answer's body kept in its error.
pub const ERROR_BODY_CHARS_MAX: usize = 200;
use crate::wire::rest::RET_CODE_RATE_LIMIT;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// Bybit allows 600 per 5 s per IP; keep a margin for anything else on the host.
    pub requests_per_window: u32,
    pub window_ms: u64,
    pub timeout_ms: u64,
    pub retries_max: u32,
    pub in_flight_max: usize,
    pub queue_max: usize,
    pub penalty_ms: u64,
    pub backoff: BackoffConfig,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            requests_per_window: 500,
            window_ms: 5_000,
            timeout_ms: 10_000,
            retries_max: 4,
            in_flight_max: 16,
            queue_max: 4_096,
            penalty_ms: 600_000,
            backoff: BackoffConfig {
                delay_ms_base: 500,
                delay_ms_max: 15_000,
                reset_after_ms: 60_000,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What went wrong with a request, as the runtime saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    Timeout,
    Connect(String),
    /// The body passed the runtime's byte limit while it was read; nothing of it was kept.
    TooLarge {
        bytes_max: usize,
    },
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestFailure {
    /// Retries used up; the last error.
    GaveUp {
        attempts: u32,
        last: String,
    },
    /// The venue answered with an error that retrying cannot fix.
    Rejected {
        status: u16,
        ret_code: Option<i64>,
        message: String,
    },
    QueueFull,
}

impl std::fmt::Display for RestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestFailure::GaveUp { attempts, last } => {
                write!(f, "gave up after {attempts} attempts: {last}")
            }
            RestFailure::Rejected {
                status,
                ret_code,
                message,
            } => write!(
                f,
                "rejected (HTTP {status}, retCode {ret_code:?}): {message}"
            ),
            RestFailure::QueueFull => f.write_str("request queue full"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedOutput<P> {
    /// Send `GET path` with this timeout; answer with `handle_response` or `handle_error`.
    Http {
        id: RequestId,
        path: String,
        timeout: Duration,
    },
    Done {
        id: RequestId,
        purpose: P,
        result: Result<String, RestFailure>,
    },
    Paused {
        until: Time,
    },
    Resumed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedCounters {
    pub sent: u64,
    pub retries: u64,
    pub timeouts: u64,
    pub forbidden: u64,
    pub rate_limited: u64,
    pub failed: u64,
    pub late_dropped: u64,
    pub queue_full: u64,
    /// Answers refused for passing the body limit (never retried: the venue would send the
    /// same body again).
    pub too_large: u64,
}

#[derive(Debug, Clone)]
struct Req<P> {
    id: RequestId,
    path: String,
    purpose: P,
    attempts: u32,
    not_before: Time,
    last_error: String,
}

#[derive(Debug, Clone)]
pub struct Scheduler<P> {
    config: RestConfig,
    limiter: WindowLimiter,
    queue: VecDeque<Req<P>>,
    in_flight: Vec<(Req<P>, Time)>,
    next_id: u64,
    paused_until: Option<Time>,
    backoff: Backoff,
    consecutive_failures: u32,
    outputs: VecDeque<SchedOutput<P>>,
    counters: SchedCounters,
}

impl<P: Clone> Scheduler<P> {
    pub fn new(config: RestConfig) -> Self {
        Scheduler {
            limiter: WindowLimiter::new(
                config.requests_per_window,
                Duration::from_millis(config.window_ms),
            ),
            backoff: Backoff::new(config.backoff),
            config,
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            next_id: 0,
            paused_until: None,
            consecutive_failures: 0,
            outputs: VecDeque::new(),
            counters: SchedCounters::default(),
        }
    }

    // ----- getters -----

    pub fn counters(&self) -> &SchedCounters {
        &self.counters
    }

    pub fn paused_until(&self) -> Option<Time> {
        self.paused_until
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    // ----- inputs -----

    /// Queues `GET path`. A full queue refuses at once rather than growing.
    pub fn submit(
        &mut self,
        now: Time,
        path: String,
        purpose: P,
    ) -> Result<RequestId, RestFailure> {
        if self.queue.len() >= self.config.queue_max {
            self.counters.queue_full += 1;
            return Err(RestFailure::QueueFull);
        }
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.queue.push_back(Req {
            id,
            path,
            purpose,
            attempts: 0,
            not_before: now,
            last_error: String::new(),
        });
        self.dispatch(now);
        Ok(id)
    }

    /// Drops every queued and in-flight request whose purpose matches; their answers, if any
    /// come, are dropped as late.
    pub fn cancel(&mut self, mut f: impl FnMut(&P) -> bool) {
        self.queue.retain(|r| !f(&r.purpose));
        self.in_flight.retain(|(r, _)| !f(&r.purpose));
    }

    pub fn handle_response(
        &mut self,
        now: Time,
        id: RequestId,
        status: u16,
        body: String,
        rng: &mut Rng,
    ) {
        let Some(pos) = self.in_flight.iter().position(|(r, _)| r.id == id) else {
            self.counters.late_dropped += 1;
            return;
        };
        let (mut req, _) = self.in_flight.swap_remove(pos);
        match status {
            200 => match ret_code(&body) {
                Some(0) | None => {
                    self.consecutive_failures = 0;
                    self.backoff.reset();
                    self.outputs.push_back(SchedOutput::Done {
                        id,
                        purpose: req.purpose,
                        result: Ok(body),
                    });
                }
                Some(RET_CODE_RATE_LIMIT) => {
                    self.counters.rate_limited += 1;
                    req.last_error = "retCode 10006: too many visits".into();
                    self.retry(now, req, rng);
                }
                Some(code) => self.fail(req, status, Some(code), ret_msg(&body)),
            },
            403 => {
                // "terminate all HTTP sessions and wait for at least 10 minutes"
                self.counters.forbidden += 1;
                let until = now + Duration::from_millis(self.config.penalty_ms);
                if self.paused_until.is_none_or(|t| t < until) {
                    self.paused_until = Some(until);
                    self.outputs.push_back(SchedOutput::Paused { until });
                }
                req.last_error = "HTTP 403: access too frequent".into();
                req.not_before = until;
                // The penalty is not the request's fault: it keeps its place and its retries.
                self.queue.push_front(req);
                for (r, _) in self.in_flight.drain(..) {
                    self.queue.push_front(r);
                }
            }
            429 | 500..=599 => {
                if status == 429 {
                    self.counters.rate_limited += 1;
                }
                req.last_error = format!("HTTP {status}");
                self.retry(now, req, rng);
            }
            _ => self.fail(req, status, ret_code(&body), truncate(&body)),
        }
        self.dispatch(now);
    }

    pub fn handle_error(&mut self, now: Time, id: RequestId, err: HttpError, rng: &mut Rng) {
        let Some(pos) = self.in_flight.iter().position(|(r, _)| r.id == id) else {
            self.counters.late_dropped += 1;
            return;
        };
        let (mut req, _) = self.in_flight.swap_remove(pos);
        if let HttpError::TooLarge { bytes_max } = err {
            self.counters.too_large += 1;
            let message = format!("response body over {bytes_max} bytes");
            self.fail(req, 0, None, message);
            self.dispatch(now);
            return;
        }
        if err == HttpError::Timeout {
            self.counters.timeouts += 1;
        }
        req.last_error = format!("{err:?}");
        self.retry(now, req, rng);
        self.dispatch(now);
    }

    pub fn handle_timeout(&mut self, now: Time, rng: &mut Rng) {
        if self.paused_until.is_some_and(|t| now >= t) {
            self.paused_until = None;
            self.outputs.push_back(SchedOutput::Resumed);
        }
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut expired = Vec::new();
        self.in_flight.retain(|(r, sent)| {
            if now.since(*sent) >= timeout {
                expired.push(r.clone());
                false
            } else {
                true
            }
        });
        for mut r in expired {
            self.counters.timeouts += 1;
            r.last_error = "timed out".into();
            self.retry(now, r, rng);
        }
        self.dispatch(now);
    }

    fn retry(&mut self, now: Time, mut req: Req<P>, rng: &mut Rng) {
        self.consecutive_failures += 1;
        if req.attempts > self.config.retries_max {
            let last = std::mem::take(&mut req.last_error);
            self.counters.failed += 1;
            self.outputs.push_back(SchedOutput::Done {
                id: req.id,
                purpose: req.purpose,
                result: Err(RestFailure::GaveUp {
                    attempts: req.attempts,
                    last,
                }),
            });
            return;
        }
        self.counters.retries += 1;
        req.not_before = now + self.backoff.next_delay(rng);
        self.queue.push_back(req);
    }

    fn fail(&mut self, req: Req<P>, status: u16, ret_code: Option<i64>, message: String) {
        self.counters.failed += 1;
        self.outputs.push_back(SchedOutput::Done {
            id: req.id,
            purpose: req.purpose,
            result: Err(RestFailure::Rejected {
                status,
                ret_code,
                message,
            }),
        });
    }

    fn dispatch(&mut self, now: Time) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        while self.in_flight.len() < self.config.in_flight_max {
            let Some(pos) = self.queue.iter().position(|r| r.not_before <= now) else {
                return;
            };
            if !self.limiter.try_take(now) {
                return;
            }
            let mut req = self.queue.remove(pos).expect("position is in range");
            req.attempts += 1;
            self.counters.sent += 1;
            self.outputs.push_back(SchedOutput::Http {
                id: req.id,
                path: req.path.clone(),
                timeout: Duration::from_millis(self.config.timeout_ms),
            });
            self.in_flight.push((req, now));
        }
    }

    // ----- outputs -----

    #[must_use]
    pub fn poll_output(&mut self) -> Option<SchedOutput<P>> {
        self.outputs.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut t = self.in_flight.iter().map(|(_, sent)| *sent + timeout).min();
        let mut consider = |x: Time| t = Some(t.map_or(x, |t: Time| t.min(x)));
        if let Some(p) = self.paused_until {
            consider(p);
            return t;
        }
        if self.in_flight.len() < self.config.in_flight_max
            && let Some(nb) = self.queue.iter().map(|r| r.not_before).min()
        {
            consider(self.limiter.earliest(nb).max(nb));
        }
        t
    }
}

/// The envelope's retCode, if the body has one (number or string).
fn ret_code(body: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        ret_code: serde_json::Value,
    }
    let h: Head = serde_json::from_str(body).ok()?;
    match h.ret_code {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn ret_msg(body: &str) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        #[serde(default)]
        ret_msg: String,
    }
    serde_json::from_str::<Head>(body)
        .map(|h| h.ret_msg)
        .unwrap_or_else(|_| truncate(body))
}

fn truncate(body: &str) -> String {
    body.chars().take(ERROR_BODY_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<P: Clone>(s: &mut Scheduler<P>) -> Vec<SchedOutput<P>> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn ids(out: &[SchedOutput<u32>]) -> Vec<RequestId> {
        out.iter()
            .filter_map(|o| match o {
                SchedOutput::Http { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    const OK: &str = r#"{"retCode":0,"retMsg":"OK","result":{}}"#;

    #[test]
    fn an_oversize_body_fails_the_request_at_once_and_is_never_retried() {
        let mut s: Scheduler<u32> = Scheduler::new(RestConfig::default());
        let mut rng = Rng::new(1);
        s.submit(Time::ZERO, "/a".into(), 7).unwrap();
        s.handle_timeout(Time::ZERO, &mut rng);
        let id = ids(&drain(&mut s))[0];
        s.handle_error(
            Time::ZERO,
            id,
            HttpError::TooLarge { bytes_max: 16 },
            &mut rng,
        );
        let out = drain(&mut s);
        assert!(
            matches!(
                &out[..],
                [SchedOutput::Done {
                    purpose: 7,
                    result: Err(RestFailure::Rejected { .. }),
                    ..
                }]
            ),
            "{out:?}"
        );
        assert_eq!(s.counters().too_large, 1);
        assert_eq!(s.counters().retries, 0);
        assert_eq!(s.poll_timeout(), None, "nothing left to retry");
    }

    #[test]
    fn in_flight_requests_are_bounded() {
        let mut s = Scheduler::new(RestConfig {
            in_flight_max: 2,
            ..RestConfig::default()
        });
        for i in 0..5 {
            s.submit(Time::ZERO, format!("/x/{i}"), i).unwrap();
        }
        assert_eq!(ids(&drain(&mut s)).len(), 2);
        assert_eq!(s.queued(), 3);
        s.handle_response(Time::ZERO, RequestId(1), 200, OK.into(), &mut Rng::new(1));
        let out = drain(&mut s);
        assert!(matches!(
            out[0],
            SchedOutput::Done {
                result: Ok(_),
                purpose: 0,
                ..
            }
        ));
        assert_eq!(ids(&out), vec![RequestId(3)]);
    }

    #[test]
    fn forbidden_pauses_all_rest_for_the_penalty() {
        let mut s = Scheduler::new(RestConfig::default());
        let mut rng = Rng::new(1);
        s.submit(Time::ZERO, "/a".into(), 1u32).unwrap();
        s.submit(Time::ZERO, "/b".into(), 2u32).unwrap();
        drain(&mut s);
        s.handle_response(Time::from_secs(1), RequestId(1), 403, "".into(), &mut rng);
        let out = drain(&mut s);
        assert_eq!(
            out,
            vec![SchedOutput::Paused {
                until: Time::from_secs(601)
            }]
        );
        assert_eq!(s.in_flight(), 0, "in-flight requests are abandoned");
        // The late answer to the abandoned request is dropped.
        s.handle_response(Time::from_secs(2), RequestId(2), 200, OK.into(), &mut rng);
        assert_eq!(s.counters().late_dropped, 1);
        s.submit(Time::from_secs(3), "/c".into(), 3).unwrap();
        s.handle_timeout(Time::from_secs(300), &mut rng);
        assert!(
            ids(&drain(&mut s)).is_empty(),
            "nothing is sent during the penalty"
        );
        assert_eq!(s.poll_timeout(), Some(Time::from_secs(601)));
        s.handle_timeout(Time::from_secs(601), &mut rng);
        let out = drain(&mut s);
        assert_eq!(out[0], SchedOutput::Resumed);
        assert_eq!(ids(&out).len(), 3);
    }

    #[test]
    fn timeouts_and_server_errors_retry_a_bounded_number_of_times() {
        let cfg = RestConfig {
            retries_max: 2,
            ..RestConfig::default()
        };
        let mut s = Scheduler::new(cfg);
        let mut rng = Rng::new(5);
        s.submit(Time::ZERO, "/k".into(), 7u32).unwrap();
        let mut now = Time::ZERO;
        let mut sends = 0;
        for _ in 0..50 {
            let out = drain(&mut s);
            if let Some(SchedOutput::Done { result, .. }) =
                out.iter().find(|o| matches!(o, SchedOutput::Done { .. }))
            {
                assert!(
                    matches!(result, Err(RestFailure::GaveUp { attempts: 3, .. })),
                    "{result:?}"
                );
                assert_eq!(sends, 3);
                assert_eq!(s.counters().timeouts, 1);
                return;
            }
            for id in ids(&out) {
                sends += 1;
                match sends {
                    1 => {} // left to time out
                    2 => s.handle_response(now, id, 429, String::new(), &mut rng),
                    _ => s.handle_response(now, id, 503, String::new(), &mut rng),
                }
            }
            now = s.poll_timeout().unwrap_or(now).max(now);
            s.handle_timeout(now, &mut rng);
        }
        panic!("never gave up");
    }

    #[test]
    fn rate_limit_retcode_backs_off_and_retries() {
        let mut s = Scheduler::new(RestConfig::default());
        let mut rng = Rng::new(2);
        s.submit(Time::ZERO, "/k".into(), 1u32).unwrap();
        drain(&mut s);
        let body = r#"{"retCode":10006,"retMsg":"Too many visits!","result":{}}"#;
        s.handle_response(Time::ZERO, RequestId(1), 200, body.into(), &mut rng);
        assert!(drain(&mut s).is_empty());
        let t = s.poll_timeout().unwrap();
        s.handle_timeout(t, &mut rng);
        assert_eq!(ids(&drain(&mut s)), vec![RequestId(1)]);
        assert_eq!(s.counters().rate_limited, 1);
    }

    #[test]
    fn other_venue_errors_fail_without_retry() {
        let mut s = Scheduler::new(RestConfig::default());
        s.submit(Time::ZERO, "/k".into(), 1u32).unwrap();
        drain(&mut s);
        let body = r#"{"retCode":10001,"retMsg":"params error","result":{}}"#;
        s.handle_response(Time::ZERO, RequestId(1), 200, body.into(), &mut Rng::new(1));
        let out = drain(&mut s);
        assert!(matches!(
            &out[0],
            SchedOutput::Done {
                result: Err(RestFailure::Rejected {
                    ret_code: Some(10001),
                    ..
                }),
                ..
            }
        ));
    }

    #[test]
    fn requests_never_exceed_the_window_limit() {
        let mut s = Scheduler::new(RestConfig {
            requests_per_window: 10,
            window_ms: 1000,
            in_flight_max: 100,
            ..RestConfig::default()
        });
        let mut rng = Rng::new(1);
        for i in 0..35 {
            s.submit(Time::ZERO, format!("/p/{i}"), i).unwrap();
        }
        let mut sent_at = Vec::new();
        let mut now = Time::ZERO;
        for _ in 0..100 {
            for id in ids(&drain(&mut s)) {
                sent_at.push(now.as_millis());
                s.handle_response(now, id, 200, OK.into(), &mut rng);
            }
            match s.poll_timeout() {
                Some(t) => now = t.max(now),
                None => break,
            }
            s.handle_timeout(now, &mut rng);
        }
        assert_eq!(sent_at.len(), 35);
        for (i, t) in sent_at.iter().enumerate() {
            assert!(sent_at[i..].iter().take_while(|s| **s < t + 1000).count() <= 10);
        }
        assert_eq!(*sent_at.last().unwrap(), 3000);
    }
}
