//! Waiting for a condition with a deadline, instead of sleeping and hoping.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// First pause between two attempts; it doubles after every failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest pause between two attempts, so a condition is noticed soon after it holds.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// A condition did not hold before its deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what} ({attempts} attempts){}", describe_last(.last_error))]
pub struct WaitError {
    /// What was being waited for, as the caller described it.
    pub what: String,
    /// The deadline the caller gave.
    pub timeout: Duration,
    /// How many times the condition was evaluated.
    pub attempts: u32,
    /// The last attempt's error, for [`wait_until_ok`]; or a note that the last attempt
    /// was still running at the deadline.
    pub last_error: Option<String>,
}

fn describe_last(last_error: &Option<String>) -> String {
    match last_error {
        Some(error) => format!("; last attempt: {error}"),
        None => String::new(),
    }
}

/// Evaluates `f` until it returns `Some`, and returns that value; fails with a
/// [`WaitError`] naming `what` and `timeout` if that does not happen within `timeout`.
///
/// Attempts are spaced by a short backoff (20 ms doubling to 200 ms). An attempt that is
/// still running at the deadline is abandoned, so this returns within about `timeout`
/// even if `f` hangs. `f` is evaluated at least once.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, timeout, || {
        let attempt = f();
        async move { attempt.await.ok_or(None) }
    })
    .await
}

/// Like [`wait_until`] for conditions that fail with an error: evaluates `f` until it
/// returns `Ok`, and on timeout reports the last error in [`WaitError::last_error`], so
/// a failing test says *why* the condition never held.
pub async fn wait_until_ok<T, E, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, WaitError>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    poll(what, timeout, || {
        let attempt = f();
        async move { attempt.await.map_err(|error| Some(error.to_string())) }
    })
    .await
}

/// The loop behind both waits: `Err(Some(reason))` is a failed attempt with a reason.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Option<String>>>,
{
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    let mut last_error: Option<String> = None;
    loop {
        attempts += 1;
        match tokio::time::timeout_at(deadline, f()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(reason)) => last_error = reason,
            Err(_elapsed) => {
                // Keep what the previous attempt said: it usually explains the hang.
                let note = "the attempt after it was still running at the deadline";
                last_error = Some(match last_error {
                    Some(previous) => format!("{previous} ({note})"),
                    None => "it was still running at the deadline".to_owned(),
                });
                break;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Err(WaitError {
        what: what.to_owned(),
        timeout,
        attempts,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = wait_until("the third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n >= 3).then_some(n)
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_an_error_naming_the_condition_and_deadline() {
        let started = std::time::Instant::now();
        let error = wait_until("the moon to turn blue", Duration::from_millis(150), || async {
            None::<()>
        })
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(150),
            "returned early: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "returned late: {elapsed:?}");
        let message = error.to_string();
        assert!(message.contains("the moon to turn blue"), "{message}");
        assert!(message.contains("150ms"), "{message}");
        assert!(error.attempts >= 2, "{message}");
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_is_cut_at_the_deadline() {
        let started = std::time::Instant::now();
        let error = wait_until("a hanging call", Duration::from_millis(100), || {
            std::future::pending::<Option<()>>()
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error.to_string().contains("still running at the deadline"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn wait_until_ok_reports_the_last_error() {
        let error = wait_until_ok("a put to succeed", Duration::from_millis(100), || async {
            Err::<(), _>("connection refused")
        })
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("a put to succeed"), "{message}");
        assert!(message.contains("last attempt: connection refused"), "{message}");
    }
}
