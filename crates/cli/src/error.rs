//! The CLI's error type: what went wrong, what to do about it, and the exit code.

use std::time::Duration;

use conclave_client::Error as ClientError;

/// Exit code: the request failed (or the input was bad).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the user name or password was refused (etcdctl exits with 2 there too; clap
/// uses 2 for bad usage, which a wrong password on the command line is).
pub const EXIT_CREDENTIALS: u8 = 2;
/// Exit code: no member could be reached at the endpoints given.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a write was sent but its outcome is unknown; it may have applied.
pub const EXIT_OUTCOME_UNKNOWN: u8 = 4;
/// Exit code: the partition group or group member named does not exist.
pub const EXIT_NOT_FOUND: u8 = 5;
/// Exit code: a wait with a deadline (`group leave`'s hand-over) ended before it was done.
pub const EXIT_TIMEOUT: u8 = 6;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No member answered at the endpoints: nothing runs there, or the endpoints are wrong.
    #[error("cannot reach {endpoints}: is a member running there? set --endpoints or CONCLAVE_ENDPOINTS ({detail})")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What the connection attempt said.
        detail: String,
    },

    /// The TLS handshake with the members failed: a certificate could not be verified or
    /// was refused.
    #[error("TLS with {endpoints} failed: {detail}; check --cacert (the CA that signed the members' certificates), --cert and --key (needed when members run with --client-cert-auth), or --insecure-skip-tls-verify for members run with --auto-tls")]
    Tls {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What the handshake said.
        detail: String,
    },

    /// The cluster (or the SDK) refused or failed the request.
    #[error("{0}")]
    Client(ClientError),

    /// The cluster refused the user name or password (etcd's text).
    #[error("{0}")]
    Credentials(String),

    /// The command line or standard input is not usable as given.
    #[error("{0}")]
    InvalidInput(String),

    /// A local file or stream failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// The command ran but its check failed (an unhealthy endpoint, a failed defrag).
    #[error("{0}")]
    Failed(String),

    /// What a group command named does not exist (or no longer does).
    #[error("{0}")]
    NotFound(String),

    /// A wait with a deadline ended first; the message says what state things are left in.
    #[error("{0}")]
    Timeout(String),

    /// A command run under `lock` exited with this code; conclavectl exits with it too.
    #[error("the command exited with code {0}")]
    ChildExit(u8),
}

