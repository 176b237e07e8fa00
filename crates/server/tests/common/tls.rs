//! TLS test helpers: Debian's `etcdctl` with TLS flags, and the certificate a port
//! presents on a fresh handshake.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use conclave_testkit::CertFiles;
use conclave_tls::client::{split_https, ClientTlsSettings};
use conclave_tls::{ClientTls, Connector};

/// What one `etcdctl` run did: success, stdout, stderr.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `etcdctl --endpoints=<endpoints> <tls...> <args...>` (API 3, 10 s command
/// timeout, 2 s dial timeout).
pub fn etcdctl(endpoints: &[String], tls: &[String], args: &[&str]) -> Run {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .arg("--dial-timeout=2s")
        .args(tls)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("etcdctl not found: install Debian's etcd-client package (make test does)");
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// etcdctl's flags for a CA and, when given, a client certificate.
pub fn etcdctl_tls(ca: &Path, identity: Option<&CertFiles>) -> Vec<String> {
    let mut flags = vec![format!("--cacert={}", ca.display())];
    if let Some(identity) = identity {
        flags.push(format!("--cert={}", identity.cert.display()));
        flags.push(format!("--key={}", identity.key.display()));
    }
    flags
}

/// The Common Name of the certificate `url` (`https://host:port`) presents on a new
/// handshake, verified against `ca`, presenting `identity`.
pub async fn presented_common_name(url: &str, ca: &Path, identity: &CertFiles) -> Result<String, String> {
    use tower_service::Service;
    let settings = ClientTlsSettings::new()
        .ca_file(ca)
        .identity_files(&identity.cert, &identity.key);
    let tls = Arc::new(ClientTls::new("probe", settings).map_err(|e| e.to_string())?);
    let (plain, host) = split_https(url).ok_or_else(|| format!("{url} is not https://"))?;
    let mut connector = Connector::new(tls, &host, None).map_err(|e| e.to_string())?;
    let uri: http::Uri = plain.parse().map_err(|e| format!("{plain}: {e}"))?;
    let io = connector.call(uri).await.map_err(|e| e.to_string())?;
    let (_, connection) = io.inner().get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the server presented no certificate")?;
    conclave_tls::name::common_name(leaf.as_ref()).ok_or_else(|| "no Common Name".to_string())
}
