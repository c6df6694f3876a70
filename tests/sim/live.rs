//! Live trading on the simulated network: the bot signs orders to the venue's private API and
//! follows them on its private stream, while the venue loses acks, answers late, stalls its
//! stream, storms 10006 and 10016, pushes `Filled` twice, forgets its recent orders, sees a
//! skewed clock, and the bot's process dies and restarts on the same store. After each: every
//! venue order is in the store once and resolved, every venue execution is a stored fill, the
//! positions the fills make equal the venue's, no fill was written twice, and every order is
//! resolved within a bound once the faults end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::engine::{Output, StoreWrite};
use keel_core::trading::broker::{Broker, BrokerConfig, Fill};
use keel_core::trading::orders::{ExecRecord, OrderRecord, OrdersConfig};
use keel_core::trading::strategy::{EmaCross, StrategyConfig};
use keel_core::{Dec, Engine, EngineConfig, Time};
use keel_runtime::config::Credentials;
use keel_runtime::driver::{Driver, DriverConfig, LagProbe, LiveStore, Observer};
use keel_runtime::metrics::Metrics;
use keel_runtime::ops::HealthView;
use keel_runtime::transport::{InlinePool, Transports};
use keel_sim::harness::{self, FreezeDetector, TurmoilHttp, VENUE_HOST, VENUE_PORT, turmoil};
use keel_sim::transport::{SimConnector, SimHttp};
use keel_venue::{AccountConfig, Fault, Venue, VenueConfig};
use tokio::sync::watch;

const KEY: &str = "simkey";
const SECRET: &str = "simsecretsimsecretsimsecret";
const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];

/// The store as the bot writes it, kept outside the bot so it survives the bot's crashes.
#[derive(Default)]
pub struct MemStore {
    pub orders: BTreeMap<String, OrderRecord>,
    pub fills: BTreeMap<String, ExecRecord>,
    pub fills_written_twice: u32,
}

struct Shared(Arc<Mutex<MemStore>>);

impl LiveStore for Shared {
    fn write(&mut self, w: &StoreWrite) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        match w {
            StoreWrite::Order(r) => {
                s.orders.insert(r.link_id.clone(), r.clone());
            }
            StoreWrite::Fill(x) => {
                if s.fills.insert(x.exec_id.clone(), x.clone()).is_some() {
                    s.fills_written_twice += 1;
                }
            }
        }
        Ok(())
    }
}

/// What the bot's engine showed at its last turn.
#[derive(Default, Debug, Clone)]
pub struct Seen {
    pub creates: u64,
    /// Creates sent per orderLinkId, over every life of the bot.
    pub sent_by_link: BTreeMap<String, u32>,
    pub working: usize,
    pub halted: Option<String>,
    pub reconciles: u64,
    pub private_live: bool,
    /// The private stream is up and reconciled: orders may go out.
    pub stream_ready: bool,
    pub starts: u32,
    /// The order machine's counters, summed over the bot's lives.
    pub counters: keel_core::trading::orders::OrdersCounters,
    life: keel_core::trading::orders::OrdersCounters,
    life_of: u32,
}

struct Watch(Arc<Mutex<Seen>>);

impl Observer for Watch {
    fn output(&mut self, _now: Time, o: &Output) {
        if let Output::Private(r) = o
            && r.path == "/v5/order/create"
        {
            let mut s = self.0.lock().unwrap();
            s.creates += 1;
            let link = serde_json::from_str::<serde_json::Value>(&r.payload)
                .ok()
                .and_then(|v| v["orderLinkId"].as_str().map(str::to_string))
                .unwrap_or_default();
            *s.sent_by_link.entry(link).or_default() += 1;
        }
    }

