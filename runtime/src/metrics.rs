//! Prometheus metrics. Counters the engine keeps are mirrored by adding what changed since the
//! last publication; what only the runtime sees (loop lag, watchdog stalls, consumer drops) is
//! recorded where it happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keel_core::Engine;
use keel_core::market::book::BookState;
use keel_core::wire::error::BadReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

pub struct Metrics {
    registry: Registry,
    pub frames: Counter,
    pub bad_frames: Family<ReasonLabel, Counter>,
    pub reconnects: Counter,
    pub connect_attempts: Counter,
    pub rest_requests: Counter,
    pub loop_lag: Histogram,
    pub watchdog_stalls: Counter,
    pub job_restarts: Counter,
    pub consumer_drops: Counter,
    /// 0 empty, 1 synced, 2 resyncing.
    pub book_state: Family<TopicLabel, Gauge>,
    pub up: Gauge,
    /// Live orders by what happened to them (sent, acked, rejected, ambiguous, ...).
    pub orders: Family<EventLabel, Counter>,
    pub reconcile_diffs: Counter,
    /// 1 once live trading has halted (store failure, refused keys, failing look-ups).
    pub trading_halted: Gauge,
    /// Ops-server connections by what became of them (accepted, evicted, idle_closed).
    pub ops_connections: Family<EventLabel, Counter>,
    ops: Mutex<Option<Arc<crate::ops_listener::OpsCounters>>>,
    /// What the alert notifier did (`keel_alerts_total{event}`).
    pub alerts: Family<EventLabel, Counter>,
    alert_counters: Mutex<Option<Arc<crate::alerts::AlertCounters>>>,
    seen: Mutex<Seen>,
    /// Bumped by the driver on every turn; the watchdog reads it.
    pub progress: AtomicU64,
    loop_lag_max_ns: AtomicU64,
    /// The worst loop lag since the status page last took it.
    loop_lag_recent_max_ns: AtomicU64,
    /// Exact percentiles for reports: socket read to engine done, and loop lag, in ns.
    ingest_ns: Mutex<hdrhistogram::Histogram<u64>>,
    loop_lag_ns: Mutex<hdrhistogram::Histogram<u64>>,
}

fn hist() -> hdrhistogram::Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits: a fixed, bounded size.
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

