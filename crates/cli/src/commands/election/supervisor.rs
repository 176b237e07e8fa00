//! The supervisor of `elect run`: a separate process that runs the leader-only command,
//! so that the command is stopped in time even when `conclavectl` itself is paused
//! (SIGSTOP, a stalled VM) or killed.
//!
//! `conclavectl elect run` starts `conclavectl elect-supervisor` with the command and the
//! hooks, and talks to it with JSON lines: on its stdin [`ToSupervisor`], on its file
//! descriptor 3 [`FromSupervisor`] (its stdout and stderr stay the parent's, for the
//! command's output). While leading, the parent keeps sending the lease's local
//! deadline (on the system's monotonic clock, which both processes share). The
//! supervisor stops the command — SIGTERM to its process group, SIGKILL after the
//! grace period — and then runs the on-lost hook, as soon as any of these happens:
//! the parent says `stop`; the deadline passes without an extension (the parent cannot
//! renew, or is paused); the parent goes away (its end of stdin closes). The supervisor
//! ignores SIGINT, SIGTERM, SIGHUP and the terminal's stop signals: the parent tells it
//! what to do, so that a signal meant for the whole group cannot leave the command
//! running without it. (A SIGSTOP sent to the supervisor itself is not covered: nothing
//! in user space can be.)

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// What the parent tells the supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum ToSupervisor {
    /// Leadership won: run the on-elected hook, then start the command.
    Lead {
        /// The fencing epoch.
        epoch: i64,
        /// The leader key.
        key: String,
        /// The lease's local deadline, in monotonic-clock milliseconds.
        deadline_ms: u64,
    },
    /// The lease was renewed: the new local deadline.
    Extend {
        /// Monotonic-clock milliseconds.
        deadline_ms: u64,
    },
    /// Leadership ends: stop the command, run the on-lost hook, answer `stopped` with the
    /// same `seq`.
    Stop {
        /// Pairs the answer with this request.
        seq: u64,
    },
}

/// What the supervisor tells the parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FromSupervisor {
    /// The command started.
    Started {
        /// The epoch it runs under.
        epoch: i64,
        /// Its pid (and process group).
        pid: u32,
    },
    /// The command exited by itself while leading (`code` is 128 + signal for a signal).
    Exited {
        /// The epoch.
        epoch: i64,
        /// Its exit code.
        code: i32,
    },
    /// The deadline passed without an extension: the command was stopped.
    Expired {
        /// The epoch.
        epoch: i64,
    },
    /// Answer to `stop`: nothing runs any more (and the on-lost hook has run).
    Stopped {
        /// The `seq` of the `stop` answered.
        seq: u64,
    },
}

/// The monotonic clock in milliseconds (CLOCK_MONOTONIC, shared by all processes).
pub fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists
    // on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    u64::try_from(now.tv_sec).unwrap_or(0) * 1000 + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000
}

/// How the supervisor was started (its hidden command line).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The election (in the command's environment).
    pub election: String,
    /// The candidate id (in the command's environment).
    pub candidate: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `sh -c` hook run before the command starts.
    pub on_elected: Option<String>,
    /// `sh -c` hook run after the command stopped.
    pub on_lost: Option<String>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// A leadership and its command.
struct Running {
    epoch: i64,
    key: String,
    /// The command while its process has not been reaped.
    child: Option<Child>,
    /// The command's process group, killed on stop even after its leader exited.
    group: Option<libc::pid_t>,
    deadline_ms: u64,
}

/// The file descriptor the supervisor reports on.
pub const REPORT_FD: i32 = 3;

