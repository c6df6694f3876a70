//! The durable store (SQLite, WAL, full sync): candles, signals, and (in `store_live`) the
//! order machine's orders and fills, each written before anything serves or logs it. After a
//! crash the broker's positions are rebuilt from the fills; the `orders` and `fills` tables of
//! the paper broker keel had before are still read for that, never written.

use std::collections::BTreeSet;
use std::path::Path;

use keel_core::Dec;
use keel_core::market::kline::Bar;
use keel_core::trading::broker::{Broker, BrokerConfig, Fill, Position};
use keel_core::trading::strategy::{Signal, SignalSide};
use keel_core::wire::topic::Interval;
use rusqlite::{Connection, params};

pub struct Store {
    pub(crate) conn: Connection,
}

pub(crate) fn e(err: rusqlite::Error) -> String {
    format!("store: {err}")
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
                    s.label(),
                    s.confidence(),
                    s.reason.to_string(),
                    s.candle_ms as i64
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
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

    /// Positions rebuilt from every stored fill, exactly as the broker built them.
    pub fn rebuild_positions(&self, broker: BrokerConfig) -> Result<Vec<Position>, String> {
        let mut b = Broker::new(broker);
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
}

pub fn spawn_store(mut store: Store, api: crate::api::SharedApi) -> Result<StoreHandle, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<StoreCmd>(STORE_QUEUE_MAX);
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
    Ok(StoreHandle { tx, thread })
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
    fn positions_rebuild_from_an_older_stores_paper_fills_and_the_order_machines() {
        let path = tmp("positions");
        let mut s = Store::open(&path).unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO orders VALUES ('keel-7-0', 7, 0, 'BTCUSDT', 'Buy', '1', '100', '0', 'Filled', 't', 1);
                 INSERT INTO fills (client_order_id, symbol, side, px, qty, fee, ts_ms)
                     VALUES ('keel-7-0', 'BTCUSDT', 'Buy', '100', '1', '0', 1);",
            )
            .unwrap();
        s.record_live_fill(&keel_core::trading::orders::ExecRecord {
            exec_id: "e-1".into(),
            link_id: "k-1".into(),
            symbol: "BTCUSDT".into(),
            side: keel_core::wire::private::Side::Buy,
            px: Dec::from_int(110),
            qty: Dec::from_int(1),
            fee: Dec::ZERO,
            ts_ms: 2,
        })
        .unwrap();
        let p = Store::open(&path)
            .unwrap()
            .rebuild_positions(BrokerConfig::default())
            .unwrap();
        assert_eq!(p[0].qty, Dec::from_int(2));
        assert_eq!(p[0].avg_entry, Dec::from_int(105));
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
