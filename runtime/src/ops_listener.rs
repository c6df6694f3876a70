//! The ops server's listener: a bound on the connections it holds, the oldest closed to make
//! room for a new one, and an idle timeout on each. Thousands of idle or slow connections then
//! cost at most [`OPS_CONNECTIONS_MAX`] file handles, and a new request (a health probe) always
//! gets a connection: it is never the oldest.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Connections the ops server holds at once.
pub const OPS_CONNECTIONS_MAX: usize = 256;
/// A connection that sends nothing for this long is closed (a client between requests, or one
/// that opened a socket and went quiet).
pub const OPS_IDLE_MS: u64 = 5_000;
/// After an accept error (the process out of file handles, say), the listener waits this long.
const ACCEPT_RETRY_MS: u64 = 10;

/// What the listener did, for metrics and tests.
#[derive(Debug, Default)]
pub struct OpsCounters {
    pub accepted: AtomicU64,
    /// Closed to make room for a newer connection.
    pub evicted: AtomicU64,
    pub idle_closed: AtomicU64,
    pub accept_errors: AtomicU64,
}

type Slots = Arc<Mutex<VecDeque<(u64, oneshot::Sender<()>)>>>;

pub struct CappedListener {
    inner: TcpListener,
    slots: Slots,
    next_id: u64,
    pub counters: Arc<OpsCounters>,
}

impl CappedListener {
    pub fn new(inner: TcpListener) -> CappedListener {
        CappedListener {
            inner,
            slots: Default::default(),
            next_id: 0,
            counters: Default::default(),
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = oneshot::channel();
                    let id = self.next_id;
                    self.next_id += 1;
                    {
                        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                        while slots.len() >= OPS_CONNECTIONS_MAX {
                            // Dropping the sender closes that connection at its next poll.
                            slots.pop_front();
                            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                        }
                        slots.push_back((id, tx));
                    }
                    let io = CappedStream {
                        stream,
                        evicted: rx,
                        idle: Box::pin(tokio::time::sleep(Duration::from_millis(OPS_IDLE_MS))),
                        slots: self.slots.clone(),
                        counters: self.counters.clone(),
                        id,
                    };
                    return (io, addr);
                }
                Err(_) => {
                    self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One held connection: closed when evicted or idle.
pub struct CappedStream {
    stream: TcpStream,
    evicted: oneshot::Receiver<()>,
    idle: Pin<Box<tokio::time::Sleep>>,
    slots: Slots,
    counters: Arc<OpsCounters>,
    id: u64,
}

impl CappedStream {
    fn check(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        // The sender is dropped (never sent on) when the connection is evicted.
        if Pin::new(&mut self.evicted).poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a newer connection",
            ));
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            self.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
            return Some(io::Error::new(io::ErrorKind::TimedOut, "idle connection"));
        }
        None
    }
}

use std::future::Future;

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let at = tokio::time::Instant::now() + Duration::from_millis(OPS_IDLE_MS);
                    self.idle.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, data) {
            Poll::Pending => match self.check(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            // A client taking what is streamed to it (the status page's events) is not idle; one
            // that stops reading fills its socket, the write waits, and the timer runs out.
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let at = tokio::time::Instant::now() + Duration::from_millis(OPS_IDLE_MS);
                    self.idle.as_mut().reset(at);
                }
                Poll::Ready(Ok(n))
            }
            ready => ready,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for CappedStream {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = slots.iter().position(|(id, _)| *id == self.id) {
            slots.remove(i);
        }
    }
}
