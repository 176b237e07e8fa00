//! One child process of a test — a node, or an application process a test drives — its
//! log file and the signals a test sends it (SIGKILL, SIGTERM, SIGSTOP/SIGCONT).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spawn::spawn_child;

/// How long [`Process::terminate`] waits for a graceful exit before it kills the process.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// [`Process::log_tail`] reads at most this many bytes from the end of the log.
const MAX_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// The live part of a process, behind a lock so every method takes `&self`.
#[derive(Debug, Default)]
struct ProcessState {
    child: Option<Child>,
    paused: bool,
    starts: u32,
    last_exit: Option<ExitStatus>,
}

impl ProcessState {
    /// Reaps the child if it has exited; returns the running child, if any.
    fn running(&mut self) -> Option<&mut Child> {
        let exited = match self.child.as_mut()?.try_wait() {
            Ok(None) => return self.child.as_mut(),
            Ok(Some(status)) => Some(status),
            // Cannot ask: treat it as running so that kill() still tries.
            Err(_) => return self.child.as_mut(),
        };
        self.last_exit = exited;
        self.child = None;
        self.paused = false;
        None
    }
}

/// A handle on one child process. It is killed (SIGKILL) and reaped when the handle is
/// dropped, so a failing test leaves nothing behind; it also dies with the test binary.
#[derive(Debug)]
pub struct Process {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    log_path: PathBuf,
    state: Mutex<ProcessState>,
}

impl Process {
    /// A handle for `name`, run as `bin args`, its output appended to `log_path`;
    /// nothing is started yet.
    pub fn new(
        name: impl Into<String>,
        bin: impl Into<PathBuf>,
        args: Vec<String>,
        log_path: impl Into<PathBuf>,
    ) -> Process {
        Process {
            name: name.into(),
            bin: bin.into(),
            args,
            log_path: log_path.into(),
            state: Mutex::new(ProcessState::default()),
        }
    }

