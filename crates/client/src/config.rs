//! Client and candidate settings from a file, with environment overrides, through the
//! `config` crate (as the Conclave binaries read theirs).
//!
//! The file is TOML or JSON (by its extension). Every field is optional and defaults to
//! [`ClientOptions::default`]'s value; durations are whole milliseconds:
//!
//! ```toml
//! endpoints = ["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"]
//! connect_timeout = 2000
//! request_timeout = 5000
//! retry_budget = 15000
//! keep_alive_interval = 2000
//! keep_alive_timeout = 2000
//! lease_safety_margin = 1000
//! session_ttl = 10000
//! user = "scheduler"
//! password = "s3cret"
//!
//! [tls]
//! ca = "/etc/conclave/ca.pem"
//! cert = "/etc/conclave/scheduler.pem"
//! key = "/etc/conclave/scheduler-key.pem"
//!
//! [candidate]
//! id = "node-a"
//! address = "10.0.0.7:8080"
//! lease_ttl = 10000
//! cooldown = 5000
//! metadata = { zone = "b" }
//! ```
//!
//! Environment variables override the file: `CONCLAVE_CLIENT_` and the field's name in
//! capitals, `__` between nested names: `CONCLAVE_CLIENT_ENDPOINTS=a:2379,b:2379`,
//! `CONCLAVE_CLIENT_REQUEST_TIMEOUT=3000`, `CONCLAVE_CLIENT_CANDIDATE__ID=node-b`,
//! `CONCLAVE_CLIENT_TLS__CA=/etc/ca.pem`.
//!
//! ```no_run
//! # async fn demo() -> conclave_client::Result<()> {
//! use conclave_client::{config::ClientConfig, Candidate, ElectionHooks};
//!
//! struct Quiet;
//! impl ElectionHooks for Quiet {}
//!
//! let config = ClientConfig::load(Some("/etc/scheduler/conclave.toml".as_ref()))?;
//! let client = config.connect().await?;
//! let candidate = Candidate::new(client.election("/election/scheduler"), "node-a")
//!     .settings(&config.candidate)
//!     .start(Quiet)?;
//! # drop(candidate); Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::election::CandidateSettings;
use crate::error::{Error, Result};
use crate::{Client, ClientOptions, Credentials, Tls, TlsSettings};

/// The environment prefix of [`ClientConfig::load`].
pub const ENV_PREFIX: &str = "CONCLAVE_CLIENT";

/// TLS files of a [`ClientConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA bundle member certificates must chain to (default: the system's).
    pub ca: Option<PathBuf>,
    /// The client certificate (with `key`), for clusters with `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    pub key: Option<PathBuf>,
    /// The name to verify member certificates against, instead of the endpoint's host.
    pub server_name: Option<String>,
    /// Accept any member certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// Everything a client (and a candidate) can be configured with; see the
/// [module docs](self) for the file format.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// The members' client URLs. Default `["127.0.0.1:2379"]`.
    pub endpoints: Vec<String>,
    /// [`ClientOptions::connect_timeout`], ms.
    pub connect_timeout: u64,
    /// [`ClientOptions::request_timeout`], ms.
    pub request_timeout: u64,
    /// [`ClientOptions::retry_budget`], ms.
    pub retry_budget: u64,
    /// [`ClientOptions::backoff_base`], ms.
    pub backoff_base: u64,
    /// [`ClientOptions::backoff_max`], ms.
    pub backoff_max: u64,
    /// [`ClientOptions::keep_alive_interval`], ms.
    pub keep_alive_interval: u64,
    /// [`ClientOptions::keep_alive_timeout`], ms.
    pub keep_alive_timeout: u64,
    /// [`ClientOptions::lease_safety_margin`], ms.
    pub lease_safety_margin: u64,
    /// [`ClientOptions::session_ttl`], ms.
    pub session_ttl: u64,
    /// The user to log in as (with `password`); none by default.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// TLS towards the members; none by default.
    pub tls: Option<TlsFiles>,
    /// Settings of a [`crate::Candidate`] built with [`crate::Candidate::settings`].
    pub candidate: CandidateSettings,
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Default for ClientConfig {
    fn default() -> Self {
        let defaults = ClientOptions::default();
        ClientConfig {
            endpoints: vec!["127.0.0.1:2379".into()],
            connect_timeout: ms(defaults.connect_timeout),
            request_timeout: ms(defaults.request_timeout),
            retry_budget: ms(defaults.retry_budget),
            backoff_base: ms(defaults.backoff_base),
            backoff_max: ms(defaults.backoff_max),
            keep_alive_interval: ms(defaults.keep_alive_interval),
            keep_alive_timeout: ms(defaults.keep_alive_timeout),
            lease_safety_margin: ms(defaults.lease_safety_margin),
            session_ttl: ms(defaults.session_ttl),
            user: None,
            password: None,
            tls: None,
            candidate: CandidateSettings::default(),
        }
    }
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::Config {
        message: message.to_string(),
    }
}

impl ClientConfig {
    /// Reads `file` (if given) and then the `CONCLAVE_CLIENT_*` environment.
    pub fn load(file: Option<&Path>) -> Result<ClientConfig> {
        ClientConfig::load_with_env(file, ENV_PREFIX)
    }

