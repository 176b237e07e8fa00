//! A value built from files and rebuilt when their content changes.
//!
//! Checked by whoever needs the value (the accept loop on each new connection, the
//! connector on each dial): the files are re-read, and if any byte differs from what the
//! current value was built from, a new value is built. A build that fails (a certificate
//! written before its key during a rotation, a file briefly missing) keeps the previous
//! value and is logged once per distinct content, so a half-finished rotation never breaks
//! new connections and the next check after it completes picks it up.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::{PemSource, TlsError};

type Build<T> = dyn Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync;

struct State<T> {
    /// The contents `value` was built from.
    contents: Vec<Vec<u8>>,
    value: Arc<T>,
    /// The contents the last failed build saw (so it is logged once).
    failed: Option<Vec<Vec<u8>>>,
    generation: u64,
}

/// A value of `T` kept in step with the files it is built from.
pub struct Reloading<T> {
    what: String,
    sources: Vec<PemSource>,
    build: Box<Build<T>>,
    state: Mutex<State<T>>,
}

impl<T> fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("sources", &self.sources)
            .finish()
    }
}

impl<T> Reloading<T> {
    /// Reads `sources` and builds the first value; an error here is a start error.
    pub fn new(
        what: impl Into<String>,
        sources: Vec<PemSource>,
        build: impl Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, TlsError> {
        let contents = sources
            .iter()
            .map(PemSource::read)
            .collect::<Result<Vec<_>, _>>()?;
        let value = Arc::new(build(&contents)?);
        Ok(Reloading {
            what: what.into(),
            sources,
            build: Box::new(build),
            state: Mutex::new(State {
                contents,
                value,
                failed: None,
                generation: 0,
            }),
        })
    }

    /// The value for the files as they are now (or the last good one, see the module
    /// docs).
    pub fn current(&self) -> Arc<T> {
        let contents: Result<Vec<Vec<u8>>, TlsError> = self.sources.iter().map(PemSource::read).collect();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let contents = match contents {
            Ok(contents) => contents,
            Err(e) => {
                tracing::warn!(what = %self.what, error = %e, "TLS files unreadable; still using the previous ones");
                return state.value.clone();
            }
        };
        if contents == state.contents || state.failed.as_ref() == Some(&contents) {
            return state.value.clone();
        }
        match (self.build)(&contents) {
            Ok(value) => {
                state.value = Arc::new(value);
                state.contents = contents;
                state.failed = None;
                state.generation += 1;
                tracing::info!(what = %self.what, generation = state.generation, "TLS files changed: reloaded");
            }
            Err(e) => {
                tracing::warn!(what = %self.what, error = %e, "TLS files changed but cannot be used (yet); still using the previous ones");
                state.failed = Some(contents);
            }
        }
        state.value.clone()
    }

    /// How many times the value was rebuilt since start.
    pub fn generation(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_on_change_and_keeps_the_last_good_value_on_a_bad_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        let source = PemSource::file("--n", &path);
        let numbers = Reloading::new("n", vec![source], |c: &[Vec<u8>]| {
            String::from_utf8_lossy(&c[0])
                .parse::<u32>()
                .map_err(|e| TlsError::Settings(e.to_string()))
        })
        .expect("first build");
        assert_eq!(*numbers.current(), 1);
        std::fs::write(&path, "2").expect("write");
        assert_eq!(*numbers.current(), 2);
        std::fs::write(&path, "x").expect("write");
        assert_eq!(*numbers.current(), 2, "a bad file keeps the last good value");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(*numbers.current(), 2, "a missing file keeps the last good value");
        std::fs::write(&path, "3").expect("write");
        assert_eq!(*numbers.current(), 3);
        assert_eq!(numbers.generation(), 2);
    }

    #[test]
    fn a_missing_file_at_start_names_the_setting_and_the_file() {
        let source = PemSource::file("--cert-file", "/nonexistent/server.pem");
        let error = Reloading::new("x", vec![source], |_: &[Vec<u8>]| Ok(())).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("--cert-file") && text.contains("/nonexistent/server.pem"),
            "{text}"
        );
    }
}
