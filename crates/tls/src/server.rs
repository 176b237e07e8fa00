//! The server side: a reloading rustls configuration and the accept loop.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::pem::{certified_key, roots};
use crate::reload::Reloading;
use crate::{PemSource, TlsError};

/// How long a client may take to finish its TLS handshake before the connection is
/// dropped (a truncated or stalled handshake holds nothing else up: each runs on its own).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a TLS listener is configured from.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    /// The server certificate chain (leaf first), e.g. `--cert-file`.
    pub cert: PemSource,
    /// Its private key, e.g. `--key-file`.
    pub key: PemSource,
    /// CAs that client certificates are verified against, e.g. `--trusted-ca-file`.
    /// Without `client_cert_auth`, a client may present no certificate, but one it does
    /// present must verify (so its Common Name can be trusted).
    pub trusted_ca: Option<PemSource>,
    /// Refuse, at the handshake, a client without a certificate signed by `trusted_ca`
    /// (`--client-cert-auth`).
    pub client_cert_auth: bool,
}

/// A TLS listener's configuration, rebuilt from its files when they change (checked on
/// every new connection: see [`crate::reload`]).
#[derive(Debug)]
pub struct ServerTls {
    config: Reloading<ServerConfig>,
}

impl ServerTls {
    /// Reads and checks the files: a missing, unreadable or mismatched file is an error
    /// naming it and its setting.
    pub fn new(what: &str, files: ServerTlsFiles) -> Result<ServerTls, TlsError> {
        if files.client_cert_auth && files.trusted_ca.is_none() {
            return Err(TlsError::Settings(format!(
                "{what}: client certificate authentication needs a trusted CA file"
            )));
        }
        let mut sources = vec![files.cert.clone(), files.key.clone()];
        sources.extend(files.trusted_ca.clone());
        let config = Reloading::new(what, sources, move |contents: &[Vec<u8>]| build(&files, contents))?;
        Ok(ServerTls { config })
    }

    /// The acceptor for a new connection, with the files' current content.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.current())
    }

    /// How many times the files were reloaded since start.
    pub fn reloads(&self) -> u64 {
        self.config.generation()
    }
}

fn build(files: &ServerTlsFiles, contents: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let provider = crate::provider();
    let certified = certified_key((&files.cert, &contents[0]), (&files.key, &contents[1]))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(crate::VERSIONS)
        .map_err(|source| TlsError::Rustls {
            context: "TLS versions".into(),
            source,
        })?;
    let builder = match (&files.trusted_ca, contents.get(2)) {
        (Some(ca), Some(pem)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca, pem)?), provider);
            let verifier = if files.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadCa {
                setting: ca.setting().to_string(),
                source_name: ca.name(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    // gRPC is HTTP/2; HTTP/1.1 stays for /metrics and the gateway's REST API.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS connections accepted on `listener`, handshakes finished, for tonic's
/// `serve_with_incoming` (or hyper). Each handshake runs in its own task under
/// [`HANDSHAKE_TIMEOUT`], so garbage, a refused client certificate or a stalled handshake
/// costs only that connection. Accepting stops when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: try again shortly.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Small responses must not wait for the peer's delayed ACK.
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = tls.acceptor();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    // As etcd: "rejected connection from ..." (a wrong CA, no client
                    // certificate, not TLS at all).
                    Ok(Err(e)) => tracing::warn!(%remote, error = %e, "rejected TLS connection"),
                    Err(_) => {
                        tracing::warn!(%remote, "TLS handshake did not finish in time; dropped")
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
