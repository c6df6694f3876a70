//! The real crash test of live trading: `keel run --live` against `keel venue` with keys,
//! trading every few seconds, killed with SIGKILL at random moments and restarted on the same
//! store, many times. After the last run: every order the venue holds is in the store once, no
//! orderLinkId was made twice at the venue, every venue execution is a stored fill, and the
//! positions the store's fills make equal the venue's.
//!
//! `KEEL_SEED` picks the kill moments (fixed default); `KEEL_LIVE_KILLS` how many (default 20).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use keel_core::Dec;
use keel_runtime::store::Store;

const KEY: &str = "crashtestkey";
const SECRET: &str = "crashtestsecretcrashtestsecret";

/// A strategy that changes its mind whenever the price crosses the last close, checked four
/// times a second, every symbol trading from the first cycle; alone, so no other view is netted
/// with it.
fn flip_flop_config(dir: &std::path::Path) -> String {
    let p = dir.join("flip.toml");
    std::fs::write(
        &p,
        "[strategy]\nconfidence_min = 0.0\nrsi_reversion = false\n[strategy.ema_cross]\nfast = 1\nslow = 2\nfull_gap = 0.0001\n[jobs]\nsignal_every_ms = 250\n",
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

fn start_bot(venue_port: u16, db: &str, config: &str) -> Guard {
    Guard(
        keel()
            .args(["run", "--live", "--auto-execute", "--duration", "600"])
            .args(["--venue-url", &format!("http://127.0.0.1:{venue_port}")])
            .args([
                "--symbols",
                "BTCUSDT,ETHUSDT",
                "--db",
                db,
                "--config",
                config,
            ])
            .args(["--ops-addr", &format!("127.0.0.1:{}", free_port())])
            .env("KEEL_API_KEY", KEY)
            .env("KEEL_API_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn admin(port: u16, what: &str) -> Vec<serde_json::Value> {
    let (status, v) = get_json(port, &format!("/admin/{what}")).expect("venue answers");
    assert_eq!(status, 200);
    v.as_array().unwrap().clone()
}

fn dec(v: &serde_json::Value) -> Dec {
    Dec::parse(v.as_str().unwrap_or("0")).unwrap_or(Dec::ZERO)
}

/// xorshift64*: the kill moments from the seed, nothing from the OS.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo)
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_order_or_fill_and_sends_none_twice() {
    let seed: u64 = std::env::var("KEEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let kills: usize = std::env::var("KEEL_LIVE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    println!("reproduce with KEEL_SEED={seed} KEEL_LIVE_KILLS={kills}");
    let db = temp_db("live-crash");
    let dir = std::path::Path::new(&db).parent().unwrap().to_path_buf();
    let config = flip_flop_config(&dir);
    let venue_port = free_port();
    let _venue = spawn_venue(
        venue_port,
        "BTCUSDT,ETHUSDT",
        &[
            "--api-key",
            KEY,
            "--api-secret",
            SECRET,
            "--volatility-bps",
            "60",
        ],
    );
    let mut moments = Moments(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let started = Instant::now();
    for i in 0..kills {
        let mut bot = start_bot(venue_port, &db, &config);
        let after = moments.next_ms(300, 3_000);
        std::thread::sleep(Duration::from_millis(after));
        bot.0.kill().unwrap();
        bot.0.wait().unwrap();
        if i % 5 == 4 {
            println!(
                "{} kills, {} venue orders so far",
                i + 1,
                admin(venue_port, "orders").len()
            );
        }
    }
    // The last run resolves what the kills left open, and trades on a little; then a clean stop.
    let bot = start_bot(venue_port, &db, &config);
    std::thread::sleep(Duration::from_secs(6));
    sigterm(&bot.0);
    let mut bot = bot;
    let status = bot.0.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let orders = admin(venue_port, "orders");
    let executions = admin(venue_port, "executions");
    let positions = admin(venue_port, "positions");
    let store = Store::open(std::path::Path::new(&db)).unwrap();
    let stored: BTreeMap<String, _> = store
        .live_orders()
        .unwrap()
        .into_iter()
        .map(|o| (o.link_id.clone(), o))
        .collect();
    let fills = store.live_exec_records().unwrap();
    let fill_ids: BTreeSet<&str> = fills.iter().map(|f| f.exec_id.as_str()).collect();

    assert!(orders.len() >= 3, "the bot traded: {} orders", orders.len());
    let mut links = BTreeSet::new();
    for o in &orders {
        let link = o["orderLinkId"].as_str().unwrap();
        assert!(
            links.insert(link),
            "orderLinkId {link} made twice at the venue"
        );
        let s = stored
            .get(link)
            .unwrap_or_else(|| panic!("venue order {link} is not in the store"));
        assert_eq!(
            s.order_id.as_deref(),
            o["orderId"].as_str(),
            "{link}: the store follows the venue's order"
        );
        assert!(s.stage.is_final(), "{link} left unresolved: {:?}", s.stage);
        assert_eq!(s.cum_qty, dec(&o["cumExecQty"]), "{link}: filled size");
    }
    for x in &executions {
        let id = x["execId"].as_str().unwrap();
        assert!(
            fill_ids.contains(id),
            "venue execution {id} missing from the store"
        );
    }
    assert_eq!(
        fills.len(),
        executions.len(),
        "a fill stored that the venue never made"
    );
    let mine = store.rebuild_positions(Default::default()).unwrap();
    for p in &positions {
        let symbol = p["symbol"].as_str().unwrap();
        let size = dec(&p["size"]);
        let venue_qty = if p["side"] == "Sell" {
            Dec::ZERO.checked_sub(size).unwrap()
        } else {
            size
        };
        let ours = mine
            .iter()
            .find(|q| q.symbol == symbol)
            .map_or(Dec::ZERO, |q| q.qty);
        assert_eq!(
            ours, venue_qty,
            "{symbol}: position differs from the venue's"
        );
    }
    println!(
        "{kills} SIGKILLs in {:.0} s: {} venue orders, {} executions, all in the store once; \
         {} orders stored (some never reached the venue: refused or rejected)",
        started.elapsed().as_secs_f64(),
        orders.len(),
        executions.len(),
        stored.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}
