//! FROZEN: version 1 of `member.json`, the identity of a data dir. JSON, written pretty
//! with the fields in this order; a reader ignores fields it does not know. Do not rename
//! or remove fields here; a new field goes into a `v2` with a default for files that lack
//! it. Only the conversions at the bottom follow the in-memory type.

use serde::{Deserialize, Serialize};

use crate::identity;

/// `identity::Identity`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberIdentity {
    /// The member's `--name`.
    pub name: String,
    /// The member id.
    pub member_id: u64,
    /// The cluster id.
    pub cluster_id: u64,
    /// The cluster's `--initial-cluster-token`.
    pub cluster_token: String,
}

// ---- conversions: these follow the in-memory types -------------------------------------

impl From<&identity::Identity> for MemberIdentity {
    fn from(identity: &identity::Identity) -> Self {
        MemberIdentity {
            name: identity.name.clone(),
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            cluster_token: identity.cluster_token.clone(),
        }
    }
}

impl From<MemberIdentity> for identity::Identity {
    fn from(identity: MemberIdentity) -> Self {
        identity::Identity {
            name: identity.name,
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            cluster_token: identity.cluster_token,
        }
    }
}
