//! Latency recording (HDR histograms, microsecond resolution) and the report every workload
//! prints: ops/s, p50/p90/p99/p99.9/max, errors by kind (gRPC code), outcomes.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Why an operation failed, as a short kind: the gRPC code name for server answers
/// (`Unavailable`, `DeadlineExceeded`, …), otherwise the client-side failure class.
#[derive(Debug)]
pub enum OpError {
    /// An error from the etcd client (gRPC status, transport, stream).
    Etcd(etcd_client::Error),
    /// A workload-level failure that is not an RPC error (e.g. a malformed watch event).
    Other(&'static str),
}

impl From<etcd_client::Error> for OpError {
    fn from(e: etcd_client::Error) -> Self {
        OpError::Etcd(e)
    }
}

impl OpError {
    /// The key under which this error is counted.
    pub fn kind(&self) -> String {
        use etcd_client::Error as E;
        match self {
            OpError::Etcd(E::GRpcStatus(s)) => format!("{:?}", s.code()),
            OpError::Etcd(E::TransportError(_)) => "Transport".into(),
            OpError::Etcd(E::WatchError(_)) => "WatchStream".into(),
            OpError::Etcd(E::LeaseKeepAliveError(_)) => "LeaseKeepAlive".into(),
            OpError::Etcd(E::IoError(_)) => "Io".into(),
            OpError::Etcd(_) => "Client".into(),
            OpError::Other(kind) => (*kind).to_string(),
        }
    }
}

/// Latencies of successful operations (overall and per outcome label) and error counts.
#[derive(Clone)]
pub struct Recorder {
    all: Histogram<u64>,
    outcomes: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

/// 1 µs .. 60 s at 3 significant digits; larger values are clamped to the maximum.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            all: histogram(),
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Records one successful operation of `label` that took `latency`.
    pub fn ok(&mut self, label: &'static str, latency: Duration) {
        let us = (latency.as_micros() as u64).max(1);
        self.all.saturating_record(us);
        self.outcomes
            .entry(label)
            .or_insert_with(histogram)
            .saturating_record(us);
    }

    /// Counts one failed operation.
    pub fn error(&mut self, e: &OpError) {
        *self.errors.entry(e.kind()).or_insert(0) += 1;
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds everywhere, so `add` cannot fail; a failure would only lose samples.
        let _ = self.all.add(&other.all);
        for (label, h) in &other.outcomes {
            let _ = self.outcomes.entry(label).or_insert_with(histogram).add(h);
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_insert(0) += n;
        }
    }

    /// Successful operations recorded.
    pub fn ok_count(&self) -> u64 {
        self.all.len()
    }

    /// Failed operations recorded.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Turns the recording into a report of a run that lasted `elapsed`.
    pub fn report(&self, workload: &str, elapsed: Duration, params: serde_json::Value) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            workload: workload.to_string(),
            params,
            duration_s: secs,
            ops: self.ok_count(),
            errors: self.error_count(),
            ops_per_sec: self.ok_count() as f64 / secs,
            latency_ms: Latency::of(&self.all),
            outcomes: self
                .outcomes
                .iter()
                .map(|(label, h)| {
                    (
                        label.to_string(),
                        Outcome {
                            count: h.len(),
                            latency_ms: Latency::of(h),
                        },
                    )
                })
                .collect(),
            error_counts: self.errors.clone(),
            notes: BTreeMap::new(),
        }
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Count and latency of one outcome label (e.g. `read`/`write`, `cas-success`/`cas-conflict`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub count: u64,
    pub latency_ms: Latency,
}

/// The result of one workload run; `--json` prints exactly this object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Workload name (`put`, `range`, …).
    pub workload: String,
    /// The settings the run used (endpoints, clients, sizes, …).
    pub params: serde_json::Value,
    /// Wall-clock length of the measured phase.
    pub duration_s: f64,
    /// Successful operations (for `watch`: events delivered to watchers).
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// `ops / duration_s`.
    pub ops_per_sec: f64,
    /// Latency of successful operations (for `watch`: put→event delivery).
    pub latency_ms: Latency,
    /// Per-outcome breakdown.
    pub outcomes: BTreeMap<String, Outcome>,
    /// Failed operations by kind (gRPC code name or client-side class).
    pub error_counts: BTreeMap<String, u64>,
    /// Workload-specific extra figures.
    #[serde(default)]
    pub notes: BTreeMap<String, serde_json::Value>,
}

impl Report {
    /// Human-readable, a few lines.
    pub fn print_text(&self) {
        let l = &self.latency_ms;
        println!(
            "{}: {} ok, {} errors in {:.2} s = {:.1} ops/s",
            self.workload, self.ops, self.errors, self.duration_s, self.ops_per_sec
        );
        println!(
            "  latency ms: mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        );
        if self.outcomes.len() > 1 || self.workload == "watch" {
            for (label, o) in &self.outcomes {
                let l = &o.latency_ms;
                println!(
                    "  {label:<14} {:>9}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                    o.count, l.p50, l.p99, l.p999, l.max
                );
            }
        }
        if !self.error_counts.is_empty() {
            let errs: Vec<String> = self
                .error_counts
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            println!("  errors: {}", errs.join(" "));
        }
        for (k, v) in &self.notes {
            println!("  {k}: {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_merges_and_reports() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=100 {
            a.ok("read", Duration::from_micros(i * 10));
        }
        b.ok("write", Duration::from_millis(5));
        b.error(&OpError::Other("Boom"));
        a.merge(&b);
        let r = a.report("mixed", Duration::from_secs(1), serde_json::json!({}));
        assert_eq!(r.ops, 101);
        assert_eq!(r.errors, 1);
        assert_eq!(r.error_counts["Boom"], 1);
        assert_eq!(r.outcomes["write"].count, 1);
        assert!((r.latency_ms.p50 - 0.51).abs() < 0.01, "{}", r.latency_ms.p50);
        assert!((r.latency_ms.max - 5.0).abs() < 0.01);
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.ops, 101);
    }
}
