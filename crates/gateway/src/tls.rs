//! The gateway's TLS: towards the members (etcdctl's options, through the SDK) and on its
//! own listener (`--tls-cert`/`--tls-key`, re-read when the files change).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use conclave_client::Tls;
use conclave_tls::{PemSource, ServerTls, ServerTlsFiles, TlsError};
use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::Config;

/// The SDK's TLS towards the members, when the options ask for it (files read and
/// checked now, so a bad one stops the gateway at start with its name).
pub fn member_tls(config: &Config) -> Result<Option<Tls>, conclave_client::Error> {
    config.member_tls().settings().map(Tls::new).transpose()
}

/// The listener's TLS, when `--tls-cert`/`--tls-key` are set.
pub fn listener_tls(config: &Config) -> Result<Option<Arc<ServerTls>>, TlsError> {
    let Some((cert, key)) = config.listener_tls() else {
        return Ok(None);
    };
    let files = ServerTlsFiles {
        cert: PemSource::file("--tls-cert", cert),
        key: PemSource::file("--tls-key", key),
        trusted_ca: None,
        client_cert_auth: false,
    };
    Ok(Some(Arc::new(ServerTls::new("gateway TLS", files)?)))
}

type Handshakes = Pin<Box<dyn Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send>>;

/// A listener whose connections have finished their TLS handshake (each handshake runs
/// on its own, see [`conclave_tls::server::incoming`]), for `axum::serve`.
pub struct TlsListener {
    local: SocketAddr,
    handshakes: Handshakes,
}

impl TlsListener {
    /// TLS over `listener` with `tls`.
    pub fn new(listener: TcpListener, tls: Arc<ServerTls>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        Ok(TlsListener {
            local,
            handshakes: Box::pin(conclave_tls::server::incoming(listener, tls)),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.handshakes.next().await {
                Some(Ok(stream)) => {
                    let remote = stream.get_ref().0.peer_addr().unwrap_or(self.local);
                    return (stream, remote);
                }
                // Failed handshakes are logged (and dropped) by the accept loop.
                Some(Err(error)) => tracing::debug!(%error, "TLS connection dropped"),
                // The accept loop ended: no connection will come again.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
