//! The CLI's error type: what went wrong, what to do about it, and the exit code.

use conclave_client::Error as ClientError;

/// Exit code: the request failed (or the input was bad).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: no member could be reached at the endpoints given.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: a write was sent but its outcome is unknown; it may have applied.
pub const EXIT_OUTCOME_UNKNOWN: u8 = 4;

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

    /// The cluster (or the SDK) refused or failed the request.
    #[error("{0}")]
    Client(ClientError),

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
        match connect_failure(&error) {
            Some(detail) => CliError::Unreachable {
                endpoints: endpoints.join(","),
                detail,
            },
            None => CliError::Client(error),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::Client(ClientError::OutcomeUnknown { .. }) => EXIT_OUTCOME_UNKNOWN,
            CliError::ChildExit(code) => *code,
            _ => EXIT_ERROR,
        }
    }
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
    fn an_unknown_outcome_has_its_own_exit_code() {
        let error = ClientError::OutcomeUnknown {
            message: "deadline".into(),
        };
        let cli = CliError::from_client(error, &[]);
        assert_eq!(cli.exit_code(), EXIT_OUTCOME_UNKNOWN);
        assert!(cli.to_string().contains("may have applied"), "{cli}");
    }
}