    fn turn(&mut self, _now: Time, e: &Engine) {
        let mut s = self.0.lock().unwrap();
        if let Some(o) = e.orders() {
            s.working = o.working().count();
            s.halted = o.halted().map(str::to_string);
            s.reconciles = o.counters().reconciles;
            s.stream_ready = o.stream_ready();
            let now = o.counters().clone();
            let before = std::mem::replace(&mut s.life, now.clone());
            // A new life starts its counters at zero.
            // A new life starts its counters at zero.
            let base = if s.life_of != s.starts {
                s.life_of = s.starts;
                Default::default()
            } else {
                before
            };
            let add = |t: &mut u64, n: u64, b: u64| *t += n.saturating_sub(b);
            let c = &mut s.counters;
            add(&mut c.sent, now.sent, base.sent);
            add(&mut c.ambiguous, now.ambiguous, base.ambiguous);
            add(&mut c.duplicate_ids, now.duplicate_ids, base.duplicate_ids);
            add(&mut c.rate_limited, now.rate_limited, base.rate_limited);
            add(
                &mut c.duplicate_fills,
                now.duplicate_fills,
                base.duplicate_fills,
            );
            add(
                &mut c.reconcile_diffs,
                now.reconcile_diffs,
                base.reconcile_diffs,
            );
            add(&mut c.clock_resyncs, now.clock_resyncs, base.clock_resyncs);
            add(&mut c.lookups, now.lookups, base.lookups);
            add(&mut c.reconciles, now.reconciles, base.reconciles);
        }
        s.private_live = e.links().last().is_some_and(|l| l.is_live());
    }
}

pub struct LiveRun<'a> {
    pub sim: turmoil::Sim<'a>,
    pub store: Arc<Mutex<MemStore>>,
    pub seen: Arc<Mutex<Seen>>,
    venue: Arc<Mutex<Option<Venue>>>,
    /// Added to the bot's wall clock (ms).
    pub skew_ms: Arc<AtomicI64>,
    detector: FreezeDetector,
}

fn config(seed: u64) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        format!("ws://{VENUE_HOST}:{VENUE_PORT}/v5/public/linear"),
        SYMBOLS.iter().map(|s| s.to_string()).collect(),
    );
    cfg.seed = seed;
    cfg.auto_execute = true;
    // A strategy that changes its mind whenever the price crosses the last close.
    cfg.strategy = StrategyConfig {
        ema_cross: Some(EmaCross {
            fast: 1,
            slow: 2,
            full_gap: 0.0001,
        }),
        rsi_reversion: None,
        confidence_min: 0.0,
    };
    cfg.signal_job.every_ms = 250;
    cfg.private_url = Some(format!("ws://{VENUE_HOST}:{VENUE_PORT}/v5/private"));
    cfg
}

