//! keel as a library: a user's crate runs its own strategies with the same command line,
//! configuration, store, ops server and status page as the `keel` binary.
//!
//! ```no_run
//! use keel_runtime::strategy::{Context, Intent, SignalSide, Strategy};
//!
//! struct AlwaysLong;
//!
//! impl Strategy for AlwaysLong {
//!     fn name(&self) -> &str {
//!         "always_long"
//!     }
//!     fn evaluate(&self, _ctx: &Context<'_>, out: &mut Vec<Intent>) {
//!         out.push(Intent::signal(SignalSide::Buy, 1.0, "long is the way"));
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     keel_runtime::Bot::builder().strategy(AlwaysLong).run()
//! }
//! ```

use std::ffi::OsString;
use std::process::ExitCode;

use keel_core::trading::strategy::{SharedStrategy, Strategy};

use crate::cli::{Extras, main_with};

/// A bot: the `keel` command line with the strategies given to its builder.
pub struct Bot;

impl Bot {
    pub fn builder() -> BotBuilder {
        BotBuilder {
            extras: Extras {
                strategies: Vec::new(),
                builtins: true,
            },
        }
    }
}

pub struct BotBuilder {
    extras: Extras,
}

impl BotBuilder {
    /// Runs `s` beside the others, isolated from them (see [`crate::strategy`]).
    pub fn strategy(mut self, s: impl Strategy) -> Self {
        self.extras.strategies.push(SharedStrategy::new(s));
        self
    }

    /// Runs only the strategies given here, not the built-in ones.
    pub fn without_builtins(mut self) -> Self {
        self.extras.builtins = false;
        self
    }

    /// Parses the process's arguments as `keel` does and runs the command; with no command,
    /// `run` (so `cargo run --example my_bot` starts the bot on the embedded venue).
    pub fn run(self) -> ExitCode {
        self.run_with_args(std::env::args_os())
    }

    /// As [`BotBuilder::run`], over `args` (the program name first).
    pub fn run_with_args<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        if args.is_empty() {
            args.push("keel".into());
        }
        let command = args.get(1).and_then(|a| a.to_str()).map(str::to_string);
        let asks_help = matches!(
            command.as_deref(),
            Some("-h" | "--help" | "-V" | "--version" | "help")
        );
        if !asks_help && command.as_deref().is_none_or(|c| c.starts_with('-')) {
            args.insert(1, "run".into());
        }
        main_with(args, self.extras)
    }
}
