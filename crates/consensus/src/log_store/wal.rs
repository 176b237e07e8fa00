//! A segmented, append-only write-ahead log of length-prefixed records.
//!
//! Files are `<seq:016x>.wal` in one directory. A record is `[len: u32 LE][envelope]`, where
//! the envelope (see [`crate::format`]) carries its own format version and crc32, so a torn
//! tail is recognised on replay. Only the newest segment is ever appended to; a torn record
//! at its end (a crash mid-write) is cut off on open. Damage anywhere else refuses to open,
//! because records after it would be silently lost.
//!
//! The log knows nothing about Raft: the caller decides what a record means and tells the
//! log the highest Raft index each record holds, which is what lets whole segments be
//! deleted once everything in them has been purged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Records larger than this are treated as damage, not as a length to trust.
const MAX_RECORD_LEN: u32 = 256 * 1024 * 1024;

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest Raft log index any record in this segment holds.
    max_index: Option<u64>,
}

/// An open write-ahead log, positioned at the end of its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    sealed: Vec<Segment>,
    current: Segment,
    writer: BufWriter<File>,
    current_len: u64,
    segment_limit: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn damaged(path: &Path, offset: u64, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "raft log segment {} is damaged at byte {offset}: {why}; the records after it \
             cannot be trusted (restore this member from a snapshot or re-add it with an empty data dir)",
            path.display()
        ),
    )
}

/// Reads every intact record of one segment. Returns the records and the length of the
/// intact prefix; `torn` says whether bytes followed that prefix. Only the last record
/// can be torn (a crash while it was being written); a damaged record with more data
/// after it is corruption, reported as an error.
fn read_segment(path: &Path) -> io::Result<(Vec<Vec<u8>>, u64, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        if bytes.len() - pos < 4 {
            return Ok((records, pos as u64, true));
        }
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let end = pos + 4 + len as usize;
        if len > MAX_RECORD_LEN || end > bytes.len() {
            return Ok((records, pos as u64, true));
        }
        let payload = &bytes[pos + 4..end];
        if let Err(e) = crate::format::verify(payload) {
            if end < bytes.len() {
                return Err(damaged(
                    path,
                    pos as u64,
                    format!("{e}, with {} more bytes after it", bytes.len() - end),
                ));
            }
            return Ok((records, pos as u64, true));
        }
        records.push(payload.to_vec());
        pos = end;
    }
    Ok((records, pos as u64, false))
}

