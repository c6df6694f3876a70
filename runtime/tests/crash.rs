//! kill -9 in the middle of a paper run, then a restart on the same store: every order that was
//! served survives, every filled one with fills adding up to what it filled, no orderLinkId
//! repeats, and the sequence carries on.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use keel_runtime::store::Store;

fn served_ids(port: u16) -> Option<Vec<String>> {
    let (_, v) = get_json(port, "/api/orders?limit=1000")?;
    Some(
        v["orders"]
            .as_array()?
            .iter()
            // Filled and served: its fills were durable before its final state was.
            .filter(|o| o["stage"] == "Filled")
            .filter_map(|o| o["order_link_id"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// A configuration in which every symbol trades at the first signal cycle: whether the
/// embedded market's default signals clear the default threshold is not what this test is about.
fn eager_config(dir: &std::path::Path) -> String {
    let p = dir.join("eager.toml");
    std::fs::write(&p, "[strategy]\nconfidence_min = 0.0\n").unwrap();
    p.to_string_lossy().into_owned()
}

fn start(db: &str, port: u16, symbols: &str) -> Guard {
    let dir = std::path::Path::new(db).parent().unwrap();
    Guard(
        keel()
            .args([
                "run",
                "--auto-execute",
                "--paper",
                "--duration",
                "120",
                "--db",
                db,
                "--symbols",
                symbols,
            ])
            .args(["--ops-addr", &format!("127.0.0.1:{port}")])
            .args(["--config", &eager_config(dir)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits until at least `n` filled orders not in `before` are served.
fn wait_for_orders(port: u16, before: &BTreeSet<String>, n: usize) -> Vec<String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Some(ids) = served_ids(port)
            && ids.iter().filter(|i| !before.contains(*i)).count() >= n
        {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = get_json(port, "/api/orders?limit=1000").map(|x| x.1);
    panic!("fewer than {n} new filled orders within 60 s: {all:?}");
}

#[test]
fn kill_9_and_restart_lose_no_served_order_and_repeat_no_id() {
    let dir = std::env::temp_dir().join(format!("keel-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("keel.db").to_string_lossy().into_owned();

    let p1 = free_port();
    let mut first = start(&db, p1, "BTCUSDT,ETHUSDT");
    let served_first: BTreeSet<String> = wait_for_orders(p1, &BTreeSet::new(), 2)
        .into_iter()
        .collect();
    // No graceful anything: SIGKILL.
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let p2 = free_port();
    // The restored positions already match their signals; a symbol without a position trades at
    // once, on the same order sequence.
    let mut second = start(&db, p2, "BTCUSDT,ETHUSDT,SOLUSDT");
    let served_second = wait_for_orders(p2, &served_first, 1);
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .unwrap();
    let status = second.0.wait().unwrap();
    assert!(
        status.success() && t.elapsed() < Duration::from_secs(2),
        "{status:?}"
    );

    let store = Store::open(std::path::Path::new(&db)).unwrap();
    let stored = store.live_orders().unwrap();
    let seq: std::collections::BTreeMap<&str, u64> =
        stored.iter().map(|r| (r.link_id.as_str(), r.seq)).collect();
    assert_eq!(seq.len(), stored.len(), "an orderLinkId repeated");
    for id in &served_first {
        assert!(
            seq.contains_key(id.as_str()),
            "served order {id} lost in the crash"
        );
    }
    let fills = store.live_exec_records().unwrap();
    let mut filled_orders = 0;
    for r in stored.iter().filter(|r| r.stage.is_final()) {
        let sum = fills
            .iter()
            .filter(|f| f.link_id == r.link_id)
            .fold(keel_core::Dec::ZERO, |a, f| a.checked_add(f.qty).unwrap());
        assert_eq!(
            sum, r.cum_qty,
            "{} fills do not add up to what it filled",
            r.link_id
        );
        filled_orders += usize::from(!sum.is_zero());
    }
    for id in &served_first {
        let r = stored.iter().find(|r| &r.link_id == id).unwrap();
        assert!(
            r.stage.is_final() && !r.cum_qty.is_zero(),
            "{id} was served filled: {r:?}"
        );
    }
    assert!(filled_orders > 0, "no order filled: {stored:?}");
    let max_first = served_first.iter().map(|i| seq[i.as_str()]).max().unwrap();
    let new: Vec<u64> = served_second
        .iter()
        .filter(|i| !served_first.contains(*i))
        .filter_map(|i| seq.get(i.as_str()).copied())
        .collect();
    assert!(
        !new.is_empty() && new.iter().all(|s| *s > max_first),
        "the sequence carried on past {max_first}: {new:?}"
    );
    println!(
        "served {} before the kill, {} stored in all ({filled_orders} filled), new seqs {:?}",
        served_first.len(),
        stored.len(),
        new
    );
    std::fs::remove_dir_all(&dir).ok();
}
