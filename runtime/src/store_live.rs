//! The order machine's orders in the store, paper or live (the tables keep the `live_` names
//! they were made with): every order's latest state (its intent written before it is sent),
//! every fill once by its execId, the prefix that keeps this store's orderLinkIds apart from
//! any other's, and which venue its orders belong to.

use keel_core::engine::StoreWrite;
use keel_core::trading::broker::Fill;
use keel_core::trading::orders::{ExecRecord, OrderRecord, Plan, Stage};
use keel_core::wire::private::{OrderType, Side, TimeInForce};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Store, dec, e};

pub(crate) fn create_tables(conn: &Connection) -> Result<(), String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS live_orders (
             link_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, symbol TEXT NOT NULL,
             side TEXT NOT NULL, qty TEXT NOT NULL, order_type TEXT NOT NULL, price TEXT,
             tif TEXT, reduce_only INTEGER NOT NULL, reason TEXT NOT NULL, stage TEXT NOT NULL,
             reject TEXT, order_id TEXT, cum_qty TEXT NOT NULL, created_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS live_fills (
             exec_id TEXT PRIMARY KEY, link_id TEXT NOT NULL, symbol TEXT NOT NULL,
             side TEXT NOT NULL, px TEXT NOT NULL, qty TEXT NOT NULL, fee TEXT NOT NULL,
             ts_ms INTEGER NOT NULL);",
    )
    .map_err(e)
}

fn stage_of(stage: &str, reject: Option<String>) -> Result<Stage, String> {
    Ok(match stage {
        "intent" => Stage::Intent,
        "ready" => Stage::Ready,
        "sent" => Stage::Sent,
        "open" => Stage::Open,
        "resolving" => Stage::Resolving,
        "filled" => Stage::Filled,
        "cancelled" => Stage::Cancelled,
        "rejected" => Stage::Rejected(reject.unwrap_or_default()),
        other => return Err(format!("store: bad order stage {other:?}")),
    })
}

fn side_of(s: &str) -> Result<Side, String> {
    Side::parse(s).ok_or_else(|| format!("store: bad side {s:?}"))
}

fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
        TimeInForce::PostOnly => "PostOnly",
    }
}

fn tif_of(s: &str) -> Result<TimeInForce, String> {
    Ok(match s {
        "GTC" => TimeInForce::Gtc,
        "IOC" => TimeInForce::Ioc,
        "FOK" => TimeInForce::Fok,
        "PostOnly" => TimeInForce::PostOnly,
        other => return Err(format!("store: bad time in force {other:?}")),
    })
}

impl Store {
    /// The prefix of this store's orderLinkIds: made once, from the wall clock at the store's
    /// first live use, so two databases (or a deleted and recreated one) never share ids.
    pub fn link_prefix(&mut self, wall_ms: u64) -> Result<String, String> {
        if let Some(p) = self.meta("link_prefix")? {
            return Ok(p);
        }
        let p = format!("k{wall_ms:x}");
        self.set_meta("link_prefix", &p)?;
        Ok(p)
    }

