//! Aborted transactions of one partition: kept in memory in marker order and on disk in one
//! `.txnindex` file per segment (the segment holding the abort marker), as Kafka lays it out.
//!
//! Entry format (34 bytes, big-endian): version `i16` (0), producer id `i64`, first offset `i64`,
//! last offset (the marker) `i64`, last stable offset `i64`. Entries are appended without fsync:
//! a segment's entries are made durable when its producer-state snapshot is written at roll or
//! shutdown, and everything after the newest snapshot is rebuilt from the log on an unclean start.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use bytes::{Buf, BufMut};

use super::checkpoint;
use super::producer_state::AbortedTxn;
use super::segment::file_name;

/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;

/// Every aborted transaction still in the log, ordered by marker offset.
#[derive(Debug, Default, Clone)]
pub struct TxnIndex {
    entries: Vec<AbortedTxn>,
}

fn encode(e: &AbortedTxn, out: &mut Vec<u8>) {
    out.put_i16(0);
    out.put_i64(e.producer_id);
    out.put_i64(e.first_offset);
    out.put_i64(e.last_offset);
    out.put_i64(e.last_stable_offset);
}

/// Read one segment's `.txnindex`; a missing file is empty, a torn last entry is ignored.
pub fn read_segment(dir: &Path, base: i64) -> io::Result<Vec<AbortedTxn>> {
    let data = match fs::read(dir.join(file_name(base, "txnindex"))) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(data.len() / ENTRY_LEN);
    for mut chunk in data.chunks_exact(ENTRY_LEN) {
        let version = chunk.get_i16();
        if version != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("txnindex entry version {version}")));
        }
        out.push(AbortedTxn {
            producer_id: chunk.get_i64(),
            first_offset: chunk.get_i64(),
            last_offset: chunk.get_i64(),
            last_stable_offset: chunk.get_i64(),
        });
    }
    Ok(out)
}

/// Replace one segment's `.txnindex` with `entries` (none: remove it).
pub fn write_segment(dir: &Path, base: i64, entries: &[AbortedTxn]) -> io::Result<()> {
    let path = dir.join(file_name(base, "txnindex"));
    if entries.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut buf = Vec::with_capacity(entries.len() * ENTRY_LEN);
    entries.iter().for_each(|e| encode(e, &mut buf));
    checkpoint::write_atomic(&path, &buf)
}

/// fsync one segment's `.txnindex` if it exists.
pub fn sync_segment(dir: &Path, base: i64) -> io::Result<()> {
    match fs::File::open(dir.join(file_name(base, "txnindex"))) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl TxnIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load the entries of the segments at `bases` (ascending), keeping those with a marker
    /// below `below` (later ones are about to be rebuilt from the log) and rewriting files that
    /// held later ones.
    pub fn load(dir: &Path, bases: &[i64], below: i64) -> io::Result<Self> {
        let mut entries = Vec::new();
        for &base in bases {
            let mut seg = read_segment(dir, base)?;
            let n = seg.len();
            seg.retain(|e| e.last_offset < below);
            if seg.len() != n {
                write_segment(dir, base, &seg)?;
            }
            entries.extend(seg);
        }
        entries.sort_by_key(|e| e.last_offset);
        Ok(Self { entries })
    }

    /// Record an abort whose marker sits in segment `segment_base`.
    pub fn append(&mut self, dir: &Path, segment_base: i64, e: AbortedTxn) -> io::Result<()> {
        let mut buf = Vec::with_capacity(ENTRY_LEN);
        encode(&e, &mut buf);
        let mut f = OpenOptions::new().create(true).append(true).open(dir.join(file_name(segment_base, "txnindex")))?;
        f.write_all(&buf)?;
        self.entries.push(e);
        Ok(())
    }

    /// Aborted transactions overlapping `[from, upto)`: marker at or after `from`, first offset
    /// before `upto` (what a read_committed fetch of that range must skip).
    pub fn collect(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        self.entries[start..].iter().filter(|e| e.first_offset < upto).copied().collect()
    }

    /// Remove the entries whose abort marker is at one of `markers`, all in the segment at
    /// `segment_base`: from its `.txnindex` first (replaced atomically), then from memory.
    pub fn remove_markers(&mut self, dir: &Path, segment_base: i64, markers: &[i64]) -> io::Result<()> {
        let mut on_disk = read_segment(dir, segment_base)?;
        let n = on_disk.len();
        on_disk.retain(|e| !markers.contains(&e.last_offset));
        if on_disk.len() != n {
            write_segment(dir, segment_base, &on_disk)?;
        }
        self.entries.retain(|e| !markers.contains(&e.last_offset));
        Ok(())
    }

    /// Forget entries whose marker is below `offset` (their segments are gone).
    pub fn drop_below(&mut self, offset: i64) {
        let n = self.entries.partition_point(|e| e.last_offset < offset);
        self.entries.drain(..n);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: first }
    }

    #[test]
    fn entries_survive_a_reload_and_later_ones_are_dropped_for_rebuilding() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::new();
        idx.append(dir.path(), 0, t(1, 0, 5)).unwrap();
        idx.append(dir.path(), 0, t(2, 3, 9)).unwrap();
        idx.append(dir.path(), 10, t(1, 11, 14)).unwrap();
        let all = TxnIndex::load(dir.path(), &[0, 10], i64::MAX).unwrap();
        assert_eq!(all.entries, idx.entries);
        let cut = TxnIndex::load(dir.path(), &[0, 10], 9).unwrap();
        assert_eq!(cut.entries, vec![t(1, 0, 5)]);
        assert_eq!(read_segment(dir.path(), 0).unwrap(), vec![t(1, 0, 5)]);
        assert!(!dir.path().join(file_name(10, "txnindex")).exists());
    }

    #[test]
    fn collect_finds_the_transactions_overlapping_a_range() {
        let idx = TxnIndex { entries: vec![t(1, 0, 5), t(2, 3, 9), t(3, 20, 30)] };
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|e| e.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(idx.collect(0, 100)), vec![1, 2, 3]);
        assert_eq!(pids(idx.collect(6, 10)), vec![2]);
        assert_eq!(pids(idx.collect(10, 20)), Vec::<i64>::new());
        assert_eq!(pids(idx.collect(10, 21)), vec![3]);
    }

    #[test]
    fn entries_of_removed_markers_go_from_file_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::new();
        idx.append(dir.path(), 0, t(1, 0, 5)).unwrap();
        idx.append(dir.path(), 0, t(2, 3, 9)).unwrap();
        idx.append(dir.path(), 10, t(1, 11, 14)).unwrap();
        idx.remove_markers(dir.path(), 0, &[9]).unwrap();
        assert_eq!(idx.entries, vec![t(1, 0, 5), t(1, 11, 14)]);
        assert_eq!(read_segment(dir.path(), 0).unwrap(), vec![t(1, 0, 5)]);
        idx.remove_markers(dir.path(), 0, &[5, 7]).unwrap();
        assert!(!dir.path().join(file_name(0, "txnindex")).exists());
        assert_eq!(TxnIndex::load(dir.path(), &[0, 10], i64::MAX).unwrap().entries, idx.entries);
    }

    #[test]
    fn a_torn_last_entry_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::new();
        idx.append(dir.path(), 0, t(1, 0, 5)).unwrap();
        let path = dir.path().join(file_name(0, "txnindex"));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 1, 2, 3]).unwrap();
        assert_eq!(read_segment(dir.path(), 0).unwrap(), vec![t(1, 0, 5)]);
    }
}
