//! Restoring a new cluster from a snapshot (what `etcdctl snapshot restore` does for etcd).
//!
//! A member started on a fresh data dir with `--restore-snapshot FILE` loads the file
//! (Conclave's snapshot format, as Maintenance.Snapshot streams it: possibly followed by
//! etcd's zero padding and SHA-256, which is checked) into its state machine and makes it
//! the Raft snapshot at index 1 of a new log whose membership is `--initial-cluster`.
//! Every initial member restored from the same file starts from identical state, and
//! members that join later receive it as a Raft snapshot, so no member ever applies a
//! log against different data. KV revisions continue from the snapshot's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use conclave_mvcc::{MvccError, Store};
use openraft::storage::RaftLogStorage;
use openraft::vote::RaftLeaderIdExt;
use openraft::{LogId, Membership, RaftTypeConfig};
use sha2::{Digest, Sha256};

use crate::bootstrap::static_member_id;
use crate::error::{ConsensusError, Result};
use crate::format::{self, kind};
use crate::log_store::LogStore;
use crate::node::NodeConfig;
use crate::snapshot::{self, SnapshotDir};
use crate::state_machine::{ALARMS, LAST_APPLIED, MEMBERSHIP};
use crate::types::{MemberNode, SnapshotMeta, StoredMembership, TypeConfig};

/// If the file carries etcd's trailer (size % 512 == 32: zero padding then the SHA-256 of
/// everything before it), checks it.
fn check_trailer(path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    if bytes.len() % 512 != 32 {
        return Ok(());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(ConsensusError::Config(format!(
            "snapshot {} fails its SHA-256 check: the file is damaged or truncated",
            path.display()
        )));
    }
    Ok(())
}

/// Loads `file` into `store` and writes the Raft snapshot and log start that make it the
/// new cluster's starting point.
pub(crate) async fn restore(
    file: &Path,
    config: &NodeConfig,
    store: &Store,
    snapshots: &SnapshotDir,
    log: &mut LogStore,
) -> Result<()> {
    check_trailer(file)?;
    let (_, records) = snapshot::open_records(file)
        .map_err(|e| ConsensusError::Config(format!("--restore-snapshot {}: {e}", file.display())))?;
    store
        .import_from(records.map(|r| r.map_err(|e| MvccError::Storage(e.to_string()))))
        .map_err(ConsensusError::Rejected)?;

    // The new cluster's membership, identical on every member restored with the same flags.
    let members: BTreeMap<u64, MemberNode> = config
        .initial_cluster
        .iter()
        .map(|(name, url)| {
            let node = MemberNode {
                name: name.clone(),
                peer_urls: vec![url.clone()],
                client_urls: Vec::new(),
            };
            (static_member_id(&config.cluster_token, name, url), node)
        })
        .collect();
    let voters: BTreeSet<u64> = members.keys().copied().collect();
    let first = voters.iter().next().copied().unwrap_or(0);
    // Index 1 of term 1, "led" by the smallest member id: the same on every member.
    let log_id: crate::types::LogId = LogId::new(
        <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, first),
        1,
    );
    let membership = Membership::new(vec![voters], members)
        .map_err(|e| ConsensusError::Config(format!("restore membership: {e}")))?;
    let stored = StoredMembership::new(Some(log_id), membership);

    let mut txn = store.write_txn();
    txn.set_app_meta(LAST_APPLIED, format::encode::<kind::LastApplied>(&log_id)?);
    txn.set_app_meta(MEMBERSHIP, format::encode::<kind::StoredMembership>(&stored)?);
    txn.remove_app_meta(ALARMS);
    txn.commit().map_err(ConsensusError::Rejected)?;
    store.flush().map_err(ConsensusError::Rejected)?;

    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: stored,
    };
    snapshots.write(&meta, |sink| {
        store
            .export_to(|k, v| sink(k, v).map_err(|e| MvccError::Storage(e.to_string())))
            .map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    log.purge(log_id).await?;
    log.sync().await?;
    tracing::info!(
        snapshot = %file.display(),
        revision = store.current_revision(),
        members = config.initial_cluster.len(),
        "restored the state machine from a snapshot"
    );
    Ok(())
}
