//! `keel run` and `keel venue`: wiring the engine, the driver, the ops server, the watchdog,
//! the consumers and (by default) the embedded venue together, and taking them down again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_core::engine::Event;
use keel_core::{Engine, Time};
use keel_venue::{Fault, Venue, VenueConfig};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{RunConfig, VenueChoice, rest_base, ws_url};
use crate::driver::{ConsumerStats, ConsumerTx, Driver, DriverConfig, Exit};
use crate::metrics::Metrics;
use crate::ops::{self, HealthView};
use crate::transport::{RayonPool, ReqwestTransport, TcpConnector, Transports};

/// The embedded venue account's starting USDT.
const EMBEDDED_BALANCE_USDT: i64 = 100_000;

/// Time the embedded venue's server gets to finish its graceful shutdown.
const VENUE_SHUTDOWN_GRACE_MS: u64 = 100;

/// The event loop making no progress for this long is a stall.
pub const WATCHDOG_STALL_MS: u64 = 250;
/// Compute threads without user strategies: one per core of the machines we measure on.
pub const COMPUTE_THREADS_BASE: usize = 2;
/// Compute threads at most, whatever the number of strategies.
pub const COMPUTE_THREADS_MAX: usize = 16;

pub fn install_crypto() {
    // Several callers may race here; only the first install counts and that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A venue serving on loopback, stopped when dropped.
pub struct RunningVenue {
    pub venue: Venue,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl RunningVenue {
    pub async fn start(addr: SocketAddr, config: VenueConfig) -> Result<RunningVenue, String> {
        Self::start_venue(addr, Venue::new(config, crate::driver::system_wall_ms())).await
    }

    pub async fn start_venue(addr: SocketAddr, venue: Venue) -> Result<RunningVenue, String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("venue cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stop_rx) = watch::channel(false);
        venue.spawn_stepper(stop_rx.clone());
        let mut rx = stop_rx;
        let v = venue.clone();
        tokio::spawn(async move {
            let done = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = keel_venue::serve(listener, v, done).await {
                tracing::error!("venue stopped: {e}");
            }
        });
        Ok(RunningVenue { venue, addr, stop })
    }

    /// Starts the venue on a runtime of its own, on its own thread: an embedded venue is a
    /// stand-in for a remote one and must never take turns on the bot's event loop.
    pub fn start_isolated(addr: SocketAddr, config: VenueConfig) -> Result<RunningVenue, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_background_runtime("keel-venue", move || async move {
            match RunningVenue::start(addr, config).await {
                Ok(v) => {
                    let mut stopped = v.stop.subscribe();
                    let _ = tx.send(Ok(RunningVenue {
                        venue: v.venue.clone(),
                        addr: v.addr,
                        stop: v.stop.clone(),
                    }));
                    let _ = stopped.wait_for(|s| *s).await;
                    // Let the server finish its graceful shutdown.
                    tokio::time::sleep(Duration::from_millis(VENUE_SHUTDOWN_GRACE_MS)).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
        rx.recv()
            .map_err(|_| "venue thread ended early".to_string())?
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for RunningVenue {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the ops and API routes on a thread and runtime of their own, at background priority, so
/// that a scrape or a large API page never takes a turn on the event loop's thread. Measured under
/// about 100 `curl` scrapes a second: the share of loop-lag probes under 0.8 ms went from 95.6% (on
/// the loop's thread) to 98.4%; the rest is the scrapers' own load on two cores.
/// Bytes of a request body the ops server reads (its endpoints take none worth more).
pub const OPS_BODY_BYTES_MAX: usize = 64 * 1024;

fn spawn_ops_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    counters_slot: Option<std::sync::mpsc::Sender<Arc<crate::ops_listener::OpsCounters>>>,
) -> Result<OpsServer, String> {
    let (stop_tx, mut stop) = watch::channel(false);
    let listener = listener
        .into_std()
        .map_err(|e| format!("ops server: {e}"))?;
    spawn_background_runtime("keel-ops", move || async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("ops server: {e}");
                return;
            }
        };
        let done = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let listener = crate::ops_listener::CappedListener::new(listener);
        if let Some(c) = counters_slot {
            let _ = c.send(listener.counters.clone());
        }
        let app = app.layer(axum::extract::DefaultBodyLimit::max(OPS_BODY_BYTES_MAX));
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(done)
            .await
        {
            tracing::error!("ops server stopped: {e}");
        }
    })?;
    Ok(OpsServer(stop_tx))
}

/// Runs the future `make` returns on a one-thread runtime of its own, on a thread of its own at
/// background priority: for what stands in for a remote party or serves on the side, and so must
/// never take turns on the event loop's thread. The runtime is built here, so a failure to build
/// it is the caller's error.
pub(crate) fn spawn_background_runtime<F, Fut>(name: &str, make: F) -> Result<(), String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{name} runtime: {e}"))?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::priority::background_thread();
            rt.block_on(make());
        })
        .map(|_| ())
        .map_err(|e| format!("{name} thread: {e}"))
}

/// Stops the ops server when dropped, however `run` returns.
struct OpsServer(watch::Sender<bool>);

impl Drop for OpsServer {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Watches the driver's progress counter from a real OS thread: if the event loop makes no
/// progress for `stall` it says so once per stall and counts it.
pub fn spawn_watchdog(
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    stall: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("keel-watchdog".into())
        .spawn(move || {
            let mut last = metrics.progress.load(Ordering::Relaxed);
            let mut last_change = std::time::Instant::now();
            let mut stalled = false;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(stall / 5);
                let p = metrics.progress.load(Ordering::Relaxed);
                if p != last {
                    if stalled {
                        tracing::warn!("event loop is making progress again");
                    }
                    last = p;
                    last_change = std::time::Instant::now();
                    stalled = false;
                } else if !stalled && last_change.elapsed() >= stall && p > 0 {
                    stalled = true;
                    metrics.watchdog_stalls.inc();
                    tracing::warn!(
                        stalled_ms = last_change.elapsed().as_millis() as u64,
                        "event loop made no progress"
                    );
                }
            }
        })
        .expect("spawning a thread at start-up")
}

/// The default consumer: logs closed candles and signal cycles from its own thread. `delay`
/// makes it slow on purpose (for tests of slow consumers).
pub fn spawn_log_consumer(
    delay: Duration,
    events_max: usize,
) -> (ConsumerTx, Arc<ConsumerStats>, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Arc<Event>>(events_max.max(1));
    let stats = Arc::new(ConsumerStats::default());
    let s = stats.clone();
    let handle = std::thread::Builder::new()
        .name("keel-consumer-log".into())
        .spawn(move || {
            crate::priority::background_thread();
            while let Some(e) = rx.blocking_recv() {
                s.taken.fetch_add(1, Ordering::Relaxed);
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                match &*e {
                    Event::CandleClosed { symbol, interval, candle } => tracing::info!(
                        symbol = %symbol,
                        interval = interval.as_str(),
                        start = candle.bar.start_ms,
                        close = %candle.bar.close,
                        volume = %candle.bar.volume,
                        "candle closed"
                    ),
                    Event::Signals(s) => {
                        for sig in s {
                            tracing::debug!(symbol = %sig.symbol, mid = %sig.mid, spread_bps = sig.spread_bps, imbalance = sig.imbalance, "signal");
                        }
                    }
                    Event::StrategySignals(s) => {
                        for sig in s {
                            tracing::info!(symbol = %sig.symbol, strategy = %sig.strategy, side = sig.label(), confidence = format!("{:.2}", sig.confidence()), reason = %sig.reason, "signal");
                        }
                    }
                    Event::KillSwitch { reason } => tracing::error!(%reason, "kill switch"),
                    Event::Top { .. } => {}
                }
            }
        })
        .expect("spawning a thread at start-up");
    (
        ConsumerTx {
            name: "log".into(),
            tx,
        },
        stats,
        handle,
    )
}

/// Everything a finished run leaves behind, for tests.
pub struct RunReport {
    pub exit: Exit,
    pub engine: Engine,
    pub consumer: Arc<ConsumerStats>,
    pub metrics: Arc<Metrics>,
}

/// Runs the bot until `shutdown` flips to true (or a fatal error).
pub async fn run(cfg: RunConfig, shutdown: watch::Receiver<bool>) -> Result<RunReport, String> {
    run_with_venue_speedup(cfg, shutdown, 1).await
}

/// As [`run`]; an embedded venue pushes `speedup` times faster than Bybit (for benchmarks).
pub async fn run_with_venue_speedup(
    mut cfg: RunConfig,
    shutdown: watch::Receiver<bool>,
    speedup: u64,
) -> Result<RunReport, String> {
    install_crypto();
    // Which venue the store's orders belong to (before the embedded venue becomes a URL).
    let orders_venue = if !cfg.live {
        "paper".to_string()
    } else {
        match &cfg.venue {
            VenueChoice::Embedded => "live embedded".to_string(),
            VenueChoice::Bybit => "live bybit".to_string(),
            VenueChoice::Url(u) => format!("live {}", keel_core::redact::redact_url(u)),
        }
    };
    let mut venue_guard = None;
    let rest = match rest_base(&cfg.venue) {
        Some(r) => r,
        None => {
            let mut vc = VenueConfig::new(cfg.engine.symbols.clone());
            vc.seed = cfg.engine.seed;
            // The embedded venue's trading account: a key pair made here, in memory only.
            let creds = crate::config::Credentials::generate()
                .map_err(|e| format!("cannot make the embedded venue's key pair: {e}"))?;
            vc.accounts.push(keel_venue::AccountConfig {
                api_key: creds.api_key.clone(),
                api_secret: creds.api_secret.clone(),
                balances: vec![(
                    "USDT".into(),
                    keel_core::Dec::from_int(EMBEDDED_BALANCE_USDT),
                )],
            });
            cfg.credentials = Some(creds);
            vc.push_speedup = speedup.max(1);
            vc.step_ms = (vc.step_ms / speedup.max(1)).max(1);
            let v = RunningVenue::start_isolated("127.0.0.1:0".parse().expect("literal"), vc)?;
            let base = format!("http://{}", v.addr);
            tracing::info!("embedded venue listening on {base} (REST, WebSocket and /admin)");
            cfg.venue = VenueChoice::Url(base.clone());
            venue_guard = Some(v);
            base
        }
    };
    cfg.engine.ws_url = ws_url(&cfg.venue, cfg.engine.category).map_err(|e| e.to_string())?;
    if cfg.live && cfg.engine.auto_execute {
        cfg.engine.private_url =
            Some(crate::config::private_ws_url(&cfg.venue).map_err(|e| e.to_string())?);
    }
    cfg.engine.link.url = cfg.engine.ws_url.clone();

    let api: crate::api::SharedApi = Default::default();
    let metrics = Arc::new(Metrics::new());
    let (health_tx, health_rx) = watch::channel(Arc::new(HealthView::starting()));
    let listener = ops::bind(cfg.ops_addr).await?;
    let ops_addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("ops server on http://{ops_addr} (status page at /, /health, /metrics)");
    let (signals_app, signals_rx) =
        crate::signals_api::router(&cfg.signals, cfg.engine.symbols.clone());
    let mut app = ops::router(health_rx.clone(), metrics.clone())
        .merge(crate::api::router(api.clone()))
        .merge(crate::page::router(health_rx, api.clone()))
        .merge(signals_app);
    if let Some(t) = cfg.ops_token.clone() {
        app = ops::require_token(app, t);
    }
    let (ops_tx, ops_rx) = std::sync::mpsc::channel();
    let _ops = spawn_ops_server(listener, app, Some(ops_tx))?;
    if let Ok(c) = ops_rx.recv_timeout(Duration::from_secs(5)) {
        metrics.watch_ops(c);
    }

    let stop_watchdog = Arc::new(AtomicBool::new(false));
    let watchdog = spawn_watchdog(
        metrics.clone(),
        stop_watchdog.clone(),
        Duration::from_millis(WATCHDOG_STALL_MS),
    );
    let (consumer, consumer_stats, consumer_thread) = spawn_log_consumer(
        Duration::from_millis(cfg.consumer_delay_ms),
        cfg.consumer_events_max,
    );

    // Alerts leave from their own thread; the loop only offers them.
    let alerts = crate::alerts::start(cfg.alerts.clone())?;
    metrics.watch_alerts(alerts.counters.clone());
    let transports = Transports {
        connector: Arc::new(TcpConnector),
        http: Arc::new(ReqwestTransport::new()?),
        // Each strategy holds at most one thread (never a second call while one is out), so a
        // thread per user strategy beyond the cores means a hung one never starves the rest.
        compute: Arc::new(RayonPool::new(
            (COMPUTE_THREADS_BASE + cfg.engine.strategies.len()).min(COMPUTE_THREADS_MAX),
        )?),
    };
    // The store first: positions and the order sequence must be restored before any signal.
    // Paper and live orders go through the same order machine and the same tables: ids unique
    // to this store, and every order it holds without a final state resolved before anything
    // new is sent.
    let mut store = crate::store::Store::open(&cfg.db)?;
    let positions = store.rebuild_positions(cfg.engine.broker.clone())?;
    let live = cfg.live && cfg.engine.auto_execute;
    cfg.engine.paper = !live;
    let next_seq = store.live_next_seq()?;
    cfg.engine.orders_next_seq = next_seq;
    let mut unfinished = Vec::new();
    let mut known_fills = Vec::new();
    if cfg.engine.auto_execute {
        store.claim_orders_venue(&orders_venue)?;
        let link_prefix = store.link_prefix(crate::driver::system_wall_ms())?;
        cfg.engine.orders = Some(keel_core::trading::orders::OrdersConfig {
            link_prefix,
            ..Default::default()
        });
        unfinished = store.unfinished_live_orders()?;
        known_fills = store.live_exec_records()?;
    }
    let history: Vec<(String, Vec<keel_core::market::kline::Bar>)> = match cfg.engine.kline_interval
    {
        Some(iv) => {
            let keep = cfg
                .engine
                .history_needed()
                .max(cfg.engine.warmup_candles as usize);
            let mut h = Vec::new();
            for s in &cfg.engine.symbols {
                h.push((s.clone(), store.load_candles(s, iv, keep)?));
            }
            h
        }
        None => Vec::new(),
    };
    tracing::info!(
        db = %cfg.db.display(),
        next_order_seq = next_seq,
        positions = positions.len(),
        stored_candles = history.iter().map(|(_, b)| b.len()).sum::<usize>(),
        live,
        unfinished_orders = unfinished.len(),
        "store opened"
    );
    let store_handle = crate::store::spawn_store(store, api.clone())?;
    let origin = Instant::now();
    let mut engine = Engine::new(cfg.engine.clone(), Time::ZERO).map_err(|e| e.to_string())?;
    for p in positions {
        engine.restore_position(p);
    }
    for (rec, execs) in unfinished {
        engine.resume_order(Time::ZERO, rec, execs);
    }
    // Fills already stored are applied once only; reconciliation reads from the newest on.
    let newest = known_fills.iter().map(|f| f.ts_ms).max();
    let skip = known_fills
        .len()
        .saturating_sub(keel_core::trading::orders::KNOWN_EXECS_MAX);
    engine.remember_fills(
        known_fills.into_iter().skip(skip).map(|f| f.exec_id),
        newest,
    );
    if let Some(iv) = cfg.engine.kline_interval {
        for (symbol, bars) in &history {
            engine.seed_history(symbol, iv, bars);
        }
    }
    tracing::info!(
        symbols = %cfg.engine.symbols.join(","),
        venue = %keel_core::redact::redact_url(&rest),
        "keel starting"
    );
    let driver = Driver::new(
        engine,
        origin,
        DriverConfig {
            rest_base: rest,
            write_queue_frames_max: cfg.write_queue_frames_max,
            wall_ms: Arc::new(crate::driver::system_wall_ms),
            lag_probe: crate::driver::LagProbe::Thread,
        },
        transports,
        vec![consumer],
        metrics.clone(),
        health_tx,
    )
    .with_api(api.clone())
    .with_alerts(alerts)
    .with_store(&store_handle)
    .with_signals(signals_rx)
    .with_credentials(if live { cfg.credentials.clone() } else { None });
    let (exit, engine) = driver.run(shutdown).await;
    // Everything the driver queued is committed before we return: drop our sender and wait.
    let crate::store::StoreHandle { tx, thread, .. } = store_handle;
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    stop_watchdog.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    drop(venue_guard);
    // The consumer thread ends when its channel closes with the driver; do not wait on a slow one.
    drop(consumer_thread);
    Ok(RunReport {
        exit,
        engine,
        consumer: consumer_stats,
        metrics,
    })
}

/// Flips `tx` on SIGINT, SIGTERM or after `duration`.
pub fn spawn_shutdown(tx: watch::Sender<bool>, duration: Option<Duration>) {
    tokio::spawn(async move {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = timer => tracing::info!("duration reached: shutting down"),
            }
        }
        #[cfg(not(unix))]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = timer => tracing::info!("duration reached: shutting down"),
        }
        let _ = tx.send(true);
    });
}

/// `keel venue`: the venue alone, with faults scheduled from flags.
pub async fn venue_main(
    addr: SocketAddr,
    config: VenueConfig,
    replay: Option<keel_venue::replay::ReplayFeed>,
    faults: Vec<(Duration, Fault)>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let venue = match replay {
        Some(feed) => {
            tracing::info!(topics = feed.topics.len(), "venue replays capture files");
            Venue::replaying(config, feed, crate::driver::system_wall_ms())
        }
        None => Venue::new(config, crate::driver::system_wall_ms()),
    };
    let v = RunningVenue::start_venue(addr, venue).await?;
    tracing::info!(
        "venue listening on http://{} (REST, WebSocket at /v5/public/{{linear,spot}}, POST /admin/fault)",
        v.addr
    );
    for (after, fault) in faults {
        let venue = v.venue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::info!(fault = ?fault, "injecting scheduled fault");
            venue.apply_fault(fault);
        });
    }
    let mut s = shutdown;
    let _ = s.wait_for(|x| *x).await;
    v.stop();
    Ok(())
}
