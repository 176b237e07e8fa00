//! Checking what a watch delivered against what was committed.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::Error;

/// One event a watch delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision the change was committed at (etcd's `mod_revision`).
    pub revision: i64,
    /// The key changed.
    pub key: String,
    /// The value after the change (`None`: a delete).
    pub value: Option<String>,
}

/// Checks that a watch opened before the first write delivered every expected revision exactly
/// once and in increasing order.
///
/// `expected_revisions` are the revisions of the acknowledged mutations in the watched range
/// (plus, if the caller knows them, those of unknown-outcome mutations that took effect).
/// Several events may share a revision (one transaction changing several keys) but a
/// (revision, key) pair must appear once, and revisions never decrease. Returns the first
/// ordering error found in stream order; otherwise reports revisions that are missing, then
/// revisions nobody expected.
pub fn check_watch_stream(
    events: &[WatchEvent],
    expected_revisions: impl IntoIterator<Item = i64>,
) -> Result<(), Error> {
    let expected: BTreeSet<i64> = expected_revisions.into_iter().collect();
    let mut seen: HashSet<(i64, &str)> = HashSet::new();
    let mut previous: Option<i64> = None;
    for (index, event) in events.iter().enumerate() {
        if let Some(previous) = previous.filter(|&p| event.revision < p) {
            return Err(Error::WatchOutOfOrder {
                index,
                previous,
                revision: event.revision,
            });
        }
        if !seen.insert((event.revision, event.key.as_str())) {
            return Err(Error::WatchDuplicate {
                index,
                revision: event.revision,
                key: event.key.clone(),
            });
        }
        previous = Some(event.revision);
    }
    let delivered: BTreeSet<i64> = events.iter().map(|e| e.revision).collect();
    let missing: Vec<i64> = expected.difference(&delivered).copied().collect();
    if !missing.is_empty() {
        return Err(Error::WatchMissing {
            count: missing.len(),
            first: missing.into_iter().take(10).collect(),
        });
    }
    if let Some((index, event)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| !expected.contains(&e.revision))
    {
        return Err(Error::WatchUnexpected {
            index,
            revision: event.revision,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(revision: i64, key: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.into(),
            value: Some(format!("v{revision}")),
        }
    }

    #[test]
    fn complete_ordered_stream_passes() {
        let events = [ev(2, "a"), ev(3, "b"), ev(4, "a"), ev(4, "b")];
        assert_eq!(check_watch_stream(&events, [2, 3, 4]), Ok(()));
    }

    #[test]
    fn revision_going_backwards_is_reported_with_its_position() {
        let events = [ev(2, "a"), ev(4, "a"), ev(3, "a")];
        assert_eq!(
            check_watch_stream(&events, [2, 3, 4]),
            Err(Error::WatchOutOfOrder {
                index: 2,
                previous: 4,
                revision: 3
            })
        );
    }

    #[test]
    fn repeated_event_is_reported() {
        let events = [ev(2, "a"), ev(2, "a")];
        assert!(matches!(
            check_watch_stream(&events, [2]),
            Err(Error::WatchDuplicate { index: 1, .. })
        ));
    }

    #[test]
    fn skipped_revision_is_reported() {
        let events = [ev(2, "a"), ev(4, "a")];
        assert_eq!(
            check_watch_stream(&events, [2, 3, 4]),
            Err(Error::WatchMissing {
                count: 1,
                first: vec![3]
            })
        );
    }

    #[test]
    fn invented_revision_is_reported() {
        let events = [ev(2, "a"), ev(9, "a")];
        assert_eq!(
            check_watch_stream(&events, [2]),
            Err(Error::WatchUnexpected {
                index: 1,
                revision: 9
            })
        );
    }
}
