//! [`TypedStore`]: the outer layer processors use, a [`KeyValueStore<K, V>`] over a stack of
//! bytes layers. The only layer that knows serdes. It is also the runtime's [`StateStore`]
//! handle on the same stack.

use bytes::Bytes;
use rill_core::streams::serde::Serde;
use rill_core::streams::store::{ChangelogSink, KeyValueStore, RecordTimestamp, StateStore, StoreResult, WriteOp};

use crate::layer::KvLayer;
use crate::metered::StoreMetrics;

/// Typed keys and values over a layered bytes store (see the module docs). Changes are stamped
/// with the task's current record timestamp.
pub struct TypedStore<K, V, L = Box<dyn KvLayer>> {
    inner: L,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
    timestamp: RecordTimestamp,
}

impl<K: 'static, V: 'static, L: KvLayer> TypedStore<K, V, L> {
    /// `inner` seen through `keys` and `values`; writes are stamped with `timestamp`'s value.
    pub fn new(inner: L, keys: impl Serde<K>, values: impl Serde<V>, timestamp: RecordTimestamp) -> Self {
        Self { inner, keys: Box::new(keys), values: Box::new(values), timestamp }
    }
    /// The bytes layers below (interactive queries of raw bytes, tests).
    pub fn layers(&self) -> &L {
        &self.inner
    }
    /// Counts and latencies, if the stack has a metering layer.
    pub fn metrics(&self) -> Option<StoreMetrics> {
        self.inner.metrics()
    }
    /// Writes dropped as past the store's retention (window and session stores), metered or
    /// not.
    pub fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }

    fn entry(&self, (key, value): (Bytes, Bytes)) -> StoreResult<(K, V)> {
        Ok((self.keys.deserialize(&key)?, self.values.deserialize(&value)?))
    }
}

