//! etcd's JSON gateway paths (`POST /v3/...`), so tools written against etcd's
//! grpc-gateway work unchanged. Requests and answers use etcd's JSON mapping
//! ([`json`]); errors use its shape `{"error", "message", "code"}`.
//!
//! Unary calls go through the SDK's failover rule (reads retried elsewhere, writes never
//! re-sent once they may have applied). Streams (`/v3/watch`, `/v3/lease/keepalive`,
//! `/v3/election/observe`) answer newline-delimited `{"result": ...}` objects as etcd's
//! gateway does, and end with `{"error": {...}}` if the member fails (no resume: etcd
//! clients of these paths reconnect themselves). Campaign and lock wait up to
//! `--max-poll-timeout` on one member.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use conclave_client::{Channel, Idempotency};
use conclave_proto::etcdserverpb::cluster_client::ClusterClient;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::lease_client::LeaseClient;
use conclave_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use conclave_proto::etcdserverpb::watch_client::WatchClient;
use conclave_proto::etcdserverpb::{self as pb};
use conclave_proto::v3electionpb::election_client::ElectionClient;
use conclave_proto::v3electionpb::{self as electionpb};
use conclave_proto::v3lockpb::lock_client::LockClient;
use conclave_proto::v3lockpb::{self as lockpb};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tonic::{Code, Status};

use crate::auth::Caller;
use crate::error::EtcdError;
use crate::extract::EtcdJson;
use crate::metrics::StreamGuard;
use crate::AppState;

pub mod json;

use json::Fields;

type Answer = Result<Json<Value>, EtcdError>;

/// A unary call under the SDK's failover rule.
async fn unary<T, F, Fut>(state: &AppState, idempotency: Idempotency, call: F) -> Result<T, EtcdError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut call = call;
    state
        .client
        .raw_call(idempotency, |channel| {
            let answer = call(channel);
            async move { answer.await.map(tonic::Response::into_inner) }
        })
        .await
        .map_err(EtcdError::from)
}

/// A long call (campaign, lock) on the preferred member, bounded by
/// `--max-poll-timeout` and the drain.
async fn long_call<T, Fut>(state: &AppState, call: Fut) -> Result<T, EtcdError>
where
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    if state.drain.is_draining() {
        return Err(EtcdError::new(Code::Unavailable, "the gateway is shutting down"));
    }
    let limit = state.config.max_poll_timeout();
    tokio::select! {
        answer = tokio::time::timeout(limit, call) => match answer {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                crate::metrics::upstream_error("grpc_status");
                let mut error = EtcdError::new(status.code(), status.message());
                let broken = std::error::Error::source(&status).is_some();
                if broken || matches!(status.code(), Code::Unavailable | Code::Cancelled) {
                    // The campaign or lock may have been taken before the call broke.
                    error.status = Some(axum::http::StatusCode::GATEWAY_TIMEOUT);
                }
                Err(error)
            }
            Err(_) => Err(EtcdError::new(Code::DeadlineExceeded, format!("no answer within {limit:?}"))),
        },
        () = state.drain.closed() => {
            // Cut off mid-call: the campaign or lock may have been taken.
            let mut error = EtcdError::new(Code::Unavailable, "the gateway is shutting down");
            error.status = Some(axum::http::StatusCode::GATEWAY_TIMEOUT);
            Err(error)
        }
    }
}

macro_rules! etcd_path {
    ($name:ident, $path:literal, $tag:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = $tag,
            request_body(content = Object, description = "the request message in etcd's JSON mapping"),
            responses(
                (status = 200, description = "the response message in etcd's JSON mapping", body = Object),
                (status = 400, description = "etcd error `{error, message, code}`", body = Object),
                (status = 503, description = "etcd error (unavailable)", body = Object)))]
        #[allow(dead_code)]
        fn $name() {}
    };
}

pub mod auth;

