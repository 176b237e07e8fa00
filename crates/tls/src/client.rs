//! The client side: a reloading rustls client configuration and the connector tonic
//! channels dial through (`Endpoint::connect_with_connector_lazy`).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::pem::{certificates, certified_key, private_key, roots};
use crate::reload::Reloading;
use crate::{PemSource, TlsError};

/// How a client verifies servers and identifies itself. Every field is optional: the
/// default trusts the system's CAs and presents no certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsSettings {
    /// CAs that server certificates must chain to (default: the system's trust store).
    pub ca: Option<PemSource>,
    /// A client certificate chain and its key, presented when the server asks
    /// (`--client-cert-auth`).
    pub identity: Option<(PemSource, PemSource)>,
    /// The name the server's certificate must carry, instead of the endpoint's host.
    pub server_name: Option<String>,
    /// Accept any server certificate (encryption without authentication; for trying out
    /// `--auto-tls` only, as etcdctl's `--insecure-skip-tls-verify`).
    pub insecure_skip_verify: bool,
}

impl ClientTlsSettings {
    /// Default settings: system CAs, no client certificate.
    pub fn new() -> ClientTlsSettings {
        ClientTlsSettings::default()
    }

    /// Trust the CAs in this PEM file.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(PemSource::file("CA file", path));
        self
    }

    /// Trust the CAs in this PEM text.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(PemSource::inline("CA PEM", pem));
        self
    }

    /// Present this certificate (PEM file, leaf first) and key (PEM file).
    pub fn identity_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((
            PemSource::file("client certificate", cert),
            PemSource::file("client key", key),
        ));
        self
    }

    /// Present this certificate and key (PEM text).
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((
            PemSource::inline("client certificate PEM", cert),
            PemSource::inline("client key PEM", key),
        ));
        self
    }

    /// Verify the server's certificate against this name instead of the endpoint's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Accept any server certificate (see the field).
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }
}

/// A client configuration kept in step with its files (re-read on every new connection,
/// so a rotated client certificate or CA is used from the next dial on).
#[derive(Debug)]
pub struct ClientTls {
    settings: ClientTlsSettings,
    config: Reloading<ClientConfig>,
}

impl ClientTls {
    /// Reads and checks the files.
    pub fn new(what: &str, settings: ClientTlsSettings) -> Result<ClientTls, TlsError> {
        if let Some(name) = &settings.server_name {
            ServerName::try_from(name.clone()).map_err(|e| {
                TlsError::Settings(format!("{what}: server name {name:?} is not usable: {e}"))
            })?;
        }
        let mut sources = Vec::new();
        sources.extend(settings.ca.clone());
        if let Some((cert, key)) = &settings.identity {
            sources.push(cert.clone());
            sources.push(key.clone());
        }
        let spec = settings.clone();
        let config = Reloading::new(what, sources, move |contents: &[Vec<u8>]| build(&spec, contents))?;
        Ok(ClientTls { settings, config })
    }

    /// The settings this was built from.
    pub fn settings(&self) -> &ClientTlsSettings {
        &self.settings
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.current()
    }
}

fn build(settings: &ClientTlsSettings, contents: &[Vec<u8>]) -> Result<ClientConfig, TlsError> {
    let provider = crate::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(crate::VERSIONS)
        .map_err(|source| TlsError::Rustls {
            context: "TLS versions".into(),
            source,
        })?;
    let mut contents = contents.iter();
    let builder = if settings.insecure_skip_verify {
        if settings.ca.is_some() {
            contents.next();
        }
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        let roots = match &settings.ca {
            Some(ca) => roots(ca, contents.next().map(Vec::as_slice).unwrap_or_default())?,
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.identity {
        Some((cert, key)) => {
            let cert_pem = contents.next().map(Vec::as_slice).unwrap_or_default();
            let key_pem = contents.next().map(Vec::as_slice).unwrap_or_default();
            // Checked first, so a mismatch names both files.
            certified_key((cert, cert_pem), (key, key_pem))?;
            builder
                .with_client_auth_cert(certificates(cert, cert_pem)?, private_key(key, key_pem)?)
                .map_err(|source| TlsError::Rustls {
                    context: format!("{} {}", cert.setting(), cert.name()),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The platform's trust store (Debian: /etc/ssl/certs); empty when there is none.
fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "reading the system trust store");
    }
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    store
}

/// A verifier that accepts every server certificate but still checks the handshake
/// signatures (so the session is at least bound to the key the server showed).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An `https://host:port` URL split for tonic: the `http://host:port` URL the channel is
/// built on (the TLS is this crate's connector's, not tonic's) and the host the
/// certificate is checked against. `None` for any other scheme.
pub fn split_https(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_string(),
        None => authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .to_string(),
    };
    Some((format!("http://{rest}"), host))
}

/// Dials TCP (from `local_ip` when given) and runs the TLS handshake; a tower service
/// over URIs, for `tonic::transport::Endpoint::connect_with_connector_lazy`.
#[derive(Clone, Debug)]
pub struct Connector {
    tls: Arc<ClientTls>,
    server_name: ServerName<'static>,
    local_ip: Option<IpAddr>,
}

impl Connector {
    /// A connector that checks the server's certificate against `host` (or the
    /// settings' server-name override).
    pub fn new(tls: Arc<ClientTls>, host: &str, local_ip: Option<IpAddr>) -> Result<Connector, TlsError> {
        let name = tls
            .settings
            .server_name
            .clone()
            .unwrap_or_else(|| host.to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| TlsError::Settings(format!("server name {name:?} is not usable for TLS: {e}")))?;
        Ok(Connector {
            tls,
            server_name,
            local_ip,
        })
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URI without a host"))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = dial(&host, port, this.local_ip).await?;
            let connector = tokio_rustls::TlsConnector::from(this.tls.config());
            let stream = connector
                .connect(this.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("error trying to connect: TLS handshake with {host}:{port}: {e}"),
                    )
                })?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A TCP connection to the first address of `host` that answers. Errors read "tcp
/// connect error: ..." as tonic's own, so the "never sent" rule
/// (`conclave_contract::retry::never_sent`) recognises them; a failed handshake reads
/// "error trying to connect: TLS handshake ..." for the same reason.
async fn dial(host: &str, port: u16, local_ip: Option<IpAddr>) -> io::Result<TcpStream> {
    let mut last = None;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("tcp connect error: resolving {host}: {e}")))?
        .collect();
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = local_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.set_nodelay(true)?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io::Error::new(e.kind(), format!("tcp connect error: {e}")),
        None => io::Error::new(
            io::ErrorKind::NotFound,
            format!("tcp connect error: {host} resolves to no address"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_split_into_a_channel_url_and_a_host() {
        assert_eq!(
            split_https("https://127.0.0.1:2379"),
            Some(("http://127.0.0.1:2379".into(), "127.0.0.1".into()))
        );
        assert_eq!(
            split_https("https://node1.example:2379/"),
            Some(("http://node1.example:2379/".into(), "node1.example".into()))
        );
        assert_eq!(
            split_https("https://[::1]:2379"),
            Some(("http://[::1]:2379".into(), "::1".into()))
        );
        assert_eq!(split_https("http://127.0.0.1:2379"), None);
    }
}
