//! The venue's state and its handle: the synthetic (or replayed) markets, the topics with their
//! subscribers and last published views, the stepping task, and the router.
//!
//! One stepping task advances the synthetic market every `step_ms` and publishes frames for the
//! topics that have subscribers on a bounded broadcast channel; each connection task forwards
//! the frames of its own topics. A connection that lags behind the channel is closed, as a real
//! venue drops a slow client.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use keel_core::rng::Rng;
use keel_core::wire::topic::{Channel, Topic};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::admin::{
    admin_book, admin_executions, admin_fault, admin_orders, admin_positions, admin_stats,
};
use crate::config::{Category, PUBLISH_CHANNEL_FRAMES, VENUE_DEPTHS, VenueConfig};
use crate::faults::{Fault, Faults};
use crate::market::{BookView, Dynamics, SimCandle, SimTrade, SymbolMarket, SymbolSpec};
use crate::publish::{book_frame, publish_book, publish_klines, publish_ticker, publish_trades};
use crate::replay::ReplayFeed;
use crate::rest::{
    rest_instruments, rest_kline, rest_orderbook, rest_recent_trades, rest_tickers, rest_time,
};
use crate::trade::matching::on_market_step;
use crate::trade::model::{Account, Push};
use crate::trade::rest::private;
use crate::trade::ws::private_ws;
use crate::ws::ws_upgrade;

pub(crate) struct TopicState {
    pub(crate) subscribers: usize,
    pub(crate) u: u64,
    pub(crate) view: BookView,
    pub(crate) last_push_ms: u64,
    pub(crate) skip_next: bool,
    /// Tickers: the values last pushed, to send only what changed.
    pub(crate) last_fields: BTreeMap<&'static str, String>,
    pub(crate) last_forming: Option<SimCandle>,
}

impl TopicState {
    pub(crate) fn new() -> Self {
        TopicState {
            subscribers: 0,
            u: 0,
            view: (Vec::new(), Vec::new()),
            last_push_ms: 0,
            skip_next: false,
            last_fields: BTreeMap::new(),
            last_forming: None,
        }
    }
}

/// The first account's UID; later accounts count up from it.
const FIRST_UID: u64 = 100_000_001;

/// Mixed into the seed of spot markets, so a symbol's spot book is not its linear book.
const SPOT_SEED_SALT: u64 = 0x5f07_5f07;

/// Recent trades kept per symbol for `GET /v5/market/recent-trade` (Bybit serves up to 1000).
pub const RECENT_TRADES_MAX: usize = 1_000;

/// One category's market: its symbols, its topics with their subscribers and last views, and
/// its recent trades. Nothing is shared between categories but the sequence and the RNG.
pub(crate) struct CategoryState {
    pub(crate) markets: BTreeMap<String, SymbolMarket>,
    pub(crate) topics: HashMap<String, TopicState>,
    pub(crate) recent: HashMap<String, VecDeque<SimTrade>>,
}

impl CategoryState {
    fn new(markets: BTreeMap<String, SymbolMarket>) -> Self {
        CategoryState {
            markets,
            topics: HashMap::new(),
            recent: HashMap::new(),
        }
    }
}

pub(crate) struct VenueState {
    pub(crate) rng: Rng,
    /// By [`Category::index`].
    pub(crate) cats: [CategoryState; 2],
    pub(crate) seq: u64,
    pub(crate) faults: Faults,
    /// Trading accounts, found by API key.
    pub(crate) accounts: Vec<Account>,
    /// Private requests per (account, endpoint) inside the rate window, by time (ms).
    pub(crate) rate: HashMap<(u64, String), VecDeque<u64>>,
    pub(crate) rest_sent: VecDeque<Instant>,
    pub(crate) push_speedup: u64,
    /// When set, frames come from capture files instead of the synthetic market.
    pub(crate) replay: Option<ReplayFeed>,
}

#[derive(Debug, Clone)]
pub struct Published {
    pub category: Category,
    pub topic: Arc<str>,
    pub text: Arc<str>,
}

impl VenueState {
    pub(crate) fn cat(&self, c: Category) -> &CategoryState {
        &self.cats[c.index()]
    }

