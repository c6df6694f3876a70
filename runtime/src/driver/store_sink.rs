//! The store as the driver sees it: commands go to the store thread through a bounded queue;
//! orders that find it full are held here, retried every turn, and reported to the engine as a
//! backlog (while any wait, no new order is placed). Nothing is dropped and nothing blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keel_core::engine::Input;

use super::Driver;

/// Orders in flight to the store below which no backlog is reported: a few are always on their
/// way, and reporting them would stop trading for nothing.
pub const STORE_BACKLOG_REPORT_ORDERS_MIN: usize = 64;

/// The store as the driver sees it: a bounded queue to its thread, and orders held back here
/// when that queue is full (never dropped: they are already on the broker's books).
pub(super) struct DriverStore {
    pub(super) tx: std::sync::mpsc::SyncSender<crate::store::StoreCmd>,
    pub(super) held: std::collections::VecDeque<crate::store::StoreCmd>,
    pub(super) orders_sent: u64,
    pub(super) written: Arc<AtomicU64>,
    pub(super) reported_backlog: usize,
    pub(super) dropped: u64,
}

impl Driver {
    /// Makes orders durable before they are served: they go to the store thread, which feeds
    /// the API once they are committed.
    pub fn with_store(mut self, h: &crate::store::StoreHandle) -> Driver {
        self.store = Some(DriverStore {
            tx: h.tx.clone(),
            held: Default::default(),
            orders_sent: 0,
            written: h.written.clone(),
            reported_backlog: 0,
            dropped: 0,
        });
        self
    }

    /// Retries held store commands and tells the engine how many orders are not yet durable.
    pub(super) fn pump_store(&mut self) {
        let Some(st) = self.store.as_mut() else {
            return;
        };
        while let Some(cmd) = st.held.pop_front() {
            match st.tx.try_send(cmd) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(cmd)) => {
                    st.held.push_front(cmd);
                    break;
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => break,
            }
        }
        let written = st.written.load(Ordering::Acquire);
        let pending = st.orders_sent.saturating_sub(written) as usize + st.held.len();
        // Report only changes, and only when orders are actually queueing up.
        let backlog = if pending > STORE_BACKLOG_REPORT_ORDERS_MIN || !st.held.is_empty() {
            pending
        } else {
            0
        };
        if backlog != st.reported_backlog {
            st.reported_backlog = backlog;
            self.local.push(Input::StoreBacklog { pending: backlog });
        }
    }
}
