//! Conversions between the etcd wire types (`conclave-proto`) and the MVCC engine's types.
//! Field semantics follow etcd exactly; enum values outside the known range are mapped to
//! an `InvalidArgument` error instead of being guessed.

use conclave_mvcc as mvcc;
use conclave_proto::etcdserverpb as pb;
use conclave_proto::mvccpb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::range_request::{SortOrder, SortTarget};
use tonic::Status;

fn invalid(what: &str, value: i32) -> Status {
    Status::invalid_argument(format!("etcdserver: invalid {what} {value}"))
}

/// A stored key-value in wire form.
pub fn kv_to_pb(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An MVCC event in wire form.
pub fn event_to_pb(event: mvcc::Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match event.kind {
            mvcc::EventKind::Put => mvccpb::event::EventType::Put as i32,
            mvcc::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv_to_pb(event.kv)),
        prev_kv: event.prev_kv.map(kv_to_pb),
    }
}

/// Range request from the wire.
pub fn range_from_pb(r: pb::RangeRequest) -> Result<mvcc::RangeRequest, Status> {
    let sort_order =
        match SortOrder::try_from(r.sort_order).map_err(|_| invalid("sort order", r.sort_order))? {
            SortOrder::None => mvcc::SortOrder::None,
            SortOrder::Ascend => mvcc::SortOrder::Ascend,
            SortOrder::Descend => mvcc::SortOrder::Descend,
        };
    let sort_target =
        match SortTarget::try_from(r.sort_target).map_err(|_| invalid("sort target", r.sort_target))? {
            SortTarget::Key => mvcc::SortTarget::Key,
            SortTarget::Version => mvcc::SortTarget::Version,
            SortTarget::Create => mvcc::SortTarget::Create,
            SortTarget::Mod => mvcc::SortTarget::Mod,
            SortTarget::Value => mvcc::SortTarget::Value,
        };
    Ok(mvcc::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// Put request from the wire.
pub fn put_from_pb(r: pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// DeleteRange request from the wire.
pub fn delete_from_pb(r: pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

fn compare_from_pb(c: pb::Compare) -> Result<mvcc::Compare, Status> {
    let result = match CompareResult::try_from(c.result).map_err(|_| invalid("compare result", c.result))? {
        CompareResult::Equal => mvcc::CompareResult::Equal,
        CompareResult::Greater => mvcc::CompareResult::Greater,
        CompareResult::Less => mvcc::CompareResult::Less,
        CompareResult::NotEqual => mvcc::CompareResult::NotEqual,
    };
    let target = CompareTarget::try_from(c.target).map_err(|_| invalid("compare target", c.target))?;
    // etcd reads the union member that matches `target`; a missing member compares as zero.
    let union = c.target_union;
    let target = match target {
        CompareTarget::Version => mvcc::CompareTarget::Version(match union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        CompareTarget::Create => mvcc::CompareTarget::Create(match union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        CompareTarget::Mod => mvcc::CompareTarget::Mod(match union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        CompareTarget::Value => mvcc::CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        CompareTarget::Lease => mvcc::CompareTarget::Lease(match union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
    };
    Ok(mvcc::Compare {
        key: c.key,
        range_end: c.range_end,
        result,
        target,
    })
}

fn op_from_pb(op: pb::RequestOp) -> Result<mvcc::RequestOp, Status> {
    use pb::request_op::Request;
    match op.request {
        Some(Request::RequestRange(r)) => Ok(mvcc::RequestOp::Range(range_from_pb(r)?)),
        Some(Request::RequestPut(r)) => Ok(mvcc::RequestOp::Put(put_from_pb(r))),
        Some(Request::RequestDeleteRange(r)) => Ok(mvcc::RequestOp::DeleteRange(delete_from_pb(r))),
        Some(Request::RequestTxn(r)) => Ok(mvcc::RequestOp::Txn(txn_from_pb(r)?)),
        None => Err(Status::invalid_argument(
            "etcdserver: txn operation has no request",
        )),
    }
}

/// Txn request from the wire.
pub fn txn_from_pb(t: pb::TxnRequest) -> Result<mvcc::TxnRequest, Status> {
    Ok(mvcc::TxnRequest {
        compare: t
            .compare
            .into_iter()
            .map(compare_from_pb)
            .collect::<Result<_, _>>()?,
        success: t.success.into_iter().map(op_from_pb).collect::<Result<_, _>>()?,
        failure: t.failure.into_iter().map(op_from_pb).collect::<Result<_, _>>()?,
    })
}

/// A header carrying only a revision, as etcd puts on responses nested in a txn.
fn nested_header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Range response to the wire.
pub fn range_to_pb(r: mvcc::RangeResponse, header: Option<pb::ResponseHeader>) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

/// Put response to the wire.
pub fn put_to_pb(r: mvcc::PutResponse, header: Option<pb::ResponseHeader>) -> pb::PutResponse {
    pb::PutResponse {
        header,
        prev_kv: r.prev_kv.map(kv_to_pb),
    }
}

/// DeleteRange response to the wire.
pub fn delete_to_pb(
    r: mvcc::DeleteRangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header,
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

/// Txn response to the wire; nested responses get revision-only headers.
pub fn txn_to_pb(r: mvcc::TxnResponse, header: Option<pb::ResponseHeader>, revision: i64) -> pb::TxnResponse {
    use pb::response_op::Response;
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                mvcc::ResponseOp::Range(r) => {
                    Response::ResponseRange(range_to_pb(r, nested_header(revision)))
                }
                mvcc::ResponseOp::Put(r) => Response::ResponsePut(put_to_pb(r, nested_header(revision))),
                mvcc::ResponseOp::DeleteRange(r) => {
                    Response::ResponseDeleteRange(delete_to_pb(r, nested_header(revision)))
                }
                mvcc::ResponseOp::Txn(r) => {
                    Response::ResponseTxn(txn_to_pb(r, nested_header(revision), revision))
                }
            }),
        })
        .collect();
    pb::TxnResponse {
        header,
        succeeded: r.succeeded,
        responses,
    }
}
