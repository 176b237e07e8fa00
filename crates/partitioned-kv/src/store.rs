//! The data of the partitions one instance holds: per key the latest value with its
//! version — (leader epoch, sequence number within that leadership) — so copies merge in
//! any order: a newer version always wins, an older one never overwrites it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// When a write was accepted: the epoch of the leadership that accepted it, then its
/// sequence number within that leadership. Later leaderships have higher epochs, so
/// versions order every write of a partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// The leader's epoch.
    pub epoch: i64,
    /// The write's number within that leadership.
    pub seq: u64,
}

/// One key's latest value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// When it was written.
    pub version: Version,
}

/// One partition's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionData {
    entries: BTreeMap<String, Entry>,
    /// The last sequence number this instance handed out as leader, per epoch.
    last_seq: u64,
    last_epoch: i64,
}

impl PartitionData {
    /// Merges `entry`: kept if newer than what is held. Returns whether it was.
    pub fn merge(&mut self, entry: Entry) -> bool {
        match self.entries.get(&entry.key) {
            Some(held) if held.version >= entry.version => false,
            _ => {
                self.entries.insert(entry.key.clone(), entry);
                true
            }
        }
    }

    /// Merges every entry of `entries`.
    pub fn merge_all(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            self.merge(entry);
        }
    }

    /// The next version for a write accepted as leader at `epoch`.
    pub fn next_version(&mut self, epoch: i64) -> Version {
        if epoch != self.last_epoch {
            self.last_epoch = epoch;
            self.last_seq = 0;
        }
        self.last_seq += 1;
        Version {
            epoch,
            seq: self.last_seq,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, epoch: i64, seq: u64) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
            version: Version { epoch, seq },
        }
    }

    #[test]
    fn newer_versions_win_in_any_order() {
        let writes = [
            entry("k", "a", 5, 1),
            entry("k", "b", 5, 2),
            entry("k", "c", 9, 1),
        ];
        let mut forward = PartitionData::default();
        forward.merge_all(writes.clone());
        let mut backward = PartitionData::default();
        backward.merge_all(writes.into_iter().rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.get("k").map(|e| e.value.as_str()), Some("c"));
    }

    #[test]
    fn versions_restart_per_leadership_and_grow_within_one() {
        let mut data = PartitionData::default();
        assert_eq!(data.next_version(5), Version { epoch: 5, seq: 1 });
        assert_eq!(data.next_version(5), Version { epoch: 5, seq: 2 });
        let later = data.next_version(9);
        assert_eq!(later, Version { epoch: 9, seq: 1 });
        assert!(later > Version { epoch: 5, seq: 2 });
    }
}