impl<'a> LiveRun<'a> {
    pub fn new(seed: u64, duration: Duration) -> LiveRun<'a> {
        let mut sim = harness::builder(seed, duration).build();
        let venue_slot: Arc<Mutex<Option<Venue>>> = Arc::new(Mutex::new(None));
        let slot = venue_slot.clone();
        sim.host(VENUE_HOST, move || {
            let slot = slot.clone();
            let mut vc = VenueConfig::new(SYMBOLS.iter().map(|s| s.to_string()).collect());
            vc.seed = seed;
            vc.volatility_bps_per_min = 60.0;
            vc.accounts.push(AccountConfig {
                api_key: KEY.into(),
                api_secret: SECRET.into(),
                balances: vec![("USDT".into(), Dec::from_int(1_000_000))],
            });
            async move {
                let venue = Venue::new(vc, harness::sim_wall_ms());
                *slot.lock().unwrap() = Some(venue.clone());
                harness::serve_venue(venue).await
            }
        });
        let store: Arc<Mutex<MemStore>> = Default::default();
        let seen: Arc<Mutex<Seen>> = Default::default();
        let skew_ms = Arc::new(AtomicI64::new(0));
        let (st, sn, sk) = (store.clone(), seen.clone(), skew_ms.clone());
        sim.host("bot", move || {
            let (store, seen, skew) = (st.clone(), sn.clone(), sk.clone());
            async move {
                seen.lock().unwrap().starts += 1;
                let mut cfg = config(seed);
                // Everything the store holds, as a restart reads it.
                let (unfinished, fills, next_seq) = {
                    let s = store.lock().unwrap();
                    let unfinished: Vec<(OrderRecord, Vec<ExecRecord>)> = s
                        .orders
                        .values()
                        .filter(|o| !o.stage.is_final())
                        .map(|o| {
                            let f = s
                                .fills
                                .values()
                                .filter(|x| x.link_id == o.link_id)
                                .cloned()
                                .collect();
                            (o.clone(), f)
                        })
                        .collect();
                    let fills: Vec<ExecRecord> = s.fills.values().cloned().collect();
                    let next = s.orders.values().map(|o| o.seq + 1).max().unwrap_or(0);
                    (unfinished, fills, next)
                };
                cfg.orders_next_seq = next_seq;
                cfg.orders = Some(OrdersConfig {
                    link_prefix: "ksim".into(),
                    ..Default::default()
                });
                cfg.paper = false;
                let mut engine = Engine::new(cfg, Time::ZERO).map_err(|e| e.to_string())?;
                let mut broker = Broker::new(BrokerConfig::default());
                for x in &fills {
                    broker.apply_fill(&Fill::from(x));
                }
                for p in broker.positions() {
                    engine.restore_position(p.clone());
                }
                for (rec, execs) in unfinished {
                    engine.resume_order(Time::ZERO, rec, execs);
                }
                let newest = fills.iter().map(|f| f.ts_ms).max();
                engine.remember_fills(fills.into_iter().map(|f| f.exec_id), newest);
                let transports = Transports {
                    connector: Arc::new(SimConnector),
                    http: Arc::new(SimHttp(TurmoilHttp::default())),
                    compute: Arc::new(InlinePool {
                        cost: Duration::from_millis(2),
                    }),
                };
                let (health_tx, _health_rx) = watch::channel(Arc::new(HealthView::starting()));
                let (_shutdown, shutdown_rx) = watch::channel(false);
                let wall = move || {
                    (harness::sim_wall_ms() as i64 + skew.load(Ordering::Relaxed)).max(0) as u64
                };
                let driver = Driver::new(
                    engine,
                    tokio::time::Instant::now(),
                    DriverConfig {
                        rest_base: format!("http://{VENUE_HOST}:{VENUE_PORT}"),
                        write_queue_frames_max: 256,
                        wall_ms: Arc::new(wall),
                        lag_probe: LagProbe::Timer,
                    },
                    transports,
                    Vec::new(),
                    Arc::new(Metrics::new()),
                    health_tx,
                )
                .with_credentials(Some(Credentials {
                    api_key: KEY.into(),
                    api_secret: SECRET.into(),
                }))
                .with_live_store(Box::new(Shared(store)))
                .with_observer(Box::new(Watch(seen)));
                let _ = driver.run(shutdown_rx).await;
                Ok(())
            }
        });
        LiveRun {
            sim,
            store,
            seen,
            venue: venue_slot,
            skew_ms,
            detector: FreezeDetector::default(),
        }
    }

    pub fn run_for(&mut self, d: Duration) -> Result<(), String> {
        let until = self.sim.elapsed() + d;
        while self.sim.elapsed() < until {
            self.detector.step(&mut self.sim)?;
        }
        Ok(())
    }

    pub fn fault(&self, f: Fault) {
        if let Some(v) = self.venue.lock().unwrap().as_ref() {
            v.queue_fault(f);
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    fn venue_truth(&self, what: &str) -> Vec<serde_json::Value> {
        let v = self.venue.lock().unwrap();
        let text = v.as_ref().unwrap().account_json(Some(KEY), what).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The faults are over: within `bound` every order is resolved and the private stream is
    /// back and reconciled; then the store is checked against the venue.
    pub fn settle_and_check(&mut self, bound: Duration) -> Result<String, String> {
        self.fault(Fault::Clear);
        self.skew_ms.store(0, Ordering::Relaxed);
        // Summed over the bot's lives: a restart does not start the count again.
        let reconciles = self.seen().counters.reconciles;
        let start = self.sim.elapsed();
        loop {
            self.run_for(Duration::from_millis(500))?;
            let s = self.seen();
            if s.working == 0 && s.private_live && s.counters.reconciles > reconciles {
                break;
            }
            if std::env::var("KEEL_DEBUG").is_ok() {
                eprintln!("{:?} settle: {s:?}", self.sim.elapsed());
            }
            if self.sim.elapsed() - start > bound {
                return Err(format!("not settled {bound:?} after the faults: {s:?}"));
            }
        }
        if let Some(h) = self.seen().halted {
            return Err(format!("trading halted: {h}"));
        }
        self.check()
    }

    pub fn check(&self) -> Result<String, String> {
        let orders = self.venue_truth("orders");
        let executions = self.venue_truth("executions");
        let positions = self.venue_truth("positions");
        let s = self.store.lock().unwrap();
        if s.fills_written_twice > 0 {
            return Err(format!("{} fills written twice", s.fills_written_twice));
        }
        if let Some((link, n)) = self
            .seen
            .lock()
            .unwrap()
            .sent_by_link
            .iter()
            .find(|(_, n)| **n > 1)
        {
            return Err(format!("orderLinkId {link} sent {n} times"));
        }
        let mut links = std::collections::BTreeSet::new();
        for o in &orders {
            let link = o["orderLinkId"].as_str().unwrap_or("");
            if !links.insert(link.to_string()) {
                return Err(format!("orderLinkId {link} made twice at the venue"));
            }
            let Some(rec) = s.orders.get(link) else {
                return Err(format!("venue order {link} is not in the store"));
            };
            if rec.order_id.as_deref() != o["orderId"].as_str() {
                return Err(format!(
                    "{link}: store has {:?}, venue {}",
                    rec.order_id, o["orderId"]
                ));
            }
            if !rec.stage.is_final() {
                return Err(format!("{link} unresolved: {:?}", rec.stage));
            }
            let cum = Dec::parse(o["cumExecQty"].as_str().unwrap_or("0")).unwrap_or(Dec::ZERO);
            if rec.cum_qty != cum {
                return Err(format!(
                    "{link}: filled {} here, {cum} at the venue",
                    rec.cum_qty
                ));
            }
        }
        for x in &executions {
            let id = x["execId"].as_str().unwrap_or("");
            if !s.fills.contains_key(id) {
                return Err(format!("venue execution {id} missing from the store"));
            }
        }
        if s.fills.len() != executions.len() {
            return Err(format!(
                "{} fills stored, {} executions at the venue",
                s.fills.len(),
                executions.len()
            ));
        }
        let mut broker = Broker::new(BrokerConfig::default());
        for x in s.fills.values() {
            broker.apply_fill(&Fill::from(x));
        }
        for p in &positions {
            let symbol = p["symbol"].as_str().unwrap_or("");
            let size = Dec::parse(p["size"].as_str().unwrap_or("0")).unwrap_or(Dec::ZERO);
            let venue = if p["side"] == "Sell" {
                Dec::ZERO.checked_sub(size).unwrap()
            } else {
                size
            };
            let ours = broker.position(symbol).map_or(Dec::ZERO, |q| q.qty);
            if ours != venue {
                return Err(format!(
                    "{symbol}: position {ours} here, {venue} at the venue"
                ));
            }
        }
        if orders.len() < 2 {
            return Err(format!("the bot hardly traded: {} orders", orders.len()));
        }
        let seen = self.seen();
        let c = &seen.counters;
        Ok(format!(
            "{} venue orders, {} executions, {} creates sent ({} orderLinkIds, each once), {} starts; ambiguous {}, duplicate ids {}, rate limited {}, duplicate fills {}, reconcile diffs {}, clock resyncs {}, look-ups {}",
            orders.len(),
            executions.len(),
            seen.creates,
            seen.sent_by_link.len(),
            seen.starts,
            c.ambiguous,
            c.duplicate_ids,
            c.rate_limited,
            c.duplicate_fills,
            c.reconcile_diffs,
            c.clock_resyncs,
            c.lookups
        ))
    }
}
