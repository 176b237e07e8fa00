//! Who a request acts as: the token in its `Authorization` header, sent on to the members
//! as gRPC metadata `token`.
//!
//! The gateway holds no credentials of its own and checks nothing itself: every member
//! checks the token of every call, so a caller can do through the gateway exactly what
//! its user may do. Tokens come from `POST /v3/auth/authenticate` (etcd's JSON path).
//! Both spellings are read: `Authorization: Bearer <token>` (HTTP's) and
//! `Authorization: <token>` (what etcd's grpc-gateway clients send).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::error::{ApiError, EtcdError};
use crate::AppState;

/// The token a request carries, if any: the `Authorization` header's value without a
/// `Bearer ` scheme. Fails for a header that cannot be a token (not visible ASCII).
pub fn token_of(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not a token (visible ASCII only)")?
        .trim();
    let token = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        // A scheme with no token.
        None if text.eq_ignore_ascii_case("bearer") => "",
        _ => text,
    };
    Ok((!token.is_empty()).then_some(token))
}

/// The handlers' state with the caller's token: [`AppState::client`] sends the
/// request's token on every call (and never logs in itself); without a token, it is
/// the gateway's own client. A malformed `Authorization` header is answered 401.
pub struct Caller(pub AppState);

/// Why [`Caller`] refused a request: 401, in the shape of the path's API.
pub struct CallerRejection(Response);

impl IntoResponse for CallerRejection {
    fn into_response(self) -> Response {
        self.0
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = CallerRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, CallerRejection> {
        let etcd_path = parts.uri.path().starts_with("/v3/");
        let refuse = |message: String| {
            CallerRejection(if etcd_path {
                EtcdError::new(Code::Unauthenticated, message).into_response()
            } else {
                ApiError::from(conclave_client::Error::InvalidToken { message }).into_response()
            })
        };
        match token_of(&parts.headers) {
            Ok(None) => Ok(Caller(state.clone())),
            Ok(Some(token)) => match state.client.with_token(token) {
                Ok(client) => Ok(Caller(state.with_client(client))),
                Err(error) => Err(refuse(error.to_string())),
            },
            Err(message) => Err(refuse(message.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn both_spellings_of_the_header_give_the_token() {
        assert_eq!(token_of(&HeaderMap::new()), Ok(None));
        assert_eq!(token_of(&with("Bearer abc.def")), Ok(Some("abc.def")));
        assert_eq!(token_of(&with("bearer  abc")), Ok(Some("abc")));
        assert_eq!(token_of(&with("abc.def")), Ok(Some("abc.def")));
        assert_eq!(token_of(&with("Bearer ")), Ok(None));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"\xfftoken").expect("opaque header"),
        );
        assert!(token_of(&headers).is_err());
    }
}
