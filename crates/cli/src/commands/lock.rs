//! `lock`: acquire, then run a command under the lock (killing it if the lock is lost)
//! or hold the lock until interrupted; then unlock.
//!
//! The command gets the lock key and fencing epoch in its environment:
//! `CONCLAVE_LOCK_KEY` and `CONCLAVE_LOCK_EPOCH`, and etcdctl's `ETCD_LOCK_KEY` and
//! `ETCD_LOCK_REV` (the same values), so a script written for `etcdctl lock` works.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use conclave_client::LockGuard;
use serde_json::json;

use super::{flush, Context, Interrupt};
use crate::args::{Format, LockArgs};
use crate::error::CliError;
use crate::output;

/// `lock`.
pub async fn run(ctx: &Context, args: &LockArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut interrupt = Interrupt::install();
    // Our own session lease, so that an interrupt while waiting can withdraw from the
    // queue at once (revoking the lease deletes our queue key) instead of leaving it to
    // block the others until the lease expires.
    let lease = tokio::select! {
        lease = ctx.client.grant_lease(ctx.client.options().session_ttl) => lease.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return Ok(()),
    };
    let acquired = tokio::select! {
        guard = ctx.client.lock_with_lease(&args.name, &lease) => guard,
        _ = interrupt.wait() => {
            let _ = lease.revoke().await;
            return Ok(());
        }
    };
    let guard = match acquired {
        Ok(guard) => guard,
        Err(error) => {
            let _ = lease.revoke().await;
            return Err(ctx.fail(error));
        }
    };
    let held = if args.command.is_empty() {
        match announce(ctx.format, out, &guard) {
            Err(error) => Err(error),
            Ok(()) => tokio::select! {
                _ = interrupt.wait() => Ok(()),
                lost = guard.lost() => Err(CliError::Failed(format!("lock lost ({lost})"))),
            },
        }
    } else {
        // The command owns standard output; the key and epoch go to standard error.
        eprintln!("{}\nepoch {}", guard.key(), guard.epoch());
        run_command(&args.command, &guard, &mut interrupt).await
    };
    let unlocked = guard.unlock().await;
    let _ = lease.revoke().await;
    held?;
    unlocked.map_err(|e| ctx.fail(e))
}

/// Prints the lock key (etcdctl's line) and the fencing epoch.
fn announce(format: Format, out: &mut dyn Write, guard: &LockGuard) -> Result<(), CliError> {
    match format {
        Format::Json => output::json_line(
            out,
            &json!({ "key": output::base64(guard.key().as_bytes()), "epoch": guard.epoch().0 }),
        )?,
        _ => {
            output::line(out, guard.key())?;
            output::line(out, &format!("epoch {}", guard.epoch()))?;
        }
    }
    flush(out)
}

/// Runs `command` while the lock is held. A lost lock kills it (so it cannot act
/// unfenced); an interrupt is passed on to it.
async fn run_command(
    command: &[String],
    guard: &LockGuard,
    interrupt: &mut Interrupt,
) -> Result<(), CliError> {
    let (program, arguments) = command
        .split_first()
        .ok_or_else(|| CliError::InvalidInput("no command given".into()))?;
    let epoch = guard.epoch().to_string();
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .env("CONCLAVE_LOCK_KEY", guard.key())
        .env("CONCLAVE_LOCK_EPOCH", &epoch)
        .env("ETCD_LOCK_KEY", guard.key())
        .env("ETCD_LOCK_REV", &epoch)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::io(format!("starting {program:?}"), e))?;
    let waited = |status: std::io::Result<ExitStatus>| {
        status.map_err(|e| CliError::io(format!("waiting for {program:?}"), e))
    };
    let status = tokio::select! {
        status = child.wait() => waited(status)?,
        lost = guard.lost() => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(CliError::Failed(format!(
                "lock lost while {program:?} ran ({lost}): the command was killed"
            )));
        }
        _ = interrupt.wait() => {
            if let Some(pid) = child.id() {
                forward_interrupt(pid);
            }
            waited(child.wait().await)?
        }
    };
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(CliError::ChildExit(u8::try_from(code).unwrap_or(1))),
        None => {
            let signal = status.signal().unwrap_or(0);
            Err(CliError::ChildExit(u8::try_from(128 + signal).unwrap_or(1)))
        }
    }
}

/// Sends SIGINT to the command, as a terminal's Ctrl-C would (it reaches it anyway when
/// it shares our terminal; this covers a SIGTERM sent to conclavectl alone).
fn forward_interrupt(pid: u32) {
    // std has no kill(2) wrapper; `kill` is in every POSIX userland.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
