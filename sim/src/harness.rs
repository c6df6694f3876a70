//! The simulation harness (never in the production binary): the venue on a
//! turmoil listener, HTTP over turmoil streams with hyper-util (reqwest cannot run inside
//! turmoil), seeds from `KEEL_SEED`/`KEEL_SEEDS`, and a freeze detector that times every
//! `sim.step()` on the real clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The simulator itself, for the scenarios.
pub use turmoil;

/// The venue's host name and port inside simulations.
pub const VENUE_HOST: &str = "venue";
pub const VENUE_PORT: u16 = 80;
/// The simulated wall clock starts here (2026-01-01T00:00:00Z), so frames and candles are the
/// same on every run.
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;
/// A step taking longer than this on the real clock is a freeze.
pub const STEP_REAL_MS_MAX_DEFAULT: u64 = 100;

/// A turmoil listener the venue's axum server accepts on.
pub struct TurmoilListener(pub turmoil::net::TcpListener);

impl axum::serve::Listener for TurmoilListener {
    type Io = turmoil::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A turmoil stream as hyper-util's client wants it.
pub struct TurmoilStream(pub turmoil::net::TcpStream);

impl AsyncRead for TurmoilStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TurmoilStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for TurmoilStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[derive(Clone)]
pub struct TurmoilConnector;

impl tower_service::Service<hyper::Uri> for TurmoilConnector {
    type Response = TokioIo<TurmoilStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other("no host"))?
                .to_string();
            let port = uri.port_u16().unwrap_or(80);
            let s = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(TokioIo::new(TurmoilStream(s)))
        })
    }
}

/// HTTP GET over the simulated network.
#[derive(Clone)]
pub struct TurmoilHttp {
    client: Client<TurmoilConnector, Full<Bytes>>,
}

impl Default for TurmoilHttp {
    fn default() -> Self {
        TurmoilHttp {
            client: Client::builder(TokioExecutor::new()).build(TurmoilConnector),
        }
    }
}

/// How a simulated request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimHttpError {
    Timeout,
    Connect(String),
    Other(String),
}

impl TurmoilHttp {
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), SimHttpError> {
        self.request(false, url, &[], String::new(), timeout)
            .await
            .map(|(status, body, _)| (status, body))
    }

    /// Any request: a POST carries `body` as JSON; the answer's headers come back too.
    pub async fn request(
        &self,
        post: bool,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
        timeout: Duration,
    ) -> Result<(u16, String, hyper::HeaderMap), SimHttpError> {
        let mut req = hyper::Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(url);
        if post {
            req = req.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SimHttpError::Other(format!("{e}")))?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    SimHttpError::Connect(e.to_string())
                } else {
                    SimHttpError::Other(e.to_string())
                }
            })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| SimHttpError::Other(e.to_string()))?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned(), headers))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SimHttpError::Timeout),
        }
    }
}

/// Serves `venue` on the simulated network until the host is stopped.
pub async fn serve_venue(venue: keel_venue::Venue) -> Result<(), Box<dyn std::error::Error>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", VENUE_PORT)).await?;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    venue.spawn_stepper(stop_rx);
    keel_venue::serve(TurmoilListener(listener), venue, std::future::pending()).await?;
    Ok(())
}

/// The simulated wall clock in ms, inside a simulation.
pub fn sim_wall_ms() -> u64 {
    SIM_EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

/// The seeds to run: `KEEL_SEED` (or the test's fixed default), then `KEEL_SEEDS - 1` more.
pub fn seeds(default: u64) -> Vec<u64> {
    let first = std::env::var("KEEL_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default);
    let n = std::env::var("KEEL_SEEDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    (0..n).map(|i| first.wrapping_add(i)).collect()
}

/// A builder with the seed, fixed latency (1 ms each way) and the fixed epoch.
pub fn builder(seed: u64, duration: Duration) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .simulation_duration(duration)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .epoch(std::time::UNIX_EPOCH + Duration::from_millis(SIM_EPOCH_MS));
    b
}

/// A step that took too long on the real clock: something blocked the simulated runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Freeze {
    pub virtual_at: Duration,
    pub real: Duration,
}

impl std::fmt::Display for Freeze {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "freeze: one simulation step took {:?} of real time at virtual time {:?}",
            self.real, self.virtual_at
        )
    }
}

/// Steps the simulation, timing each step on the real clock.
pub struct FreezeDetector {
    pub step_real_max: Duration,
    pub worst: Duration,
    pub steps: u64,
}

impl Default for FreezeDetector {
    fn default() -> Self {
        FreezeDetector {
            step_real_max: Duration::from_millis(STEP_REAL_MS_MAX_DEFAULT),
            worst: Duration::ZERO,
            steps: 0,
        }
    }
}

impl FreezeDetector {
    /// One step; `Ok(true)` when every client is done.
    pub fn step(&mut self, sim: &mut turmoil::Sim<'_>) -> Result<bool, String> {
        let t = std::time::Instant::now();
        let done = sim
            .step()
            .map_err(|e| format!("simulation error at {:?}: {e}", sim.elapsed()))?;
        let real = t.elapsed();
        self.steps += 1;
        self.worst = self.worst.max(real);
        if real > self.step_real_max {
            return Err(Freeze {
                virtual_at: sim.elapsed(),
                real,
            }
            .to_string());
        }
        Ok(done)
    }
}
