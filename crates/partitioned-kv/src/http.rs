//! The instance's HTTP API: `GET`/`PUT /kv/{key}` for clients (any instance; forwarded
//! to the partition's leader), and `/internal/...` between instances.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use conclave_client::group::PartitionId;

use crate::node::{KvError, Node, Replicate, Subscribe, FORWARDED};

/// The routes.
pub fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route("/kv/{key}", get(read).put(write))
        .route("/internal/partitions/{p}", get(partition))
        .route("/internal/partitions/{p}/replicate", post(replicate))
        .route("/internal/partitions/{p}/subscribe", post(subscribe))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(node)
}

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        let status = match &self {
            KvError::NotFound => StatusCode::NOT_FOUND,
            KvError::NotLeader { .. } | KvError::Fenced(_) => StatusCode::CONFLICT,
            KvError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, self.to_string()).into_response()
    }
}

fn forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
}

async fn read(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<String, KvError> {
    node.get(&key, forwarded(&headers)).await
}

async fn write(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<StatusCode, KvError> {
    node.put(&key, &body, forwarded(&headers))
        .await
        .map(|()| StatusCode::OK)
}

async fn partition(State(node): State<Arc<Node>>, Path(p): Path<u32>) -> Json<Vec<crate::store::Entry>> {
    Json(node.partition(PartitionId(p)))
}

async fn replicate(
    State(node): State<Arc<Node>>,
    Path(p): Path<u32>,
    Json(message): Json<Replicate>,
) -> Result<StatusCode, KvError> {
    node.replicated(PartitionId(p), message).map(|()| StatusCode::OK)
}

async fn subscribe(
    State(node): State<Arc<Node>>,
    Path(p): Path<u32>,
    Json(s): Json<Subscribe>,
) -> StatusCode {
    node.subscribe(PartitionId(p), s.endpoint);
    StatusCode::OK
}
