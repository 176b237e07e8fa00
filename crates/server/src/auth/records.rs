//! Where the auth state lives and how it is written: ordinary keys under the reserved
//! prefix `/_conclave/auth/`, replicated through Raft like any write, in snapshots like any
//! key, and read by every member from its own store.
//!
//! | key | value (JSON) |
//! | --- | --- |
//! | `/_conclave/auth/state` | [`StateRecord`]: enabled, the auth revision, the token signing key |
//! | `/_conclave/auth/users/{name}` | [`UserRecord`]: bcrypt hash, roles |
//! | `/_conclave/auth/roles/{name}` | [`RoleRecord`]: permissions |
//!
//! Every change is one txn that compares the state record's mod revision with the one the
//! change was decided on and rewrites the state with the auth revision plus one, so changes
//! are serialised and a member never applies half of one. Clients cannot write under
//! `/_conclave/` (the KV guard), and non-root users cannot read here (see [`super::perms`]).
//! JSON keeps the records self-describing: a field added later gets a default.

use std::collections::BTreeMap;

use conclave_contract::keys::prefix_end;
use conclave_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, Store,
    TxnRequest, WriteRequest,
};
use serde::{Deserialize, Serialize};

/// Everything of the auth state.
pub const AUTH: &[u8] = b"/_conclave/auth/";
/// The state record.
pub const STATE: &[u8] = b"/_conclave/auth/state";
/// User records.
pub const USERS: &[u8] = b"/_conclave/auth/users/";
/// Role records.
pub const ROLES: &[u8] = b"/_conclave/auth/roles/";

/// The user and role that may do everything.
pub const ROOT: &str = "root";

/// Access a permission grants (etcd `authpb.Permission.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perm {
    /// READ = 0
    Read,
    /// WRITE = 1
    Write,
    /// READWRITE = 2
    ReadWrite,
}

/// `/_conclave/auth/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Whether auth is enforced.
    #[serde(default)]
    pub enabled: bool,
    /// etcd's auth revision: one more per change.
    #[serde(default)]
    pub revision: u64,
    /// HMAC-SHA256 key of the tokens, hex; chosen by the member that first enabled auth.
    #[serde(default)]
    pub signing_key: String,
}

/// `/_conclave/auth/users/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// bcrypt hash; `None` for a user created with `no_password` (certificate only).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Granted roles, sorted.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Auth revision of the user's creation or last password change: tokens issued
    /// before it are refused.
    #[serde(default)]
    pub password_revision: u64,
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRecord {
    /// What it grants.
    pub perm: Perm,
    /// etcd's key.
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    /// etcd's range_end (empty: the key alone; `"\0"`: every key from `key`).
    #[serde(with = "hex_bytes")]
    pub range_end: Vec<u8>,
}

/// `/_conclave/auth/roles/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// Permissions, sorted by key then range_end (etcd's order).
    #[serde(default)]
    pub permissions: Vec<PermissionRecord>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::unhex(&text).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of lowercase or uppercase hex; `None` if malformed.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A record under the auth prefix that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("auth record {key} is invalid: {why}")]
pub struct RecordError {
    key: String,
    why: String,
}

