//! Certificates for TLS tests, generated at test time (rcgen, ECDSA P-256) and written
//! as PEM files: a test CA, and leaf certificates it signs for servers and clients.
//!
//! Nothing here is meant for production: keys are written unencrypted into the test's
//! temporary directory and the certificates are valid until the year 4096.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// A certificate file and its private key file (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (`<stem>.pem`).
    pub cert: PathBuf,
    /// Its private key (`<stem>-key.pem`, PKCS#8).
    pub key: PathBuf,
}

/// A test certificate authority. Its certificate is written to `<dir>/<name>-ca.pem`
/// when created; its key stays in memory, so only this value can issue under it.
pub struct TestCa {
    name: String,
    dir: PathBuf,
    ca_file: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Names every certificate this module issues is valid for: the loopback names and
/// addresses tests listen on.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(what.to_string(), std::io::Error::other(e.to_string()))
}

impl TestCa {
    /// A new CA with Common Name `<name> test CA`, its certificate written into `dir`
    /// (created if missing).
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA parameters", e))?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("{name} test CA"));
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(|e| failed("generating the CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| failed("self-signing the CA", e))?;
        let ca_file = dir.join(format!("{name}-ca.pem"));
        write(&ca_file, cert.pem().as_bytes())?;
        Ok(TestCa {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            ca_file,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate file (for `--trusted-ca-file`, `--cacert`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Issues a certificate with Common Name `common_name`, valid for
    /// [`LOOPBACK_NAMES`] and usable as server and as client certificate (as etcd's
    /// peer certificates must be), written to `<dir>/<stem>.pem` and `<stem>-key.pem`.
    pub fn issue(&self, stem: &str, common_name: &str) -> Result<CertFiles> {
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        };
        self.reissue(&files, common_name)?;
        Ok(files)
    }

    /// Writes a fresh certificate and key over `files` (a rotation): each file is
    /// replaced atomically (written beside it, then renamed), the key first.
    pub fn reissue(&self, files: &CertFiles, common_name: &str) -> Result<()> {
        let (cert, key) = self.leaf_pem(common_name)?;
        replace(&files.key, key.as_bytes())?;
        replace(&files.cert, cert.as_bytes())
    }

    /// A certificate and key (PEM text) for `common_name`, not written anywhere.
    pub fn leaf_pem(&self, common_name: &str) -> Result<(String, String)> {
        let names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(|e| failed("certificate parameters", e))?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, common_name);
        params.distinguished_name = subject;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| failed("generating a key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| failed("signing a certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Replaces `path` in one step, so a reader sees the old or the new content, never half.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
        .map_err(|e| Error::io(format!("renaming {} into place", temporary.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_files_are_pem_certificates_and_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new(dir.path(), "main").expect("CA");
        let files = ca.issue("server", "node-1").expect("issue");
        let ca_pem = std::fs::read_to_string(ca.ca_file()).expect("CA file");
        assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{ca_pem}");
        let cert = std::fs::read_to_string(&files.cert).expect("cert");
        let key = std::fs::read_to_string(&files.key).expect("key");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        ca.reissue(&files, "node-1-v2").expect("reissue");
        assert_ne!(std::fs::read_to_string(&files.cert).expect("cert"), cert);
    }
}
