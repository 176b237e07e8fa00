//! The one place where failures become HTTP answers.
//!
//! Two shapes: the REST API's `{"error": "...", "code": "<stable snake_case code>"}`
//! ([`ApiError`]) and etcd's JSON gateway's `{"error": "...", "message": "...", "code":
//! <gRPC code number>}` ([`EtcdError`]). Both are built from the SDK's [`Error`] here and
//! nowhere else, and every upstream failure is counted in
//! `conclave_gateway_upstream_errors_total{kind}`.
//!
//! Status codes say what the caller may do:
//! - 503 `unavailable`: no member could serve the request and **nothing was applied**;
//!   retrying (also on another gateway) is safe. Load balancers retry only these.
//! - 504 `outcome_unknown`: a write was sent but its outcome is unknown (it may have
//!   applied); read before retrying. 504 `timeout`: no answer in time (for a write, the
//!   same caveat).
//!
//! Partition groups ([`GroupCall`]): the same gRPC code means different things to
//! different calls (`AlreadyExists` is a taken name for create, a member id held by
//! another session for a join), so their failures are mapped with the call they answer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_client::Error;
use conclave_contract::errors;
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

use crate::metrics;

/// The REST API's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What happened and what to do, for people.
    pub error: String,
    /// A stable snake_case code for programs: `key_not_found`, `revision_mismatch`,
    /// `key_exists`, `compacted`, `future_revision`, `invalid_argument`, `not_utf8`,
    /// `too_large`, `lease_not_found`, `no_leader`, `not_elected`, `locked`, `not_leader`,
    /// `not_holder`, `not_found`, `already_exists`, `failed_precondition`, `no_space`,
    /// `permission_denied` (403), `invalid_token`, `auth_required`,
    /// `authentication_failed` (401), `rate_limited` (429),
    /// `unavailable`, `outcome_unknown`, `timeout`, `draining`, `route_not_found`,
    /// `method_not_allowed`, `internal`; for partition groups also `member_taken`,
    /// `stale_epoch`, `busy`, `generation_gone`.
    pub code: String,
    /// With `stale_epoch`: the partition's epoch now (report again at it, or re-read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<i64>,
    /// With `not_leader` for a partition: the member that leads it, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// A REST API failure: an HTTP status, a stable code and a message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (see [`ErrorBody::code`]).
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// A partition's current epoch (`stale_epoch`).
    pub current_epoch: Option<i64>,
    /// A partition's leader (`not_leader`).
    pub leader: Option<String>,
}

/// Which partition-group call failed: decides what an ambiguous gRPC code means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupCall {
    /// Create, update, delete, get or list groups; read the map, route, history.
    Group,
    /// A member's registration: `AlreadyExists` is 409 `member_taken` (another live
    /// session holds the id), `Aborted` is 503 `busy` (its previous session is still
    /// being cleared: retry).
    Join,
    /// A graceful leave: a timeout is 504 `timeout` — the hand-over did not finish and
    /// the member stays registered and leaving.
    Leave,
    /// Drain, resume, or a report (`stale_epoch`, `failed_precondition`).
    Member,
}

