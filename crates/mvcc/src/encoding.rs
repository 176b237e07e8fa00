//! Key layout and value envelope of the records inside one generation tree.
//!
//! Every record key starts with a one-byte tag:
//!
//! | tag | key | value payload |
//! | --- | --- | --- |
//! | `m` | `m` ‖ name | store meta: `current_revision`, `compact_revision` (postcard i64) |
//! | `a` | `a` ‖ name | caller (app) meta: raw bytes |
//! | `k` | `k` ‖ user key | latest live version ([`StoredVersion`]) |
//! | `h` | `h` ‖ esc(user key) ‖ rev ‖ sub | [`HistoryRecord`]: a version or a tombstone |
//! | `r` | `r` ‖ rev ‖ sub | [`RevisionRecord`]: which key changed how (the event log) |
//! | `l` | `l` ‖ lease id | [`LeaseRecord`]: a granted lease (TTL, last checkpoint) |
//! | `x` | `x` ‖ lease id ‖ user key | empty payload: the key's latest version is attached to the lease |
//!
//! `rev` and `sub` are big-endian u64 (revisions are never negative), so records sort
//! by revision. A lease id is its i64 with the sign bit flipped, big-endian, so leases
//! sort by id (negative ids included) and a lease's `x` records are contiguous, in key
//! order (the id has a fixed width, so the user key needs no escaping). The `x` records
//! are an index of the `k` records' `lease` field, kept in step by every write. `esc` is a memcomparable encoding (0x00 → 0x00 0xFF, terminated by
//! 0x00 0x01): it is prefix-free and preserves byte order, so all history records of a
//! key are contiguous and keys sort as the user keys do.
//!
//! Every value is wrapped in an envelope: format-version byte, crc32 (big-endian) of the
//! payload, payload. [`open`] verifies both and reports [`MvccError::Corrupt`] naming
//! the record.
//!
//! # Versions
//!
//! The version byte is the layout version of the record's kind (the tag says which kind).
//! Every kind is at layout 1 ([`FORMAT_VERSION`]): postcard of the stored types below
//! ([`StoredVersion`], [`HistoryRecord`], [`RevisionRecord`] with its [`StoredEventKind`],
//! [`LeaseRecord`]), an `i64` for `m` records, a `u64` for the generation pointer of
//! `store` (`g<group>/meta`), and raw bytes for `a` and `x`. These types are private to
//! this module and frozen: a field or variant is never added, removed or reordered (the
//! golden files in `tests/golden/v1/` pin their bytes). A new layout gets version 2, read
//! beside 1 with an upgrade to the in-memory values, and is written only once every
//! member reads it — records also travel to other members inside snapshots — which is the
//! policy of the consensus crate's `format` module.

use crate::error::{MvccError, Result};
use crate::types::{EventKind, KeyValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version byte written first in every stored value: layout 1 of every record kind.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Version byte + crc32.
const ENVELOPE_HEADER: usize = 5;

pub(crate) const TAG_META: u8 = b'm';
pub(crate) const TAG_APP: u8 = b'a';
pub(crate) const TAG_LATEST: u8 = b'k';
pub(crate) const TAG_HISTORY: u8 = b'h';
pub(crate) const TAG_REVISION: u8 = b'r';
pub(crate) const TAG_LEASE: u8 = b'l';
pub(crate) const TAG_ATTACH: u8 = b'x';

/// Meta record holding the current revision.
pub(crate) const META_CURRENT_REVISION: &[u8] = b"current_revision";
/// Meta record holding the compact revision.
pub(crate) const META_COMPACT_REVISION: &[u8] = b"compact_revision";

/// A half-open range of raw record keys: `[lo, hi)`, `hi == None` = to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub(crate) lo: Vec<u8>,
    pub(crate) hi: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every record of the tree.
    pub(crate) fn all() -> KeyRange {
        KeyRange {
            lo: Vec::new(),
            hi: None,
        }
    }

    /// True when no key can fall inside.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(&self.hi, Some(hi) if self.lo >= *hi)
    }
}

/// The end of a user key range, decoded from etcd's `range_end` convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserEnd {
    /// Empty `range_end`: only `key` itself.
    Single,
    /// `"\0"`: every key `>= key`.
    ToEnd,
    /// Any other `range_end`: keys `< end`.
    Before(Vec<u8>),
}

