//! [`Caching`]: writes coalesced per key in memory (`statestore.cache.max.bytes`), written
//! through to the layer below when the cache is over its budget (least recently written first)
//! and when it is flushed before a commit. Below it, change-logging sees one change per key per
//! flush instead of one per write, as in Kafka Streams.
//!
//! Only writes are cached (the cache holds uncommitted writes, each one dirty); reads that miss
//! go to the layer below and are not cached, because reads take `&self`.
//!
//! With staging below (exactly-once) the two compose: an entry evicted mid-transaction goes into
//! the staging overlay (and, through change-logging, into the transaction); a flush before the
//! commit empties the cache into the overlay, which the commit applies with the checkpoint; an
//! abort drops the cache and the overlay alike.
//!
//! KTables forward what the cache flushes downstream: a [`CacheFlushListener`] is told every
//! entry written through, with the value it replaces below.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, ChangelogSink, StoreError, StoreResult, WriteOp};

use crate::layer::KvLayer;
use crate::merge::{map_range, merge};
use crate::metered::StoreMetrics;

/// Bytes an entry costs beyond its key and value (map nodes, LRU index, bookkeeping).
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Told every entry the cache writes through to the layer below (the hook KTables use to forward
/// coalesced updates downstream).
pub trait CacheFlushListener: Send {
    /// `key` became `new` (`None`: deleted); `old` is what the layer below held before.
    fn flushed(&mut self, key: &Bytes, new: Option<&Bytes>, old: Option<&Bytes>, timestamp: i64);
}

struct Entry {
    value: Option<Bytes>,
    timestamp: i64,
    seq: u64,
}

fn entry_bytes(key: &Bytes, value: &Option<Bytes>) -> usize {
    key.len() + value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD_BYTES
}

/// A write cache over `L` (see the module docs).
pub struct Caching<L> {
    inner: L,
    max_bytes: usize,
    entries: BTreeMap<Bytes, Entry>,
    /// Write order: sequence number -> key, oldest first.
    lru: BTreeMap<u64, Bytes>,
    next_seq: u64,
    bytes: usize,
    listener: Option<Box<dyn CacheFlushListener>>,
}

impl<L: KvLayer> Caching<L> {
    /// A cache of at most `max_bytes` (0 writes every put through at once).
    pub fn new(inner: L, max_bytes: usize) -> Self {
        Self { inner, max_bytes, entries: BTreeMap::new(), lru: BTreeMap::new(), next_seq: 0, bytes: 0, listener: None }
    }
    /// Tell `listener` about every entry written through.
    pub fn set_flush_listener(&mut self, listener: Box<dyn CacheFlushListener>) {
        self.listener = Some(listener);
    }
    /// Keys cached.
    pub fn cached_len(&self) -> usize {
        self.entries.len()
    }
    /// Bytes cached (keys, values and [`ENTRY_OVERHEAD_BYTES`] per entry).
    pub fn cached_bytes(&self) -> usize {
        self.bytes
    }
    /// The layer below.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    fn write_through(&mut self, key: Bytes, entry: Entry) -> StoreResult<()> {
        if let Some(listener) = self.listener.as_mut() {
            let old = self.inner.get(&key)?;
            listener.flushed(&key, entry.value.as_ref(), old.as_ref(), entry.timestamp);
        }
        self.inner.put(key, entry.value, entry.timestamp)
    }

    fn evict_oldest(&mut self) -> StoreResult<()> {
        let Some((_, key)) = self.lru.pop_first() else { return Ok(()) };
        let entry = self.entries.remove(&key).expect("lru and entries agree");
        self.bytes -= entry_bytes(&key, &entry.value);
        self.write_through(key, entry)
    }

    fn refuse_if_cached(&self, what: &str) -> StoreResult<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        Err(StoreError::IllegalState {
            store: self.inner.name().to_string(),
            cause: format!("{what} with {} writes still cached (flush the cache first)", self.entries.len()),
        })
    }

    fn drop_all(&mut self) {
        self.entries.clear();
        self.lru.clear();
        self.bytes = 0;
    }
}

