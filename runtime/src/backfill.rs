//! `keel backfill`: REST klines for every symbol at once, paced by the engine's scheduler (the
//! shared rate limit, retries, the 403 penalty), resumable from the store, with progress bars.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use keel_core::Time;
use keel_core::engine::backfill::{Backfill, BackfillConfig, BackfillOutput, rate_bound};
use keel_core::engine::scheduler::RestConfig;
use keel_core::wire::topic::Interval;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::VenueChoice;
use crate::store::{Store, StoreCmd, spawn_store};
use crate::transport::{HttpTransport, ReqwestTransport};

/// HTTP answers queued for the backfill machine; each request in flight holds one place.
const INBOX_MESSAGES_MAX: usize = 1024;
/// The timer's parking distance while the machine has no deadline.
const TIMER_IDLE_S: u64 = 3600;

pub struct BackfillArgs {
    pub symbols: Vec<String>,
    pub interval: Interval,
    pub days: u32,
    pub db: PathBuf,
    pub venue: VenueChoice,
    pub category: String,
    pub rest: RestConfig,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub symbols: usize,
    pub candles: u64,
    pub requests: u64,
    pub elapsed: Duration,
    pub bound: Duration,
    pub gaps: Vec<(String, u64, u64)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backfill done: symbols={} candles={} requests={} elapsed_s={:.1} bound_s={:.1}",
            self.symbols,
            self.candles,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.bound.as_secs_f64()
        )
    }
}

enum Progress {
    /// The bars draw through the MultiProgress, which must live as long as they do.
    Bars {
        _multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
        total: ProgressBar,
    },
    Log,
}

impl Progress {
    fn new(symbols: &[String]) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Log;
        }
        let mp = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} candles")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let mut bars = HashMap::new();
        for s in symbols {
            let b = mp.add(
                ProgressBar::new(0)
                    .with_style(style.clone())
                    .with_prefix(s.clone()),
            );
            bars.insert(s.clone(), b);
        }
        let total_style =
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} candles, ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        let total = mp.add(
            ProgressBar::new(0)
                .with_style(total_style)
                .with_prefix("total"),
        );
        Progress::Bars {
            _multi: mp,
            bars,
            total,
        }
    }

    fn update(&self, symbol: &str, have: u64, want: u64, all: &HashMap<String, (u64, u64)>) {
        match self {
            Progress::Bars { bars, total, .. } => {
                if let Some(b) = bars.get(symbol) {
                    b.set_length(want);
                    b.set_position(have);
                }
                total.set_length(all.values().map(|(_, w)| w).sum());
                total.set_position(all.values().map(|(h, _)| h).sum());
            }
            Progress::Log => tracing::info!(symbol, have, want, "backfill progress"),
        }
    }

    fn finish(&self) {
        if let Progress::Bars { bars, total, .. } = self {
            for b in bars.values() {
                b.finish();
            }
            total.finish();
        }
    }
}

pub async fn run(args: BackfillArgs) -> Result<Summary, String> {
    crate::run::install_crypto();
    let mut venue_guard = None;
    let base = match &args.venue {
        VenueChoice::Url(u) => u.clone(),
        VenueChoice::Bybit => crate::config::BYBIT_REST.to_string(),
        VenueChoice::Embedded => {
            let mut vc = keel_venue::VenueConfig::new(args.symbols.clone());
            vc.seed = args.seed;
            let v = crate::run::RunningVenue::start_isolated(
                "127.0.0.1:0".parse().expect("literal"),
                vc,
            )?;
            let base = format!("http://{}", v.addr);
            venue_guard = Some(v);
            base
        }
    };
    let to_ms = args.interval.floor(crate::driver::system_wall_ms());
    let from_ms = to_ms.saturating_sub(args.days as u64 * 86_400_000);
    let store = Store::open(&args.db)?;
    let mut have = Vec::new();
    for s in &args.symbols {
        have.push(store.candle_starts(s, args.interval, from_ms, to_ms)?);
    }
    let writer = spawn_store(store, Default::default())?;
    let http: Arc<dyn HttpTransport> = Arc::new(ReqwestTransport::new()?);
    let limit = args.rest.requests_per_window;
    let window = Duration::from_millis(args.rest.window_ms);
    let origin = Instant::now();
    let now = || Time::from_nanos(Instant::now().duration_since(origin).as_nanos() as u64);
    let mut bf = Backfill::new(
        BackfillConfig {
            category: args.category.clone(),
            symbols: args.symbols.clone(),
            interval: args.interval,
            from_ms,
            to_ms,
            rest: args.rest.clone(),
            seed: args.seed,
        },
        have,
        now(),
    );
    let progress = Progress::new(&args.symbols);
    let mut state: HashMap<String, (u64, u64)> = HashMap::new();
    let (tx, mut rx) = mpsc::channel(INBOX_MESSAGES_MAX);
    let timer = tokio::time::sleep(Duration::from_secs(TIMER_IDLE_S));
    tokio::pin!(timer);
    let gaps = loop {
        let mut done = None;
        while let Some(o) = bf.poll_output() {
            match o {
                BackfillOutput::Http { id, path, timeout } => {
                    let (http, tx, url) = (http.clone(), tx.clone(), format!("{base}{path}"));
                    tokio::spawn(async move {
                        let r = http.get(url, timeout).await;
                        let _ = tx.send((id, r)).await;
                    });
                }
                BackfillOutput::Store { symbol, bars } => {
                    // The writer thread has room for far more pages than a backfill has in
                    // flight; a full queue would mean the disk stopped, so wait for it there.
                    let cmd = StoreCmd::Candles {
                        symbol,
                        interval: args.interval,
                        bars,
                    };
                    let w = writer.tx.clone();
                    // The thread's answer is only whether it is still there.
                    let sent = tokio::task::spawn_blocking(move || w.send(cmd).is_ok())
                        .await
                        .map_err(|e| e.to_string())?;
                    if !sent {
                        return Err("store thread stopped".into());
                    }
                }
                BackfillOutput::Progress { symbol, have, want } => {
                    state.insert(symbol.clone(), (have, want));
                    progress.update(&symbol, have, want, &state);
                }
                BackfillOutput::PageFailed { symbol, error } => {
                    tracing::warn!(%symbol, "a page could not be fetched: {error}")
                }
                BackfillOutput::Done { gaps } => done = Some(gaps),
            }
        }
        if let Some(g) = done {
            break g;
        }
        let deadline = bf
            .poll_timeout()
            .map(|t| origin + Duration::from_nanos(t.as_nanos()));
        timer
            .as_mut()
            .reset(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(TIMER_IDLE_S)));
        tokio::select! {
            biased;
            _ = &mut timer, if deadline.is_some() => bf.handle_timeout(now()),
            Some((id, r)) = rx.recv() => match r {
                Ok((status, body)) => bf.handle_response(now(), id, status, body),
                Err(e) => bf.handle_error(now(), id, e),
            },
        }
    };
    progress.finish();
    let crate::store::StoreHandle {
        tx: wtx, thread, ..
    } = writer;
    drop(wtx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    drop(venue_guard);
    for (symbol, from, to) in &gaps {
        tracing::warn!(%symbol, from, to, "the venue has no candles for this range");
    }
    Ok(Summary {
        symbols: args.symbols.len(),
        candles: bf.stored(),
        requests: bf.requests(),
        elapsed: Instant::now().duration_since(origin),
        bound: rate_bound(bf.requests(), limit, window),
        gaps,
    })
}