impl<K: 'static, V: 'static, L: KvLayer> KeyValueStore<K, V> for TypedStore<K, V, L> {
    fn get(&self, key: &K) -> StoreResult<Option<V>> {
        let key = self.keys.serialize(key)?;
        match self.inner.get(&key)? {
            Some(raw) => Ok(Some(self.values.deserialize(&raw)?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &K, value: &V) -> StoreResult<()> {
        let key = self.keys.serialize(key)?;
        let value = self.values.serialize(value)?;
        self.inner.put(key, Some(value), self.timestamp.get())
    }

    fn delete(&mut self, key: &K) -> StoreResult<Option<V>> {
        let key = self.keys.serialize(key)?;
        let old = match self.inner.get(&key)? {
            Some(raw) => Some(self.values.deserialize(&raw)?),
            None => None,
        };
        self.inner.put(key, None, self.timestamp.get())?;
        Ok(old)
    }

    fn range(&self, from: Option<&K>, to: Option<&K>) -> StoreResult<Vec<(K, V)>> {
        let from = from.map(|k| self.keys.serialize(k)).transpose()?;
        let to = to.map(|k| self.keys.serialize(k)).transpose()?;
        self.inner.range(from.as_deref(), to.as_deref())?.map(|item| self.entry(item?)).collect()
    }

    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }
}

impl<K: 'static, V: 'static, L: KvLayer> StateStore for TypedStore<K, V, L>
where
    Self: Send,
{
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.inner.send_changelog(sink)
    }
    fn prepare_commit(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.inner.flush_cache()?;
        self.inner.send_changelog(sink)
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        self.inner.commit(changelog_offset)
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        self.inner.restore(batch, next_offset)
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.inner.clear()
    }
    fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.inner.range(None, None)?.next().transpose()?.is_none())
    }
    fn flush(&mut self) -> StoreResult<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use rill_core::streams::serde::{I64Serde, StringSerde};
    use rill_core::streams::store::restore::{ChangelogBounds, RestorePlan, WipeReason};
    use rill_core::streams::store::StoreError;

    use super::*;
    use crate::caching::Caching;
    use crate::logging::ChangeLogging;
    use crate::memory::InMemoryStore;
    use crate::staging::Staging;
    use crate::suite::RecordingSink;

    fn counts(ts: &RecordTimestamp) -> TypedStore<String, i64> {
        let stack = Caching::new(
            ChangeLogging::new(Staging::new(InMemoryStore::new("counts")), "a-counts-changelog", 1),
            1 << 20,
        );
        TypedStore::new(Box::new(stack) as Box<dyn KvLayer>, StringSerde, I64Serde, ts.clone())
    }

    #[test]
    fn typed_reads_and_writes_and_a_full_commit_cycle() {
        let ts = RecordTimestamp::new(0);
        let mut s = counts(&ts);
        ts.set(1000);
        s.put(&"b".into(), &2).unwrap();
        s.put(&"a".into(), &1).unwrap();
        ts.set(1001);
        s.put(&"c".into(), &3).unwrap();
        assert_eq!(s.get(&"a".into()).unwrap(), Some(1));
        assert_eq!(s.delete(&"b".into()).unwrap(), Some(2));
        assert_eq!(s.delete(&"zz".into()).unwrap(), None);
        assert_eq!(s.all().unwrap(), vec![("a".into(), 1), ("c".into(), 3)]);
        assert_eq!(s.range(Some(&"b".into()), None).unwrap(), vec![("c".into(), 3)]);

        let mut sink = RecordingSink::default();
        StateStore::send_changelog(&mut s, &mut sink).unwrap();
        assert!(sink.sent.is_empty(), "cached");
        s.prepare_commit(&mut sink).unwrap();
        let sent: Vec<_> = sink.sent.iter().map(|e| (e.2.clone(), e.3.is_some(), e.4)).collect();
        let k = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        assert_eq!(
            sent,
            vec![(k("a"), true, 1000), (k("b"), false, 1001), (k("c"), true, 1001), (k("zz"), false, 1001)]
        );
        s.commit(Some(4)).unwrap();
        assert_eq!(StateStore::checkpoint(&s).unwrap(), Some(4));
        assert_eq!(s.approximate_len(), 2);
        assert_eq!(StateStore::name(&s), "counts");
    }

    #[test]
    fn restore_plan_follows_the_checkpoint_and_contents() {
        let bounds = ChangelogBounds { start: 0, stable_end: 10, end: 10 };
        let ts = RecordTimestamp::default();
        let mut s = counts(&ts);
        assert!(s.is_empty().unwrap());
        assert_eq!(s.restore_plan(bounds).unwrap(), RestorePlan::Restore { from: 0, to: 10 });
        s.restore(vec![(Bytes::from_static(b"k"), Some(Bytes::copy_from_slice(&7i64.to_be_bytes())))], 6).unwrap();
        assert!(!s.is_empty().unwrap());
        assert_eq!(s.restore_plan(bounds).unwrap(), RestorePlan::Restore { from: 6, to: 10 });
        s.clear().unwrap();
        assert_eq!(s.restore_plan(bounds).unwrap(), RestorePlan::Restore { from: 0, to: 10 });
        // Entries without a checkpoint (at-least-once writes before any commit): position unknown.
        s.put(&"k".into(), &1).unwrap();
        s.prepare_commit(&mut RecordingSink::default()).unwrap();
        s.commit(None).unwrap();
        let plan = s.restore_plan(bounds).unwrap();
        assert_eq!(plan, RestorePlan::WipeAndRestore { from: 0, to: 10, reason: WipeReason::NoCheckpoint });
    }

    #[test]
    fn bad_stored_bytes_are_a_serde_error() {
        let ts = RecordTimestamp::default();
        let mut s = counts(&ts);
        s.restore(vec![(Bytes::from_static(b"k"), Some(Bytes::from_static(b"short")))], 1).unwrap();
        assert!(matches!(s.get(&"k".into()), Err(StoreError::Serde(_))));
        assert!(matches!(s.all(), Err(StoreError::Serde(_))));
    }
}