    /// A value of the store's `meta` table.
    fn meta(&self, key: &str) -> Result<Option<String>, String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(e)
    }

    /// Sets a `meta` value once (a second write of the key is an error).
    fn set_meta(&self, key: &str, value: &str) -> Result<(), String> {
        self.conn
            .execute("INSERT INTO meta VALUES (?1, ?2)", params![key, value])
            .map(|_| ())
            .map_err(e)
    }

    /// Binds the store's orders to one venue (`paper`, `live bybit`, ...): unfinished orders are
    /// resumed at start, and one kept for another venue must never be sent to this one (a paper
    /// intent resumed live would become a real order). A store without a claim takes this one,
    /// unless it already holds unfinished orders of unknown origin.
    pub fn claim_orders_venue(&mut self, venue: &str) -> Result<(), String> {
        match self.meta("orders_venue")? {
            Some(v) if v == venue => Ok(()),
            Some(v) => Err(format!(
                "this store holds orders for {v:?}, not {venue:?}: give orders for {venue:?} their own store (--db)"
            )),
            None if !self.unfinished_live_orders()?.is_empty() => Err(format!(
                "this store holds unfinished orders of an unknown venue: not resuming them on {venue:?}; use another store (--db)"
            )),
            None => self.set_meta("orders_venue", venue),
        }
    }

    /// The next order's sequence number: past every stored one.
    pub fn live_next_seq(&self) -> Result<u64, String> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM live_orders", [], |r| r.get(0))
            .map_err(e)?;
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    /// Writes an order's latest state (durably: the store runs with `synchronous = FULL`).
    pub fn record_live_order(&mut self, r: &OrderRecord) -> Result<(), String> {
        let p = &r.plan;
        let reject = match &r.stage {
            Stage::Rejected(why) => Some(why.as_str()),
            _ => None,
        };
        self.conn
            .execute(
                "INSERT OR REPLACE INTO live_orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    r.link_id,
                    r.seq as i64,
                    p.symbol,
                    p.side.as_str(),
                    p.qty.to_string(),
                    match p.order_type {
                        OrderType::Market => "Market",
                        OrderType::Limit => "Limit",
                    },
                    p.price.map(|x| x.to_string()),
                    p.time_in_force.map(tif_str),
                    p.reduce_only as i64,
                    p.reason,
                    r.stage.as_str(),
                    reject,
                    r.order_id,
                    r.cum_qty.to_string(),
                    r.created_ms as i64
                ],
            )
            .map_err(e)?;
        Ok(())
    }

    /// Writes a fill once: a second write of the same execId changes nothing.
    pub fn record_live_fill(&mut self, x: &ExecRecord) -> Result<bool, String> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO live_fills VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    x.exec_id,
                    x.link_id,
                    x.symbol,
                    x.side.as_str(),
                    x.px.to_string(),
                    x.qty.to_string(),
                    x.fee.to_string(),
                    x.ts_ms as i64
                ],
            )
            .map_err(e)?;
        Ok(n == 1)
    }

    fn live_orders_where(&self, clause: &str) -> Result<Vec<OrderRecord>, String> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT link_id, seq, symbol, side, qty, order_type, price, tif, reduce_only, reason, stage, reject, order_id, cum_qty, created_ms FROM live_orders {clause} ORDER BY seq"
            ))
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    (
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ),
                    (
                        r.get::<_, i64>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, String>(10)?,
                        r.get::<_, Option<String>>(11)?,
                        r.get::<_, Option<String>>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, i64>(14)?,
                    ),
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (link_id, seq, symbol, side, qty, ot, price, tif),
                (reduce, reason, stage, reject, order_id, cum, created),
            ) = row.map_err(e)?;
            out.push(OrderRecord {
                link_id,
                seq: seq as u64,
                plan: Plan {
                    symbol,
                    side: side_of(&side)?,
                    qty: dec(qty)?,
                    order_type: if ot == "Limit" {
                        OrderType::Limit
                    } else {
                        OrderType::Market
                    },
                    price: price.map(dec).transpose()?,
                    time_in_force: tif.as_deref().map(tif_of).transpose()?,
                    reduce_only: reduce != 0,
                    reason,
                },
                stage: stage_of(&stage, reject)?,
                order_id,
                cum_qty: dec(cum)?,
                created_ms: created as u64,
            });
        }
        Ok(out)
    }

    pub fn live_orders(&self) -> Result<Vec<OrderRecord>, String> {
        self.live_orders_where("")
    }

    /// Orders without a final state, each with the fills already stored for it.
    pub fn unfinished_live_orders(&self) -> Result<Vec<(OrderRecord, Vec<ExecRecord>)>, String> {
        let open =
            self.live_orders_where("WHERE stage NOT IN ('filled', 'cancelled', 'rejected')")?;
        let fills = self.live_exec_records()?;
        Ok(open
            .into_iter()
            .map(|o| {
                let mine = fills
                    .iter()
                    .filter(|f| f.link_id == o.link_id)
                    .cloned()
                    .collect();
                (o, mine)
            })
            .collect())
    }

    pub fn live_exec_records(&self) -> Result<Vec<ExecRecord>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT exec_id, link_id, symbol, side, px, qty, fee, ts_ms FROM live_fills ORDER BY ts_ms, exec_id",
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
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (exec_id, link_id, symbol, side, px, qty, fee, ts) = row.map_err(e)?;
            out.push(ExecRecord {
                exec_id,
                link_id,
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

    /// Live fills as the broker applies them (positions are rebuilt from these and paper fills).
    pub fn live_fills(&self) -> Result<Vec<Fill>, String> {
        Ok(self
            .live_exec_records()?
            .into_iter()
            .map(|x| Fill::from(&x))
            .collect())
    }
}

/// One live write on the store thread. An intent's commit is answered with `Durable`; any
/// failure (now or earlier in the run) with `StoreFailed`, which halts live trading.
pub(crate) fn apply(
    store: &mut Store,
    api: &crate::api::SharedApi,
    write: StoreWrite,
    reply: &tokio::sync::mpsc::Sender<crate::driver::Msg>,
    failed: &mut Option<String>,
) {
    use crate::driver::Msg;
    if let Some(err) = failed.clone() {
        let _ = reply.blocking_send(Msg::StoreFailed { error: err });
        return;
    }
    let result = match &write {
        StoreWrite::Order(r) => store.record_live_order(r).map(|()| true),
        StoreWrite::Fill(x) => store.record_live_fill(x),
    };
    match result {
        Ok(fresh) => match write {
            StoreWrite::Order(r) => {
                if r.stage == Stage::Intent {
                    let _ = reply.blocking_send(Msg::Durable {
                        link_id: r.link_id.clone(),
                    });
                }
                tracing::info!(
                    id = %r.link_id,
                    symbol = %r.plan.symbol,
                    side = r.plan.side.as_str(),
                    qty = %r.plan.qty,
                    stage = r.stage.as_str(),
                    order_id = r.order_id.as_deref().unwrap_or(""),
                    filled = %r.cum_qty,
                    "order (durable)"
                );
                api.lock().unwrap_or_else(|p| p.into_inner()).push_order(&r);
            }
            StoreWrite::Fill(x) => {
                if fresh {
                    tracing::info!(
                        exec = %x.exec_id,
                        id = %x.link_id,
                        symbol = %x.symbol,
                        side = x.side.as_str(),
                        px = %x.px,
                        qty = %x.qty,
                        "fill (durable)"
                    );
                    api.lock().unwrap_or_else(|p| p.into_inner()).push_fill(&x);
                }
            }
        },
        Err(err) => {
            tracing::error!("live write NOT stored, trading halts: {err}");
            *failed = Some(err.clone());
            let _ = reply.blocking_send(Msg::StoreFailed { error: err });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::Dec;

    /// A market buy of one BTCUSDT, as the machine first hands it to the store.
    fn market_intent() -> OrderRecord {
        OrderRecord {
            link_id: "k1-0000000000".into(),
            seq: 0,
            plan: Plan::market("BTCUSDT", Side::Buy, Dec::ONE, "r"),
            stage: Stage::Intent,
            order_id: None,
            cum_qty: Dec::ZERO,
            created_ms: 0,
        }
    }

    #[test]
    fn a_store_that_cannot_write_answers_failed_and_refuses_every_later_live_write() {
        let dir = std::env::temp_dir().join(format!("keel-live-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = Store::open(&dir.join("keel.db")).unwrap();
        // As a read-only or full database does: every write fails.
        store.conn.execute_batch("PRAGMA query_only = ON;").unwrap();
        let api: crate::api::SharedApi = Default::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut failed = None;
        let intent = market_intent();
        apply(
            &mut store,
            &api,
            StoreWrite::Order(intent.clone()),
            &tx,
            &mut failed,
        );
        match rx.try_recv() {
            Ok(crate::driver::Msg::StoreFailed { error }) => {
                assert!(error.contains("store"), "{error}")
            }
            _ => panic!("the intent's failure is answered"),
        }
        // The database recovers; live writes stay refused for this run (a final state must
        // never land without the fills before it).
        store
            .conn
            .execute_batch("PRAGMA query_only = OFF;")
            .unwrap();
        apply(
            &mut store,
            &api,
            StoreWrite::Order(intent),
            &tx,
            &mut failed,
        );
        assert!(matches!(
            rx.try_recv(),
            Ok(crate::driver::Msg::StoreFailed { .. })
        ));
        assert!(store.live_orders().unwrap().is_empty());
    }

    #[test]
    fn live_orders_and_fills_survive_a_reopen_and_a_fill_is_kept_once() {
        let dir = std::env::temp_dir().join(format!("keel-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keel.db");
        let rec = |stage: Stage| OrderRecord {
            link_id: "k1-0000000003".into(),
            seq: 3,
            plan: Plan {
                symbol: "BTCUSDT".into(),
                side: Side::Sell,
                qty: Dec::parse("0.5").unwrap(),
                order_type: OrderType::Limit,
                price: Some(Dec::from_int(100)),
                time_in_force: Some(TimeInForce::PostOnly),
                reduce_only: true,
                reason: "r".into(),
            },
            stage,
            order_id: None,
            cum_qty: Dec::ZERO,
            created_ms: 9,
        };
        let fill = ExecRecord {
            exec_id: "e1".into(),
            link_id: "k1-0000000003".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            px: Dec::from_int(100),
            qty: Dec::parse("0.2").unwrap(),
            fee: Dec::ZERO,
            ts_ms: 10,
        };
        let prefix;
        {
            let mut s = Store::open(&path).unwrap();
            prefix = s.link_prefix(0xabc).unwrap();
            s.record_live_order(&rec(Stage::Intent)).unwrap();
            s.record_live_order(&rec(Stage::Open)).unwrap();
            assert!(s.record_live_fill(&fill).unwrap());
            assert!(!s.record_live_fill(&fill).unwrap());
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.link_prefix(0xdef).unwrap(), prefix);
        assert_eq!(prefix, "kabc");
        assert_eq!(s.live_next_seq().unwrap(), 4);
        let open = s.unfinished_live_orders().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, rec(Stage::Open));
        assert_eq!(open[0].1, vec![fill.clone()]);
        s.record_live_order(&rec(Stage::Rejected("110007: no".into())))
            .unwrap();
        assert!(s.unfinished_live_orders().unwrap().is_empty());
        assert_eq!(
            s.live_orders().unwrap()[0].stage,
            Stage::Rejected("110007: no".into())
        );
        let p = s.rebuild_positions(Default::default()).unwrap();
        assert_eq!(p[0].qty, Dec::parse("-0.2").unwrap());
    }

    #[test]
    fn a_stores_orders_belong_to_one_venue_and_another_is_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("keel-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Store::open(&dir.join("a.db")).unwrap();
        s.claim_orders_venue("paper").unwrap();
        s.claim_orders_venue("paper").unwrap();
        let e = s.claim_orders_venue("live bybit").unwrap_err();
        assert!(e.contains("\"paper\"") && e.contains("--db"), "{e}");
        // A store from before the claim, holding an unfinished order: not resumed anywhere.
        let mut s = Store::open(&dir.join("b.db")).unwrap();
        let mut intent = market_intent();
        s.record_live_order(&intent).unwrap();
        assert!(s.claim_orders_venue("live bybit").is_err());
        intent.stage = Stage::Cancelled;
        s.record_live_order(&intent).unwrap();
        s.claim_orders_venue("live bybit").unwrap();
        assert!(s.claim_orders_venue("paper").is_err());
    }
}