impl CliError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            what: what.into(),
            source,
        }
    }

    /// A client error, recognising "nothing answers there" so the message says which
    /// endpoints to check.
    pub fn from_client(error: ClientError, endpoints: &[String]) -> CliError {
        if let Some(detail) = tls_failure(&error) {
            return CliError::Tls {
                endpoints: endpoints.join(","),
                detail,
            };
        }
        match connect_failure(&error) {
            Some(detail) => CliError::Unreachable {
                endpoints: endpoints.join(","),
                detail,
            },
            None => match error {
                // An application's own fencing errors, should a command meet one: where to
                // look next.
                ClientError::NotLeader { ref group, .. } => CliError::Failed(format!(
                    "{error}: find the leader with `conclavectl group route {group} KEY`"
                )),
                ClientError::StaleEpoch { ref group, .. } => CliError::Failed(format!(
                    "{error}: read the map again with `conclavectl group map {group}`"
                )),
                // etcdctl's words, which scripts match on ("Error: etcdserver:
                // permission denied").
                ClientError::AuthenticationFailed => {
                    CliError::Credentials(error.etcd_text().unwrap_or_else(|| error.to_string()))
                }
                ClientError::PermissionDenied
                | ClientError::AuthRequired
                | ClientError::AuthRateLimited
                | ClientError::InvalidToken { .. } => {
                    CliError::Failed(error.etcd_text().unwrap_or_else(|| error.to_string()))
                }
                other => CliError::Client(other),
            },
        }
    }

    /// A partition-group error, said in terms of the group command that got it: what is
    /// missing and how to find the right name, a name that is taken, a refusal with the
    /// member's reason, a hand-over that did not finish in time.
    pub fn from_group(error: ClientError, endpoints: &[String], target: &GroupTarget<'_>) -> CliError {
        let group = target.group;
        match error {
            ClientError::Server {
                code: tonic::Code::NotFound,
                message,
            } => CliError::NotFound(match target.member {
                Some(_) => format!(
                    "{message}: check the names with `conclavectl group list` and `conclavectl group show {group}`"
                ),
                None => format!("{message}: `conclavectl group list` lists the groups"),
            }),
            ClientError::Server {
                code: tonic::Code::AlreadyExists,
                message,
            } if target.member.is_none() => CliError::Failed(format!(
                "{message}: choose another name, or change its settings with `conclavectl group update {group}`"
            )),
            // The member's message says why and what to do.
            ClientError::Server {
                code: tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists,
                message,
            } => CliError::Failed(message),
            ClientError::Server {
                code: tonic::Code::Aborted,
                message,
            } => CliError::Failed(format!("{message} (the group was busy: run the command again)")),
            ClientError::Server {
                code: tonic::Code::Unimplemented,
                ..
            } => CliError::Failed(format!(
                "the members at {} do not serve partition groups (conclave.partition.v1.Groups): \
                 is this a Conclave cluster of a version with groups?",
                endpoints.join(",")
            )),
            ClientError::Timeout(waited) => {
                CliError::leave_timeout(group, target.member.unwrap_or("the member"), waited, None)
            }
            other => CliError::from_client(other, endpoints),
        }
    }

    /// `group leave` gave up waiting: the member is left registered and leaving.
    /// `holding` is what it still holds (replicas, leaderships), when known.
    pub fn leave_timeout(
        group: &str,
        member: &str,
        waited: Duration,
        holding: Option<(u32, u32)>,
    ) -> CliError {
        let holds = match holding {
            Some((replicas, leaderships)) => {
                format!(" (it still holds {replicas} replicas, {leaderships} leaderships)")
            }
            None => String::new(),
        };
        CliError::Timeout(format!(
            "member {member} of group {group} did not hand everything over within {waited:?}{holds}; \
             it stays registered and leaving. Its process must be running and acknowledging to hand over: \
             if it is paused or stuck, let it go on and run `conclavectl group leave {group} {member}` \
             again to wait longer; if it is gone for good, its session ends within the group's session \
             TTL and its partitions then move without a hand-over"
        ))
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable { .. } | CliError::Tls { .. } => EXIT_UNREACHABLE,
            CliError::Client(ClientError::OutcomeUnknown { .. }) => EXIT_OUTCOME_UNKNOWN,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            CliError::Credentials(_) => EXIT_CREDENTIALS,
            CliError::Timeout(_) => EXIT_TIMEOUT,
            CliError::ChildExit(code) => *code,
            _ => EXIT_ERROR,
        }
    }
}

/// What a group command named, for its error messages.
#[derive(Clone, Copy, Debug)]
pub struct GroupTarget<'a> {
    /// The group.
    pub group: &'a str,
    /// The member, for commands about one.
    pub member: Option<&'a str>,
}

