//! The profiling loop behind BENCHMARKS.md's "Closing the gap" figures: decode + apply + drain over
//! the orderbook.200 captures, a fresh market per pass (built outside the timing), and the best
//! and quantiles of the passes.
//! keel alone in a loop, so caches and branch predictors stay warm (unlike `keel bench`, which
//! interleaves the baselines). Under `valgrind --tool=cachegrind` it gives instruction counts,
//! which do not move with the machine's noise.
//!
//! ```sh
//! cargo run --release --example book_loop -- 300                   # all four captures
//! SYMBOLS=BTCUSDT cargo run --release --example book_loop -- 300   # one
//! DECODE_ONLY=1 cargo run --release --example book_loop -- 300     # the decoder alone
//! COLD=1 cargo run --release --example book_loop -- 300            # branch predictors scrambled
//! FILES="a.jsonl b.jsonl" cargo run --release --example book_loop -- 300  # recordings instead
//! ```
//!
//! A pass replays the same frames every time, and the CPU's branch predictors learn a good part
//! of keel's data-dependent branches across passes. `COLD=1` runs 100,000 random branches before
//! each pass (untimed), leaving the predictors as a live stream or `keel bench`'s baselines leave
//! them: the best pass then took 10% longer on the four captures and 22% longer on BTCUSDT
//! (BENCHMARKS.md, "Session 4").

use keel_core::wire::codec::Decoder;
use keel_core::{Market, MarketConfig, Time};
use keel_suite::fixtures_dir;

fn main() {
    let symbols = std::env::var("SYMBOLS").unwrap_or("BTCUSDT ETHUSDT SOLUSDT DOGEUSDT".into());
    let passes: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
        .max(1);
    let paths: Vec<std::path::PathBuf> = match std::env::var("FILES") {
        Ok(files) => files.split_whitespace().map(Into::into).collect(),
        Err(_) => symbols
            .split_whitespace()
            .map(|s| fixtures_dir().join(format!("ws/linear/orderbook.200.{s}.jsonl")))
            .collect(),
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    let decode_only = std::env::var_os("DECODE_ONLY").is_some();
    let cold = std::env::var_os("COLD").is_some();
    let mut samples = Vec::with_capacity(passes);
    for pass in 0..passes {
        if cold {
            scramble_branch_predictors(pass as u64);
        }
        // Built before the clock starts, as `keel bench` builds its state: the decoder's number
        // memo is 224 KB whose first touch is page faults, a cost paid once per connection.
        let mut decoder = decode_only.then(Decoder::default);
        let mut market = (!decode_only).then(|| Market::new(MarketConfig::default()));
        let t = std::time::Instant::now();
        if let Some(d) = decoder.as_mut() {
            for l in &lines {
                std::hint::black_box(d.decode_bytes(l).is_ok());
            }
        }
        if let Some(m) = market.as_mut() {
            for l in &lines {
                let _ = m.handle_frame_bytes(Time::ZERO, l);
                while m.poll_event().is_some() {}
            }
        }
        samples.push(t.elapsed().as_nanos() as f64 / lines.len() as f64);
        std::hint::black_box((&decoder, &market));
    }
    samples.sort_by(f64::total_cmp);
    let q = |f: f64| samples[((samples.len() - 1) as f64 * f) as usize];
    println!(
        "{} frames, ns a frame: best {:.0} p10 {:.0} median {:.0} p75 {:.0}",
        lines.len(),
        samples[0],
        q(0.1),
        q(0.5),
        q(0.75)
    );
}

/// Branches on random bits: whatever the predictors learned of the last pass is overwritten.
fn scramble_branch_predictors(seed: u64) {
    let (mut x, mut c) = (seed | 1, 0u64);
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x & 1 == 0 {
            c += 1;
        } else if x & 2 == 0 {
            c += 3;
        } else if x & 4 == 0 {
            c ^= 5;
        }
    }
    std::hint::black_box(c);
}
