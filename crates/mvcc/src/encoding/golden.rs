//! Golden files of every stored record value: `tests/golden/v1/<kind>/<case>.bin`, each a
//! whole stored value (version byte, crc32, payload). Each file must decode to its sample
//! and the sample must seal to the file, byte for byte; the samples are walked by
//! exhaustive matches so a new variant of a stored enum needs a golden case.

use conclave_testkit::{golden_variant as variant, Coverage, GoldenSet};

use super::*;
use crate::store::ACTIVE_GENERATION;

fn golden() -> GoldenSet {
    GoldenSet::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v1"))
}

fn bin(case: &str) -> String {
    format!("{case}.bin")
}

fn version(value: &[u8], lease: i64) -> StoredVersion {
    StoredVersion {
        create_revision: 3,
        mod_revision: 17,
        version: 5,
        value: value.to_vec(),
        lease,
    }
}

/// Checks a record kind stored under `raw_key`.
fn check<T>(set: &mut GoldenSet, kind: &str, case: &str, raw_key: &[u8], sample: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    set.check(kind, &bin(case), sample, seal_record, |bytes| {
        open_record::<T>(raw_key, bytes)
    });
}

#[test]
fn every_record_kind_matches_its_golden_files() {
    let mut set = golden();
    let mut cov = Coverage::default();

    let latest = latest_key(b"key");
    check(
        &mut set,
        "stored_version",
        "with_lease",
        &latest,
        &version(b"v\x00\xff", 0x7fff_0000_0000_0001),
    );
    check(
        &mut set,
        "stored_version",
        "empty_value",
        &latest,
        &version(b"", 0),
    );

    let history = history_key(b"key", 17, 0);
    for (case, record) in [
        ("put", HistoryRecord::Put(version(b"value", 0))),
        ("tombstone", HistoryRecord::Tombstone),
    ] {
        variant!(&mut cov, "HistoryRecord", &record, {
            HistoryRecord::Put(_) => "Put",
            HistoryRecord::Tombstone => "Tombstone",
        });
        check(&mut set, "history_record", case, &history, &record);
    }

    let index = revision_key(17, 0);
    for (case, kind) in [("put", EventKind::Put), ("delete", EventKind::Delete)] {
        variant!(&mut cov, "EventKind", kind, {
            EventKind::Put => "Put",
            EventKind::Delete => "Delete",
        });
        let record = RevisionRecord {
            key: b"key\x00".to_vec(),
            kind,
        };
        check(&mut set, "revision_record", case, &index, &record);
    }

    let lease = lease_key(-7);
    check(
        &mut set,
        "lease_record",
        "checkpointed",
        &lease,
        &LeaseRecord {
            ttl: 9_000_000_000,
            remaining_ttl: 120,
        },
    );
    check(
        &mut set,
        "lease_record",
        "full_ttl",
        &lease,
        &LeaseRecord {
            ttl: 60,
            remaining_ttl: 0,
        },
    );

    check(
        &mut set,
        "meta_revision",
        "current_revision",
        &meta_key(META_CURRENT_REVISION),
        &112i64,
    );
    check(
        &mut set,
        "meta_revision",
        "compact_revision",
        &meta_key(META_COMPACT_REVISION),
        &89i64,
    );
    check(
        &mut set,
        "generation_pointer",
        "generation",
        ACTIVE_GENERATION,
        &3u64,
    );

    // Records whose payload is not postcard: attachments (empty) and caller meta (bytes
    // the caller encoded, here a consensus envelope).
    let raw = |bytes: &[u8]| -> Result<Vec<u8>> { Ok(seal(bytes)) };
    let attach = attach_key(-7, b"key");
    set.check(
        "attachment",
        "empty.bin",
        &Vec::new(),
        |v: &Vec<u8>| raw(v),
        |bytes| open(&attach, bytes).map(<[u8]>::to_vec),
    );
    let app = app_key("raft.last_applied");
    let payload = vec![1, 0x12, 0x34, 0x56, 0x78, 9, 0xa1, 1, 123];
    set.check(
        "app_meta",
        "raw.bin",
        &payload,
        |v: &Vec<u8>| raw(v),
        |bytes| open(&app, bytes).map(<[u8]>::to_vec),
    );

    let checked = set.finish();
    cov.check(&["HistoryRecord", "EventKind"]);
    eprintln!("{checked} golden cases checked");
}
