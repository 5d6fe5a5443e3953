//! The `birpc` command: talk to a JSON-RPC 2.0 endpoint from a shell.
//!
//! `birpc call`, `notify`, `listen`, `discover`, `stream`, `shell` and `bridge`; `birpc --help` tells them, and
//! the exit codes a script can tell failures apart by ([`failure::code`]).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod args;
mod bridge;
mod call;
mod connect;
mod discover;
mod failure;
mod interrupt;
mod listen;
mod output;
mod params;
mod responder;
mod shell;
mod stream;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    // Usage errors exit 2, `--help` and `--version` 0 (clap's own codes).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("birpc: cannot start: {error}");
            return ExitCode::from(failure::code::CONNECTION);
        }
    };
    // listen, stream and bridge answer Ctrl-C themselves, closing gracefully; the others are stopped by it.
    let interrupt = !matches!(
        cli.command,
        Command::Listen(_) | Command::Stream(_) | Command::Bridge(_)
    );
    let outcome = runtime.block_on(async {
        tokio::select! {
            // The signals are watched before the command starts (its first poll may already say it
            // listens): a SIGTERM from then on is caught, never the default action.
            biased;
            signal = interrupt::stopped(interrupt) => Err(Failure::Stopped(signal)),
            outcome = run(cli.command) => outcome,
        }
    });
    if matches!(outcome, Err(Failure::Stopped(_))) {
        // The connections' tasks are dropped now, which kills the programs spawned for `exec:` URLs; a read
        // of stdin in progress (the shell's, a stdio bridge's) is not waited for.
        runtime.shutdown_timeout(std::time::Duration::ZERO);
    }
    match outcome {
        Ok(()) => ExitCode::from(failure::code::OK),
        Err(failure) => {
            if !failure.is_quiet() {
                eprintln!("birpc: {failure}");
            }
            failure.exit_code()
        }
    }
}

/// Runs one command.
async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Call(args) => call::call(args).await,
        Command::Notify(args) => call::notify(args).await,
        Command::Listen(args) => listen::listen(args).await,
        Command::Discover(args) => discover::discover(args).await,
        Command::Stream(args) => stream::stream(args).await,
        Command::Shell(args) => shell::shell(args).await,
        Command::Bridge(args) => bridge::bridge(args).await,
    }
}
