//! `POST /v1/txn`: compares, then one of two op lists, atomically at one revision.
//!
//! ```json
//! {"compare": [{"key": "/cfg", "target": "mod_revision", "result": "=", "value": 7}],
//!  "success": [{"put": {"key": "/cfg", "value": "new"}}],
//!  "failure": [{"get": {"key": "/cfg"}}]}
//! ```

use axum::Json;
use conclave_client::kv::{Delete, Get, Put};
use conclave_client::{Compare, LeaseId, Op, OpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{de_lease, lease_or_zero, EncodingQuery, KvDto};
use crate::auth::Caller;
use crate::encoding::Encoding;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Q};

/// A transaction.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TxnBody {
    /// Conditions; `success` runs when all hold, `failure` otherwise.
    #[serde(default)]
    pub compare: Vec<CompareDto>,
    /// Ops run when every compare holds.
    #[serde(default)]
    pub success: Vec<OpDto>,
    /// Ops run when some compare fails.
    #[serde(default)]
    pub failure: Vec<OpDto>,
}

/// What a compare looks at.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The value (compared as bytes; `value` is a string).
    Value,
    /// The version (0 = absent).
    Version,
    /// The create revision (0 = absent).
    CreateRevision,
    /// The mod revision (0 = absent).
    ModRevision,
    /// The lease ID (0 = none).
    Lease,
}

/// The relation of a compare.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum CompareResult {
    /// Equal.
    #[serde(rename = "=", alias = "==", alias = "equal")]
    Equal,
    /// Not equal.
    #[serde(rename = "!=", alias = "not_equal")]
    NotEqual,
    /// Greater.
    #[serde(rename = ">", alias = "greater")]
    Greater,
    /// Less.
    #[serde(rename = "<", alias = "less")]
    Less,
}

/// One condition.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompareDto {
    /// The key.
    pub key: String,
    /// Compare every key with this prefix (all must hold).
    #[serde(default)]
    pub prefix: bool,
    /// What to compare.
    pub target: CompareTarget,
    /// `=`, `!=`, `>` or `<`.
    pub result: CompareResult,
    /// A string for `value`, a number (or numeric string) otherwise.
    #[schema(value_type = Object)]
    pub value: Value,
}

/// A read in a transaction.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GetOp {
    /// The key (or prefix).
    pub key: String,
    /// Read every key with this prefix.
    #[serde(default)]
    pub prefix: bool,
    /// At most this many keys (0 = no limit).
    #[serde(default)]
    pub limit: i64,
}

/// A put in a transaction.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutOp {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Attach to this lease.
    #[serde(default, deserialize_with = "de_lease")]
    #[schema(value_type = Option<String>)]
    pub lease: Option<String>,
    /// Return the previous key-value.
    #[serde(default)]
    pub prev_kv: bool,
}

/// A delete in a transaction.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteOp {
    /// The key (or prefix).
    pub key: String,
    /// Delete every key with this prefix.
    #[serde(default)]
    pub prefix: bool,
    /// Return the deleted key-values.
    #[serde(default)]
    pub prev_kv: bool,
}

/// One operation: `{"get": {...}}`, `{"put": {...}}` or `{"delete": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpDto {
    /// A read.
    Get(GetOp),
    /// A put.
    Put(PutOp),
    /// A delete.
    Delete(DeleteOp),
}

/// The answer of one op.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpResult {
    /// A read's answer.
    Get {
        /// The keys read.
        kvs: Vec<KvDto>,
        /// Keys in the range.
        count: i64,
        /// Whether more keys exist beyond the limit.
        more: bool,
    },
    /// A put's answer.
    Put {
        /// The previous key-value, when asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        prev_kv: Option<KvDto>,
    },
    /// A delete's answer.
    Delete {
        /// Keys deleted.
        deleted: i64,
        /// The deleted key-values, when asked for.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        prev_kvs: Vec<KvDto>,
    },
}

/// Answer of a transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct TxnResult {
    /// Whether every compare held (the `success` branch ran).
    pub succeeded: bool,
    /// The revision after the transaction.
    pub revision: i64,
    /// One answer per op of the branch that ran.
    pub responses: Vec<OpResult>,
}

fn number(value: &Value) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid(format!("compare value {value} is not an integer")))
}

