//! The crate's one error type.

use conclave_contract::errors;

/// Everything that can go wrong in the MVCC store.
///
/// Guarantees: the etcd variants display etcd's exact error message (the texts of
/// `conclave_contract::errors`), so a caller maps each to its gRPC code (see the etcd
/// error table) and passes `to_string()` through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// Empty key in a request, compare or op (gRPC InvalidArgument).
    #[error("{}", errors::KEY_NOT_PROVIDED)]
    KeyNotProvided,
    /// Read or compaction at/below the compact revision (gRPC OutOfRange).
    #[error("{}", errors::COMPACTED)]
    Compacted,
    /// Read or compaction above the current revision (gRPC OutOfRange).
    #[error("{}", errors::FUTURE_REVISION)]
    FutureRevision,
    /// `ignore_value`/`ignore_lease` on a missing key (gRPC InvalidArgument).
    #[error("{}", errors::KEY_NOT_FOUND)]
    KeyNotFound,
    /// `ignore_value` together with a value (gRPC InvalidArgument).
    #[error("{}", errors::VALUE_PROVIDED)]
    ValueProvided,
    /// `ignore_lease` together with a lease (gRPC InvalidArgument).
    #[error("{}", errors::LEASE_PROVIDED)]
    LeaseProvided,
    /// A put, revoke or grant names a lease that does not exist (or the reserved id 0)
    /// (gRPC NotFound).
    #[error("{}", errors::LEASE_NOT_FOUND)]
    LeaseNotFound,
    /// A txn has more ops than the server allows (gRPC InvalidArgument).
    #[error("{}", errors::TOO_MANY_OPS)]
    TooManyOps,
    /// A txn branch writes a key twice (gRPC InvalidArgument).
    #[error("{}", errors::DUPLICATE_KEY)]
    DuplicateKey,
    /// The storage engine failed; the message says which operation on which tree.
    #[error("mvcc storage error: {0}")]
    Storage(String),
    /// A stored record failed its checksum or format check; the message names the record.
    #[error("mvcc corrupt record: {0}")]
    Corrupt(String),
    /// A lease grant names an id that is already granted (gRPC FailedPrecondition).
    #[error("{}", errors::LEASE_EXISTS)]
    LeaseExists,
    /// A lease grant asks for a TTL above 9,000,000,000 s (gRPC OutOfRange).
    #[error("{}", errors::LEASE_TTL_TOO_LARGE)]
    LeaseTtlTooLarge,
}

/// Result alias used by every fallible function of the crate.
pub type Result<T> = std::result::Result<T, MvccError>;
