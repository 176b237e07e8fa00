//! Asking for passwords: on the terminal without echo (as etcdctl does), or from
//! standard input for scripts.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;

use crate::error::CliError;

/// Asks for a password on the controlling terminal (`/dev/tty`) with echo off, so it
/// neither shows on screen nor mixes with standard input or output.
pub fn hidden(prompt: &str) -> Result<String, CliError> {
    let no_terminal = |e: std::io::Error| {
        CliError::InvalidInput(format!(
            "cannot ask for the password: no terminal ({e}); give it as --user NAME:PASSWORD or with --password"
        ))
    };
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_terminal)?;
    let fd = tty.as_raw_fd();
    // SAFETY: `termios` is plain data; tcgetattr fills it for the open descriptor `fd`.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open terminal descriptor owned by `tty`, `original` is valid.
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return Err(no_terminal(std::io::Error::last_os_error()));
    }
    let mut silent = original;
    silent.c_lflag &= !libc::ECHO;
    silent.c_lflag |= libc::ECHONL;
    // SAFETY: as above; `silent` is a copy of the terminal's own settings.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) } != 0 {
        return Err(no_terminal(std::io::Error::last_os_error()));
    }
    // The prompt comes once echo is off, so nothing typed after it shows.
    let mut line = String::new();
    let read = ask(&mut tty, prompt, &mut line);
    // Echo comes back whatever the read did.
    // SAFETY: restores the settings read above on the same descriptor.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read.map_err(|e| CliError::io("asking for the password on the terminal", e))?;
    Ok(trim_line(&line).to_string())
}

/// Writes `prompt` to the terminal and reads one line of answer.
fn ask(tty: &mut std::fs::File, prompt: &str, line: &mut String) -> std::io::Result<usize> {
    tty.write_all(prompt.as_bytes())?;
    tty.flush()?;
    BufReader::new(tty).read_line(line)
}

/// Asks twice (etcdctl's "Password of NAME: " and "Type password of NAME again for
/// confirmation: "), failing as etcdctl does when the two differ.
pub fn new_password(user: &str) -> Result<String, CliError> {
    let first = hidden(&format!("Password of {user}: "))?;
    let again = hidden(&format!("Type password of {user} again for confirmation: "))?;
    if first != again {
        return Err(CliError::InvalidInput("given passwords are different".into()));
    }
    Ok(first)
}

/// The first line of standard input (`--interactive=false`).
pub fn from_stdin() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::io("reading the password from standard input", e))?;
    Ok(trim_line(&line).to_string())
}

/// A line without its line ending.
fn trim_line(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_ending_is_dropped() {
        assert_eq!(trim_line("s3 cret\r\n"), "s3 cret");
        assert_eq!(trim_line(" pw "), " pw ");
        assert_eq!(trim_line(""), "");
    }
}
