//! etcd's JSON gateway mapping, by hand: grpc-gateway's `jsonpb` with `OrigName: true`
//! as etcd configures it.
//!
//! Out: field names as in the `.proto` (`range_end`, `TTL`, `grantedTTL`, `peerURLs`),
//! `bytes` as standard base64, `int64`/`uint64` as decimal strings, enums by name,
//! fields with default values (0, false, "", empty lists, absent messages) omitted.
//! In: either the `.proto` name or its lowerCamelCase JSON name, integers as strings or
//! numbers, enums by name or number, bytes in any base64 alphabet; unknown fields are
//! ignored.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use conclave_proto::etcdserverpb as pb;
use conclave_proto::mvccpb;
use conclave_proto::{v3electionpb, v3lockpb};
use serde_json::{Map, Value};
use tonic::Code;

use crate::encoding::decode_base64;
use crate::error::EtcdError;

/// A JSON object being read, with etcd's name rules.
#[derive(Clone, Copy)]
pub struct Fields<'a>(&'a Map<String, Value>);

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn bad(message: String) -> EtcdError {
    EtcdError::new(Code::InvalidArgument, message)
}

impl<'a> Fields<'a> {
    /// The fields of `value`, which must be an object (or null).
    pub fn of(value: &'a Value) -> Result<Fields<'a>, EtcdError> {
        match value {
            Value::Object(map) => Ok(Fields(map)),
            Value::Null => Ok(Fields(&EMPTY)),
            other => Err(bad(format!("expected a JSON object, got {other}"))),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .get(name)
            .or_else(|| self.0.get(&camel(name)))
            .filter(|v| !v.is_null())
    }

    /// A `bytes` field (base64).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, EtcdError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::String(text)) => {
                decode_base64(text).ok_or_else(|| bad(format!("{name}: {text:?} is not base64")))
            }
            Some(other) => Err(bad(format!("{name}: expected a base64 string, got {other}"))),
        }
    }

    /// An `int64` field (string or number).
    pub fn i64(&self, name: &str) -> Result<i64, EtcdError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| bad(format!("{name}: {n} is not an int64"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| bad(format!("{name}: {s:?} is not an int64"))),
            Some(other) => Err(bad(format!("{name}: expected an integer, got {other}"))),
        }
    }

    /// A `uint64` field (string or number).
    pub fn u64(&self, name: &str) -> Result<u64, EtcdError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| bad(format!("{name}: {n} is not a uint64"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| bad(format!("{name}: {s:?} is not a uint64"))),
            Some(other) => Err(bad(format!("{name}: expected an integer, got {other}"))),
        }
    }

    /// A `string` field.
    pub fn string(&self, name: &str) -> Result<String, EtcdError> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(bad(format!("{name}: expected a string, got {other}"))),
        }
    }

    /// A `bool` field.
    pub fn bool(&self, name: &str) -> Result<bool, EtcdError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(other) => Err(bad(format!("{name}: expected a boolean, got {other}"))),
        }
    }

    /// An enum field, by name (through `from_name`) or number.
    pub fn enumeration(&self, name: &str, from_name: fn(&str) -> Option<i32>) -> Result<i32, EtcdError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| bad(format!("{name}: {n} is not an enum number"))),
            Some(Value::String(s)) => from_name(s).ok_or_else(|| bad(format!("{name}: unknown value {s:?}"))),
            Some(other) => Err(bad(format!("{name}: expected an enum name, got {other}"))),
        }
    }

    /// A message field.
    pub fn message(&self, name: &str) -> Result<Option<Fields<'a>>, EtcdError> {
        self.get(name).map(Fields::of).transpose()
    }

    /// A repeated field.
    pub fn list(&self, name: &str) -> Result<&'a [Value], EtcdError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(bad(format!("{name}: expected a list, got {other}"))),
        }
    }

    /// Whether the field is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A JSON object being written, leaving default values out.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj::default()
    }

    /// An `int64` field.
    pub fn i64(mut self, name: &str, value: i64) -> Obj {
        if value != 0 {
            self.0.insert(name.into(), Value::String(value.to_string()));
        }
        self
    }

    /// A `uint64` field.
    pub fn u64(mut self, name: &str, value: u64) -> Obj {
        if value != 0 {
            self.0.insert(name.into(), Value::String(value.to_string()));
        }
        self
    }

    /// A `uint32` field (a JSON number, as jsonpb writes 32-bit integers).
    pub fn u32(mut self, name: &str, value: u32) -> Obj {
        if value != 0 {
            self.0.insert(name.into(), Value::from(value));
        }
        self
    }

    /// A `bool` field.
    pub fn bool(mut self, name: &str, value: bool) -> Obj {
        if value {
            self.0.insert(name.into(), Value::Bool(true));
        }
        self
    }

    /// A `bytes` field.
    pub fn bytes(mut self, name: &str, value: &[u8]) -> Obj {
        if !value.is_empty() {
            self.0.insert(name.into(), Value::String(STANDARD.encode(value)));
        }
        self
    }

    /// A `string` field.
    pub fn string(mut self, name: &str, value: &str) -> Obj {
        if !value.is_empty() {
            self.0.insert(name.into(), Value::String(value.into()));
        }
        self
    }

    /// A repeated `string` field.
    pub fn strings(mut self, name: &str, values: &[String]) -> Obj {
        if !values.is_empty() {
            self.0.insert(name.into(), Value::from(values.to_vec()));
        }
        self
    }

    /// An enum field by name (`default` is the zero value's name, left out).
    pub fn enumeration(mut self, name: &str, value: &str, default: &str) -> Obj {
        if value != default {
            self.0.insert(name.into(), Value::String(value.into()));
        }
        self
    }

    /// A message field.
    pub fn message(mut self, name: &str, value: Option<Value>) -> Obj {
        if let Some(value) = value {
            self.0.insert(name.into(), value);
        }
        self
    }

    /// A repeated message field.
    pub fn messages(mut self, name: &str, values: Vec<Value>) -> Obj {
        if !values.is_empty() {
            self.0.insert(name.into(), Value::Array(values));
        }
        self
    }

    /// The finished object.
    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