    pub(crate) fn cat_mut(&mut self, c: Category) -> &mut CategoryState {
        &mut self.cats[c.index()]
    }
}

/// A book as its subscribers hold it, prices and sizes as decimal strings, best first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedBook {
    pub u: u64,
    pub bids: Vec<(String, String)>,
    pub asks: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct VenueStats {
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub refused: AtomicU64,
    pub frames_sent: AtomicU64,
    pub rest_requests: AtomicU64,
    pub rest_forbidden: AtomicU64,
    pub lagged_drops: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) config: VenueConfig,
    /// Faults queued from outside the venue's runtime, applied on its next step.
    pub(crate) queued: Mutex<Vec<Fault>>,
    pub(crate) state: Mutex<VenueState>,
    pub(crate) tx: broadcast::Sender<Published>,
    pub(crate) drop_tx: watch::Sender<u64>,
    /// Bumped to close every private connection.
    pub(crate) drop_private_tx: watch::Sender<u64>,
    /// Private pushes for every account's connections: (uid, push).
    pub(crate) private_tx: broadcast::Sender<Arc<(u64, Push)>>,
    pub(crate) epoch_ms: u64,
    pub(crate) started: Instant,
    pub(crate) stats: VenueStats,
}

/// A handle to a running venue; cheap to clone.
#[derive(Clone)]
pub struct Venue {
    pub(crate) inner: Arc<Inner>,
}

