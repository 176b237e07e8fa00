//! Extractors whose rejections are the gateway's JSON errors rather than axum's plain
//! text: query strings, path segments and JSON bodies (the body limit answers 413).

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, EtcdError};

/// A query string; a malformed one is answered 400 `invalid_argument`.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Q(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// Path parameters; malformed ones are answered 400 `invalid_argument`.
pub struct P<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| P(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// Reads the body within the configured limit (413 `too_large` beyond it).
async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("request body too large: {}", rejection.body_text()))
        } else {
            ApiError::invalid(rejection.body_text())
        }
    })
}

/// A JSON body; an empty body is read as `{}` so that all-default requests need none.
/// Bad JSON is answered 400 `invalid_argument`.
pub struct JsonBody<T>(pub T);

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body on the etcd paths: rejections in etcd's error shape.
pub struct EtcdJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for EtcdJson<T> {
    type Rejection = EtcdError;

    async fn from_request(request: Request, state: &S) -> Result<Self, EtcdError> {
        let bytes = body(request, state).await.map_err(EtcdError::from)?;
        parse_json(&bytes).map(EtcdJson).map_err(EtcdError::from)
    }
}
