//! `keel replay`: feeds capture files (one raw frame per line) through the core and prints the
//! resulting market state as JSON Lines.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use keel_core::decimal::Level;
use keel_core::market::Handled;
use keel_core::market::book::OrderBook;
use keel_core::{Market, MarketConfig, Time};

pub struct ReplayArgs {
    pub files: Vec<PathBuf>,
    pub each: bool,
    pub levels: Option<usize>,
}

#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub lines: u64,
    pub frames: u64,
    pub bad: u64,
    pub elapsed_ns: u128,
}

/// Reads every file first so that the timing covers decoding and applying only.
pub fn load_lines(files: &[PathBuf]) -> io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    for f in files {
        let data = std::fs::read(f)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
        for line in data.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            lines.push(line.to_vec());
        }
    }
    Ok(lines)
}

pub fn run(
    args: &ReplayArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<ReplaySummary> {
    let lines = load_lines(&args.files)?;
    let mut market = Market::new(MarketConfig::default());
    let mut buf = String::new();
    let mut summary = ReplaySummary::default();
    let mut timed_ns: u128 = 0;
    let loop_start = Instant::now();
    for line in &lines {
        summary.lines += 1;
        let t0 = args.each.then(Instant::now);
        let handled = market.handle_frame_bytes(Time::ZERO, line);
        if let Some(t0) = t0 {
            timed_ns += t0.elapsed().as_nanos();
        }
        // The replay has no consumer for events; drain them so the queue stays empty.
        while market.poll_event().is_some() {}
        match handled {
            Ok(Handled::Book { book, .. }) if args.each => {
                summary.frames += 1;
                each_line(&mut buf, market.book_topic(book), market.book(book));
                out.write_all(buf.as_bytes())?;
            }
            Ok(_) => summary.frames += 1,
            Err(_) => summary.bad += 1,
        }
    }
    summary.elapsed_ns = if args.each {
        timed_ns
    } else {
        loop_start.elapsed().as_nanos()
    };

    let mut books: Vec<_> = market.book_ids().collect();
    books.sort_by(|a, b| market.book_topic(*a).cmp(market.book_topic(*b)));
    for id in books {
        final_book_line(
            &mut buf,
            market.book_topic(id),
            market.book(id),
            args.levels,
        );
        out.write_all(buf.as_bytes())?;
    }
    let mut series: Vec<_> = market.series_ids().collect();
    series.sort_by(|a, b| market.series_topic(*a).cmp(market.series_topic(*b)));
    for id in series {
        let topic = market.series_topic(id);
        for c in market.series(id).closed() {
            let b = &c.bar;
            buf.clear();
            let _ = writeln!(
                buf,
                r#"{{"topic":"{topic}","start":{},"open":"{}","high":"{}","low":"{}","close":"{}","volume":"{}","turnover":"{}"}}"#,
                b.start_ms, b.open, b.high, b.low, b.close, b.volume, b.turnover
            );
            out.write_all(buf.as_bytes())?;
        }
    }
    out.flush()?;

    let c = market.counters();
    let ns_per_frame = if summary.lines > 0 {
        summary.elapsed_ns as f64 / summary.lines as f64
    } else {
        0.0
    };
    let mut reasons = String::new();
    for (r, n) in c.bad.iter() {
        let _ = write!(reasons, " {}={n}", r.as_str());
    }
    writeln!(
        err,
        "replay: lines={} frames={} bad={}{} ns_per_frame={:.0} (decode+apply{})",
        summary.lines,
        summary.frames,
        summary.bad,
        reasons,
        ns_per_frame,
        if args.each { ", timed per frame" } else { "" }
    )?;
    Ok(summary)
}

fn level(buf: &mut String, l: Option<Level>) {
    match l {
        Some(l) => {
            let _ = write!(buf, r#"["{}","{}"]"#, l.px, l.qty);
        }
        None => buf.push_str("null"),
    }
}

fn opt_u64(buf: &mut String, v: Option<u64>) {
    match v {
        Some(v) => {
            let _ = write!(buf, "{v}");
        }
        None => buf.push_str("null"),
    }
}

fn each_line(buf: &mut String, topic: &str, book: &OrderBook) {
    buf.clear();
    let _ = write!(buf, r#"{{"topic":"{topic}","u":"#);
    opt_u64(buf, book.last_u());
    let _ = write!(buf, r#","state":"{}","bid":"#, book.state().as_str());
    level(buf, book.raw_bids().next());
    buf.push_str(r#","ask":"#);
    level(buf, book.raw_asks().next());
    buf.push_str("}\n");
}

fn final_book_line(buf: &mut String, topic: &str, book: &OrderBook, levels: Option<usize>) {
    buf.clear();
    let _ = write!(buf, r#"{{"topic":"{topic}","u":"#);
    opt_u64(buf, book.last_u());
    buf.push_str(r#","seq":"#);
    opt_u64(buf, book.last_seq());
    let _ = write!(buf, r#","state":"{}","bids":["#, book.state().as_str());
    let n = levels.unwrap_or(usize::MAX);
    for (i, l) in book.raw_bids().take(n).enumerate() {
        if i > 0 {
            buf.push(',');
        }
        level(buf, Some(l));
    }
    buf.push_str(r#"],"asks":["#);
    for (i, l) in book.raw_asks().take(n).enumerate() {
        if i > 0 {
            buf.push(',');
        }
        level(buf, Some(l));
    }
    buf.push_str("]}\n");
}
