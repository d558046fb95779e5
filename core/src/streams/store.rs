//! What the runtime and processors need from a state store. `rill-state` implements these: a
//! RocksDB store and an in-memory twin at the bottom ([`BytesStore`]), layers above them
//! (staging for exactly-once, caching, change-logging, metering), and the typed view processors
//! use ([`KeyValueStore`]). Only that outermost layer knows serdes.
//!
//! Exactly-once without wiping state after a crash (DESIGN §2): writes made during a transaction
//! are staged above the committed store; when the Kafka transaction commits, they go into the
//! store in one atomic [`BytesStore::write`] together with the changelog offset they bring it to.
//! A crash before leaves the store at the previous commit; a crash after leaves it behind by at
//! most one commit, which a read_committed restore of the changelog tail from the stored
//! checkpoint repairs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::serde::SerdeError;

pub mod restore;

use restore::{plan_restore, ChangelogBounds, RestorePlan};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, corruption, ...).
    #[error("store {store}: {cause}")]
    Backend {
        /// Store name.
        store: String,
        /// What the engine said.
        cause: String,
    },
    /// A key or value could not be (de)serialized.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// The store was closed (its task moved away or the app is shutting down).
    #[error("store {0} is closed")]
    Closed(String),
    /// Writing a change to the changelog failed.
    #[error("store {store}: changelog write failed: {cause}")]
    Changelog {
        /// Store name.
        store: String,
        /// Why.
        cause: String,
    },
    /// The store was used out of order (a runtime bug, not retriable): for example restoring
    /// while uncommitted writes are staged.
    #[error("store {store}: {cause}")]
    IllegalState {
        /// Store name.
        store: String,
        /// What was out of order.
        cause: String,
    },
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One write: a put (`Some(value)`) or a delete (`None`).
pub type WriteOp = (Bytes, Option<Bytes>);

/// Entries of a store in ascending key order.
pub type BytesIter<'a> = Box<dyn Iterator<Item = StoreResult<(Bytes, Bytes)>> + 'a>;

/// A key-value store of bytes holding committed state, ordered by key bytes.
///
/// Writes come in batches that are atomic together with the changelog offset (checkpoint) they
/// bring the store to: after a crash the store holds a whole batch and its checkpoint, or
/// neither.
pub trait BytesStore: Send {
    /// The store's name (also its changelog's: `<application.id>-<name>-changelog`).
    fn name(&self) -> &str;
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>>;
    /// Entries with `from <= key < to` (`None`: unbounded), ascending.
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>>;
    /// Apply `batch` in order, and record `checkpoint` if given, atomically.
    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()>;
    /// The checkpoint stored with the last write that had one.
    fn checkpoint(&self) -> StoreResult<Option<i64>>;
    /// Roughly how many entries the store holds.
    fn approximate_len(&self) -> u64;
    /// Make everything written durable.
    fn flush(&mut self) -> StoreResult<()>;
    /// Remove every entry and the checkpoint (a wipe before a full restore). A crash part way
    /// leaves no checkpoint, so the store is wiped again.
    fn clear(&mut self) -> StoreResult<()>;
    /// Writes dropped because they fell outside the store's retention (time-segmented window
    /// and session stores: Kafka's `expired-window-record-drop`); 0 for stores that keep
    /// everything.
    fn expired_records(&self) -> u64 {
        0
    }
}

impl<S: BytesStore + ?Sized> BytesStore for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        (**self).get(key)
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        (**self).range(from, to)
    }
    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
        (**self).write(batch, checkpoint)
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        (**self).checkpoint()
    }
    fn approximate_len(&self) -> u64 {
        (**self).approximate_len()
    }
    fn flush(&mut self) -> StoreResult<()> {
        (**self).flush()
    }
    fn clear(&mut self) -> StoreResult<()> {
        (**self).clear()
    }
    fn expired_records(&self) -> u64 {
        (**self).expired_records()
    }
}

