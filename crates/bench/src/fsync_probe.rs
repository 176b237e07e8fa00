//! `fsync-probe`: the disk's durable-write latency, the floor of every Raft commit. Appends
//! `--size` bytes to a file in `--dir` and `fdatasync`s it, `--count` times, like a WAL.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::stats::{Recorder, Report};

/// Measures `count` append+fdatasync rounds of `size` bytes in `dir`; the file is removed.
pub fn probe(dir: &Path, count: u64, size: usize) -> Result<Report> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("fsync-probe.{}", std::process::id()));
    let result = probe_file(&path, count, size);
    let _ = fs::remove_file(&path);
    let (rec, elapsed) = result?;
    let params = json!({ "dir": dir.display().to_string(), "count": count, "size": size });
    Ok(rec.report("fsync-probe", elapsed, params))
}

fn probe_file(path: &Path, count: u64, size: usize) -> Result<(Recorder, Duration)> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let block = vec![0x5a_u8; size];
    let mut rec = Recorder::default();
    let start = Instant::now();
    for _ in 0..count {
        let t0 = Instant::now();
        file.write_all(&block).context("writing probe block")?;
        file.sync_data().context("fdatasync")?;
        rec.ok("fdatasync", t0.elapsed());
    }
    Ok((rec, start.elapsed()))
}
