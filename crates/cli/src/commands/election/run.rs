//! `elect run`: a candidate that runs a command only while it leads.
//!
//! The command runs under a separate supervisor process (see `supervisor`), started
//! on election and stopped — its whole process group, SIGTERM then SIGKILL after
//! `--stop-grace` — when leadership ends, before the lease could expire: the
//! supervisor stops it at the lease's local deadline by itself if `conclavectl` is
//! paused or cut off, and at once if `conclavectl` dies. `--on-elected` runs before the
//! command starts, `--on-lost` after it stopped (both `sh -c`, with the leadership in
//! the environment): that is how a virtual IP follows the leader. If the command exits
//! by itself while leading, the candidate steps down (with its cooldown) so another
//! one takes over; it runs again on the next election. Hook events are logged on
//! standard error.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use conclave_client::config::ClientConfig;
use conclave_client::{Candidate, Client, ElectionHooks, Epoch, Error, LeaderInfo, Leadership, Lease};
use tokio::sync::mpsc;

use super::super::{Context, Interrupt};
use super::supervisor::{monotonic_ms, FromSupervisor, ToSupervisor, REPORT_FD};
use crate::args::ElectRunArgs;
use crate::error::CliError;

/// Messages to the supervisor, shared by the hooks and the deadline task.
type ToSupervisorPipe = Arc<Mutex<ChildStdin>>;

fn send(pipe: &ToSupervisorPipe, message: &ToSupervisor) {
    let Ok(line) = serde_json::to_string(message) else {
        return;
    };
    let mut pipe = pipe.lock().unwrap_or_else(|p| p.into_inner());
    if writeln!(pipe, "{line}").and_then(|()| pipe.flush()).is_err() {
        tracing_line("the supervisor is gone");
    }
}

fn tracing_line(text: &str) {
    eprintln!("elect run: {text}");
}

/// The lease's local deadline on the monotonic clock, or `None` once lost. The clock
/// is read before the remaining time, so a pause in between can only make it earlier.
fn deadline_ms(lease: &Lease) -> Option<u64> {
    let now_ms = monotonic_ms();
    let deadline = lease.deadline()?;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    Some(now_ms + u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
}

struct RunHooks {
    pipe: ToSupervisorPipe,
    /// The `seq` of each `stopped` report.
    stopped: std_mpsc::Receiver<u64>,
    /// The last `stop` sent.
    seq: u64,
    /// How long `on_lost` waits for the supervisor to stop the command.
    stop_wait: Duration,
    extender: Option<tokio::task::JoinHandle<()>>,
    /// The command's process group, as the supervisor last reported it.
    group: Arc<Mutex<Option<u32>>>,
    /// For the fallback when the supervisor does not confirm a stop.
    fallback: Fallback,
    /// The leadership being held: epoch and key.
    holding: Option<(i64, String)>,
}

/// What `elect run` does itself when its supervisor does not confirm a stop in time
/// (it died, or hangs): kill the command's group and run the on-lost hook, so that
/// nothing of this leadership is left when the candidate resigns.
struct Fallback {
    election: String,
    candidate: String,
    on_lost: Option<String>,
}

impl Fallback {
    fn run(&self, group: Option<u32>, holding: Option<&(i64, String)>) {
        if let Some(pid) = group.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill(2) on the command's process group; no memory effects.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let (Some(hook), Some((epoch, key))) = (&self.on_lost, holding) else {
            return;
        };
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(hook)
            .env("CONCLAVE_ELECTION", &self.election)
            .env("CONCLAVE_CANDIDATE_ID", &self.candidate)
            .env("CONCLAVE_LEADER_KEY", key)
            .env("CONCLAVE_EPOCH", epoch.to_string())
            .stdin(Stdio::null())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            tracing_line(&format!("the on-lost hook failed: {status:?}"));
        }
    }
}

/// Runs `wait` (which blocks) without stalling the other tasks of a multi-thread runtime.
fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

