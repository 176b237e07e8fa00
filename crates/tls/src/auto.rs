//! Self-signed certificates for `--auto-tls` and `--peer-auto-tls` (for trying TLS out:
//! clients cannot verify them and must skip verification, as with etcd's).

use std::path::{Path, PathBuf};

use crate::TlsError;

/// The certificate and key files in `dir` (`cert.pem`, `key.pem`), generated when either
/// is missing (as etcd keeps them in `<data-dir>/fixtures/{client,peer}`), valid for
/// `hosts` (names or IP addresses) and `localhost`.
pub fn self_signed(setting: &str, dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let failed = |reason: String| TlsError::AutoTls {
        setting: setting.to_string(),
        dir: dir.to_path_buf(),
        reason,
    };
    let mut names: Vec<String> = hosts.to_vec();
    names.push("localhost".into());
    names.sort();
    names.dedup();
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| failed(e.to_string()))?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(|e| failed(e.to_string()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate ({setting})");
    Ok((cert_path, key_path))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
