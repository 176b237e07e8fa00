// Shared by the examples (`mod common;`): the endpoints to use.

/// `CONCLAVE_ENDPOINTS` (comma-separated), or the local cluster `make cluster` starts.
pub fn endpoints() -> Vec<String> {
    std::env::var("CONCLAVE_ENDPOINTS")
        .unwrap_or_else(|_| "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379".into())
        .split(',')
        .map(str::to_string)
        .collect()
}
