//! The crate's one error type.

/// Everything that can go wrong in the MVCC store.
///
/// Guarantees: the etcd variants display etcd's exact error message, so a caller maps
/// each to its gRPC code (see the etcd error table) and passes `to_string()` through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// Empty key in a request, compare or op (gRPC InvalidArgument).
    #[error("etcdserver: key is not provided")]
    KeyNotProvided,
    /// Read or compaction at/below the compact revision (gRPC OutOfRange).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// Read or compaction above the current revision (gRPC OutOfRange).
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// `ignore_value`/`ignore_lease` on a missing key (gRPC InvalidArgument).
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value (gRPC InvalidArgument).
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease (gRPC InvalidArgument).
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A put, revoke or grant names a lease that does not exist (or the reserved id 0)
    /// (gRPC NotFound).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A txn has more ops than the server allows (gRPC InvalidArgument).
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn branch writes a key twice (gRPC InvalidArgument).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The storage engine failed; the message says which operation on which tree.
    #[error("mvcc storage error: {0}")]
    Storage(String),
    /// A stored record failed its checksum or format check; the message names the record.
    #[error("mvcc corrupt record: {0}")]
    Corrupt(String),
    /// A lease grant names an id that is already granted (gRPC FailedPrecondition).
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A lease grant asks for a TTL above 9,000,000,000 s (gRPC OutOfRange).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
}

/// Result alias used by every fallible function of the crate.
pub type Result<T> = std::result::Result<T, MvccError>;
