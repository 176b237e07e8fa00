//! Conclave's TLS, written once for the node, the gateway and the SDK.
//!
//! - [`pem`]: certificate, key and CA files read into rustls types, with errors that name
//!   the file and the setting (flag) it came from;
//! - [`reload`]: a value rebuilt from files whenever their content changes, keeping the
//!   last good one while a rotation is half written;
//! - [`server`]: the server configuration (certificate, optional client-certificate
//!   verification against a CA) and the accept loop that hands tonic finished handshakes;
//! - [`client`]: the client configuration (CA or system roots, optional client
//!   certificate, server-name override, optional no-verification) and the connector tonic
//!   channels dial through;
//! - [`auto`]: self-signed certificates for `--auto-tls`/`--peer-auto-tls`;
//! - [`name`]: the Common Name of a DER certificate (etcd's user name with
//!   `--client-cert-auth`).
//!
//! Protocol versions are TLS 1.3 and TLS 1.2 (nothing older); cipher suites are rustls'
//! defaults for the ring provider (see [`CIPHER_SUITES`]).

pub mod auto;
pub mod client;
mod error;
pub mod name;
pub mod pem;
pub mod reload;
pub mod server;

use std::sync::Arc;

pub use client::{ClientTls, Connector};
pub use error::TlsError;
pub use pem::PemSource;
pub use server::{ServerTls, ServerTlsFiles};

/// The cipher suites offered and accepted, strongest first (rustls' defaults for ring):
/// TLS 1.3 `TLS13_AES_256_GCM_SHA384`, `TLS13_AES_128_GCM_SHA256`,
/// `TLS13_CHACHA20_POLY1305_SHA256`; TLS 1.2 ECDHE with ECDSA or RSA and AES-GCM or
/// ChaCha20-Poly1305. No CBC, no RSA key exchange, no TLS 1.1 or older.
pub const CIPHER_SUITES: &[&str] = &[
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The one crypto provider every configuration is built with (ring), named explicitly so
/// no process-wide default has to be installed.
///
/// rustls 0.23.48 deprecates ring's provider because it has no post-quantum key exchange
/// (X25519MLKEM768). We keep ring on purpose for now: aws-lc-rs means a C/CMake build of
/// aws-lc in every crate that links TLS, on 2-core CI machines; moving to it is one line
/// here (and the `ring` features in the workspace manifest) when PQ key exchange matters.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2: the minimum is TLS 1.2, as etcd's.
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_cipher_suites_are_the_providers() {
        let offered: Vec<String> = super::provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(offered, super::CIPHER_SUITES);
    }
}
