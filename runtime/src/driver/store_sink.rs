//! The store as the driver sees it: commands go to the store thread through a bounded queue;
//! order writes that find it full are held here, retried every turn, and reported to the engine
//! as a backlog (while any wait, no new order is placed). Nothing is dropped and nothing blocks.

use keel_core::engine::Input;

use super::Driver;

/// The store as the driver sees it: a bounded queue to its thread, and order writes held back
/// here when that queue is full (never dropped: the order machine is waiting on them).
pub(super) struct DriverStore {
    pub(super) tx: std::sync::mpsc::SyncSender<crate::store::StoreCmd>,
    pub(super) held: std::collections::VecDeque<crate::store::StoreCmd>,
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
        // Report only changes: writes held here are writes the store thread cannot take yet.
        let backlog = st.held.len();
        if backlog != st.reported_backlog {
            st.reported_backlog = backlog;
            self.local.push(Input::StoreBacklog { pending: backlog });
        }
    }
}
