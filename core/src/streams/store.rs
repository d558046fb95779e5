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

use bytes::Bytes;

use super::serde::SerdeError;

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
pub trait StateStore: Send {
    /// The store's name.
    fn name(&self) -> &str;
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
