//! [`Metered`]: counts and latencies of a store's operations, read as a plain snapshot
//! ([`StoreMetrics`]). No metrics library: the runtime reports the snapshot as it likes.
//!
//! Latency is measured around the call to the layer below; for `range` that is creating the
//! iterator, not consuming it.

use std::cell::Cell;
use std::time::Instant;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, ChangelogSink, StoreResult, WriteOp};

use crate::layer::KvLayer;

/// Count and latency of one kind of operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls (failed ones included).
    pub count: u64,
    /// Sum of their latencies, in nanoseconds.
    pub total_nanos: u64,
    /// The slowest, in nanoseconds.
    pub max_nanos: u64,
}

impl OpStats {
    /// Mean latency in nanoseconds (0 without calls).
    pub fn mean_nanos(&self) -> u64 {
        self.total_nanos.checked_div(self.count).unwrap_or(0)
    }
    fn record(&mut self, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_nanos = self.total_nanos.saturating_add(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }
}

/// A snapshot of a store's operation counts and latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    /// Point reads.
    pub get: OpStats,
    /// Puts.
    pub put: OpStats,
    /// Deletes.
    pub delete: OpStats,
    /// Range scans (creating the iterator).
    pub range: OpStats,
    /// Cache flushes before commits.
    pub flush_cache: OpStats,
    /// Commits.
    pub commit: OpStats,
    /// Restored batches.
    pub restore: OpStats,
    /// Writes dropped as past the store's retention (window and session stores; Kafka's
    /// `expired-window-record-drop`). Under exactly-once they are dropped, and counted, when
    /// their commit reaches the store.
    pub expired_records: u64,
}

/// Metering over `L` (see the module docs).
pub struct Metered<L> {
    inner: L,
    get: Cell<OpStats>,
    range: Cell<OpStats>,
    rest: StoreMetrics,
}

impl<L: KvLayer> Metered<L> {
    /// Meter `inner`.
    pub fn new(inner: L) -> Self {
        Self { inner, get: Cell::default(), range: Cell::default(), rest: StoreMetrics::default() }
    }
    /// The counts and latencies so far.
    pub fn snapshot(&self) -> StoreMetrics {
        let expired_records = self.inner.expired_records();
        StoreMetrics { get: self.get.get(), range: self.range.get(), expired_records, ..self.rest }
    }
}

fn timed<T>(stats: &mut OpStats, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    stats.record(started);
    out
}

fn timed_cell<T>(cell: &Cell<OpStats>, f: impl FnOnce() -> T) -> T {
    let mut stats = cell.get();
    let out = timed(&mut stats, f);
    cell.set(stats);
    out
}

impl<L: KvLayer> KvLayer for Metered<L> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        timed_cell(&self.get, || self.inner.get(key))
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        timed_cell(&self.range, || self.inner.range(from, to))
    }
    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()> {
        let stats = if value.is_some() { &mut self.rest.put } else { &mut self.rest.delete };
        timed(stats, || self.inner.put(key, value, timestamp))
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        timed(&mut self.rest.flush_cache, || self.inner.flush_cache())
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.inner.send_changelog(sink)
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        timed(&mut self.rest.commit, || self.inner.commit(changelog_offset))
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        timed(&mut self.rest.restore, || self.inner.restore(batch, next_offset))
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.inner.clear()
    }
    fn expired_records(&self) -> u64 {
        self.inner.expired_records()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }
    fn flush(&mut self) -> StoreResult<()> {
        self.inner.flush()
    }
    fn metrics(&self) -> Option<StoreMetrics> {
        Some(self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::staging::Staging;
    use crate::suite;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn passes_the_layer_suite() {
        suite::layer_suite(|| Metered::new(Staging::new(InMemoryStore::new("s"))), Some(true));
    }

    #[test]
    fn counts_each_kind_of_operation() {
        let mut s = Metered::new(Staging::new(InMemoryStore::new("s")));
        assert_eq!(s.snapshot(), StoreMetrics::default());
        s.put(b("a"), Some(b("1")), 0).unwrap();
        s.put(b("b"), Some(b("1")), 0).unwrap();
        s.put(b("a"), None, 0).unwrap();
        s.get(b"a").unwrap();
        s.get(b"b").unwrap();
        s.get(b"c").unwrap();
        assert_eq!(s.range(None, None).unwrap().count(), 1);
        s.commit(Some(1)).unwrap();
        s.restore(Vec::new(), 2).unwrap();
        let m = s.metrics().unwrap();
        let counts = [m.get, m.put, m.delete, m.range, m.flush_cache, m.commit, m.restore].map(|o| o.count);
        assert_eq!(counts, [3, 2, 1, 1, 0, 1, 1]);
        assert!(m.get.max_nanos <= m.get.total_nanos);
        assert!(m.get.mean_nanos() <= m.get.max_nanos);
        assert_eq!(OpStats::default().mean_nanos(), 0);
    }
}
