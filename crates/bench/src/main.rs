//! `conclave-bench`: a load generator over the etcd v3 gRPC API (through the `etcd-client`
//! crate), so Conclave and etcd are measured the same way.
//!
//! ```text
//! conclave-bench --endpoints 127.0.0.1:2379,127.0.0.1:22379 --conns 8 --clients 64 \
//!     --duration 15s put
//! conclave-bench ... range --consistency s
//! conclave-bench ... --json mixed --read-ratio 0.9
//! conclave-bench fsync-probe --dir /var/lib/conclave
//! conclave-bench controller-placement --members 10,100,1000
//! conclave-bench controller-failover --endpoints ... --kv-bin target/release/partitioned-kv
//! ```
//!
//! Every workload prints ops/s, latency p50/p90/p99/p99.9/max (HDR histogram) and errors by
//! gRPC code; `--json` prints one JSON object instead, `--out FILE` saves it as well.

mod conn;
mod controller;
mod fsync_probe;
mod keys;
mod render;
mod runner;
mod stats;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use runner::Limit;
use stats::Report;
use workloads::{Consistency, Ctx};

#[derive(Parser, Debug)]
#[command(name = "conclave-bench", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Knobs shared by every workload (they may be given before or after the workload name).
#[derive(Args, Debug)]
struct Common {
    /// Comma-separated endpoints, `host:port` or `http://host:port`.
    #[arg(long, global = true, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// gRPC connections; connection i goes to endpoint i mod N, client j uses connection j mod conns.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Concurrent clients, each with one request in flight (watch: writers).
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Stop after this many operations (default 10000 unless --duration is given).
    #[arg(long, global = true, conflicts_with = "duration")]
    total: Option<u64>,
    /// Stop after this long: `20s`, `500ms`, `2m` or plain seconds.
    #[arg(long, global = true, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Key size in bytes (prefix + zero-padded index).
    #[arg(long, global = true, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    val_size: usize,
    /// Number of distinct keys operations pick from uniformly.
    #[arg(long, global = true, default_value_t = 10_000)]
    key_space: u64,
    /// Cap on total operations per second (0: unlimited).
    #[arg(long, global = true, default_value_t = 0.0)]
    rate: f64,
    /// Per-request timeout.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Seed of the key choice.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// TLS: the CA bundle the members' certificates chain to (scheme-less endpoints are
    /// then https://).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    /// TLS: the client certificate presented to members run with --client-cert-auth.
    #[arg(long, global = true, requires = "key")]
    cert: Option<PathBuf>,
    /// TLS: its private key.
    #[arg(long, global = true, requires = "cert")]
    key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Puts to random keys of the key space.
    Put,
    /// Single-key gets of random keys (the key space is written first unless --no-preload).
    Range {
        /// `l` linearizable or `s` serializable.
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
        /// Do not write the key space before measuring.
        #[arg(long)]
        no_preload: bool,
    },
    /// Gets with probability --read-ratio, puts otherwise.
    Mixed {
        /// Fraction of operations that are reads.
        #[arg(long, default_value_t = 0.9)]
        read_ratio: f64,
        /// Consistency of the reads.
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
        /// Do not write the key space before measuring.
        #[arg(long)]
        no_preload: bool,
    },
    /// Compare-and-swap on hot keys: get mod_revision, then Txn If(mod == r) Then(put).
    Txn {
        /// Number of hot keys.
        #[arg(long, default_value_t = 8)]
        hot_keys: u64,
    },
    /// Put→event delivery latency at --watchers watchers on one prefix.
    Watch {
        /// Watch streams (spread over --conns connections).
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Total puts per second by the writers (--clients of them).
        #[arg(long, default_value_t = 100.0)]
        put_rate: f64,
    },
    /// Lease churn: grant, one keep-alive round trip, revoke.
    Lease {
        /// Lease TTL in seconds.
        #[arg(long, default_value_t = 10)]
        ttl: i64,
    },
    /// Disk durable-write latency: append --size bytes + fdatasync, --count times.
    FsyncProbe {
        /// Directory to probe (a file is created and removed there).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Rounds.
        #[arg(long, default_value_t = 200)]
        count: u64,
        /// Bytes per round.
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
    /// The partition controller's placement and plan time and the replicas a join or a
    /// leave moves, for simulated members (no cluster).
    ControllerPlacement {
        /// Partitions.
        #[arg(long, default_value_t = 4096)]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// Member counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        members: Vec<usize>,
        /// Timed repetitions per count (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Crash-to-new-leader and graceful hand-over times of a partition group whose
    /// members are real `partitioned-kv` instances, on the cluster at --endpoints.
    ControllerFailover {
        /// The `partitioned-kv` binary.
        #[arg(long, default_value = "target/release/partitioned-kv")]
        kv_bin: PathBuf,
        /// Instances running at any time.
        #[arg(long, default_value_t = 3)]
        instances: usize,
        /// Crashes to measure.
        #[arg(long, default_value_t = 3)]
        kills: usize,
        /// Members' session TTL.
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        session_ttl: Duration,
        /// Where the instances' logs go.
        #[arg(long, default_value = "target/bench-controller")]
        logs: PathBuf,
    },
    /// Render docs/benchmarks.md (stdout) from a scripts/bench.sh results directory.
    Render {
        /// The results directory.
        #[arg(long)]
        results: PathBuf,
    },
}

/// `20s`, `500ms`, `2m`, or plain (fractional) seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. 20s, 500ms, 2m)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

impl Common {
    fn ctx(&self) -> Result<Ctx> {
        let endpoints = conn::parse_endpoints(&self.endpoints);
        if endpoints.is_empty() {
            bail!("--endpoints is empty");
        }
        let limit = match (self.total, self.duration) {
            (_, Some(d)) => Limit::Duration(d),
            (Some(t), None) => Limit::Total(t),
            (None, None) => Limit::Total(10_000),
        };
        Ok(Ctx {
            endpoints,
            conns: self.conns.max(1),
            clients: self.clients.max(1),
            limit,
            rate: (self.rate > 0.0).then_some(self.rate),
            key_size: self.key_size,
            val_size: self.val_size,
            key_space: self.key_space.max(1),
            timeout: self.timeout,
            seed: self.seed,
            tls: match (&self.cacert, &self.cert, &self.key) {
                (None, None, None) => None,
                (ca, cert, key) => Some(conn::tls(ca.as_deref(), cert.as_deref().zip(key.as_deref()))?),
            },
        })
    }

    fn emit(&self, report: &Report) -> Result<()> {
        let json = serde_json::to_string_pretty(report)?;
        if let Some(path) = &self.out {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.json {
            println!("{json}");
        } else {
            report.print_text();
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Render { results } => {
            print!("{}", render::render(results)?);
            return Ok(());
        }
        Command::ControllerPlacement {
            partitions,
            replicas,
            members,
            rounds,
        } => {
            let rows = controller::placement::run(*partitions, *replicas, members, *rounds)?;
            if cli.common.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                controller::placement::print(*partitions, *replicas, &rows);
            }
            return Ok(());
        }
        Command::ControllerFailover {
            kv_bin,
            instances,
            kills,
            session_ttl,
            logs,
        } => {
            std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
            let spec = controller::failover::FailoverSpec {
                endpoints: conn::parse_endpoints(&cli.common.endpoints),
                kv_bin: kv_bin.clone(),
                instances: *instances,
                kills: *kills,
                session_ttl: *session_ttl,
                dir: logs.clone(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            let report = rt.block_on(controller::failover::run(&spec))?;
            if cli.common.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                controller::failover::print(&report);
            }
            return Ok(());
        }
        Command::FsyncProbe { dir, count, size } => {
            let report = fsync_probe::probe(dir, *count, *size)?;
            return cli.common.emit(&report);
        }
        _ => {}
    }
    let ctx = cli.common.ctx()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = rt.block_on(async {
        match cli.command {
            Command::Put => workloads::put::run_put(&ctx).await,
            Command::Range {
                consistency,
                no_preload,
            } => workloads::range::run_range(&ctx, consistency, !no_preload).await,
            Command::Mixed {
                read_ratio,
                consistency,
                no_preload,
            } => workloads::mixed::run_mixed(&ctx, read_ratio, consistency, !no_preload).await,
            Command::Txn { hot_keys } => workloads::txn::run_txn(&ctx, hot_keys).await,
            Command::Watch { watchers, put_rate } => {
                workloads::watch::run_watch(&ctx, watchers, put_rate).await
            }
            Command::Lease { ttl } => workloads::lease::run_lease(&ctx, ttl).await,
            Command::FsyncProbe { .. }
            | Command::Render { .. }
            | Command::ControllerPlacement { .. }
            | Command::ControllerFailover { .. } => unreachable!("handled above"),
        }
    })?;
    cli.common.emit(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cli_accepts_knobs_after_the_workload() {
        let cli = Cli::try_parse_from([
            "conclave-bench",
            "range",
            "--consistency",
            "s",
            "--clients",
            "8",
            "--endpoints",
            "a:1,b:2",
            "--duration",
            "1s",
        ])
        .unwrap();
        let ctx = cli.common.ctx().unwrap();
        assert_eq!(ctx.clients, 8);
        assert_eq!(ctx.endpoints.len(), 2);
        assert!(matches!(ctx.limit, Limit::Duration(_)));
    }
}
