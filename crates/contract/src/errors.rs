//! etcd's error texts, exactly as etcd sends them.
//!
//! etcd clients recognise errors by these texts (Go `clientv3` maps a status back to its
//! `rpctypes` error by message), so the server must send them byte for byte and the SDK
//! recognises them by equality with these constants — never by an ad-hoc substring. Names
//! follow etcd's `rpctypes` (`ErrGRPCNoLeader` → [`NO_LEADER`]); the gRPC code each is sent
//! with is noted beside it. Texts that are Conclave's own (no etcd equivalent) say so.

// --- KV and MVCC (etcd `rpctypes`, `mvcc`) ---

/// Empty key in a request, compare or op (InvalidArgument).
pub const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
/// `ignore_value`/`ignore_lease` on a missing key (InvalidArgument).
pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
/// `ignore_value` together with a value (InvalidArgument).
pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
/// `ignore_lease` together with a lease (InvalidArgument).
pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
/// A txn with more ops than `--max-txn-ops` (InvalidArgument).
pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
/// A txn branch writing a key twice (InvalidArgument).
pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
/// A read or compaction at or below the compact revision (OutOfRange).
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// A read or compaction above the current revision (OutOfRange).
pub const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";
/// A request over `--max-request-bytes` (InvalidArgument).
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
/// A write refused while the NOSPACE alarm is raised (ResourceExhausted).
pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// A member found its data corrupt (DataLoss).
pub const CORRUPT: &str = "etcdserver: corrupt cluster";

// --- Leases ---

/// A put, revoke or keep-alive naming a lease that does not exist (NotFound).
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// A grant naming an id that is already granted (FailedPrecondition).
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
/// A grant asking for a TTL above 9,000,000,000 s (OutOfRange).
pub const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";

// --- Availability (all Unavailable) ---

/// No leader is known: the request was refused before anything was proposed.
pub const NO_LEADER: &str = "etcdserver: no leader";
/// A request that needs the leader reached another member (FailedPrecondition).
pub const NOT_LEADER: &str = "etcdserver: not leader";
/// A request that did not finish in time.
pub const TIMEOUT: &str = "etcdserver: request timed out";
/// A write whose outcome is unknown because the leader changed or failed.
pub const TIMEOUT_DUE_TO_LEADER_FAIL: &str =
    "etcdserver: request timed out, possibly due to previous leader failure";
/// A request that could not reach the leader.
pub const TIMEOUT_DUE_TO_CONNECTION_LOST: &str =
    "etcdserver: request timed out, possibly due to connection lost";
/// The member is shutting down or its Raft core stopped.
pub const STOPPED: &str = "etcdserver: server stopped";

// --- Cluster membership ---

/// No member has this id (NotFound).
pub const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
/// Another member already uses these peer URLs (FailedPrecondition).
pub const PEER_URL_EXISTS: &str = "etcdserver: Peer URLs already exists";
/// Only learners can be promoted (FailedPrecondition).
pub const MEMBER_NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
/// The learner is too far behind to be promoted (FailedPrecondition).
pub const LEARNER_NOT_READY: &str =
    "etcdserver: can only promote a learner member which is in sync with leader";
/// The change would leave fewer started voters than a quorum (FailedPrecondition).
pub const UNHEALTHY: &str = "etcdserver: re-configuration failed due to not enough started members";
/// MemberAdd/Update with URLs that do not parse (InvalidArgument).
pub const INVALID_PEER_URLS: &str = "etcdserver: given member URLs are invalid";
/// MoveLeader to a member that cannot lead (FailedPrecondition).
pub const BAD_LEADER_TRANSFEREE: &str = "etcdserver: bad leader transferee";

// --- Maintenance ---

/// An alarm request without an alarm type (InvalidArgument).
pub const ALARM_TYPE_MISSING: &str = "etcdserver: alarm type must be given";

// --- Elections and locks (sent as Unknown with the Go error's text, as etcd does) ---

