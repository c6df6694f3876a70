//! The `keel` command line over keel-runtime: what the `keel` binary runs, and what a user's own
//! binary runs through [`crate::Bot`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::bench;
use crate::config::{self, LogFormat, Overrides};
use crate::driver::Exit;
use clap::{Parser, Subcommand};
use keel_venue::{Fault, VenueConfig};

/// Tasks still running when a command ends get this long to finish before the runtime drops them.
pub(crate) const RUNTIME_SHUTDOWN_MS_MAX: u64 = 500;
/// The largest synthetic volatility `keel venue` accepts, in bps a minute.
const VOLATILITY_BPS_MAX: f64 = 1_000.0;
/// The shortest REST timeout `keel backfill` accepts.
const REST_TIMEOUT_MS_MIN: u64 = 100;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "A Bybit trading-bot engine that cannot freeze"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct VenueArgs {
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9797")]
    addr: String,
    #[arg(long, value_name = "A,B", default_value = "BTCUSDT,ETHUSDT,SOLUSDT")]
    symbols: String,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A fault to inject later, as SECS:JSON, e.g. '10:{"kind":"stall","secs":40}'.
    #[arg(long, value_name = "SECS:JSON")]
    fault: Vec<String>,
    /// Serve these capture files (one raw frame per line) instead of the synthetic market.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Replay speed, 1 = as recorded.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start the replay when every replayed topic has a subscriber, and play it once: a client
    /// then sees the whole capture from its first frame.
    #[arg(long)]
    replay_from_subscribe: bool,
    /// The synthetic price's volatility: its standard deviation over a minute, in bps.
    #[arg(long, value_name = "BPS", default_value_t = 2.0)]
    volatility_bps: f64,
    /// A trading account's API key (the private API serves it).
    #[arg(long, env = "KEEL_VENUE_API_KEY", requires = "api_secret")]
    api_key: Option<String>,
    /// That account's API secret.
    #[arg(
        long,
        env = "KEEL_VENUE_API_SECRET",
        requires = "api_key",
        hide_env_values = true
    )]
    api_secret: Option<String>,
    /// The account's starting balance of a coin, as COIN=AMOUNT; repeat for more coins.
    #[arg(long, value_name = "COIN=AMOUNT", default_values_t = ["USDT=100000".to_string()])]
    balance: Vec<String>,
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bot. With no venue it starts the embedded simulated venue on loopback.
    Run {
        /// TOML configuration file.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// REST base of the venue; WebSocket is ws(s)://same-host/v5/public/{linear,spot}.
        #[arg(long, value_name = "URL")]
        venue_url: Option<String>,
        /// "embedded" (default) or "bybit" (the real public endpoints).
        #[arg(long, value_name = "NAME")]
        venue: Option<String>,
        /// Comma-separated symbols.
        #[arg(long, value_name = "A,B")]
        symbols: Option<String>,
        /// Stop after this many seconds (exit 0).
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        #[arg(long, value_name = "HOST:PORT")]
        ops_addr: Option<String>,
        /// "text" or "json".
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
        /// Turn signals into orders: signed orders at the venue when live (the embedded
        /// venue's default), simulated fills on paper.
        #[arg(long)]
        auto_execute: bool,
        /// Simulated fills against the live book; no keys, nothing sent.
        #[arg(long)]
        paper: bool,
        /// Signed orders to the venue (keys from KEEL_API_KEY / KEEL_API_SECRET or
        /// [live] key_file; mainnet also needs [live] mainnet_confirmed = true).
        #[arg(long)]
        live: bool,
        /// The SQLite store (default keel.db).
        #[arg(long, value_name = "PATH")]
        db: Option<String>,
        /// Make the log consumer take this long per event (to see slow consumers handled).
        #[arg(long, value_name = "MS", hide = true)]
        consumer_delay_ms: Option<u64>,
    },
    /// Load REST klines into the store for every symbol at once, resumably.
    Backfill {
        #[arg(long, value_name = "A,B", default_value = "BTCUSDT,ETHUSDT,SOLUSDT")]
        symbols: String,
        #[arg(long, default_value = "1")]
        interval: String,
        #[arg(long, default_value_t = 2)]
        days: u32,
        #[arg(long, value_name = "PATH", default_value = "keel.db")]
        db: PathBuf,
        /// REST base of the venue; with none the embedded venue is started.
        #[arg(long, value_name = "URL")]
        venue_url: Option<String>,
        /// "embedded" (default) or "bybit".
        #[arg(long, value_name = "NAME")]
        venue: Option<String>,
        /// Pause after an HTTP 403, ms (Bybit asks for 10 minutes).
        #[arg(long, default_value_t = 600_000, hide = true)]
        rest_penalty_ms: u64,
        #[arg(long, default_value_t = 10_000, hide = true)]
        rest_timeout_ms: u64,
    },
    /// Record a venue's public frames into a capture file, one raw frame a line (what replay,
    /// bench, backtest --capture and venue --replay read).
    Record {
        /// Public topics, e.g. orderbook.50.BTCUSDT,publicTrade.BTCUSDT (at most 10).
        #[arg(long, value_name = "A,B", required = true)]
        topics: String,
        /// "linear" (default) or "spot".
        #[arg(long, default_value = "linear")]
        category: String,
        /// Stop after this many frames.
        #[arg(long, default_value_t = 1000)]
        frames: u64,
        /// Stop after this many seconds at the latest.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Base URL of the venue; with none the embedded venue is started.
        #[arg(long, value_name = "URL")]
        venue_url: Option<String>,
        /// "embedded" (default) or "bybit".
        #[arg(long, value_name = "NAME")]
        venue: Option<String>,
    },
    /// Run the simulated Bybit venue alone: REST, WebSocket and /admin on one address.
    Venue(VenueArgs),
    /// Measure keel against the typical implementation, the re-sort failure mode and the
    /// physical floor on capture files, in one process.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Repetitions; the best of them is reported for the codec, the median elsewhere.
        #[arg(long, default_value_t = 15)]
        reps: usize,
        /// Also run the runtime against the embedded venue for this many seconds (10 symbols,
        /// 10x Bybit's push rate) and report ingest latency and loop lag.
        #[arg(long, value_name = "SECS")]
        runtime: Option<f64>,
        /// Measure each file on its own (one row a shape) instead of all together.
        #[arg(long)]
        each: bool,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Backtest the strategies over the candles a store holds (what `keel backfill` wrote).
    Backtest(crate::backtest::command::BacktestCli),
    /// Replay capture files (one raw WebSocket frame per line) and print the market state.
    Replay {
        /// Print the top of the book after every orderbook frame.
        #[arg(long)]
        each: bool,
        /// Print at most N levels a side in the final book lines.
        #[arg(long, value_name = "N")]
        levels: Option<usize>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(false).init(),
    }
}