    /// [`ClientConfig::load`] with another environment prefix.
    pub fn load_with_env(file: Option<&Path>, env_prefix: &str) -> Result<ClientConfig> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(env_prefix)
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("endpoints")
                // Values stay strings (a password "0123" is not a number); numbers are
                // read from them when the fields are.
                .try_parsing(false),
        );
        let loaded = builder.build().map_err(invalid)?;
        let config: ClientConfig = loaded.try_deserialize().map_err(invalid)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(invalid("endpoints: at least one is needed"));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("retry_budget", self.retry_budget),
            ("keep_alive_interval", self.keep_alive_interval),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("session_ttl", self.session_ttl),
        ] {
            if value == 0 {
                return Err(invalid(format!("{name}: must be more than 0 ms")));
            }
        }
        if self.password.is_some() && self.user.is_none() {
            return Err(invalid("password: given without a user"));
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                return Err(invalid("tls: cert and key go together"));
            }
        }
        if self.candidate.lease_ttl == Some(0) {
            return Err(invalid("candidate.lease_ttl: must be more than 0 ms"));
        }
        Ok(())
    }

    /// The [`ClientOptions`] these settings describe (reads and checks the TLS files).
    pub fn options(&self) -> Result<ClientOptions> {
        let mut options = ClientOptions {
            connect_timeout: Duration::from_millis(self.connect_timeout),
            request_timeout: Duration::from_millis(self.request_timeout),
            retry_budget: Duration::from_millis(self.retry_budget),
            backoff_base: Duration::from_millis(self.backoff_base),
            backoff_max: Duration::from_millis(self.backoff_max),
            keep_alive_interval: Duration::from_millis(self.keep_alive_interval),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout),
            lease_safety_margin: Duration::from_millis(self.lease_safety_margin),
            session_ttl: Duration::from_millis(self.session_ttl),
            credentials: self
                .user
                .as_ref()
                .map(|user| Credentials::new(user.clone(), self.password.clone().unwrap_or_default())),
            tls: None,
        };
        if let Some(files) = &self.tls {
            let mut settings = TlsSettings::new().insecure_skip_verify(files.insecure_skip_verify);
            if let Some(ca) = &files.ca {
                settings = settings.ca_file(ca.clone());
            }
            if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
                settings = settings.identity_files(cert.clone(), key.clone());
            }
            if let Some(name) = &files.server_name {
                settings = settings.server_name(name.clone());
            }
            options = options.tls(Tls::new(settings)?);
        }
        Ok(options)
    }

    /// Connects with these settings.
    pub async fn connect(&self) -> Result<Client> {
        Client::connect_with(&self.endpoints, self.options()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_the_environment_make_the_settings() {
        let dir = std::env::temp_dir().join(format!("conclave-client-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.toml");
        std::fs::write(
            &file,
            "endpoints = [\"a:1\", \"b:2\"]\nrequest_timeout = 1234\n[candidate]\nid = \"node-a\"\ncooldown = 700\nmetadata = { zone = \"b\" }\n",
        )
        .unwrap();
        // SAFETY (of the test): this prefix is used by no other test.
        std::env::set_var("CCTEST_A_CANDIDATE__ID", "node-b");
        std::env::set_var("CCTEST_A_SESSION_TTL", "4000");
        std::env::set_var("CCTEST_A_USER", "app");
        std::env::set_var("CCTEST_A_PASSWORD", "0123");
        let config = ClientConfig::load_with_env(Some(&file), "CCTEST_A").unwrap();
        assert_eq!(config.endpoints, ["a:1", "b:2"]);
        assert_eq!(config.request_timeout, 1234);
        assert_eq!(config.session_ttl, 4000);
        assert_eq!(config.password.as_deref(), Some("0123"));
        assert_eq!(config.candidate.id.as_deref(), Some("node-b"));
        assert_eq!(config.candidate.cooldown, 700);
        assert_eq!(
            config.candidate.metadata.get("zone").map(String::as_str),
            Some("b")
        );
        let options = config.options().unwrap();
        assert_eq!(options.request_timeout, Duration::from_millis(1234));
        assert_eq!(options.connect_timeout, ClientOptions::default().connect_timeout);

        let json = dir.join("client.json");
        std::fs::write(
            &json,
            r#"{"endpoints": ["c:3"], "candidate": {"lease_ttl": 3000}}"#,
        )
        .unwrap();
        let config = ClientConfig::load_with_env(Some(&json), "CCTEST_NONE").unwrap();
        assert_eq!(config.endpoints, ["c:3"]);
        assert_eq!(config.candidate.lease_ttl, Some(3000));

        std::fs::write(&file, "endpoint = [\"typo:1\"]\n").unwrap();
        let typo = ClientConfig::load_with_env(Some(&file), "CCTEST_NONE").unwrap_err();
        assert!(typo.to_string().contains("endpoint"), "{typo}");
        std::fs::write(&file, "session_ttl = 0\n").unwrap();
        let zero = ClientConfig::load_with_env(Some(&file), "CCTEST_NONE").unwrap_err();
        assert!(zero.to_string().contains("session_ttl"), "{zero}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
