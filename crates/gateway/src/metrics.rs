//! Prometheus metrics of the gateway, served at `/metrics`:
//!
//! - `conclave_gateway_http_requests_total{route,method,status}`
//! - `conclave_gateway_http_request_duration_seconds{route}` (until the response head;
//!   a stream's lifetime is not included)
//! - `conclave_gateway_upstream_errors_total{kind}` (kind = the error code)
//! - `conclave_gateway_open_streams{kind}` (open SSE and etcd watch streams)
//!
//! `route` is the matched route template (`/v1/kv/{*key}`), never the raw path, so the
//! label set stays bounded.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The gateway's metric families.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    streams: IntGaugeVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "conclave_gateway_http_requests_total",
            "HTTP requests answered, by route, method and status.",
        ),
        &["route", "method", "status"],
    )?;
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "conclave_gateway_http_request_duration_seconds",
            "Time until the response head was ready, by route.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
        &["route"],
    )?;
    let upstream_errors = IntCounterVec::new(
        Opts::new(
            "conclave_gateway_upstream_errors_total",
            "Failures reported by the cluster or the SDK, by kind.",
        ),
        &["kind"],
    )?;
    let streams = IntGaugeVec::new(
        Opts::new(
            "conclave_gateway_open_streams",
            "Open streams (SSE watches and observes, etcd watches).",
        ),
        &["kind"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(duration.clone()))?;
    registry.register(Box::new(upstream_errors.clone()))?;
    registry.register(Box::new(streams.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        duration,
        upstream_errors,
        streams,
    })
}

/// The process-wide metrics (created on first use). `None` only if registration failed,
/// which cannot happen with these fixed, distinct names; metrics are then skipped.
fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match build() {
            Ok(metrics) => Some(metrics),
            Err(error) => {
                tracing::error!(%error, "cannot register the gateway's metrics");
                None
            }
        })
        .as_ref()
}

/// Counts one upstream failure of `kind`.
pub fn upstream_error(kind: &str) {
    if let Some(m) = metrics() {
        m.upstream_errors.with_label_values(&[kind]).inc();
    }
}

/// Counts an open stream of `kind` until dropped.
pub struct StreamGuard {
    kind: &'static str,
}

impl StreamGuard {
    /// Counts a stream of `kind` as open.
    pub fn open(kind: &'static str) -> StreamGuard {
        if let Some(m) = metrics() {
            m.streams.with_label_values(&[kind]).inc();
        }
        StreamGuard { kind }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(m) = metrics() {
            m.streams.with_label_values(&[self.kind]).dec();
        }
    }
}

/// Middleware recording the request counter and duration histogram.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(%route, %method, status = status.as_u16(), took = ?started.elapsed(), "request failed");
    } else {
        tracing::debug!(%route, %method, status = status.as_u16(), took = ?started.elapsed(), "request");
    }
    if let Some(m) = metrics() {
        let status = status.as_u16().to_string();
        m.requests.with_label_values(&[&route, &method, &status]).inc();
        m.duration
            .with_label_values(&[&route])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn render() -> Response {
    let Some(m) = metrics() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable").into_response();
    };
    let mut buffer = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&m.registry.gather(), &mut buffer) {
        return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buffer).into_response()
}
