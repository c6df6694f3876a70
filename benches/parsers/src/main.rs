//! keel's decode + book apply against parsing alone with sonic-rs, simd-json and serde_json, and
//! the quote-count floor `keel bench` uses, on the same files. Each figure is the best of many
//! passes over a file's frames in a tight loop (as `examples/book_loop.rs` measures keel), ns a
//! frame. The parsers only parse: prices and sizes stay strings, no book is kept.

use std::hint::black_box;
use std::time::Instant;

use keel_core::wire::codec::Decoder;
use keel_core::{Market, MarketConfig, Time};

/// The best pass of `passes`, in ns a frame; `setup` builds what a pass starts from, untimed.
fn best<S, F: FnMut(&mut S, &[u8])>(
    lines: &[Vec<u8>],
    passes: usize,
    mut setup: impl FnMut() -> S,
    mut each: F,
) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..passes {
        let mut state = setup();
        let t = Instant::now();
        for l in lines {
            each(&mut state, l);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / lines.len() as f64);
        black_box(&state);
    }
    best
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: keel-parsers-bench FILE.jsonl...");
        std::process::exit(2);
    }
    println!(
        "{:<28} {:>7} {:>8} {:>10} {:>11} {:>9} {:>15} {:>10} {:>10}",
        "file", "B/frame", "floor", "keel", "keel decode", "sonic-rs", "simd-json tape", "simd-json", "serde_json"
    );
    for path in files {
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let lines: Vec<Vec<u8>> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let per = lines.iter().map(Vec::len).sum::<usize>() as f64 / lines.len() as f64;
        let floor = best(&lines, 300, || 0usize, |n, l| {
            *n += memchr::memchr_iter(b'"', l).count()
        });
        let keel = best(&lines, 200, || Market::new(MarketConfig::default()), |m, l| {
            let _ = m.handle_frame_bytes(Time::ZERO, l);
            while m.poll_event().is_some() {}
        });
        let decode = best(&lines, 200, Decoder::default, |d, l| {
            black_box(d.decode_bytes(l).is_ok());
        });
        let sonic = best(&lines, 100, || 0usize, |n, l| {
            *n += sonic_rs::from_slice::<sonic_rs::Value>(l).is_ok() as usize
        });
        // simd-json parses in place: each frame is copied into a buffer first, as a reader
        // handing it over would.
        let tape = best(
            &lines,
            100,
            || (Vec::new(), simd_json::Buffers::default()),
            |(buf, buffers), l| {
                buf.clear();
                buf.extend_from_slice(l);
                black_box(simd_json::Deserializer::from_slice_with_buffers(buf, buffers).is_ok());
            },
        );
        let value = best(&lines, 50, Vec::new, |buf, l| {
            buf.clear();
            buf.extend_from_slice(l);
            black_box(simd_json::to_borrowed_value(buf).is_ok());
        });
        let serde = best(&lines, 30, || 0usize, |n, l| {
            *n += serde_json::from_slice::<serde_json::Value>(l).is_ok() as usize
        });
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{name:<28} {per:>7.0} {floor:>8.0} {keel:>10.0} {decode:>11.0} {sonic:>9.0} {tape:>15.0} {value:>10.0} {serde:>10.0}"
        );
    }
}
