//! `conclavectl`: an etcdctl-like command line for Conclave, built on the
//! `conclave-client` SDK. See docs/cli.md for every command with an example.

mod args;
mod commands;
mod error;
mod output;
mod prompt;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::args::{Cli, Command, ElectArgs, ElectCommand};
use crate::error::{CliError, EXIT_ERROR};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = match error.downcast_ref::<CliError>() {
                // The command under `lock` already said what it had to say.
                Some(CliError::ChildExit(code)) => return ExitCode::from(*code),
                Some(cli_error) => cli_error.exit_code(),
                None => EXIT_ERROR,
            };
            eprintln!("Error: {error:#}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // `elect run` blocks in its on-lost hook while the command stops: two threads, so the
    // keep-alives and control answers go on meanwhile. Everything else needs one.
    let runs_a_daemon = matches!(
        &cli.command,
        Command::Elect(ElectArgs {
            action: Some(ElectCommand::Run(_)),
            ..
        })
    );
    let runtime = if runs_a_daemon {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }
    .context("starting the async runtime")?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = runtime.block_on(commands::run(cli, &mut out));
    let flushed = out.flush();
    result?;
    flushed.context("writing to standard output")?;
    Ok(())
}
