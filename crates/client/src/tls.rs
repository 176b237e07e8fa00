//! TLS towards the members: `https://` endpoints, the CA that member certificates must
//! chain to, a client certificate for clusters with `--client-cert-auth`, and a
//! server-name override.
//!
//! ```no_run
//! # async fn demo() -> conclave_client::Result<()> {
//! use conclave_client::{Client, ClientOptions, Tls, TlsSettings};
//!
//! let tls = Tls::new(
//!     TlsSettings::new()
//!         .ca_file("/etc/conclave/ca.pem")
//!         .identity_files("/etc/conclave/app.pem", "/etc/conclave/app-key.pem"),
//! )?;
//! let options = ClientOptions::default().tls(tls);
//! let client = Client::connect_with(["https://10.0.0.1:2379", "10.0.0.2:2379"], options).await?;
//! # Ok(()) }
//! ```
//!
//! With TLS options, endpoints without a scheme use TLS; an explicit `http://` endpoint
//! stays plaintext. An `https://` endpoint without TLS options verifies the member
//! against the system's trust store. The files are re-read on every new connection, so a
//! rotated client certificate or CA is used without rebuilding the client.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use conclave_tls::{ClientTls, Connector};

use crate::error::{Error, Result};
use crate::ClientOptions;

/// How the client verifies members and identifies itself; see
/// [`conclave_tls::client::ClientTlsSettings`] for every field. Turned into [`Tls`] with
/// [`Tls::new`].
pub use conclave_tls::client::ClientTlsSettings as TlsSettings;
/// Where a PEM file of [`TlsSettings`] comes from, with the setting that named it (so
/// errors say `--cacert ca.pem: ...` in a command line tool).
pub use conclave_tls::PemSource;

/// TLS settings whose files were read and checked. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tls(Arc<ClientTls>);

impl Tls {
    /// Reads and checks the files of `settings`: a missing or unreadable file, a key that
    /// does not match its certificate or an unusable server name fails here, naming the
    /// file, with [`Error::Tls`].
    pub fn new(settings: TlsSettings) -> Result<Tls> {
        Ok(Tls(Arc::new(ClientTls::new("client TLS", settings)?)))
    }

    /// The settings this was built from.
    pub fn settings(&self) -> &TlsSettings {
        self.0.settings()
    }
}

/// etcdctl's TLS flags (`--cacert`, `--cert`, `--key`, `--insecure-skip-tls-verify`,
/// `--insecure-transport`), as conclavectl and the gateway take them, and etcdctl 3.4's
/// rule for when they mean TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--cacert`: the CA bundle members' certificates must chain to.
    pub cacert: Option<PathBuf>,
    /// `--cert` and `--key`: the client certificate and its key.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `--insecure-skip-tls-verify`: accept any member certificate.
    pub insecure_skip_tls_verify: bool,
    /// `--insecure-transport` (default true): plaintext when no other TLS flag is given.
    pub insecure_transport: bool,
}

impl Default for TlsFlags {
    fn default() -> Self {
        TlsFlags {
            cacert: None,
            identity: None,
            insecure_skip_tls_verify: false,
            insecure_transport: true,
        }
    }
}

impl TlsFlags {
    /// The settings these flags ask for, with errors naming the flags; `None` for
    /// plaintext (`https://` endpoints still use TLS, verified against the system CAs).
    /// TLS is on when a CA, a client certificate or `--insecure-skip-tls-verify` is
    /// given, or `--insecure-transport=false` (then with the system CAs).
    pub fn settings(&self) -> Option<TlsSettings> {
        let wanted = self.cacert.is_some()
            || self.identity.is_some()
            || self.insecure_skip_tls_verify
            || !self.insecure_transport;
        wanted.then(|| TlsSettings {
            ca: self.cacert.as_ref().map(|path| PemSource::file("--cacert", path)),
            identity: self
                .identity
                .as_ref()
                .map(|(cert, key)| (PemSource::file("--cert", cert), PemSource::file("--key", key))),
            server_name: None,
            insecure_skip_verify: self.insecure_skip_tls_verify,
        })
    }
}

