//! [`ChangeLogging`]: every write is also a changelog record for
//! `<application.id>-<store>-changelog`, partition = the task's partition, stamped with the
//! record timestamp of the write.
//!
//! The layer does not hold a producer. It keeps the changes it saw in order, and the runtime
//! hands its record collector (which owns the producer) to [`KvLayer::send_changelog`] as the
//! [`ChangelogSink`]: after each processed record, and always before a commit (a commit with
//! changes still unsent is refused, since the checkpoint would claim the changelog holds them).
//! So the stream thread keeps sole ownership of its collector (no shared handle, no lock), and
//! processors write through the typed store without knowing about the changelog.
//!
//! Restoration bypasses this layer: restored records come from the changelog.

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, ChangelogSink, StoreError, StoreResult, WriteOp};

use crate::layer::KvLayer;
use crate::metered::StoreMetrics;

/// The changelog topic of `store` in application `application_id`.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// Writes also recorded as changelog records (see the module docs).
pub struct ChangeLogging<L> {
    inner: L,
    topic: String,
    partition: i32,
    pending: Vec<(Bytes, Option<Bytes>, i64)>,
}

impl<L: KvLayer> ChangeLogging<L> {
    /// Log the writes to `inner` to `topic`-`partition`.
    pub fn new(inner: L, topic: impl Into<String>, partition: i32) -> Self {
        Self { inner, topic: topic.into(), partition, pending: Vec::new() }
    }
    /// The changelog topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The layer below.
    pub fn inner(&self) -> &L {
        &self.inner
    }
    /// Changes not yet sent.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

impl<L: KvLayer> KvLayer for ChangeLogging<L> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        self.inner.get(key)
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        self.inner.range(from, to)
    }
    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()> {
        self.inner.put(key.clone(), value.clone(), timestamp)?;
        self.pending.push((key, value, timestamp));
        Ok(())
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        self.inner.flush_cache()
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.inner.send_changelog(sink)?;
        let mut sent = 0;
        let result = self.pending.iter().try_for_each(|(key, value, ts)| {
            sink.send(&self.topic, self.partition, key, value.as_ref(), *ts)?;
            sent += 1;
            Ok(())
        });
        self.pending.drain(..sent);
        result
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        if !self.pending.is_empty() {
            return Err(StoreError::IllegalState {
                store: self.inner.name().to_string(),
                cause: format!("commit with {} changes not yet sent to {}", self.pending.len(), self.topic),
            });
        }
        self.inner.commit(changelog_offset)
    }
    fn abort(&mut self) {
        self.pending.clear();
        self.inner.abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.inner.checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        self.inner.restore(batch, next_offset)
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.pending.clear();
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
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::staging::Staging;
    use crate::suite::{self, RecordingSink};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn logged() -> ChangeLogging<Staging<InMemoryStore>> {
        ChangeLogging::new(Staging::new(InMemoryStore::new("counts")), changelog_topic("app", "counts"), 3)
    }

    #[test]
    fn passes_the_layer_suite() {
        suite::layer_suite(logged, Some(true));
    }

    #[test]
    fn every_write_is_sent_in_order_with_topic_partition_and_timestamp() {
        let mut s = logged();
        assert_eq!(s.topic(), "app-counts-changelog");
        s.put(b("a"), Some(b("1")), 100).unwrap();
        s.put(b("a"), Some(b("2")), 101).unwrap();
        s.put(b("b"), None, 102).unwrap();
        let mut sink = RecordingSink::default();
        s.send_changelog(&mut sink).unwrap();
        let topic = "app-counts-changelog".to_string();
        assert_eq!(
            sink.sent,
            vec![
                (topic.clone(), 3, b("a"), Some(b("1")), 100),
                (topic.clone(), 3, b("a"), Some(b("2")), 101),
                (topic, 3, b("b"), None, 102),
            ]
        );
        s.send_changelog(&mut sink).unwrap();
        assert_eq!(sink.sent.len(), 3, "nothing is sent twice");
        s.commit(Some(3)).unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b("2")));
    }

    #[test]
    fn commit_with_unsent_changes_is_refused_and_abort_drops_them() {
        let mut s = logged();
        s.put(b("a"), Some(b("1")), 0).unwrap();
        assert!(matches!(s.commit(Some(1)), Err(StoreError::IllegalState { .. })));
        s.abort();
        assert_eq!(s.pending_len(), 0);
        s.commit(Some(1)).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
    }

    #[test]
    fn a_failing_sink_keeps_the_unsent_changes() {
        struct FailSecond(usize);
        impl ChangelogSink for FailSecond {
            fn send(&mut self, _: &str, _: i32, _: &Bytes, _: Option<&Bytes>, _: i64) -> StoreResult<()> {
                self.0 += 1;
                if self.0 == 2 {
                    return Err(StoreError::Changelog { store: "counts".into(), cause: "broker gone".into() });
                }
                Ok(())
            }
        }
        let mut s = logged();
        for k in ["a", "b", "c"] {
            s.put(b(k), Some(b("1")), 0).unwrap();
        }
        let mut sink = FailSecond(0);
        assert!(matches!(s.send_changelog(&mut sink), Err(StoreError::Changelog { .. })));
        assert_eq!(s.pending_len(), 2, "the first change was sent, the failed one and the rest wait");
        s.send_changelog(&mut sink).unwrap();
        assert_eq!((s.pending_len(), sink.0), (0, 4));
    }

    #[test]
    fn restore_is_not_logged() {
        let mut s = logged();
        s.restore(vec![(b("a"), Some(b("1")))], 5).unwrap();
        assert_eq!(s.pending_len(), 0);
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
    }
}
