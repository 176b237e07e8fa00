//! The REST API under `/v1`: JSON in and out, keys and values as UTF-8 strings
//! (`?encoding=base64` for binary), revisions as numbers, lease IDs as decimal strings
//! (they exceed JavaScript's exact integers).

use conclave_client::KeyValue;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::encoding::Encoding;
use crate::error::ApiError;

pub mod candidates;
pub mod cluster;
pub mod election;
pub mod groups;
pub mod kv;
pub mod lease;
pub mod txn;
pub mod watch;

/// A key with its value and metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct KvDto {
    /// The key (UTF-8, or base64 with `?encoding=base64`).
    pub key: String,
    /// The value (empty with `keys_only`).
    pub value: String,
    /// Revision of the key's creation (since its last deletion).
    pub create_revision: i64,
    /// Revision of the key's last modification (also sent as the `ETag`).
    pub mod_revision: i64,
    /// Writes since creation.
    pub version: i64,
    /// The lease the key is attached to (decimal string), or null.
    pub lease: Option<String>,
    /// Present (`"base64"`) only when this entry's key and value are base64 although the
    /// request asked for UTF-8: an answer to a write that already applied is never
    /// refused for bytes that are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl KvDto {
    /// `kv` written in `encoding`.
    pub fn new(kv: &KeyValue, encoding: Encoding) -> Result<KvDto, ApiError> {
        let key = encoding.encode("key", &kv.key)?;
        Ok(KvDto {
            value: encoding.encode(&format!("the value of {key:?}"), &kv.value)?,
            key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease.map(|l| l.0.to_string()),
            encoding: None,
        })
    }

    /// `kv` in `encoding`, or in base64 (marked) when it cannot be: for answers to writes,
    /// which must not fail after the write applied.
    pub fn lenient(kv: &KeyValue, encoding: Encoding) -> KvDto {
        KvDto::new(kv, encoding).unwrap_or_else(|_| KvDto {
            key: crate::encoding::encode_base64(&kv.key),
            value: crate::encoding::encode_base64(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease.map(|l| l.0.to_string()),
            encoding: Some("base64".into()),
        })
    }
}

/// A lease ID as the API accepts it: a decimal string or number, or `0x`-prefixed hex.
pub fn parse_lease(text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse::<i64>().ok(),
    };
    parsed.ok_or_else(|| ApiError::invalid(format!("{text:?} is not a lease ID (decimal, or hex with 0x)")))
}

/// Deserializes an optional lease ID given as string or number (validated later by
/// [`parse_lease`]).
pub fn de_lease<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Number(n) => n.to_string(),
        Raw::Text(t) => t,
    }))
}

/// The optional lease of a request: 0 when absent.
pub fn lease_or_zero(lease: Option<&str>) -> Result<i64, ApiError> {
    lease.filter(|l| !l.is_empty()).map_or(Ok(0), parse_lease)
}

/// The `?encoding=` query parameter alone.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EncodingQuery {
    /// `utf8` (default) or `base64`.
    pub encoding: Option<Encoding>,
}
