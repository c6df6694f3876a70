//! `keel backtest`: the strategies over candles a store holds (what `keel backfill` wrote), in
//! virtual time: a terminal report, the same figures and every trade as JSON, and the equity
//! curve as an SVG image; or a parameter sweep run in parallel and ranked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use keel_core::backtest::{self, BacktestConfig, Report, SymbolCandles};
use keel_core::trading::broker::BrokerConfig;
use keel_core::trading::strategy::{Candle, SharedStrategy, StrategyConfig};
use keel_core::wire::topic::{Interval, civil_from_days};
use rayon::prelude::*;

pub mod capture;
pub mod command;

/// Combinations one sweep may run.
pub const SWEEP_COMBINATIONS_MAX: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BacktestArgs {
    pub db: PathBuf,
    pub symbols: Vec<String>,
    pub interval: Interval,
    /// The newest this many days; all stored candles when `None`.
    pub days: Option<u32>,
    pub strategy: StrategyConfig,
    pub broker: BrokerConfig,
    pub balance: f64,
    pub json: Option<PathBuf>,
    pub equity: Option<PathBuf>,
    pub sweep: Option<String>,
    pub rank: Metric,
    pub top: usize,
    /// A progress bar for sweeps (on a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Sharpe,
    Sortino,
    Return,
    ProfitFactor,
    Drawdown,
    WinRate,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "sharpe" => Metric::Sharpe,
            "sortino" => Metric::Sortino,
            "return" => Metric::Return,
            "profit_factor" => Metric::ProfitFactor,
            "drawdown" => Metric::Drawdown,
            "win" => Metric::WinRate,
            _ => return None,
        })
    }

    /// The figure to rank by, higher is better; `None` ranks last.
    fn score(self, r: &Report) -> Option<f64> {
        let t = &r.totals;
        match self {
            Metric::Sharpe => t.sharpe,
            Metric::Sortino => t.sortino,
            Metric::Return => Some(t.return_pct),
            Metric::ProfitFactor => t.profit_factor,
            Metric::Drawdown => Some(-t.max_drawdown_pct),
            Metric::WinRate => Some(t.win_pct),
        }
        .filter(|x| x.is_finite())
    }
}

/// Reads the store's candles for every symbol; refuses a store that is missing or holds none.
pub fn load(args: &BacktestArgs) -> Result<Vec<SymbolCandles>, String> {
    if !args.db.exists() {
        return Err(format!(
            "no store at {}: run `keel backfill --db {}` first",
            args.db.display(),
            args.db.display()
        ));
    }
    let interval_ms = interval_ms(args.interval)?;
    let limit = match args.days {
        Some(d) => (u64::from(d) * 86_400_000 / interval_ms) as usize,
        None => usize::MAX,
    };
    let store = crate::store::Store::open(&args.db)?;
    let mut out = Vec::new();
    for s in &args.symbols {
        let bars = store.load_candles(s, args.interval, limit)?;
        if bars.is_empty() {
            return Err(format!(
                "the store holds no {} candles of {s}: run `keel backfill --symbols {s} --interval {}`",
                args.interval.as_str(),
                args.interval.as_str()
            ));
        }
        out.push(SymbolCandles {
            symbol: s.clone(),
            candles: bars.iter().map(Candle::from).collect(),
            qty_step: None,
        });
    }
    Ok(out)
}

fn interval_ms(i: Interval) -> Result<u64, String> {
    i.fixed_ms()
        .ok_or_else(|| "monthly candles cannot be backtested (their length varies)".into())
}

fn config(
    args: &BacktestArgs,
    strategy: &StrategyConfig,
    extra: &[SharedStrategy],
) -> Result<BacktestConfig, String> {
    Ok(BacktestConfig {
        strategies: strategy
            .strategies()
            .into_iter()
            .chain(extra.iter().cloned())
            .collect(),
        confidence_min: strategy.confidence_min,
        broker: args.broker.clone(),
        balance: args.balance,
        interval_ms: interval_ms(args.interval)?,
    })
}

