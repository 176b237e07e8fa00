//! Lease ids chosen by the client.
//!
//! etcd lets a client name the id of the lease it grants. A client that does so can retry
//! a grant whose answer it never saw: if the first attempt applied, the retry is refused
//! with [`crate::errors::LEASE_EXISTS`] and the lease is known to be the caller's own.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh lease id: positive and non-zero (as etcd's own ids are), at least 2^32, and
/// different on every call (a per-process counter and the process id, hashed with a
/// randomly keyed hasher, so ids from different processes do not collide in practice).
pub fn fresh() -> i64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    (hasher.finish() >> 2) as i64 | 1 << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_distinct() {
        let ids: std::collections::BTreeSet<i64> = (0..1000).map(|_| fresh()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| *id >= 1 << 32));
    }
}