    /// The name tests know it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that holds its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Starts the process. Output is appended to its log after a marker
    /// line naming the start. Fails if the process is still running.
    pub fn start(&self) -> Result<()> {
        let mut state = self.lock();
        if let Some(child) = state.running() {
            return Err(Error::AlreadyRunning {
                name: self.name.clone(),
                pid: child.id(),
            });
        }
        let log_path = &self.log_path;
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating log directory {}", parent.display()), e))?;
        }
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .map_err(|e| Error::io(format!("opening log file {}", log_path.display()), e))
        };
        let args = &self.args;
        state.starts += 1;
        let mut stdout = open_log()?;
        let marker = format!(
            "--- testkit: start #{} of {}: {} {} ---",
            state.starts,
            self.name,
            self.bin.display(),
            args.join(" ")
        );
        writeln!(stdout, "{marker}")
            .map_err(|e| Error::io(format!("writing log file {}", log_path.display()), e))?;
        let stderr = open_log()?;

        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            // A node that panics should say where in its log.
            command.env("RUST_BACKTRACE", "1");
        }
        let child = spawn_child(command)
            .map_err(|e| Error::io(format!("starting {} from {}", self.name, self.bin.display()), e))?;
        tracing::debug!(process = %self.name, pid = child.id(), "testkit: process started");
        state.child = Some(child);
        state.paused = false;
        Ok(())
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed) and reaps it.
    /// Does nothing if it is not running.
    pub fn kill(&self) -> Result<()> {
        let mut state = self.lock();
        let Some(child) = state.running() else {
            return Ok(());
        };
        let pid = child.id();
        // SIGKILL also ends a stopped (paused) process.
        let status = blocking(|| {
            child.kill()?;
            child.wait()
        })
        .map_err(|e| Error::io(format!("killing {} (pid {pid})", self.name), e))?;
        state.child = None;
        state.paused = false;
        state.last_exit = Some(status);
        drop(state);
        self.note(&format!("killed {} (pid {pid}) with SIGKILL", self.name));
        Ok(())
    }

    /// Sends SIGTERM and waits up to [`DEFAULT_SHUTDOWN_TIMEOUT`] for a graceful exit;
    /// see [`Process::terminate_within`].
    pub fn terminate(&self) -> Result<ExitStatus> {
        self.terminate_within(DEFAULT_SHUTDOWN_TIMEOUT)
    }

    /// Sends SIGTERM (resuming the process first if it is paused) and waits up to
    /// `timeout` for it to exit; returns its exit status. If it does not exit in time it
    /// is killed and [`Error::ShutdownTimeout`] is returned with the end of its log.
    pub fn terminate_within(&self, timeout: Duration) -> Result<ExitStatus> {
        let pid = {
            let mut state = self.lock();
            let paused = state.paused;
            let Some(child) = state.running() else {
                return Err(Error::NotRunning {
                    name: self.name.clone(),
                });
            };
            let pid = child.id();
            self.signal(pid, libc::SIGTERM, "SIGTERM")?;
            if paused {
                // A stopped process does not act on SIGTERM until it is continued.
                self.signal(pid, libc::SIGCONT, "SIGCONT")?;
                state.paused = false;
            }
            pid
        };
        self.note(&format!("sent SIGTERM to {} (pid {pid})", self.name));

        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        let exited = blocking(|| loop {
            {
                let mut state = self.lock();
                if state.running().is_none() {
                    return state.last_exit;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        });
        match exited {
            Some(status) => {
                self.note(&format!("{} (pid {pid}) exited: {status}", self.name));
                Ok(status)
            }
            None => {
                let log_tail = self.log_tail(40);
                self.kill()?;
                Err(Error::ShutdownTimeout {
                    name: self.name.clone(),
                    timeout,
                    log_tail,
                })
            }
        }
    }

    /// Stops the process with SIGSTOP: it keeps its sockets but does nothing, like a
    /// long GC pause or a hung machine. Undo with [`Process::resume`].
    pub fn pause(&self) -> Result<()> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        self.signal(pid, libc::SIGSTOP, "SIGSTOP")?;
        state.paused = true;
        Ok(())
    }

    /// Continues a process stopped by [`Process::pause`] (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        let mut state = self.lock();
        let pid = self.running_pid(&mut state)?;
        self.signal(pid, libc::SIGCONT, "SIGCONT")?;
        state.paused = false;
        Ok(())
    }

    /// Whether the process is alive (a paused process is alive). Reaps it if it has exited.
    pub fn is_running(&self) -> bool {
        self.lock().running().is_some()
    }

    /// Whether the process is alive and stopped by [`Process::pause`].
    pub fn is_paused(&self) -> bool {
        let mut state = self.lock();
        state.running().is_some() && state.paused
    }

    /// The process id while the process is alive.
    pub fn pid(&self) -> Option<u32> {
        self.lock().running().map(|child| child.id())
    }

    /// How the last process of this node ended, once it has ended and been reaped.
    pub fn last_exit_status(&self) -> Option<ExitStatus> {
        let mut state = self.lock();
        state.running();
        state.last_exit
    }

    /// The last `n_lines` lines of the node's log (all of its runs). Never fails: if the
    /// log cannot be read, the text says why.
    pub fn log_tail(&self, n_lines: usize) -> String {
        match tail_lines(&self.log_path, n_lines) {
            Ok(text) => text,
            Err(e) => format!("<cannot read log {}: {e}>", self.log_path.display()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProcessState> {
        // A panic while holding the lock leaves the state usable: every field is valid.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn running_pid(&self, state: &mut ProcessState) -> Result<u32> {
        state
            .running()
            .map(|child| child.id())
            .ok_or_else(|| Error::NotRunning {
                name: self.name.clone(),
            })
    }

    /// Sends `signal` to `pid`; the caller holds the lock and has just seen the process
    /// alive and unreaped, so the pid cannot have been reused.
    fn signal(&self, pid: u32, signal: libc::c_int, signal_name: &str) -> Result<()> {
        let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
            return Err(Error::io(
                format!("sending {signal_name} to {}", self.name),
                io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid} out of range")),
            ));
        };
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(raw_pid, signal) } != 0 {
            return Err(Error::io(
                format!("sending {signal_name} to {} (pid {pid})", self.name),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Appends a testkit marker line to the log; best effort, it is only for humans.
    fn note(&self, message: &str) {
        let appended = OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .and_then(|mut log| writeln!(log, "--- testkit: {message} ---"));
        if let Err(e) = appended {
            tracing::warn!(process = %self.name, "testkit: cannot write to the log: {e}");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            tracing::warn!(process = %self.name, "testkit: {e}");
        }
    }
}

/// Runs blocking `f` without starving the tokio runtime it may be called from: on a
/// multi-thread runtime the worker hands its tasks (e.g. the peer proxy's) to another
/// thread first. Elsewhere `f` simply runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The last `n` lines of the file at `path`, reading backwards from its end.
fn tail_lines(path: &Path, n: usize) -> io::Result<String> {
    const CHUNK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0;
    // n lines need n + 1 newlines to be sure the first of them is complete.
    while start > 0 && newlines <= n && len - start < MAX_TAIL_BYTES {
        let size = CHUNK.min(start);
        start -= size;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; usize::try_from(size).unwrap_or(0)];
        file.read_exact(&mut chunk)?;
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.len().saturating_sub(n);
    Ok(lines[first..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_returns_the_last_lines_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        assert_eq!(
            tail_lines(&path, 3).unwrap(),
            "line 19997\nline 19998\nline 19999"
        );
        assert_eq!(tail_lines(&path, 0).unwrap(), "");
        fs::write(&path, "only\n").unwrap();
        assert_eq!(tail_lines(&path, 5).unwrap(), "only");
    }
}
