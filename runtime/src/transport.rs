//! What the driver talks to, behind traits so a simulation can swap each one: the byte stream
//! under a WebSocket, HTTP GET, and the pool that runs compute jobs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keel_core::engine::scheduler::HttpError;
use keel_core::trading::compute::{Work, WorkResult};
use keel_core::trading::orders::RateLimit;
use tokio::io::{AsyncRead, AsyncWrite};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A raw byte stream to a WebSocket URL's host; TLS and the handshake happen above it.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, host: String, port: u16) -> BoxFuture<std::io::Result<Box<dyn Io>>>;
}

/// Plain TCP from the operating system (TLS is layered on by tokio-tungstenite for wss).
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<std::io::Result<Box<dyn Io>>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as Box<dyn Io>)
        })
    }
}

/// A signed private request, ready to go: the signature covers `body` (POST) or the query in
/// `url` (GET) byte for byte.
pub struct SignedRequest {
    pub post: bool,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// What came back for a private request: the status, the body and the venue's rate-limit
/// headers.
pub struct PrivateReply {
    pub status: u16,
    pub body: String,
    pub limit: Option<RateLimit>,
}

/// `GET url` with a timeout, answering (status, body); and signed private requests.
pub trait HttpTransport: Send + Sync + 'static {
    fn get(&self, url: String, timeout: Duration) -> BoxFuture<Result<(u16, String), HttpError>>;

    /// A transport that cannot send private requests refuses them (nothing is sent).
    fn send(
        &self,
        _req: SignedRequest,
        _timeout: Duration,
    ) -> BoxFuture<Result<PrivateReply, HttpError>> {
        Box::pin(async {
            Err(HttpError::Other(
                "this transport does not send private requests".into(),
            ))
        })
    }
}

/// Reads `X-Bapi-Limit`, `X-Bapi-Limit-Status` and `X-Bapi-Limit-Reset-Timestamp`
/// (rate-limit.mdx); absent or unreadable headers give `None`.
pub fn rate_limit_of(headers: &reqwest::header::HeaderMap) -> Option<RateLimit> {
    let num = |k: &str| headers.get(k)?.to_str().ok()?.trim().parse::<u64>().ok();
    Some(RateLimit {
        limit: u32::try_from(num("x-bapi-limit")?).ok()?,
        remaining: u32::try_from(num("x-bapi-limit-status")?).ok()?,
        reset_ms: num("x-bapi-limit-reset-timestamp")?,
    })
}

pub struct ReqwestTransport {
    client: reqwest::Client,
}

/// A TCP + TLS connect that takes longer than this fails (the request's own timeout still
/// applies to the whole answer).
pub const HTTP_CONNECT_TIMEOUT_MS: u64 = 10_000;

impl ReqwestTransport {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_millis(HTTP_CONNECT_TIMEOUT_MS))
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(ReqwestTransport { client })
    }
}

/// Bodies larger than this are refused before they are read into memory.
pub const HTTP_BODY_BYTES_MAX: usize = keel_core::wire::rest::REST_BODY_BYTES_MAX_DEFAULT;

impl HttpTransport for ReqwestTransport {
    fn get(&self, url: String, timeout: Duration) -> BoxFuture<Result<(u16, String), HttpError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let resp = client
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(classify)?;
            let status = resp.status().as_u16();
            let body = read_bounded(resp, HTTP_BODY_BYTES_MAX).await?;
            Ok((status, body))
        })
    }

    fn send(
        &self,
        req: SignedRequest,
        timeout: Duration,
    ) -> BoxFuture<Result<PrivateReply, HttpError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let mut b = if req.post {
                client
                    .post(&req.url)
                    .header("Content-Type", "application/json")
                    .body(req.body)
            } else {
                client.get(&req.url)
            };
            for (k, v) in req.headers {
                b = b.header(k, v);
            }
            let resp = b.timeout(timeout).send().await.map_err(classify)?;
            let status = resp.status().as_u16();
            let limit = rate_limit_of(resp.headers());
            let body = read_bounded(resp, HTTP_BODY_BYTES_MAX).await?;
            Ok(PrivateReply {
                status,
                body,
                limit,
            })
        })
    }
}

/// Reads a body chunk by chunk with a running byte count, with or without Content-Length: the
/// first chunk past `bytes_max` ends the read and drops what was read, so a chunked body that
/// never ends costs at most `bytes_max` bytes of memory.
async fn read_bounded(mut resp: reqwest::Response, bytes_max: usize) -> Result<String, HttpError> {
    let too_large = HttpError::TooLarge { bytes_max };
    if resp.content_length().is_some_and(|n| n > bytes_max as u64) {
        return Err(too_large);
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > bytes_max {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| HttpError::Other("response body is not UTF-8".into()))
}

fn classify(e: reqwest::Error) -> HttpError {
    // reqwest's errors quote the URL; the URL may carry credentials.
    let e = e.without_url();
    let text = keel_core::redact::redact_urls_in(&e.to_string()).into_owned();
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_connect() {
        HttpError::Connect(text)
    } else {
        HttpError::Other(text)
    }
}

/// Runs compute jobs away from the event loop and hands the result to `done`.
pub trait ComputePool: Send + Sync + 'static {
    fn execute(
        &self,
        work: Work,
        done: Box<dyn FnOnce(Result<WorkResult, String>) + Send + 'static>,
    );
}

fn run_guarded(work: &Work) -> Result<WorkResult, String> {
    // A panicking job is a failed run for the supervisor, never a dead pool thread.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        keel_core::trading::compute::run(work)
    }))
    .map_err(|p| match p.downcast_ref::<&str>() {
        Some(s) => format!("job panicked: {s}"),
        None => "job panicked".to_string(),
    })
}

pub struct RayonPool {
    pool: rayon::ThreadPool,
}

impl RayonPool {
    pub fn new(threads: usize) -> Result<Self, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("keel-compute-{i}"))
            .start_handler(|_| crate::priority::background_thread())
            .build()
            .map_err(|e| format!("compute pool: {e}"))?;
        Ok(RayonPool { pool })
    }
}

impl ComputePool for RayonPool {
    fn execute(
        &self,
        work: Work,
        done: Box<dyn FnOnce(Result<WorkResult, String>) + Send + 'static>,
    ) {
        self.pool.spawn(move || done(run_guarded(&work)));
    }
}

/// Runs jobs on the calling runtime as tasks, each taking `cost` of (possibly virtual) time:
/// what a simulation uses, where threads would break determinism.
pub struct InlinePool {
    pub cost: Duration,
}

impl ComputePool for InlinePool {
    fn execute(
        &self,
        work: Work,
        done: Box<dyn FnOnce(Result<WorkResult, String>) + Send + 'static>,
    ) {
        let cost = self.cost;
        tokio::spawn(async move {
            if !cost.is_zero() {
                tokio::time::sleep(cost).await;
            }
            done(run_guarded(&work));
        });
    }
}

pub struct Transports {
    pub connector: Arc<dyn Connector>,
    pub http: Arc<dyn HttpTransport>,
    pub compute: Arc<dyn ComputePool>,
}
