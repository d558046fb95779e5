//! [`RocksDbStore`]: a [`BytesStore`] in one RocksDB database per store directory
//! (`<state.dir>/<application.id>/<task>/<store>`, see [`crate::store_dir`]).
//!
//! Entries live in the default column family. The checkpoint (the changelog offset the data
//! corresponds to) lives in the `rill-meta` column family and is written in the same
//! `WriteBatch` as the data it belongs to, so a batch and its checkpoint are applied atomically:
//! after any crash the store holds both or neither.
//!
//! Options ([`RocksDbOptions`], Kafka Streams' defaults where it has them):
//! - WAL on, writes not synced: a process crash loses nothing written; a machine crash may lose
//!   the last writes, but RocksDB recovers a consistent prefix (point-in-time WAL recovery), so
//!   data and checkpoint still match, and restoring the changelog tail from the checkpoint
//!   repairs the rest. [`BytesStore::flush`] syncs the WAL (an fsync, not a memtable flush).
//! - Memtables: 16 MiB write buffers, at most 3 (Kafka Streams' `WRITE_BUFFER_SIZE`,
//!   `MAX_WRITE_BUFFERS`).
//! - Tables: 4 KiB blocks, a per-store LRU block cache (50 MiB by default, Kafka Streams'
//!   `BLOCK_CACHE_SIZE`), bloom filters at 10 bits per key (point lookups dominate).
//! - No compression: the crate is built without compression libraries (a lean build); state is
//!   local and rebuildable from the changelog.
//! - RocksDB's own info log: at most 2 files of 1 MiB.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, StoreError, StoreResult, WriteOp};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, WriteBatch, DB};

/// Column family holding the checkpoint.
const META_CF: &str = "rill-meta";
/// Key of the checkpoint in [`META_CF`]: the changelog offset as 8 bytes big-endian.
const CHECKPOINT_KEY: &[u8] = b"changelog-offset";
/// Deletes per batch when clearing.
const CLEAR_CHUNK: usize = 4096;

/// Default memtable size (Kafka Streams `WRITE_BUFFER_SIZE`).
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Default memtable count (Kafka Streams `MAX_WRITE_BUFFERS`).
pub const DEFAULT_MAX_WRITE_BUFFERS: i32 = 3;
/// Default block cache per store (Kafka Streams `BLOCK_CACHE_SIZE`).
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 50 * 1024 * 1024;

/// RocksDB tuning for one store (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RocksDbOptions {
    /// Memtable size in bytes.
    pub write_buffer_bytes: usize,
    /// Memtables kept before writes stall.
    pub max_write_buffers: i32,
    /// LRU block cache per store, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            max_write_buffers: DEFAULT_MAX_WRITE_BUFFERS,
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
        }
    }
}

impl RocksDbOptions {
    pub(crate) fn db_options(&self) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_size(4096);
        table.set_block_cache(&Cache::new_lru_cache(self.block_cache_bytes));
        table.set_bloom_filter(10.0, false);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_write_buffer_size(self.write_buffer_bytes);
        opts.set_max_write_buffer_number(self.max_write_buffers);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        opts.set_keep_log_file_num(2);
        opts.set_max_log_file_size(1024 * 1024);
        opts
    }
}

/// A [`BytesStore`] in RocksDB (see the module docs).
pub struct RocksDbStore {
    name: String,
    path: PathBuf,
    db: DB,
}

impl std::fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbStore").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl RocksDbStore {
    /// Open (creating if absent) the store `name` in directory `path` with default options.
    pub fn open(name: impl Into<String>, path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(name, path, &RocksDbOptions::default())
    }

    /// Open (creating if absent) the store `name` in directory `path`.
    pub fn open_with(name: impl Into<String>, path: impl AsRef<Path>, options: &RocksDbOptions) -> StoreResult<Self> {
        let name = name.into();
        let path = path.as_ref().to_path_buf();
        let fail = |cause: String| StoreError::Backend { store: name.clone(), cause };
        std::fs::create_dir_all(&path).map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
        let opts = options.db_options();
        let cfs = vec![
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone()),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| fail(format!("cannot open RocksDB at {}: {e}", path.display())))?;
        Ok(Self { name, path, db })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn backend(&self, what: &str, e: rocksdb::Error) -> StoreError {
        StoreError::Backend { store: self.name.clone(), cause: format!("{what} in {}: {e}", self.path.display()) }
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(META_CF).expect("opened with the meta column family")
    }
}

