//! [`Tapped`]: a store the test driver can read while its task owns it (a shared handle on the
//! typed store; only built under the TopologyTestDriver).

use std::sync::{Arc, Mutex, MutexGuard};

use rill_core::streams::store::{ChangelogSink, KeyValueStore, StateStore, StoreResult, WriteOp};
use rill_state::TypedStore;

/// A typed store shared between its task and the test driver.
pub(crate) struct Tapped<K, V> {
    pub(crate) name: String,
    pub(crate) inner: Arc<Mutex<TypedStore<K, V>>>,
}

impl<K, V> Tapped<K, V> {
    fn lock(&self) -> MutexGuard<'_, TypedStore<K, V>> {
        // Nothing panics while holding it; a poisoned lock still holds a usable store.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> for Tapped<K, V> {
    fn get(&self, key: &K) -> StoreResult<Option<V>> {
        self.lock().get(key)
    }
    fn put(&mut self, key: &K, value: &V) -> StoreResult<()> {
        self.lock().put(key, value)
    }
    fn delete(&mut self, key: &K) -> StoreResult<Option<V>> {
        self.lock().delete(key)
    }
    fn range(&self, from: Option<&K>, to: Option<&K>) -> StoreResult<Vec<(K, V)>> {
        self.lock().range(from, to)
    }
    fn approximate_len(&self) -> u64 {
        self.lock().approximate_len()
    }
}

impl<K: 'static, V: 'static> StateStore for Tapped<K, V> {
    fn name(&self) -> &str {
        &self.name
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.lock().send_changelog(sink)
    }
    fn prepare_commit(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.lock().prepare_commit(sink)
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        self.lock().commit(changelog_offset)
    }
    fn abort(&mut self) {
        self.lock().abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        StateStore::checkpoint(&*self.lock())
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        self.lock().restore(batch, next_offset)
    }
    fn clear(&mut self) -> StoreResult<()> {
        StateStore::clear(&mut *self.lock())
    }
    fn flush(&mut self) -> StoreResult<()> {
        StateStore::flush(&mut *self.lock())
    }
}
