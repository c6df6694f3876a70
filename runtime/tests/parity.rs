//! Parity (part 7 of the strategies issue): `keel backtest --capture` and a live `keel run
//! --paper` against `keel venue` replaying the same capture see the same market and decide the
//! same: the same signals, and the same orders in the same order per symbol. The strategy is
//! called at each candle close and reads closed candles only, so what it sees does not depend on
//! how fast this machine is; the sizes of orders (from the book's mid when the answer is acted
//! on) and their fills may differ, and are not compared.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use keel_runtime::cli::Extras;
use keel_runtime::config::{self, FileConfig, Overrides};
use keel_runtime::strategy::{
    Context, EmaCross, Intent, SharedStrategy, SignalSide, Strategy, StrategyConfig, ema,
};

/// EMA 3 over EMA 8 of closed candles only.
struct ClosedEma;

impl Strategy for ClosedEma {
    fn name(&self) -> &str {
        "closed_ema"
    }
    fn warmup(&self) -> usize {
        8
    }
    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let closes = || ctx.candles.iter().map(|c| c.close);
        let (Some(fast), Some(slow)) = (ema(closes(), 3), ema(closes(), 8)) else {
            return;
        };
        let side = if fast > slow {
            SignalSide::Buy
        } else {
            SignalSide::Sell
        };
        out.push(Intent::signal(
            side,
            1.0,
            format!("EMA3 {fast:.6} EMA8 {slow:.6}"),
        ));
    }
}

type Said = BTreeSet<(String, u64, String, String)>;
type Orders = BTreeMap<String, Vec<(String, String)>>;

/// Per symbol, each order whose side differs from the order before it.
fn turns(o: &Orders) -> Orders {
    o.iter()
        .map(|(symbol, orders)| {
            let mut out: Vec<(String, String)> = Vec::new();
            for (side, reason) in orders {
                if out.last().is_none_or(|(s, _)| s != side) {
                    out.push((side.clone(), reason.clone()));
                }
            }
            (symbol.clone(), out)
        })
        .collect()
}

fn no_builtins() -> StrategyConfig {
    StrategyConfig {
        ema_cross: None::<EmaCross>,
        rsi_reversion: None,
        confidence_min: 0.3,
    }
}

#[test]
fn a_capture_backtest_and_a_live_run_on_its_replay_say_and_order_the_same() {
    let db = temp_db("parity");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let file = dir.join("capture.jsonl");
    std::fs::write(&file, synthetic_capture(&["AAAUSDT", "BBBUSDT"], 20, 11)).unwrap();

    // The backtest.
    let bt = keel_runtime::backtest::capture::run(&keel_runtime::backtest::capture::CaptureArgs {
        files: vec![file.clone()],
        strategy: no_builtins(),
        strategies: vec![SharedStrategy::new(ClosedEma)],
        broker: Default::default(),
        signal_every_ms: 86_400_000,
        on_close: true,
        balance: 10_000.0,
    })
    .unwrap();
    let bt_said: Said = bt
        .signals
        .iter()
        .map(|s| {
            (
                s.symbol.clone(),
                s.candle_ms,
                s.label().to_string(),
                s.reason.to_string(),
            )
        })
        .collect();
    let mut bt_orders = Orders::new();
    for o in &bt.orders {
        bt_orders
            .entry(o.symbol.clone())
            .or_default()
            .push((o.side.clone(), o.reason.clone()));
    }

    // The live run: the venue replays the capture from its first frame once keel subscribed,
    // 60 times as fast as recorded.
    let venue_port = free_port();
    let _venue = Guard(
        keel()
            .args(["venue", "--addr", &format!("127.0.0.1:{venue_port}")])
            .arg("--replay")
            .arg(&file)
            .args([
                "--speed",
                "60",
                "--replay-from-subscribe",
                "--duration",
                "60",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut f = FileConfig {
        warmup_candles: Some(0),
        strategy: Some(no_builtins()),
        ..Default::default()
    };
    f.jobs.signal_every_ms = Some(86_400_000);
    f.jobs.strategies_on_candle_close = Some(true);
    let mut cfg = config::resolve(
        f,
        Overrides {
            venue_url: Some(format!("http://127.0.0.1:{venue_port}")),
            symbols: Some("AAAUSDT,BBBUSDT".into()),
            ops_addr: Some(format!("127.0.0.1:{}", free_port())),
            auto_execute: true,
            paper: true,
            db: Some(db.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    Extras {
        strategies: vec![SharedStrategy::new(ClosedEma)],
        builtins: false,
    }
    .apply(&mut cfg.engine)
    .unwrap();
    // Let the venue listen first.
    std::thread::sleep(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // 20 minutes at 60x is 20 s; the rest is margin.
        keel_runtime::run::spawn_shutdown(tx, Some(Duration::from_secs(28)));
        keel_runtime::run::run(cfg, rx).await
    })
    .unwrap();
    rt.shutdown_timeout(Duration::from_millis(100));

    let store = rusqlite::Connection::open(&db).unwrap();
    let live_said: Said = store
        .prepare("SELECT symbol, candle_ms, side, reason FROM signals")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut live_orders = Orders::new();
    let mut st = store
        .prepare("SELECT symbol, side, reason FROM live_orders ORDER BY seq")
        .unwrap();
    for row in st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap()
    {
        let (symbol, side, reason) = row.unwrap();
        live_orders.entry(symbol).or_default().push((side, reason));
    }

    println!(
        "backtest: {} signals, {} orders; live: {} signals, {} orders",
        bt_said.len(),
        bt.orders.len(),
        live_said.len(),
        live_orders.values().map(Vec::len).sum::<usize>()
    );
    assert!(bt_said.len() >= 20, "the strategy spoke: {bt_said:?}");
    assert!(
        turns(&bt_orders).values().map(Vec::len).sum::<usize>() >= 4,
        "{:?}",
        bt.orders
    );
    assert_eq!(bt_said, live_said, "the same signals");
    assert_eq!(
        turns(&bt_orders),
        turns(&live_orders),
        "the same orders, in the same order"
    );
}