/// One backtest: the report as printed, after writing the JSON and the image when asked.
pub fn run_one(
    args: &BacktestArgs,
    data: &[SymbolCandles],
    extra: &[SharedStrategy],
) -> Result<(Report, String), String> {
    let cfg = config(args, &args.strategy, extra)?;
    let names: Vec<String> = cfg
        .strategies
        .iter()
        .map(|s| s.0.name().to_string())
        .collect();
    let start = std::time::Instant::now();
    let report = backtest::run(cfg, data)?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.equity {
        write_svg(p, &report, args.balance)?;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut text = render(&report, args, &names);
    let _ = writeln!(
        text,
        "{:<42} {:.3} s, {:.0} candles/s on one core",
        "simulated in",
        secs,
        report.totals.candles as f64 / secs.max(1e-9)
    );
    Ok((report, text))
}

/// The freqtrade-like terminal report.
pub fn render(r: &Report, args: &BacktestArgs, strategies: &[&str]) -> String {
    let t = &r.totals;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "BACKTEST  {} candles of {} ({} to {}), strategies: {}",
        t.candles,
        args.interval.as_str(),
        date(t.start_ms),
        date(t.end_ms),
        strategies.join(", ")
    );
    s.push_str(&render_figures(r, args.balance));
    s
}

/// The per-symbol table and the totals, for either kind of backtest.
pub fn render_figures(r: &Report, balance: f64) -> String {
    let t = &r.totals;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:>7} {:>7} {:>13} {:>11} {:>14}",
        "symbol", "trades", "win %", "PnL", "fees", "avg duration"
    );
    for x in &r.symbols {
        let _ = writeln!(
            s,
            "{:<12} {:>7} {:>7.1} {:>13.2} {:>11.2} {:>14}",
            x.symbol,
            x.trades,
            x.win_pct,
            x.pnl,
            x.fees,
            duration(x.avg_duration_s)
        );
    }
    let avg: f64 = if r.trades.is_empty() {
        0.0
    } else {
        r.trades
            .iter()
            .map(|x| (x.exit_ms - x.entry_ms) as f64 / 1e3)
            .sum::<f64>()
            / r.trades.len() as f64
    };
    let _ = writeln!(
        s,
        "{:<12} {:>7} {:>7.1} {:>13.2} {:>11.2} {:>14}",
        "TOTAL",
        t.trades,
        t.win_pct,
        r.trades.iter().map(|x| x.pnl).sum::<f64>(),
        t.fees,
        duration(avg)
    );
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.2}"));
    let rows = [
        ("total PnL (with open positions)", format!("{:.2}", t.pnl)),
        ("return", format!("{:.2} %", t.return_pct)),
        (
            "starting / final equity",
            format!("{:.2} / {:.2}", balance, t.final_equity),
        ),
        (
            "max drawdown",
            // Dates only for a drawdown there was: none printed 1970-01-01 as its dates.
            if t.max_drawdown > 0.0 {
                format!(
                    "{:.2} ({:.2} %), {} to {}",
                    t.max_drawdown,
                    t.max_drawdown_pct,
                    date(t.drawdown_peak_ms),
                    date(t.drawdown_trough_ms)
                )
            } else {
                "none".to_string()
            },
        ),
        ("Sharpe (daily, annualised)", opt(t.sharpe)),
        ("Sortino (daily, annualised)", opt(t.sortino)),
        ("profit factor", opt(t.profit_factor)),
        ("exposure", format!("{:.1} %", t.exposure_pct)),
        (
            "signals / orders / fills",
            format!("{} / {} / {}", t.signals, t.orders, t.fills),
        ),
        (
            "refused by risk checks / strategy panics",
            format!("{} / {}", t.refused, t.faults),
        ),
        (
            "kill switch",
            t.kill_switch
                .clone()
                .unwrap_or_else(|| "not tripped".into()),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<42} {v}");
    }
    s
}

fn duration(secs: f64) -> String {
    let m = (secs / 60.0).round() as u64;
    format!("{}:{:02}", m / 60, m % 60)
}

