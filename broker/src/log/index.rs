//! Sparse offset index (`.index`): relative offset -> file position, one entry every
//! `index.interval.bytes` of log. Entries are 8 bytes (u32 relative offset, u32 position,
//! big-endian), appended to the file and mirrored in memory for binary search.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const ENTRY: usize = 8;

/// Failpoint: an entry write that reports failure after the bytes went in.
pub(crate) const INDEX_APPEND: &str = "index.append";

/// Offset index of one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    entries: Vec<(u32, u32)>,
    /// A failed append left bytes in the file that could not be cut: no more appends, so the
    /// damage stays at the end, where opening the index finds it and the segment rebuilds it.
    broken: bool,
}

impl OffsetIndex {
    /// Open (or create) the index at `path`, dropping a torn trailing entry.
    pub fn open(path: &Path, base_offset: i64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        let whole = len - len % ENTRY;
        let mut raw = vec![0u8; whole];
        file.read_exact_at(&mut raw, 0)?;
        if whole != len {
            file.set_len(whole as u64)?;
        }
        let mut entries: Vec<(u32, u32)> = raw
            .chunks_exact(ENTRY)
            .map(|c| {
                (u32::from_be_bytes(c[0..4].try_into().expect("4")), u32::from_be_bytes(c[4..8].try_into().expect("4")))
            })
            .collect();
        // A valid index is strictly increasing in both columns; keep the valid prefix.
        let valid = entries
            .windows(2)
            .position(|w| w[1].0 <= w[0].0 || w[1].1 <= w[0].1)
            .map(|i| i + 1)
            .unwrap_or(entries.len());
        if valid != entries.len() {
            entries.truncate(valid);
            file.set_len((valid * ENTRY) as u64)?;
        }
        Ok(Self { path: path.to_path_buf(), file, base_offset, entries, broken: false })
    }

    /// Append an entry; `offset` and `position` must exceed the last entry's.
    ///
    /// On failure the file is cut back to the entries before, so the index stays valid (and
    /// sparser); if even that fails, the index takes no more entries until it is truncated.
    pub fn append(&mut self, offset: i64, position: u32) -> io::Result<()> {
        let rel = (offset - self.base_offset) as u32;
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            if rel <= last_rel || position <= last_pos {
                return Ok(());
            }
        }
        if self.broken {
            return Err(io::Error::other(format!("{} takes no entries after a failed write", self.path.display())));
        }
        let mut e = [0u8; ENTRY];
        e[0..4].copy_from_slice(&rel.to_be_bytes());
        e[4..8].copy_from_slice(&position.to_be_bytes());
        if let Err(err) = self.file.write_all(&e).and_then(|_| super::segment::failpoint(INDEX_APPEND)) {
            self.broken = self.file.set_len((self.entries.len() * ENTRY) as u64).is_err();
            return Err(err);
        }
        self.entries.push((rel, position));
        Ok(())
    }

    /// The last entry at or before `offset`: (offset, position); (base, 0) if none.
    pub fn lookup(&self, offset: i64) -> (i64, u32) {
        let rel = offset - self.base_offset;
        if rel < 0 {
            return (self.base_offset, 0);
        }
        let i = self.entries.partition_point(|&(r, _)| (r as i64) <= rel);
        if i == 0 {
            (self.base_offset, 0)
        } else {
            let (r, p) = self.entries[i - 1];
            (self.base_offset + r as i64, p)
        }
    }

    /// Drop entries whose offset is `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let rel = offset - self.base_offset;
        let keep = self.entries.partition_point(|&(r, _)| (r as i64) < rel);
        self.truncate_entries(keep)
    }

    /// Drop entries whose position is `>= position`.
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.truncate_entries(keep)
    }

    fn truncate_entries(&mut self, keep: usize) -> io::Result<()> {
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY) as u64)?;
        self.broken = false;
        Ok(())
    }

    /// Remove every entry.
    pub fn clear(&mut self) -> io::Result<()> {
        self.truncate_to_position(0)
    }

    /// fsync the index file.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 100).unwrap();
        for (o, p) in [(100, 0), (150, 4096), (200, 8192)] {
            idx.append(o, p).unwrap();
        }
        let cases = [(50, (100, 0)), (100, (100, 0)), (149, (100, 0)), (150, (150, 4096)), (999, (200, 8192))];
        for (offset, want) in cases {
            assert_eq!(idx.lookup(offset), want, "lookup({offset})");
        }
    }

    #[test]
    fn survives_reopen_and_drops_torn_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        {
            let mut idx = OffsetIndex::open(&path, 0).unwrap();
            idx.append(10, 100).unwrap();
            idx.append(20, 200).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(25), (20, 200));
    }

    #[test]
    fn truncation_removes_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0).unwrap();
        for i in 1..=5 {
            idx.append(i * 10, (i * 1000) as u32).unwrap();
        }
        idx.truncate_to(30).unwrap();
        assert_eq!(idx.len(), 2);
        idx.truncate_to_position(2000).unwrap();
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn a_failed_append_leaves_the_file_as_the_entries() {
        use crate::log::segment::failpoints;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, 0).unwrap();
        idx.append(10, 100).unwrap();
        failpoints::arm(INDEX_APPEND);
        assert!(idx.append(20, 200).is_err());
        failpoints::disarm(INDEX_APPEND);
        idx.append(30, 300).unwrap();
        assert_eq!(idx.lookup(25), (10, 100), "the failed entry is not used");
        let reopened = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(reopened.entries, idx.entries, "the failed entry is not in the file");
    }
}
