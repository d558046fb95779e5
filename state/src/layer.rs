//! The interface every layer of a key-value store implements, and the bottom layer for
//! at-least-once ([`Direct`]).
//!
//! A store is a stack: typed on top ([`crate::TypedStore`]), then metering, caching and
//! change-logging, then a bottom layer that turns writes into [`BytesStore`] batches: under
//! exactly-once [`crate::Staging`] (writes held until the Kafka transaction commits), under
//! at-least-once [`Direct`] (writes go straight in, as Kafka Streams does). Every layer is a
//! [`KvLayer`] over the one below; only the typed layer knows serdes.

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, ChangelogSink, StoreResult, WriteOp};

use crate::metered::StoreMetrics;

/// One layer of a key-value store of bytes (see the module docs for the stack).
pub trait KvLayer: Send {
    /// The store's name.
    fn name(&self) -> &str;
    /// The value of `key`, including writes not yet committed.
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>>;
    /// Entries with `from <= key < to` (`None`: unbounded), ascending, including writes not yet
    /// committed.
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>>;
    /// Set `key` to `value` (`None`: delete). `timestamp` is the record time the change is
    /// logged with.
    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()>;
    /// Push cached writes down to the layers below (caching layers; others pass it on).
    fn flush_cache(&mut self) -> StoreResult<()>;
    /// Send the changes logged since the last call to `sink` (change-logging layers).
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()>;
    /// Apply every write since the last commit, with `changelog_offset` as the checkpoint.
    /// Callers flush caches and send the changelog first.
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()>;
    /// Drop every write since the last commit that is still held by a layer.
    fn abort(&mut self);
    /// The checkpoint of the committed state.
    fn checkpoint(&self) -> StoreResult<Option<i64>>;
    /// Write restored changelog records straight to the bytes store with `next_offset` as the
    /// checkpoint, bypassing caching and change-logging.
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()>;
    /// Drop everything: entries, held writes, the checkpoint.
    fn clear(&mut self) -> StoreResult<()>;
    /// Roughly how many entries the committed store holds.
    fn approximate_len(&self) -> u64;
    /// Make committed state durable.
    fn flush(&mut self) -> StoreResult<()>;
    /// Counts and latencies, if a metering layer is in the stack.
    fn metrics(&self) -> Option<StoreMetrics> {
        None
    }
    /// Writes the bytes store dropped as past its retention (window and session stores; see
    /// [`BytesStore::expired_records`]).
    fn expired_records(&self) -> u64;
}

impl<L: KvLayer + ?Sized> KvLayer for Box<L> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        (**self).get(key)
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        (**self).range(from, to)
    }
    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()> {
        (**self).put(key, value, timestamp)
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        (**self).flush_cache()
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        (**self).send_changelog(sink)
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        (**self).commit(changelog_offset)
    }
    fn abort(&mut self) {
        (**self).abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        (**self).checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        (**self).restore(batch, next_offset)
    }
    fn clear(&mut self) -> StoreResult<()> {
        (**self).clear()
    }
    fn approximate_len(&self) -> u64 {
        (**self).approximate_len()
    }
    fn flush(&mut self) -> StoreResult<()> {
        (**self).flush()
    }
    fn metrics(&self) -> Option<StoreMetrics> {
        (**self).metrics()
    }
    fn expired_records(&self) -> u64 {
        (**self).expired_records()
    }
}

/// The at-least-once bottom layer: each put is written to the bytes store at once (a batch of
/// one, no checkpoint); a commit only records the checkpoint. After a crash the store may hold
/// writes past its checkpoint; restoring the changelog from the checkpoint rewrites the same keys
/// with the values the changelog holds, so the result is the same. Abort cannot undo anything.
pub struct Direct<S> {
    inner: S,
}

impl<S: BytesStore> Direct<S> {
    /// Write-through over `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
    /// The bytes store below.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: BytesStore> KvLayer for Direct<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        self.inner.get(key)
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        self.inner.range(from, to)
    }
    fn put(&mut self, key: Bytes, value: Option<Bytes>, _timestamp: i64) -> StoreResult<()> {
        self.inner.write(vec![(key, value)], None)
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        Ok(())
    }
    fn send_changelog(&mut self, _sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        match changelog_offset {
            Some(offset) => self.inner.write(Vec::new(), Some(offset)),
            None => Ok(()),
        }
    }
    fn abort(&mut self) {}
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        self.inner.write(batch, Some(next_offset))
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.inner.clear()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }
    fn flush(&mut self) -> StoreResult<()> {
        self.inner.flush()
    }
    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::suite;

    #[test]
    fn direct_passes_the_layer_suite() {
        suite::layer_suite(|| Direct::new(InMemoryStore::new("s")), Some(false));
    }

    #[test]
    fn direct_writes_through_and_commit_only_checkpoints() {
        let mut d = Direct::new(InMemoryStore::new("s"));
        d.put(Bytes::from_static(b"a"), Some(Bytes::from_static(b"1")), 0).unwrap();
        assert_eq!(d.inner().get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        d.abort();
        assert_eq!(d.get(b"a").unwrap().as_deref(), Some(&b"1"[..]), "abort cannot undo a direct write");
        d.commit(Some(5)).unwrap();
        assert_eq!(d.checkpoint().unwrap(), Some(5));
        d.commit(None).unwrap();
        assert_eq!(d.checkpoint().unwrap(), Some(5));
    }
}