#[derive(Default)]
struct Seen {
    frames: u64,
    bad: [u64; BadReason::ALL.len()],
    reconnects: u64,
    connect_attempts: u64,
    rest: u64,
    restarts: u64,
    orders: std::collections::BTreeMap<&'static str, u64>,
    ops: std::collections::BTreeMap<&'static str, u64>,
    alerts: std::collections::BTreeMap<&'static str, u64>,
    reconcile_diffs: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let frames = Counter::default();
        let bad_frames = Family::<ReasonLabel, Counter>::default();
        let reconnects = Counter::default();
        let connect_attempts = Counter::default();
        let rest_requests = Counter::default();
        // 50 us .. ~3 s
        let loop_lag = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.00005, 2.0, 17,
        ));
        let watchdog_stalls = Counter::default();
        let job_restarts = Counter::default();
        let consumer_drops = Counter::default();
        let book_state = Family::<TopicLabel, Gauge>::default();
        let up = Gauge::default();
        registry.register("keel_frames", "WebSocket frames handled", frames.clone());
        registry.register(
            "keel_bad_frames",
            "Frames refused, by reason",
            bad_frames.clone(),
        );
        registry.register(
            "keel_reconnects",
            "Connections lost and replaced",
            reconnects.clone(),
        );
        registry.register(
            "keel_connect_attempts",
            "WebSocket connects started",
            connect_attempts.clone(),
        );
        registry.register(
            "keel_rest_requests",
            "REST requests sent",
            rest_requests.clone(),
        );
        registry.register(
            "keel_loop_lag_seconds",
            "How long a ready message waited for the event loop (lag probe)",
            loop_lag.clone(),
        );
        registry.register(
            "keel_watchdog_stalls",
            "Times the event loop made no progress for 250 ms",
            watchdog_stalls.clone(),
        );
        registry.register(
            "keel_job_restarts",
            "Periodic job runs restarted after a failure",
            job_restarts.clone(),
        );
        registry.register(
            "keel_consumer_drops",
            "Events a slow consumer could not take",
            consumer_drops.clone(),
        );
        registry.register(
            "keel_book_state",
            "Order book state: 0 empty, 1 synced, 2 resyncing",
            book_state.clone(),
        );
        registry.register("keel_up", "1 while the engine runs", up.clone());
        let orders = Family::<EventLabel, Counter>::default();
        let reconcile_diffs = Counter::default();
        let trading_halted = Gauge::default();
        registry.register(
            "keel_orders",
            "Orders (paper or live) by event: sent, acked, rejected, ambiguous, duplicate_id, rate_limited, fills, duplicate_fills",
            orders.clone(),
        );
        registry.register(
            "keel_reconcile_diffs",
            "Differences between the venue and keel that reconciliation corrected",
            reconcile_diffs.clone(),
        );
        let alerts = Family::<EventLabel, Counter>::default();
        registry.register(
            "keel_alerts",
            "Alerts: queued, dropped (queue full), rate_limited, sent, failed (every attempt at a sink), retries",
            alerts.clone(),
        );
        let ops_connections = Family::<EventLabel, Counter>::default();
        registry.register(
            "keel_ops_connections",
            "Ops-server connections: accepted, evicted (oldest closed for a newer one), idle_closed, accept_errors",
            ops_connections.clone(),
        );
        registry.register(
            "keel_trading_halted",
            "1 once live trading has halted",
            trading_halted.clone(),
        );
        Metrics {
            registry,
            frames,
            bad_frames,
            reconnects,
            connect_attempts,
            rest_requests,
            loop_lag,
            watchdog_stalls,
            job_restarts,
            consumer_drops,
            book_state,
            up,
            orders,
            reconcile_diffs,
            trading_halted,
            ops_connections,
            ops: Mutex::new(None),
            alerts,
            alert_counters: Mutex::new(None),
            seen: Mutex::new(Seen::default()),
            progress: AtomicU64::new(0),
            loop_lag_max_ns: AtomicU64::new(0),
            loop_lag_recent_max_ns: AtomicU64::new(0),
            ingest_ns: Mutex::new(hist()),
            loop_lag_ns: Mutex::new(hist()),
        }
    }

    /// Mirrors the alert notifier's counters from now on.
    pub fn watch_alerts(&self, c: Arc<crate::alerts::AlertCounters>) {
        *self
            .alert_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// Mirrors the ops server's connection counters from now on.
    pub fn watch_ops(&self, c: Arc<crate::ops_listener::OpsCounters>) {
        *self.ops.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// Brings the mirrored counters and gauges up to date with the engine.
    pub fn sync_from(&self, engine: &Engine) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(ops) = self.ops.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            mirror(
                &self.ops_connections,
                &mut seen.ops,
                [
                    ("accepted", ops.accepted.load(Relaxed)),
                    ("evicted", ops.evicted.load(Relaxed)),
                    ("idle_closed", ops.idle_closed.load(Relaxed)),
                    ("accept_errors", ops.accept_errors.load(Relaxed)),
                ],
            );
        }
        if let Some(a) = self
            .alert_counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            mirror(
                &self.alerts,
                &mut seen.alerts,
                [
                    ("queued", a.queued.load(Relaxed)),
                    ("dropped", a.dropped.load(Relaxed)),
                    ("rate_limited", a.rate_limited.load(Relaxed)),
                    ("sent", a.sent.load(Relaxed)),
                    ("failed", a.failed.load(Relaxed)),
                    ("retries", a.retries.load(Relaxed)),
                ],
            );
        }
        let market = engine.market();
        let add = |c: &Counter, seen: &mut u64, now: u64| {
            c.inc_by(now.saturating_sub(*seen));
            *seen = now.max(*seen);
        };
        add(&self.frames, &mut seen.frames, engine.counters().frames);
        for r in BadReason::ALL {
            let now = market.counters().bad.get(r);
            let c = self.bad_frames.get_or_create(&ReasonLabel {
                reason: r.as_str().to_string(),
            });
            add(&c, &mut seen.bad[r.index()], now);
        }
        add(&self.reconnects, &mut seen.reconnects, engine.reconnects());
        add(
            &self.connect_attempts,
            &mut seen.connect_attempts,
            engine.connect_attempts(),
        );
        add(&self.rest_requests, &mut seen.rest, engine.rest().sent);
        add(
            &self.job_restarts,
            &mut seen.restarts,
            engine.signal_job().counters().restarts,
        );
        for id in market.book_ids() {
            let v = match market.book(id).state() {
                BookState::Empty => 0,
                BookState::Synced => 1,
                BookState::Resyncing => 2,
            };
            self.book_state
                .get_or_create(&TopicLabel {
                    topic: market.book_topic(id).to_string(),
                })
                .set(v);
        }
        self.up.set(if engine.is_running() { 1 } else { 0 });
        if let Some(o) = engine.orders() {
            let c = o.counters();
            for (name, now) in [
                ("sent", c.sent),
                ("acked", c.acked),
                ("rejected", c.rejected),
                ("ambiguous", c.ambiguous),
                ("duplicate_id", c.duplicate_ids),
                ("rate_limited", c.rate_limited),
                ("fills", c.fills),
                ("duplicate_fills", c.duplicate_fills),
            ] {
                let counter = self.orders.get_or_create(&EventLabel {
                    event: name.to_string(),
                });
                let seen_now = seen.orders.entry(name).or_default();
                add(&counter, seen_now, now);
            }
            add(
                &self.reconcile_diffs,
                &mut seen.reconcile_diffs,
                c.reconcile_diffs,
            );
            self.trading_halted
                .set(if o.halted().is_some() { 1 } else { 0 });
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn observe_loop_lag(&self, lag: std::time::Duration) {
        self.loop_lag.observe(lag.as_secs_f64());
        let ns = lag.as_nanos() as u64;
        self.loop_lag_max_ns.fetch_max(ns, Ordering::Relaxed);
        self.loop_lag_recent_max_ns.fetch_max(ns, Ordering::Relaxed);
        let _ = self
            .loop_lag_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(ns.max(1));
    }

    /// Time from a frame's read off the socket to the engine having applied it.
    pub fn observe_ingest(&self, d: std::time::Duration) {
        let ns = (d.as_nanos() as u64).max(1);
        let _ = self
            .ingest_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(ns);
    }

    pub fn ingest_histogram(&self) -> hdrhistogram::Histogram<u64> {
        self.ingest_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn loop_lag_histogram(&self) -> hdrhistogram::Histogram<u64> {
        self.loop_lag_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The worst loop lag since the last call (for the status page's chart).
    pub fn take_recent_loop_lag_max(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.loop_lag_recent_max_ns.swap(0, Ordering::Relaxed))
    }

    /// The worst loop lag seen since start.
    pub fn loop_lag_max(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.loop_lag_max_ns.load(Ordering::Relaxed))
    }

    pub fn tick_progress(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// Brings a counter family up to counts kept elsewhere (monotonic): each label grows by what its
/// count gained since `seen`.
fn mirror<const N: usize>(
    family: &Family<EventLabel, Counter>,
    seen: &mut std::collections::BTreeMap<&'static str, u64>,
    counts: [(&'static str, u64); N],
) {
    for (name, now) in counts {
        let c = family.get_or_create(&EventLabel {
            event: name.to_string(),
        });
        let s = seen.entry(name).or_default();
        c.inc_by(now.saturating_sub(*s));
        *s = now.max(*s);
    }
}
