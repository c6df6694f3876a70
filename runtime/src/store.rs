//! The durable store (SQLite, WAL, full sync): candles, signals, orders, fills, positions.
//! An order and its fills are written in one transaction before anything serves or logs them;
//! after a crash the broker is rebuilt from the fills and the order sequence continues past the
//! last stored id, so no client order id repeats.

use std::collections::BTreeSet;
use std::path::Path;

use keel_core::Dec;
use keel_core::market::kline::Bar;
use keel_core::trading::broker::{Broker, BrokerConfig, Fill, Order, OrderStatus, Position};
use keel_core::trading::strategy::{Signal, SignalSide};
use keel_core::wire::topic::Interval;
use rusqlite::{Connection, params};

pub struct Store {
    pub(crate) conn: Connection,
}

pub(crate) fn e(err: rusqlite::Error) -> String {
    format!("store: {err}")
}

fn side_str(s: SignalSide) -> &'static str {
    match s {
        SignalSide::Buy => "Buy",
        SignalSide::Sell => "Sell",
    }
}

fn side_of(s: &str) -> Result<SignalSide, String> {
    match s {
        "Buy" => Ok(SignalSide::Buy),
        "Sell" => Ok(SignalSide::Sell),
        other => Err(format!("store: bad side {other:?}")),
    }
}