/// `YYYY-MM-DD HH:MM` (UTC) of a time in ms.
fn date(ms: u64) -> String {
    let (y, mo, d) = civil_from_days((ms / 86_400_000) as i64);
    let min = ms % 86_400_000 / 60_000;
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}", min / 60, min % 60)
}

/// The equity curve as an SVG line chart. Written by hand: one polyline and a few labels do not
/// need a plotting library's build.
pub fn write_svg(path: &Path, r: &Report, balance: f64) -> Result<(), String> {
    let (w, h, pad) = (900.0, 360.0, 50.0);
    let pts = &r.equity;
    let (t0, t1) = (
        pts.first().map_or(0, |p| p.0) as f64,
        pts.last().map_or(1, |p| p.0) as f64,
    );
    let lo = pts.iter().map(|p| p.1).fold(balance, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(balance, f64::max);
    let span = (hi - lo).max(1e-9);
    let x = |t: f64| pad + (t - t0) / (t1 - t0).max(1.0) * (w - 2.0 * pad);
    let y = |e: f64| h - pad - (e - lo) / span * (h - 2.0 * pad);
    let mut line = String::new();
    for (t, e) in pts {
        let _ = write!(line, "{:.1},{:.1} ", x(*t as f64), y(*e));
    }
    let t = &r.totals;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="{pad}" y="24" font-size="15">Equity: {start} to {end}, return {ret:.2} %, max drawdown {dd:.2} %</text>
<line x1="{pad}" y1="{base:.1}" x2="{right}" y2="{base:.1}" stroke="#bbb" stroke-dasharray="4 3"/>
<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{line}"/>
<text x="4" y="{ytop:.1}">{hi:.0}</text>
<text x="4" y="{ybot:.1}">{lo:.0}</text>
<text x="{pad}" y="{ydate}">{start}</text>
<text x="{right}" y="{ydate}" text-anchor="end">{end}</text>
</svg>
"##,
        start = date(t.start_ms),
        end = date(t.end_ms),
        ret = t.return_pct,
        dd = t.max_drawdown_pct,
        base = y(balance),
        right = w - pad,
        ytop = y(hi) + 4.0,
        ybot = y(lo) + 4.0,
        ydate = h - pad / 2.0,
    );
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

/// One parameter of a sweep: `strategy.field` and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepParam {
    pub strategy: String,
    pub field: String,
    pub values: Vec<f64>,
}

/// Reads `ema_cross.fast=5..15:2,ema_cross.slow=20..40:5` (ranges inclusive, step after the
/// colon, 1 when absent; a single value is a range of one).
pub fn parse_sweep(spec: &str) -> Result<Vec<SweepParam>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: &str| format!("--sweep {part:?}: {why}");
        let (name, range) = part
            .split_once('=')
            .ok_or_else(|| bad("expected strategy.field=FROM..TO:STEP"))?;
        let (strategy, field) = name
            .split_once('.')
            .ok_or_else(|| bad("the parameter must be strategy.field"))?;
        let (span, step) = match range.split_once(':') {
            Some((s, st)) => (
                s,
                st.parse::<f64>()
                    .map_err(|_| bad("the step is not a number"))?,
            ),
            None => (range, 1.0),
        };
        let (from, to) = match span.split_once("..") {
            Some((a, b)) => (a.parse::<f64>(), b.parse::<f64>()),
            None => (span.parse::<f64>(), span.parse::<f64>()),
        };
        let (Ok(from), Ok(to)) = (from, to) else {
            return Err(bad("FROM and TO must be numbers"));
        };
        if !(from.is_finite() && to.is_finite() && step.is_finite() && step > 0.0 && from <= to) {
            return Err(bad("needs FROM <= TO and a positive STEP"));
        }
        let n = ((to - from) / step + 1e-9).floor() as usize + 1;
        if n > SWEEP_COMBINATIONS_MAX {
            return Err(bad("too many values"));
        }
        out.push(SweepParam {
            strategy: strategy.to_string(),
            field: field.to_string(),
            values: (0..n).map(|i| from + i as f64 * step).collect(),
        });
    }
    if out.is_empty() {
        return Err("--sweep names no parameter".into());
    }
    Ok(out)
}

