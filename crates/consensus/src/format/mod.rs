//! The encoded form of everything this crate stores on disk or sends to another member,
//! kept apart from the in-memory types, with an explicit layout version per kind.
//!
//! # Envelope
//!
//! Every encoded value is framed as `[layout version: u8][crc32 of payload: u32 LE][payload]`.
//! The version byte says which layout of *that kind* follows (see [`kind`]); the payload is
//! postcard of the wire types of that layout version (`v1::*`), which mirror the in-memory
//! types field for field but belong to this module. A reader rejects a checksum mismatch
//! and a version it does not know (naming the kind) instead of misreading bytes. postcard
//! is not self-describing, so the bytes of a layout are exactly its field and variant
//! order: that order is what the wire types freeze.
//!
//! `member.json` is JSON instead (see [`identity`]): self-describing, so a reader ignores
//! fields it does not know and a new field only needs a default.
//!
//! # Compatibility policy
//!
//! - **A layout version, once released, never changes.** `format/v1/` is frozen: no field
//!   or variant is added, removed or reordered there. The golden files in
//!   `tests/golden/v1/` (written by the build before this module existed) pin its bytes,
//!   and the golden test fails if any encoding changes.
//! - **A member of version N reads the layout it writes and the previous one of every
//!   kind.** A new layout is added as `v2` beside `v1`, with an upgrade from the `v1` wire
//!   types to the in-memory ones; [`Kind::read`] dispatches on the version byte.
//! - **A member keeps writing the old layout until every member reads the new one**: the
//!   kind's [`Kind::VERSION`] moves to 2 only in a release after the one that learned to
//!   read v2 (or behind a cluster version that every member reports). A rolling upgrade
//!   then goes one member at a time: every member of the mixed cluster reads what every
//!   other writes, and data on disk written by the previous build is read as it is.
//! - In-memory types change freely; only the conversions to and from the wire types (at
//!   the bottom of each `v1` file) follow them. A conversion that cannot represent a value
//!   of the previous layout is a typed [`FormatError`], never a panic.

pub mod identity;
pub mod kind;
pub mod v1;

pub use kind::{encode_wal_entry, Kind, RemoteFatal};

/// Bytes before the payload: version and checksum.
const HEADER_LEN: usize = 5;

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Fewer bytes than the envelope header.
    #[error("envelope truncated: {0} bytes")]
    Truncated(usize),
    /// The payload does not match its checksum.
    #[error("envelope checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// Written in a layout this build does not read (by a newer build, or not ours).
    #[error(
        "{kind} in layout version {version}: this build reads versions {reads:?} \
         (written by a newer build? upgrade this member)"
    )]
    UnknownVersion {
        /// The kind being decoded.
        kind: &'static str,
        /// The version byte found.
        version: u8,
        /// The versions this build reads.
        reads: &'static [u8],
    },
    /// postcard failed: bytes that do not fit the layout, or a value it cannot write.
    #[error("{kind} payload: {source}")]
    Payload {
        /// The kind being encoded or decoded.
        kind: &'static str,
        /// postcard's error.
        source: postcard::Error,
    },
    /// The bytes decode but do not describe a valid value (e.g. a membership whose voter
    /// has no node).
    #[error("{kind}: {why}")]
    Invalid {
        /// The kind being decoded.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
}

impl From<FormatError> for std::io::Error {
    fn from(e: FormatError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Encodes `value` as kind `K` in the layout `K::VERSION`, in a fresh envelope.
pub fn encode<K: Kind>(value: &K::Value) -> Result<Vec<u8>, FormatError> {
    let out = K::write(value, vec![0u8; HEADER_LEN])?;
    Ok(seal_header(K::VERSION, out))
}

/// Decodes an envelope of kind `K` in any layout version `K` reads.
pub fn decode<K: Kind>(bytes: &[u8]) -> Result<K::Value, FormatError> {
    let (version, payload) = open(bytes)?;
    K::read(version, payload)
}

/// Checks an envelope's length and checksum without decoding it (the WAL tells a torn
/// record from an intact one this way); the version is checked by [`decode`].
pub fn verify(bytes: &[u8]) -> Result<(), FormatError> {
    open(bytes).map(drop)
}

/// Splits a checked envelope into its version and payload.
fn open(bytes: &[u8]) -> Result<(u8, &[u8]), FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated(bytes.len()));
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let payload = &bytes[HEADER_LEN..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    Ok((bytes[0], payload))
}

/// Fills in the header of `out`, whose payload starts at [`HEADER_LEN`].
fn seal_header(version: u8, mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[0] = version;
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// An envelope around raw `payload` (for tests of code that only moves envelopes).
#[cfg(test)]
pub(crate) fn seal(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out.extend_from_slice(payload);
    seal_header(version, out)
}

/// The payload of a checked envelope (for tests of code that only moves envelopes).
#[cfg(test)]
pub(crate) fn payload(bytes: &[u8]) -> Result<&[u8], FormatError> {
    open(bytes).map(|(_, payload)| payload)
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::kind::LastApplied;
    use super::*;
    use crate::types::LogId;

    #[test]
    fn round_trips_and_detects_damage() {
        let log_id: LogId = openraft::LogId::new(
            openraft::impls::leader_id_adv::LeaderId { term: 3, node_id: 7 },
            42,
        );
        let mut bytes = encode::<LastApplied>(&log_id).unwrap();
        assert_eq!(decode::<LastApplied>(&bytes).unwrap(), log_id);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(
            decode::<LastApplied>(&bytes),
            Err(FormatError::Checksum { .. })
        ));
        bytes[last] ^= 0xff;
        bytes[0] = 9;
        let err = decode::<LastApplied>(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::UnknownVersion {
                    kind: "last_applied",
                    version: 9,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("this build reads versions [1]"), "{err}");
        assert!(verify(&bytes).is_ok(), "verify checks the frame, not the version");
        assert!(matches!(
            decode::<LastApplied>(&[1, 2]),
            Err(FormatError::Truncated(2))
        ));
    }
}
