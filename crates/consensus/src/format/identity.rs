//! `member.json`: the identity of a data dir, as JSON.
//!
//! Unlike the other kinds it has no envelope: JSON names its fields, a reader ignores
//! fields it does not know, and a field added later needs only a default, so one layout
//! (`v1::identity`) serves until a field changes meaning.

use super::v1::identity::MemberIdentity;
use crate::identity::Identity;

/// The bytes of `member.json` for `identity` (pretty JSON, fields in `v1` order).
pub fn to_json(identity: &Identity) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(&MemberIdentity::from(identity))
}

/// Reads `member.json`.
pub fn from_json(bytes: &[u8]) -> Result<Identity, serde_json::Error> {
    serde_json::from_slice::<MemberIdentity>(bytes).map(Identity::from)
}
