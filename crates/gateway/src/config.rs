//! The gateway's configuration: one struct, loaded in one place.
//!
//! Layering, lowest to highest: built-in defaults < `conclave-gateway.toml` (or
//! `--config-file`) < `CONCLAVE_GATEWAY_*` environment < command-line flags, as the
//! node's configuration. Durations are whole milliseconds, as the node's are.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use conclave_client::tls::TlsFlags;
use serde::Deserialize;

/// The gateway configuration. Every field has a default, so `conclave-gateway` with no
/// flags serves `127.0.0.1:8080` in front of a node on `127.0.0.1:2379`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve HTTP on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Comma-separated client URLs of the cluster's members. Default `127.0.0.1:2379`.
    pub endpoints: String,
    /// How long a request may take before it is answered 504 `timeout`, in milliseconds
    /// (streams and long polls are bounded by their own timeouts). Default 10000.
    pub request_timeout: u64,
    /// Largest request body in bytes; larger ones are answered 413 `too_large`. Default
    /// 4194304 (4 MiB: a 1.5 MiB etcd request grows by a third in base64, plus JSON).
    pub max_body_bytes: usize,
    /// After SIGTERM, how long to wait for in-flight requests and streams before exiting,
    /// in milliseconds. Default 10000.
    pub drain_timeout: u64,
    /// After SIGTERM, how long `/readyz` answers 404 before the listener closes, so load
    /// balancers take the gateway out of rotation first, in milliseconds. Default 2000.
    pub drain_delay: u64,
    /// How long `/readyz` waits for a linearizable read, in milliseconds. Default 1000.
    pub ready_budget: u64,
    /// How long a `/readyz` result is reused, in milliseconds. Default 250.
    pub ready_cache: u64,
    /// Interval of SSE keep-alive comments, in milliseconds. Default 15000.
    pub sse_keep_alive: u64,
    /// Longest long poll (election campaign, lock) a client may ask for, in milliseconds.
    /// Default 50000: below the 60 s upstream timeouts of deploy/haproxy and deploy/nginx,
    /// so a balancer never cuts a long poll the gateway may still win.
    pub max_poll_timeout: u64,
    /// Log filter (`tracing` env-filter syntax). Default `info`.
    pub log_level: String,
    /// Towards the members: the CA bundle (PEM) their certificates must chain to, as
    /// etcdctl's `--cacert`; TLS is then used for endpoints without a scheme. Default
    /// empty (none).
    pub cacert: String,
    /// Towards the members: the client certificate (PEM) presented to members run with
    /// `--client-cert-auth`. Default empty.
    pub cert: String,
    /// Its private key (PEM). Default empty.
    pub key: String,
    /// Towards the members: accept any certificate (members run with `--auto-tls`).
    /// Default false.
    pub insecure_skip_tls_verify: bool,
    /// Towards the members: plaintext for scheme-less endpoints when no other TLS option
    /// is set; false uses TLS with the system CAs (etcdctl's flag). Default true.
    pub insecure_transport: bool,
    /// The gateway's own listener: serve HTTPS with this certificate (PEM, leaf first),
    /// re-read when the file changes. Default empty (plain HTTP).
    pub tls_cert: String,
    /// Its private key (PEM). Default empty.
    pub tls_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            endpoints: "127.0.0.1:2379".into(),
            request_timeout: 10_000,
            max_body_bytes: 4 * 1024 * 1024,
            drain_timeout: 10_000,
            drain_delay: 2_000,
            ready_budget: 1_000,
            ready_cache: 250,
            sse_keep_alive: 15_000,
            max_poll_timeout: 50_000,
            log_level: "info".into(),
            cacert: String::new(),
            cert: String::new(),
            key: String::new(),
            insecure_skip_tls_verify: false,
            insecure_transport: true,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// Command-line flags. Each overrides the same-named setting.