impl ApiError {
    /// A failure with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            current_epoch: None,
            leader: None,
        }
    }

    /// The failure of partition-group call `call`.
    pub fn group(call: GroupCall, error: Error) -> ApiError {
        let mut api = ApiError::from(error);
        match (call, api.code) {
            (GroupCall::Join, "already_exists") => api.code = "member_taken",
            (GroupCall::Leave, "timeout") => {
                api.message = format!(
                    "{}: the hand-over did not finish in time; the member stays registered and leaving — keep it reporting, and leave again to wait more",
                    api.message
                );
            }
            _ => {}
        }
        api
    }

    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// 413 `too_large`.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 503 `draining`: the gateway is shutting down; another gateway will serve.
    pub fn draining() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this gateway is shutting down: retry on another gateway",
        )
    }

    /// 504 `timeout` from the gateway's own request timeout.
    pub fn timeout(after: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no answer within {after:?} (a write may or may not have applied: read before retrying)"),
        )
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The body as it is sent.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            code: self.code.to_string(),
            current_epoch: self.current_epoch,
            leader: self.leader.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if unauthorized {
            // RFC 6750: say which scheme to use (a token from /v3/auth/authenticate).
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Classifies an SDK error: HTTP status, stable code, and the gRPC code etcd's gateway
/// would report.
fn classify(error: &Error) -> (StatusCode, &'static str, Code) {
    match error {
        Error::InvalidArgument(message) if message == errors::REQUEST_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large", Code::InvalidArgument)
        }
        Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument", Code::InvalidArgument),
        Error::Compacted { .. } => (StatusCode::GONE, "compacted", Code::OutOfRange),
        Error::FutureRevision => (StatusCode::BAD_REQUEST, "future_revision", Code::OutOfRange),
        Error::LeaseNotFound => (StatusCode::NOT_FOUND, "lease_not_found", Code::NotFound),
        Error::LeaseLost { .. } => (StatusCode::CONFLICT, "lease_not_found", Code::NotFound),
        Error::LeadershipLost { .. } => (StatusCode::CONFLICT, "not_leader", Code::FailedPrecondition),
        Error::Locked { .. } => (StatusCode::CONFLICT, "locked", Code::FailedPrecondition),
        Error::StaleEpoch { .. } => (StatusCode::CONFLICT, "stale_epoch", Code::FailedPrecondition),
        Error::NotLeader { .. } => (StatusCode::CONFLICT, "not_leader", Code::FailedPrecondition),
        Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Code::Unavailable),
        Error::OutcomeUnknown { .. } => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown", Code::Unavailable),
        Error::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout", Code::DeadlineExceeded),
        // Elections' registry and control requests.
        Error::UnknownCandidate { .. } => (StatusCode::NOT_FOUND, "unknown_candidate", Code::NotFound),
        Error::NoLeader { .. } => (StatusCode::NOT_FOUND, "no_leader", Code::NotFound),
        Error::NoAnswer { .. } => (StatusCode::GATEWAY_TIMEOUT, "no_answer", Code::DeadlineExceeded),
        Error::Refused { .. } => (StatusCode::CONFLICT, "refused", Code::FailedPrecondition),
        // Auth: the gRPC codes are etcd's (its grpc-gateway turns them into 403, 401, 400
        // and 429 on the /v3 paths); the REST API answers 401 for every problem with who
        // the caller is, 403 for what it may not do.
        Error::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied", Code::PermissionDenied),
        Error::InvalidToken { message } if message == errors::AUTH_OLD_REVISION => {
            (StatusCode::UNAUTHORIZED, "invalid_token", Code::InvalidArgument)
        }
        Error::InvalidToken { .. } => (StatusCode::UNAUTHORIZED, "invalid_token", Code::Unauthenticated),
        Error::AuthRequired => (StatusCode::UNAUTHORIZED, "auth_required", Code::InvalidArgument),
        Error::AuthenticationFailed => (
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            Code::InvalidArgument,
        ),
        Error::AuthRateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Code::ResourceExhausted,
        ),
        Error::Server { code, message } => match code {
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found", *code),
            Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists", *code),
            Code::FailedPrecondition => (StatusCode::CONFLICT, "failed_precondition", *code),
            // "Not yet, unchanged": nothing applied, the same request will succeed shortly
            // (a member id whose previous session is still being cleared).
            Code::Aborted => (StatusCode::SERVICE_UNAVAILABLE, "busy", *code),
            Code::ResourceExhausted if message == errors::NO_SPACE => {
                (StatusCode::INSUFFICIENT_STORAGE, "no_space", *code)
            }
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted", *code),
            Code::OutOfRange | Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument", *code),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied", *code),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", *code),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented", *code),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", *code),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "timeout", *code),
            _ => (StatusCode::BAD_GATEWAY, "upstream_error", *code),
        },
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Code::Internal),
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let (status, code, _) = classify(&error);
        metrics::upstream_error(code);
        let mut api = ApiError::new(status, code, error.to_string());
        match error {
            Error::StaleEpoch { current, .. } => api.current_epoch = Some(current),
            Error::NotLeader { hint, .. } => api.leader = hint,
            _ => {}
        }
        api
    }
}

/// etcd's JSON gateway error body (grpc-gateway's shape).
#[derive(Debug, Serialize)]
pub struct EtcdErrorBody {
    /// The gRPC status message.
    pub error: String,
    /// The same message (grpc-gateway sends both).
    pub message: String,
    /// The gRPC code number.
    pub code: i32,
}

/// A failure on the etcd JSON gateway paths (`/v3/...`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EtcdError {
    /// The gRPC code etcd would answer with.
    pub code: Code,
    /// etcd's message.
    pub message: String,
    /// The HTTP status, when it differs from the one the gRPC code maps to.
    pub status: Option<StatusCode>,
}

impl EtcdError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> EtcdError {
        EtcdError {
            code,
            message: message.into(),
            status: None,
        }
    }

    /// grpc-gateway's HTTP status for a gRPC code (its `HTTPStatusFromCode`, as of the v1
    /// releases etcd uses).
    pub fn http_status(code: Code) -> StatusCode {
        match code {
            Code::Ok => StatusCode::OK,
            Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
            Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            // grpc-gateway v1, which etcd 3.4 and 3.5 serve ("user name already exists"
            // answers 412 there); v2 changed it to 400.
            Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The body as it is sent.
    pub fn body(&self) -> EtcdErrorBody {
        EtcdErrorBody {
            error: self.message.clone(),
            message: self.message.clone(),
            code: self.code as i32,
        }
    }
}

impl IntoResponse for EtcdError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| EtcdError::http_status(self.code));
        (status, axum::Json(self.body())).into_response()
    }
}

