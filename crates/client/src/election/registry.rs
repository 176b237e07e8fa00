//! The candidate registry: one key per running [`super::Candidate`], next to the
//! election, on a lease of the candidate's own, so an entry goes when its candidate does.
//!
//! Key layout, for an election called `NAME` (whose contenders are under `NAME/`, as
//! etcd's Election service keeps them):
//!
//! | key | value | lease |
//! |---|---|---|
//! | `NAME.candidates/ID` | [`CandidateEntry`] as JSON | the candidate's registry lease |
//! | `NAME.control/ID/REQUEST` | a control request (see `control`) | the requester's |
//! | `NAME.replies/REQUEST` | the candidate's reply | the request's |
//!
//! The registry is outside `NAME/` so that it is never mistaken for a contender, and
//! starts with `NAME` so that a role granting the prefix `NAME` covers the election,
//! its registry and its control keys.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Election;
use crate::error::{Error, Result};
use crate::kv::Get;
use crate::watch::{EventKind, Watch};

/// What a candidate is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateState {
    /// Not campaigning: cooling down after a step-down, or backing off after a failure.
    Follower,
    /// Queued in the election, waiting for the leader ahead of it to go.
    Candidate,
    /// Leading, with the epoch in [`CandidateEntry::epoch`].
    Leader,
}

impl std::fmt::Display for CandidateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CandidateState::Follower => "follower",
            CandidateState::Candidate => "candidate",
            CandidateState::Leader => "leader",
        })
    }
}

/// A candidate's registry entry (the JSON value of `NAME.candidates/ID`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateEntry {
    /// The candidate id, unique in the election.
    pub id: String,
    /// Where the application behind the candidate can be reached (free-form; empty if
    /// not set).
    #[serde(default)]
    pub address: String,
    /// Free-form labels of the application.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// What the candidate is doing.
    pub state: CandidateState,
    /// Its fencing epoch while it leads.
    #[serde(default)]
    pub epoch: Option<i64>,
    /// Since when (Unix milliseconds, the candidate's clock) it is in this state.
    pub since_unix_ms: u64,
    /// When its step-down cooldown ends (Unix milliseconds), while one runs.
    #[serde(default)]
    pub cooldown_until_unix_ms: Option<u64>,
    /// The SDK version of the candidate.
    pub version: String,
}

/// A change of the registry, from [`Election::candidate_changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateChange {
    /// A candidate registered or changed its entry.
    Put(CandidateEntry),
    /// A candidate's entry went: it stopped, or its registry lease expired.
    Gone(String),
}

/// The registry as it was, and a stream of its changes; see
/// [`Election::candidate_changes`]. Dropping it stops following.
pub struct CandidateChanges {
    /// The entries at `revision`, ordered by id.
    pub initial: Vec<CandidateEntry>,
    /// The store revision of `initial`.
    pub revision: i64,
    events: mpsc::Receiver<Result<CandidateChange>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CandidateChanges {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for CandidateChanges {
    type Item = Result<CandidateChange>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// The registry prefix of election `name`.
pub(crate) fn registry_prefix(name: &str) -> String {
    format!("{name}.candidates/")
}

/// The control-request prefix of candidate `id`.
pub(crate) fn control_prefix(name: &str, id: &str) -> String {
    format!("{name}.control/{id}/")
}

/// The reply key of request `request`.
pub(crate) fn reply_key(name: &str, request: &str) -> String {
    format!("{name}.replies/{request}")
}

/// Checks a candidate id: non-empty, printable, no `/`, at most 128 bytes.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || id.contains('/') || id.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "candidate id {id:?} must be 1 to 128 bytes, without '/' or control characters"
        )));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch of `time`.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A default candidate id: the host name and the process id.
pub(crate) fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "candidate".into());
    format!("{host}-{}", std::process::id())
}

fn parse_entry(value: &[u8]) -> Option<CandidateEntry> {
    match serde_json::from_slice(value) {
        Ok(entry) => Some(entry),
        Err(error) => {
            tracing::debug!(%error, "skipping an unreadable registry entry");
            None
        }
    }
}