// ---------------------------------------------------------------------------------
// Out: protobuf → JSON
// ---------------------------------------------------------------------------------

/// `ResponseHeader`.
pub fn header(h: Option<&pb::ResponseHeader>) -> Option<Value> {
    h.map(|h| {
        Obj::new()
            .u64("cluster_id", h.cluster_id)
            .u64("member_id", h.member_id)
            .i64("revision", h.revision)
            .u64("raft_term", h.raft_term)
            .done()
    })
}

/// `mvccpb.KeyValue`.
pub fn kv(kv: &mvccpb::KeyValue) -> Value {
    Obj::new()
        .bytes("key", &kv.key)
        .i64("create_revision", kv.create_revision)
        .i64("mod_revision", kv.mod_revision)
        .i64("version", kv.version)
        .bytes("value", &kv.value)
        .i64("lease", kv.lease)
        .done()
}

/// `mvccpb.Event`.
pub fn event(e: &mvccpb::Event) -> Value {
    let kind = mvccpb::event::EventType::try_from(e.r#type).map_or("PUT", |t| t.as_str_name());
    Obj::new()
        .enumeration("type", kind, "PUT")
        .message("kv", e.kv.as_ref().map(kv))
        .message("prev_kv", e.prev_kv.as_ref().map(kv))
        .done()
}

/// `RangeResponse`.
pub fn range_response(r: &pb::RangeResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .messages("kvs", r.kvs.iter().map(kv).collect())
        .bool("more", r.more)
        .i64("count", r.count)
        .done()
}

/// `PutResponse`.
pub fn put_response(r: &pb::PutResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .message("prev_kv", r.prev_kv.as_ref().map(kv))
        .done()
}

/// `DeleteRangeResponse`.
pub fn delete_response(r: &pb::DeleteRangeResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .i64("deleted", r.deleted)
        .messages("prev_kvs", r.prev_kvs.iter().map(kv).collect())
        .done()
}

/// `TxnResponse`.
pub fn txn_response(r: &pb::TxnResponse) -> Value {
    use pb::response_op::Response;
    let responses = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(Response::ResponseRange(x)) => Obj::new().message("response_range", Some(range_response(x))),
            Some(Response::ResponsePut(x)) => Obj::new().message("response_put", Some(put_response(x))),
            Some(Response::ResponseDeleteRange(x)) => {
                Obj::new().message("response_delete_range", Some(delete_response(x)))
            }
            Some(Response::ResponseTxn(x)) => Obj::new().message("response_txn", Some(txn_response(x))),
            None => Obj::new(),
        })
        .map(Obj::done)
        .collect();
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .bool("succeeded", r.succeeded)
        .messages("responses", responses)
        .done()
}