/// OpenAPI stubs of the `/v3` paths (their bodies are etcd's messages, documented by
/// etcd's `rpc.proto`).
pub mod doc {
    etcd_path!(kv_range, "/v3/kv/range", "etcd", "KV.Range");
    etcd_path!(kv_put, "/v3/kv/put", "etcd", "KV.Put");
    etcd_path!(kv_deleterange, "/v3/kv/deleterange", "etcd", "KV.DeleteRange");
    etcd_path!(kv_txn, "/v3/kv/txn", "etcd", "KV.Txn");
    etcd_path!(kv_compaction, "/v3/kv/compaction", "etcd", "KV.Compact");
    etcd_path!(
        watch,
        "/v3/watch",
        "etcd",
        "Watch.Watch (newline-delimited `{\"result\": WatchResponse}`)"
    );
    etcd_path!(lease_grant, "/v3/lease/grant", "etcd", "Lease.LeaseGrant");
    etcd_path!(lease_revoke, "/v3/lease/revoke", "etcd", "Lease.LeaseRevoke");
    etcd_path!(
        lease_keepalive,
        "/v3/lease/keepalive",
        "etcd",
        "Lease.LeaseKeepAlive (one renewal, one `{\"result\": ...}` line)"
    );
    etcd_path!(
        lease_timetolive,
        "/v3/lease/timetolive",
        "etcd",
        "Lease.LeaseTimeToLive"
    );
    etcd_path!(lease_leases, "/v3/lease/leases", "etcd", "Lease.LeaseLeases");
    etcd_path!(
        maintenance_status,
        "/v3/maintenance/status",
        "etcd",
        "Maintenance.Status"
    );
    etcd_path!(
        cluster_member_list,
        "/v3/cluster/member/list",
        "etcd",
        "Cluster.MemberList"
    );
    etcd_path!(
        election_campaign,
        "/v3/election/campaign",
        "etcd",
        "Election.Campaign"
    );
    etcd_path!(
        election_proclaim,
        "/v3/election/proclaim",
        "etcd",
        "Election.Proclaim"
    );
    etcd_path!(election_leader, "/v3/election/leader", "etcd", "Election.Leader");
    etcd_path!(
        election_observe,
        "/v3/election/observe",
        "etcd",
        "Election.Observe (newline-delimited `{\"result\": LeaderResponse}`)"
    );
    etcd_path!(election_resign, "/v3/election/resign", "etcd", "Election.Resign");
    etcd_path!(lock_lock, "/v3/lock/lock", "etcd", "Lock.Lock");
    etcd_path!(lock_unlock, "/v3/lock/unlock", "etcd", "Lock.Unlock");
}

/// `POST /v3/kv/range`.
pub async fn kv_range(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = json::range_request(Fields::of(&body)?)?;
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move {
            KvClient::new(channel)
                .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                .range(request)
                .await
        }
    })
    .await?;
    Ok(Json(json::range_response(&response)))
}

/// `POST /v3/kv/put`.
pub async fn kv_put(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = json::put_request(Fields::of(&body)?)?;
    let response = unary(&state, Idempotency::NonIdempotent, |channel| {
        let request = request.clone();
        async move {
            KvClient::new(channel)
                .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                .put(request)
                .await
        }
    })
    .await?;
    Ok(Json(json::put_response(&response)))
}

/// `POST /v3/kv/deleterange`.
pub async fn kv_deleterange(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = json::delete_request(Fields::of(&body)?)?;
    let response = unary(&state, Idempotency::NonIdempotent, |channel| {
        let request = request.clone();
        async move {
            KvClient::new(channel)
                .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                .delete_range(request)
                .await
        }
    })
    .await?;
    Ok(Json(json::delete_response(&response)))
}

/// `POST /v3/kv/txn`.
pub async fn kv_txn(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = json::txn_request(Fields::of(&body)?)?;
    let idempotency = if json::txn_is_read_only(&request) {
        Idempotency::Idempotent
    } else {
        Idempotency::NonIdempotent
    };
    let response = unary(&state, idempotency, |channel| {
        let request = request.clone();
        async move {
            KvClient::new(channel)
                .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                .txn(request)
                .await
        }
    })
    .await?;
    Ok(Json(json::txn_response(&response)))
}

/// `POST /v3/kv/compaction`.
pub async fn kv_compaction(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = json::compaction_request(Fields::of(&body)?)?;
    let response = unary(&state, Idempotency::NonIdempotent, |channel| async move {
        KvClient::new(channel)
            .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
            .compact(request)
            .await
    })
    .await?;
    Ok(Json(json::header_only(response.header.as_ref())))
}

