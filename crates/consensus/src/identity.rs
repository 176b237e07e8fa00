//! A member's identity on disk: which member and which cluster a data dir belongs to.
//!
//! Written once, when the data dir is first used, as `member.json` (fsynced, renamed into
//! place; its JSON is `crate::format::identity`'s). A node refuses a data dir whose
//! identity does not match its flags, so a typo in `--name` or `--data-dir` cannot make
//! one member impersonate another.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ConsensusError, Result};

const FILE: &str = "member.json";

/// Who this data dir belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The member's `--name`.
    pub name: String,
    /// The member's id (etcd-style 64-bit id, also its Raft node id).
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// The cluster's `--initial-cluster-token`.
    pub cluster_token: String,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

impl Identity {
    /// Reads the identity of `data_dir`, if it has one.
    pub fn load(data_dir: &Path) -> Result<Option<Identity>> {
        let path = path(data_dir);
        match fs::read(&path) {
            Ok(bytes) => crate::format::identity::from_json(&bytes).map(Some).map_err(|e| {
                ConsensusError::Config(format!(
                    "{} is not a valid member identity ({e}); the data dir is damaged or not a Conclave data dir",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the identity durably.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join(format!("{FILE}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        let bytes =
            crate::format::identity::to_json(self).map_err(|e| ConsensusError::Storage(e.to_string()))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path(data_dir))?;
        fs::File::open(data_dir)?.sync_all()?;
        Ok(())
    }

    /// Refuses to run as `name` in `token`'s cluster (`None`: whichever cluster the member
    /// joined) on a data dir that belongs to another member or cluster, saying what to do
    /// instead.
    pub fn check(&self, data_dir: &Path, name: &str, token: Option<&str>) -> Result<()> {
        if self.name != name {
            return Err(ConsensusError::Config(format!(
                "data dir {} belongs to member {}, not {name}: start with --name {} or a fresh --data-dir",
                data_dir.display(),
                self.name,
                self.name
            )));
        }
        let Some(token) = token else {
            return Ok(());
        };
        if self.cluster_token != token {
            return Err(ConsensusError::Config(format!(
                "data dir {} belongs to cluster {:?} (cluster id {:x}), not {token:?}: start with \
                 --initial-cluster-token {} or a fresh --data-dir",
                data_dir.display(),
                self.cluster_token,
                self.cluster_id,
                self.cluster_token
            )));
        }
        Ok(())
    }
}

/// A stable, non-zero 64-bit id from the given parts (FNV-1a; parts are length-prefixed so
/// `("ab","c")` and `("a","bc")` differ).
pub fn stable_id(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_refuses_other_member_or_cluster() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Identity::load(dir.path()).unwrap(), None);
        let id = Identity {
            name: "n1".into(),
            member_id: 7,
            cluster_id: 9,
            cluster_token: "t".into(),
        };
        id.save(dir.path()).unwrap();
        let loaded = Identity::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, id);
        loaded.check(dir.path(), "n1", Some("t")).unwrap();
        loaded.check(dir.path(), "n1", None).unwrap();
        let err = loaded.check(dir.path(), "n2", Some("t")).unwrap_err().to_string();
        assert!(
            err.contains("belongs to member n1, not n2") && err.contains("--name n1"),
            "{err}"
        );
        let err = loaded
            .check(dir.path(), "n1", Some("other"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--initial-cluster-token t"), "{err}");
    }

    #[test]
    fn stable_ids_differ_by_part_boundaries() {
        assert_ne!(stable_id(&[b"ab", b"c"]), stable_id(&[b"a", b"bc"]));
        assert_eq!(stable_id(&[b"x"]), stable_id(&[b"x"]));
    }
}