impl ElectionHooks for RunHooks {
    fn on_elected(&mut self, leadership: &Leadership) {
        let lease = leadership.lease().clone();
        let Some(deadline) = deadline_ms(&lease) else {
            return;
        };
        tracing_line(&format!("elected with epoch {}", leadership.epoch()));
        self.holding = Some((leadership.epoch().0, leadership.key().to_string()));
        send(
            &self.pipe,
            &ToSupervisor::Lead {
                epoch: leadership.epoch().0,
                key: leadership.key().to_string(),
                deadline_ms: deadline,
            },
        );
        let pipe = Arc::clone(&self.pipe);
        self.extender = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match deadline_ms(&lease) {
                    Some(deadline_ms) => send(&pipe, &ToSupervisor::Extend { deadline_ms }),
                    None => return,
                }
            }
        }));
    }

    fn on_lost(&mut self, epoch: Epoch, reason: &Error) {
        if let Some(extender) = self.extender.take() {
            extender.abort();
        }
        tracing_line(&format!("lost leadership of epoch {epoch}: {reason}"));
        self.seq += 1;
        let seq = self.seq;
        send(&self.pipe, &ToSupervisor::Stop { seq });
        // The candidate resigns (letting a successor in) only after this returns.
        let until = std::time::Instant::now() + self.stop_wait;
        let confirmed = blocking(|| loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.stopped.recv_timeout(left) {
                Ok(answered) if answered == seq => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        });
        if !confirmed {
            tracing_line(
                "the supervisor did not confirm the stop: killing the command and running --on-lost here",
            );
            let group = *self.group.lock().unwrap_or_else(|p| p.into_inner());
            self.fallback.run(group, self.holding.as_ref());
        }
        self.holding = None;
    }

    fn on_leader_change(&mut self, leader: Option<&LeaderInfo>) {
        match leader {
            Some(leader) => tracing_line(&format!("leader is {} (epoch {})", leader.key, leader.epoch)),
            None => tracing_line("no leader"),
        }
    }

    fn on_disconnect(&mut self, error: &Error) {
        tracing_line(&format!("disconnected: {error}"));
    }

    fn on_reconnect(&mut self) {
        tracing_line("reconnected");
    }
}

/// The client of `elect run`: the config file's if given, else the command line's;
/// with a lease safety margin that leaves the command `grace` to stop, plus a second
/// for the on-lost hook, before the lease could expire.
async fn client_for(
    ctx: &Context,
    args: &ElectRunArgs,
    config: Option<&ClientConfig>,
) -> Result<Client, CliError> {
    let (endpoints, mut options) = match config {
        Some(config) => (
            config.endpoints.clone(),
            config.options().map_err(CliError::Client)?,
        ),
        None => (ctx.endpoints.clone(), ctx.client.options().clone()),
    };
    options.lease_safety_margin = options
        .lease_safety_margin
        .max(args.stop_grace + Duration::from_secs(1));
    Client::connect_with(&endpoints, options)
        .await
        .map_err(|e| CliError::from_client(e, &endpoints))
}

