//! `conclave-chaos`: runs fault schedules against real Conclave clusters (`make chaos`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use conclave_chaos::{run, summary, Schedule};

/// Fault-injection schedules with a linearizability check.
#[derive(Debug, Parser)]
#[command(name = "conclave-chaos")]
struct Args {
    /// The conclave node binary.
    #[arg(long, default_value = "target/release/conclave")]
    bin: PathBuf,
    /// Seeds to run (one schedule per seed and cluster size).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    /// Cluster sizes.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    sizes: Vec<usize>,
    /// Seconds of faults per schedule.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Client workers.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Keys.
    #[arg(long, default_value_t = 8)]
    keys: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut failed = 0;
    for size in &args.sizes {
        for seed in &args.seeds {
            let schedule = Schedule {
                bin: args.bin.clone(),
                size: *size,
                seed: *seed,
                duration: Duration::from_secs(args.seconds),
                clients: args.clients,
                keys: args.keys,
            };
            let outcome = run(schedule).await.context("running a schedule")?;
            println!("{}", summary(&outcome));
            if outcome.verdict != conclave_chaos::verdict::Verdict::Linearizable || outcome.watch.is_err() {
                failed += 1;
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} schedule(s) failed");
    Ok(())
}