/// grpc-gateway's in-stream error object.
fn stream_error(status: &Status) -> Value {
    let http = EtcdError::http_status(status.code());
    json!({"error": {
        "grpc_code": status.code() as i32,
        "http_code": http.as_u16(),
        "message": status.message(),
        "http_status": http.canonical_reason().unwrap_or(""),
    }})
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Streams `messages` as newline-delimited `{"result": ...}` until the stream, the
/// member or the gateway (draining) ends it.
fn ndjson<M, S>(state: AppState, messages: S, render: fn(&M) -> Value) -> Response
where
    M: Send + 'static,
    S: Stream<Item = Result<M, Status>> + Send + Unpin + 'static,
{
    let guard = StreamGuard::open("etcd_stream");
    let stream = futures::stream::unfold(
        (messages, state, false, guard),
        move |(mut messages, state, done, guard)| async move {
            if done {
                return None;
            }
            let next = tokio::select! {
                biased;
                () = state.drain.closed() => {
                    let status = Status::unavailable("the gateway is shutting down");
                    return Some((Ok::<_, Infallible>(line(&stream_error(&status))), (messages, state, true, guard)));
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => Some((
                    Ok(line(&json!({"result": render(&message)}))),
                    (messages, state, false, guard),
                )),
                Some(Err(status)) => Some((Ok(line(&stream_error(&status))), (messages, state, true, guard))),
                None => None,
            }
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn refuse_if_draining(state: &AppState) -> Result<(), EtcdError> {
    if state.drain.is_draining() {
        Err(EtcdError::new(Code::Unavailable, "the gateway is shutting down"))
    } else {
        Ok(())
    }
}

/// `POST /v3/watch`: body `{"create_request": {...}}`; streams `{"result": WatchResponse}`.
pub async fn watch(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Result<Response, EtcdError> {
    refuse_if_draining(&state)?;
    let create = json::watch_create_request(Fields::of(&body)?)?;
    let stream = unary(&state, Idempotency::Idempotent, |channel| {
        let request = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create.clone())),
        };
        // The request side stays open: a closed send side would end the watch.
        let requests = futures::stream::once(async move { request }).chain(futures::stream::pending());
        async move {
            WatchClient::new(channel)
                .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                .watch(requests)
                .await
        }
    })
    .await?;
    Ok(ndjson(state, stream, json::watch_response))
}

/// `POST /v3/lease/grant`.
pub async fn lease_grant(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::LeaseGrantRequest {
        ttl: f.i64("TTL")?,
        id: f.i64("ID")?,
    };
    let response = unary(&state, Idempotency::NonIdempotent, |channel| async move {
        LeaseClient::new(channel).lease_grant(request).await
    })
    .await?;
    Ok(Json(json::lease_grant_response(&response)))
}

/// `POST /v3/lease/revoke`.
pub async fn lease_revoke(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::LeaseRevokeRequest {
        id: Fields::of(&body)?.i64("ID")?,
    };
    let response = unary(&state, Idempotency::NonIdempotent, |channel| async move {
        LeaseClient::new(channel).lease_revoke(request).await
    })
    .await?;
    Ok(Json(json::header_only(response.header.as_ref())))
}

/// `POST /v3/lease/keepalive`: one renewal, answered as one `{"result": ...}` line.
pub async fn lease_keepalive(
    Caller(state): Caller,
    EtcdJson(body): EtcdJson<Value>,
) -> Result<Response, EtcdError> {
    let id = Fields::of(&body)?.i64("ID")?;
    let response = state
        .client
        .raw_call(Idempotency::Idempotent, |channel| async move {
            let requests = futures::stream::once(async move { pb::LeaseKeepAliveRequest { id } });
            let mut responses = LeaseClient::new(channel)
                .lease_keep_alive(requests)
                .await?
                .into_inner();
            match responses.message().await? {
                Some(response) => Ok(response),
                None => Err(Status::unavailable(
                    "the keep-alive stream ended without an answer",
                )),
            }
        })
        .await
        .map_err(EtcdError::from)?;
    let mut answer = line(&json!({"result": json::lease_keep_alive_response(&response)})).into_response();
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(answer)
}

/// `POST /v3/lease/timetolive`.
pub async fn lease_timetolive(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::LeaseTimeToLiveRequest {
        id: f.i64("ID")?,
        keys: f.bool("keys")?,
    };
    let response = unary(&state, Idempotency::Idempotent, |channel| async move {
        LeaseClient::new(channel).lease_time_to_live(request).await
    })
    .await?;
    Ok(Json(json::lease_time_to_live_response(&response)))
}

/// `POST /v3/lease/leases`.
pub async fn lease_leases(Caller(state): Caller) -> Answer {
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = pb::LeaseLeasesRequest {};
        async move { LeaseClient::new(channel).lease_leases(request).await }
    })
    .await?;
    Ok(Json(json::lease_leases_response(&response)))
}

/// `POST /v3/maintenance/status`: the status of the member that answers.
pub async fn maintenance_status(Caller(state): Caller) -> Answer {
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = pb::StatusRequest {};
        async move { MaintenanceClient::new(channel).status(request).await }
    })
    .await?;
    Ok(Json(json::status_response(&response)))
}

