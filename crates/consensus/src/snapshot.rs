//! Snapshot files: a point-in-time dump of one group's state machine, with the Raft
//! snapshot meta, stored fsynced so that the newest snapshot survives restarts.
//!
//! Layout: the magic `CNCLSNP1`, then frames `[len: u32 LE][envelope]` — first the
//! snapshot meta, then batches of raw state-machine records — and a zero-length frame as
//! the end marker. Every frame carries its own crc (see [`crate::format`]), so a file is
//! checked as it is streamed and never needs to be held in memory whole.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::{self, kind};
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"CNCLSNP1";
/// Records per frame when writing; with [`BYTES_PER_FRAME`] it bounds the memory of
/// writing and reading a snapshot.
const RECORDS_PER_FRAME: usize = 512;
/// A frame is closed once its records reach this many bytes.
const BYTES_PER_FRAME: usize = 4 * 1024 * 1024;
const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// A snapshot held as a file on disk: openraft's `SnapshotData` for Conclave.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Where the snapshot is.
    pub path: PathBuf,
}

/// The directory of one group's snapshots.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    incoming: AtomicU64,
}

type Record = (Vec<u8>, Vec<u8>);

fn bad(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snapshot {} is not valid: {why}", path.display()),
    )
}

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "snapshot frame too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn read_frame(input: &mut impl Read, path: &Path) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|e| bad(path, format!("truncated frame header: {e}")))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(bad(path, format!("frame of {len} bytes")));
    }
    let mut bytes = vec![0u8; len as usize];
    input
        .read_exact(&mut bytes)
        .map_err(|e| bad(path, format!("truncated frame: {e}")))?;
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SnapshotDir {
    /// Opens (creating) the directory and removes leftovers of interrupted writes.
    pub fn open(dir: &Path) -> io::Result<SnapshotDir> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(SnapshotDir {
            dir: dir.to_path_buf(),
            incoming: AtomicU64::new(0),
        })
    }

    fn final_path(&self, meta: &SnapshotMeta) -> PathBuf {
        let (index, term) = meta
            .last_log_id
            .as_ref()
            .map_or((0, 0), |id| (id.index(), id.committed_leader_id().term));
        self.dir.join(format!("{index:020}-{term:020}.snap"))
    }

    /// A fresh path for a snapshot being received from the leader.
    pub fn incoming_path(&self) -> PathBuf {
        let n = self.incoming.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("incoming-{}-{n}.tmp", std::process::id()))
    }

    /// Writes a snapshot: `export` feeds every record to the sink it is given. The file is
    /// fsynced and renamed into place before this returns; older snapshots are removed.
    pub fn write(
        &self,
        meta: &SnapshotMeta,
        export: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> io::Result<(SnapshotFile, u64)> {
        let tmp = self.incoming_path();
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        write_frame(&mut out, &format::encode::<kind::SnapshotMeta>(meta)?)?;
        let mut batch: Vec<Record> = Vec::with_capacity(RECORDS_PER_FRAME);
        let mut batch_bytes = 0usize;
        let mut count = 0u64;
        let flush_batch = |batch: &mut Vec<Record>, out: &mut BufWriter<File>| -> io::Result<()> {
            if !batch.is_empty() {
                write_frame(out, &format::encode::<kind::SnapshotRecords>(batch)?)?;
                batch.clear();
            }
            Ok(())
        };
        {
            let mut sink = |k: &[u8], v: &[u8]| -> io::Result<()> {
                batch.push((k.to_vec(), v.to_vec()));
                batch_bytes += k.len() + v.len();
                count += 1;
                // A single record larger than the frame limit still gets a frame of its
                // own: records are bounded by the request size limit, far below MAX_FRAME.
                if batch.len() >= RECORDS_PER_FRAME || batch_bytes >= BYTES_PER_FRAME {
                    flush_batch(&mut batch, &mut out)?;
                    batch_bytes = 0;
                }
                Ok(())
            };
            export(&mut sink)?;
        }
        flush_batch(&mut batch, &mut out)?;
        write_frame(&mut out, &[])?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let snapshot = self.adopt(meta, SnapshotFile { path: tmp })?;
        Ok((snapshot, count))
    }

    /// Moves a complete snapshot file (written by [`SnapshotDir::write`] or received from a
    /// leader) into place as the current snapshot and removes the older ones.
    pub fn adopt(&self, meta: &SnapshotMeta, file: SnapshotFile) -> io::Result<SnapshotFile> {
        let path = self.final_path(meta);
        fs::rename(&file.path, &path)?;
        sync_dir(&self.dir)?;
        for entry in fs::read_dir(&self.dir)? {
            let other = entry?.path();
            if other != path && other.extension().is_some_and(|ext| ext == "snap") {
                fs::remove_file(&other)?;
            }
        }
        Ok(SnapshotFile { path })
    }

    /// The newest complete snapshot, if any.
    pub fn current(&self) -> io::Result<Option<(SnapshotMeta, SnapshotFile)>> {
        let mut newest: Option<PathBuf> = None;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "snap") && newest.as_ref().is_none_or(|n| path > *n)
            {
                newest = Some(path);
            }
        }
        match newest {
            None => Ok(None),
            Some(path) => {
                let (meta, _) = open_records(&path)?;
                Ok(Some((meta, SnapshotFile { path })))
            }
        }
    }
}

/// Streams the records of a snapshot file, verifying each frame.
pub struct RecordReader {
    path: PathBuf,
    input: BufReader<File>,
    pending: std::vec::IntoIter<Record>,
    done: bool,
}

impl Iterator for RecordReader {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.next() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            let frame = match read_frame(&mut self.input, &self.path) {
                Ok(frame) => frame,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if frame.is_empty() {
                self.done = true;
                return None;
            }
            match format::decode::<kind::SnapshotRecords>(&frame) {
                Ok(batch) => self.pending = batch.into_iter(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(bad(&self.path, e)));
                }
            }
        }
    }
}

/// Opens a snapshot file: returns its meta and a reader over its records.
pub fn open_records(path: &Path) -> io::Result<(SnapshotMeta, RecordReader)> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(|e| bad(path, e))?;
    if &magic != MAGIC {
        return Err(bad(path, "wrong magic"));
    }
    let meta =
        format::decode::<kind::SnapshotMeta>(&read_frame(&mut input, path)?).map_err(|e| bad(path, e))?;
    Ok((
        meta,
        RecordReader {
            path: path.to_path_buf(),
            input,
            pending: Vec::new().into_iter(),
            done: false,
        },
    ))
}

/// Reads a whole snapshot file to check it end to end (used before installing one
/// received over the network).
pub fn verify(path: &Path) -> io::Result<(SnapshotMeta, u64)> {
    let (meta, records) = open_records(path)?;
    let mut count = 0;
    for record in records {
        record?;
        count += 1;
    }
    Ok((meta, count))
}