/// A response with only a header (`CompactionResponse`, `LeaseRevokeResponse`, ...).
pub fn header_only(h: Option<&pb::ResponseHeader>) -> Value {
    Obj::new().message("header", header(h)).done()
}

/// `WatchResponse`.
pub fn watch_response(r: &pb::WatchResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .i64("watch_id", r.watch_id)
        .bool("created", r.created)
        .bool("canceled", r.canceled)
        .i64("compact_revision", r.compact_revision)
        .string("cancel_reason", &r.cancel_reason)
        .bool("fragment", r.fragment)
        .messages("events", r.events.iter().map(event).collect())
        .done()
}

/// `LeaseGrantResponse`.
pub fn lease_grant_response(r: &pb::LeaseGrantResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .i64("ID", r.id)
        .i64("TTL", r.ttl)
        .string("error", &r.error)
        .done()
}

/// `LeaseKeepAliveResponse`.
pub fn lease_keep_alive_response(r: &pb::LeaseKeepAliveResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .i64("ID", r.id)
        .i64("TTL", r.ttl)
        .done()
}

/// `LeaseTimeToLiveResponse`.
pub fn lease_time_to_live_response(r: &pb::LeaseTimeToLiveResponse) -> Value {
    let keys: Vec<Value> = r.keys.iter().map(|k| Value::String(STANDARD.encode(k))).collect();
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .i64("ID", r.id)
        .i64("TTL", r.ttl)
        .i64("grantedTTL", r.granted_ttl)
        .messages("keys", keys)
        .done()
}

/// `LeaseLeasesResponse`.
pub fn lease_leases_response(r: &pb::LeaseLeasesResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .messages(
            "leases",
            r.leases
                .iter()
                .map(|l| Obj::new().i64("ID", l.id).done())
                .collect(),
        )
        .done()
}

/// `StatusResponse`.
pub fn status_response(r: &pb::StatusResponse) -> Value {
    let downgrade = r.downgrade_info.as_ref().map(|d| {
        Obj::new()
            .bool("enabled", d.enabled)
            .string("targetVersion", &d.target_version)
            .done()
    });
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .string("version", &r.version)
        .i64("dbSize", r.db_size)
        .u64("leader", r.leader)
        .u64("raftIndex", r.raft_index)
        .u64("raftTerm", r.raft_term)
        .u64("raftAppliedIndex", r.raft_applied_index)
        .strings("errors", &r.errors)
        .i64("dbSizeInUse", r.db_size_in_use)
        .bool("isLearner", r.is_learner)
        .string("storageVersion", &r.storage_version)
        .i64("dbSizeQuota", r.db_size_quota)
        .message("downgradeInfo", downgrade)
        .done()
}

/// `Member`.
pub fn member(m: &pb::Member) -> Value {
    Obj::new()
        .u64("ID", m.id)
        .string("name", &m.name)
        .strings("peerURLs", &m.peer_ur_ls)
        .strings("clientURLs", &m.client_ur_ls)
        .bool("isLearner", m.is_learner)
        .done()
}

/// `MemberListResponse`.
pub fn member_list_response(r: &pb::MemberListResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .messages("members", r.members.iter().map(member).collect())
        .done()
}

/// `v3electionpb.LeaderKey`.
pub fn leader_key(k: &v3electionpb::LeaderKey) -> Value {
    Obj::new()
        .bytes("name", &k.name)
        .bytes("key", &k.key)
        .i64("rev", k.rev)
        .i64("lease", k.lease)
        .done()
}

/// `v3electionpb.CampaignResponse`.
pub fn campaign_response(r: &v3electionpb::CampaignResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .message("leader", r.leader.as_ref().map(leader_key))
        .done()
}

/// `v3electionpb.LeaderResponse`.
pub fn leader_response(r: &v3electionpb::LeaderResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .message("kv", r.kv.as_ref().map(kv))
        .done()
}

/// `v3lockpb.LockResponse`.
pub fn lock_response(r: &v3lockpb::LockResponse) -> Value {
    Obj::new()
        .message("header", header(r.header.as_ref()))
        .bytes("key", &r.key)
        .done()
}

// ---------------------------------------------------------------------------------
// In: JSON → protobuf
// ---------------------------------------------------------------------------------

