//! gRPC connections: `--conns` clients of the etcd-client crate, each bound to one endpoint
//! (round-robin over `--endpoints`, like etcd's `tools/benchmark`), shared by the workers.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};

/// A fixed set of connections; worker `i` uses connection `i % len`.
pub struct Pool {
    clients: Vec<Client>,
}

impl Pool {
    /// Opens `conns` connections spread over `endpoints` (`host:port` or `http://host:port`).
    /// `timeout` bounds each unary request; pass `None` for long-lived streams (watch).
    pub async fn connect(endpoints: &[String], conns: usize, timeout: Option<Duration>) -> Result<Self> {
        if endpoints.is_empty() {
            bail!("no endpoints given");
        }
        let mut clients = Vec::with_capacity(conns.max(1));
        for i in 0..conns.max(1) {
            let endpoint = normalize(&endpoints[i % endpoints.len()]);
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

/// `host:port` → `http://host:port`; URLs with a scheme are kept.
pub fn normalize(endpoint: &str) -> String {
    let e = endpoint.trim();
    if e.contains("://") {
        e.to_string()
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
        assert_eq!(normalize("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(normalize("http://a:1"), "http://a:1");
        assert_eq!(parse_endpoints("a:1, b:2,,"), vec!["a:1", "b:2"]);
    }
}