impl UserEnd {
    /// Decodes etcd's `range_end`.
    pub(crate) fn parse(range_end: &[u8]) -> UserEnd {
        match range_end {
            [] => UserEnd::Single,
            [0] => UserEnd::ToEnd,
            end => UserEnd::Before(end.to_vec()),
        }
    }

    /// Whether `key` lies in `[start, self)`.
    pub(crate) fn contains(&self, start: &[u8], key: &[u8]) -> bool {
        match self {
            UserEnd::Single => key == start,
            UserEnd::ToEnd => key >= start,
            UserEnd::Before(end) => key >= start && key < end.as_slice(),
        }
    }
}

/// A version as stored (the key lives in the record key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    pub(crate) version: i64,
    pub(crate) value: Vec<u8>,
    pub(crate) lease: i64,
}

impl StoredVersion {
    pub(crate) fn from_kv(kv: &KeyValue) -> StoredVersion {
        StoredVersion {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value.clone(),
            lease: kv.lease,
        }
    }

    pub(crate) fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

/// One entry of a key's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HistoryRecord {
    /// The key held this version from this revision on.
    Put(StoredVersion),
    /// The key was deleted at this revision.
    Tombstone,
}

/// One entry of the revision index: the key and kind of the change at `rev ‖ sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RevisionRecord {
    pub(crate) key: Vec<u8>,
    #[serde(with = "stored_event_kind")]
    pub(crate) kind: EventKind,
}

/// [`EventKind`] as a [`RevisionRecord`] stores it (the public type has no encoding of its
/// own): variant 0 is a put, 1 a delete.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum StoredEventKind {
    Put,
    Delete,
}

mod stored_event_kind {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::StoredEventKind;
    use crate::types::EventKind;