/// `RangeRequest`.
pub fn range_request(f: Fields<'_>) -> Result<pb::RangeRequest, EtcdError> {
    Ok(pb::RangeRequest {
        key: f.bytes("key")?,
        range_end: f.bytes("range_end")?,
        limit: f.i64("limit")?,
        revision: f.i64("revision")?,
        sort_order: f.enumeration("sort_order", |s| {
            pb::range_request::SortOrder::from_str_name(s).map(|v| v as i32)
        })?,
        sort_target: f.enumeration("sort_target", |s| {
            pb::range_request::SortTarget::from_str_name(s).map(|v| v as i32)
        })?,
        serializable: f.bool("serializable")?,
        keys_only: f.bool("keys_only")?,
        count_only: f.bool("count_only")?,
        min_mod_revision: f.i64("min_mod_revision")?,
        max_mod_revision: f.i64("max_mod_revision")?,
        min_create_revision: f.i64("min_create_revision")?,
        max_create_revision: f.i64("max_create_revision")?,
    })
}

/// `PutRequest`.
pub fn put_request(f: Fields<'_>) -> Result<pb::PutRequest, EtcdError> {
    Ok(pb::PutRequest {
        key: f.bytes("key")?,
        value: f.bytes("value")?,
        lease: f.i64("lease")?,
        prev_kv: f.bool("prev_kv")?,
        ignore_value: f.bool("ignore_value")?,
        ignore_lease: f.bool("ignore_lease")?,
    })
}

/// `DeleteRangeRequest`.
pub fn delete_request(f: Fields<'_>) -> Result<pb::DeleteRangeRequest, EtcdError> {
    Ok(pb::DeleteRangeRequest {
        key: f.bytes("key")?,
        range_end: f.bytes("range_end")?,
        prev_kv: f.bool("prev_kv")?,
    })
}

fn compare(f: Fields<'_>) -> Result<pb::Compare, EtcdError> {
    use pb::compare::TargetUnion;
    let target = f.enumeration("target", |s| {
        pb::compare::CompareTarget::from_str_name(s).map(|v| v as i32)
    })?;
    let target_union = if f.has("version") {
        Some(TargetUnion::Version(f.i64("version")?))
    } else if f.has("create_revision") {
        Some(TargetUnion::CreateRevision(f.i64("create_revision")?))
    } else if f.has("mod_revision") {
        Some(TargetUnion::ModRevision(f.i64("mod_revision")?))
    } else if f.has("value") {
        Some(TargetUnion::Value(f.bytes("value")?))
    } else if f.has("lease") {
        Some(TargetUnion::Lease(f.i64("lease")?))
    } else {
        // jsonpb leaves an all-default oneof out: the zero of the target's own kind.
        match pb::compare::CompareTarget::try_from(target) {
            Ok(pb::compare::CompareTarget::Create) => Some(TargetUnion::CreateRevision(0)),
            Ok(pb::compare::CompareTarget::Mod) => Some(TargetUnion::ModRevision(0)),
            Ok(pb::compare::CompareTarget::Value) => Some(TargetUnion::Value(Vec::new())),
            Ok(pb::compare::CompareTarget::Lease) => Some(TargetUnion::Lease(0)),
            _ => Some(TargetUnion::Version(0)),
        }
    };
    Ok(pb::Compare {
        result: f.enumeration("result", |s| {
            pb::compare::CompareResult::from_str_name(s).map(|v| v as i32)
        })?,
        target,
        key: f.bytes("key")?,
        range_end: f.bytes("range_end")?,
        target_union,
    })
}

fn request_op(f: Fields<'_>) -> Result<pb::RequestOp, EtcdError> {
    use pb::request_op::Request;
    let request = if let Some(x) = f.message("request_range")? {
        Some(Request::RequestRange(range_request(x)?))
    } else if let Some(x) = f.message("request_put")? {
        Some(Request::RequestPut(put_request(x)?))
    } else if let Some(x) = f.message("request_delete_range")? {
        Some(Request::RequestDeleteRange(delete_request(x)?))
    } else if let Some(x) = f.message("request_txn")? {
        Some(Request::RequestTxn(txn_request(x)?))
    } else {
        None
    };
    Ok(pb::RequestOp { request })
}