/// Where change-logging stores send their changes: the runtime's record collector (under
/// exactly-once, the stream thread's transactional producer).
pub trait ChangelogSink {
    /// Send one change of `key` (`None`: deleted) to `topic`-`partition`.
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: &Bytes,
        value: Option<&Bytes>,
        timestamp: i64,
    ) -> StoreResult<()>;
}

/// The runtime's handle on a task's store, whatever its layers: it commits or aborts what
/// processors wrote since the last commit, and restores from the changelog.
///
/// A commit, in order: [`prepare_commit`](Self::prepare_commit) (caches flushed, every change
/// sent to the sink, inside the Kafka transaction under exactly-once), then the Kafka commit,
/// then [`commit`](Self::commit) with the changelog offset the transaction brought the store to.
/// Between commits the runtime may call [`send_changelog`](Self::send_changelog) after each
/// record so changes do not pile up in the store.
pub trait StateStore: Send {
    /// The store's name.
    fn name(&self) -> &str;
    /// Send the changes written since the last call to `sink` (change-logging stores; others do
    /// nothing). Cached writes stay cached.
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()>;
    /// Flush caches down to the store's lower layers and send every pending change to `sink`:
    /// after this the changelog holds everything the next [`commit`](Self::commit) applies.
    fn prepare_commit(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()>;
    /// Write everything staged since the last commit into the store, with `changelog_offset`
    /// (the changelog offset after this commit's changes) as its checkpoint, atomically.
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()>;
    /// Drop everything staged since the last commit (its transaction aborted).
    fn abort(&mut self);
    /// The changelog offset the committed state corresponds to (restore starts here).
    fn checkpoint(&self) -> StoreResult<Option<i64>>;
    /// Apply changelog records read during restoration (committed data), then checkpoint
    /// `next_offset`.
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()>;
    /// Drop every entry, staged write and the checkpoint (before restoring from the start).
    fn clear(&mut self) -> StoreResult<()>;
    /// Whether the store holds no entries. By default `false`: a store that cannot tell counts
    /// as holding data, so without a checkpoint it is wiped before restoring (harmless if empty).
    fn is_empty(&self) -> StoreResult<bool> {
        Ok(false)
    }
    /// What restoring this store from a changelog with `bounds` takes (see [`plan_restore`]).
    fn restore_plan(&self, bounds: ChangelogBounds) -> StoreResult<RestorePlan> {
        Ok(plan_restore(self.checkpoint()?, self.is_empty()?, bounds))
    }
    /// Make committed state durable (an fsync; commits are crash-consistent without it).
    fn flush(&mut self) -> StoreResult<()>;
}

/// The timestamp of the record a task is processing, shared by the task's stores: the runtime
/// sets it before each record, and change-logging stores stamp changelog records with it (as
/// Kafka Streams stamps them with `context.timestamp()`). Cloning shares the cell.
#[derive(Debug, Clone, Default)]
pub struct RecordTimestamp(Arc<AtomicI64>);

impl RecordTimestamp {
    /// A cell holding `timestamp`.
    pub fn new(timestamp: i64) -> Self {
        Self(Arc::new(AtomicI64::new(timestamp)))
    }
    /// The current record's timestamp.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Set the current record's timestamp.
    pub fn set(&self, timestamp: i64) {
        self.0.store(timestamp, Ordering::Relaxed)
    }
}

/// A key-value store as processors see it: typed, and reading its own uncommitted writes.
pub trait KeyValueStore<K, V> {
    /// The value of `key`.
    fn get(&self, key: &K) -> StoreResult<Option<V>>;
    /// Set `key` to `value`.
    fn put(&mut self, key: &K, value: &V) -> StoreResult<()>;
    /// Remove `key`, returning its old value.
    fn delete(&mut self, key: &K) -> StoreResult<Option<V>>;
    /// Entries with `from <= key < to` by serialized key order (`None`: unbounded).
    fn range(&self, from: Option<&K>, to: Option<&K>) -> StoreResult<Vec<(K, V)>>;
    /// Every entry, by serialized key order.
    fn all(&self) -> StoreResult<Vec<(K, V)>> {
        self.range(None, None)
    }
    /// Roughly how many entries the store holds.
    fn approximate_len(&self) -> u64;
}
