//! The `keel backtest` command: its arguments and what runs them.

use std::path::PathBuf;

use crate::cli::Extras;
use crate::config;

#[derive(clap::Args)]
pub struct BacktestCli {
    /// The store to read candles from.
    #[arg(long, value_name = "PATH", default_value = "keel.db")]
    pub db: PathBuf,
    #[arg(long, value_name = "A,B", default_value = "BTCUSDT,ETHUSDT,SOLUSDT")]
    pub symbols: String,
    #[arg(long, default_value = "1")]
    pub interval: String,
    /// Only the newest N days of candles (default: every stored candle).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// TOML configuration: its [strategy] and [broker] are used.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Starting equity in the quote coin.
    #[arg(long, default_value_t = 10_000.0)]
    pub balance: f64,
    /// Write the figures and every trade as JSON (a sweep: every combination's figures).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the equity curve as an SVG image.
    #[arg(long, value_name = "FILE")]
    pub equity: Option<PathBuf>,
    /// Run every combination, e.g. 'ema_cross.fast=5..15:2,ema_cross.slow=20..40:5'.
    #[arg(long, value_name = "SPEC")]
    pub sweep: Option<String>,
    /// Rank a sweep by: sharpe, sortino, return, profit_factor, drawdown or win.
    #[arg(long, default_value = "sharpe")]
    pub rank: String,
    /// Rows of a sweep to print.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Run the engine itself over these capture files (one raw frame per line), paper-trading
    /// against its own books, instead of over stored candles.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub capture: Vec<PathBuf>,
}

/// `keel backtest`.
pub fn run(a: BacktestCli, extras: &Extras) -> Result<(), String> {
    use std::io::IsTerminal;
    let file = match &a.config {
        Some(p) => config::load_file(p).map_err(|e| e.to_string())?,
        None => config::FileConfig::default(),
    };
    let mut strategy = file.strategy.clone().unwrap_or_default();
    if !extras.builtins {
        strategy.ema_cross = None;
        strategy.rsi_reversion = None;
    }
    strategy
        .validate()
        .map_err(|e| format!("[strategy]: {e}"))?;
    let broker = file.broker.clone().unwrap_or_default();
    broker.validate().map_err(|e| format!("[broker]: {e}"))?;
    let rank = crate::backtest::Metric::parse(&a.rank).ok_or_else(|| {
        format!(
            "--rank {:?}: one of sharpe, sortino, return, profit_factor, drawdown, win",
            a.rank
        )
    })?;
    if !(a.balance.is_finite() && a.balance > 0.0) {
        return Err("--balance must be a positive amount".into());
    }
    if !a.capture.is_empty() {
        let c = crate::backtest::capture::CaptureArgs {
            files: a.capture,
            strategy,
            strategies: extras.strategies.clone(),
            broker,
            signal_every_ms: file.jobs.signal_every_ms.unwrap_or(5_000),
            on_close: file.jobs.strategies_on_candle_close.unwrap_or(false),
            balance: a.balance,
        };
        let start = std::time::Instant::now();
        let report = crate::backtest::capture::run(&c)?;
        let secs = start.elapsed().as_secs_f64();
        if let Some(p) = &a.json {
            let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
            std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
        }
        if let Some(p) = &a.equity {
            crate::backtest::write_svg(p, &report.report, a.balance)?;
        }
        print!(
            "{}",
            crate::backtest::render_capture(&report, a.balance, secs)
        );
        return Ok(());
    }
    let args = crate::backtest::BacktestArgs {
        db: a.db,
        symbols: config::parse_symbols(&a.symbols).map_err(|e| format!("--{}", e.0))?,
        interval: keel_core::wire::topic::Interval::parse(&a.interval)
            .ok_or_else(|| format!("--interval {:?} is not a Bybit interval", a.interval))?,
        days: a.days,
        strategy,
        broker,
        balance: a.balance,
        json: a.json,
        equity: a.equity,
        sweep: a.sweep,
        rank,
        top: a.top,
        progress: std::io::stderr().is_terminal(),
    };
    let data = crate::backtest::load(&args)?;
    let text = match &args.sweep {
        Some(spec) => crate::backtest::sweep(&args, &data, spec, &extras.strategies)?,
        None => crate::backtest::run_one(&args, &data, &extras.strategies)?.1,
    };
    print!("{text}");
    Ok(())
}
