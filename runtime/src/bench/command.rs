//! The `keel bench` command: what runs the measurements and how their figures are printed.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{RUNTIME_SHUTDOWN_MS_MAX, duration, event_loop_runtime};

/// `keel bench --each`: the codec on every file alone, in one process: a row a shape, with the
/// issue's goals (at least 10x cheaper than the typical implementation, within 15x of the floor).
pub fn each(json: bool, reps: usize, files: &[PathBuf]) -> Result<(), String> {
    let mut rows = Vec::new();
    for f in files {
        let r = super::codec(std::slice::from_ref(f), reps)
            .map_err(|e| format!("keel bench: {}: {e}", f.display()))?;
        rows.push((f.display().to_string(), r));
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(f, r)| serde_json::json!({"file": f, "codec": r}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<40} {:>7} {:>8} {:>9} {:>13} {:>11}  goals",
        "file", "frames", "B/frame", "keel ns", "typical/keel", "keel/floor"
    );
    for (f, r) in &rows {
        let met = r.typical_vs_keel >= 10.0 && r.keel_vs_floor <= 15.0;
        println!(
            "{:<40} {:>7} {:>8.0} {:>9.0} {:>12.2}x {:>10.2}x  {}",
            f,
            r.frames,
            r.bytes_per_frame,
            r.keel_ns_per_frame,
            r.typical_vs_keel,
            r.keel_vs_floor,
            if met { "met" } else { "not met" }
        );
    }
    Ok(())
}

pub fn all(json: bool, reps: usize, secs: Option<f64>, files: Vec<PathBuf>) -> Result<(), String> {
    let codec = super::codec(&files, reps).map_err(|e| format!("keel bench: {e}"))?;
    let t2o = super::tick_to_order(&files, reps.min(5)).map_err(|e| format!("keel bench: {e}"))?;
    let runtime = match duration(secs)? {
        Some(d) => {
            crate::run::install_crypto();
            let rt = event_loop_runtime()?;
            let slow = rt.block_on(super::runtime(10, d.as_secs_f64(), 10, 200))?;
            let quick = rt.block_on(super::runtime(10, d.as_secs_f64(), 10, 0))?;
            rt.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS_MAX));
            Some((quick, slow))
        }
        None => None,
    };
    if json {
        let mut v = serde_json::to_value(&codec).map_err(|e| e.to_string())?;
        v["tick_to_order"] = serde_json::to_value(&t2o).map_err(|e| e.to_string())?;
        if let Some((quick, slow)) = &runtime {
            v["runtime"] = serde_json::to_value(quick).map_err(|e| e.to_string())?;
            v["runtime_slow_consumer"] = serde_json::to_value(slow).map_err(|e| e.to_string())?;
        }
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} frames, {:.0} bytes a frame, best of {} repetitions",
        codec.frames, codec.bytes_per_frame, codec.repetitions
    );
    println!(
        "{:<34} {:>12} {:>10}",
        "parse + apply", "ns/frame", "vs keel"
    );
    for (name, ns) in [
        ("keel", codec.keel_ns_per_frame),
        (
            "typical (serde_json::Value+BTreeMap)",
            codec.typical_ns_per_frame,
        ),
        ("re-sort after every delta", codec.resort_ns_per_frame),
        ("floor (memchr every quote)", codec.floor_ns_per_frame),
    ] {
        println!(
            "{name:<34} {ns:>12.0} {:>9.2}x",
            ns / codec.keel_ns_per_frame
        );
    }
    println!(
        "tick to signed order: {} ticks, p50 {:.1} us, p99 {:.1} us, max {:.1} us; intent commit (SQLite, full sync) p50 {:.0} us, p99 {:.0} us",
        t2o.ticks,
        t2o.p50_us,
        t2o.p99_us,
        t2o.max_us,
        t2o.intent_commit_p50_us,
        t2o.intent_commit_p99_us
    );
    if let Some((quick, slow)) = runtime {
        for (what, r) in [("runtime", quick), ("runtime, slow consumer", slow)] {
            println!(
                "{what}: {} symbols, {:.0} frames/s, ingest p50 {:.1} us p99 {:.1} us max {:.1} us, loop lag p99 {:.3} ms max {:.3} ms, consumer {} ms/event, {} drops",
                r.symbols,
                r.frames_per_s,
                r.ingest_p50_us,
                r.ingest_p99_us,
                r.ingest_max_us,
                r.loop_lag_p99_ms,
                r.loop_lag_max_ms,
                r.consumer_delay_ms,
                r.consumer_drops
            );
        }
    }
    Ok(())
}
