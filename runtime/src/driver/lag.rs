//! The real-time loop-lag probe: a thread that sends the time every `LAG_PROBE_MS`, so a loop
//! that stalls shows up as late probes even when no timer of its own can fire.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::LAG_PROBE_MS;

/// The thread behind [`LagProbe::Thread`]; it ends when the loop drops the receiver. False when
/// it could not start.
pub(super) fn spawn_lag_probe(tx: mpsc::Sender<std::time::Instant>) -> bool {
    let spawned = std::thread::Builder::new()
        .name("keel-lag-probe".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(LAG_PROBE_MS));
                match tx.try_send(Instant::now().into_std()) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
    match spawned {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the loop-lag probe thread; using the timer");
            false
        }
    }
}
