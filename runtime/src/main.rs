use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Cmd {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Replay {
            each,
            levels,
            files,
        } => {
            let args = keel_runtime::replay::ReplayArgs {
                files,
                each,
                levels,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match keel_runtime::replay::run(&args, &mut out, &mut std::io::stderr()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("keel replay: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
