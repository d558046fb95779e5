//! Producer ids, handed out in blocks that survive restarts.
//!
//! The file `producer-ids` in the data directory holds one number: the end (exclusive) of the
//! block ids are currently taken from. It is replaced atomically (write a temporary file, fsync,
//! rename, fsync the directory) *before* any id of a new block is handed out, so after a crash or
//! a restart the ids continue above every id ever handed out: at most the unused rest of one
//! block is skipped. Idempotent producers (InitProducerId without a transactional id) and the
//! transaction coordinator share it.
//!
//! In a cluster ids must be unique across brokers: blocks come from the controller instead
//! (`AllocateProducerIds` in the metadata log, as Kafka's KIP-730), and no file is kept.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::log::checkpoint::write_atomic;

/// The file name in the data directory.
pub const FILE_NAME: &str = "producer-ids";
/// Ids per block (Kafka's controller hands out blocks of 1000).
pub const BLOCK_SIZE: i64 = 1000;

/// The broker's producer id allocator. See the [module docs](self).
pub struct ProducerIds {
    path: PathBuf,
    block: i64,
    inner: Mutex<Block>,
    /// In a cluster, blocks come from the controller (ids must be unique cluster-wide): this
    /// hands out a block of the given size and returns its first id. Called on a blocking thread.
    source: Option<BlockSource>,
}

/// Where a cluster's blocks come from.
pub type BlockSource = Box<dyn Fn(i64) -> io::Result<i64> + Send + Sync>;

impl std::fmt::Debug for ProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIds").field("path", &self.path).field("clustered", &self.source.is_some()).finish()
    }
}

#[derive(Debug)]
struct Block {
    /// The next id to hand out.
    next: i64,
    /// End (exclusive) of the block on disk; `next == end` means a new block must be stored first.
    end: i64,
}

impl ProducerIds {
    /// Open the allocator of `data_dir`. Nothing is written until the first id is asked for. A
    /// file that does not hold a non-negative number is an error: guessing could hand out an id
    /// twice.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        Self::with_block_size(data_dir, BLOCK_SIZE)
    }

    /// As [`open`](Self::open), with blocks of `block` ids (tests use small blocks).
    pub fn with_block_size(data_dir: &Path, block: i64) -> io::Result<Self> {
        let path = data_dir.join(FILE_NAME);
        let end = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a producer id block end: {s:?}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self { path, block: block.max(1), inner: Mutex::new(Block { next: end, end }), source: None })
    }

    /// Ids handed out in blocks by `source` (the cluster's controller) instead of a local file.
    pub fn clustered(source: BlockSource) -> Self {
        Self {
            path: PathBuf::new(),
            block: BLOCK_SIZE,
            inner: Mutex::new(Block { next: 0, end: 0 }),
            source: Some(source),
        }
    }

    /// The next producer id, storing a new block first when the current one is used up (a small
    /// fsynced write: call from blocking code).
    pub fn next(&self) -> io::Result<i64> {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if b.next >= b.end {
            self.store_block(&mut b)?;
        }
        b.next += 1;
        Ok(b.next - 1)
    }

    /// The next producer id if the current block has one; never touches the disk.
    pub fn try_next(&self) -> Option<i64> {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (b.next < b.end).then(|| {
            b.next += 1;
            b.next - 1
        })
    }

    /// How many ids [`try_next`](Self::try_next) can hand out before the disk is needed.
    pub fn available(&self) -> i64 {
        let b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        b.end - b.next
    }

    /// Make sure at least `n` ids (at most one block) can be handed out by
    /// [`try_next`](Self::try_next) without touching the disk (call from blocking code). Ids left
    /// in the current block are given up when a new block is needed.
    pub fn reserve(&self, n: i64) -> io::Result<()> {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if b.end - b.next < n.min(self.block) {
            b.next = b.end;
            self.store_block(&mut b)?;
        }
        Ok(())
    }

    fn store_block(&self, b: &mut Block) -> io::Result<()> {
        if let Some(source) = &self.source {
            let start = source(self.block)?;
            b.next = start;
            b.end = start + self.block;
            return Ok(());
        }
        let end = b.end.checked_add(self.block).ok_or_else(|| io::Error::other("producer ids exhausted"))?;
        write_atomic(&self.path, format!("{end}\n").as_bytes())?;
        b.next = b.end;
        b.end = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_continue_above_every_stored_block_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::with_block_size(dir.path(), 3).unwrap();
        assert_eq!(ids.try_next(), None, "no block stored yet");
        let got: Vec<i64> = (0..4).map(|_| ids.next().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(), "6\n");
        assert_eq!(ids.try_next(), Some(4));
        drop(ids);
        // 5 was never handed out, but the restart skips the rest of the block.
        let ids = ProducerIds::with_block_size(dir.path(), 3).unwrap();
        assert_eq!(ids.next().unwrap(), 6);
        assert_eq!(std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(), "9\n");
    }

    #[test]
    fn reserve_makes_ids_available_without_io() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::with_block_size(dir.path(), 4).unwrap();
        ids.reserve(2).unwrap();
        assert_eq!(ids.available(), 4);
        assert_eq!((ids.try_next(), ids.try_next(), ids.try_next()), (Some(0), Some(1), Some(2)));
        // One left: a reservation of two starts a new block.
        ids.reserve(2).unwrap();
        assert_eq!(ids.try_next(), Some(4));
        ids.reserve(1).unwrap();
        assert_eq!(ids.try_next(), Some(5));
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "twelve").unwrap();
        let e = ProducerIds::open(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        std::fs::write(dir.path().join(FILE_NAME), "-5").unwrap();
        assert!(ProducerIds::open(dir.path()).is_err());
    }
}
