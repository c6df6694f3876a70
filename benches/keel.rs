//! criterion benches: the codec on real fixtures, book apply at several depths, the engine end
//! to end, keel against the baselines in the same run, and the compute jobs sequential against
//! rayon to find where the pool starts paying.

// The baselines `keel bench` measures against, shared with the binary by path: they are not part
// of any library's public surface.
#[path = "../runtime/src/baselines.rs"]
#[allow(dead_code, unused_imports)]
// the binary's unit tests read the books; the bench only times them
mod baselines;

use std::hint::black_box;
use std::time::Duration;

use baselines::{Resort, Typical, floor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_core::backtest::{self, BacktestConfig, SymbolCandles};
use keel_core::decimal::Level;
use keel_core::engine::link::LinkId;
use keel_core::market::book::OrderBook;
use keel_core::market::kline::{Bar, CandleSource, ClosedCandle};
use keel_core::rng::Rng;
use keel_core::trading::broker::BrokerConfig;
use keel_core::trading::compute::{self, BookView, MergeInput};
use keel_core::trading::strategy::{Candle, StrategyConfig};
use keel_core::wire::codec::Decoder;
use keel_core::wire::frame::{BookFrame, UpdateKind, WireLevel};
use keel_core::wire::topic::Interval;
use keel_core::{Dec, Engine, EngineConfig, Input, Market, MarketConfig, Time};
use keel_suite::fixtures_dir;
use keel_venue::market::{SymbolMarket, SymbolSpec, history_candle};

fn lines(rel: &str) -> Vec<String> {
    std::fs::read_to_string(fixtures_dir().join(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

const OB200: &str = "ws/linear/orderbook.200.BTCUSDT.jsonl";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for rel in [
        OB200,
        "ws/linear/kline.1.BTCUSDT.jsonl",
        "ws/linear/tickers.BTCUSDT.jsonl",
    ] {
        let ls = lines(rel);
        let name = rel.rsplit('/').next().unwrap();
        g.throughput(Throughput::Elements(ls.len() as u64));
        let mut dec = Decoder::default();
        g.bench_function(BenchmarkId::new("keel", name), |b| {
            b.iter(|| {
                for l in &ls {
                    black_box(dec.decode(l).is_ok());
                }
            })
        });
        g.bench_function(BenchmarkId::new("serde_json_value", name), |b| {
            b.iter(|| {
                for l in &ls {
                    black_box(serde_json::from_str::<serde_json::Value>(l).is_ok());
                }
            })
        });
    }
    g.finish();
}

/// Bids and asks of one frame, as the decoder hands them to the book.
type Sides = (Vec<WireLevel>, Vec<WireLevel>);

/// A snapshot and `n` deltas of a depth-`depth` book, from the venue's market generator.
fn book_stream(depth: usize, n: usize) -> (Sides, Vec<Sides>) {
    let mut rng = Rng::new(42);
    let spec = SymbolSpec::guess("BTCUSDT");
    let mut m = SymbolMarket::new(spec.clone(), &mut rng, 0, 42);
    let conv = |v: &[(i64, u64)]| -> Vec<WireLevel> {
        v.iter()
            .map(|(p, q)| {
                WireLevel::from_level(Level {
                    px: spec.px(*p),
                    qty: spec.qty(*q),
                })
                .expect("the generator's levels are positive")
            })
            .collect()
    };
    let diff = |old: &[(i64, u64)], new: &[(i64, u64)]| -> Vec<(i64, u64)> {
        let mut out: Vec<(i64, u64)> = new.iter().filter(|l| !old.contains(l)).copied().collect();
        out.extend(
            old.iter()
                .filter(|(p, _)| !new.iter().any(|(q, _)| q == p))
                .map(|(p, _)| (*p, 0)),
        );
        out
    };
    let (mut vb, mut va) = m.top(depth);
    let (snap_b, snap_a) = (conv(&vb), conv(&va));
    let mut deltas = Vec::with_capacity(n);
    let mut t = 0;
    while deltas.len() < n {
        t += 10;
        m.step(&mut rng, t, 42);
        let (nb, na) = m.top(depth);
        let (db, da) = (diff(&vb, &nb), diff(&va, &na));
        if !db.is_empty() || !da.is_empty() {
            deltas.push((conv(&db), conv(&da)));
        }
        (vb, va) = (nb, na);
    }
    ((snap_b, snap_a), deltas)
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("book_apply");
    for depth in [50usize, 200, 1000] {
        let ((sb, sa), deltas) = book_stream(depth, 2_000);
        g.throughput(Throughput::Elements(deltas.len() as u64));
        // Frames as the market passes them to the book (the live path).
        let frame = |kind, u, bids, asks| BookFrame {
            topic: "orderbook.200.BTCUSDT",
            symbol: "BTCUSDT",
            depth: depth as u16,
            kind,
            ts: 0,
            u,
            seq: None,
            cts: None,
            bids,
            asks,
            topic_key: 0,
        };
        g.bench_function(BenchmarkId::new("per_delta", depth), |b| {
            let mut book = OrderBook::new(depth);
            b.iter(|| {
                book.apply(&frame(UpdateKind::Snapshot, 1, &sb, &sa));
                for (u, (db, da)) in deltas.iter().enumerate() {
                    black_box(book.apply(&frame(UpdateKind::Delta, u as u64 + 2, db, da)));
                }
            })
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion) {
    let ls = lines(OB200);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(ls.len() as u64));
    g.bench_function("frame_in_outputs_drained", |b| {
        b.iter_batched(
            || {
                let mut cfg =
                    EngineConfig::new("ws://venue/v5/public/linear", vec!["BTCUSDT".into()]);
                cfg.book_depth = 200;
                cfg.preflight = false;
                let mut e = Engine::new(cfg, Time::ZERO).unwrap();
                e.handle_input(
                    Time::ZERO,
                    Input::WsConnected {
                        link: LinkId(0),
                        conn: 1,
                    },
                );
                while e.poll_output().is_some() {}
                e
            },
            |mut e| {
                for (i, l) in ls.iter().enumerate() {
                    let now = Time::from_millis(i as u64);
                    e.handle_input(
                        now,
                        Input::WsFrame {
                            link: LinkId(0),
                            conn: 1,
                            text: l,
                        },
                    );
                    while let Some(o) = e.poll_output() {
                        black_box(o);
                    }
                }
                e
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// keel and the baselines on the same frames, in the same run.
fn replay_vs_baselines(c: &mut Criterion) {
    let ls: Vec<Vec<u8>> = lines(OB200).into_iter().map(String::into_bytes).collect();
    let mut g = c.benchmark_group("replay_orderbook200");
    g.throughput(Throughput::Elements(ls.len() as u64));
    g.bench_function("keel", |b| {
        b.iter(|| {
            let mut m = Market::new(MarketConfig::default());
            for l in &ls {
                black_box(m.handle_frame_bytes(Time::ZERO, l).is_ok());
            }
        })
    });
    g.bench_function("typical_value_btreemap", |b| {
        b.iter(|| {
            let mut t = Typical::default();
            for l in &ls {
                black_box(t.handle(l));
            }
        })
    });
    g.bench_function("resort_every_delta", |b| {
        b.iter(|| {
            let mut r = Resort::default();
            for l in &ls {
                black_box(r.handle(l));
            }
        })
    });
    g.bench_function("floor_memchr_quotes", |b| {
        b.iter(|| {
            for l in &ls {
                black_box(floor(l));
            }
        })
    });
    g.finish();
}

fn views(n: usize) -> Vec<BookView> {
    let l = |p: i64, q: i64| Level {
        px: Dec::from_int(p),
        qty: Dec::from_int(q),
    };
    (0..n)
        .map(|i| BookView {
            symbol: format!("S{i}"),
            bids: (0..5).map(|k| l(100 - k, 1 + k)).collect(),
            asks: (0..5).map(|k| l(101 + k, 2 + k)).collect(),
        })
        .collect()
}

fn merge_inputs(symbols: usize, candles: usize) -> Vec<MergeInput> {
    let bar = |s: u64| Bar {
        start_ms: s * 60_000,
        open: Dec::ONE,
        high: Dec::ONE,
        low: Dec::ONE,
        close: Dec::ONE,
        volume: Dec::ONE,
        turnover: Dec::ONE,
    };
    (0..symbols)
        .map(|_| MergeInput {
            existing: (candles as u64 / 2..candles as u64)
                .map(|s| ClosedCandle {
                    bar: bar(s),
                    source: CandleSource::Live,
                })
                .collect(),
            rest: (0..candles as u64 * 3 / 4).map(bar).collect(),
        })
        .collect()
}

fn compute_crossover(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal_cycle");
    for n in [1usize, 10, 100, 1000] {
        let v = views(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("sequential", n), |b| {
            b.iter(|| black_box(compute::signals(&v, false)))
        });
        g.bench_function(BenchmarkId::new("rayon", n), |b| {
            b.iter(|| black_box(compute::signals(&v, true)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("kline_merge_500_candles");
    for n in [1usize, 10, 100, 1000] {
        let inputs = merge_inputs(n, 500);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("sequential", n), |b| {
            b.iter(|| black_box(compute::merges(&inputs, false)))
        });
        g.bench_function(BenchmarkId::new("rayon", n), |b| {
            b.iter(|| black_box(compute::merges(&inputs, true)))
        });
    }
    g.finish();
}

/// `symbols` x `days` of one-minute candles: the venue's history path (what `keel backfill`
/// stores from the embedded venue: smooth waves, few crossings) or a random walk (a regime change
/// every few hours, many more orders).
fn backtest_data(symbols: usize, days: u64, walk: bool) -> Vec<SymbolCandles> {
    const NAMES: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"];
    let minutes = days * 1440;
    (0..symbols)
        .map(|k| {
            let name = NAMES
                .get(k)
                .map_or_else(|| format!("X{k}USDT"), |n| n.to_string());
            let spec = SymbolSpec::guess(&name);
            let mut rng = Rng::new(k as u64 + 1);
            let mut px = spec.start_price.to_f64();
            let mut drift = 0.0;
            let candles = (0..minutes)
                .map(|m| {
                    let start_ms = 1_700_000_000_000 - 1_700_000_000_000 % 60_000 + m * 60_000;
                    if walk {
                        if rng.up_to(240) == 0 {
                            drift = (rng.unit() - 0.5) * 4e-4;
                        }
                        let open = px;
                        px *= 1.0 + drift + (rng.unit() - 0.5) * 2e-3;
                        let wick = px * rng.unit() * 5e-4;
                        return Candle {
                            start_ms,
                            open,
                            high: open.max(px) + wick,
                            low: open.min(px) - wick,
                            close: px,
                            volume: 1.0 + rng.unit() * 100.0,
                            turnover: px * 50.0,
                        };
                    }
                    let c = history_candle(&spec, 7, Interval::Min1, start_ms);
                    let f = |ticks: i64| spec.px(ticks).to_f64();
                    Candle {
                        start_ms,
                        open: f(c.open),
                        high: f(c.high),
                        low: f(c.low),
                        close: f(c.close),
                        volume: c.volume_lots as f64,
                        turnover: c.notional as f64,
                    }
                })
                .collect();
            SymbolCandles {
                symbol: name,
                candles,
                qty_step: Some(spec.qty_step),
            }
        })
        .collect()
}

/// Candle backtests with the built-in strategies (EMA 9/21 and RSI 14, as configured by
/// default), one thread: candles per second.
fn backtest(c: &mut Criterion) {
    let mut g = c.benchmark_group("backtest_candles");
    let cfg = BacktestConfig {
        strategies: StrategyConfig::default().strategies(),
        confidence_min: StrategyConfig::default().confidence_min,
        broker: BrokerConfig::default(),
        balance: 10_000.0,
        interval_ms: 60_000,
    };
    for (symbols, days, walk) in [(1, 90, false), (3, 30, false), (3, 30, true), (30, 3, true)] {
        let data = backtest_data(symbols, days, walk);
        let n: usize = data.iter().map(|d| d.candles.len()).sum();
        g.throughput(Throughput::Elements(n as u64));
        let shape = if walk { "walk" } else { "venue" };
        let once = backtest::run(
            BacktestConfig {
                strategies: StrategyConfig::default().strategies(),
                ..cfg.clone()
            },
            &data,
        )
        .unwrap()
        .totals;
        // What each shape asks of the order path, beside the figure.
        eprintln!(
            "backtest_candles {shape}_{symbols}_symbols: {n} candles, {} signals, {} orders, {} refused, kill switch: {}",
            once.signals,
            once.orders,
            once.refused,
            once.kill_switch.is_some()
        );
        g.bench_function(
            BenchmarkId::new(format!("{shape}_{symbols}_symbols"), n),
            |b| {
                b.iter(|| {
                    // Fresh strategies every run: each keeps its indicators per symbol.
                    let cfg = BacktestConfig {
                        strategies: StrategyConfig::default().strategies(),
                        ..cfg.clone()
                    };
                    black_box(backtest::run(cfg, &data).unwrap().totals.orders)
                })
            },
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, apply, engine, replay_vs_baselines, compute_crossover, backtest
}
criterion_main!(benches);