/// Runs the supervisor until the parent goes away.
pub fn serve(plan: &Plan) -> Result<(), CliError> {
    // SAFETY: fcntl on a descriptor number; the parent set up REPORT_FD as the write end of
    // a pipe, which we take ownership of here (once) and keep out of the command.
    let mut reports = unsafe {
        if libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
            return Err(CliError::InvalidInput(
                "elect-supervisor is started by `conclavectl elect run`, not by hand".into(),
            ));
        }
        File::from_raw_fd(REPORT_FD)
    };
    let tell = |reports: &mut File, message: &FromSupervisor| {
        if let Ok(line) = serde_json::to_string(message) {
            let _ = writeln!(reports, "{line}");
        }
    };
    for signal in IGNORED {
        // SAFETY: setting a signal's disposition to "ignore" has no memory effects.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let (tx, rx) = mpsc::channel::<Option<ToSupervisor>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str(&line) {
                Ok(message) => {
                    if tx.send(Some(message)).is_err() {
                        return;
                    }
                }
                Err(error) => eprintln!("elect-supervisor: ignoring {line:?}: {error}"),
            }
        }
        let _ = tx.send(None);
    });
    let mut running: Option<Running> = None;
    // Orders that arrived while an on-elected hook ran, to handle next.
    let mut backlog: VecDeque<Option<ToSupervisor>> = VecDeque::new();
    loop {
        let message = match backlog.pop_front() {
            Some(message) => message,
            None => {
                let wait = match &running {
                    Some(r) => Duration::from_millis(r.deadline_ms.saturating_sub(monotonic_ms()).min(50)),
                    None => Duration::from_millis(500),
                };
                match rx.recv_timeout(wait) {
                    Ok(message) => message,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(r) = running.as_mut() {
                            if monotonic_ms() >= r.deadline_ms {
                                let epoch = r.epoch;
                                stop(plan, running.take());
                                tell(&mut reports, &FromSupervisor::Expired { epoch });
                            } else if let Some(code) = exited(r) {
                                tell(&mut reports, &FromSupervisor::Exited { epoch: r.epoch, code });
                            }
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            }
        };
        match message {
            Some(ToSupervisor::Lead {
                epoch,
                key,
                deadline_ms,
            }) => {
                // A new leadership while one still runs cannot happen; stop it first anyway.
                stop(plan, running.take());
                let mut started = Running {
                    epoch,
                    key,
                    child: None,
                    group: None,
                    deadline_ms,
                };
                if let Some(hook) = &plan.on_elected {
                    run_hook(plan, "on-elected", hook, &started);
                }
                // What came meanwhile: extensions apply; a stop (or the parent going away)
                // means the command must not start at all.
                let mut cancelled = false;
                while let Ok(message) = rx.try_recv() {
                    match message {
                        Some(ToSupervisor::Extend { deadline_ms }) => {
                            started.deadline_ms = started.deadline_ms.max(deadline_ms);
                        }
                        other => {
                            cancelled = true;
                            backlog.push_back(other);
                        }
                    }
                }
                if !cancelled && monotonic_ms() >= started.deadline_ms {
                    // The hook outlasted the lease: stop (run on-lost) and say so.
                    stop(plan, Some(started));
                    tell(&mut reports, &FromSupervisor::Expired { epoch });
                    continue;
                }
                if !cancelled {
                    match spawn(plan, &started) {
                        Ok(child) => {
                            tell(
                                &mut reports,
                                &FromSupervisor::Started {
                                    epoch,
                                    pid: child.id(),
                                },
                            );
                            started.group = libc::pid_t::try_from(child.id()).ok();
                            started.child = Some(child);
                        }
                        Err(error) => {
                            eprintln!("elect-supervisor: {error}");
                            tell(&mut reports, &FromSupervisor::Exited { epoch, code: 127 });
                        }
                    }
                }
                running = Some(started);
            }
            Some(ToSupervisor::Extend { deadline_ms }) => {
                if let Some(r) = running.as_mut() {
                    r.deadline_ms = r.deadline_ms.max(deadline_ms);
                }
            }
            Some(ToSupervisor::Stop { seq }) => {
                stop(plan, running.take());
                tell(&mut reports, &FromSupervisor::Stopped { seq });
            }
            None => {
                stop(plan, running.take());
                return Ok(());
            }
        }
    }
}

fn environment<'a>(plan: &'a Plan, running: &'a Running) -> [(&'static str, String); 4] {
    [
        ("CONCLAVE_ELECTION", plan.election.clone()),
        ("CONCLAVE_CANDIDATE_ID", plan.candidate.clone()),
        ("CONCLAVE_LEADER_KEY", running.key.clone()),
        ("CONCLAVE_EPOCH", running.epoch.to_string()),
    ]
}

fn spawn(plan: &Plan, running: &Running) -> Result<Child, String> {
    let (program, arguments) = plan.command.split_first().ok_or("no command given")?;
    let mut command = Command::new(program);
    command
        .args(arguments)
        .envs(environment(plan, running))
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: prctl(PR_SET_PDEATHSIG) and signal(2) are async-signal-safe and touch no
    // memory of ours: the command is killed if the supervisor dies without stopping it,
    // and gets back the signals the supervisor ignores (ignoring is inherited by exec).
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            restore_signals();
            Ok(())
        });
    }
    command.spawn().map_err(|e| format!("starting {program:?}: {e}"))
}

/// The command's exit code if it exited (reaping it).
fn exited(running: &mut Running) -> Option<i32> {
    let child = running.child.as_mut()?;
    match child.try_wait() {
        Ok(Some(status)) => {
            running.child = None;
            use std::os::unix::process::ExitStatusExt;
            Some(
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            )
        }
        _ => None,
    }
}

/// Stops the command's process group — SIGTERM, then SIGKILL to the whole group after
/// the grace period (also when its leader already exited, for what it left behind) — and
/// runs the on-lost hook.
fn stop(plan: &Plan, running: Option<Running>) {
    let Some(mut running) = running else { return };
    if let Some(mut child) = running.child.take() {
        signal_group(running.group.unwrap_or(0), libc::SIGTERM);
        let until = monotonic_ms() + u64::try_from(plan.grace.as_millis()).unwrap_or(u64::MAX);
        while monotonic_ms() < until {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal_group(running.group.unwrap_or(0), libc::SIGKILL);
        let _ = child.wait();
    } else if let Some(group) = running.group {
        signal_group(group, libc::SIGKILL);
    }
    if let Some(hook) = &plan.on_lost {
        run_hook(plan, "on-lost", hook, &running);
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    if group > 0 {
        // SAFETY: kill(2) on a process group we created; no memory effects.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// The signals the supervisor ignores.
/// The terminal's stop signals too: Ctrl-Z on the foreground group must not pause the
/// supervisor while the command (in a group of its own) runs on.
const IGNORED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Gives a child process the default action of the signals the supervisor ignores.
/// Only async-signal-safe calls: it runs between fork and exec.
fn restore_signals() {
    for signal in IGNORED {
        // SAFETY: signal(2) with SIG_DFL has no memory effects.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
}

/// Runs a hook with `sh -c`, with the leadership in its environment, and waits for it.
fn run_hook(plan: &Plan, what: &str, hook: &str, running: &Running) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(hook)
        .envs(environment(plan, running))
        .stdin(Stdio::null());
    // SAFETY: see `restore_signals`.
    unsafe {
        command.pre_exec(|| {
            restore_signals();
            Ok(())
        });
    }
    let status = command.status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("elect-supervisor: the {what} hook failed ({status})"),
        Err(error) => eprintln!("elect-supervisor: the {what} hook could not start: {error}"),
    }
}
