//! The node's configuration: one struct, loaded in one place.
//!
//! Layering, lowest to highest: built-in defaults < `conclave.toml` (or `--config-file`)
//! < `ETCD_*` environment < `CONCLAVE_*` environment < command-line flags. Flag and
//! variable names are etcd's (`--initial-cluster`, `ETCD_INITIAL_CLUSTER`, ...), so an
//! etcd deployment only swaps the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use conclave_consensus::{Bootstrap, NodeConfig};
use serde::Deserialize;
use urls::{listen_addr, non_empty, parse_initial_cluster, split_urls};

mod urls;

/// The node configuration. Every field has a default, so `conclave` with no flags starts a
/// single-member cluster with data in `./data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Human-readable member name. Default `default`.
    pub name: String,
    /// Data directory (Raft log, state machine, snapshots). Default `./data`.
    pub data_dir: PathBuf,
    /// Comma-separated URLs to serve the etcd client API on. Default `http://localhost:2379`.
    pub listen_client_urls: String,
    /// Client URLs advertised to the cluster. Default: the listen client URLs.
    pub advertise_client_urls: String,
    /// URL to serve the Raft peer transport on. Default `http://localhost:2380`.
    pub listen_peer_urls: String,
    /// Comma-separated URLs of extra plain-HTTP listeners serving only `/metrics` (etcd's
    /// `--listen-metrics-urls`). `/metrics` is served on the client URLs regardless.
    /// Default empty (none).
    pub listen_metrics_urls: String,
    /// Peer URLs advertised to the cluster. Default: the listen peer URLs.
    pub initial_advertise_peer_urls: String,
    /// Initial members `name=peerURL,...`. Default: this member alone.
    pub initial_cluster: String,
    /// `new` (bootstrap a cluster) or `existing` (this member was added to a running one).
    /// Default `new`.
    pub initial_cluster_state: String,
    /// Cluster token; members of one cluster share it. Default `etcd-cluster`.
    pub initial_cluster_token: String,
    /// Comma-separated client or peer URLs of running members to join through (Conclave's
    /// addition): the node is added as a learner and promoted once caught up. Default empty.
    pub join: String,
    /// Applied entries between state-machine snapshots. Default 10000.
    pub snapshot_count: u64,
    /// Log entries kept behind a snapshot for slow followers. Default 5000.
    pub snapshot_catchup_entries: u64,
    /// Raft heartbeat interval in milliseconds. Default 100.
    pub heartbeat_interval: u64,
    /// Raft election timeout in milliseconds. Default 1000.
    pub election_timeout: u64,
    /// Largest client request in bytes. Default 1572864 (1.5 MiB, as etcd).
    pub max_request_bytes: usize,
    /// Most operations in one txn branch. Default 128.
    pub max_txn_ops: usize,
    /// Live-data size in bytes past which a NOSPACE alarm is raised and writes are
    /// refused (0 = no quota). Default 2147483648 (2 GiB, as etcd).
    pub quota_backend_bytes: u64,
    /// How long a request may wait for a leader, commit or read index, in milliseconds.
    /// Default 5000.
    pub request_timeout: u64,
    /// State-machine page cache budget in bytes. Default 268435456 (256 MiB).
    pub cache_bytes: u64,
    /// How often the leader checkpoints remaining lease TTLs through Raft, so a new
    /// leader continues each countdown, in milliseconds. Default 5000.
    pub lease_checkpoint_interval: u64,
    /// Interval of watch progress notifications, in milliseconds. Default 600000 (10 min,
    /// as etcd).
    pub watch_progress_notify_interval: u64,
    /// How long a watch stream may go without the client reading before it is ended, in
    /// milliseconds. Default 10000.
    pub watch_slow_client_timeout: u64,
    /// On a fresh data dir, start a new cluster from this snapshot file (as saved by
    /// `etcdctl snapshot save` from a Conclave member). Default empty (none).
    pub restore_snapshot: String,
    /// How long an auth token is valid, in seconds (etcd's `--auth-token-ttl`). Default 300.
    pub auth_token_ttl: u64,
    /// bcrypt cost of password hashes, 4 to 31 (etcd's `--bcrypt-cost`). Default 10.
    pub bcrypt_cost: u32,
    /// etcd's `--auth-token` (`simple` or `jwt,...`): accepted so etcd command lines keep
    /// working; Conclave always issues HS256 tokens signed by a key replicated through
    /// Raft, valid on every member (docs/security.md). Default `simple`.
    pub auth_token: String,
    /// Log filter (`tracing` env-filter syntax). Default `info`.
    pub log_level: String,
    /// Client-port TLS certificate (PEM, leaf first), used for `https://` listen client
    /// URLs; re-read when the file changes. Default empty (none).
    pub cert_file: String,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1). Default empty.
    pub key_file: String,
    /// CAs that client certificates are verified against (PEM). Default empty.
    pub trusted_ca_file: String,
    /// Refuse, at the handshake, clients without a certificate signed by
    /// `trusted_ca_file` (mTLS). Default false.
    pub client_cert_auth: bool,
    /// Serve `https://` client URLs with a self-signed certificate generated in
    /// `<data-dir>/fixtures/client` when no `cert_file` is given. Default false.
    pub auto_tls: bool,
    /// Peer-port TLS certificate (PEM), for `https://` peer URLs; also presented as this
    /// member's client certificate when it dials other members. Default empty.
    pub peer_cert_file: String,
    /// Its private key. Default empty.
    pub peer_key_file: String,
    /// CAs that members' certificates (server and client side) are verified against.
    /// Default empty.
    pub peer_trusted_ca_file: String,
    /// Refuse peer connections without a certificate signed by `peer_trusted_ca_file`.
    /// Default false.
    pub peer_client_cert_auth: bool,
    /// Peer TLS with a self-signed certificate in `<data-dir>/fixtures/peer`; members
    /// then do not verify each other's certificates (as etcd's). Default false.
    pub peer_auto_tls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".into(),
            data_dir: PathBuf::from("./data"),
            listen_client_urls: "http://localhost:2379".into(),
            advertise_client_urls: String::new(),
            listen_peer_urls: "http://localhost:2380".into(),
            listen_metrics_urls: String::new(),
            initial_advertise_peer_urls: String::new(),
            initial_cluster: String::new(),
            initial_cluster_state: "new".into(),
            initial_cluster_token: "etcd-cluster".into(),
            join: String::new(),
            snapshot_count: 10_000,
            snapshot_catchup_entries: 5_000,
            heartbeat_interval: 100,
            election_timeout: 1000,
            max_request_bytes: 1_572_864,
            max_txn_ops: 128,
            quota_backend_bytes: 2 * 1024 * 1024 * 1024,
            request_timeout: 5_000,
            cache_bytes: 256 * 1024 * 1024,
            lease_checkpoint_interval: 5_000,
            watch_progress_notify_interval: 600_000,
            watch_slow_client_timeout: 10_000,
            restore_snapshot: String::new(),
            auth_token_ttl: 300,
            bcrypt_cost: 10,
            auth_token: "simple".into(),
            log_level: "info".into(),
            cert_file: String::new(),
            key_file: String::new(),
            trusted_ca_file: String::new(),
            client_cert_auth: false,
            auto_tls: false,
            peer_cert_file: String::new(),
            peer_key_file: String::new(),
            peer_trusted_ca_file: String::new(),
            peer_client_cert_auth: false,
            peer_auto_tls: false,
        }
    }
}

