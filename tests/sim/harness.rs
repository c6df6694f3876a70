//! The bot and the venue on a turmoil network, and what the scenarios observe.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::engine::health::Overall;
use keel_core::engine::{Event, Output};
use keel_core::market::book::BookState;
use keel_core::trading::compute::Work;
use keel_core::{Engine, EngineConfig, Time};
use keel_runtime::driver::{ConsumerTx, Driver, DriverConfig, LagProbe, Observer};
use keel_runtime::metrics::Metrics;
use keel_runtime::ops::HealthView;
use keel_runtime::transport::{InlinePool, Transports};
use keel_sim::harness::{self, FreezeDetector, TurmoilHttp, VENUE_HOST, VENUE_PORT, turmoil};
use keel_sim::transport::{SimConnector, SimHttp};
use keel_venue::PublishedBook;
use keel_venue::{Fault, Venue, VenueConfig};
use tokio::sync::{mpsc, watch};

/// What a consumer does with each event.
#[derive(Clone, Debug)]
pub enum Consumer {
    Quick,
    /// Each event costs this much virtual time (an async consumer doing slow work).
    Slow(Duration),
    /// Each event blocks the thread for this long: the bug keel exists to catch.
    Blocking(Duration),
    /// Each event costs as many virtual ms as the cell says, changed while the run goes on.
    Dynamic(Arc<std::sync::atomic::AtomicU64>),
}

pub struct Opts {
    pub symbols: Vec<String>,
    pub config: Box<dyn Fn(&mut EngineConfig)>,
    pub compute_cost: Duration,
    pub consumer: Consumer,
    pub consumer_events_max: usize,
    pub venue_rest_limit: usize,
    pub duration: Duration,
    pub jitter: bool,
    pub watchdog: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            config: Box::new(|_| {}),
            compute_cost: Duration::from_millis(5),
            consumer: Consumer::Quick,
            consumer_events_max: 256,
            venue_rest_limit: 600,
            duration: Duration::from_secs(3600),
            jitter: false,
            watchdog: false,
        }
    }
}

/// The engine as the observer saw it, plus invariants checked on every turn.
#[derive(Default, Debug)]
pub struct Probe {
    pub now: Duration,
    pub overall: Option<Overall>,
    pub live: bool,
    pub books: usize,
    pub books_synced: usize,
    pub frames: u64,
    pub reconnects: u64,
    pub connects: Vec<Duration>,
    pub http_sent: Vec<(Duration, String)>,
    pub rest_paused: bool,
    pub job_restarts: u64,
    pub job_overdue: u64,
    pub consumer_drops: u64,
    pub pings: u64,
    pub pong_timeouts: u64,
    pub idle_timeouts: u64,
    pub signal_cycles: u64,
    pub unsynced_seen: BTreeSet<String>,
    /// Components not running at the last turn, with their status.
    pub not_running: Vec<String>,
    pub trace: u64,
    pub outputs: u64,
    pub violations: Vec<String>,
    closes: BTreeSet<(String, String, u64)>,
    pub order_ids: BTreeSet<String>,
    pending_views: Vec<String>,
    unsynced_before: BTreeSet<String>,
    /// topic -> (u, bids, asks), refreshed when asked for.
    pub book_copies: BTreeMap<String, PublishedBook>,
    pub capture_books: bool,
    /// The slowest simulation step on the real clock, and how many steps ran.
    pub worst_step: Duration,
    pub steps: u64,
}

/// A tiny FNV-1a, so the trace hash is the same on every platform and run.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

struct ProbeObserver(Arc<Mutex<Probe>>);

/// The store as the probe sees it: every intent's link id must be new.
struct ProbeStore(Arc<Mutex<Probe>>);

impl keel_runtime::driver::LiveStore for ProbeStore {
    fn write(&mut self, w: &keel_core::engine::StoreWrite) -> Result<(), String> {
        let mut p = self.0.lock().unwrap();
        if let keel_core::engine::StoreWrite::Order(r) = w
            && r.stage == keel_core::trading::orders::Stage::Intent
            && !p.order_ids.insert(r.link_id.clone())
        {
            p.violations
                .push(format!("client order id repeated: {}", r.link_id));
        }
        Ok(())
    }
}

