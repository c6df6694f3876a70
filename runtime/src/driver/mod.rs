//! The driver loop: the only place the engine is touched.
//!
//! Each turn drains every engine output (dispatching never awaits: bounded queues and spawned
//! tasks only), resets one timer to the engine's earliest deadline, and waits with a `biased;`
//! select on shutdown, the timer, the inbox and a lag ticker. Connection readers, HTTP tasks and
//! compute jobs talk back through the one bounded inbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::engine::link::LinkId;
use keel_core::engine::scheduler::{HttpError, RequestId};
use keel_core::engine::{Event, Input, JobId, Output};
use keel_core::trading::compute::WorkResult;
use keel_core::{Engine, Time};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

mod connection;
pub(crate) use connection::{Ws, open as open_ws};
mod lag;
mod private;
mod report;
mod store_sink;

use connection::connection;
use lag::spawn_lag_probe;
pub use private::LiveStore;
use store_sink::DriverStore;

use crate::metrics::Metrics;
use crate::ops::HealthView;
use crate::transport::Transports;

/// Messages queued for the engine; the bound is what makes a flood of frames slow the readers
/// down instead of growing memory.
pub const INBOX_MESSAGES_MAX: usize = 4_096;
/// How often the driver samples its own lateness.
pub const LAG_TICK_MS: u64 = 50;
/// How often the probe thread stamps a probe for the loop (see [`LagProbe`]).
pub const LAG_PROBE_MS: u64 = 10;
/// How often health and metrics are published to the ops server.
pub const PUBLISH_MS: u64 = 250;
/// The status page's charts take a point this often.
pub const PAGE_SAMPLE_MS: u64 = 1_000;
/// The loop timer's parking distance while the engine has no deadline.
const TIMER_IDLE_S: u64 = 3600;
/// How long a closed connection's writer may take to send its close frame before it is aborted.
pub const CONN_CLOSE_GRACE_MS: u64 = 500;
/// Largest WebSocket message or frame a connection accepts.
pub const WS_MESSAGE_BYTES_MAX: usize = keel_core::wire::frame::FRAME_BYTES_MAX_DEFAULT;

pub enum Msg {
    WsConnected {
        link: LinkId,
        conn: u64,
    },
    WsConnectFailed {
        link: LinkId,
        conn: u64,
        error: String,
    },
    WsFrame {
        link: LinkId,
        conn: u64,
        text: Utf8Bytes,
        /// When the reader took it off the socket.
        received: Instant,
    },
    WsClosed {
        link: LinkId,
        conn: u64,
        reason: String,
    },
    Http {
        id: RequestId,
        result: Result<(u16, String), HttpError>,
        wall_ms: u64,
    },
    Compute {
        job: JobId,
        run: u64,
        result: Result<WorkResult, String>,
    },
    Private {
        id: u64,
        result: Result<crate::transport::PrivateReply, HttpError>,
        wall_ms: u64,
    },
    /// The store committed a live order's intent.
    Durable {
        link_id: String,
    },
    /// The store failed a live write.
    StoreFailed {
        error: String,
    },
}

/// A consumer of engine events, fed through a bounded channel it drains on its own thread.
pub struct ConsumerTx {
    pub name: String,
    pub tx: mpsc::Sender<Arc<Event>>,
}

struct Conn {
    conn: u64,
    tx: mpsc::Sender<String>,
    task: tokio::task::AbortHandle,
}

pub struct DriverConfig {
    pub rest_base: String,
    pub write_queue_frames_max: usize,
    /// The wall clock in ms since the Unix epoch (the venue's clock skew is measured against
    /// it); simulations pass their own.
    pub wall_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub lag_probe: LagProbe,
}

/// How the loop's lag is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagProbe {
    /// The lateness of a [`LAG_TICK_MS`] interval timer. It carries the timer wheel's 1 ms
    /// granularity, so it cannot show a lag under about 1 ms; simulations use it because it runs
    /// on their virtual clock.
    Timer,
    /// A thread outside the runtime stamps a probe every [`LAG_PROBE_MS`] into a one-slot
    /// channel and the loop takes it like any other message: the lag is how long a message that
    /// was ready waited for the loop, including the OS waking the loop's thread. A probe that
    /// finds the slot full is skipped, and the one waiting there measures the stall.
    Thread,
}

pub fn system_wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sees every output before it is dispatched and the engine after every turn: how simulations
/// check invariants and hash the trace. Production runs without one.
pub trait Observer: Send + 'static {
    fn output(&mut self, _now: Time, _o: &Output) {}
    fn turn(&mut self, _now: Time, _engine: &Engine) {}
}

