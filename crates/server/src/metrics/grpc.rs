//! gRPC call counters as go-grpc-prometheus names them (what etcd exports):
//! `grpc_server_started_total` and `grpc_server_handled_total`, labelled with
//! `grpc_type`, `grpc_service`, `grpc_method` and (handled) `grpc_code`; and etcd's client
//! traffic counters `etcd_network_client_grpc_{received,sent}_bytes_total`.
//!
//! A tower layer around the client port's router. A call is handled when its status is
//! known: in the response headers (a "trailers-only" reply, how errors and most refusals
//! travel) or in the trailers that end the response body. A call whose response body is
//! dropped before its trailers (the client went away) counts as `Canceled`, as in Go.
//! Only the methods this member serves are counted, so a client cannot grow the label
//! set with made-up paths.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, Opts};
use tower_layer::Layer;
use tower_service::Service;

/// The kind of a method, go-grpc-prometheus' `grpc_type`.
const UNARY: &str = "unary";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// `(service, method, grpc_type)` of every method served on the client port.
const METHODS: &[(&str, &str, &str)] = &[
    ("etcdserverpb.KV", "Range", UNARY),
    ("etcdserverpb.KV", "Put", UNARY),
    ("etcdserverpb.KV", "DeleteRange", UNARY),
    ("etcdserverpb.KV", "Txn", UNARY),
    ("etcdserverpb.KV", "Compact", UNARY),
    ("etcdserverpb.Watch", "Watch", BIDI_STREAM),
    ("etcdserverpb.Lease", "LeaseGrant", UNARY),
    ("etcdserverpb.Lease", "LeaseRevoke", UNARY),
    ("etcdserverpb.Lease", "LeaseKeepAlive", BIDI_STREAM),
    ("etcdserverpb.Lease", "LeaseTimeToLive", UNARY),
    ("etcdserverpb.Lease", "LeaseLeases", UNARY),
    ("etcdserverpb.Cluster", "MemberAdd", UNARY),
    ("etcdserverpb.Cluster", "MemberRemove", UNARY),
    ("etcdserverpb.Cluster", "MemberUpdate", UNARY),
    ("etcdserverpb.Cluster", "MemberList", UNARY),
    ("etcdserverpb.Cluster", "MemberPromote", UNARY),
    ("etcdserverpb.Maintenance", "Alarm", UNARY),
    ("etcdserverpb.Maintenance", "Status", UNARY),
    ("etcdserverpb.Maintenance", "Defragment", UNARY),
    ("etcdserverpb.Maintenance", "Hash", UNARY),
    ("etcdserverpb.Maintenance", "HashKV", UNARY),
    ("etcdserverpb.Maintenance", "Snapshot", SERVER_STREAM),
    ("etcdserverpb.Maintenance", "MoveLeader", UNARY),
    ("etcdserverpb.Maintenance", "Downgrade", UNARY),
    ("v3electionpb.Election", "Campaign", UNARY),
    ("v3electionpb.Election", "Proclaim", UNARY),
    ("v3electionpb.Election", "Leader", UNARY),
    ("v3electionpb.Election", "Observe", SERVER_STREAM),
    ("v3electionpb.Election", "Resign", UNARY),
    ("v3lockpb.Lock", "Lock", UNARY),
    ("v3lockpb.Lock", "Unlock", UNARY),
    ("grpc.health.v1.Health", "Check", UNARY),
    ("grpc.health.v1.Health", "Watch", SERVER_STREAM),
    ("conclave.partition.v1.Groups", "CreateGroup", UNARY),
    ("conclave.partition.v1.Groups", "UpdateGroup", UNARY),
    ("conclave.partition.v1.Groups", "DeleteGroup", UNARY),
    ("conclave.partition.v1.Groups", "GetGroup", UNARY),
    ("conclave.partition.v1.Groups", "ListGroups", UNARY),
    ("conclave.partition.v1.Groups", "Join", UNARY),
    ("conclave.partition.v1.Groups", "Leave", UNARY),
    ("conclave.partition.v1.Groups", "Drain", UNARY),
    ("conclave.partition.v1.Groups", "GetMap", UNARY),
    ("conclave.partition.v1.Groups", "WatchMap", SERVER_STREAM),
    ("conclave.partition.v1.Groups", "History", UNARY),
    ("conclave.partition.v1.Groups", "Report", UNARY),
    ("conclave.partition.v1.Groups", "Route", UNARY),
];

/// Go's names of the gRPC status codes, indexed by code (what `grpc_code` shows).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The name `grpc_code` shows for a numeric status; codes outside gRPC's range are
/// `Unknown`, as a Go server would report them.
fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("Unknown")
}

/// The status a response's headers or trailers carry, if any.
fn status_in(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    let code = value.to_str().ok()?.trim().parse::<i32>().ok()?;
    Some(code_name(code))
}

/// The method a request path names, if this member serves it.
fn served_method(path: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    METHODS.iter().find(|(s, m, _)| *s == service && *m == method)
}

/// The two counters, shared by every connection's layer.
#[derive(Debug, Clone)]
pub(crate) struct GrpcCounters {
    started: IntCounterVec,
    handled: IntCounterVec,
    received_bytes: IntCounter,
    sent_bytes: IntCounter,
}

