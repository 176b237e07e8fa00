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
    // Interrupted before the lock was taken: with a command, that command never ran,
    // which a script must not mistake for success (128 + SIGINT, as a shell reports it).
    let interrupted = || {
        if args.command.is_empty() {
            Ok(())
        } else {
            Err(CliError::ChildExit(130))
        }
    };
    let lease = tokio::select! {
        lease = ctx.client.grant_lease(ctx.client.options().session_ttl) => lease.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return interrupted(),
    };
    let acquired = tokio::select! {
        guard = ctx.client.lock_with_lease(&args.name, &lease) => guard,
        _ = interrupt.wait() => {
            let _ = lease.revoke().await;
            return interrupted();
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
    if args.command.is_empty() {
        held?;
        return unlocked.map_err(|e| ctx.fail(e));
    }
    // The command's outcome is what a script acts on; the lock is released by its lease's
    // expiry anyway if the unlock failed.
    if let Err(error) = unlocked {
        eprintln!("warning: could not unlock ({error}); the lock is released when its lease expires");
    }
    held
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
    // The command runs in its own process group, so that a lost lock can stop everything
    // it started (pipelines, wrapper scripts), and so that an interrupt reaches it once,
    // from us.
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .env("CONCLAVE_LOCK_KEY", guard.key())
        .env("CONCLAVE_LOCK_EPOCH", &epoch)
        .env("ETCD_LOCK_KEY", guard.key())
        .env("ETCD_LOCK_REV", &epoch)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::io(format!("starting {program:?}"), e))?;
    let group = child.id();
    let waited = |status: std::io::Result<ExitStatus>| {
        status.map_err(|e| CliError::io(format!("waiting for {program:?}"), e))
    };
    let mut interrupts = 0;
    let status = loop {
        tokio::select! {
            status = child.wait() => break waited(status)?,
            lost = guard.lost() => {
                signal_group(group, libc::SIGKILL);
                let _ = child.wait().await;
                return Err(CliError::Failed(format!(
                    "lock lost while {program:?} ran ({lost}): the command was killed"
                )));
            }
            _ = interrupt.wait() => {
                // First an interrupt, as a terminal's Ctrl-C; on a repeat, end it.
                interrupts += 1;
                let signal = if interrupts == 1 { libc::SIGINT } else { libc::SIGKILL };
                signal_group(group, signal);
            }
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

/// Sends `signal` to the command's process group (whose id is the command's pid).
fn signal_group(group: Option<u32>, signal: libc::c_int) {
    let Some(pid) = group.and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and has no memory effects; a negative pid
    // addresses the process group the command leads (spawned with process_group(0)).
    unsafe {
        libc::kill(-pid, signal);
    }
}