impl ClientOptions {
    /// Talks TLS to the members with `tls` (see the [`tls`](crate::tls) module for
    /// which endpoints use it).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// `endpoint` with `https://` in front when it has no scheme and TLS is configured
/// (etcdctl's rule: TLS flags make scheme-less endpoints secure).
pub(crate) fn with_default_scheme(endpoint: &str, options: &ClientOptions) -> String {
    let trimmed = endpoint.trim();
    if options.tls.is_some() && !trimmed.is_empty() && !trimmed.contains("://") {
        format!("https://{trimmed}")
    } else {
        trimmed.to_string()
    }
}

/// For a normalised URL: the URL the tonic channel is built on and, for `https://`, the
/// connector that does the TLS (tonic sees plain HTTP/2 over it).
pub(crate) fn dial_plan(url: &str, options: &ClientOptions) -> Result<(String, Option<Connector>)> {
    let Some((plain, host)) = conclave_tls::client::split_https(url) else {
        return Ok((url.to_string(), None));
    };
    let tls = match &options.tls {
        Some(tls) => tls.0.clone(),
        None => system_trust()?,
    };
    let connector = Connector::new(tls, &host, None).map_err(|e| Error::InvalidEndpoint {
        endpoint: url.to_string(),
        reason: e.to_string(),
    })?;
    Ok((plain, Some(connector)))
}

/// The default TLS for `https://` endpoints without TLS options: the system's CAs, no
/// client certificate. Read once per process.
fn system_trust() -> Result<Arc<ClientTls>> {
    static SYSTEM: OnceLock<Arc<ClientTls>> = OnceLock::new();
    if let Some(tls) = SYSTEM.get() {
        return Ok(tls.clone());
    }
    let tls = Arc::new(ClientTls::new("system trust store", TlsSettings::new())?);
    Ok(SYSTEM.get_or_init(|| tls).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_less_endpoints_use_tls_only_with_tls_options() {
        let plain = ClientOptions::default();
        assert_eq!(with_default_scheme("a:1", &plain), "a:1");
        let tls = ClientOptions::default().tls(Tls::new(TlsSettings::new()).expect("defaults"));
        assert_eq!(with_default_scheme("a:1", &tls), "https://a:1");
        assert_eq!(with_default_scheme("http://a:1", &tls), "http://a:1");
        assert_eq!(with_default_scheme("https://a:1", &plain), "https://a:1");
    }

    #[test]
    fn etcdctl_flags_mean_tls_as_etcdctl_decides() {
        assert_eq!(TlsFlags::default().settings(), None);
        let with_ca = TlsFlags {
            cacert: Some("/ca.pem".into()),
            ..TlsFlags::default()
        };
        assert_eq!(
            with_ca
                .settings()
                .and_then(|s| s.ca)
                .map(|c| c.setting().to_string()),
            Some("--cacert".into())
        );
        let system = TlsFlags {
            insecure_transport: false,
            ..TlsFlags::default()
        }
        .settings()
        .expect("TLS");
        assert!(system.ca.is_none() && system.identity.is_none() && !system.insecure_skip_verify);
        let skip = TlsFlags {
            insecure_skip_tls_verify: true,
            ..TlsFlags::default()
        };
        assert!(skip.settings().expect("TLS").insecure_skip_verify);
        let mutual = TlsFlags {
            identity: Some(("/c".into(), "/k".into())),
            ..TlsFlags::default()
        };
        let (cert, key) = mutual.settings().and_then(|s| s.identity).expect("identity");
        assert_eq!((cert.setting(), key.setting()), ("--cert", "--key"));
    }

    #[test]
    fn https_urls_dial_through_the_connector_and_others_do_not() {
        let options = ClientOptions::default();
        let (url, connector) = dial_plan("https://127.0.0.1:2379", &options).expect("plan");
        assert_eq!(url, "http://127.0.0.1:2379");
        assert!(connector.is_some());
        let (url, connector) = dial_plan("http://127.0.0.1:2379", &options).expect("plan");
        assert_eq!(url, "http://127.0.0.1:2379");
        assert!(connector.is_none());
    }

    #[test]
    fn a_missing_ca_file_fails_when_the_options_are_built() {
        let error = Tls::new(TlsSettings::new().ca_file("/nonexistent/ca.pem")).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
        assert!(matches!(error, Error::Tls(_)), "{error:?}");
    }
}