    pub(super) fn serialize<S: Serializer>(kind: &EventKind, serializer: S) -> Result<S::Ok, S::Error> {
        match kind {
            EventKind::Put => StoredEventKind::Put,
            EventKind::Delete => StoredEventKind::Delete,
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<EventKind, D::Error> {
        Ok(match StoredEventKind::deserialize(deserializer)? {
            StoredEventKind::Put => EventKind::Put,
            StoredEventKind::Delete => EventKind::Delete,
        })
    }
}

/// A granted lease as stored (the id lives in the record key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// Granted TTL in seconds.
    pub(crate) ttl: i64,
    /// Remaining TTL at the last checkpoint, 0 = none (the full TTL).
    pub(crate) remaining_ttl: i64,
}

fn push_u64_of(out: &mut Vec<u8>, n: i64) {
    // Revisions and sub-revisions are never negative; clamp defensively instead of
    // wrapping so that a bad value can never sort after every real record.
    out.extend_from_slice(&u64::try_from(n).unwrap_or(0).to_be_bytes());
}

fn read_u64_as_i64(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    i64::try_from(u64::from_be_bytes(arr)).ok()
}

/// Appends the memcomparable encoding of `key`.
pub(crate) fn push_escaped(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        if b == 0 {
            out.extend_from_slice(&[0, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// Decodes a memcomparable key at the start of `raw`, returning it and the rest.
pub(crate) fn split_escaped(raw: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut key = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0 {
            match raw.get(i + 1) {
                Some(0xFF) => key.push(0),
                Some(1) => return Some((key, &raw[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            key.push(raw[i]);
            i += 1;
        }
    }
    None
}

pub(crate) fn meta_key(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_META);
    k.extend_from_slice(name);
    k
}

pub(crate) fn app_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_APP);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn latest_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + user_key.len());
    k.push(TAG_LATEST);
    k.extend_from_slice(user_key);
    k
}

/// The `k` records of the user range `[key, end)`.
pub(crate) fn latest_range(key: &[u8], end: &UserEnd) -> KeyRange {
    let lo = latest_key(key);
    let hi = match end {
        UserEnd::Single => {
            let mut hi = lo.clone();
            hi.push(0);
            hi
        }
        UserEnd::ToEnd => vec![TAG_LATEST + 1],
        UserEnd::Before(e) => latest_key(e),
    };
    KeyRange { lo, hi: Some(hi) }
}

/// Prefix shared by every history record of `user_key`.
pub(crate) fn history_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + user_key.len() + 16);
    k.push(TAG_HISTORY);
    push_escaped(&mut k, user_key);
    k
}

pub(crate) fn history_key(user_key: &[u8], rev: i64, sub: i64) -> Vec<u8> {
    let mut k = history_prefix(user_key);
    push_u64_of(&mut k, rev);
    push_u64_of(&mut k, sub);
    k
}

/// Appends `rev ‖ sub` to a prefix.
pub(crate) fn with_rev(prefix: &[u8], rev: i64, sub: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 16);
    k.extend_from_slice(prefix);
    push_u64_of(&mut k, rev);
    push_u64_of(&mut k, sub);
    k
}

/// Upper bound (exclusive) of every history record of the key with this prefix.
pub(crate) fn history_prefix_end(prefix: &[u8]) -> Vec<u8> {
    // Revisions are < 2^63, so their first byte is <= 0x7F: 0xFF sorts after all of them,
    // and the escaped key is prefix-free, so no other key's record falls before it.
    let mut k = prefix.to_vec();
    k.push(0xFF);
    k
}

/// The `h` records of the user range `[key, end)`.
pub(crate) fn history_range(key: &[u8], end: &UserEnd) -> KeyRange {
    let lo = history_prefix(key);
    let hi = match end {
        UserEnd::Single => history_prefix_end(&lo),
        UserEnd::ToEnd => vec![TAG_HISTORY + 1],
        UserEnd::Before(e) => history_prefix(e),
    };
    KeyRange { lo, hi: Some(hi) }
}

/// Splits a history record key into (user key, rev, sub).
pub(crate) fn decode_history_key(raw: &[u8]) -> Result<(Vec<u8>, i64, i64)> {
    let parsed = raw
        .split_first()
        .filter(|(tag, _)| **tag == TAG_HISTORY)
        .and_then(|(_, rest)| split_escaped(rest))
        .and_then(|(key, rest)| {
            if rest.len() != 16 {
                return None;
            }
            Some((key, read_u64_as_i64(&rest[..8])?, read_u64_as_i64(&rest[8..])?))
        });
    parsed.ok_or_else(|| MvccError::Corrupt(format!("malformed history record key {raw:?}")))
}

pub(crate) fn revision_key(rev: i64, sub: i64) -> Vec<u8> {
    with_rev(&[TAG_REVISION], rev, sub)
}

/// Splits a revision-index record key into (rev, sub).
pub(crate) fn decode_revision_key(raw: &[u8]) -> Result<(i64, i64)> {
    let parsed = match raw {
        [TAG_REVISION, rest @ ..] if rest.len() == 16 => {
            read_u64_as_i64(&rest[..8]).zip(read_u64_as_i64(&rest[8..]))
        }
        _ => None,
    };
    parsed.ok_or_else(|| MvccError::Corrupt(format!("malformed revision index key {raw:?}")))
}

/// Order-preserving bytes of a lease id: sign bit flipped, big-endian.
fn lease_id_bytes(id: i64) -> [u8; 8] {
    ((id as u64) ^ (1 << 63)).to_be_bytes()
}

fn lease_id_from(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

pub(crate) fn lease_key(id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_LEASE);
    k.extend_from_slice(&lease_id_bytes(id));
    k
}

/// Every `l` record.
pub(crate) fn lease_records() -> KeyRange {
    KeyRange {
        lo: vec![TAG_LEASE],
        hi: Some(vec![TAG_LEASE + 1]),
    }
}

/// The lease id of an `l` record key.
pub(crate) fn decode_lease_key(raw: &[u8]) -> Result<i64> {
    let parsed = match raw {
        [TAG_LEASE, rest @ ..] => lease_id_from(rest),
        _ => None,
    };
    parsed.ok_or_else(|| MvccError::Corrupt(format!("malformed lease record key {raw:?}")))
}

fn attach_prefix(id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_ATTACH);
    k.extend_from_slice(&lease_id_bytes(id));
    k
}

pub(crate) fn attach_key(id: i64, user_key: &[u8]) -> Vec<u8> {
    let mut k = attach_prefix(id);
    k.extend_from_slice(user_key);
    k
}

/// The `x` records of one lease, in key order.
pub(crate) fn attach_range(id: i64) -> KeyRange {
    let hi = match id.checked_add(1) {
        Some(next) => attach_prefix(next),
        None => vec![TAG_ATTACH + 1],
    };
    KeyRange {
        lo: attach_prefix(id),
        hi: Some(hi),
    }
}

