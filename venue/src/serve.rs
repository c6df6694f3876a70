//! Serving the venue on any listener (loopback TCP or a simulated network), refusing new
//! connections while a `refuse` fault is active.

use std::sync::atomic::Ordering;

use crate::state::Venue;

/// Serves the venue on `listener` until `shutdown` resolves; new connections are refused
/// (accepted and closed at once) while a `refuse` fault is active.
pub async fn serve<L>(
    listener: L,
    venue: Venue,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let listener = Refusing {
        inner: listener,
        venue: venue.clone(),
    };
    axum::serve(listener, venue.router())
        .with_graceful_shutdown(shutdown)
        .await
}

struct Refusing<L> {
    inner: L,
    venue: Venue,
}

impl<L: axum::serve::Listener> axum::serve::Listener for Refusing<L> {
    type Io = L::Io;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            if self.venue.refusing() {
                self.venue.stats().refused.fetch_add(1, Ordering::Relaxed);
                drop(io);
                continue;
            }
            return (io, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