fn each<T>(items: &[Value], parse: fn(Fields<'_>) -> Result<T, EtcdError>) -> Result<Vec<T>, EtcdError> {
    items
        .iter()
        .map(|item| Fields::of(item).and_then(parse))
        .collect()
}

/// `TxnRequest`.
pub fn txn_request(f: Fields<'_>) -> Result<pb::TxnRequest, EtcdError> {
    Ok(pb::TxnRequest {
        compare: each(f.list("compare")?, compare)?,
        success: each(f.list("success")?, request_op)?,
        failure: each(f.list("failure")?, request_op)?,
    })
}

/// Whether a txn only reads (then it may be retried like a read).
pub fn txn_is_read_only(txn: &pb::TxnRequest) -> bool {
    use pb::request_op::Request;
    txn.success
        .iter()
        .chain(&txn.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(inner)) => txn_is_read_only(inner),
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        })
}

/// `CompactionRequest`.
pub fn compaction_request(f: Fields<'_>) -> Result<pb::CompactionRequest, EtcdError> {
    Ok(pb::CompactionRequest {
        revision: f.i64("revision")?,
        physical: f.bool("physical")?,
    })
}

/// The `create_request` of a `WatchRequest`.
pub fn watch_create_request(f: Fields<'_>) -> Result<pb::WatchCreateRequest, EtcdError> {
    let create = f
        .message("create_request")?
        .ok_or_else(|| bad("the gateway's watch takes a WatchRequest with create_request".into()))?;
    let filters = create
        .list("filters")?
        .iter()
        .map(|v| match v {
            Value::String(s) => pb::watch_create_request::FilterType::from_str_name(s)
                .map(|t| t as i32)
                .ok_or_else(|| bad(format!("filters: unknown value {s:?}"))),
            Value::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| bad(format!("filters: {n} is not an enum number"))),
            other => Err(bad(format!("filters: unexpected {other}"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::WatchCreateRequest {
        key: create.bytes("key")?,
        range_end: create.bytes("range_end")?,
        start_revision: create.i64("start_revision")?,
        progress_notify: create.bool("progress_notify")?,
        filters,
        prev_kv: create.bool("prev_kv")?,
        watch_id: create.i64("watch_id")?,
        fragment: create.bool("fragment")?,
    })
}

/// `v3electionpb.LeaderKey`.
pub fn leader_key_request(f: Fields<'_>) -> Result<v3electionpb::LeaderKey, EtcdError> {
    Ok(v3electionpb::LeaderKey {
        name: f.bytes("name")?,
        key: f.bytes("key")?,
        rev: f.i64("rev")?,
        lease: f.i64("lease")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_follows_grpc_gateway() {
        let value = kv(&mvccpb::KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            value: Vec::new(),
            lease: 0,
        });
        assert_eq!(
            value,
            json!({"key": "Zm9v", "create_revision": "2", "mod_revision": "3", "version": "1"})
        );
        let delete = event(&mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: None,
            prev_kv: None,
        });
        assert_eq!(delete, json!({"type": "DELETE"}));
        let member = member(&pb::Member {
            id: 7,
            name: "n1".into(),
            peer_ur_ls: vec!["http://p".into()],
            client_ur_ls: vec![],
            is_learner: false,
        });
        assert_eq!(member, json!({"ID": "7", "name": "n1", "peerURLs": ["http://p"]}));
    }

    #[test]
    fn input_takes_both_names_and_both_number_forms() {
        let body =
            json!({"key": "Zm9v", "rangeEnd": "Zm9w", "limit": "5", "revision": 3, "sort_order": "DESCEND"});
        let request = range_request(Fields::of(&body).unwrap()).unwrap();
        assert_eq!(request.key, b"foo");
        assert_eq!(request.range_end, b"fop");
        assert_eq!(request.limit, 5);
        assert_eq!(request.revision, 3);
        assert_eq!(request.sort_order, pb::range_request::SortOrder::Descend as i32);
        let bad = json!({"limit": "x"});
        assert!(range_request(Fields::of(&bad).unwrap()).is_err());
        let txn = json!({"compare": [{"target": "MOD", "key": "YQ==", "result": "EQUAL"}],
                         "success": [{"request_put": {"key": "YQ==", "value": "Yg=="}}]});
        let txn = txn_request(Fields::of(&txn).unwrap()).unwrap();
        assert_eq!(
            txn.compare[0].target_union,
            Some(pb::compare::TargetUnion::ModRevision(0))
        );
        assert!(!txn_is_read_only(&txn));
    }
}
