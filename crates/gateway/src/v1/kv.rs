//! Keys: get, put (with compare-and-swap by `If-Match`), delete, list in bounded pages,
//! and compaction.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use conclave_client::kv::{prefix_end, Delete, Get, Put};
use conclave_client::{Compare, LeaseId, Op, OpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{de_lease, lease_or_zero, KvDto};
use crate::auth::Caller;
use crate::encoding::Encoding;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, P, Q};

/// Default page size of a listing.
pub const DEFAULT_PAGE: i64 = 100;
/// Largest page size of a listing.
pub const MAX_PAGE: i64 = 1000;

/// Query of `GET /v1/kv/{key}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// Read at this revision (default: the latest).
    pub revision: Option<i64>,
    /// Serve from the member's local state without a quorum check (faster, may be stale).
    pub serializable: Option<bool>,
    /// `utf8` (default) or `base64`, for the path key and the answer.
    pub encoding: Option<Encoding>,
}

fn etag(kv: &KvDto) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{}\"", kv.mod_revision)).ok()
}

/// `GET /v1/kv/{key}`: one key.
#[utoipa::path(get, path = "/v1/kv/{key}", tag = "kv",
    params(("key" = String, Path, description = "the key (percent-encode `/` or write it as is; base64 with ?encoding=base64)"), GetQuery),
    responses(
        (status = 200, description = "the key; `ETag` is its mod revision", body = KvDto),
        (status = 404, description = "`key_not_found`", body = ErrorBody),
        (status = 410, description = "`compacted`: the revision was compacted", body = ErrorBody)))]
pub async fn get(
    Caller(state): Caller,
    P(key): P<String>,
    Q(query): Q<GetQuery>,
) -> Result<Response, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let key_bytes = encoding.decode("key", &key)?;
    let mut get = Get::key(key_bytes).revision(query.revision.unwrap_or(0));
    if query.serializable.unwrap_or(false) {
        get = get.serializable();
    }
    let response = state.client.range(get).await?;
    let Some(kv) = response.kvs.first() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("key {key:?} not found"),
        ));
    };
    let kv = KvDto::new(kv, encoding)?;
    let mut answer = Json(&kv).into_response();
    if let Some(tag) = etag(&kv) {
        answer.headers_mut().insert(header::ETAG, tag);
    }
    Ok(answer)
}

/// Query of `PUT /v1/kv/{key}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Attach the key to this lease (the body's `lease` wins).
    pub lease: Option<String>,
    /// Return the previous key-value.
    pub prev_kv: Option<bool>,
    /// `utf8` (default) or `base64`, for the path key, the value and the answer.
    pub encoding: Option<Encoding>,
}

/// Body of `PUT /v1/kv/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutBody {
    /// The value (UTF-8, or base64 with `?encoding=base64`).
    pub value: String,
    /// Attach the key to this lease (decimal string or number).
    #[serde(default, deserialize_with = "de_lease")]
    #[schema(value_type = Option<String>)]
    pub lease: Option<String>,
}

/// Answer of a put.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutResult {
    /// The revision the put was committed at.
    pub revision: i64,
    /// The previous key-value, when asked for with `prev_kv=true` (null if none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KvDto>,
}

/// A precondition from `If-Match` / `If-None-Match`.
#[derive(Debug, PartialEq, Eq)]
enum Condition {
    /// No header.
    None,
    /// `If-None-Match: *`: only if absent.
    Absent,
    /// `If-Match: *`: only if present.
    Present,
    /// `If-Match: <mod_revision>`: only if the key's mod revision is this.
    ModRevision(i64),
}

fn condition(headers: &HeaderMap) -> Result<Condition, ApiError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().trim_start_matches("W/").trim_matches('"').to_string())
                    .map_err(|_| ApiError::invalid(format!("{name} is not text")))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::invalid("give If-Match or If-None-Match, not both")),
        (None, Some(star)) if star == "*" => Ok(Condition::Absent),
        (None, Some(other)) => Err(ApiError::invalid(format!(
            "If-None-Match supports only *, not {other:?}"
        ))),
        (Some(star), None) if star == "*" => Ok(Condition::Present),
        (Some(revision), None) => revision.parse::<i64>().map(Condition::ModRevision).map_err(|_| {
            ApiError::invalid(format!("If-Match must be * or a mod revision, not {revision:?}"))
        }),
        (None, None) => Ok(Condition::None),
    }
}

