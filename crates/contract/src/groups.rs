//! Where partition groups live in the keyspace (docs/partitions.md, "Storage") — shared
//! by the storage nodes, which write there, and the SDK, whose fencing compares name the
//! leader and member keys.
//!
//! Everything is under the reserved prefix `/_conclave/`, which clients may read (and
//! watch) with any etcd client but not write: only the Groups API and the controller do.
//! The record types named below live in the server (`conclave_server::groups::records`).
//!
//! | key | value | notes |
//! | --- | --- | --- |
//! | `/_conclave/controller` | [`ControllerClaim`] | its mod revision is the active controller's epoch |
//! | `…/groups/{g}/config` | [`GroupConfig`] | |
//! | `…/groups/{g}/map` | [`MapHeader`] | the generation; its mod revision is the generation's revision |
//! | `…/groups/{g}/members/{m}` | [`MemberRecord`] | attached to the member's session lease |
//! | `…/groups/{g}/partitions/{p:05}` | [`PartitionRecord`] | written when its replicas change |
//! | `…/groups/{g}/leaders/{p:05}` | the leader's id | exists while the partition has a leader; its mod revision is the epoch |
//! | `…/groups/{g}/acks/{p:05}/{m}/{ready\|released}/{epoch}` | empty | a member's report, attached to its lease |
//! | `…/groups/{g}/history/{generation:020}` | [`HistoryRecord`] | the last [`HISTORY`] generations |

use conclave_controller::{AckKind, Epoch, Generation, MemberId, PartitionId};

/// The prefix no client may write under.
pub const RESERVED: &[u8] = b"/_conclave/";
/// The active controller's claim.
pub const CONTROLLER: &[u8] = b"/_conclave/controller";
/// Every group lives under this.
pub const GROUPS: &[u8] = b"/_conclave/groups/";
/// Generations kept in a group's history.
pub const HISTORY: u64 = 1000;

/// The gRPC trailer that carries a partition's current epoch with a stale-epoch refusal.
pub const EPOCH_TRAILER: &str = "conclave-epoch";

/// The current epoch a stale-epoch refusal carries, if `status` is one.
pub fn stale_epoch(status: &tonic::Status) -> Option<i64> {
    if status.code() != tonic::Code::FailedPrecondition {
        return None;
    }
    status.metadata().get(EPOCH_TRAILER)?.to_str().ok()?.parse().ok()
}

/// Longest group name.
pub const MAX_GROUP_NAME: usize = 64;
/// Longest member id.
pub const MAX_MEMBER_ID: usize = 128;

/// Checks a group name: 1–64 of `A-Z a-z 0-9 . _ -`.
pub fn check_group_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "group name {name:?} is not valid: use 1 to {MAX_GROUP_NAME} letters, digits, '.', '_' or '-'"
        ))
    }
}

/// Checks a member id: 1–128 of `A-Z a-z 0-9 . _ - : @`.
pub fn check_member_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_MEMBER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "member id {id:?} is not valid: use 1 to {MAX_MEMBER_ID} letters, digits, '.', '_', '-', ':' or '@'"
        ))
    }
}

/// The keys of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKeys {
    root: String,
}

impl GroupKeys {
    /// The keys of group `name` (already checked).
    pub fn new(name: &str) -> GroupKeys {
        GroupKeys {
            root: format!("/_conclave/groups/{name}/"),
        }
    }

    /// Everything of the group.
    pub fn prefix(&self) -> Vec<u8> {
        self.root.as_bytes().to_vec()
    }

    fn key(&self, rest: &str) -> Vec<u8> {
        format!("{}{rest}", self.root).into_bytes()
    }

    /// The settings.
    pub fn config(&self) -> Vec<u8> {
        self.key("config")
    }

    /// The map header (generation).
    pub fn map(&self) -> Vec<u8> {
        self.key("map")
    }

    /// Every member's registration.
    pub fn members(&self) -> Vec<u8> {
        self.key("members/")
    }

    /// One member's registration.
    pub fn member(&self, id: &MemberId) -> Vec<u8> {
        self.key(&format!("members/{id}"))
    }

    /// Every partition record.
    pub fn partitions(&self) -> Vec<u8> {
        self.key("partitions/")
    }

    /// One partition's record.
    pub fn partition(&self, id: PartitionId) -> Vec<u8> {
        self.key(&format!("partitions/{:05}", id.0))
    }

    /// Every leader key.
    pub fn leaders(&self) -> Vec<u8> {
        self.key("leaders/")
    }

    /// One partition's leader key.
    pub fn leader(&self, id: PartitionId) -> Vec<u8> {
        self.key(&format!("leaders/{:05}", id.0))
    }

    /// Every ack.
    pub fn acks(&self) -> Vec<u8> {
        self.key("acks/")
    }

    /// One ack.
    pub fn ack(&self, partition: PartitionId, member: &MemberId, kind: AckKind, epoch: Epoch) -> Vec<u8> {
        let kind = match kind {
            AckKind::Ready => "ready",
            AckKind::Released => "released",
        };
        self.key(&format!("acks/{:05}/{member}/{kind}/{}", partition.0, epoch.0))
    }