/// If `error` means that no connection could be made at all (refused, unresolvable, no
/// route), a short description of why.
pub fn connect_failure(error: &ClientError) -> Option<String> {
    let text = match error {
        ClientError::Unavailable { message, .. } => message,
        ClientError::Server {
            code: tonic::Code::Unavailable,
            message,
        } => message,
        _ => return None,
    };
    if !is_connect_text(text) {
        return None;
    }
    // The OS's words are the useful part ("Connection refused (os error 111)").
    let detail = text
        .rsplit(": ")
        .find(|part| !part.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string();
    Some(detail)
}

/// If `error` is a failed TLS handshake, what the handshake said (once: the SDK's text
/// repeats it for each layer of the transport).
pub fn tls_failure(error: &ClientError) -> Option<String> {
    let ClientError::Unavailable { message, .. } = error else {
        return None;
    };
    const SIGNS: [&str; 2] = ["TLS handshake with ", "received fatal alert: "];
    let start = SIGNS.iter().filter_map(|sign| message.rfind(sign)).max()?;
    Some(message[start..].trim().to_string())
}

/// Whether an error's text says that no connection could be made.
pub fn is_connect_text(text: &str) -> bool {
    const SIGNS: [&str; 6] = [
        "tcp connect error",
        "error trying to connect",
        "Connection refused",
        "dns error",
        "failed to lookup address",
        "No route to host",
    ];
    SIGNS.iter().any(|sign| text.contains(sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_handshake_says_which_tls_flags_to_check() {
        let error = ClientError::Unavailable {
            message: "Unavailable: error trying to connect: TLS handshake with 127.0.0.1:2379: invalid peer \
                      certificate: UnknownIssuer: transport error: error trying to connect: TLS handshake with \
                      127.0.0.1:2379: invalid peer certificate: UnknownIssuer"
                .into(),
            attempts: 3,
        };
        let cli = CliError::from_client(error, &["https://127.0.0.1:2379".to_string()]);
        assert_eq!(cli.exit_code(), EXIT_UNREACHABLE);
        let text = cli.to_string();
        assert!(
            text.starts_with(
                "TLS with https://127.0.0.1:2379 failed: TLS handshake with 127.0.0.1:2379: invalid peer \
                 certificate: UnknownIssuer; check --cacert"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_refused_connection_names_the_endpoints_and_the_fix() {
        let error = ClientError::Unavailable {
            message: "Unavailable: tcp connect error: tcp connect error: Connection refused (os error 111)"
                .into(),
            attempts: 7,
        };
        let cli = CliError::from_client(error, &["127.0.0.1:2379".to_string()]);
        assert_eq!(cli.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            cli.to_string(),
            "cannot reach 127.0.0.1:2379: is a member running there? set --endpoints or CONCLAVE_ENDPOINTS \
             (Connection refused (os error 111))"
        );
    }

    #[test]
    fn group_errors_say_what_is_missing_and_have_their_own_exit_codes() {
        let target = GroupTarget {
            group: "orders",
            member: None,
        };
        let missing = CliError::from_group(
            ClientError::Server {
                code: tonic::Code::NotFound,
                message: "group \"orders\" not found".into(),
            },
            &[],
            &target,
        );
        assert_eq!(missing.exit_code(), EXIT_NOT_FOUND);
        assert!(
            missing.to_string().contains("`conclavectl group list`"),
            "{missing}"
        );

        let taken = CliError::from_group(
            ClientError::Server {
                code: tonic::Code::AlreadyExists,
                message: "group \"orders\" already exists".into(),
            },
            &[],
            &target,
        );
        assert_eq!(taken.exit_code(), EXIT_ERROR);
        assert!(taken.to_string().contains("group update orders"), "{taken}");

        let member = GroupTarget {
            group: "orders",
            member: Some("m1"),
        };
        let slow = CliError::from_group(ClientError::Timeout(Duration::from_secs(2)), &[], &member);
        assert_eq!(slow.exit_code(), EXIT_TIMEOUT);
        assert!(slow
            .to_string()
            .starts_with("member m1 of group orders did not hand everything over within 2s;"));
        let counted = CliError::leave_timeout("orders", "m1", Duration::from_secs(2), Some((3, 1)));
        assert!(counted
            .to_string()
            .contains("within 2s (it still holds 3 replicas, 1 leaderships)"));

        let old = CliError::from_group(
            ClientError::Server {
                code: tonic::Code::Unimplemented,
                message: String::new(),
            },
            &["127.0.0.1:2379".to_string()],
            &target,
        );
        assert!(old.to_string().contains("do not serve partition groups"), "{old}");
    }

    #[test]
    fn auth_refusals_are_said_in_etcdctls_words() {
        let denied = CliError::from_client(ClientError::PermissionDenied, &[]);
        assert_eq!(denied.to_string(), "etcdserver: permission denied");
        assert_eq!(denied.exit_code(), EXIT_ERROR);
        let failed = CliError::from_client(ClientError::AuthenticationFailed, &[]);
        assert_eq!(
            failed.to_string(),
            "etcdserver: authentication failed, invalid user ID or password"
        );
        assert_eq!(failed.exit_code(), EXIT_CREDENTIALS);
    }

    #[test]
    fn an_unknown_outcome_has_its_own_exit_code() {
        let error = ClientError::OutcomeUnknown {
            message: "deadline".into(),
        };
        let cli = CliError::from_client(error, &[]);
        assert_eq!(cli.exit_code(), EXIT_OUTCOME_UNKNOWN);
        assert!(cli.to_string().contains("may have applied"), "{cli}");
    }
}
