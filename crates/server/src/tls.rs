//! The node's TLS settings turned into listeners' and dialers' configurations, and the
//! verified client certificate's Common Name for the auth layer.
//!
//! The mechanics (files re-read on change, the accept loop, the connector) are
//! `conclave_tls`'s; this module decides which files each port uses and checks that the
//! settings go together, naming etcd's flags in every error.

use std::sync::Arc;

use conclave_tls::client::ClientTlsSettings;
use conclave_tls::{ClientTls, PemSource, ServerTls, ServerTlsFiles, TlsError};

use crate::Config;

/// The Common Name of the verified client certificate of the connection `request` came
/// on; `None` on a plain connection or when the client presented no certificate.
///
/// With `--client-cert-auth`, etcd takes this as the user name when a request carries no
/// token. Only certificates that verified against `--trusted-ca-file` reach this point:
/// the handshake refuses the others.
pub fn client_common_name<T>(request: &tonic::Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    conclave_tls::name::common_name(certs.first()?.as_ref())
}

/// One port's flags, for error messages and lookups.
struct PortFlags<'a> {
    port: &'static str,
    cert: (&'static str, &'a str),
    key: (&'static str, &'a str),
    ca: (&'static str, &'a str),
    cert_auth: (&'static str, bool),
    auto: (&'static str, bool),
    /// `<data-dir>/fixtures/<dir>` for self-signed certificates.
    fixtures: &'static str,
    urls_flag: &'static str,
}

fn client_flags(config: &Config) -> PortFlags<'_> {
    PortFlags {
        port: "client",
        cert: ("--cert-file", &config.cert_file),
        key: ("--key-file", &config.key_file),
        ca: ("--trusted-ca-file", &config.trusted_ca_file),
        cert_auth: ("--client-cert-auth", config.client_cert_auth),
        auto: ("--auto-tls", config.auto_tls),
        fixtures: "client",
        urls_flag: "--listen-client-urls",
    }
}

fn peer_flags(config: &Config) -> PortFlags<'_> {
    PortFlags {
        port: "peer",
        cert: ("--peer-cert-file", &config.peer_cert_file),
        key: ("--peer-key-file", &config.peer_key_file),
        ca: ("--peer-trusted-ca-file", &config.peer_trusted_ca_file),
        cert_auth: ("--peer-client-cert-auth", config.peer_client_cert_auth),
        auto: ("--peer-auto-tls", config.peer_auto_tls),
        fixtures: "peer",
        urls_flag: "--listen-peer-urls",
    }
}