/// `POST /v3/cluster/member/list`.
pub async fn cluster_member_list(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let linearizable = Fields::of(&body)?.bool("linearizable")?;
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = pb::MemberListRequest { linearizable };
        async move { ClusterClient::new(channel).member_list(request).await }
    })
    .await?;
    Ok(Json(json::member_list_response(&response)))
}

/// `POST /v3/election/campaign`.
pub async fn election_campaign(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = electionpb::CampaignRequest {
        name: f.bytes("name")?,
        lease: f.i64("lease")?,
        value: f.bytes("value")?,
    };
    let channel = state.client.raw_channel();
    let response = long_call(&state, async move {
        ElectionClient::new(channel).campaign(request).await
    })
    .await?;
    Ok(Json(json::campaign_response(&response)))
}

/// `POST /v3/election/proclaim`.
pub async fn election_proclaim(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = electionpb::ProclaimRequest {
        leader: f.message("leader")?.map(json::leader_key_request).transpose()?,
        value: f.bytes("value")?,
    };
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move { ElectionClient::new(channel).proclaim(request).await }
    })
    .await?;
    Ok(Json(json::header_only(response.header.as_ref())))
}

/// `POST /v3/election/leader`.
pub async fn election_leader(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = electionpb::LeaderRequest {
        name: Fields::of(&body)?.bytes("name")?,
    };
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move { ElectionClient::new(channel).leader(request).await }
    })
    .await?;
    Ok(Json(json::leader_response(&response)))
}

/// `POST /v3/election/observe`: streams `{"result": LeaderResponse}`.
pub async fn election_observe(
    Caller(state): Caller,
    EtcdJson(body): EtcdJson<Value>,
) -> Result<Response, EtcdError> {
    refuse_if_draining(&state)?;
    let request = electionpb::LeaderRequest {
        name: Fields::of(&body)?.bytes("name")?,
    };
    let stream = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move { ElectionClient::new(channel).observe(request).await }
    })
    .await?;
    Ok(ndjson(state, stream, json::leader_response))
}

/// `POST /v3/election/resign`.
pub async fn election_resign(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = electionpb::ResignRequest {
        leader: Fields::of(&body)?
            .message("leader")?
            .map(json::leader_key_request)
            .transpose()?,
    };
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move { ElectionClient::new(channel).resign(request).await }
    })
    .await?;
    Ok(Json(json::header_only(response.header.as_ref())))
}

/// `POST /v3/lock/lock`.
pub async fn lock_lock(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = lockpb::LockRequest {
        name: f.bytes("name")?,
        lease: f.i64("lease")?,
    };
    let channel = state.client.raw_channel();
    let response = long_call(
        &state,
        async move { LockClient::new(channel).lock(request).await },
    )
    .await?;
    Ok(Json(json::lock_response(&response)))
}

/// `POST /v3/lock/unlock`.
pub async fn lock_unlock(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = lockpb::UnlockRequest {
        key: Fields::of(&body)?.bytes("key")?,
    };
    let response = unary(&state, Idempotency::Idempotent, |channel| {
        let request = request.clone();
        async move { LockClient::new(channel).unlock(request).await }
    })
    .await?;
    Ok(Json(json::header_only(response.header.as_ref())))
}