impl GrpcCounters {
    pub(crate) fn new() -> prometheus::Result<GrpcCounters> {
        Ok(GrpcCounters {
            started: IntCounterVec::new(
                Opts::new(
                    "grpc_server_started_total",
                    "Total number of RPCs started on the server.",
                ),
                &["grpc_type", "grpc_service", "grpc_method"],
            )?,
            handled: IntCounterVec::new(
                Opts::new(
                    "grpc_server_handled_total",
                    "Total number of RPCs completed on the server, regardless of success or failure.",
                ),
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            )?,
            received_bytes: IntCounter::with_opts(Opts::new(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ))?,
            sent_bytes: IntCounter::with_opts(Opts::new(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ))?,
        })
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.started.clone()),
            Box::new(self.handled.clone()),
            Box::new(self.received_bytes.clone()),
            Box::new(self.sent_bytes.clone()),
        ]
    }

    /// Counts a call to `path` as started; `None` for paths that are not served methods.
    fn start(&self, path: &str) -> Option<Call> {
        let method = served_method(path)?;
        let (service, name, kind) = *method;
        self.started.with_label_values(&[kind, service, name]).inc();
        Some(Call {
            method,
            handled: self.handled.clone(),
            sent_bytes: self.sent_bytes.clone(),
        })
    }
}

/// A started call, to be counted as handled exactly once.
struct Call {
    method: &'static (&'static str, &'static str, &'static str),
    handled: IntCounterVec,
    sent_bytes: IntCounter,
}

/// Adds the size of a data frame to `counter`.
fn count_data(frame: &Frame<Bytes>, counter: &IntCounter) {
    if let Some(data) = frame.data_ref() {
        counter.inc_by(u64::try_from(data.len()).unwrap_or(u64::MAX));
    }
}

impl Call {
    fn handled(self, code: &str) {
        let (service, name, kind) = *self.method;
        self.handled.with_label_values(&[kind, service, name, code]).inc();
    }

    /// Counts the call now if the response headers carry its status; otherwise wraps the
    /// body so that its trailers do.
    fn observe(self, response: Response<tonic::body::Body>) -> Response<tonic::body::Body> {
        if let Some(code) = status_in(response.headers()) {
            self.handled(code);
            return response;
        }
        if response.body().is_end_stream() {
            // No status anywhere: not a well-formed gRPC reply.
            self.handled("Unknown");
            return response;
        }
        response.map(|inner| {
            tonic::body::Body::new(ObservedBody {
                inner,
                call: Some(self),
            })
        })
    }
}

/// A response body that counts the bytes it sends and its call as handled when its
/// trailers pass by.
struct ObservedBody {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl ObservedBody {
    fn finish(&mut self, code: &str) {
        if let Some(call) = self.call.take() {
            call.handled(code);
        }
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(call) = &this.call {
                    count_data(frame, &call.sent_bytes);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    this.finish(status_in(trailers).unwrap_or("Unknown"));
                }
            }
            Poll::Ready(Some(Err(status))) => this.finish(code_name(status.code() as i32)),
            Poll::Ready(None) => this.finish("Unknown"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // The client went away (or the server stopped) before the call ended.
        self.finish("Canceled");
    }
}

/// A request body that counts the bytes it receives.
struct CountedBody {
    inner: tonic::body::Body,
    received_bytes: IntCounter,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            count_data(frame, &this.received_bytes);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the gRPC calls passing through the client port's router.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    counters: GrpcCounters,
}

impl GrpcMetricsLayer {
    pub(crate) fn new(counters: GrpcCounters) -> GrpcMetricsLayer {
        GrpcMetricsLayer { counters }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            counters: self.counters.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps a router in.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    counters: GrpcCounters,
}

type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<tonic::body::Body>, E>> + Send>>;

impl<S> Service<Request<tonic::body::Body>> for GrpcMetricsService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let call = self.counters.start(request.uri().path());
        let request = match call {
            Some(_) => {
                let received_bytes = self.counters.received_bytes.clone();
                request.map(|inner| {
                    tonic::body::Body::new(CountedBody {
                        inner,
                        received_bytes,
                    })
                })
            }
            None => request,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match call {
                Some(call) => call.observe(response),
                None => response,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_counted() {
        assert_eq!(
            served_method("/etcdserverpb.KV/Put"),
            Some(&("etcdserverpb.KV", "Put", UNARY))
        );
        assert_eq!(
            served_method("/etcdserverpb.Watch/Watch").map(|m| m.2),
            Some(BIDI_STREAM)
        );
        assert_eq!(served_method("/etcdserverpb.KV/Nope"), None);
        assert_eq!(served_method("/metrics"), None);
        assert_eq!(served_method("/etcdserverpb.Auth/AuthStatus"), None);
    }

    #[test]
    fn status_codes_get_go_names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(tonic::Code::Cancelled as i32), "Canceled");
        assert_eq!(code_name(tonic::Code::Unavailable as i32), "Unavailable");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(99), "Unknown");
        assert_eq!(code_name(-1), "Unknown");
        let mut headers = HeaderMap::new();
        assert_eq!(status_in(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(status_in(&headers), Some("Unavailable"));
    }
}