pub struct Driver {
    engine: Engine,
    origin: Instant,
    config: DriverConfig,
    transports: Transports,
    inbox_tx: mpsc::Sender<Msg>,
    inbox_rx: mpsc::Receiver<Msg>,
    conns: HashMap<LinkId, Conn>,
    consumers: Vec<ConsumerTx>,
    dropped_unreported: u64,
    metrics: Arc<Metrics>,
    health_tx: watch::Sender<Arc<HealthView>>,
    local: Vec<Input<'static>>,
    fatal: Option<String>,
    stopped: bool,
    observer: Option<Box<dyn Observer>>,
    api: Option<crate::api::SharedApi>,
    store: Option<DriverStore>,
    credentials: Option<crate::config::Credentials>,
    live_store: Option<Box<dyn LiveStore>>,
    /// When the status page's series last took a sample, and the frame count then.
    page_sampled: Option<(Instant, u64)>,
    alerts: crate::alerts::Alerts,
    /// The overall health last alerted on.
    alerted_overall: Option<keel_core::engine::health::Overall>,
    /// Signals from the signals API.
    signals_rx: Option<mpsc::Receiver<keel_core::trading::strategy::Signal>>,
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Shut down on request: exit 0.
    Clean,
    /// The engine could not run: exit non-zero with this message.
    Fatal(String),
}