/// The auth state as one member's store holds it at one revision.
#[derive(Debug, Clone, Default)]
pub struct AuthState {
    /// Mod revision of the state record (0: auth was never configured).
    pub mod_revision: i64,
    /// The state record.
    pub state: StateRecord,
    /// Users by name.
    pub users: BTreeMap<String, UserRecord>,
    /// Roles by name.
    pub roles: BTreeMap<String, RoleRecord>,
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(value).map_err(|e| RecordError {
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
}

impl AuthState {
    /// Reads the whole auth state from `store` in one range (one consistent revision).
    pub fn load(store: &Store) -> Result<AuthState, LoadError> {
        let response = store.range(&RangeRequest {
            key: AUTH.to_vec(),
            range_end: prefix_end(AUTH),
            ..Default::default()
        })?;
        let mut loaded = AuthState::default();
        for kv in response.kvs {
            if kv.key == STATE {
                loaded.mod_revision = kv.mod_revision;
                loaded.state = decode(&kv.key, &kv.value)?;
            } else if let Some(name) = kv.key.strip_prefix(USERS) {
                let name = String::from_utf8_lossy(name).into_owned();
                loaded.users.insert(name, decode(&kv.key, &kv.value)?);
            } else if let Some(name) = kv.key.strip_prefix(ROLES) {
                let name = String::from_utf8_lossy(name).into_owned();
                loaded.roles.insert(name, decode(&kv.key, &kv.value)?);
            }
        }
        Ok(loaded)
    }

    /// The mod revision of the state record in `store` (0 when absent): changes with
    /// every auth change, and only then.
    pub fn current_mod_revision(store: &Store) -> Result<i64, conclave_mvcc::MvccError> {
        let response = store.range(&RangeRequest {
            key: STATE.to_vec(),
            keys_only: true,
            ..Default::default()
        })?;
        Ok(response.kvs.first().map_or(0, |kv| kv.mod_revision))
    }

    /// Whether `user` holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == ROOT))
    }

    /// The txn that applies `changes` if the state is still the one read here, bumping
    /// the auth revision (and setting `next_state` fields the caller changed).
    pub fn change(
        &self,
        next_state: &StateRecord,
        changes: Vec<Change>,
    ) -> Result<WriteRequest, serde_json::Error> {
        let mut success = Vec::with_capacity(changes.len() + 1);
        for change in changes {
            success.push(match change {
                Change::PutUser(name, user) => put(user_key(&name), serde_json::to_vec(&user)?),
                Change::DeleteUser(name) => delete(user_key(&name)),
                Change::PutRole(name, role) => put(role_key(&name), serde_json::to_vec(&role)?),
                Change::DeleteRole(name) => delete(role_key(&name)),
            });
        }
        let state = StateRecord {
            revision: self.state.revision + 1,
            ..next_state.clone()
        };
        success.push(put(STATE.to_vec(), serde_json::to_vec(&state)?));
        Ok(WriteRequest::Txn(TxnRequest {
            compare: vec![Compare {
                key: STATE.to_vec(),
                range_end: Vec::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Mod(self.mod_revision),
            }],
            success,
            failure: Vec::new(),
        }))
    }
}

/// One record written by an auth change.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace a user.
    PutUser(String, UserRecord),
    /// Remove a user.
    DeleteUser(String),
    /// Create or replace a role.
    PutRole(String, RoleRecord),
    /// Remove a role.
    DeleteRole(String),
}

fn user_key(name: &str) -> Vec<u8> {
    [USERS, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [ROLES, name.as_bytes()].concat()
}

fn put(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp::Put(PutRequest {
        key,
        value,
        ..Default::default()
    })
}

fn delete(key: Vec<u8>) -> RequestOp {
    RequestOp::DeleteRange(DeleteRangeRequest {
        key,
        ..Default::default()
    })
}

/// Why the auth state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] conclave_mvcc::MvccError),
    /// A record is corrupt.
    #[error(transparent)]
    Record(#[from] RecordError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(hex(b"\x00/a\xff"), "002f61ff");
        assert_eq!(unhex("002f61ff").as_deref(), Some(&b"\x00/a\xff"[..]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn records_decode_with_fields_missing() {
        let user: UserRecord = serde_json::from_slice(br#"{"roles":["a"]}"#).expect("decodes");
        assert_eq!(user.password_hash, None);
        assert_eq!(user.roles, vec!["a".to_string()]);
        let perm = PermissionRecord {
            perm: Perm::ReadWrite,
            key: b"/app/".to_vec(),
            range_end: b"/app0".to_vec(),
        };
        let text = serde_json::to_string(&perm).expect("encodes");
        assert_eq!(
            text,
            r#"{"perm":"readwrite","key":"2f6170702f","range_end":"2f61707030"}"#
        );
    }
}
