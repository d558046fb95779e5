//! Sparse time index (`.timeindex`): max timestamp so far -> offset of the batch holding it.
//! Entries are 12 bytes (i64 timestamp, u32 relative offset, big-endian); timestamps only grow.
//!
//! An entry `(t, o)` promises that no batch before offset `o` has a timestamp above `t`, so a
//! search for the first record at or after time `T` may start at the last entry with `t < T`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const ENTRY: usize = 12;

/// Failpoint: an entry write that reports failure after the bytes went in.
pub(crate) const TIME_INDEX_APPEND: &str = "timeindex.append";

/// Time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    file: File,
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    /// A failed append left bytes that could not be cut: no more appends (see `OffsetIndex`).
    broken: bool,
}

impl TimeIndex {
    /// Open (or create) the index at `path`, dropping a torn or non-monotonic tail.
    pub fn open(path: &Path, base_offset: i64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        let whole = len - len % ENTRY;
        let mut raw = vec![0u8; whole];
        file.read_exact_at(&mut raw, 0)?;
        let mut entries: Vec<(i64, u32)> = raw
            .chunks_exact(ENTRY)
            .map(|c| {
                (
                    i64::from_be_bytes(c[0..8].try_into().expect("8")),
                    u32::from_be_bytes(c[8..12].try_into().expect("4")),
                )
            })
            .collect();
        let valid = entries
            .windows(2)
            .position(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
            .map(|i| i + 1)
            .unwrap_or(entries.len());
        entries.truncate(valid);
        if valid * ENTRY != len {
            file.set_len((valid * ENTRY) as u64)?;
        }
        Ok(Self { file, base_offset, entries, broken: false })
    }

    /// Record that `timestamp` is the largest so far, first reached at `offset`.
    ///
    /// On failure the file is cut back to the entries before (a missing entry only makes
    /// lookups start earlier); if even that fails, no more entries are taken until a truncation.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if let Some(&(t, _)) = self.entries.last() {
            if timestamp <= t {
                return Ok(());
            }
        }
        if self.broken {
            return Err(io::Error::other("time index takes no entries after a failed write"));
        }
        let rel = (offset - self.base_offset) as u32;
        let mut e = [0u8; ENTRY];
        e[0..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..12].copy_from_slice(&rel.to_be_bytes());
        if let Err(err) = self.file.write_all(&e).and_then(|_| super::segment::failpoint(TIME_INDEX_APPEND)) {
            self.broken = self.file.set_len((self.entries.len() * ENTRY) as u64).is_err();
            return Err(err);
        }
        self.entries.push((timestamp, rel));
        Ok(())
    }

    /// Offset to start a scan for the first record with timestamp `>= ts`.
    pub fn lookup(&self, ts: i64) -> i64 {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        if i == 0 {
            self.base_offset
        } else {
            self.base_offset + self.entries[i - 1].1 as i64
        }
    }

    /// Largest timestamp recorded, if any.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|e| e.0)
    }

    /// The last entry as (timestamp, absolute offset), if any.
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        let &(t, rel) = self.entries.last()?;
        Some((t, self.base_offset + rel as i64))
    }

    /// Drop entries for offsets `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let rel = offset - self.base_offset;
        let keep = self.entries.partition_point(|&(_, r)| (r as i64) < rel);
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY) as u64)?;
        self.broken = false;
        Ok(())
    }

    /// fsync the index file.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_scan_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut ti = TimeIndex::open(&dir.path().join("0.timeindex"), 0).unwrap();
        ti.maybe_append(100, 0).unwrap();
        ti.maybe_append(90, 5).unwrap(); // not larger: ignored
        ti.maybe_append(200, 10).unwrap();
        ti.maybe_append(300, 20).unwrap();
        let cases = [(50, 0), (100, 0), (150, 0), (200, 0), (201, 10), (300, 10), (301, 20)];
        for (ts, want) in cases {
            assert_eq!(ti.lookup(ts), want, "lookup({ts})");
        }
        drop(ti);
        let ti = TimeIndex::open(&dir.path().join("0.timeindex"), 0).unwrap();
        assert_eq!(ti.last_timestamp(), Some(300));
    }

    #[test]
    fn a_failed_append_leaves_the_file_as_the_entries() {
        use crate::log::segment::failpoints;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut ti = TimeIndex::open(&path, 0).unwrap();
        ti.maybe_append(100, 0).unwrap();
        failpoints::arm(TIME_INDEX_APPEND);
        assert!(ti.maybe_append(200, 10).is_err());
        failpoints::disarm(TIME_INDEX_APPEND);
        ti.maybe_append(300, 20).unwrap();
        assert_eq!(ti.lookup(250), 0, "the failed entry is not used");
        let reopened = TimeIndex::open(&path, 0).unwrap();
        assert_eq!(reopened.entries, ti.entries, "the failed entry is not in the file");
    }
}
