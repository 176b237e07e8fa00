//! TLS test helpers: Debian's `etcdctl` with TLS flags, and the certificate a port
//! presents on a fresh handshake.

use std::path::Path;
use std::sync::Arc;

use conclave_testkit::CertFiles;
use conclave_tls::client::{split_https, ClientTlsSettings};
use conclave_tls::{ClientTls, Connector};

pub use super::etcdctl::Run;

/// Runs `etcdctl --endpoints=<endpoints> <tls...> <args...>`.
pub fn etcdctl(endpoints: &[String], tls: &[String], args: &[&str]) -> Run {
    super::etcdctl::run(endpoints, tls, args, None)
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
