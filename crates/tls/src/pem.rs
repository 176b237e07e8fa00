//! PEM files into rustls types, with errors that say which file and which setting.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::TlsError;

/// Where PEM text comes from: a file named by a setting (re-read on every reload check),
/// or bytes given in memory (the SDK's `ca_pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A file, and the flag or option that named it (`--cert-file`), for error messages.
    File {
        /// The file.
        path: PathBuf,
        /// The setting that named it.
        setting: String,
    },
    /// PEM text held in memory.
    Inline {
        /// The setting it was given as (`ca_pem`).
        setting: String,
        /// The PEM text.
        pem: Arc<[u8]>,
    },
}

impl PemSource {
    /// A file named by `setting`.
    pub fn file(setting: impl Into<String>, path: impl Into<PathBuf>) -> PemSource {
        PemSource::File {
            path: path.into(),
            setting: setting.into(),
        }
    }

    /// PEM text given as `setting`.
    pub fn inline(setting: impl Into<String>, pem: impl Into<Vec<u8>>) -> PemSource {
        PemSource::Inline {
            setting: setting.into(),
            pem: pem.into().into(),
        }
    }

    /// The setting's name.
    pub fn setting(&self) -> &str {
        match self {
            PemSource::File { setting, .. } | PemSource::Inline { setting, .. } => setting,
        }
    }

    /// The file's path, or "(inline PEM)".
    pub fn name(&self) -> String {
        match self {
            PemSource::File { path, .. } => path.display().to_string(),
            PemSource::Inline { .. } => "(inline PEM)".into(),
        }
    }

    /// The PEM text as it is now.
    pub fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            PemSource::File { path, setting } => std::fs::read(path).map_err(|source| TlsError::Read {
                setting: setting.clone(),
                path: path.clone(),
                source,
            }),
            PemSource::Inline { pem, .. } => Ok(pem.to_vec()),
        }
    }
}

/// Every certificate in `pem` (a chain: leaf first), at least one.
pub fn certificates(source: &PemSource, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let no_certificate = |reason: Option<String>| TlsError::NoCertificate {
        setting: source.setting().to_string(),
        source_name: source.name(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_certificate(Some(e.to_string())))?;
    if certs.is_empty() {
        return Err(no_certificate(None));
    }
    Ok(certs)
}

/// The first private key in `pem`.
pub fn private_key(source: &PemSource, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::NoKey {
        setting: source.setting().to_string(),
        source_name: source.name(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => None,
            other => Some(other.to_string()),
        },
    })
}

/// The trust anchors of a CA bundle (every certificate in it).
pub fn roots(source: &PemSource, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(source, pem)? {
        store.add(cert).map_err(|e| TlsError::BadCa {
            setting: source.setting().to_string(),
            source_name: source.name(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

/// A certificate chain with its private key, checked to belong together.
pub fn certified_key(cert: (&PemSource, &[u8]), key: (&PemSource, &[u8])) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert.0, cert.1)?;
    let private = private_key(key.0, key.1)?;
    let mismatch = |reason: String| TlsError::KeyMismatch {
        cert_setting: cert.0.setting().to_string(),
        cert: cert.0.name(),
        key_setting: key.0.setting().to_string(),
        key: key.0.name(),
        reason,
    };
    let signing = crate::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::NoKey {
            setting: key.0.setting().to_string(),
            source_name: key.0.name(),
            reason: Some(e.to_string()),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // The provider could not tell (an unusual key type): rustls' own check passes it.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(mismatch(match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "the certificate's public key is not this key's".into()
            }
            other => other.to_string(),
        })),
    }
}