impl From<Error> for EtcdError {
    fn from(error: Error) -> EtcdError {
        let (_, kind, code) = classify(&error);
        metrics::upstream_error(kind);
        // etcd's own texts, which etcd clients match on.
        let message = match &error {
            Error::OutcomeUnknown { .. } => {
                "etcdserver: request timed out, possibly due to previous leader failure".to_string()
            }
            other => other.etcd_text().unwrap_or_else(|| other.to_string()),
        };
        let mut etcd = EtcdError::new(code, message);
        if matches!(error, Error::OutcomeUnknown { .. }) {
            // gRPC says Unavailable (etcd's code), but HTTP 503 tells load balancers and
            // clients "not applied, retry": a write that may have applied is a 504.
            etcd.status = Some(StatusCode::GATEWAY_TIMEOUT);
        }
        etcd
    }
}

impl From<ApiError> for EtcdError {
    /// Gateway-level failures (bad JSON, body too large, draining) in etcd's shape.
    fn from(error: ApiError) -> EtcdError {
        let code = match error.status {
            StatusCode::BAD_REQUEST => Code::InvalidArgument,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        EtcdError {
            code,
            message: error.message,
            status: Some(error.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_of_unknown_outcome_are_never_503() {
        let error = ApiError::from(Error::OutcomeUnknown {
            message: "broken pipe".into(),
        });
        assert_eq!(error.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(error.code, "outcome_unknown");
        let error = ApiError::from(Error::Unavailable {
            message: "no leader".into(),
            attempts: 3,
        });
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        // The /v3 shape keeps etcd's gRPC code but not HTTP 503, which balancers retry.
        let etcd = EtcdError::from(Error::OutcomeUnknown {
            message: "broken pipe".into(),
        });
        assert_eq!(etcd.code, Code::Unavailable);
        assert_eq!(etcd.into_response().status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn group_failures_are_mapped_by_the_call_they_answer() {
        let taken = || Error::Server {
            code: Code::AlreadyExists,
            message: "member m of group g is registered under another live session".into(),
        };
        let join = ApiError::group(GroupCall::Join, taken());
        assert_eq!((join.status, join.code), (StatusCode::CONFLICT, "member_taken"));
        let create = ApiError::group(GroupCall::Group, taken());
        assert_eq!(create.code, "already_exists");
        // A previous session still being cleared: nothing applied, retry shortly.
        let busy = ApiError::group(
            GroupCall::Join,
            Error::Server {
                code: Code::Aborted,
                message: "previous session still holds 3 partitions".into(),
            },
        );
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        );
        let response = busy.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let stale = ApiError::group(
            GroupCall::Member,
            Error::StaleEpoch {
                group: "g".into(),
                partition: 3,
                current: 42,
            },
        );
        assert_eq!((stale.status, stale.code), (StatusCode::CONFLICT, "stale_epoch"));
        assert_eq!(stale.body().current_epoch, Some(42));
        let leave = ApiError::group(
            GroupCall::Leave,
            Error::Timeout(std::time::Duration::from_secs(1)),
        );
        assert_eq!(
            (leave.status, leave.code),
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        );
        assert!(
            leave.message.contains("stays registered and leaving"),
            "{}",
            leave.message
        );
        let not_leader = ApiError::from(Error::NotLeader {
            group: "g".into(),
            partition: 1,
            hint: Some("m2".into()),
        });
        assert_eq!(not_leader.body().leader.as_deref(), Some("m2"));
    }

    #[test]
    fn auth_refusals_are_401_403_and_etcds_codes_on_the_v3_paths() {
        let denied = ApiError::from(Error::PermissionDenied);
        assert_eq!(
            (denied.status, denied.code),
            (StatusCode::FORBIDDEN, "permission_denied")
        );
        let expired = ApiError::from(Error::InvalidToken {
            message: errors::INVALID_AUTH_TOKEN.into(),
        });
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        let response = expired.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            ApiError::from(Error::AuthRequired).status,
            StatusCode::UNAUTHORIZED
        );

        // etcd's grpc-gateway: PermissionDenied 403, Unauthenticated 401, InvalidArgument 400.
        let etcd = |error: Error| {
            let etcd = EtcdError::from(error);
            (etcd.code, etcd.message.clone(), etcd.into_response().status())
        };
        assert_eq!(
            etcd(Error::PermissionDenied),
            (
                Code::PermissionDenied,
                errors::PERMISSION_DENIED.to_string(),
                StatusCode::FORBIDDEN
            )
        );
        assert_eq!(
            etcd(Error::InvalidToken {
                message: errors::INVALID_AUTH_TOKEN.into()
            }),
            (
                Code::Unauthenticated,
                errors::INVALID_AUTH_TOKEN.to_string(),
                StatusCode::UNAUTHORIZED
            )
        );
        assert_eq!(
            etcd(Error::AuthenticationFailed),
            (
                Code::InvalidArgument,
                errors::AUTH_FAILED.to_string(),
                StatusCode::BAD_REQUEST
            )
        );
        assert_eq!(etcd(Error::AuthRateLimited).2, StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn etcd_errors_keep_etcd_messages() {
        let error = EtcdError::from(Error::Compacted {
            compact_revision: None,
        });
        assert_eq!(error.code, Code::OutOfRange);
        assert_eq!(EtcdError::http_status(error.code), StatusCode::BAD_REQUEST);
        assert!(error.message.contains("required revision has been compacted"));
        let too_large = ApiError::from(Error::InvalidArgument("etcdserver: request is too large".into()));
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