impl Observer for ProbeObserver {
    fn output(&mut self, now: Time, o: &Output) {
        let mut p = self.0.lock().unwrap();
        let at = Duration::from_nanos(now.as_nanos());
        let mut h = Fnv(p.trace ^ 0xcbf2_9ce4_8422_2325);
        now.as_nanos().hash(&mut h);
        format!("{o:?}").hash(&mut h);
        p.trace = h.finish();
        p.outputs += 1;
        match o {
            Output::Connect { .. } => p.connects.push(at),
            Output::Http { path, .. } => p.http_sent.push((at, path.clone())),
            Output::Compute {
                work: Work::SignalCycle(keel_core::trading::compute::Cycle { views, .. }),
                ..
            } => {
                p.signal_cycles += 1;
                let symbols: Vec<String> = views.iter().map(|v| v.symbol.clone()).collect();
                p.pending_views.extend(symbols);
            }
            Output::Event(Event::CandleClosed {
                symbol,
                interval,
                candle,
            }) => {
                let key = (
                    symbol.clone(),
                    interval.as_str().to_string(),
                    candle.bar.start_ms,
                );
                if !p.closes.insert(key.clone()) {
                    p.violations.push(format!("candle emitted twice: {key:?}"));
                }
            }
            _ => {}
        }
    }

    fn turn(&mut self, now: Time, e: &Engine) {
        let mut p = self.0.lock().unwrap();
        p.now = Duration::from_nanos(now.as_nanos());
        p.overall = Some(e.overall(now));
        p.not_running = e
            .health()
            .components()
            .filter(|(_, c)| c.status != keel_core::engine::health::Status::Running)
            .map(|(n, c)| format!("{n}={}", c.status.as_str()))
            .collect();
        p.live = e.links().iter().all(|l| l.is_live());
        let m = e.market();
        let mut unsynced = BTreeSet::new();
        let (mut books, mut synced) = (0, 0);
        for id in m.book_ids() {
            books += 1;
            let b = m.book(id);
            if b.state() == BookState::Synced {
                synced += 1;
                if let (Ok(bid), Ok(ask)) = (b.best_bid(), b.best_ask())
                    && bid.px >= ask.px
                {
                    let v = format!("readable book {} crossed at {:?}", m.book_topic(id), p.now);
                    p.violations.push(v);
                }
            } else {
                unsynced.insert(m.book_symbol(id).to_string());
                p.unsynced_seen.insert(m.book_topic(id).to_string());
            }
        }
        for s in std::mem::take(&mut p.pending_views) {
            if unsynced.contains(&s) && p.unsynced_before.contains(&s) {
                p.violations.push(format!(
                    "signal cycle read {s} while its book was out of sync"
                ));
            }
        }
        p.unsynced_before = unsynced;
        p.books = books;
        p.books_synced = synced;
        p.frames = e.counters().frames;
        p.reconnects = e.reconnects();
        p.rest_paused = e.rest_paused_until().is_some();
        p.job_restarts = e.signal_job().counters().restarts;
        p.job_overdue = e.signal_job().counters().overdue;
        p.consumer_drops = e.counters().consumer_drops;
        p.pings = e.links().iter().map(|l| l.counters().pings).sum();
        p.pong_timeouts = e.links().iter().map(|l| l.counters().pong_timeouts).sum();
        p.idle_timeouts = e.links().iter().map(|l| l.counters().idle_timeouts).sum();
        if p.capture_books {
            p.capture_books = false;
            for id in m.book_ids() {
                let b = m.book(id);
                let conv = |it: &mut dyn Iterator<Item = keel_core::Level>| {
                    it.map(|l| (l.px.to_string(), l.qty.to_string()))
                        .collect::<Vec<_>>()
                };
                p.book_copies.insert(
                    m.book_topic(id).to_string(),
                    PublishedBook {
                        u: b.last_u().unwrap_or(0),
                        bids: conv(&mut b.raw_bids()),
                        asks: conv(&mut b.raw_asks()),
                    },
                );
            }
        }
    }
}

pub struct SimRun<'a> {
    pub sim: turmoil::Sim<'a>,
    pub probe: Arc<Mutex<Probe>>,
    pub metrics: Arc<Metrics>,
    venue: Arc<Mutex<Option<Venue>>>,
    shutdown: watch::Sender<bool>,
    pub detector: FreezeDetector,
}