impl Venue {
    /// Builds the venue; `epoch_ms` is the wall-clock time that venue time 0 stands for.
    pub fn new(config: VenueConfig, epoch_ms: u64) -> Venue {
        let mut rng = Rng::new(config.seed);
        let dynamics = Dynamics {
            volatility_bps_per_min: config.volatility_bps_per_min,
            step_ms: config.step_ms,
        };
        let mut linear = BTreeMap::new();
        let mut spot = BTreeMap::new();
        for s in &config.symbols {
            let m = SymbolMarket::with_dynamics(
                SymbolSpec::guess(s),
                &mut rng,
                epoch_ms,
                config.seed,
                dynamics,
            );
            linear.insert(s.clone(), m);
            // Spot is its own market: its own book, prices and trades from its own seed.
            let m = SymbolMarket::with_dynamics(
                SymbolSpec::guess_spot(s),
                &mut rng,
                epoch_ms,
                config.seed ^ SPOT_SEED_SALT,
                dynamics,
            );
            spot.insert(s.clone(), m);
        }
        let (tx, _) = broadcast::channel(PUBLISH_CHANNEL_FRAMES);
        let (drop_tx, _) = watch::channel(0);
        let (drop_private_tx, _) = watch::channel(0);
        let (private_tx, _) = broadcast::channel(PUBLISH_CHANNEL_FRAMES);
        Venue {
            inner: Arc::new(Inner {
                queued: Mutex::new(Vec::new()),
                state: Mutex::new(VenueState {
                    rng,
                    cats: [CategoryState::new(linear), CategoryState::new(spot)],
                    seq: 1_000_000,
                    faults: Faults::default(),
                    accounts: config
                        .accounts
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            Account::new(
                                FIRST_UID + i as u64,
                                a.api_key.clone(),
                                a.api_secret.clone(),
                                a.balances.iter().cloned().collect(),
                            )
                        })
                        .collect(),
                    rate: HashMap::new(),
                    rest_sent: VecDeque::new(),
                    push_speedup: config.push_speedup.max(1),
                    replay: None,
                }),
                config,
                tx,
                drop_tx,
                drop_private_tx,
                private_tx,
                epoch_ms,
                started: Instant::now(),
                stats: VenueStats::default(),
            }),
        }
    }

    /// A venue that serves recorded frames (see [`ReplayFeed`]) instead of a synthetic market.
    pub fn replaying(config: VenueConfig, feed: ReplayFeed, epoch_ms: u64) -> Venue {
        let v = Venue::new(
            VenueConfig {
                symbols: Vec::new(),
                ..config
            },
            epoch_ms,
        );
        v.state().replay = Some(feed);
        v
    }

    /// An account's truth as `/admin/{orders,executions,positions}` serves it: `what` is
    /// "orders", "executions" or "positions".
    pub fn account_json(&self, api_key: Option<&str>, what: &str) -> Option<String> {
        crate::admin::account_json(self, api_key, what)
    }

    pub fn stats(&self) -> &VenueStats {
        &self.inner.stats
    }

    pub fn symbols(&self) -> &[String] {
        &self.inner.config.symbols
    }

    /// The wall-clock time venue time 0 stands for: instruments list it as their launch time.
    pub fn epoch_ms(&self) -> u64 {
        self.inner.epoch_ms
    }

    /// Venue time in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.epoch_ms + self.inner.started.elapsed().as_millis() as u64
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, VenueState> {
        // A panic while holding the lock would be a venue bug; keep serving what is there.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The book a linear client of `orderbook.{depth}.{symbol}` holds after the last frame.
    pub fn published_book(&self, symbol: &str, depth: u16) -> Option<PublishedBook> {
        self.published_book_in(Category::Linear, symbol, depth)
    }

    /// The book a client of `orderbook.{depth}.{symbol}` in `category` holds after the last
    /// published frame.
    pub fn published_book_in(
        &self,
        category: Category,
        symbol: &str,
        depth: u16,
    ) -> Option<PublishedBook> {
        let st = self.state();
        let cs = st.cat(category);
        let spec = &cs.markets.get(symbol)?.spec;
        let t = cs.topics.get(&format!("orderbook.{depth}.{symbol}"))?;
        let conv = |v: &[(i64, u64)]| {
            v.iter()
                .map(|(p, q)| (spec.px(*p).to_string(), spec.qty(*q).to_string()))
                .collect()
        };
        Some(PublishedBook {
            u: t.u,
            bids: conv(&t.view.0),
            asks: conv(&t.view.1),
        })
    }

    pub(crate) fn restart_books(&self) {
        let mut st = self.state();
        let st = &mut *st;
        let now_ms = self.now_ms();
        for category in Category::ALL {
            let cs = &mut st.cats[category.index()];
            // Sorted: the same frames in the same order on every run.
            let mut topics: Vec<String> = cs
                .topics
                .keys()
                .filter(|t| t.starts_with("orderbook."))
                .cloned()
                .collect();
            topics.sort();
            for topic in topics {
                let Ok(Topic {
                    channel: Channel::OrderBook { depth },
                    symbol,
                }) = Topic::parse(&topic)
                else {
                    continue;
                };
                let Some(m) = cs.markets.get(symbol) else {
                    continue;
                };
                let view = m.top(depth as usize);
                st.seq += 1;
                let t = cs.topics.get_mut(&topic).expect("listed above");
                t.u = 1;
                t.view = view;
                if t.subscribers > 0 {
                    let text = book_frame(
                        category, &m.spec, &topic, "snapshot", now_ms, &t.view, 1, st.seq,
                    );
                    let _ = self.inner.tx.send(Published {
                        category,
                        topic: topic.as_str().into(),
                        text: text.into(),
                    });
                }
            }
        }
    }

    /// Hands every account's waiting pushes to the private connections. A `Filled` order push
    /// goes twice while a `duplicate_filled` fault lasts, the second as Bybit's quirk writes it.
    pub(crate) fn flush_pushes(&self, st: &mut VenueState) {
        let dup = st
            .faults
            .duplicate_filled_until
            .is_some_and(|t| Instant::now() < t);
        for a in &mut st.accounts {
            while let Some(p) = a.pushes.pop_front() {
                let twin =
                    (dup && p.topic == "order" && p.data.contains(r#""orderStatus":"Filled""#))
                        .then(|| Push {
                            data: p
                                .data
                                .replace(
                                    r#""cancelType":"UNKNOWN""#,
                                    r#""cancelType":"CancelByUser""#,
                                )
                                .replace(
                                    r#""rejectReason":"EC_NoError""#,
                                    r#""rejectReason":"EC_OrigClOrdIDDoesNotExist""#,
                                ),
                            ..p.clone()
                        });
                let _ = self.inner.private_tx.send(Arc::new((a.uid, p)));
                if let Some(t) = twin {
                    let _ = self.inner.private_tx.send(Arc::new((a.uid, t)));
                }
            }
        }
    }

    /// Starts the stepping task; it ends when `shutdown` flips to true.
    pub fn spawn_stepper(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let venue = self.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(venue.inner.config.step_ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                    _ = tick.tick() => venue.step(),
                }
            }
        })
    }

    /// One market step and the frames it causes.
    pub fn step(&self) {
        let queued =
            std::mem::take(&mut *self.inner.queued.lock().unwrap_or_else(|p| p.into_inner()));
        for f in queued {
            self.apply_fault(f);
        }
        let now_ms = self.now_ms();
        let seed = self.inner.config.seed;
        let mut out = Vec::new();
        {
            let mut st = self.state();
            let st = &mut *st;
            if let Some(feed) = st.replay.as_mut() {
                let linear = &st.cats[Category::Linear.index()];
                let waiting = feed.hold_until_subscribed
                    && feed.passes == 0
                    && !feed
                        .topics
                        .iter()
                        .all(|t| linear.topics.get(t).is_some_and(|t| t.subscribers > 0));
                let due = if waiting {
                    Vec::new()
                } else {
                    feed.due(now_ms)
                };
                for r in due {
                    if linear
                        .topics
                        .get(&r.topic)
                        .is_some_and(|t| t.subscribers > 0)
                    {
                        out.push(Published {
                            category: Category::Linear,
                            topic: r.topic.into(),
                            text: r.text.into(),
                        });
                    }
                }
            }
            for category in Category::ALL {
                let cs = &mut st.cats[category.index()];
                for (symbol, m) in cs.markets.iter_mut() {
                    m.step(&mut st.rng, now_ms, seed);
                    // Resting orders the market reached fill before the step is published; the
                    // fills print trades of their own after the step's.
                    if !st.accounts.is_empty() {
                        let trades = std::mem::take(&mut m.fresh_trades);
                        for a in &mut st.accounts {
                            on_market_step(a, category, symbol, m, &trades, now_ms, &mut st.seq);
                        }
                        let printed = std::mem::replace(&mut m.fresh_trades, trades);
                        m.fresh_trades.extend(printed);
                    }
                }
                let symbols: Vec<String> = cs.markets.keys().cloned().collect();
                for symbol in &symbols {
                    for depth in VENUE_DEPTHS {
                        publish_book(st, category, symbol, depth, now_ms, &mut out);
                    }
                    publish_klines(st, category, symbol, now_ms, &mut out);
                    publish_ticker(st, category, symbol, now_ms, &mut out);
                    publish_trades(st, category, symbol, now_ms, &mut out);
                }
            }
            self.flush_pushes(st);
        }
        for p in out {
            // No receivers is fine: nobody is subscribed.
            let _ = self.inner.tx.send(p);
        }
    }

    /// The router: REST, WebSocket and admin on one address.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v5/public/{category}", get(ws_upgrade))
            .route("/v5/market/time", get(rest_time))
            .route("/v5/market/instruments-info", get(rest_instruments))
            .route("/v5/market/orderbook", get(rest_orderbook))
            .route("/v5/market/kline", get(rest_kline))
            .route("/v5/market/tickers", get(rest_tickers))
            .route("/v5/market/recent-trade", get(rest_recent_trades))
            .route("/v5/private", get(private_ws))
            .route("/v5/order/create", post(private))
            .route("/v5/order/create-batch", post(private))
            .route("/v5/order/amend", post(private))
            .route("/v5/order/cancel", post(private))
            .route("/v5/order/cancel-all", post(private))
            .route("/v5/order/realtime", get(private))
            .route("/v5/order/history", get(private))
            .route("/v5/execution/list", get(private))
            .route("/v5/position/list", get(private))
            .route("/v5/account/wallet-balance", get(private))
            .route("/v5/account/fee-rate", get(private))
            .route("/v5/account/info", get(private))
            .route("/v5/user/query-api", get(private))
            .route("/v5/asset/coin/query-info", get(private))
            .route("/admin/orders", get(admin_orders))
            .route("/admin/executions", get(admin_executions))
            .route("/admin/positions", get(admin_positions))
            .route("/admin/fault", post(admin_fault))
            .route("/admin/book", get(admin_book))
            .route("/admin/stats", get(admin_stats))
            .with_state(self.clone())
    }
}