/// Command-line flags (etcd's names). Each overrides the same-named setting.
#[derive(Debug, Default, Parser)]
#[command(
    name = "conclave",
    version,
    about = "Conclave storage node: Raft-replicated, etcd v3 API compatible"
)]
pub struct Flags {
    /// Configuration file (TOML). Default: ./conclave.toml if it exists.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Member name.
    #[arg(long)]
    pub name: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// URLs to serve the etcd client API on.
    #[arg(long)]
    pub listen_client_urls: Option<String>,
    /// Client URLs advertised to the cluster.
    #[arg(long)]
    pub advertise_client_urls: Option<String>,
    /// URL to serve the Raft peer transport on.
    #[arg(long)]
    pub listen_peer_urls: Option<String>,
    /// Extra URLs serving only /metrics over plain HTTP (also on the client URLs).
    #[arg(long)]
    pub listen_metrics_urls: Option<String>,
    /// Peer URLs advertised to the cluster.
    #[arg(long)]
    pub initial_advertise_peer_urls: Option<String>,
    /// Initial members, `name=peerURL,...`.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// `new` or `existing`.
    #[arg(long)]
    pub initial_cluster_state: Option<String>,
    /// Cluster token.
    #[arg(long)]
    pub initial_cluster_token: Option<String>,
    /// Join a running cluster through these member URLs.
    #[arg(long)]
    pub join: Option<String>,
    /// Applied entries between snapshots.
    #[arg(long)]
    pub snapshot_count: Option<u64>,
    /// Log entries kept behind a snapshot.
    #[arg(long)]
    pub snapshot_catchup_entries: Option<u64>,
    /// Heartbeat interval (ms).
    #[arg(long)]
    pub heartbeat_interval: Option<u64>,
    /// Election timeout (ms).
    #[arg(long)]
    pub election_timeout: Option<u64>,
    /// Largest client request (bytes).
    #[arg(long)]
    pub max_request_bytes: Option<usize>,
    /// Most operations per txn branch.
    #[arg(long)]
    pub max_txn_ops: Option<usize>,
    /// Backend quota in bytes (0 = none).
    #[arg(long)]
    pub quota_backend_bytes: Option<u64>,
    /// Request timeout (ms).
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// State-machine cache budget (bytes).
    #[arg(long)]
    pub cache_bytes: Option<u64>,
    /// Lease checkpoint interval (ms).
    #[arg(long)]
    pub lease_checkpoint_interval: Option<u64>,
    /// Watch progress notification interval (ms).
    #[arg(long)]
    pub watch_progress_notify_interval: Option<u64>,
    /// Watch slow-client timeout (ms).
    #[arg(long)]
    pub watch_slow_client_timeout: Option<u64>,
    /// Start a new cluster from this snapshot file (fresh data dir only).
    #[arg(long)]
    pub restore_snapshot: Option<String>,
    /// Auth token lifetime (s).
    #[arg(long)]
    pub auth_token_ttl: Option<u64>,
    /// bcrypt cost of password hashes (4-31).
    #[arg(long)]
    pub bcrypt_cost: Option<u32>,
    /// etcd's token type (`simple` or `jwt,...`); Conclave's tokens are always signed.
    #[arg(long)]
    pub auth_token: Option<String>,
    /// Log filter.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Client TLS certificate file (PEM), for https:// client URLs.
    #[arg(long)]
    pub cert_file: Option<String>,
    /// Client TLS key file (PEM).
    #[arg(long)]
    pub key_file: Option<String>,
    /// CA file that client certificates are verified against.
    #[arg(long)]
    pub trusted_ca_file: Option<String>,
    /// Require client certificates signed by --trusted-ca-file (`--client-cert-auth` or
    /// `--client-cert-auth=true|false`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub client_cert_auth: Option<bool>,
    /// Self-signed client TLS certificate, generated at start.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub auto_tls: Option<bool>,
    /// Peer TLS certificate file (PEM), for https:// peer URLs.
    #[arg(long)]
    pub peer_cert_file: Option<String>,
    /// Peer TLS key file (PEM).
    #[arg(long)]
    pub peer_key_file: Option<String>,
    /// CA file that members' certificates are verified against.
    #[arg(long)]
    pub peer_trusted_ca_file: Option<String>,
    /// Require peer client certificates signed by --peer-trusted-ca-file.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_client_cert_auth: Option<bool>,
    /// Self-signed peer TLS certificate, generated at start (members do not verify).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub peer_auto_tls: Option<bool>,
}