impl BytesStore for RocksDbStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        let value = self.db.get_pinned(key).map_err(|e| self.backend("get", e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        if crate::merge::bounds(from, to).is_none() {
            return Ok(Box::new(std::iter::empty()));
        }
        let mut read = ReadOptions::default();
        if let Some(from) = from {
            read.set_iterate_lower_bound(from);
        }
        if let Some(to) = to {
            read.set_iterate_upper_bound(to);
        }
        let iter = self.db.iterator_opt(IteratorMode::Start, read);
        Ok(Box::new(iter.map(move |item| match item {
            Ok((k, v)) => Ok((Bytes::from(k), Bytes::from(v))),
            Err(e) => Err(self.backend("range", e)),
        })))
    }

    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
        let mut wb = WriteBatch::default();
        for (key, value) in &batch {
            match value {
                Some(value) => wb.put(key, value),
                None => wb.delete(key),
            }
        }
        if let Some(offset) = checkpoint {
            wb.put_cf(self.meta(), CHECKPOINT_KEY, offset.to_be_bytes());
        }
        self.db.write(wb).map_err(|e| self.backend("write", e))
    }

    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        let raw = self.db.get_pinned_cf(self.meta(), CHECKPOINT_KEY).map_err(|e| self.backend("checkpoint", e))?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                let arr: [u8; 8] = raw[..].try_into().map_err(|_| StoreError::Backend {
                    store: self.name.clone(),
                    cause: format!("checkpoint in {} is {} bytes, expected 8", self.path.display(), raw.len()),
                })?;
                Ok(Some(i64::from_be_bytes(arr)))
            }
        }
    }

    fn approximate_len(&self) -> u64 {
        // An estimate by definition; a failed property read only loses the estimate.
        self.db.property_int_value("rocksdb.estimate-num-keys").ok().flatten().unwrap_or(0)
    }

    fn flush(&mut self) -> StoreResult<()> {
        self.db.flush_wal(true).map_err(|e| self.backend("flush (WAL sync)", e))
    }

    fn clear(&mut self) -> StoreResult<()> {
        // The checkpoint goes first: a crash part way leaves no checkpoint, hence another wipe.
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.meta(), CHECKPOINT_KEY);
        self.db.write(wb).map_err(|e| self.backend("clear", e))?;
        loop {
            let mut wb = WriteBatch::default();
            for item in self.db.iterator(IteratorMode::Start).take(CLEAR_CHUNK) {
                let (key, _) = item.map_err(|e| self.backend("clear", e))?;
                wb.delete(key);
            }
            if wb.is_empty() {
                return Ok(());
            }
            self.db.write(wb).map_err(|e| self.backend("clear", e))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn passes_the_bytes_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        suite::bytes_store_suite(|| {
            n += 1;
            RocksDbStore::open("rocks", dir.path().join(format!("s{n}"))).unwrap()
        });
    }

    #[test]
    fn batches_and_checkpoint_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts");
        {
            let mut s = RocksDbStore::open("counts", &path).unwrap();
            s.write(vec![(b("a"), Some(b("1"))), (b("b"), Some(b("2")))], Some(10)).unwrap();
            s.write(vec![(b("a"), None), (b("c"), Some(b("3")))], Some(12)).unwrap();
            s.write(vec![(b("d"), Some(b("4")))], None).unwrap();
            s.flush().unwrap();
        }
        let s = RocksDbStore::open("counts", &path).unwrap();
        assert_eq!(s.checkpoint().unwrap(), Some(12));
        let all: Vec<_> = s.range(None, None).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(all, vec![(b("b"), b("2")), (b("c"), b("3")), (b("d"), b("4"))]);
    }

    #[test]
    fn a_second_open_of_the_same_directory_fails_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksDbStore::open("s", dir.path()).unwrap();
        let err = RocksDbStore::open("s", dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn clear_survives_reopen_and_removes_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = RocksDbStore::open("s", dir.path()).unwrap();
            let batch = (0..10_000).map(|i| (Bytes::from(format!("k{i:05}")), Some(b("v")))).collect();
            s.write(batch, Some(7)).unwrap();
            s.clear().unwrap();
        }
        let s = RocksDbStore::open("s", dir.path()).unwrap();
        assert_eq!(s.checkpoint().unwrap(), None);
        assert_eq!(s.range(None, None).unwrap().count(), 0);
    }
}