fn compare(dto: &CompareDto, encoding: Encoding) -> Result<Compare, ApiError> {
    let key = encoding.decode("compare key", &dto.key)?;
    let target = match dto.target {
        CompareTarget::Value => Compare::value(key.clone()),
        CompareTarget::Version => Compare::version(key.clone()),
        CompareTarget::CreateRevision => Compare::create_revision(key.clone()),
        CompareTarget::ModRevision => Compare::mod_revision(key.clone()),
        CompareTarget::Lease => Compare::lease(key.clone()),
    };
    let value: conclave_client::txn::CompareValue = match dto.target {
        CompareTarget::Value => match &dto.value {
            Value::String(s) => encoding.decode("compare value", s)?.into(),
            other => {
                return Err(ApiError::invalid(format!(
                    "a value compare needs a string, not {other}"
                )))
            }
        },
        CompareTarget::Lease => match &dto.value {
            Value::String(s) => super::parse_lease(s)?.into(),
            other => number(other)?.into(),
        },
        _ => number(&dto.value)?.into(),
    };
    let compare = match dto.result {
        CompareResult::Equal => target.eq(value),
        CompareResult::NotEqual => target.ne(value),
        CompareResult::Greater => target.gt(value),
        CompareResult::Less => target.lt(value),
    };
    Ok(if dto.prefix {
        compare.with_range_end(conclave_client::kv::prefix_end(&key))
    } else {
        compare
    })
}

fn op(dto: &OpDto, encoding: Encoding) -> Result<Op, ApiError> {
    Ok(match dto {
        OpDto::Get(get) => {
            let key = encoding.decode("key", &get.key)?;
            let request = if get.prefix {
                Get::prefix(key)
            } else {
                Get::key(key)
            };
            Op::Get(request.limit(get.limit))
        }
        OpDto::Put(put) => {
            let mut request = Put::new(
                encoding.decode("key", &put.key)?,
                encoding.decode("value", &put.value)?,
            );
            let lease = lease_or_zero(put.lease.as_deref())?;
            if lease != 0 {
                request = request.lease(LeaseId(lease));
            }
            if put.prev_kv {
                request = request.prev_kv();
            }
            Op::Put(request)
        }
        OpDto::Delete(delete) => {
            let key = encoding.decode("key", &delete.key)?;
            let mut request = if delete.prefix {
                Delete::prefix(key)
            } else {
                Delete::key(key)
            };
            if delete.prev_kv {
                request = request.prev_kv();
            }
            Op::Delete(request)
        }
    })
}

/// Entries of a transaction's answer: lenient, since the transaction may have written.
fn kvs(list: &[conclave_client::KeyValue], encoding: Encoding) -> Vec<KvDto> {
    list.iter().map(|kv| KvDto::lenient(kv, encoding)).collect()
}

fn op_result(response: OpResponse, encoding: Encoding) -> Result<OpResult, ApiError> {
    Ok(match response {
        OpResponse::Get(r) => OpResult::Get {
            kvs: kvs(&r.kvs, encoding),
            count: r.count,
            more: r.more,
        },
        OpResponse::Put(r) => OpResult::Put {
            prev_kv: r.prev_kv.map(|kv| KvDto::lenient(&kv, encoding)),
        },
        OpResponse::Delete(r) => OpResult::Delete {
            deleted: r.deleted,
            prev_kvs: kvs(&r.prev_kvs, encoding),
        },
        OpResponse::Txn(_) => return Err(ApiError::internal("nested transactions are not part of /v1/txn")),
    })
}

/// `POST /v1/txn`: an atomic compare-then-ops transaction. A transaction that only
/// reads is retried on another member on failure; one that writes is never re-sent once
/// it may have applied (504 `outcome_unknown`).
#[utoipa::path(post, path = "/v1/txn", tag = "kv",
    params(EncodingQuery),
    request_body = TxnBody,
    responses(
        (status = 200, description = "applied (see `succeeded`)", body = TxnResult),
        (status = 400, description = "`invalid_argument`", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`", body = ErrorBody)))]
pub async fn txn(
    Caller(state): Caller,
    Q(query): Q<EncodingQuery>,
    JsonBody(body): JsonBody<TxnBody>,
) -> Result<Json<TxnResult>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let compares = body
        .compare
        .iter()
        .map(|c| compare(c, encoding))
        .collect::<Result<Vec<_>, _>>()?;
    let success = body
        .success
        .iter()
        .map(|o| op(o, encoding))
        .collect::<Result<Vec<_>, _>>()?;
    let failure = body
        .failure
        .iter()
        .map(|o| op(o, encoding))
        .collect::<Result<Vec<_>, _>>()?;
    let response = state
        .client
        .txn()
        .when(compares)
        .then(success)
        .otherwise(failure)
        .await?;
    Ok(Json(TxnResult {
        succeeded: response.succeeded,
        revision: response.revision,
        responses: response
            .responses
            .into_iter()
            .map(|r| op_result(r, encoding))
            .collect::<Result<_, _>>()?,
    }))
}