pub(crate) fn duration(secs: Option<f64>) -> Result<Option<Duration>, String> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(format!(
            "--duration {s} must be a positive number of seconds"
        )),
    }
}

/// The runtime of `keel run`: one thread for the event loop, its sockets, REST calls and the ops
/// server, so a frame read from a socket reaches the engine without waking another thread.
/// Everything that may take long has a thread of its own (compute pool, store, consumers,
/// embedded venue, watchdog, lag probe). With socket tasks yielding after each frame, ingest p99
/// fell from about 200 us on the two-worker runtime this replaced to about 10 us (BENCHMARKS.md).
pub(crate) fn event_loop_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// What a library user adds to the `keel` command line: their strategies.
#[derive(Default)]
pub struct Extras {
    pub strategies: Vec<keel_core::trading::strategy::SharedStrategy>,
    /// Run the built-in strategies too (as configured under `[strategy]`).
    pub builtins: bool,
}

impl Extras {
    /// Puts the user's strategies beside (or instead of) the built-ins; names must be unique,
    /// as /health and the store tell strategies apart by name.
    pub fn apply(self, engine: &mut keel_core::EngineConfig) -> Result<(), String> {
        if !self.builtins {
            engine.strategy.ema_cross = None;
            engine.strategy.rsi_reversion = None;
        }
        engine.strategies = self.strategies;
        let all = engine.strategy.strategies();
        let mut names: Vec<&str> = all
            .iter()
            .chain(&engine.strategies)
            .map(|s| s.0.name())
            .collect();
        let n = names.len();
        if n > keel_core::engine::trading::STRATEGIES_MAX {
            return Err(format!(
                "{n} strategies: at most {} run at once",
                keel_core::engine::trading::STRATEGIES_MAX
            ));
        }
        if names.iter().any(|x| x.is_empty() || x.len() > 64) {
            return Err("a strategy's name must be 1 to 64 characters".into());
        }
        names.sort_unstable();
        names.dedup();
        if names.len() != n {
            return Err("two strategies have the same name".into());
        }
        Ok(())
    }
}

