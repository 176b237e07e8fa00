//! Spawning child processes that die with the test binary.
//!
//! Linux delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child exits, not
//! the process. Tests spawn from whatever thread they run on (tokio workers, blocking
//! pool threads that retire after idling), so all children are forked from one
//! dedicated thread that lives as long as the test binary. If that binary dies without
//! unwinding (abort, SIGKILL from a test timeout), the kernel kills its nodes.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;

/// A command to spawn and where to send the result.
type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that it receives SIGKILL when the test binary exits.
pub(crate) fn spawn_child(mut command: Command) -> io::Result<Child> {
    let Some(spawner) = spawner() else {
        // No long-lived thread could be started: spawn without the death signal rather
        // than have it fire when this (possibly short-lived) thread exits.
        tracing::warn!("testkit: spawning without PR_SET_PDEATHSIG; nodes may outlive an aborted test");
        return command.spawn();
    };

    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal will come.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }

    let (reply_tx, reply_rx) = mpsc::channel();
    let gone = || io::Error::other("the testkit's process-spawning thread has exited");
    spawner.send((command, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().unwrap_or_else(|_| Err(gone()))
}

/// The sender of the long-lived spawning thread, or `None` if it could not be started.
fn spawner() -> Option<&'static mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            let started = thread::Builder::new()
                .name("testkit-spawner".into())
                .spawn(move || {
                    for (mut command, reply) in rx {
                        // The requester may have given up; nothing to do then.
                        let _ = reply.send(command.spawn());
                    }
                });
            started.ok().map(|_| tx)
        })
        .as_ref()
}