pub(crate) fn dec(s: String) -> Result<Dec, String> {
    Dec::parse(&s).map_err(|x| format!("store: bad decimal {s:?}: {x}"))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, String> {
        let conn = Connection::open(path).map_err(|x| format!("store {}: {x}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS candles (
                 symbol TEXT NOT NULL, interval TEXT NOT NULL, start_ms INTEGER NOT NULL,
                 open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
                 volume TEXT NOT NULL, turnover TEXT NOT NULL,
                 PRIMARY KEY (symbol, interval, start_ms));
             CREATE TABLE IF NOT EXISTS signals (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL, strategy TEXT NOT NULL,
                 side TEXT NOT NULL, confidence REAL NOT NULL, reason TEXT NOT NULL, candle_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS orders (
                 client_order_id TEXT PRIMARY KEY, seed INTEGER NOT NULL, seq INTEGER NOT NULL,
                 symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT NOT NULL, avg_px TEXT NOT NULL,
                 fee TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, ts_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS fills (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
                 symbol TEXT NOT NULL, side TEXT NOT NULL, px TEXT NOT NULL, qty TEXT NOT NULL,
                 fee TEXT NOT NULL, ts_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS positions (
                 symbol TEXT PRIMARY KEY, qty TEXT NOT NULL, avg_entry TEXT NOT NULL,
                 realized_pnl TEXT NOT NULL, fees TEXT NOT NULL);",
        )
        .map_err(e)?;
        crate::store_live::create_tables(&conn)?;
        Ok(Store { conn })
    }

    pub fn insert_candles(
        &mut self,
        symbol: &str,
        interval: Interval,
        bars: &[Bar],
    ) -> Result<usize, String> {
        let tx = self.conn.transaction().map_err(e)?;
        let mut n = 0;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO candles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(e)?;
            for b in bars {
                n += st
                    .execute(params![
                        symbol,
                        interval.as_str(),
                        b.start_ms as i64,
                        b.open.to_string(),
                        b.high.to_string(),
                        b.low.to_string(),
                        b.close.to_string(),
                        b.volume.to_string(),
                        b.turnover.to_string()
                    ])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(n)
    }

    pub fn candle_starts(
        &self,
        symbol: &str,
        interval: Interval,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<BTreeSet<u64>, String> {
        let mut st = self
            .conn
            .prepare_cached("SELECT start_ms FROM candles WHERE symbol = ?1 AND interval = ?2 AND start_ms >= ?3 AND start_ms < ?4")
            .map_err(e)?;
        let rows = st
            .query_map(
                params![symbol, interval.as_str(), from_ms as i64, to_ms as i64],
                |r| r.get::<_, i64>(0),
            )
            .map_err(e)?;
        rows.map(|r| r.map(|v| v as u64).map_err(e)).collect()
    }

    /// The newest `limit` candles, oldest first.
    pub fn load_candles(
        &self,
        symbol: &str,
        interval: Interval,
        limit: usize,
    ) -> Result<Vec<Bar>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT start_ms, open, high, low, close, volume, turnover FROM candles
                 WHERE symbol = ?1 AND interval = ?2 ORDER BY start_ms DESC LIMIT ?3",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![symbol, interval.as_str(), limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            let (s, o, h, l, c, v, t) = r.map_err(e)?;
            out.push(Bar {
                start_ms: s as u64,
                open: dec(o)?,
                high: dec(h)?,
                low: dec(l)?,
                close: dec(c)?,
                volume: dec(v)?,
                turnover: dec(t)?,
            });
        }
        out.reverse();
        Ok(out)
    }

    pub fn record_signals(&mut self, signals: &[Signal]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO signals (symbol, strategy, side, confidence, reason, candle_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            for s in signals {
                st.execute(params![
                    s.symbol,
                    s.strategy,
                    side_str(s.side),
                    s.confidence,
                    s.reason,
                    s.candle_ms as i64
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// The order, its fills and the position they leave, in one durable transaction.
    pub fn record_order(
        &mut self,
        seed: u64,
        seq: u64,
        o: &Order,
        fills: &[Fill],
        position: Option<&Position>,
    ) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(e)?;
        let status = match &o.status {
            OrderStatus::Filled => "Filled".to_string(),
            OrderStatus::Rejected(r) => format!("Rejected: {r}"),
        };
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                o.client_order_id,
                seed as i64,
                seq as i64,
                o.symbol,
                side_str(o.side),
                o.qty.to_string(),
                o.avg_px.to_string(),
                o.fee.to_string(),
                status,
                o.reason,
                o.ts_ms as i64
            ],
        )
        .map_err(e)?;
        for f in fills {
            tx.execute(
                "INSERT INTO fills (client_order_id, symbol, side, px, qty, fee, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![f.client_order_id, f.symbol, side_str(f.side), f.px.to_string(), f.qty.to_string(), f.fee.to_string(), f.ts_ms as i64],
            )
            .map_err(e)?;
        }
        if let Some(p) = position {
            tx.execute(
                "INSERT OR REPLACE INTO positions VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    p.symbol,
                    p.qty.to_string(),
                    p.avg_entry.to_string(),
                    p.realized_pnl.to_string(),
                    p.fees.to_string()
                ],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// The sequence number the next order of `seed` must use: past every stored one.
    pub fn next_seq(&self, seed: u64) -> Result<u64, String> {
        let max: Option<i64> = self
            .conn
            .query_row(
                "SELECT MAX(seq) FROM orders WHERE seed = ?1",
                params![seed as i64],
                |r| r.get(0),
            )
            .map_err(e)?;
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    pub fn fills(&self) -> Result<Vec<Fill>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT client_order_id, symbol, side, px, qty, fee, ts_ms FROM fills ORDER BY id",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            let (id, symbol, side, px, qty, fee, ts) = r.map_err(e)?;
            out.push(Fill {
                client_order_id: id,
                symbol,
                side: side_of(&side)?,
                px: dec(px)?,
                qty: dec(qty)?,
                fee: dec(fee)?,
                ts_ms: ts as u64,
            });
        }
        Ok(out)
    }

    pub fn order_ids(&self) -> Result<Vec<String>, String> {
        let mut st = self
            .conn
            .prepare_cached("SELECT client_order_id FROM orders ORDER BY seq")
            .map_err(e)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
        rows.map(|r| r.map_err(e)).collect()
    }

    /// Positions rebuilt from every stored fill, exactly as the broker built them.
    pub fn rebuild_positions(&self, broker: BrokerConfig) -> Result<Vec<Position>, String> {
        let mut b = Broker::new(broker, 0, 0);
        for f in self.fills()? {
            b.apply_fill(&f);
        }
        for f in self.live_fills()? {
            b.apply_fill(&f);
        }
        Ok(b.positions().cloned().collect())
    }
}

/// Commands for the store thread.
pub enum StoreCmd {
    /// A live order's state or fill; an intent is answered on `reply` once committed.
    Live {
        write: keel_core::engine::StoreWrite,
        reply: tokio::sync::mpsc::Sender<crate::driver::Msg>,
    },
    Order {
        seed: u64,
        seq: u64,
        order: Order,
        fills: Vec<Fill>,
        position: Option<Position>,
    },
    Signals(Vec<Signal>),
    Candle {
        symbol: String,
        interval: Interval,
        bar: Bar,
    },
    Candles {
        symbol: String,
        interval: Interval,
        bars: Vec<Bar>,
    },
}

/// Commands queued for the store thread before the driver holds them back itself.
pub const STORE_QUEUE_MAX: usize = 4_096;

/// The store's own thread: SQLite writes never run on the event loop. An order reaches the API
/// and the log only after its transaction committed.
pub struct StoreHandle {
    pub tx: std::sync::mpsc::SyncSender<StoreCmd>,
    pub thread: std::thread::JoinHandle<()>,
    /// Orders written so far, for the driver to know when its backlog has drained.
    pub written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

pub fn spawn_store(mut store: Store, api: crate::api::SharedApi) -> Result<StoreHandle, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<StoreCmd>(STORE_QUEUE_MAX);
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = written.clone();
    let thread = std::thread::Builder::new()
        .name("keel-store".into())
        .spawn(move || {
            crate::priority::background_thread();
            // After one failed live write nothing more is written for live trading: a final
            // state must never land without the fills before it.
            let mut live_failed: Option<String> = None;
            for cmd in rx {
                match cmd {
                    StoreCmd::Live { write, reply } => {
                        crate::store_live::apply(&mut store, &api, write, &reply, &mut live_failed)
                    }
                    StoreCmd::Order {
                        seed,
                        seq,
                        order,
                        fills,
                        position,
                    } => match store.record_order(seed, seq, &order, &fills, position.as_ref()) {
                        Ok(()) => {
                            w.fetch_add(1, std::sync::atomic::Ordering::Release);
                            tracing::info!(
                                id = %order.client_order_id,
                                symbol = %order.symbol,
                                side = ?order.side,
                                qty = %order.qty,
                                avg_px = %order.avg_px,
                                status = ?order.status,
                                fills = fills.len(),
                                "paper order (durable)"
                            );
                            api.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push_order(&order, &fills);
                        }
                        Err(err) => {
                            w.fetch_add(1, std::sync::atomic::Ordering::Release);
                            tracing::error!(id = %order.client_order_id, "order NOT stored: {err}")
                        }
                    },
                    StoreCmd::Signals(s) => {
                        if let Err(err) = store.record_signals(&s) {
                            tracing::warn!("signals not stored: {err}");
                        }
                    }
                    StoreCmd::Candle {
                        symbol,
                        interval,
                        bar,
                    } => {
                        if let Err(err) = store.insert_candles(&symbol, interval, &[bar]) {
                            tracing::warn!("candle not stored: {err}");
                        }
                    }
                    StoreCmd::Candles {
                        symbol,
                        interval,
                        bars,
                    } => {
                        if let Err(err) = store.insert_candles(&symbol, interval, &bars) {
                            tracing::error!("{} candles of {symbol} not stored: {err}", bars.len());
                        }
                    }
                }
            }
        })
        .map_err(|e| format!("store thread: {e}"))?;
    Ok(StoreHandle {
        tx,
        thread,
        written,
    })
}

/// The sequence number in a client order id `keel-<seed>-<seq>`.
pub fn seq_of(client_order_id: &str) -> Option<u64> {
    client_order_id.rsplit('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("keel-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("keel.db")
    }

    #[test]
    fn orders_survive_a_reopen_and_ids_never_repeat() {
        let path = tmp("orders");
        let order = |id: &str| Order {
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side: SignalSide::Buy,
            qty: Dec::from_int(1),
            avg_px: Dec::from_int(100),
            fee: Dec::ZERO,
            status: OrderStatus::Filled,
            reason: "t".into(),
            ts_ms: 1,
        };
        let fill = |id: &str| Fill {
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side: SignalSide::Buy,
            px: Dec::from_int(100),
            qty: Dec::from_int(1),
            fee: Dec::ZERO,
            ts_ms: 1,
        };
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(s.next_seq(7).unwrap(), 0);
            s.record_order(7, 0, &order("keel-7-0"), &[fill("keel-7-0")], None)
                .unwrap();
            s.record_order(7, 1, &order("keel-7-1"), &[fill("keel-7-1")], None)
                .unwrap();
            assert!(
                s.record_order(7, 1, &order("keel-7-1"), &[], None).is_err(),
                "a repeated id is refused"
            );
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.next_seq(7).unwrap(), 2);
        assert_eq!(s.next_seq(8).unwrap(), 0);
        assert_eq!(s.order_ids().unwrap(), vec!["keel-7-0", "keel-7-1"]);
        let p = s.rebuild_positions(BrokerConfig::default()).unwrap();
        assert_eq!(p[0].qty, Dec::from_int(2));
    }

    #[test]
    fn candles_are_stored_once_and_load_oldest_first() {
        let path = tmp("candles");
        let mut s = Store::open(&path).unwrap();
        let bar = |start: u64| Bar {
            start_ms: start,
            open: Dec::ONE,
            high: Dec::ONE,
            low: Dec::ONE,
            close: Dec::from_int(start as i64),
            volume: Dec::ONE,
            turnover: Dec::ONE,
        };
        assert_eq!(
            s.insert_candles("X", Interval::Min1, &[bar(60_000), bar(0)])
                .unwrap(),
            2
        );
        assert_eq!(
            s.insert_candles("X", Interval::Min1, &[bar(60_000), bar(120_000)])
                .unwrap(),
            1
        );
        let starts = s.candle_starts("X", Interval::Min1, 0, 1_000_000).unwrap();
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            vec![0, 60_000, 120_000]
        );
        let latest = s.load_candles("X", Interval::Min1, 2).unwrap();
        assert_eq!(
            latest.iter().map(|b| b.start_ms).collect::<Vec<_>>(),
            vec![60_000, 120_000]
        );
    }
}