/// The `keel` binary: the built-in strategies only.
pub fn main() -> ExitCode {
    main_with(
        std::env::args_os(),
        Extras {
            strategies: Vec::new(),
            builtins: true,
        },
    )
}

/// The `keel` command line over `args` (the program name first), with `extras`.
pub fn main_with<I, T>(args: I, extras: Extras) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.cmd {
        Cmd::Replay {
            each,
            levels,
            files,
        } => {
            let args = crate::replay::ReplayArgs {
                files,
                each,
                levels,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            crate::replay::run(&args, &mut out, &mut std::io::stderr())
                .map(|_| ())
                .map_err(|e| format!("keel replay: {e}"))
        }
        Cmd::Backfill {
            symbols,
            interval,
            days,
            db,
            venue_url,
            venue,
            rest_penalty_ms,
            rest_timeout_ms,
        } => backfill_cmd(
            symbols,
            interval,
            days,
            db,
            venue_url,
            venue,
            rest_penalty_ms,
            rest_timeout_ms,
        ),
        Cmd::Record {
            topics,
            category,
            frames,
            seconds,
            out,
            venue_url,
            venue,
        } => record_cmd(topics, category, frames, seconds, out, venue_url, venue),
        Cmd::Bench {
            json,
            reps,
            runtime: secs,
            each,
            files,
        } => match (each, secs) {
            (true, Some(_)) => Err("--each measures the files only: leave out --runtime".into()),
            (true, None) => bench::command::each(json, reps, &files),
            (false, _) => bench::command::all(json, reps, secs, files),
        },
        Cmd::Run {
            config: path,
            venue_url,
            venue,
            symbols,
            duration: secs,
            ops_addr,
            log_format,
            seed,
            auto_execute,
            paper,
            live,
            db,
            consumer_delay_ms,
        } => run_cmd(
            extras,
            path,
            Overrides {
                venue,
                venue_url,
                symbols,
                ops_addr,
                seed,
                log_format,
                consumer_delay_ms,
                auto_execute,
                db,
                paper,
                live,
            },
            secs,
        ),
        Cmd::Venue(args) => venue_cmd(args),
        Cmd::Backtest(args) => crate::backtest::command::run(args, &extras),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_cmd(
    extras: Extras,
    path: Option<PathBuf>,
    overrides: Overrides,
    secs: Option<f64>,
) -> Result<(), String> {
    let mut file = match &path {
        Some(p) => config::load_file(p).map_err(|e| e.to_string())?,
        None => config::FileConfig::default(),
    };
    config::apply_env(&mut file, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    let mut cfg = config::resolve(file, overrides).map_err(|e| e.to_string())?;
    extras.apply(&mut cfg.engine)?;
    let duration = duration(secs)?;
    init_logs(cfg.log_format);
    let rt = event_loop_runtime()?;
    let report = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        crate::run::spawn_shutdown(tx, duration);
        crate::run::run(cfg, rx).await
    })?;
    // Leftover tasks (a slow venue socket) must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS_MAX));
    match report.exit {
        Exit::Clean => {
            tracing::info!(
                frames = report.engine.counters().frames,
                "keel stopped cleanly"
            );
            Ok(())
        }
        Exit::Fatal(msg) => Err(msg),
    }
}

fn venue_cmd(args: VenueArgs) -> Result<(), String> {
    let VenueArgs {
        addr,
        symbols,
        seed,
        fault: faults,
        replay,
        speed,
        replay_from_subscribe,
        volatility_bps,
        api_key,
        api_secret,
        balance,
        duration: secs,
    } = args;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("--addr {addr:?} is not HOST:PORT"))?;
    let symbols = config::parse_symbols(&symbols).map_err(|e| format!("--{}", e.0))?;
    let mut scheduled = Vec::new();
    for f in faults {
        let (at, json) = f
            .split_once(':')
            .ok_or_else(|| format!("--fault {f:?} must be SECS:JSON"))?;
        let at: f64 = at
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("--fault {f:?}: {at:?} is not a finite number of seconds"))?;
        let fault: Fault = serde_json::from_str(json).map_err(|e| format!("--fault {f:?}: {e}"))?;
        scheduled.push((Duration::from_secs_f64(at.max(0.0)), fault));
    }
    let duration = duration(secs)?;
    let feed = if replay.is_empty() {
        None
    } else {
        let mut feed = keel_venue::replay::ReplayFeed::load(&replay, speed)?;
        feed.hold_until_subscribed = replay_from_subscribe;
        feed.once = replay_from_subscribe;
        Some(feed)
    };
    init_logs(LogFormat::Text);
    if !(0.0..=VOLATILITY_BPS_MAX).contains(&volatility_bps) {
        return Err(format!(
            "--volatility-bps must be from 0 to {VOLATILITY_BPS_MAX}, not {volatility_bps}"
        ));
    }
    let mut vc = VenueConfig::new(symbols);
    vc.seed = seed;
    vc.volatility_bps_per_min = volatility_bps;
    if let (Some(api_key), Some(api_secret)) = (api_key, api_secret) {
        let mut balances = Vec::new();
        for b in &balance {
            let (coin, amount) = b
                .split_once('=')
                .ok_or_else(|| format!("--balance {b:?} must be COIN=AMOUNT"))?;
            let amount = keel_core::Dec::parse(amount)
                .ok()
                .filter(|a| !a.is_negative())
                .ok_or_else(|| format!("--balance {b:?}: {amount:?} is not an amount"))?;
            if coin.is_empty()
                || !coin
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Err(format!("--balance {b:?}: {coin:?} is not a coin"));
            }
            balances.push((coin.to_string(), amount));
        }
        vc.accounts.push(keel_venue::AccountConfig {
            api_key,
            api_secret,
            balances,
        });
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        crate::run::spawn_shutdown(tx, duration);
        crate::run::venue_main(addr, vc, feed, scheduled, rx).await
    })?;
    rt.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS_MAX));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn backfill_cmd(
    symbols: String,
    interval: String,
    days: u32,
    db: PathBuf,
    venue_url: Option<String>,
    venue: Option<String>,
    rest_penalty_ms: u64,
    rest_timeout_ms: u64,
) -> Result<(), String> {
    let symbols = config::parse_symbols(&symbols).map_err(|e| format!("--{}", e.0))?;
    let interval = keel_core::wire::topic::Interval::parse(&interval)
        .ok_or_else(|| format!("--interval {interval:?} is not a Bybit interval"))?;
    if !(1..=3650).contains(&days) {
        return Err("--days must be 1..=3650".into());
    }
    let venue = venue_choice(venue, venue_url)?;
    let rest = keel_core::engine::scheduler::RestConfig {
        penalty_ms: rest_penalty_ms,
        timeout_ms: rest_timeout_ms.max(REST_TIMEOUT_MS_MIN),
        ..Default::default()
    };
    init_logs(LogFormat::Text);
    let rt = runtime()?;
    let summary = rt.block_on(crate::backfill::run(crate::backfill::BackfillArgs {
        symbols,
        interval,
        days,
        db,
        venue,
        category: "linear".into(),
        rest,
        seed: 7,
    }))?;
    rt.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS_MAX));
    for (symbol, from, to) in &summary.gaps {
        eprintln!("gap: {symbol} has no candles from {from} to {to}");
    }
    println!("{summary}");
    Ok(())
}