impl Wal {
    /// Opens (or creates) the log in `dir` and replays it: `replay` is called with every
    /// intact record in order and returns the highest Raft index the record holds.
    pub fn open(
        dir: &Path,
        segment_limit: u64,
        mut replay: impl FnMut(&[u8]) -> io::Result<Option<u64>>,
    ) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".wal") {
                if let Ok(seq) = u64::from_str_radix(stem, 16) {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();

        let mut segments = Vec::new();
        let last = seqs.last().copied();
        for seq in seqs {
            let path = segment_path(dir, seq);
            let (records, intact_len, torn) = read_segment(&path)?;
            if torn {
                if Some(seq) != last {
                    return Err(damaged(&path, intact_len, "corrupt record in a sealed segment"));
                }
                tracing::warn!(
                    segment = %path.display(),
                    offset = intact_len,
                    "cutting off a torn record at the end of the raft log (interrupted write)"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(intact_len)?;
                file.sync_all()?;
            }
            let mut max_index = None;
            for record in &records {
                let index = replay(record)?;
                max_index = max_index.max(index);
            }
            segments.push(Segment { seq, path, max_index });
        }

        let current = match segments.pop() {
            Some(segment) => segment,
            None => {
                let path = segment_path(dir, 0);
                File::create(&path)?.sync_all()?;
                sync_dir(dir)?;
                Segment {
                    seq: 0,
                    path,
                    max_index: None,
                }
            }
        };
        let file = OpenOptions::new().append(true).open(&current.path)?;
        let current_len = file.metadata()?.len();
        Ok(Wal {
            dir: dir.to_path_buf(),
            sealed: segments,
            current,
            writer: BufWriter::with_capacity(1 << 20, file),
            current_len,
            segment_limit,
        })
    }

    /// Buffers one record; it is durable only after the next [`Wal::sync`].
    pub fn append(&mut self, payload: &[u8], max_index: Option<u64>) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len <= MAX_RECORD_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "raft log record too large"))?;
        self.writer.write_all(&len.to_le_bytes())?;
        self.writer.write_all(payload)?;
        self.current_len += 4 + payload.len() as u64;
        self.current.max_index = self.current.max_index.max(max_index);
        Ok(())
    }

    /// Writes buffered records and waits until they are on stable storage (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()
    }

    /// Whether the newest segment has reached its size limit.
    pub fn wants_rotation(&self) -> bool {
        self.current_len >= self.segment_limit
    }

    /// Seals the current segment and starts a new one whose first record is `checkpoint`
    /// (the caller's summary of all non-entry state, so older segments are not needed for it).
    pub fn rotate(&mut self, checkpoint: &[u8]) -> io::Result<()> {
        self.sync()?;
        let seq = self.current.seq + 1;
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        let sealed = std::mem::replace(
            &mut self.current,
            Segment {
                seq,
                path,
                max_index: None,
            },
        );
        self.sealed.push(sealed);
        self.writer = BufWriter::with_capacity(1 << 20, file);
        self.current_len = 0;
        self.append(checkpoint, None)?;
        self.sync()?;
        sync_dir(&self.dir)
    }

    /// Deletes sealed segments that hold no entry above `purged_index`: everything in them
    /// has been purged and their other state is repeated by a later checkpoint.
    pub fn remove_purged_segments(&mut self, purged_index: u64) -> io::Result<()> {
        let mut removed = false;
        while let Some(first) = self.sealed.first() {
            if first.max_index.is_some_and(|max| max > purged_index) {
                break;
            }
            fs::remove_file(&first.path)?;
            self.sealed.remove(0);
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Number of segment files (sealed and current).
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Vec<u8> {
        crate::format::seal(1, &n.to_le_bytes())
    }

    fn replay_all(dir: &Path) -> (Wal, Vec<u64>) {
        let mut seen = Vec::new();
        let wal = Wal::open(dir, 64, |bytes| {
            let payload = crate::format::payload(bytes)?;
            let n = u64::from_le_bytes(payload.try_into().map_err(io::Error::other)?);
            seen.push(n);
            Ok(Some(n))
        })
        .unwrap();
        (wal, seen)
    }

    #[test]
    fn replays_synced_records_in_order_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, seen) = replay_all(dir.path());
        assert!(seen.is_empty());
        for n in 1..=20 {
            wal.append(&record(n), Some(n)).unwrap();
            wal.sync().unwrap();
            if wal.wants_rotation() {
                wal.rotate(&record(1000 + n)).unwrap();
            }
        }
        assert!(wal.segment_count() > 2);
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        let entries: Vec<u64> = seen.iter().copied().filter(|n| *n < 1000).collect();
        assert_eq!(entries, (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_is_cut_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        wal.append(&record(1), Some(1)).unwrap();
        wal.append(&record(2), Some(2)).unwrap();
        wal.sync().unwrap();
        let path = wal.current.path.clone();
        drop(wal);
        // Simulate a crash in the middle of writing a third record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(file);
        let (mut wal, seen) = replay_all(dir.path());
        assert_eq!(seen, vec![1, 2]);
        wal.append(&record(3), Some(3)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        assert_eq!(replay_all(dir.path()).1, vec![1, 2, 3]);
    }

    #[test]
    fn damage_before_the_last_record_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        wal.append(&record(1), Some(1)).unwrap();
        wal.append(&record(2), Some(2)).unwrap();
        wal.sync().unwrap();
        let path = wal.current.path.clone();
        drop(wal);
        let mut bytes = fs::read(&path).unwrap();
        bytes[6] ^= 0x55; // inside the first record's envelope
        fs::write(&path, bytes).unwrap();
        let err = Wal::open(dir.path(), 64, |_| Ok(None)).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn damage_in_a_sealed_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        wal.append(&record(1), Some(1)).unwrap();
        let sealed_path = wal.current.path.clone();
        wal.rotate(&record(1001)).unwrap();
        wal.append(&record(2), Some(2)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let mut bytes = fs::read(&sealed_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        fs::write(&sealed_path, bytes).unwrap();
        let err = Wal::open(dir.path(), 64, |_| Ok(None)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn purged_segments_are_deleted_but_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay_all(dir.path());
        for n in 1..=30 {
            wal.append(&record(n), Some(n)).unwrap();
            if wal.wants_rotation() {
                wal.rotate(&record(1000 + n)).unwrap();
            }
        }
        wal.sync().unwrap();
        let before = wal.segment_count();
        wal.remove_purged_segments(15).unwrap();
        assert!(wal.segment_count() < before);
        drop(wal);
        let (_, seen) = replay_all(dir.path());
        let entries: Vec<u64> = seen.iter().copied().filter(|n| *n < 1000).collect();
        assert!(entries.first().is_some_and(|first| *first <= 16), "{entries:?}");
        assert_eq!(entries.last(), Some(&30));
    }
}