/// Every combination of the parameters applied to `base`, in order; those the strategy's own
/// checks refuse (a fast EMA not faster than the slow one) are counted, not run.
pub fn combinations(
    base: &StrategyConfig,
    params: &[SweepParam],
) -> Result<(Vec<(String, StrategyConfig)>, usize), String> {
    let total = params
        .iter()
        .try_fold(1usize, |n, p| n.checked_mul(p.values.len()))
        .filter(|n| *n <= SWEEP_COMBINATIONS_MAX)
        .ok_or_else(|| format!("a sweep runs at most {SWEEP_COMBINATIONS_MAX} combinations"))?;
    let base_json = serde_json::to_value(base).map_err(|e| e.to_string())?;
    for p in params {
        match base_json.get(&p.strategy) {
            Some(serde_json::Value::Object(o)) if o.contains_key(&p.field) => {}
            Some(serde_json::Value::Object(_)) => {
                return Err(format!("{} has no parameter {:?}", p.strategy, p.field));
            }
            _ => {
                return Err(format!(
                    "no built-in strategy {:?} is enabled (ema_cross, rsi_reversion)",
                    p.strategy
                ));
            }
        }
    }
    let mut out = Vec::new();
    let mut refused = 0;
    for i in 0..total {
        let mut v = base_json.clone();
        let mut label = Vec::new();
        let mut k = i;
        for p in params {
            let x = p.values[k % p.values.len()];
            k /= p.values.len();
            let slot = &mut v[&p.strategy][&p.field];
            *slot = if slot.is_u64() {
                if x.fract() != 0.0 || x < 0.0 {
                    return Err(format!("{}.{} takes whole numbers", p.strategy, p.field));
                }
                serde_json::json!(x as u64)
            } else {
                serde_json::json!(x)
            };
            label.push(format!("{}.{}={}", p.strategy, p.field, slot));
        }
        let cfg: StrategyConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        if cfg.validate().is_err() {
            refused += 1;
            continue;
        }
        out.push((label.join(","), cfg));
    }
    Ok((out, refused))
}

