//! TLS of the node's listeners.

/// The Common Name of the verified client certificate `request` came with: none until the
/// client port serves TLS.
pub fn client_common_name<T>(_request: &tonic::Request<T>) -> Option<String> {
    None
}
