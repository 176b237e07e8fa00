use std::path::PathBuf;

/// A TLS setting that cannot be used, naming the file and the setting it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{setting} {}: cannot read the file: {source}", path.display())]
    Read {
        /// The flag or option that named the file (`--cert-file`).
        setting: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{setting} {source_name}: no PEM certificate (-----BEGIN CERTIFICATE-----) found{}", detail(.reason))]
    NoCertificate {
        /// The flag or option.
        setting: String,
        /// The file (or "inline PEM").
        source_name: String,
        /// What the PEM parser said, if anything.
        reason: Option<String>,
    },
    /// The file holds no usable private key.
    #[error("{setting} {source_name}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found{}", detail(.reason))]
    NoKey {
        /// The flag or option.
        setting: String,
        /// The file (or "inline PEM").
        source_name: String,
        /// What the parser said, if anything.
        reason: Option<String>,
    },
    /// The key does not belong to the certificate (or cannot sign).
    #[error("{key_setting} {key} does not match the certificate in {cert_setting} {cert}: {reason} (rotate certificate and key together)")]
    KeyMismatch {
        /// The certificate's flag.
        cert_setting: String,
        /// The certificate file.
        cert: String,
        /// The key's flag.
        key_setting: String,
        /// The key file.
        key: String,
        /// What rustls said.
        reason: String,
    },
    /// A CA file holds a certificate that cannot be a trust anchor.
    #[error("{setting} {source_name}: unusable CA certificate: {reason}")]
    BadCa {
        /// The flag or option.
        setting: String,
        /// The file.
        source_name: String,
        /// What was wrong.
        reason: String,
    },
    /// Settings that do not go together.
    #[error("{0}")]
    Settings(String),
    /// A self-signed certificate could not be generated or stored.
    #[error("{setting}: cannot generate a self-signed certificate in {}: {reason}", dir.display())]
    AutoTls {
        /// `--auto-tls` or `--peer-auto-tls`.
        setting: String,
        /// Where it was to be written.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: String,
        /// rustls' error.
        source: rustls::Error,
    },
}

fn detail(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}