/// `--venue` or `--venue-url`, at most one of them; the embedded venue when neither.
fn venue_choice(
    venue: Option<String>,
    venue_url: Option<String>,
) -> Result<config::VenueChoice, String> {
    Ok(match (venue.as_deref(), venue_url) {
        (Some(_), Some(_)) => return Err("give either --venue or --venue-url".into()),
        (None | Some("embedded"), None) => config::VenueChoice::Embedded,
        (Some("bybit"), None) => config::VenueChoice::Bybit,
        (Some(v), None) => return Err(format!("--venue must be embedded or bybit, not {v:?}")),
        (None, Some(u)) => {
            config::VenueChoice::Url(config::check_http_url(&u).map_err(|e| e.to_string())?)
        }
    })
}

fn record_cmd(
    topics: String,
    category: String,
    frames: u64,
    seconds: u64,
    out: PathBuf,
    venue_url: Option<String>,
    venue: Option<String>,
) -> Result<(), String> {
    let topics = crate::record::parse_topics(&topics)?;
    let category = keel_core::engine::Category::parse(&category)
        .ok_or_else(|| format!("--category must be linear or spot, not {category:?}"))?;
    let venue = venue_choice(venue, venue_url)?;
    init_logs(LogFormat::Text);
    let rt = runtime()?;
    let summary = rt.block_on(crate::record::run(crate::record::RecordArgs {
        venue,
        category,
        topics,
        frames,
        seconds,
        out,
    }));
    rt.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_MS_MAX));
    println!("{}", summary.map_err(|e| format!("keel record: {e}"))?);
    Ok(())
}