/// Runs every combination in parallel (rayon) and prints them ranked by `args.rank`.
pub fn sweep(
    args: &BacktestArgs,
    data: &[SymbolCandles],
    spec: &str,
    extra: &[SharedStrategy],
) -> Result<String, String> {
    let params = parse_sweep(spec)?;
    let (combos, refused) = combinations(&args.strategy, &params)?;
    if combos.is_empty() {
        return Err(format!(
            "--sweep: every one of its {refused} combinations is refused by the strategies' checks"
        ));
    }
    let bar = if args.progress {
        indicatif::ProgressBar::new(combos.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = std::time::Instant::now();
    let mut results: Vec<(String, Report)> = combos
        .par_iter()
        .map(|(label, strategy)| {
            let r = config(args, strategy, extra).and_then(|c| backtest::run(c, data));
            bar.inc(1);
            r.map(|r| (label.clone(), r))
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    // Highest first; `None` last; ties keep the combinations' order (the sort is stable).
    results.sort_by(|a, b| {
        let (x, y) = (args.rank.score(&a.1), args.rank.score(&b.1));
        match (x, y) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "SWEEP  {} combinations ({refused} refused by the strategies' checks) in {secs:.2} s on {} thread{}, ranked by {:?}",
        results.len(),
        rayon::current_num_threads(),
        if rayon::current_num_threads() == 1 {
            ""
        } else {
            "s"
        },
        args.rank
    );
    let _ = writeln!(
        s,
        "{:>4}  {:<44} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "rank", "parameters", "trades", "return %", "max dd %", "sharpe", "sortino", "pf"
    );
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.2}"));
    for (i, (label, r)) in results.iter().take(args.top.max(1)).enumerate() {
        let t = &r.totals;
        let _ = writeln!(
            s,
            "{:>4}  {:<44} {:>7} {:>9.2} {:>9.2} {:>8} {:>8} {:>7}",
            i + 1,
            label,
            t.trades,
            t.return_pct,
            t.max_drawdown_pct,
            opt(t.sharpe),
            opt(t.sortino),
            opt(t.profit_factor)
        );
    }
    if let Some(p) = &args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(label, r)| serde_json::json!({"parameters": label, "totals": r.totals}))
            .collect();
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(s)
}

/// A capture backtest's terminal report.
pub fn render_capture(r: &capture::CaptureReport, balance: f64, secs: f64) -> String {
    let t = &r.report.totals;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "BACKTEST  {} frames of {} ({} to {}), {} refused; {} signals, {} orders",
        r.frames,
        r.report
            .symbols
            .iter()
            .map(|x| x.symbol.as_str())
            .collect::<Vec<_>>()
            .join(","),
        date(t.start_ms),
        date(t.end_ms),
        r.bad_frames,
        r.signals.len(),
        r.orders.len()
    );
    s.push_str(&render_figures(&r.report, balance));
    let _ = writeln!(
        s,
        "{:<42} {secs:.3} s, {:.0} frames/s on one core",
        "simulated in",
        r.frames as f64 / secs.max(1e-9)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_spec_is_read_and_expanded_in_order_with_invalid_ones_counted() {
        let p = parse_sweep("ema_cross.fast=5..15:2, ema_cross.slow=20..40:5").unwrap();
        assert_eq!(p[0].values, vec![5.0, 7.0, 9.0, 11.0, 13.0, 15.0]);
        assert_eq!(p[1].values, vec![20.0, 25.0, 30.0, 35.0, 40.0]);
        let (c, refused) = combinations(&StrategyConfig::default(), &p).unwrap();
        assert_eq!((c.len(), refused), (30, 0));
        assert_eq!(c[0].0, "ema_cross.fast=5,ema_cross.slow=20");
        assert_eq!(c[0].1.ema_cross.unwrap().fast, 5);
        let p = parse_sweep("ema_cross.fast=10..30:10,ema_cross.slow=20").unwrap();
        let (c, refused) = combinations(&StrategyConfig::default(), &p).unwrap();
        // fast 20 and 30 are not faster than slow 20.
        assert_eq!((c.len(), refused), (1, 2));
        let p = parse_sweep("ema_cross.full_gap=0.001..0.003:0.001").unwrap();
        let (c, _) = combinations(&StrategyConfig::default(), &p).unwrap();
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn bad_sweeps_are_refused_by_name() {
        for (spec, why) in [
            ("ema_cross.fast", "expected"),
            ("fast=1..2", "strategy.field"),
            ("ema_cross.fast=9..1", "FROM <= TO"),
            ("ema_cross.fast=1..9:0", "positive STEP"),
            ("ema_cross.fast=a..b", "numbers"),
            ("", "no parameter"),
        ] {
            let e = parse_sweep(spec).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
        let p = parse_sweep("ema_cross.speed=1..2").unwrap();
        assert!(
            combinations(&StrategyConfig::default(), &p)
                .unwrap_err()
                .contains("no parameter")
        );
        let p = parse_sweep("ema_cross.fast=1.5").unwrap();
        assert!(
            combinations(&StrategyConfig::default(), &p)
                .unwrap_err()
                .contains("whole numbers")
        );
        let p = parse_sweep("macd.fast=1..2").unwrap();
        assert!(
            combinations(&StrategyConfig::default(), &p)
                .unwrap_err()
                .contains("no built-in strategy")
        );
    }

    #[test]
    fn a_run_without_a_drawdown_prints_none_instead_of_dates() {
        let mut r = keel_core::backtest::Report {
            symbols: Vec::new(),
            totals: keel_core::backtest::Totals::default(),
            trades: Vec::new(),
            equity: Vec::new(),
        };
        let text = render_figures(&r, 10_000.0);
        assert!(text.contains("none") && !text.contains("1970"), "{text}");
        r.totals.max_drawdown = 5.0;
        r.totals.drawdown_trough_ms = 1_796_079_361_201;
        assert!(render_figures(&r, 10_000.0).contains("to 2026-11-30 22:56"));
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_796_079_361_201), "2026-11-30 22:56");
        assert_eq!(duration(3_660.0), "1:01");
    }
}
