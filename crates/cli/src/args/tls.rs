//! etcdctl's TLS flags: `--cacert`, `--cert`, `--key`, `--insecure-skip-tls-verify`,
//! `--insecure-transport` (also as `ETCDCTL_*` variables, as etcdctl reads them).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use conclave_client::tls::{TlsFlags, TlsSettings};

/// How conclavectl secures its connections.
#[derive(Clone, Debug, Default, Args)]
pub struct TlsArgs {
    /// Verify members' certificates against this CA bundle (PEM); TLS is then used for
    /// endpoints without a scheme.
    #[arg(
        long = "cacert",
        id = "tls_cacert",
        global = true,
        env = "ETCDCTL_CACERT",
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,

    /// Present this client certificate (PEM), for members run with --client-cert-auth.
    // Ids of their own: commands have a positional `key`, which a global `key` would
    // clash with.
    #[arg(
        long = "cert",
        id = "tls_cert",
        global = true,
        env = "ETCDCTL_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long = "key",
        id = "tls_key",
        global = true,
        env = "ETCDCTL_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,

    /// Accept any member certificate: encryption without authentication, for members
    /// run with --auto-tls only.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = ArgAction::Set
    )]
    pub insecure_skip_tls_verify: bool,

    /// Plaintext for endpoints without a scheme when no TLS flag is given (etcdctl's
    /// default); --insecure-transport=false uses TLS with the system's CAs.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_INSECURE_TRANSPORT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub insecure_transport: bool,
}

impl TlsArgs {
    /// The SDK's TLS settings these flags ask for (etcdctl's rule, see
    /// [`TlsFlags::settings`]); `None` for plaintext.
    pub fn settings(&self) -> Option<TlsSettings> {
        TlsFlags {
            cacert: self.cacert.clone(),
            identity: self.cert.clone().zip(self.key.clone()),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            insecure_transport: self.insecure_transport,
        }
        .settings()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::Cli;

    fn tls_of(args: &[&str]) -> Option<super::TlsSettings> {
        let mut all = vec!["conclavectl"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["get", "k"]);
        Cli::try_parse_from(all).expect("parse").tls.settings()
    }

    #[test]
    fn tls_is_used_as_etcdctl_decides() {
        assert_eq!(tls_of(&[]), None);
        assert_eq!(tls_of(&["--insecure-transport"]), None);
        let with_ca = tls_of(&["--cacert", "/ca.pem"]).expect("TLS");
        assert_eq!(with_ca.ca.expect("ca").setting(), "--cacert");
        let system = tls_of(&["--insecure-transport=false"]).expect("TLS");
        assert!(system.ca.is_none() && system.identity.is_none());
        let skip = tls_of(&["--insecure-skip-tls-verify"]).expect("TLS");
        assert!(skip.insecure_skip_verify);
        let mutual = tls_of(&["--cacert=/ca", "--cert=/c", "--key=/k"]).expect("TLS");
        let (cert, key) = mutual.identity.expect("identity");
        assert_eq!((cert.setting(), key.setting()), ("--cert", "--key"));
    }

    #[test]
    fn a_certificate_without_its_key_is_a_usage_error() {
        assert!(Cli::try_parse_from(["conclavectl", "--cert", "/c", "get", "k"]).is_err());
    }
}
