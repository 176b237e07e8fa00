//! A watcher that follows the whole run: it watches the workload's prefix from the start,
//! resumes on another member from the last revision it saw whenever its stream fails, and
//! records every event. Afterwards every revision must appear exactly once, in order, and
//! every acknowledged write must be among them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use crate::rng::Rng;

/// One observed event: revision, key, value (empty for deletes).
pub type Seen = (i64, String, String);

/// Follows `prefix` from `start_revision` until `stop`, appending to `seen`.
pub async fn follow(
    endpoints: Vec<String>,
    prefix: String,
    start_revision: i64,
    mut rng: Rng,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    let mut next = start_revision;
    while !stop.load(Ordering::Relaxed) {
        let endpoint = &endpoints[rng.below(endpoints.len() as u64) as usize];
        let Ok(mut client) = conclave_testkit::client(endpoint).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_secs(3),
            client.watch(prefix.as_str(), Some(options)),
        )
        .await
        else {
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let message = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
            let response = match message {
                Err(_) => continue,
                Ok(Ok(Some(response))) => response,
                Ok(_) => break,
            };
            if response.canceled() {
                break;
            }
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let value = match event.event_type() {
                    EventType::Put => String::from_utf8_lossy(kv.value()).into_owned(),
                    EventType::Delete => String::new(),
                };
                seen.push((
                    kv.mod_revision(),
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    value,
                ));
                next = kv.mod_revision() + 1;
            }
        }
    }
}

/// Checks the watch record: strictly increasing revisions (no duplicate, no reordering)
/// and every revision in `acknowledged` present. Returns a description of the first
/// problem.
pub fn verify(seen: &[Seen], acknowledged: &[i64]) -> Result<usize, String> {
    for pair in seen.windows(2) {
        if pair[1].0 <= pair[0].0 {
            return Err(format!(
                "watch delivered revision {} after {}",
                pair[1].0, pair[0].0
            ));
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|s| s.0).collect();
    for revision in acknowledged {
        if revisions.binary_search(revision).is_err() {
            return Err(format!(
                "acknowledged write at revision {revision} never reached the watcher"
            ));
        }
    }
    Ok(seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(rev: i64) -> Seen {
        (rev, "k".into(), "v".into())
    }

    #[test]
    fn duplicates_reorders_and_gaps_are_reported() {
        assert_eq!(verify(&[s(2), s(3), s(5)], &[3, 5]), Ok(3));
        assert!(verify(&[s(2), s(2)], &[]).unwrap_err().contains("after"));
        assert!(verify(&[s(3), s(2)], &[]).is_err());
        assert!(verify(&[s(2), s(5)], &[4]).unwrap_err().contains("revision 4"));
    }
}