impl Election {
    /// The registered candidates, ordered by id (a linearizable read).
    pub async fn candidates(&self) -> Result<Vec<CandidateEntry>> {
        let listed = self
            .client()
            .range(Get::prefix(registry_prefix(self.name())))
            .await?;
        Ok(listed
            .kvs
            .iter()
            .filter_map(|kv| parse_entry(&kv.value))
            .collect())
    }

    /// One registered candidate, or [`Error::UnknownCandidate`].
    pub async fn candidate(&self, id: &str) -> Result<CandidateEntry> {
        check_id(id)?;
        let key = format!("{}{id}", registry_prefix(self.name()));
        self.client()
            .get(key)
            .await?
            .and_then(|kv| parse_entry(&kv.value))
            .ok_or_else(|| Error::UnknownCandidate {
                election: self.name().to_string(),
                id: id.to_string(),
            })
    }

    /// The registry now, then every change to it in revision order (a watch that resumes
    /// after a disconnect; it ends only with [`Error::Compacted`]).
    pub async fn candidate_changes(&self) -> Result<CandidateChanges> {
        let prefix = registry_prefix(self.name());
        let listed = self.client().range(Get::prefix(prefix.clone())).await?;
        let initial = listed
            .kvs
            .iter()
            .filter_map(|kv| parse_entry(&kv.value))
            .collect();
        let mut watch = self
            .client()
            .watch(Watch::prefix(prefix.clone()).start_revision(listed.revision + 1))
            .await?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let change = event.map(|event| match event.kind {
                    EventKind::Put => parse_entry(&event.kv.value).map(CandidateChange::Put),
                    EventKind::Delete => {
                        let key = String::from_utf8_lossy(&event.kv.key);
                        Some(CandidateChange::Gone(
                            key.strip_prefix(&prefix).unwrap_or(&key).to_string(),
                        ))
                    }
                });
                let change = match change {
                    Ok(Some(change)) => Ok(change),
                    Ok(None) => continue,
                    Err(error) => Err(error),
                };
                let last = change.is_err();
                if tx.send(change).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(CandidateChanges {
            initial,
            revision: listed.revision,
            events: rx,
            task,
        })
    }

    /// The registered candidate that leads now (its entry's epoch is the leader key's),
    /// waiting up to `timeout` for the entry to catch up with a new leader. Fails with
    /// [`Error::NoLeader`], or [`Error::UnknownCandidate`] when the leader is not a
    /// registered candidate (an etcdctl or Election-service campaigner).
    pub async fn leading_candidate(&self, timeout: Duration) -> Result<CandidateEntry> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let leader = self.leader().await?;
            if let Some(leader) = &leader {
                let entries = self.candidates().await?;
                if let Some(entry) = entries.into_iter().find(|e| e.epoch == Some(leader.epoch.0)) {
                    return Ok(entry);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match leader {
                    None => Error::NoLeader {
                        election: self.name().to_string(),
                    },
                    Some(leader) => Error::UnknownCandidate {
                        election: self.name().to_string(),
                        id: format!("(the leader {} with epoch {})", leader.key, leader.epoch),
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("node-a").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id("a\nb").is_err());
        assert!(check_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn the_layout_stays_outside_the_contender_prefix() {
        let name = "/election/scheduler";
        for key in [
            registry_prefix(name),
            control_prefix(name, "a"),
            reply_key(name, "1"),
        ] {
            assert!(key.starts_with(name), "{key}");
            assert!(!key.starts_with(&format!("{name}/")), "{key}");
        }
    }

    #[test]
    fn entries_round_trip_as_json() {
        let entry = CandidateEntry {
            id: "a".into(),
            address: "10.0.0.1:80".into(),
            metadata: BTreeMap::from([("zone".into(), "b".into())]),
            state: CandidateState::Leader,
            epoch: Some(7),
            since_unix_ms: 1,
            cooldown_until_unix_ms: None,
            version: "0".into(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.contains(r#""state":"leader""#), "{json}");
        assert_eq!(parse_entry(json.as_bytes()), Some(entry));
    }
}
