//! A cluster of real `conclave` processes speaking TLS on both ports: `https://` client
//! and peer URLs on loopback, certificates from a [`TestCa`] generated for the test.
//!
//! Unlike [`crate::Cluster`] there is no peer proxy (TLS tests need no partitions), so
//! members dial each other directly and every URL is `https://127.0.0.1:<port>`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use conclave_tls::client::ClientTlsSettings;
use conclave_tls::{ClientTls, Connector};
use tempfile::TempDir;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::certs::{CertFiles, TestCa};
use crate::error::{Error, Result};
use crate::ports::unique_port;
use crate::process::Process;
use crate::wait::wait_until_ok;

/// How to start a [`TlsCluster`].
#[derive(Debug, Clone)]
pub struct TlsClusterOptions {
    /// Number of initial members, `n1..=n{size}`. Default 3.
    pub size: usize,
    /// `--client-cert-auth` on every member. Default true.
    pub client_cert_auth: bool,
    /// `--peer-client-cert-auth` on every member. Default true.
    pub peer_client_cert_auth: bool,
    /// Initial members whose peer certificate and `--peer-trusted-ca-file` come from a
    /// second, unrelated CA ([`TlsCluster::foreign_ca`]); their client port still uses
    /// the main CA. Default none.
    pub foreign_peer_members: Vec<usize>,
    /// Further arguments for every member. Default: fast elections (heartbeat 50 ms,
    /// election timeout 400 ms) and a 3 s request timeout.
    pub extra_args: Vec<String>,
}

impl Default for TlsClusterOptions {
    fn default() -> Self {
        TlsClusterOptions {
            size: 3,
            client_cert_auth: true,
            peer_client_cert_auth: true,
            foreign_peer_members: Vec::new(),
            extra_args: [
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "400",
                "--request-timeout",
                "3000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// One member of a [`TlsCluster`]: its URLs, certificate files and process.
#[derive(Debug)]
pub struct TlsMember {
    /// `n{i}`.
    pub name: String,
    /// `https://127.0.0.1:<port>`, listened on and advertised.
    pub client_url: String,
    /// `https://127.0.0.1:<port>`, listened on and advertised.
    pub peer_url: String,
    /// `--cert-file` / `--key-file`.
    pub client_files: CertFiles,
    /// `--peer-cert-file` / `--peer-key-file`.
    pub peer_files: CertFiles,
    /// The member's process.
    pub process: Process,
}

/// A running TLS cluster; dropping it kills every member and removes its directory.
#[derive(Debug)]
pub struct TlsCluster {
    bin: PathBuf,
    options: TlsClusterOptions,
    token: String,
    dir: PathBuf,
    ca: TestCa,
    foreign: TestCa,
    client: CertFiles,
    members: RwLock<Vec<Arc<TlsMember>>>,
    // Dropped last: members must be dead before their data dirs go.
    _temp_dir: TempDir,
}

impl TlsCluster {
    /// Generates the CAs and certificates and starts `options.size` members as a new
    /// cluster; does not wait for them (see [`TlsCluster::wait_healthy`]).
    pub fn start(bin: &Path, options: TlsClusterOptions) -> Result<TlsCluster> {
        let temp_dir = tempfile::Builder::new()
            .prefix("conclave-tls-test-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster's temporary directory", e))?;
        let dir = temp_dir.path().to_path_buf();
        let certs = dir.join("certs");
        let ca = TestCa::new(&certs, "main")?;
        let foreign = TestCa::new(&certs, "foreign")?;
        let client = ca.issue("client", "root")?;
        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "conclave-tls-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let cluster = TlsCluster {
            bin: bin.to_path_buf(),
            options,
            token,
            dir,
            ca,
            foreign,
            client,
            members: RwLock::new(Vec::new()),
            _temp_dir: temp_dir,
        };
        let mut planned = Vec::new();
        for index in 1..=cluster.options.size {
            let foreign = cluster.options.foreign_peer_members.contains(&index);
            planned.push((index, cluster.ports(index)?, foreign));
        }
        let initial: Vec<String> = planned
            .iter()
            .map(|(index, (_, peer), _)| format!("n{index}=https://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        for (index, ports, foreign) in planned {
            let bootstrap = vec![
                "--initial-cluster".to_string(),
                initial.clone(),
                "--initial-cluster-state".to_string(),
                "new".to_string(),
            ];
            cluster.launch(index, ports, foreign, bootstrap)?;
        }
        Ok(cluster)
    }

    /// Starts member `n{k}` (the next index) that joins with `--join` through the client
    /// URLs of the running members; with `foreign`, its peer certificate and peer CA are
    /// the foreign CA's. Returns `k`.
    pub fn add_member_joining(&self, foreign: bool) -> Result<usize> {
        let join: Vec<String> = self
            .members()
            .iter()
            .filter(|m| m.process.is_running())
            .map(|m| m.client_url.clone())
            .collect();
        let index = self.members().len() + 1;
        let ports = self.ports(index)?;
        self.launch(index, ports, foreign, vec!["--join".into(), join.join(",")])?;
        Ok(index)
    }

    fn ports(&self, index: usize) -> Result<(u16, u16)> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = |what: &str| {
            unique_port(loopback).map_err(|e| Error::io(format!("choosing a {what} port for n{index}"), e))
        };
        Ok((port("client")?, port("peer")?))
    }

    fn launch(
        &self,
        index: usize,
        (client_port, peer_port): (u16, u16),
        foreign: bool,
        bootstrap: Vec<String>,
    ) -> Result<()> {
        let name = format!("n{index}");
        let client_url = format!("https://127.0.0.1:{client_port}");
        let peer_url = format!("https://127.0.0.1:{peer_port}");
        let peer_ca = if foreign { &self.foreign } else { &self.ca };
        let client_files = self.ca.issue(&format!("{name}-client"), &name)?;
        let peer_files = peer_ca.issue(&format!("{name}-peer"), &name)?;
        let path = |p: &Path| p.display().to_string();
        let mut args = vec![
            "--name".to_string(),
            name.clone(),
            "--data-dir".into(),
            path(&self.dir.join(&name)),
            "--listen-client-urls".into(),
            client_url.clone(),
            "--advertise-client-urls".into(),
            client_url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster-token".into(),
            self.token.clone(),
            "--cert-file".into(),
            path(&client_files.cert),
            "--key-file".into(),
            path(&client_files.key),
            "--trusted-ca-file".into(),
            path(self.ca.ca_file()),
            format!("--client-cert-auth={}", self.options.client_cert_auth),
            "--peer-cert-file".into(),
            path(&peer_files.cert),
            "--peer-key-file".into(),
            path(&peer_files.key),
            "--peer-trusted-ca-file".into(),
            path(peer_ca.ca_file()),
            format!("--peer-client-cert-auth={}", self.options.peer_client_cert_auth),
        ];
        args.extend(bootstrap);
        args.extend(self.options.extra_args.iter().cloned());
        let process = Process::new(
            name.clone(),
            &self.bin,
            args,
            self.dir.join(format!("{name}.log")),
        );
        let member = Arc::new(TlsMember {
            name,
            client_url,
            peer_url,
            client_files,
            peer_files,
            process,
        });
        // Registered before starting, so a failed start is still cleaned up by Drop.
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&member));
        member.process.start()
    }