/// Splits an `x` record key into (lease id, user key).
pub(crate) fn decode_attach_key(raw: &[u8]) -> Result<(i64, Vec<u8>)> {
    let parsed = match raw {
        [TAG_ATTACH, rest @ ..] if rest.len() > 8 => {
            lease_id_from(&rest[..8]).map(|id| (id, rest[8..].to_vec()))
        }
        _ => None,
    };
    parsed.ok_or_else(|| MvccError::Corrupt(format!("malformed lease attachment key {raw:?}")))
}

/// Human-readable name of a record, for error messages.
pub(crate) fn describe(raw_key: &[u8]) -> String {
    match raw_key.first() {
        Some(&TAG_META) => format!("store meta {:?}", String::from_utf8_lossy(&raw_key[1..])),
        Some(&TAG_APP) => format!("app meta {:?}", String::from_utf8_lossy(&raw_key[1..])),
        Some(&TAG_LATEST) => {
            format!(
                "latest version of key {:?}",
                String::from_utf8_lossy(&raw_key[1..])
            )
        }
        Some(&TAG_HISTORY) => match decode_history_key(raw_key) {
            Ok((key, rev, sub)) => format!(
                "history of key {:?} at revision {rev}.{sub}",
                String::from_utf8_lossy(&key)
            ),
            Err(_) => format!("history record {raw_key:?}"),
        },
        Some(&TAG_REVISION) => match decode_revision_key(raw_key) {
            Ok((rev, sub)) => format!("revision index entry {rev}.{sub}"),
            Err(_) => format!("revision index record {raw_key:?}"),
        },
        Some(&TAG_LEASE) => match decode_lease_key(raw_key) {
            Ok(id) => format!("lease {id}"),
            Err(_) => format!("lease record {raw_key:?}"),
        },
        Some(&TAG_ATTACH) => match decode_attach_key(raw_key) {
            Ok((id, key)) => format!(
                "attachment of key {:?} to lease {id}",
                String::from_utf8_lossy(&key)
            ),
            Err(_) => format!("lease attachment record {raw_key:?}"),
        },
        _ => format!("record {raw_key:?}"),
    }
}

/// Wraps a payload in the envelope.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Serialises `value` with postcard and wraps it in the envelope.
pub(crate) fn seal_record<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let payload = postcard::to_stdvec(value)
        .map_err(|e| MvccError::Storage(format!("encoding a record failed: {e}")))?;
    Ok(seal(&payload))
}

/// Verifies the envelope of the value stored under `raw_key` and returns its payload.
pub(crate) fn open<'v>(raw_key: &[u8], raw_value: &'v [u8]) -> Result<&'v [u8]> {
    if raw_value.len() < ENVELOPE_HEADER {
        return Err(MvccError::Corrupt(format!(
            "{}: value of {} bytes is shorter than the envelope header",
            describe(raw_key),
            raw_value.len()
        )));
    }
    if raw_value[0] != FORMAT_VERSION {
        return Err(MvccError::Corrupt(format!(
            "{}: unknown format version {} (expected {FORMAT_VERSION})",
            describe(raw_key),
            raw_value[0]
        )));
    }
    let stored = u32::from_be_bytes([raw_value[1], raw_value[2], raw_value[3], raw_value[4]]);
    let payload = &raw_value[ENVELOPE_HEADER..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(MvccError::Corrupt(format!(
            "{}: checksum mismatch (stored {stored:08x}, computed {computed:08x})",
            describe(raw_key)
        )));
    }
    Ok(payload)
}

/// Verifies the envelope and deserialises the postcard payload.
pub(crate) fn open_record<T: DeserializeOwned>(raw_key: &[u8], raw_value: &[u8]) -> Result<T> {
    let payload = open(raw_key, raw_value)?;
    postcard::from_bytes(payload)
        .map_err(|e| MvccError::Corrupt(format!("{}: undecodable payload: {e}", describe(raw_key))))
}