impl<'a> SimRun<'a> {
    pub fn new(seed: u64, opts: Opts) -> SimRun<'a> {
        let mut b = harness::builder(seed, opts.duration);
        if opts.jitter {
            b.min_message_latency(Duration::from_millis(1))
                .max_message_latency(Duration::from_millis(50));
        }
        let mut sim = b.build();
        let venue_slot: Arc<Mutex<Option<Venue>>> = Arc::new(Mutex::new(None));
        let slot = venue_slot.clone();
        let symbols = opts.symbols.clone();
        let rest_limit = opts.venue_rest_limit;
        sim.host(VENUE_HOST, move || {
            let slot = slot.clone();
            let mut vc = VenueConfig::new(symbols.clone());
            vc.seed = seed;
            vc.rest_limit = rest_limit;
            async move {
                let venue = Venue::new(vc, harness::sim_wall_ms());
                *slot.lock().unwrap() = Some(venue.clone());
                harness::serve_venue(venue).await
            }
        });

        let mut cfg = EngineConfig::new(
            format!("ws://{VENUE_HOST}:{VENUE_PORT}/v5/public/linear"),
            opts.symbols.clone(),
        );
        cfg.seed = seed;
        (opts.config)(&mut cfg);
        let probe = Arc::new(Mutex::new(Probe::default()));
        let metrics = Arc::new(Metrics::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let p = probe.clone();
        let m = metrics.clone();
        let compute_cost = opts.compute_cost;
        let consumer = opts.consumer;
        let events_max = opts.consumer_events_max;
        let watchdog = opts.watchdog;
        sim.client("bot", async move {
            let engine = Engine::new(cfg, Time::ZERO).map_err(|e| e.to_string())?;
            let (tx, mut rx) = mpsc::channel(events_max);
            tokio::spawn(async move {
                while let Some(_e) = rx.recv().await {
                    match &consumer {
                        Consumer::Quick => {}
                        Consumer::Slow(d) => tokio::time::sleep(*d).await,
                        Consumer::Blocking(d) => std::thread::sleep(*d),
                        Consumer::Dynamic(ms) => {
                            let ms = ms.load(std::sync::atomic::Ordering::Relaxed);
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                        }
                    }
                }
            });
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // Stops the watchdog however the client ends, dropped with the simulation included.
            struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop_guard = StopOnDrop(stop.clone());
            let dog = watchdog.then(|| {
                keel_runtime::run::spawn_watchdog(
                    m.clone(),
                    stop.clone(),
                    Duration::from_millis(keel_runtime::run::WATCHDOG_STALL_MS),
                )
            });
            let transports = Transports {
                connector: Arc::new(SimConnector),
                http: Arc::new(SimHttp(TurmoilHttp::default())),
                compute: Arc::new(InlinePool { cost: compute_cost }),
            };
            let (health_tx, _health_rx) = watch::channel(Arc::new(HealthView::starting()));
            let driver = Driver::new(
                engine,
                tokio::time::Instant::now(),
                DriverConfig {
                    rest_base: format!("http://{VENUE_HOST}:{VENUE_PORT}"),
                    write_queue_frames_max: 256,
                    wall_ms: Arc::new(harness::sim_wall_ms),
                    lag_probe: LagProbe::Timer,
                },
                transports,
                vec![ConsumerTx {
                    name: "sim".into(),
                    tx,
                }],
                m,
                health_tx,
            )
            .with_live_store(Box::new(ProbeStore(p.clone())))
            .with_observer(Box::new(ProbeObserver(p)));
            let _ = driver.run(shutdown_rx).await;
            drop(_stop_guard);
            if let Some(d) = dog {
                let _ = d.join();
            }
            Ok(())
        });
        SimRun {
            sim,
            probe,
            metrics,
            venue: venue_slot,
            shutdown,
            detector: FreezeDetector::default(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    pub fn probe<T>(&self, f: impl FnOnce(&Probe) -> T) -> T {
        f(&self.probe.lock().unwrap())
    }

    pub fn run_for(&mut self, d: Duration) -> Result<(), String> {
        let until = self.sim.elapsed() + d;
        while self.sim.elapsed() < until {
            if self.detector.step(&mut self.sim)? {
                return Err(format!(
                    "the bot stopped by itself at {:?}",
                    self.sim.elapsed()
                ));
            }
        }
        Ok(())
    }

    /// Runs until `pred` holds, failing after `within`; returns how long it took.
    pub fn run_until(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Probe) -> bool,
    ) -> Result<Duration, String> {
        let start = self.sim.elapsed();
        loop {
            if pred(&self.probe.lock().unwrap()) {
                return Ok(self.sim.elapsed() - start);
            }
            if self.sim.elapsed() - start > within {
                let p = self.probe.lock().unwrap();
                return Err(format!(
                    "{what}: not within {within:?} (at {:?}: overall {:?} {:?}, live {}, books {}/{} synced, reconnects {})",
                    self.sim.elapsed(),
                    p.overall,
                    p.not_running,
                    p.live,
                    p.books_synced,
                    p.books,
                    p.reconnects
                ));
            }
            if self.detector.step(&mut self.sim)? {
                return Err(format!(
                    "the bot stopped by itself at {:?}",
                    self.sim.elapsed()
                ));
            }
        }
    }

    pub fn fault(&self, f: Fault) {
        if let Some(v) = self.venue.lock().unwrap().as_ref() {
            v.queue_fault(f);
        }
    }

    pub fn venue_book(&self, symbol: &str, depth: u16) -> Option<PublishedBook> {
        self.venue
            .lock()
            .unwrap()
            .as_ref()?
            .published_book(symbol, depth)
    }

    /// Every book of the bot equal to the venue's own, level for level.
    pub fn books_match_venue(&mut self, depth: u16) -> Result<(), String> {
        self.books_match_venue_within(depth, Duration::from_millis(200))
    }

    /// As [`SimRun::books_match_venue`], retrying until `within` has passed: for a network
    /// whose delayed messages are still arriving.
    pub fn books_match_venue_within(&mut self, depth: u16, within: Duration) -> Result<(), String> {
        let start = self.sim.elapsed();
        self.probe.lock().unwrap().capture_books = true;
        // One more turn of the bot takes the copy; the venue must not step in between, so pick
        // a step where nothing was published: compare, and retry a few times if they differ.
        let mut last = String::new();
        while self.sim.elapsed() - start <= within {
            self.probe.lock().unwrap().capture_books = true;
            self.detector.step(&mut self.sim)?;
            let copies = self.probe.lock().unwrap().book_copies.clone();
            let mut all = true;
            for (topic, mine) in &copies {
                let symbol = topic.rsplit('.').next().unwrap();
                match self.venue_book(symbol, depth) {
                    Some(v) if v == *mine => {}
                    Some(v) => {
                        all = false;
                        last = format!("{topic}: bot u={} venue u={}", mine.u, v.u);
                    }
                    None => {
                        all = false;
                        last = format!("{topic}: the venue has no such book");
                    }
                }
            }
            if all && !copies.is_empty() {
                return Ok(());
            }
        }
        let frames = self.probe.lock().unwrap().frames;
        Err(format!(
            "books differ from the venue's: {last} (bot frames {frames} at {:?})",
            self.sim.elapsed()
        ))
    }

    /// Stops the bot and runs the simulation until it has shut down; returns the probe.
    pub fn finish(mut self) -> Result<Probe, String> {
        let _ = self.shutdown.send(true);
        let start = self.sim.elapsed();
        while !self.detector.step(&mut self.sim)? {
            if self.sim.elapsed() - start > Duration::from_secs(5) {
                return Err("the bot did not shut down within 5 s".into());
            }
        }
        let mut probe = std::mem::take(&mut *self.probe.lock().unwrap());
        probe.worst_step = self.detector.worst;
        probe.steps = self.detector.steps;
        if !probe.violations.is_empty() {
            return Err(format!(
                "invariants broken: {:?}",
                &probe.violations[..probe.violations.len().min(5)]
            ));
        }
        Ok(probe)
    }
}

/// Runs `scenario` for every seed (`KEEL_SEED`, `KEEL_SEEDS`); a failure names the seed and how
/// to reproduce it.
pub fn check(name: &str, default_seed: u64, scenario: impl Fn(u64) -> Result<(), String>) {
    for seed in harness::seeds(default_seed) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(seed)));
        let failure = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        panic!(
            "{name} failed with seed {seed}: {failure}\nreproduce with KEEL_SEED={seed} cargo test --release --test sim {name}"
        );
    }
}