/// Leader of an election that has none (`concurrency.ErrElectionNoLeader`).
pub const ELECTION_NO_LEADER: &str = "election: no leader";
/// A leader key that no longer leads (`concurrency.ErrElectionNotLeader`).
pub const ELECTION_NOT_LEADER: &str = "election: not leader";
/// Proclaim/Resign without a leader key (`v3election.ErrMissingLeaderKey`).
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// A lock whose lease died while waiting (etcd 3.5's `concurrency.ErrSessionExpired`).
pub const MUTEX_SESSION_EXPIRED: &str = "mutex: session is expired";
/// Conclave's own: a Campaign whose lease died while waiting (etcd keeps waiting there;
/// Conclave fails, as its Lock does).
pub const ELECTION_SESSION_EXPIRED: &str = "election: session is expired";

// --- Authentication and access control (etcd `rpctypes`) ---

/// AuthEnable without a `root` user (FailedPrecondition).
pub const ROOT_USER_NOT_EXIST: &str = "etcdserver: root user does not exist";
/// AuthEnable while `root` lacks the `root` role (FailedPrecondition).
pub const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";
/// UserAdd of an existing name (FailedPrecondition).
pub const USER_ALREADY_EXIST: &str = "etcdserver: user name already exists";
/// An empty user name, or a request without a token while auth is on (InvalidArgument).
pub const USER_EMPTY: &str = "etcdserver: user name is empty";
/// A user that does not exist (FailedPrecondition).
pub const USER_NOT_FOUND: &str = "etcdserver: user name not found";
/// RoleAdd of an existing name (FailedPrecondition).
pub const ROLE_ALREADY_EXIST: &str = "etcdserver: role name already exists";
/// A role that does not exist (FailedPrecondition).
pub const ROLE_NOT_FOUND: &str = "etcdserver: role name not found";
/// An empty role name (InvalidArgument).
pub const ROLE_EMPTY: &str = "etcdserver: role name is empty";
/// Authenticate with an unknown user or a wrong password (InvalidArgument).
pub const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
/// RoleGrantPermission without a permission (InvalidArgument).
pub const PERMISSION_NOT_GIVEN: &str = "etcdserver: permission not given";
/// The caller may not do this (PermissionDenied).
pub const PERMISSION_DENIED: &str = "etcdserver: permission denied";
/// UserRevokeRole of a role the user does not have (FailedPrecondition).
pub const ROLE_NOT_GRANTED: &str = "etcdserver: role is not granted to the user";
/// RoleRevokePermission of a permission the role does not have (FailedPrecondition).
pub const PERMISSION_NOT_GRANTED: &str = "etcdserver: permission is not granted to the role";
/// Authenticate while auth is off (FailedPrecondition).
pub const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
/// A token that is malformed, forged, expired or for a changed user (Unauthenticated).
pub const INVALID_AUTH_TOKEN: &str = "etcdserver: invalid auth token";
/// An auth change that makes no sense, e.g. revoking `root` from `root` while auth is on,
/// or a permission whose range is empty (InvalidArgument).
pub const INVALID_AUTH_MGMT: &str = "etcdserver: invalid auth management";
/// A token older than the auth state it is checked against (InvalidArgument).
pub const AUTH_OLD_REVISION: &str = "etcdserver: revision of auth store is old";
/// Conclave's own: too many failed Authenticate calls for this user or from this address
/// (ResourceExhausted); retry after a few seconds.
pub const AUTH_RATE_LIMITED: &str = "etcdserver: too many failed authentication attempts, retry later";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_etcds() {
        // The few that clients most often match on, spelled out once more so a careless
        // edit of a constant shows up here.
        assert_eq!(NO_LEADER, "etcdserver: no leader");
        assert_eq!(
            COMPACTED,
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(LEASE_NOT_FOUND, "etcdserver: requested lease not found");
        assert_eq!(MUTEX_SESSION_EXPIRED, "mutex: session is expired");
    }
}