fn set(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// The certificate and key a port serves with: the files given, or a self-signed pair
/// with the auto flag; `None` if neither.
fn identity(config: &Config, flags: &PortFlags<'_>) -> Result<Option<(PemSource, PemSource)>, TlsError> {
    match (set(flags.cert.1), set(flags.key.1)) {
        (Some(cert), Some(key)) => Ok(Some((
            PemSource::file(flags.cert.0, cert),
            PemSource::file(flags.key.0, key),
        ))),
        (Some(_), None) => Err(TlsError::Settings(format!(
            "{} is set but {} is not: give the certificate's private key",
            flags.cert.0, flags.key.0
        ))),
        (None, Some(_)) => Err(TlsError::Settings(format!(
            "{} is set but {} is not: give the key's certificate",
            flags.key.0, flags.cert.0
        ))),
        (None, None) if flags.auto.1 => {
            let mut hosts: Vec<String> = config
                .client_urls()
                .iter()
                .chain(config.peer_urls().iter())
                .filter_map(|u| url_host(u))
                .collect();
            hosts.sort();
            hosts.dedup();
            let dir = config.data_dir.join("fixtures").join(flags.fixtures);
            let (cert, key) = conclave_tls::auto::self_signed(flags.auto.0, &dir, &hosts)?;
            Ok(Some((
                PemSource::file(flags.auto.0, cert),
                PemSource::file(flags.auto.0, key),
            )))
        }
        (None, None) => Ok(None),
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().map(String::from);
    }
    Some(
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .to_string(),
    )
}

fn server(
    config: &Config,
    flags: PortFlags<'_>,
    any_https: bool,
) -> Result<Option<Arc<ServerTls>>, TlsError> {
    if flags.cert_auth.1 && set(flags.ca.1).is_none() {
        return Err(TlsError::Settings(format!(
            "{} needs {}: the CA that client certificates must be signed by",
            flags.cert_auth.0, flags.ca.0
        )));
    }
    let identity = identity(config, &flags)?;
    let Some((cert, key)) = identity else {
        if any_https {
            return Err(TlsError::Settings(format!(
                "{} has an https:// URL but no certificate is configured: give {} and {} (or {} for a self-signed one)",
                flags.urls_flag, flags.cert.0, flags.key.0, flags.auto.0
            )));
        }
        return Ok(None);
    };
    if !any_https {
        tracing::warn!(
            "{} certificate configured but no https:// URL in {}: the {} port serves plain HTTP",
            flags.port,
            flags.urls_flag,
            flags.port
        );
        return Ok(None);
    }
    let files = ServerTlsFiles {
        cert,
        key,
        trusted_ca: set(flags.ca.1).map(|ca| PemSource::file(flags.ca.0, ca)),
        client_cert_auth: flags.cert_auth.1,
    };
    Ok(Some(Arc::new(ServerTls::new(
        &format!("{} TLS", flags.port),
        files,
    )?)))
}

/// The client port's TLS (for its `https://` listeners), checked and read.
pub fn client_server(config: &Config, any_https: bool) -> Result<Option<Arc<ServerTls>>, TlsError> {
    server(config, client_flags(config), any_https)
}

/// The peer port's TLS (for its `https://` listeners), checked and read.
pub fn peer_server(config: &Config, any_https: bool) -> Result<Option<Arc<ServerTls>>, TlsError> {
    server(config, peer_flags(config), any_https)
}

/// How this member dials other members' `https://` URLs: verifying them against
/// `--peer-trusted-ca-file` (not at all with `--peer-auto-tls` and no CA, as etcd) and
/// presenting the peer certificate. `None` when no peer TLS setting is given.
pub fn peer_client(config: &Config) -> Result<Option<Arc<ClientTls>>, TlsError> {
    let flags = peer_flags(config);
    let ca = set(flags.ca.1).map(|ca| PemSource::file(flags.ca.0, ca));
    let identity = identity(config, &flags)?;
    if ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    let settings = ClientTlsSettings {
        insecure_skip_verify: ca.is_none() && config.peer_auto_tls,
        ca,
        identity,
        server_name: None,
    };
    Ok(Some(Arc::new(ClientTls::new("peer TLS (outgoing)", settings)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_are_read_for_self_signed_names() {
        assert_eq!(url_host("https://127.0.0.1:2379").as_deref(), Some("127.0.0.1"));
        assert_eq!(url_host("https://[::1]:2379").as_deref(), Some("::1"));
        assert_eq!(url_host("https://node1:2380/").as_deref(), Some("node1"));
    }

    #[test]
    fn https_without_a_certificate_names_the_flags() {
        let config = Config {
            listen_client_urls: "https://127.0.0.1:2379".into(),
            ..Config::default()
        };
        let error = client_server(&config, true).unwrap_err().to_string();
        assert!(
            error.contains("--cert-file") && error.contains("--auto-tls"),
            "{error}"
        );
    }

    #[test]
    fn a_certificate_without_its_key_names_both_flags() {
        let config = Config {
            peer_cert_file: "/tmp/peer.pem".into(),
            ..Config::default()
        };
        let error = peer_server(&config, true).unwrap_err().to_string();
        assert!(
            error.contains("--peer-cert-file") && error.contains("--peer-key-file"),
            "{error}"
        );
    }

    #[test]
    fn client_cert_auth_needs_a_trusted_ca() {
        let config = Config {
            cert_file: "/tmp/c.pem".into(),
            key_file: "/tmp/k.pem".into(),
            client_cert_auth: true,
            ..Config::default()
        };
        let error = client_server(&config, true).unwrap_err().to_string();
        assert!(
            error.contains("--client-cert-auth needs --trusted-ca-file"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_certificate_file_names_the_flag_and_the_file() {
        let config = Config {
            cert_file: "/nonexistent/server.pem".into(),
            key_file: "/nonexistent/server-key.pem".into(),
            ..Config::default()
        };
        let error = client_server(&config, true).unwrap_err().to_string();
        assert!(
            error.contains("--cert-file") && error.contains("/nonexistent/server.pem"),
            "{error}"
        );
    }

    /// One HTTP/2 request for `/cn` over TLS; the body, or the connection's error.
    async fn common_name_seen(
        addr: std::net::SocketAddr,
        client: conclave_tls::client::ClientTlsSettings,
    ) -> Result<String, String> {
        use tower_service::Service;
        let tls = Arc::new(ClientTls::new("test client", client).map_err(|e| e.to_string())?);
        let connector = conclave_tls::Connector::new(tls, "127.0.0.1", None).map_err(|e| e.to_string())?;
        let mut channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_with_connector_lazy(connector);
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| e.to_string())?;
        let request = http::Request::get("/cn")
            .body(tonic::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let response = channel.call(request).await.map_err(|e| format!("{e:?}"))?;
        let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1024)
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn client_common_name_is_the_verified_client_certificates_cn() {
        use conclave_testkit::TestCa;
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new(dir.path(), "main").expect("CA");
        let foreign = TestCa::new(dir.path(), "foreign").expect("foreign CA");
        let server = ca.issue("server", "node").expect("server cert");
        let alice = ca.issue("alice", "alice").expect("alice");
        let mallory = foreign.issue("mallory", "alice").expect("mallory");
        let tls = ServerTls::new(
            "test",
            ServerTlsFiles {
                cert: PemSource::file("--cert-file", &server.cert),
                key: PemSource::file("--key-file", &server.key),
                trusted_ca: Some(PemSource::file("--trusted-ca-file", ca.ca_file())),
                client_cert_auth: false,
            },
        )
        .expect("server TLS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let routes = axum::Router::new().route(
            "/cn",
            axum::routing::get(|request: axum::extract::Request| async move {
                let request = tonic::Request::from_http(request);
                client_common_name(&request).unwrap_or_else(|| "(none)".into())
            }),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::from(routes))
                .serve_with_incoming(conclave_tls::server::incoming(listener, Arc::new(tls))),
        );
        let trusting = || ClientTlsSettings::new().ca_file(ca.ca_file());
        assert_eq!(
            common_name_seen(addr, trusting().identity_files(&alice.cert, &alice.key)).await,
            Ok("alice".to_string())
        );
        assert_eq!(common_name_seen(addr, trusting()).await, Ok("(none)".to_string()));
        // A certificate from another CA is refused at the handshake, even without
        // --client-cert-auth: its Common Name must never reach the auth layer.
        let refused = common_name_seen(addr, trusting().identity_files(&mallory.cert, &mallory.key)).await;
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn tls_flags_and_etcd_booleans_parse() {
        use clap::Parser;
        let flags = crate::Flags::parse_from([
            "conclave",
            "--cert-file",
            "/c.pem",
            "--client-cert-auth",
            "--peer-client-cert-auth=false",
            "--peer-auto-tls=true",
        ]);
        let config = Config::load(&flags).unwrap();
        assert_eq!(config.cert_file, "/c.pem");
        assert!(config.client_cert_auth);
        assert!(!config.peer_client_cert_auth);
        assert!(config.peer_auto_tls);
        assert!(!config.auto_tls);
    }
}
