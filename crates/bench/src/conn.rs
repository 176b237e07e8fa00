//! gRPC connections: `--conns` clients of the etcd-client crate, each bound to one endpoint
//! (round-robin over `--endpoints`, like etcd's `tools/benchmark`), shared by the workers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use conclave_tls::client::ClientTlsSettings;
use conclave_tls::{ClientTls, Connector};
use etcd_client::{Client, ConnectOptions};

/// A fixed set of connections; worker `i` uses connection `i % len`.
pub struct Pool {
    clients: Vec<Client>,
}

impl Pool {
    /// Opens `conns` connections spread over `endpoints` (`host:port`, `http://host:port`
    /// or `https://host:port`; with `tls`, scheme-less endpoints are `https://`).
    /// `timeout` bounds each unary request; pass `None` for long-lived streams (watch).
    pub async fn connect(
        endpoints: &[String],
        conns: usize,
        timeout: Option<Duration>,
        tls: Option<&Arc<ClientTls>>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            bail!("no endpoints given");
        }
        let mut clients = Vec::with_capacity(conns.max(1));
        for i in 0..conns.max(1) {
            let endpoint = normalize(&endpoints[i % endpoints.len()], tls.is_some());
            if let Some((plain, host)) = conclave_tls::client::split_https(&endpoint) {
                clients.push(tls_client(&plain, &host, timeout, tls).await?);
                continue;
            }
            let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(5));
            if let Some(t) = timeout {
                options = options.with_timeout(t);
            }
            let client = Client::connect([endpoint.as_str()], Some(options))
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
            clients.push(client);
        }
        Ok(Pool { clients })
    }

    /// The connection for worker `i`.
    pub fn client(&self, i: usize) -> Client {
        self.clients[i % self.clients.len()].clone()
    }
}

/// TLS for `--cacert`/`--cert`/`--key` (the same rustls set-up and connector as the
/// SDK and the gateway, so the TLS figure is the one their users get).
pub fn tls(
    cacert: Option<&std::path::Path>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Arc<ClientTls>> {
    let mut settings = ClientTlsSettings::new();
    if let Some(ca) = cacert {
        settings = settings.ca_file(ca);
    }
    if let Some((cert, key)) = identity {
        settings = settings.identity_files(cert, key);
    }
    Ok(Arc::new(ClientTls::new("conclave-bench TLS", settings)?))
}

/// An etcd-client over a tonic channel whose TLS is conclave-tls's connector.
async fn tls_client(
    plain: &str,
    host: &str,
    timeout: Option<Duration>,
    tls: Option<&Arc<ClientTls>>,
) -> Result<Client> {
    let tls = match tls {
        Some(tls) => tls.clone(),
        None => self::tls(None, None)?,
    };
    let connector = Connector::new(tls, host, None)?;
    let mut endpoint = tonic::transport::Endpoint::from_shared(plain.to_string())
        .with_context(|| format!("endpoint {plain}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(t) = timeout {
        endpoint = endpoint.timeout(t);
    }
    let channel = endpoint.connect_with_connector_lazy(connector);
    Client::from_channel(etcd_client::Channel::Tonic(channel), None)
        .await
        .with_context(|| format!("connecting to https://{}", plain.trim_start_matches("http://")))
}

/// `host:port` → `http://host:port` (`https://` with TLS); URLs with a scheme are kept.
pub fn normalize(endpoint: &str, tls: bool) -> String {
    let e = endpoint.trim();
    if e.contains("://") {
        e.to_string()
    } else if tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    }
}

/// Splits a comma-separated endpoint list, dropping empty items.
pub fn parse_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(normalize("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(normalize("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(normalize("http://a:1", true), "http://a:1");
        assert_eq!(parse_endpoints("a:1, b:2,,"), vec!["a:1", "b:2"]);
    }
}