#[derive(Debug, Default, Parser)]
#[command(
    name = "conclave-gateway",
    version,
    about = "Conclave HTTP gateway: REST/JSON, etcd JSON paths and SSE watches in front of a cluster"
)]
pub struct Flags {
    /// Configuration file (TOML). Default: ./conclave-gateway.toml if it exists.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Address to serve HTTP on (host:port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Client URLs of the cluster's members, comma separated.
    #[arg(long)]
    pub endpoints: Option<String>,
    /// Request timeout (ms).
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Largest request body (bytes).
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Drain timeout after SIGTERM (ms).
    #[arg(long)]
    pub drain_timeout: Option<u64>,
    /// Delay between failing /readyz and closing the listener after SIGTERM (ms).
    #[arg(long)]
    pub drain_delay: Option<u64>,
    /// Budget of the /readyz linearizable read (ms).
    #[arg(long)]
    pub ready_budget: Option<u64>,
    /// How long a /readyz result is reused (ms).
    #[arg(long)]
    pub ready_cache: Option<u64>,
    /// SSE keep-alive comment interval (ms).
    #[arg(long)]
    pub sse_keep_alive: Option<u64>,
    /// Longest long poll a client may ask for (ms).
    #[arg(long)]
    pub max_poll_timeout: Option<u64>,
    /// Log filter.
    #[arg(long)]
    pub log_level: Option<String>,
    /// CA bundle (PEM) the members' certificates must chain to (TLS towards the members).
    #[arg(long)]
    pub cacert: Option<String>,
    /// Client certificate (PEM) presented to the members.
    #[arg(long)]
    pub cert: Option<String>,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: Option<String>,
    /// Accept any member certificate (members run with --auto-tls).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure_skip_tls_verify: Option<bool>,
    /// Plaintext towards scheme-less endpoints unless TLS options are given (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure_transport: Option<bool>,
    /// Serve HTTPS with this certificate (PEM); re-read when it changes.
    #[arg(long)]
    pub tls_cert: Option<String>,
    /// The HTTPS certificate's private key (PEM).
    #[arg(long)]
    pub tls_key: Option<String>,
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
            None => builder.add_source(config::File::with_name("conclave-gateway.toml").required(false)),
        };
        builder = builder.add_source(
            config::Environment::with_prefix("CONCLAVE_GATEWAY")
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
            listen,
            endpoints,
            request_timeout,
            max_body_bytes,
            drain_timeout,
            drain_delay,
            ready_budget,
            ready_cache,
            sse_keep_alive,
            max_poll_timeout,
            log_level,
            cacert,
            cert,
            key,
            insecure_skip_tls_verify,
            insecure_transport,
            tls_cert,
            tls_key
        );
        let config: Config = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.endpoint_list().is_empty() {
            return Err(ConfigError::Invalid(
                "--endpoints is empty: give the client URLs of the cluster's members".into(),
            ));
        }
        if self.request_timeout == 0 {
            return Err(ConfigError::Invalid("--request-timeout must be positive".into()));
        }
        let pairs = [
            (("--cert", &self.cert), ("--key", &self.key)),
            (("--tls-cert", &self.tls_cert), ("--tls-key", &self.tls_key)),
        ];
        for ((cert_flag, cert), (key_flag, key)) in pairs {
            let (given, missing) = match (cert.trim().is_empty(), key.trim().is_empty()) {
                (false, true) => (cert_flag, key_flag),
                (true, false) => (key_flag, cert_flag),
                _ => continue,
            };
            return Err(ConfigError::Invalid(format!(
                "{given} is set but {missing} is not: give the certificate and its key together"
            )));
        }
        Ok(())
    }

    /// The socket address to serve on (`host:port`; a name resolves, IPv4 preferred).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let text = self
            .listen
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        if let Ok(addr) = text.parse() {
            return Ok(addr);
        }
        let invalid = |why: String| {
            ConfigError::Invalid(format!("--listen {:?} is not host:port ({why})", self.listen))
        };
        let addrs: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| invalid(e.to_string()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| invalid("it resolves to no address".into()))
    }

    /// The member client URLs.
    pub fn endpoint_list(&self) -> Vec<String> {
        self.endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect()
    }

    /// [`Config::request_timeout`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout)
    }

    /// [`Config::drain_timeout`] as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout)
    }

    /// [`Config::drain_delay`] as a duration.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay)
    }

    /// [`Config::ready_budget`] as a duration.
    pub fn ready_budget(&self) -> Duration {
        Duration::from_millis(self.ready_budget)
    }

    /// [`Config::ready_cache`] as a duration.
    pub fn ready_cache(&self) -> Duration {
        Duration::from_millis(self.ready_cache)
    }

    /// [`Config::sse_keep_alive`] as a duration.
    pub fn sse_keep_alive(&self) -> Duration {
        Duration::from_millis(self.sse_keep_alive.max(100))
    }

    /// The TLS options towards the members, as etcdctl's flags.
    pub fn member_tls(&self) -> TlsFlags {
        let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value.trim()));
        TlsFlags {
            cacert: path(&self.cacert),
            identity: path(&self.cert).zip(path(&self.key)),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            insecure_transport: self.insecure_transport,
        }
    }

    /// The listener's certificate and key files, when HTTPS is configured.
    pub fn listener_tls(&self) -> Option<(PathBuf, PathBuf)> {
        let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value.trim()));
        path(&self.tls_cert).zip(path(&self.tls_key))
    }

    /// [`Config::max_poll_timeout`] as a duration.
    pub fn max_poll_timeout(&self) -> Duration {
        Duration::from_millis(self.max_poll_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let flags = Flags {
            listen: Some("127.0.0.1:9999".into()),
            endpoints: Some("a:1, b:2".into()),
            drain_delay: Some(100),
            ..Flags::default()
        };
        let config = Config::load(&flags).unwrap();
        assert_eq!(config.listen_addr().unwrap().port(), 9999);
        assert_eq!(config.endpoint_list(), vec!["a:1", "b:2"]);
        assert_eq!(config.drain_delay(), Duration::from_millis(100));
        assert_eq!(config.request_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn tls_options_parse_and_pairs_are_checked() {
        use clap::Parser;
        let flags = Flags::parse_from([
            "conclave-gateway",
            "--cacert",
            "/ca.pem",
            "--cert",
            "/c.pem",
            "--key",
            "/k.pem",
            "--tls-cert",
            "/gw.pem",
            "--tls-key",
            "/gw-key.pem",
            "--insecure-transport=false",
        ]);
        let config = Config::load(&flags).unwrap();
        let tls = config.member_tls();
        assert_eq!(tls.cacert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            tls.identity,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert!(!tls.insecure_transport && !tls.insecure_skip_tls_verify);
        assert_eq!(
            config.listener_tls(),
            Some((PathBuf::from("/gw.pem"), PathBuf::from("/gw-key.pem")))
        );
        let half = Flags::parse_from(["conclave-gateway", "--tls-cert", "/gw.pem"]);
        let error = Config::load(&half).unwrap_err().to_string();
        assert!(
            error.contains("--tls-cert") && error.contains("--tls-key"),
            "{error}"
        );
        let half = Flags::parse_from(["conclave-gateway", "--key", "/k.pem"]);
        let error = Config::load(&half).unwrap_err().to_string();
        assert!(error.contains("--key is set but --cert"), "{error}");
    }

    #[test]
    fn a_bad_listen_address_is_refused() {
        let flags = Flags {
            listen: Some("nonsense".into()),
            ..Flags::default()
        };
        assert!(Config::load(&flags).is_err());
    }
}