/// `elect run`.
pub async fn run(ctx: &Context, args: &ElectRunArgs) -> Result<(), CliError> {
    let mut interrupt = Interrupt::install();
    let config = args
        .config
        .as_deref()
        .map(|path| ClientConfig::load(Some(path)))
        .transpose()
        .map_err(CliError::Client)?;
    let client = client_for(ctx, args, config.as_ref()).await?;
    let mut candidate = Candidate::new(client.election(args.name.clone()), Vec::new());
    if let Some(config) = &config {
        candidate = candidate.settings(&config.candidate);
    }
    if let Some(id) = &args.id {
        candidate = candidate.id(id.clone());
    }
    if let Some(address) = &args.address {
        candidate = candidate.address(address.clone());
    }
    let ttl = args
        .ttl
        .map(|s| Duration::from_secs(s.max(1)))
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.candidate.lease_ttl)
                .map(Duration::from_millis)
        })
        .unwrap_or(Duration::from_secs(10));
    // The command must be stopped, and --on-lost run, within the lease's safety margin,
    // which is at most half the TTL.
    let margin = args.stop_grace + Duration::from_secs(1);
    if margin > ttl / 2 {
        return Err(CliError::InvalidInput(format!(
            "--stop-grace {:?} needs a lease TTL of at least {:?} (the command is stopped, and --on-lost run, \
             within a safety margin of the grace + 1s, at most half the TTL): raise --ttl or lower --stop-grace",
            args.stop_grace,
            margin * 2
        )));
    }
    candidate = candidate.lease_ttl(ttl);
    if let Some(cooldown) = args.cooldown {
        candidate = candidate.cooldown(cooldown);
    }
    let id = candidate.current_id().to_string();
    let proposal = args.proposal.clone().unwrap_or_else(|| id.clone());
    let candidate = candidate.value(proposal);

    // The supervisor: stdin for orders, REPORT_FD for its reports; stdout and stderr
    // stay ours, for the command's output.
    let (reports, report_writer) =
        std::io::pipe().map_err(|e| CliError::io("creating the supervisor's pipe", e))?;
    let exe = std::env::current_exe().map_err(|e| CliError::io("finding conclavectl's own path", e))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("elect-supervisor")
        .arg("--election")
        .arg(&args.name)
        .arg("--candidate")
        .arg(&id)
        .arg("--grace-ms")
        .arg(args.stop_grace.as_millis().to_string());
    if let Some(hook) = &args.on_elected {
        command.arg("--on-elected").arg(hook);
    }
    if let Some(hook) = &args.on_lost {
        command.arg("--on-lost").arg(hook);
    }
    command.arg("--").args(&args.command).stdin(Stdio::piped());
    let writer_fd = report_writer.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; it makes the pipe's write end the child's
    // REPORT_FD (without close-on-exec, unlike the original).
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(writer_fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut supervisor = command
        .spawn()
        .map_err(|e| CliError::io("starting the elect-supervisor", e))?;
    drop(report_writer);
    let pipe: ToSupervisorPipe =
        Arc::new(Mutex::new(supervisor.stdin.take().ok_or_else(|| {
            CliError::Failed("the supervisor has no stdin".into())
        })?));
    // Its reports: `stopped` to the on-lost hook, which waits for it; the rest to us.
    let (stopped_tx, stopped_rx) = std_mpsc::channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let group = Arc::new(Mutex::new(None));
    let reported_group = Arc::clone(&group);
    std::thread::spawn(move || {
        for line in BufReader::new(reports).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<FromSupervisor>(&line) {
                Ok(FromSupervisor::Stopped { seq }) => {
                    let _ = stopped_tx.send(seq);
                }
                Ok(other) => {
                    if let FromSupervisor::Started { pid, .. } = &other {
                        *reported_group.lock().unwrap_or_else(|p| p.into_inner()) = Some(*pid);
                    }
                    let _ = events_tx.send(other);
                }
                Err(error) => eprintln!("elect run: unreadable supervisor report {line:?}: {error}"),
            }
        }
    });
    let hooks = RunHooks {
        pipe: Arc::clone(&pipe),
        stopped: stopped_rx,
        seq: 0,
        // The grace, then a second for the on-lost hook: within the lease's safety margin.
        stop_wait: args.stop_grace + Duration::from_secs(1),
        extender: None,
        group,
        fallback: Fallback {
            election: args.name.clone(),
            candidate: id.clone(),
            on_lost: args.on_lost.clone(),
        },
        holding: None,
    };
    let handle = candidate.start(hooks).map_err(CliError::Client)?;
    tracing_line(&format!("candidate {id} campaigning in {}", args.name));
    let outcome = loop {
        let event = tokio::select! {
            _ = interrupt.wait() => break Ok(()),
            event = events.recv() => event,
        };
        match event {
            Some(FromSupervisor::Started { epoch, pid }) => {
                tracing_line(&format!("started the command (pid {pid}) for epoch {epoch}"));
            }
            Some(FromSupervisor::Exited { epoch, code }) => {
                tracing_line(&format!(
                    "the command exited ({code}) while leading epoch {epoch}: stepping down"
                ));
                if handle.epoch() == Some(Epoch(epoch)) {
                    let _ = handle.step_down(candidate_cooldown(args, config.as_ref())).await;
                }
            }
            Some(FromSupervisor::Expired { epoch }) => {
                tracing_line(&format!(
                    "the supervisor stopped the command at the lease deadline of epoch {epoch}"
                ));
                if handle.epoch() == Some(Epoch(epoch)) {
                    let _ = handle.step_down(Duration::ZERO).await;
                }
            }
            Some(FromSupervisor::Stopped { .. }) => {}
            None => break Err(CliError::Failed("the elect-supervisor exited".into())),
        }
    };
    handle.stop().await;
    // Closing its stdin ends the supervisor (it stops anything still running first).
    drop(pipe);
    let _ = tokio::task::spawn_blocking(move || supervisor.wait()).await;
    outcome
}

fn candidate_cooldown(args: &ElectRunArgs, config: Option<&ClientConfig>) -> Duration {
    args.cooldown
        .or_else(|| config.map(|c| Duration::from_millis(c.candidate.cooldown)))
        .unwrap_or(Duration::from_secs(5))
}
