//! A strategy of your own, run by keel as a library: the same command line, configuration,
//! store, ops server and status page as the `keel` binary.
//!
//! ```sh
//! cargo run --release --example custom_strategy -- --auto-execute   # on the embedded venue
//! cargo run --release --example custom_strategy -- run --duration 60 --paper --auto-execute
//! ```
//!
//! `Pressure` follows who is trading harder: when recent public trades lean to the buy side and
//! the book's bids outweigh its asks, it wants to be long; the other way, short. It enters with
//! a limit order at the far touch plus a few basis points, immediate-or-cancel (it never pays
//! more than that), and cancels anything of its own still working before it changes its mind.
//! A strategy only says what it wants: the engine sizes, risk-checks, stores and sends, and
//! calls it off the event loop, so a slow or panicking strategy cannot freeze the bot.

use keel_runtime::keel_core::Dec;
use keel_runtime::strategy::{Context, Intent, SignalSide, Strategy, TimeInForce};

struct Pressure {
    /// Trades to weigh.
    trades: usize,
    /// How far past the touch an entry may pay, in bps.
    slippage_bps: f64,
    /// Notional of one position, in the quote coin.
    notional: f64,
}

impl Strategy for Pressure {
    fn name(&self) -> &str {
        "pressure"
    }

    fn evaluate(&self, ctx: &Context<'_>, out: &mut Vec<Intent>) {
        let (Some(bid), Some(ask), Some(mid)) = (ctx.bids.first(), ctx.asks.first(), ctx.mid())
        else {
            return;
        };
        let recent = &ctx.trades[ctx.trades.len().saturating_sub(self.trades)..];
        if recent.len() < self.trades / 2 {
            return;
        }
        let flow: f64 = recent
            .iter()
            .map(|t| match t.side {
                SignalSide::Buy => t.qty,
                SignalSide::Sell => -t.qty,
            })
            .sum();
        let depth = |levels: &[keel_runtime::keel_core::Level]| -> f64 {
            levels.iter().map(|l| l.qty.to_f64()).sum()
        };
        let (b, a) = (depth(ctx.bids), depth(ctx.asks));
        let imbalance = if a + b > 0.0 { (b - a) / (a + b) } else { 0.0 };
        let want = match (flow > 0.0, imbalance > 0.0) {
            (true, true) => SignalSide::Buy,
            (false, false) => SignalSide::Sell,
            _ => return,
        };
        let long = ctx.position > Dec::ZERO;
        let short = ctx.position < Dec::ZERO;
        if (want == SignalSide::Buy && long) || (want == SignalSide::Sell && short) {
            return;
        }
        if !ctx.open_orders.is_empty() {
            out.push(Intent::cancel("changing my mind"));
            return;
        }
        // From a short to a long (or back) in one order: the position plus one unit.
        let unit = self.notional / mid;
        let qty = unit + ctx.position.to_f64().abs();
        let (touch, moved) = match want {
            SignalSide::Buy => (ask.px.to_f64(), 1.0 + self.slippage_bps / 10_000.0),
            SignalSide::Sell => (bid.px.to_f64(), 1.0 - self.slippage_bps / 10_000.0),
        };
        let (Some(qty), Some(price)) = (Dec::from_f64(qty), Dec::from_f64(touch * moved)) else {
            return;
        };
        out.push(Intent::limit(
            want,
            qty,
            // On the book's own price grid (as many places as its touch prices use).
            price.truncate_places(ask.px.places().max(bid.px.places())),
            TimeInForce::Ioc,
            format!("trade flow {flow:+.4}, book imbalance {imbalance:+.2}"),
        ));
    }
}

fn bot() -> keel_runtime::BotBuilder {
    keel_runtime::Bot::builder()
        .strategy(Pressure {
            trades: 50,
            slippage_bps: 5.0,
            notional: 1_000.0,
        })
        .without_builtins()
}

fn main() -> std::process::ExitCode {
    bot().run()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    /// The orders the bot's ops API lists, as JSON.
    fn orders(port: u16) -> Option<serde_json::Value> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /api/orders?limit=50 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        serde_json::from_str(buf.split_once("\r\n\r\n")?.1).ok()
    }

    #[test]
    fn the_example_trades_on_the_embedded_venue() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("keel-example-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let watch = std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(40) {
                if let Some(v) = orders(port) {
                    let filled: Vec<serde_json::Value> = v["orders"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|o| {
                            o["stage"] == "Filled"
                                && o["reason"]
                                    .as_str()
                                    .is_some_and(|r| r.starts_with("pressure:"))
                        })
                        .cloned()
                        .collect();
                    if filled.len() >= 2 {
                        return filled;
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            Vec::new()
        });
        let db = dir.join("keel.db");
        // Called every second rather than every five: the strategy waits for trade flow and
        // book pressure to agree, and five chances in the run were sometimes one fill short.
        let config = dir.join("keel.toml");
        std::fs::write(&config, "[jobs]\nsignal_every_ms = 1000\n").unwrap();
        let code = super::bot().run_with_args([
            "custom_strategy",
            "--config",
            &config.to_string_lossy(),
            "--auto-execute",
            "--duration",
            "30",
            "--ops-addr",
            &format!("127.0.0.1:{port}"),
            "--db",
            &db.to_string_lossy(),
        ]);
        let filled = watch.join().unwrap();
        assert_eq!(code, std::process::ExitCode::SUCCESS);
        assert!(
            filled.len() >= 2,
            "the example's strategy filled no orders on the embedded venue"
        );
        for o in &filled {
            println!("{o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
