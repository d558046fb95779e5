//! [`Staging`]: the exactly-once bottom layer. Writes since the last commit are held in an
//! ordered overlay (deletes as tombstones) over the committed bytes store; reads merge the
//! overlay over it (read-your-writes). [`KvLayer::commit`] applies the overlay in ONE
//! [`BytesStore::write`] together with the changelog offset, after the Kafka transaction
//! committed; [`KvLayer::abort`] drops it. So the bytes store only ever holds committed state
//! with its checkpoint, and a crash never forces a wipe (DESIGN §2).
//!
//! The overlay coalesces per key, so it holds at most one entry per key written since the last
//! commit (100 ms of writes under exactly-once by default).

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, ChangelogSink, StoreError, StoreResult, WriteOp};

use crate::layer::KvLayer;
use crate::merge::{map_range, merge};

/// Staged writes over a committed [`BytesStore`] (see the module docs).
pub struct Staging<S> {
    inner: S,
    overlay: BTreeMap<Bytes, Option<Bytes>>,
}

impl<S: BytesStore> Staging<S> {
    /// Staging over `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner, overlay: BTreeMap::new() }
    }
    /// The committed store below.
    pub fn inner(&self) -> &S {
        &self.inner
    }
    /// Keys written since the last commit.
    pub fn staged_len(&self) -> usize {
        self.overlay.len()
    }
}

impl<S: BytesStore> KvLayer for Staging<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        match self.overlay.get(key) {
            Some(staged) => Ok(staged.clone()),
            None => self.inner.get(key),
        }
    }

    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        let upper = map_range(&self.overlay, from, to).map(|(k, v)| (k.clone(), v.clone()));
        Ok(merge(upper, self.inner.range(from, to)?))
    }

    fn put(&mut self, key: Bytes, value: Option<Bytes>, _timestamp: i64) -> StoreResult<()> {
        self.overlay.insert(key, value);
        Ok(())
    }

    fn flush_cache(&mut self) -> StoreResult<()> {
        Ok(())
    }

    fn send_changelog(&mut self, _sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        Ok(())
    }

    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        if self.overlay.is_empty() && changelog_offset.is_none() {
            return Ok(());
        }
        // Built by cloning (reference counts) so a failed write leaves the overlay in place.
        let batch: Vec<WriteOp> = self.overlay.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.inner.write(batch, changelog_offset)?;
        self.overlay.clear();
        Ok(())
    }

    fn abort(&mut self) {
        self.overlay.clear();
    }

    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }

    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        if !self.overlay.is_empty() {
            return Err(StoreError::IllegalState {
                store: self.inner.name().to_string(),
                cause: format!("restore with {} uncommitted writes staged", self.overlay.len()),
            });
        }
        self.inner.write(batch, Some(next_offset))
    }

    fn clear(&mut self) -> StoreResult<()> {
        self.overlay.clear();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::rocks::RocksDbStore;
    use crate::suite;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Counts the writes reaching the bytes store.
    struct Counting(InMemoryStore, Vec<(usize, Option<i64>)>);

    impl BytesStore for Counting {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
            self.0.get(key)
        }
        fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
            self.0.range(from, to)
        }
        fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
            self.1.push((batch.len(), checkpoint));
            self.0.write(batch, checkpoint)
        }
        fn checkpoint(&self) -> StoreResult<Option<i64>> {
            self.0.checkpoint()
        }
        fn approximate_len(&self) -> u64 {
            self.0.approximate_len()
        }
        fn flush(&mut self) -> StoreResult<()> {
            self.0.flush()
        }
        fn clear(&mut self) -> StoreResult<()> {
            self.0.clear()
        }
    }

    #[test]
    fn passes_the_layer_suite_on_both_engines() {
        suite::layer_suite(|| Staging::new(InMemoryStore::new("s")), Some(true));
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        suite::layer_suite(
            || {
                n += 1;
                Staging::new(RocksDbStore::open("s", dir.path().join(n.to_string())).unwrap())
            },
            Some(true),
        );
    }

    #[test]
    fn commit_is_one_write_with_the_checkpoint_and_nothing_reaches_the_store_before() {
        let mut s = Staging::new(Counting(InMemoryStore::new("s"), Vec::new()));
        for i in 0..5 {
            s.put(b("k"), Some(Bytes::from(i.to_string())), 0).unwrap();
        }
        s.put(b("gone"), None, 0).unwrap();
        assert!(s.inner().1.is_empty());
        assert_eq!(s.inner().get(b"k").unwrap(), None);
        s.commit(Some(8)).unwrap();
        assert_eq!(s.inner().1, vec![(2, Some(8))], "coalesced per key, one write");
        assert_eq!(s.inner().get(b"k").unwrap(), Some(b("4")));
        assert_eq!(s.staged_len(), 0);
        s.commit(None).unwrap();
        assert_eq!(s.inner().1.len(), 1, "an empty commit without an offset writes nothing");
    }

    #[test]
    fn restore_refuses_while_writes_are_staged() {
        let mut s = Staging::new(InMemoryStore::new("s"));
        s.put(b("a"), Some(b("1")), 0).unwrap();
        let err = s.restore(vec![(b("b"), Some(b("2")))], 3).unwrap_err();
        assert!(matches!(err, StoreError::IllegalState { .. }), "{err}");
        s.abort();
        s.restore(vec![(b("b"), Some(b("2")))], 3).unwrap();
        assert_eq!(s.checkpoint().unwrap(), Some(3));
    }

    #[test]
    fn a_crash_before_commit_leaves_the_previous_commit_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Staging::new(RocksDbStore::open("s", dir.path()).unwrap());
            s.put(b("a"), Some(b("1")), 0).unwrap();
            s.commit(Some(1)).unwrap();
            s.put(b("a"), Some(b("2")), 0).unwrap();
            s.put(b("b"), Some(b("2")), 0).unwrap();
            // Dropped without a commit: the process "crashed" mid-transaction.
        }
        let s = Staging::new(RocksDbStore::open("s", dir.path()).unwrap());
        assert_eq!(s.checkpoint().unwrap(), Some(1));
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
        assert_eq!(s.get(b"b").unwrap(), None);
    }
}