impl<L: KvLayer> KvLayer for Caching<L> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        match self.entries.get(key) {
            Some(entry) => Ok(entry.value.clone()),
            None => self.inner.get(key),
        }
    }

    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        let upper = map_range(&self.entries, from, to).map(|(k, e)| (k.clone(), e.value.clone()));
        Ok(merge(upper, self.inner.range(from, to)?))
    }

    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += entry_bytes(&key, &value);
        self.lru.insert(seq, key.clone());
        if let Some(old) = self.entries.insert(key.clone(), Entry { value, timestamp, seq }) {
            self.lru.remove(&old.seq);
            self.bytes -= entry_bytes(&key, &old.value);
        }
        while self.bytes > self.max_bytes && !self.entries.is_empty() {
            self.evict_oldest()?;
        }
        Ok(())
    }

    fn flush_cache(&mut self) -> StoreResult<()> {
        while let Some((key, entry)) = self.entries.pop_first() {
            self.lru.remove(&entry.seq);
            self.bytes -= entry_bytes(&key, &entry.value);
            self.write_through(key, entry)?;
        }
        self.inner.flush_cache()
    }

    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.inner.send_changelog(sink)
    }

    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        self.refuse_if_cached("commit")?;
        self.inner.commit(changelog_offset)
    }

    fn abort(&mut self) {
        self.drop_all();
        self.inner.abort()
    }

    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }

    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        self.refuse_if_cached("restore")?;
        self.inner.restore(batch, next_offset)
    }

    fn clear(&mut self) -> StoreResult<()> {
        self.drop_all();
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
        self.inner.metrics()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rill_core::streams::store::BytesStore;

    use super::*;
    use crate::logging::ChangeLogging;
    use crate::memory::InMemoryStore;
    use crate::staging::Staging;
    use crate::suite::{self, RecordingSink};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    type Stack = Caching<ChangeLogging<Staging<InMemoryStore>>>;

    fn stack(max_bytes: usize) -> Stack {
        Caching::new(ChangeLogging::new(Staging::new(InMemoryStore::new("s")), "app-s-changelog", 0), max_bytes)
    }

    #[test]
    fn passes_the_layer_suite_large_and_tiny() {
        suite::layer_suite(|| stack(1 << 20), Some(true));
        suite::layer_suite(|| stack(0), Some(true));
        suite::layer_suite(|| stack(ENTRY_OVERHEAD_BYTES + 2), Some(true));
    }

    #[test]
    fn updates_coalesce_per_key_until_flush() {
        let mut s = stack(1 << 20);
        for i in 0..100 {
            s.put(b("k"), Some(Bytes::from(i.to_string())), i).unwrap();
        }
        s.put(b("j"), Some(b("x")), 7).unwrap();
        s.put(b("j"), None, 8).unwrap();
        let mut sink = RecordingSink::default();
        s.send_changelog(&mut sink).unwrap();
        assert!(sink.sent.is_empty(), "nothing leaves the cache before a flush");
        assert_eq!(s.get(b"k").unwrap(), Some(b("99")));
        s.flush_cache().unwrap();
        s.send_changelog(&mut sink).unwrap();
        let sent: Vec<_> = sink.sent.iter().map(|(_, _, k, v, ts)| (k.clone(), v.clone(), *ts)).collect();
        assert_eq!(sent, vec![(b("j"), None, 8), (b("k"), Some(b("99")), 99)], "one change per key, its own timestamp");
        assert_eq!((s.cached_len(), s.cached_bytes()), (0, 0));
        s.commit(Some(2)).unwrap();
        assert_eq!(BytesStore::get(s.inner().inner().inner(), b"k").unwrap(), Some(b("99")));
    }

    #[test]
    fn over_budget_the_least_recently_written_goes_down_first() {
        let per = ENTRY_OVERHEAD_BYTES + 2; // one-byte key, one-byte value
        let mut s = stack(2 * per);
        s.put(b("a"), Some(b("1")), 0).unwrap();
        s.put(b("b"), Some(b("1")), 0).unwrap();
        s.put(b("a"), Some(b("2")), 0).unwrap(); // a is now the most recent
        assert_eq!(s.cached_bytes(), 2 * per);
        s.put(b("c"), Some(b("1")), 0).unwrap(); // evicts b
        let mut sink = RecordingSink::default();
        s.send_changelog(&mut sink).unwrap();
        assert_eq!(sink.sent.iter().map(|e| e.2.clone()).collect::<Vec<_>>(), vec![b("b")]);
        assert_eq!(s.cached_len(), 2);
        // Read-your-writes across the cache and the staging overlay below it.
        let all: Vec<_> = s.range(None, None).unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(all, vec![b("a"), b("b"), b("c")]);
    }

    #[test]
    fn commit_and_restore_refuse_while_writes_are_cached_and_abort_drops_cache_and_overlay() {
        let mut s = stack(ENTRY_OVERHEAD_BYTES + 2);
        s.put(b("a"), Some(b("1")), 0).unwrap();
        s.put(b("b"), Some(b("1")), 0).unwrap(); // a evicted into the overlay
        assert!(matches!(s.commit(Some(1)), Err(StoreError::IllegalState { .. })));
        assert!(matches!(s.restore(Vec::new(), 1), Err(StoreError::IllegalState { .. })));
        s.abort();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), None);
        assert_eq!(s.cached_bytes(), 0);
    }

    #[test]
    fn the_flush_listener_sees_new_and_old_values() {
        type Seen = Arc<Mutex<Vec<(Bytes, Option<Bytes>, Option<Bytes>, i64)>>>;
        struct Listener(Seen);
        impl CacheFlushListener for Listener {
            fn flushed(&mut self, key: &Bytes, new: Option<&Bytes>, old: Option<&Bytes>, ts: i64) {
                self.0.lock().unwrap().push((key.clone(), new.cloned(), old.cloned(), ts));
            }
        }
        let seen = Seen::default();
        let mut s = stack(1 << 20);
        s.set_flush_listener(Box::new(Listener(seen.clone())));
        s.put(b("a"), Some(b("1")), 1).unwrap();
        s.flush_cache().unwrap();
        s.put(b("a"), Some(b("2")), 2).unwrap();
        s.put(b("a"), Some(b("3")), 3).unwrap();
        s.flush_cache().unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(b("a"), Some(b("1")), None, 1), (b("a"), Some(b("3")), Some(b("1")), 3)]
        );
    }
}