impl Condition {
    fn compare(&self, key: &[u8]) -> Option<Compare> {
        match self {
            Condition::None => None,
            Condition::Absent => Some(Compare::create_revision(key.to_vec()).eq(0)),
            Condition::Present => Some(Compare::version(key.to_vec()).gt(0)),
            Condition::ModRevision(r) => Some(Compare::mod_revision(key.to_vec()).eq(*r)),
        }
    }

    /// The 412 answer when the condition failed; `current` is the key's mod revision.
    fn failed(&self, key: &str, current: Option<i64>) -> ApiError {
        let (code, message) = match self {
            Condition::Absent => ("key_exists", format!("key {key:?} exists (If-None-Match: *)")),
            Condition::Present => (
                "key_not_found",
                format!("key {key:?} does not exist (If-Match: *)"),
            ),
            _ => (
                "revision_mismatch",
                match current {
                    Some(current) => {
                        format!("key {key:?} has mod revision {current}, not the one in If-Match")
                    }
                    None => format!("key {key:?} does not exist (If-Match names a mod revision)"),
                },
            ),
        };
        ApiError::new(StatusCode::PRECONDITION_FAILED, code, message)
    }
}

/// `PUT /v1/kv/{key}`: sets a key. Body `{"value": "...", "lease": "..."}`.
/// `If-Match: <mod_revision>` makes it a compare-and-swap (412 `revision_mismatch`),
/// `If-None-Match: *` creates only (412 `key_exists`), `If-Match: *` updates only.
#[utoipa::path(put, path = "/v1/kv/{key}", tag = "kv",
    params(("key" = String, Path, description = "the key"), PutQuery,
        ("If-Match" = Option<String>, Header, description = "`<mod_revision>` (compare-and-swap) or `*` (update only)"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body = PutBody,
    responses(
        (status = 200, description = "written", body = PutResult),
        (status = 400, description = "`invalid_argument`", body = ErrorBody),
        (status = 412, description = "`revision_mismatch`, `key_exists` or `key_not_found`", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 503, description = "`unavailable`: not applied, safe to retry", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: may have applied", body = ErrorBody)))]
pub async fn put(
    Caller(state): Caller,
    P(key): P<String>,
    Q(query): Q<PutQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Json<PutResult>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let key_bytes = encoding.decode("key", &key)?;
    let value = encoding.decode("value", &body.value)?;
    let lease = lease_or_zero(body.lease.as_deref().or(query.lease.as_deref()))?;
    let condition = condition(&headers)?;
    let mut put = Put::new(key_bytes.clone(), value);
    if lease != 0 {
        put = put.lease(LeaseId(lease));
    }
    if query.prev_kv.unwrap_or(false) {
        put = put.prev_kv();
    }
    let Some(compare) = condition.compare(&key_bytes) else {
        let response = state.client.put_with(put).await?;
        return Ok(Json(PutResult {
            revision: response.revision,
            prev_kv: response.prev_kv.map(|kv| KvDto::lenient(&kv, encoding)),
        }));
    };
    let response = state
        .client
        .txn()
        .when([compare])
        .then([Op::Put(put)])
        .otherwise([Op::Get(Get::key(key_bytes).keys_only())])
        .await?;
    if !response.succeeded {
        let current = response
            .first_get()
            .and_then(|r| r.kvs.first())
            .map(|kv| kv.mod_revision);
        return Err(condition.failed(&key, current));
    }
    let prev_kv = response.responses.into_iter().find_map(|r| match r {
        OpResponse::Put(put) => put.prev_kv,
        _ => None,
    });
    Ok(Json(PutResult {
        revision: response.revision,
        prev_kv: prev_kv.map(|kv| KvDto::lenient(&kv, encoding)),
    }))
}

/// Query of `DELETE /v1/kv/{key}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete every key starting with the path key.
    pub prefix: Option<bool>,
    /// Return the deleted key-values.
    pub prev_kv: Option<bool>,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<Encoding>,
}

/// Answer of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResult {
    /// How many keys were deleted (0 when none existed).
    pub deleted: i64,
    /// The revision after the delete.
    pub revision: i64,
    /// The deleted key-values, when asked for with `prev_kv=true`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prev_kvs: Vec<KvDto>,
}

/// `DELETE /v1/kv/{key}[?prefix=true]`: deletes a key or a prefix. `If-Match:
/// <mod_revision>` deletes only that version of the key (412 otherwise).
#[utoipa::path(delete, path = "/v1/kv/{key}", tag = "kv",
    params(("key" = String, Path, description = "the key or prefix"), DeleteQuery,
        ("If-Match" = Option<String>, Header, description = "`<mod_revision>`: delete only that version")),
    responses(
        (status = 200, description = "deleted (`deleted` may be 0)", body = DeleteResult),
        (status = 412, description = "`revision_mismatch`", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`", body = ErrorBody)))]
pub async fn delete(
    Caller(state): Caller,
    P(key): P<String>,
    Q(query): Q<DeleteQuery>,
    headers: HeaderMap,
) -> Result<Json<DeleteResult>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let key_bytes = encoding.decode("key", &key)?;
    let prefix = query.prefix.unwrap_or(false);
    let mut delete = if prefix {
        Delete::prefix(key_bytes.clone())
    } else {
        Delete::key(key_bytes.clone())
    };
    if query.prev_kv.unwrap_or(false) {
        delete = delete.prev_kv();
    }
    let condition = condition(&headers)?;
    if condition != Condition::None && prefix {
        return Err(ApiError::invalid(
            "If-Match applies to one key, not with prefix=true",
        ));
    }
    let Some(compare) = condition.compare(&key_bytes) else {
        let response = state.client.delete_with(delete).await?;
        return Ok(Json(DeleteResult {
            deleted: response.deleted,
            revision: response.revision,
            prev_kvs: response
                .prev_kvs
                .iter()
                .map(|kv| KvDto::lenient(kv, encoding))
                .collect(),
        }));
    };
    let response = state
        .client
        .txn()
        .when([compare])
        .then([Op::Delete(delete)])
        .otherwise([Op::Get(Get::key(key_bytes).keys_only())])
        .await?;
    if !response.succeeded {
        let current = response
            .first_get()
            .and_then(|r| r.kvs.first())
            .map(|kv| kv.mod_revision);
        return Err(condition.failed(&key, current));
    }
    let deleted = response.responses.into_iter().find_map(|r| match r {
        OpResponse::Delete(d) => Some(d),
        _ => None,
    });
    let (count, prev_kvs) = deleted.map_or((0, Vec::new()), |d| (d.deleted, d.prev_kvs));
    Ok(Json(DeleteResult {
        deleted: count,
        revision: response.revision,
        prev_kvs: prev_kvs.iter().map(|kv| KvDto::lenient(kv, encoding)).collect(),
    }))
}

/// Query of `GET /v1/kv` (listing).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// List keys starting with this prefix (default: every key).
    pub prefix: Option<String>,
    /// Page size: default 100, at most 1000.
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page (opaque).
    pub after: Option<String>,
    /// Leave values out.
    pub keys_only: Option<bool>,
    /// Serve from the member's local state without a quorum check.
    pub serializable: Option<bool>,
    /// `utf8` (default) or `base64`, for the prefix and the answer.
    pub encoding: Option<Encoding>,
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResult {
    /// The keys of this page, in key order.
    pub kvs: Vec<KvDto>,
    /// The revision every page of this listing is read at.
    pub revision: i64,
    /// Whether more keys follow.
    pub more: bool,
    /// The cursor of the next page (pass as `after`), null on the last page.
    pub next: Option<String>,
}

/// The cursor: the revision of the listing and the first key of the next page.
pub fn encode_cursor(revision: i64, next_key: &[u8]) -> String {
    let mut bytes = revision.to_be_bytes().to_vec();
    bytes.extend_from_slice(next_key);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<(i64, Vec<u8>)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    let (revision, key) = bytes.split_at_checked(8)?;
    let revision = i64::from_be_bytes(revision.try_into().ok()?);
    (revision > 0).then(|| (revision, key.to_vec()))
}

/// `GET /v1/kv?prefix=&limit=&after=`: lists keys in pages of at most 1000, every page
/// read at the revision of the first (so the listing is one consistent snapshot).
#[utoipa::path(get, path = "/v1/kv", tag = "kv",
    params(ListQuery),
    responses(
        (status = 200, description = "one page", body = ListResult),
        (status = 400, description = "`invalid_argument` (bad cursor, limit above 1000)", body = ErrorBody),
        (status = 410, description = "`compacted`: the listing's revision was compacted; start again", body = ErrorBody)))]
pub async fn list(Caller(state): Caller, Q(query): Q<ListQuery>) -> Result<Json<ListResult>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, not {limit}"
        )));
    }
    let prefix = encoding.decode("prefix", query.prefix.as_deref().unwrap_or(""))?;
    // etcd's "every key" range is ["\0", "\0").
    let (start, end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        let end = prefix_end(&prefix);
        (prefix, end)
    };
    let (revision, from) = match query.after.as_deref().filter(|a| !a.is_empty()) {
        None => (0, start.clone()),
        Some(cursor) => {
            let (revision, key) = decode_cursor(cursor)
                .ok_or_else(|| ApiError::invalid("after is not a cursor of this API"))?;
            let inside = key >= start && (end == [0] || key < end);
            if !inside {
                return Err(ApiError::invalid("the cursor belongs to another prefix"));
            }
            (revision, key)
        }
    };
    let mut get = Get::range(from, end).limit(limit).revision(revision);
    if query.keys_only.unwrap_or(false) {
        get = get.keys_only();
    }
    // Later pages read at the first page's revision: linearizably, so a member that has
    // not applied that revision yet waits for it instead of answering "future revision"
    // (the answer is the same either way: the data at a fixed revision).
    if query.serializable.unwrap_or(false) && revision == 0 {
        get = get.serializable();
    }
    let response = state.client.range(get).await?;
    let revision = if revision == 0 {
        response.revision
    } else {
        revision
    };
    let next = match (response.more, response.kvs.last()) {
        (true, Some(last)) => {
            let mut next_key = last.key.clone();
            next_key.push(0);
            Some(encode_cursor(revision, &next_key))
        }
        _ => None,
    };
    Ok(Json(ListResult {
        kvs: response
            .kvs
            .iter()
            .map(|kv| KvDto::new(kv, encoding))
            .collect::<Result<_, _>>()?,
        revision,
        more: next.is_some(),
        next,
    }))
}

/// Body of `POST /v1/compact`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompactBody {
    /// Drop history below this revision.
    pub revision: i64,
    /// Wait until the compaction is applied to storage.
    #[serde(default)]
    pub physical: bool,
}

/// Answer of a compaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompactResult {
    /// The store revision at the time of the compaction.
    pub revision: i64,
}

/// `POST /v1/compact`: discards history below a revision.
#[utoipa::path(post, path = "/v1/compact", tag = "kv",
    request_body = CompactBody,
    responses(
        (status = 200, description = "compacted", body = CompactResult),
        (status = 400, description = "`future_revision`", body = ErrorBody),
        (status = 410, description = "`compacted`: already compacted past it", body = ErrorBody)))]
pub async fn compact(
    Caller(state): Caller,
    JsonBody(body): JsonBody<CompactBody>,
) -> Result<Json<CompactResult>, ApiError> {
    let revision = state.client.compact(body.revision, body.physical).await?;
    Ok(Json(CompactResult { revision }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = encode_cursor(42, b"/app/x\0");
        assert_eq!(decode_cursor(&cursor), Some((42, b"/app/x\0".to_vec())));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode([1, 2])), None);
    }

    #[test]
    fn conditions_come_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(condition(&headers).unwrap(), Condition::None);
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(condition(&headers).unwrap(), Condition::ModRevision(7));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(condition(&headers).is_err());
        headers.remove(header::IF_MATCH);
        assert_eq!(condition(&headers).unwrap(), Condition::Absent);
    }
}
