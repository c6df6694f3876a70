//! Faults to inject (`POST /admin/fault`, `--fault`), and how the venue applies them.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::state::Venue;

/// Longest REST delay a `delay_rest` fault may ask for.
pub const DELAY_REST_MS_MAX: u64 = 600_000;

/// A fault to inject, as `POST /admin/fault` takes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Hold all WebSocket writes (no data, no pongs) while sockets stay open.
    Stall { secs: f64 },
    /// Close every WebSocket connection now.
    Drop,
    /// Refuse new connections for a while.
    Refuse { secs: f64 },
    /// The next delta of every book (or of one symbol's books) skips an update id.
    Skip { symbol: Option<String> },
    /// A service restart: every book starts again from a snapshot with `u` = 1.
    Restart,
    /// Answer REST after this delay, for a while.
    DelayRest { ms: u64, secs: f64 },
    /// Answer every REST request with HTTP 403, for a while.
    Forbid { secs: f64 },
    /// Answer REST with this status (429, 500, 503...) for a while.
    RestStatus { status: u16, secs: f64 },
    /// The next `count` order requests are applied but their answers are lost.
    DropOrderAck { count: Option<u32> },
    /// Private requests answer with this retCode (10006, 10016...) for a while.
    PrivateRetCode { code: i64, secs: f64 },
    /// The private stream sends nothing (pushes wait) while its sockets stay open.
    StallPrivate { secs: f64 },
    /// Close every private WebSocket connection now.
    DropPrivate,
    /// Every `Filled` order push is sent twice for a while (Bybit's documented quirk).
    DuplicateFilled { secs: f64 },
    /// A venue release: the recently closed orders `GET /v5/order/realtime` lists are gone.
    ClearRecentOrders,
    /// Lift every fault.
    Clear,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) stall_until: Option<Instant>,
    pub(crate) refuse_until: Option<Instant>,
    pub(crate) forbid_until: Option<Instant>,
    pub(crate) delay_rest: Option<(Duration, Instant)>,
    pub(crate) rest_status: Option<(u16, Instant)>,
    pub(crate) drop_order_ack: u32,
    pub(crate) private_ret_code: Option<(i64, Instant)>,
    pub(crate) stall_private_until: Option<Instant>,
    pub(crate) duplicate_filled_until: Option<Instant>,
}

impl Venue {
    /// Queues a fault to apply on the venue's next step, on the venue's own clock: how code
    /// outside the venue's runtime (a simulation's driver) injects faults.
    pub fn queue_fault(&self, fault: Fault) {
        self.inner
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    pub fn apply_fault(&self, fault: Fault) {
        let now = Instant::now();
        let until = |secs: f64| now + Duration::from_secs_f64(secs.clamp(0.0, 86_400.0));
        match fault {
            Fault::Drop => {
                self.inner.drop_tx.send_modify(|g| *g += 1);
            }
            Fault::Restart => self.restart_books(),
            Fault::DropPrivate => {
                self.inner.drop_private_tx.send_modify(|g| *g += 1);
            }
            other => {
                let mut st = self.state();
                match other {
                    Fault::Stall { secs } => st.faults.stall_until = Some(until(secs)),
                    Fault::Refuse { secs } => st.faults.refuse_until = Some(until(secs)),
                    Fault::Forbid { secs } => st.faults.forbid_until = Some(until(secs)),
                    Fault::DelayRest { ms, secs } => {
                        st.faults.delay_rest = Some((
                            Duration::from_millis(ms.min(DELAY_REST_MS_MAX)),
                            until(secs),
                        ))
                    }
                    Fault::RestStatus { status, secs } => {
                        st.faults.rest_status = Some((status, until(secs)))
                    }
                    Fault::Skip { symbol } => {
                        let topics = st.cats.iter_mut().flat_map(|c| c.topics.iter_mut());
                        for (topic, t) in topics {
                            if topic.starts_with("orderbook.")
                                && symbol
                                    .as_ref()
                                    .is_none_or(|s| topic.ends_with(&format!(".{s}")))
                            {
                                t.skip_next = true;
                            }
                        }
                    }
                    Fault::DropOrderAck { count } => st.faults.drop_order_ack = count.unwrap_or(1),
                    Fault::PrivateRetCode { code, secs } => {
                        st.faults.private_ret_code = Some((code, until(secs)))
                    }
                    Fault::StallPrivate { secs } => {
                        st.faults.stall_private_until = Some(until(secs))
                    }
                    Fault::DuplicateFilled { secs } => {
                        st.faults.duplicate_filled_until = Some(until(secs))
                    }
                    Fault::ClearRecentOrders => {
                        for a in &mut st.accounts {
                            a.recent_closed.clear();
                        }
                    }
                    Fault::Clear => st.faults = Faults::default(),
                    Fault::Drop | Fault::Restart | Fault::DropPrivate => {}
                }
            }
        }
    }

    pub(crate) fn stalled(&self) -> bool {
        self.state()
            .faults
            .stall_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// Whether new connections are refused right now.
    pub fn refusing(&self) -> bool {
        self.state()
            .faults
            .refuse_until
            .is_some_and(|t| Instant::now() < t)
    }
}