impl Driver {
    pub fn new(
        engine: Engine,
        origin: Instant,
        config: DriverConfig,
        transports: Transports,
        consumers: Vec<ConsumerTx>,
        metrics: Arc<Metrics>,
        health_tx: watch::Sender<Arc<HealthView>>,
    ) -> Driver {
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX_MESSAGES_MAX);
        Driver {
            engine,
            origin,
            config,
            transports,
            inbox_tx,
            inbox_rx,
            conns: HashMap::new(),
            consumers,
            dropped_unreported: 0,
            metrics,
            health_tx,
            local: Vec::new(),
            fatal: None,
            stopped: false,
            observer: None,
            api: None,
            store: None,
            credentials: None,
            live_store: None,
            page_sampled: None,
            alerts: crate::alerts::Alerts::off(),
            alerted_overall: None,
            signals_rx: None,
        }
    }

    /// Signals from outside (the signals API) are acted on like the strategies' own.
    pub fn with_signals(
        mut self,
        rx: mpsc::Receiver<keel_core::trading::strategy::Signal>,
    ) -> Driver {
        self.signals_rx = Some(rx);
        self
    }

    /// The key pair private requests are signed with; without one they are refused unsent.
    pub fn with_credentials(mut self, c: Option<crate::config::Credentials>) -> Driver {
        self.credentials = c;
        self
    }

    /// Keeps signals, orders and positions for the ops API.
    pub fn with_api(mut self, api: crate::api::SharedApi) -> Driver {
        self.api = Some(api);
        self
    }

    /// Health changes, the kill switch, errors and heartbeats go to `alerts` (never waited on).
    pub fn with_alerts(mut self, alerts: crate::alerts::Alerts) -> Driver {
        self.alerts = alerts;
        self
    }

    pub fn with_observer(mut self, o: Box<dyn Observer>) -> Driver {
        self.observer = Some(o);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's clock: virtual under a simulation, since `into_std` keeps tokio's view.
    fn now(&self) -> Time {
        time_since(self.origin)
    }

    fn instant(&self, t: Time) -> Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> (Exit, Engine) {
        let timer = tokio::time::sleep(Duration::from_secs(TIMER_IDLE_S));
        tokio::pin!(timer);
        let mut lag_tick = tokio::time::interval(Duration::from_millis(LAG_TICK_MS));
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish = tokio::time::interval(Duration::from_millis(PUBLISH_MS));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutting_down = false;
        let mut armed: Option<Instant> = None;
        let (probe_tx, mut probe_rx) = mpsc::channel::<std::time::Instant>(1);
        // The timer also stands in when the probe thread cannot start: the watchdog counts on
        // loop-lag samples as the loop's sign of progress.
        let timer_probe = match self.config.lag_probe {
            LagProbe::Thread => !spawn_lag_probe(probe_tx),
            LagProbe::Timer => true,
        };
        loop {
            self.drain();
            if let Some(msg) = self.fatal.take() {
                self.publish();
                self.close_all();
                return (Exit::Fatal(msg), self.engine);
            }
            if self.stopped {
                self.publish();
                return (Exit::Clean, self.engine);
            }
            // Re-arming the timer touches tokio's timer wheel; most turns (a frame each) leave
            // the engine's deadline where it was. With none, the timer's branch is off.
            let deadline = self.engine.poll_timeout().map(|t| self.instant(t));
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d);
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                _ = shutdown.changed(), if !shutting_down => {
                    if *shutdown.borrow() {
                        shutting_down = true;
                        let now = self.now();
                        self.engine.handle_input(now, Input::Shutdown);
                    }
                }
                _ = &mut timer, if deadline.is_some() => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
                scheduled = lag_tick.tick(), if timer_probe => {
                    let lag = Instant::now().saturating_duration_since(scheduled);
                    self.on_lag(lag);
                }
                Some(stamped) = probe_rx.recv(), if !timer_probe => {
                    let lag = Instant::now().into_std().saturating_duration_since(stamped);
                    self.on_lag(lag);
                }
                _ = publish.tick() => self.publish(),
                Some(msg) = self.inbox_rx.recv() => self.on_msg(msg),
                Some(signal) = next_signal(&mut self.signals_rx) => {
                    let now = self.now();
                    self.engine.handle_input(now, Input::Signal(signal));
                }
            }
        }
    }

    fn on_lag(&mut self, lag: Duration) {
        self.metrics.observe_loop_lag(lag);
        self.metrics.tick_progress();
        let now = self.now();
        self.engine.handle_input(now, Input::LoopLag { lag });
    }

    fn on_msg(&mut self, msg: Msg) {
        let now = self.now();
        match msg {
            Msg::WsConnected { link, conn } => self
                .engine
                .handle_input(now, Input::WsConnected { link, conn }),
            Msg::WsConnectFailed { link, conn, error } => {
                self.drop_conn(link, conn);
                self.engine
                    .handle_input(now, Input::WsConnectFailed { link, conn, error })
            }
            Msg::WsFrame {
                link,
                conn,
                text,
                received,
            } => {
                self.engine.handle_input(
                    now,
                    Input::WsFrame {
                        link,
                        conn,
                        text: text.as_str(),
                    },
                );
                self.metrics
                    .observe_ingest(Instant::now().saturating_duration_since(received));
            }
            Msg::WsClosed { link, conn, reason } => {
                self.drop_conn(link, conn);
                self.engine
                    .handle_input(now, Input::WsClosed { link, conn, reason })
            }
            Msg::Http {
                id,
                result,
                wall_ms,
            } => match result {
                Ok((status, body)) => self.engine.handle_input(
                    now,
                    Input::HttpResponse {
                        id,
                        status,
                        body,
                        wall_ms,
                    },
                ),
                Err(error) => self
                    .engine
                    .handle_input(now, Input::HttpError { id, error }),
            },
            Msg::Compute { job, run, result } => self
                .engine
                .handle_input(now, Input::ComputeDone { job, run, result }),
            Msg::Private {
                id,
                result,
                wall_ms,
            } => match result {
                Ok(r) => self.engine.handle_input(
                    now,
                    Input::PrivateAnswer {
                        id,
                        status: r.status,
                        body: &r.body,
                        wall_ms,
                        limit: r.limit,
                    },
                ),
                Err(error) => self
                    .engine
                    .handle_input(now, Input::PrivateError { id, error }),
            },
            Msg::Durable { link_id } => self.engine.handle_input(now, Input::Durable { link_id }),
            Msg::StoreFailed { error } => {
                self.engine.handle_input(now, Input::StoreFailed { error })
            }
        }
    }

    /// Drains every output; feeds back what dispatching learned (a full write queue, consumer
    /// drops) and drains again, until the engine is quiet.
    fn drain(&mut self) {
        loop {
            while let Some(o) = self.engine.poll_output() {
                if let Some(obs) = self.observer.as_mut() {
                    obs.output(time_since(self.origin), &o);
                }
                self.dispatch(o);
            }
            self.pump_store();
            if self.dropped_unreported > 0 {
                let dropped = std::mem::take(&mut self.dropped_unreported);
                self.metrics.consumer_drops.inc_by(dropped);
                self.local.push(Input::ConsumerLag { dropped });
            }
            if self.local.is_empty() {
                if let Some(obs) = self.observer.as_mut() {
                    obs.turn(time_since(self.origin), &self.engine);
                }
                return;
            }
            let now = self.now();
            for input in std::mem::take(&mut self.local) {
                self.engine.handle_input(now, input);
            }
        }
    }

    fn dispatch(&mut self, o: Output) {
        match o {
            Output::Connect { link, conn, url } => self.connect(link, conn, url),
            Output::Send { link, conn, text } => {
                let queued = match self.conns.get(&link) {
                    Some(c) if c.conn == conn => c.tx.try_send(text).is_ok(),
                    // A connection already given up: nothing to write to.
                    _ => true,
                };
                if !queued {
                    self.local.push(Input::WsWriteOverflow { link, conn });
                }
            }
            Output::Close { link, conn } => self.drop_conn(link, conn),
            Output::Http { id, path, timeout } => {
                let url = format!("{}{}", self.config.rest_base, path);
                let http = self.transports.http.clone();
                let tx = self.inbox_tx.clone();
                let wall = self.config.wall_ms.clone();
                tokio::spawn(async move {
                    let result = http.get(url, timeout).await;
                    let wall_ms = wall();
                    let _ = tx
                        .send(Msg::Http {
                            id,
                            result,
                            wall_ms,
                        })
                        .await;
                });
            }
            Output::Private(r) => self.send_private(r),
            Output::Authenticate { link, conn } => self.authenticate(link, conn),
            Output::Store(w) => self.store_live(w),
            Output::Compute { job, run, work } => {
                let tx = self.inbox_tx.clone();
                self.transports.compute.execute(
                    work,
                    Box::new(move |result| {
                        // From a pool thread: waiting here for room in the inbox blocks that
                        // thread only, never the event loop.
                        if tokio::runtime::Handle::try_current().is_ok() {
                            let _ = tx.try_send(Msg::Compute { job, run, result });
                        } else {
                            let _ = tx.blocking_send(Msg::Compute { job, run, result });
                        }
                    }),
                );
            }
            Output::Event(e) => self.on_event(e),
            Output::Notice(n) => self.on_notice(n),
            Output::Heartbeat(h) => self.on_heartbeat(h),
            Output::Fatal(msg) => self.fatal = Some(msg),
            Output::Stopped => {
                self.close_all();
                self.stopped = true;
            }
        }
    }

    fn connect(&mut self, link: LinkId, conn: u64, url: String) {
        self.drop_conn_any(link);
        let (tx, rx) = mpsc::channel::<String>(self.config.write_queue_frames_max);
        let inbox = self.inbox_tx.clone();
        let connector = self.transports.connector.clone();
        let task = tokio::spawn(connection(link, conn, url, connector, rx, inbox));
        self.conns.insert(
            link,
            Conn {
                conn,
                tx,
                task: task.abort_handle(),
            },
        );
    }

    fn drop_conn(&mut self, link: LinkId, conn: u64) {
        if self.conns.get(&link).is_some_and(|c| c.conn == conn) {
            self.drop_conn_any(link);
        }
    }

    fn drop_conn_any(&mut self, link: LinkId) {
        if let Some(c) = self.conns.remove(&link) {
            // Dropping the sender lets the writer send a close frame; the abort is the backstop.
            drop(c.tx);
            let task = c.task;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(CONN_CLOSE_GRACE_MS)).await;
                task.abort();
            });
        }
    }

    fn close_all(&mut self) {
        let links: Vec<LinkId> = self.conns.keys().copied().collect();
        for l in links {
            self.drop_conn_any(l);
        }
    }

    fn publish(&mut self) {
        let now = self.now();
        self.metrics.sync_from(&self.engine);
        if let Some(api) = &self.api {
            let positions = self
                .engine
                .broker()
                .positions()
                .map(|p| (p.clone(), self.engine.mark(&p.symbol)))
                .collect();
            let at = Instant::now();
            let frames = self.engine.counters().frames;
            let sample = match self.page_sampled {
                Some((t, _)) if at.duration_since(t) < Duration::from_millis(PAGE_SAMPLE_MS) => {
                    None
                }
                Some((t, f)) => {
                    let secs = at.duration_since(t).as_secs_f64().max(1e-3);
                    Some(frames.saturating_sub(f) as f64 / secs)
                }
                None => Some(0.0),
            };
            let mut a = api.lock().unwrap_or_else(|p| p.into_inner());
            a.positions = positions;
            a.wallet = self.engine.wallet().cloned();
            if let Some(fps) = sample {
                self.page_sampled = Some((at, frames));
                let lag = self.metrics.take_recent_loop_lag_max();
                a.push_sample((self.config.wall_ms)(), lag, fps);
            }
        }
        let view = HealthView::from_engine(&self.engine, now);
        self.alert_on_health_change(view.status);
        self.health_tx.send_replace(Arc::new(view));
    }
}

/// The engine's time: how long since `origin`.
fn time_since(origin: Instant) -> Time {
    Time::from_nanos(Instant::now().duration_since(origin).as_nanos() as u64)
}

/// Counts events a consumer thread took, for tests and the log.
#[derive(Default)]
pub struct ConsumerStats {
    pub taken: AtomicU64,
}

impl ConsumerStats {
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

/// The next external signal; never ready without a signals API.
async fn next_signal(
    rx: &mut Option<mpsc::Receiver<keel_core::trading::strategy::Signal>>,
) -> Option<keel_core::trading::strategy::Signal> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