    /// Every history entry.
    pub fn history(&self) -> Vec<u8> {
        self.key("history/")
    }

    /// One generation's history entry.
    pub fn history_entry(&self, generation: Generation) -> Vec<u8> {
        self.key(&format!("history/{:020}", generation.0))
    }

    /// The last segment of `key` under `section` (`members/`, `partitions/`, …), if `key`
    /// is one of the group's keys there.
    pub fn tail<'k>(&self, section: &[u8], key: &'k [u8]) -> Option<&'k str> {
        let rest = key.strip_prefix(self.root.as_bytes())?.strip_prefix(section)?;
        std::str::from_utf8(rest).ok()
    }

    /// Parses a partition id from the tail of a partition or leader key.
    pub fn partition_of(&self, section: &[u8], key: &[u8]) -> Option<PartitionId> {
        self.tail(section, key)?.parse().ok().map(PartitionId)
    }

    /// Parses an ack key.
    pub fn parse_ack(&self, key: &[u8]) -> Option<(PartitionId, MemberId, AckKind, Epoch)> {
        let tail = self.tail(b"acks/", key)?;
        let mut parts = tail.split('/');
        let partition = PartitionId(parts.next()?.parse().ok()?);
        let member = MemberId(parts.next()?.to_string());
        let kind = match parts.next()? {
            "ready" => AckKind::Ready,
            "released" => AckKind::Released,
            _ => return None,
        };
        let epoch = Epoch(parts.next()?.parse().ok()?);
        parts.next().is_none().then_some((partition, member, kind, epoch))
    }
}

/// The group a key of the reserved space belongs to, if any.
pub fn group_of(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(GROUPS)?;
    let end = rest.iter().position(|b| *b == b'/')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Whether a client write touching `[key, range_end)` (etcd's range convention) reaches
/// into the reserved prefix. A point write or a range starting inside it always does; a
/// range that only covers it (`del --from-key ""`) does too — the caller decides whether
/// that is refused.
pub fn touches_reserved(key: &[u8], range_end: &[u8]) -> bool {
    if key.starts_with(RESERVED) {
        return true;
    }
    if range_end.is_empty() {
        return false;
    }
    let reserved_end = crate::keys::prefix_end(RESERVED);
    // [key, range_end) intersects [RESERVED, reserved_end).
    let ends_after_start = range_end == [0] || range_end > RESERVED;
    key < reserved_end.as_slice() && ends_after_start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = GroupKeys::new("kv");
        assert_eq!(
            keys.partition(PartitionId(7)),
            b"/_conclave/groups/kv/partitions/00007".to_vec()
        );
        assert_eq!(
            keys.partition_of(b"partitions/", &keys.partition(PartitionId(7))),
            Some(PartitionId(7))
        );
        assert_eq!(
            keys.partition_of(b"leaders/", &keys.leader(PartitionId(4095))),
            Some(PartitionId(4095))
        );
        let ack = keys.ack(
            PartitionId(3),
            &MemberId::from("m-1"),
            AckKind::Released,
            Epoch(42),
        );
        assert_eq!(ack, b"/_conclave/groups/kv/acks/00003/m-1/released/42".to_vec());
        assert_eq!(
            keys.parse_ack(&ack),
            Some((
                PartitionId(3),
                MemberId::from("m-1"),
                AckKind::Released,
                Epoch(42)
            ))
        );
        assert_eq!(
            keys.parse_ack(b"/_conclave/groups/kv/acks/00003/m-1/sideways/42"),
            None
        );
        assert_eq!(group_of(&keys.map()), Some("kv"));
        assert_eq!(group_of(CONTROLLER), None);
        assert_eq!(
            keys.tail(b"members/", &keys.member(&MemberId::from("a:1"))),
            Some("a:1")
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_group_name("orders-v2.eu_1").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("a/b").is_err());
        assert!(check_group_name(&"x".repeat(65)).is_err());
        assert!(check_member_id("10.0.0.1:8080").is_ok());
        assert!(check_member_id("pod@node-3").is_ok());
        assert!(check_member_id("a/b").is_err());
        assert!(check_member_id("").is_err());
    }

    #[test]
    fn reserved_ranges_are_recognised() {
        assert!(touches_reserved(b"/_conclave/groups/x/config", b""));
        assert!(!touches_reserved(b"/app/x", b""));
        assert!(touches_reserved(b"", &[0]), "from-key \"\" covers everything");
        assert!(touches_reserved(b"/", b"0"), "prefix / covers /_conclave/");
        assert!(!touches_reserved(b"/a", b"/b"), "ends before it");
        assert!(!touches_reserved(b"/_conclavf", &[0]), "starts after it");
        assert!(
            !touches_reserved(b"/_conclave", b"/_conclave/"),
            "ends right at it"
        );
    }
}