/// A configuration that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layered sources could not be read or merged.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A setting has an unusable value.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration, with `flags` on top.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        builder = match &flags.config_file {
            Some(path) => builder.add_source(config::File::from(path.as_path()).required(true)),
            None => builder.add_source(config::File::with_name("conclave.toml").required(false)),
        };
        builder = builder
            .add_source(
                config::Environment::with_prefix("ETCD")
                    .prefix_separator("_")
                    .try_parsing(true),
            )
            .add_source(
                config::Environment::with_prefix("CONCLAVE")
                    .prefix_separator("_")
                    .try_parsing(true),
            );
        macro_rules! flag {
            ($($field:ident),*) => {$(
                if let Some(value) = &flags.$field {
                    builder = builder.set_override(stringify!($field), value.to_string())?;
                }
            )*};
        }
        flag!(
            name,
            data_dir,
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            listen_metrics_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state,
            initial_cluster_token,
            join,
            snapshot_count,
            snapshot_catchup_entries,
            heartbeat_interval,
            election_timeout,
            max_request_bytes,
            max_txn_ops,
            quota_backend_bytes,
            request_timeout,
            cache_bytes,
            lease_checkpoint_interval,
            watch_progress_notify_interval,
            watch_slow_client_timeout,
            restore_snapshot,
            auth_token_ttl,
            bcrypt_cost,
            auth_token,
            log_level,
            cert_file,
            key_file,
            trusted_ca_file,
            client_cert_auth,
            auto_tls,
            peer_cert_file,
            peer_key_file,
            peer_trusted_ca_file,
            peer_client_cert_auth,
            peer_auto_tls
        );
        Ok(builder.build()?.try_deserialize()?)
    }

    /// Advertised client URLs (the listen URLs unless set).
    pub fn client_urls(&self) -> Vec<String> {
        split_urls(non_empty(&self.advertise_client_urls, &self.listen_client_urls))
    }

    /// Advertised peer URLs (the listen URL unless set).
    pub fn peer_urls(&self) -> Vec<String> {
        split_urls(non_empty(
            &self.initial_advertise_peer_urls,
            &self.listen_peer_urls,
        ))
    }

    /// Socket addresses to serve the client API on, each with whether it is `https://`.
    pub fn client_listen_addrs(&self) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
        split_urls(&self.listen_client_urls)
            .iter()
            .map(|u| listen_addr(u, "--listen-client-urls", true))
            .collect()
    }

    /// Socket addresses to serve the peer transport on, each with whether it is `https://`.
    pub fn peer_listen_addrs(&self) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
        split_urls(&self.listen_peer_urls)
            .iter()
            .map(|u| listen_addr(u, "--listen-peer-urls", true))
            .collect()
    }

    /// Socket addresses of the extra `/metrics` listeners (none by default; plain HTTP
    /// only, as etcd's).
    pub fn metrics_listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        split_urls(&self.listen_metrics_urls)
            .iter()
            .map(|u| listen_addr(u, "--listen-metrics-urls", false).map(|(addr, _)| addr))
            .collect()
    }

    /// The authentication settings (`--auth-token-ttl`, `--bcrypt-cost`, `--auth-token`).
    pub fn auth_settings(&self) -> Result<crate::auth::AuthSettings, ConfigError> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::Invalid(format!(
                "--bcrypt-cost must be between 4 and 31, not {}",
                self.bcrypt_cost
            )));
        }
        if self.auth_token_ttl == 0 {
            return Err(ConfigError::Invalid(
                "--auth-token-ttl must be at least 1 second".into(),
            ));
        }
        let kind = self.auth_token.split(',').next().unwrap_or_default();
        if !matches!(kind, "simple" | "jwt") {
            return Err(ConfigError::Invalid(format!(
                "--auth-token must be simple or jwt,... (as etcd), not {:?}",
                self.auth_token
            )));
        }
        Ok(crate::auth::AuthSettings {
            token_ttl: Duration::from_secs(self.auth_token_ttl),
            bcrypt_cost: self.bcrypt_cost,
            cert_users: self.client_cert_auth,
        })
    }

    /// The consensus configuration these settings describe.
    pub fn node_config(&self) -> Result<NodeConfig, ConfigError> {
        let peer_urls = self.peer_urls();
        let initial_cluster = if self.initial_cluster.trim().is_empty() {
            let url = peer_urls.first().cloned().unwrap_or_default();
            vec![(self.name.clone(), url)]
        } else {
            parse_initial_cluster(&self.initial_cluster)?
        };
        let bootstrap = if !self.join.trim().is_empty() {
            Bootstrap::Join(split_urls(&self.join))
        } else {
            match self.initial_cluster_state.as_str() {
                "new" => Bootstrap::New,
                "existing" => Bootstrap::Existing,
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "--initial-cluster-state must be new or existing, not {other:?}"
                    )))
                }
            }
        };
        // Outgoing peer connections leave from the IP the peer port listens on, when that
        // is one specific address.
        let peer_source_ip = match self.peer_listen_addrs()?.as_slice() {
            [(addr, _)] if !addr.ip().is_unspecified() => Some(addr.ip()),
            _ => None,
        };
        if self.election_timeout < self.heartbeat_interval * 5 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout ({} ms) must be at least 5 times --heartbeat-interval ({} ms)",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        Ok(NodeConfig {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            peer_urls,
            client_urls: self.client_urls(),
            initial_cluster,
            cluster_token: self.initial_cluster_token.clone(),
            bootstrap,
            peer_source_ip,
            // Attached by `start` (`tls::peer_client`), which reads the files.
            peer_tls: None,
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            request_timeout: Duration::from_millis(self.request_timeout),
            cache_bytes: self.cache_bytes,
            lease_checkpoint_interval: Duration::from_millis(self.lease_checkpoint_interval.max(100)),
            restore_snapshot: (!self.restore_snapshot.trim().is_empty())
                .then(|| PathBuf::from(&self.restore_snapshot)),
            // Attached by `start`, which owns the registry they are exported from.
            metrics: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_start_a_single_member_cluster_in_data() {
        let config = Config::default();
        let node = config.node_config().unwrap();
        assert_eq!(node.data_dir, PathBuf::from("./data"));
        assert_eq!(node.bootstrap, Bootstrap::New);
        assert_eq!(
            node.initial_cluster,
            vec![("default".to_string(), "http://localhost:2380".to_string())]
        );
        assert_eq!(config.client_urls(), vec!["http://localhost:2379".to_string()]);
    }

    #[test]
    fn flags_override_and_initial_cluster_parses() {
        let flags = Flags::parse_from([
            "conclave",
            "--name",
            "n2",
            "--initial-cluster",
            "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2",
            "--listen-peer-urls",
            "http://127.0.0.12:2380",
            "--snapshot-count",
            "50",
        ]);
        let config = Config::load(&flags).unwrap();
        assert_eq!(config.name, "n2");
        assert_eq!(config.snapshot_count, 50);
        let node = config.node_config().unwrap();
        assert_eq!(node.initial_cluster.len(), 2);
        assert_eq!(node.peer_source_ip, Some("127.0.0.12".parse().unwrap()));
    }

    #[test]
    fn auth_settings_take_etcds_flags_and_refuse_nonsense() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["conclave"];
            argv.extend_from_slice(args);
            Config::load(&Flags::parse_from(argv))
                .expect("flags load")
                .auth_settings()
        };
        let settings = parse(&["--auth-token-ttl", "7", "--bcrypt-cost", "4"]).expect("valid");
        assert_eq!(settings.token_ttl, Duration::from_secs(7));
        assert_eq!(settings.bcrypt_cost, 4);
        assert!(parse(&["--auth-token", "jwt,pub-key=a,priv-key=b"]).is_ok());
        for bad in [
            &["--bcrypt-cost", "3"][..],
            &["--bcrypt-cost", "32"],
            &["--auth-token-ttl", "0"],
            &["--auth-token", "oauth"],
        ] {
            let err = parse(bad).expect_err("refused");
            assert!(err.to_string().contains(bad[0]), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/conclave.example.toml");
        let flags = Flags {
            config_file: Some(PathBuf::from(path)),
            ..Flags::default()
        };
        let loaded = Config::load(&flags).unwrap();
        let defaults = Config::default();
        assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        let config = Config {
            initial_cluster: "n1".into(),
            ..Config::default()
        };
        assert!(config
            .node_config()
            .unwrap_err()
            .to_string()
            .contains("name=peerURL"));
        let config = Config {
            initial_cluster_state: "old".into(),
            ..Config::default()
        };
        assert!(config
            .node_config()
            .unwrap_err()
            .to_string()
            .contains("new or existing"));
        let config = Config {
            listen_peer_urls: "unix://x:1".into(),
            ..Config::default()
        };
        assert!(config.node_config().is_err());
        let config = Config {
            listen_metrics_urls: "https://127.0.0.1:2381".into(),
            ..Config::default()
        };
        assert!(config
            .metrics_listen_addrs()
            .unwrap_err()
            .to_string()
            .contains("--listen-metrics-urls"));
    }

    #[test]
    fn metrics_listeners_are_optional_and_parse_from_the_flag() {
        assert!(Config::default().metrics_listen_addrs().unwrap().is_empty());
        let flags = Flags::parse_from([
            "conclave",
            "--listen-metrics-urls",
            "http://127.0.0.1:2381,http://127.0.0.2:2381",
        ]);
        let config = Config::load(&flags).unwrap();
        assert_eq!(
            config.metrics_listen_addrs().unwrap(),
            vec![
                "127.0.0.1:2381".parse::<SocketAddr>().unwrap(),
                "127.0.0.2:2381".parse().unwrap()
            ]
        );
    }
}