/// Checks that a raw record (as exported) is well-formed: known tag, well-formed key,
/// valid envelope and decodable payload.
pub(crate) fn check_record(raw_key: &[u8], raw_value: &[u8]) -> Result<()> {
    match raw_key.first() {
        Some(&TAG_META) => open_record::<i64>(raw_key, raw_value).map(drop),
        Some(&TAG_APP) => open(raw_key, raw_value).map(drop),
        Some(&TAG_LATEST) => open_record::<StoredVersion>(raw_key, raw_value).map(drop),
        Some(&TAG_HISTORY) => {
            decode_history_key(raw_key)?;
            open_record::<HistoryRecord>(raw_key, raw_value).map(drop)
        }
        Some(&TAG_REVISION) => {
            decode_revision_key(raw_key)?;
            open_record::<RevisionRecord>(raw_key, raw_value).map(drop)
        }
        Some(&TAG_LEASE) => {
            decode_lease_key(raw_key)?;
            open_record::<LeaseRecord>(raw_key, raw_value).map(drop)
        }
        Some(&TAG_ATTACH) => {
            decode_attach_key(raw_key)?;
            open(raw_key, raw_value).map(drop)
        }
        _ => Err(MvccError::Corrupt(format!(
            "{}: unknown record tag",
            describe(raw_key)
        ))),
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_keys_round_trip_and_keep_order() {
        let keys: Vec<&[u8]> = vec![
            b"", b"\0", b"\0\0", b"\0\x01", b"a", b"a\0", b"a\0b", b"a\x01", b"ab", b"b",
        ];
        let mut encoded: Vec<Vec<u8>> = Vec::new();
        for k in &keys {
            let mut e = Vec::new();
            push_escaped(&mut e, k);
            let (back, rest) = split_escaped(&e).unwrap();
            assert_eq!(back, *k);
            assert!(rest.is_empty());
            encoded.push(e);
        }
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded, "encoding must preserve key order");
        // Followed by revisions, order is still by key first.
        assert!(history_key(b"a", 99, 9) < history_key(b"a\0", 1, 0));
        assert!(history_key(b"a", 1, 0) < history_key(b"a", 1, 1));
        assert!(history_key(b"a", 1, 5) < history_key(b"a", 2, 0));
    }

    #[test]
    fn history_key_round_trips() {
        let raw = history_key(b"x\0y", 42, 3);
        assert_eq!(decode_history_key(&raw).unwrap(), (b"x\0y".to_vec(), 42, 3));
        assert!(decode_history_key(b"hx").is_err());
        assert!(decode_history_key(&raw[..raw.len() - 1]).is_err());
        assert_eq!(decode_revision_key(&revision_key(7, 2)).unwrap(), (7, 2));
        assert!(decode_revision_key(b"r123").is_err());
    }

    #[test]
    fn history_range_of_single_key_excludes_neighbours() {
        let r = history_range(b"a", &UserEnd::Single);
        let inside = history_key(b"a", i64::MAX, i64::MAX);
        assert!(inside >= r.lo && inside < *r.hi.as_ref().unwrap());
        for other in [&b"a\0"[..], b"b", b""] {
            let k = history_key(other, 1, 0);
            assert!(!(k >= r.lo && k < *r.hi.as_ref().unwrap()));
        }
    }

    #[test]
    fn envelope_detects_corruption() {
        let sealed = seal_record(&42i64).unwrap();
        assert_eq!(open_record::<i64>(b"mx", &sealed).unwrap(), 42);
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        assert!(matches!(
            open_record::<i64>(b"mx", &bad),
            Err(MvccError::Corrupt(_))
        ));
        let mut bad_version = sealed;
        bad_version[0] = 9;
        assert!(matches!(open(b"mx", &bad_version), Err(MvccError::Corrupt(_))));
        assert!(matches!(open(b"mx", &[1, 2]), Err(MvccError::Corrupt(_))));
    }

    #[test]
    fn user_end_parsing() {
        assert_eq!(UserEnd::parse(b""), UserEnd::Single);
        assert_eq!(UserEnd::parse(b"\0"), UserEnd::ToEnd);
        assert_eq!(UserEnd::parse(b"b"), UserEnd::Before(b"b".to_vec()));
        assert!(UserEnd::ToEnd.contains(b"a", b"zzz"));
        assert!(!UserEnd::ToEnd.contains(b"b", b"a"));
        assert!(UserEnd::Before(b"b".to_vec()).contains(b"a", b"a\xff"));
        assert!(!UserEnd::Before(b"b".to_vec()).contains(b"a", b"b"));
    }
}