    /// Member `index` (1-based).
    pub fn member(&self, index: usize) -> Result<Arc<TlsMember>> {
        let members = self.members();
        index
            .checked_sub(1)
            .and_then(|i| members.get(i))
            .cloned()
            .ok_or(Error::NoSuchNode {
                index,
                count: members.len(),
            })
    }

    /// Every member, in index order.
    pub fn members(&self) -> Vec<Arc<TlsMember>> {
        self.members.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The client URLs of every member, in index order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members().iter().map(|m| m.client_url.clone()).collect()
    }

    /// The CA every client certificate and (unless foreign) peer certificate is from.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The unrelated CA of [`TlsClusterOptions::foreign_peer_members`].
    pub fn foreign_ca(&self) -> &TestCa {
        &self.foreign
    }

    /// A client certificate (Common Name `root`) from the main CA.
    pub fn client_identity(&self) -> &CertFiles {
        &self.client
    }

    /// The directory holding data dirs, logs and `certs/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`TlsCluster::start`], then waits until every initial member is healthy
    /// ([`TlsCluster::wait_healthy`]); a member that is not fails the start with the
    /// members' logs in the error.
    pub async fn start_healthy(
        bin: &Path,
        options: TlsClusterOptions,
        timeout: Duration,
    ) -> Result<TlsCluster> {
        let size = options.size;
        let cluster = TlsCluster::start(bin, options)?;
        for i in 1..=size {
            if let Err(e) = cluster.wait_healthy(i, timeout).await {
                return Err(Error::Setup(format!("{e}\n{}", cluster.log_dump())));
            }
        }
        Ok(cluster)
    }

    /// Waits until member `index` answers the gRPC health check SERVING over TLS (with
    /// the main CA and [`TlsCluster::client_identity`]): it has a leader, a linearizable
    /// read succeeds and its client URLs are published.
    pub async fn wait_healthy(&self, index: usize, timeout: Duration) -> Result<()> {
        let member = self.member(index)?;
        let tls = Arc::new(
            ClientTls::new(
                "testkit health check",
                ClientTlsSettings::new()
                    .ca_file(self.ca.ca_file())
                    .identity_files(&self.client.cert, &self.client.key),
            )
            .map_err(|e| Error::Setup(e.to_string()))?,
        );
        let (plain, host) = conclave_tls::client::split_https(&member.client_url)
            .ok_or_else(|| Error::Setup(format!("{} is not https://", member.client_url)))?;
        let connector = Connector::new(tls, &host, None).map_err(|e| Error::Setup(e.to_string()))?;
        let channel = tonic::transport::Endpoint::from_shared(plain)
            .map_err(|e| Error::Setup(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect_with_connector_lazy(connector);
        wait_until_ok(&format!("{} healthy over TLS", member.name), timeout, || {
            let mut health = HealthClient::new(channel.clone());
            async move {
                let reply = health
                    .check(HealthCheckRequest::default())
                    .await
                    .map_err(|status| format!("{status:?}"))?;
                match reply.into_inner().status {
                    s if s == ServingStatus::Serving as i32 => Ok(()),
                    s => Err(format!("health status {s}")),
                }
            }
        })
        .await?;
        Ok(())
    }

    /// The end of every member's log, for assertion messages.
    pub fn log_dump(&self) -> String {
        let mut dump = format!("cluster directory: {}\n", self.dir.display());
        for member in self.members() {
            dump.push_str(&format!(
                "===== {} ({}; pid {:?}) =====\n{}\n",
                member.name,
                member.client_url,
                member.process.pid(),
                member.process.log_tail(60)
            ));
        }
        dump
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for member in self.members() {
            if let Err(e) = member.process.kill() {
                tracing::warn!("testkit: {e}");
            }
        }
    }
}
