//! One module per command family; [`run`] dispatches a parsed command line.

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;
use conclave_client::{Client, ClientOptions, Credentials, Tls};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::args::{Cli, Command, Format, SnapshotCommand};
use crate::error::CliError;

mod auth;
mod election;
mod endpoint;
mod group;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod member;
mod snapshot;
mod txn;
mod watch;

/// What every command that talks to the cluster needs.
pub struct Context {
    /// The SDK client over `--endpoints`.
    pub client: Client,
    /// `-w`.
    pub format: Format,
    /// `--endpoints`, as given.
    pub endpoints: Vec<String>,
}

impl Context {
    /// Turns an SDK error into the CLI's, naming the endpoints when none answered.
    pub fn fail(&self, error: conclave_client::Error) -> CliError {
        CliError::from_client(error, &self.endpoints)
    }
}

/// Runs the command line, writing results to `out` (standard output).
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let Cli {
        endpoints,
        write_out,
        dial_timeout,
        command_timeout,
        user,
        password,
        tls,
        command,
    } = cli;
    // Commands that need no cluster.
    let command = match command {
        Command::Completion(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "conclavectl", out);
            return Ok(());
        }
        Command::Snapshot(SnapshotCommand::Restore(args)) => {
            return snapshot::restore(&args, write_out, out);
        }
        Command::ElectSupervisor(args) => return election::supervise(&args),
        other => other,
    };

    let session_ttl = match &command {
        Command::Elect(args) => Some(args.ttl),
        Command::Lock(args) => Some(args.ttl),
        _ => None,
    };
    let defaults = ClientOptions::default();
    let options = ClientOptions {
        connect_timeout: dial_timeout,
        request_timeout: command_timeout,
        retry_budget: command_timeout,
        session_ttl: session_ttl.map_or(defaults.session_ttl, |s| Duration::from_secs(s.max(1))),
        credentials: credentials(user, password)?,
        ..defaults
    };
    let options = match tls.settings() {
        Some(settings) => options.tls(Tls::new(settings).map_err(CliError::Client)?),
        None => options,
    };
    let client = Client::connect_with(&endpoints, options)
        .await
        .map_err(|e| CliError::from_client(e, &endpoints))?;
    let ctx = Context {
        client,
        format: write_out,
        endpoints,
    };

    match command {
        Command::Get(args) => kv::get(&ctx, &args, out).await,
        Command::Put(args) => kv::put(&ctx, &args, out).await,
        Command::Del(args) => kv::del(&ctx, &args, out).await,
        Command::Txn(args) => txn::run(&ctx, &args, out).await,
        Command::Watch(args) => watch::run(&ctx, &args, out).await,
        Command::Lease(command) => lease::run(&ctx, command, out).await,
        Command::Member(command) => member::run(&ctx, command, out).await,
        Command::Endpoint(command) => endpoint::run(&ctx, command, out).await,
        Command::Snapshot(SnapshotCommand::Save { file }) => snapshot::save(&ctx, &file, out).await,
        Command::Elect(args) => election::run(&ctx, &args, out).await,
        Command::Lock(args) => lock::run(&ctx, &args, out).await,
        Command::Compaction(args) => maintenance::compaction(&ctx, &args, out).await,
        Command::Defrag(args) => maintenance::defrag(&ctx, &args, out).await,
        Command::Alarm(command) => maintenance::alarm(&ctx, command, out).await,
        Command::Group(command) => group::run(&ctx, command, out).await,
        Command::User(command) => auth::user(&ctx, command, out).await,
        Command::Role(command) => auth::role(&ctx, command, out).await,
        Command::Auth(command) => auth::auth(&ctx, command, out).await,
        Command::Completion(_)
        | Command::Snapshot(SnapshotCommand::Restore(_))
        | Command::ElectSupervisor(_) => Ok(()),
    }
}

/// The credentials of `--user name[:password]` and `--password`, as etcdctl reads them:
/// the password after the first `:`, or from `--password` (then the user must not carry
/// one), or asked for on the terminal.
fn credentials(user: Option<String>, password: Option<String>) -> Result<Option<Credentials>, CliError> {
    let Some(user) = user else {
        if password.is_some() {
            return Err(CliError::InvalidInput("--password needs --user".into()));
        }
        return Ok(None);
    };
    let (name, password) = match (user.split_once(':'), password) {
        (Some(_), Some(_)) => {
            return Err(CliError::InvalidInput(
                "--user includes a password and --password gives one too: give it once".into(),
            ))
        }
        (Some((name, inline)), None) => (name.to_string(), inline.to_string()),
        (None, Some(password)) => (user, password),
        (None, None) => {
            let password = crate::prompt::hidden("Password: ")?;
            (user, password)
        }
    };
    if name.is_empty() {
        return Err(CliError::InvalidInput("--user needs a user name".into()));
    }
    Ok(Some(Credentials::new(name, password)))
}

/// SIGINT (Ctrl-C) and SIGTERM, caught so a long-running command can clean up (resign,
/// unlock, remove a partial file) before exiting. Install it before the first request,
/// so a signal that arrives early is not lost to the default action.
pub struct Interrupt {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Interrupt {
    /// Starts catching the signals.
    pub fn install() -> Interrupt {
        Interrupt {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves when either signal arrives.
    pub async fn wait(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => {}
            _ = next(&mut self.terminate) => {}
        }
    }
}

/// Flushes standard output (streaming commands call it after every item).
pub fn flush(out: &mut dyn Write) -> Result<(), CliError> {
    out.flush()
        .map_err(|e| CliError::io("writing to standard output", e))
}
