//! Time-segmented bytes stores for window and session stores: [`SegmentedRocksDbStore`] and its
//! in-memory twin [`SegmentedInMemoryStore`], Kafka Streams' `RocksDBSegmentedBytesStore`.
//!
//! Each key carries a time ([`SegmentTime`]: a time window's start, a session's end) and goes to
//! the segment `time / segment_interval`. Stream time is the largest time written so far. A
//! segment is *live* while it is not older than the one holding `stream time - retention`;
//! older segments are dropped whole (cheap: a column family in RocksDB, a map in memory), which
//! is how windows expire. The arithmetic is [`SegmentSpec`]'s, as pure functions with a table of
//! cases below.
//!
//! Kafka's rules, kept exactly:
//! - a write whose segment is no longer live is dropped and counted
//!   ([`BytesStore::expired_records`], Kafka's `expired-window-record-drop`);
//! - reads never return an entry with `time <= stream time - retention`, even while its segment
//!   is still on disk;
//! - range scans merge the live segments in key order, so the store orders keys by bytes like
//!   any [`BytesStore`] and passes the same suite.
//!
//! Stream time and the checkpoint are written with each batch, atomically, and survive a
//! reopen; so does the segment interval, which a reopen must match (segments are addressed by
//! it). [`default_segment_interval`] is Kafka's `max(retention / 2, 60 s)`.
//!
//! Changelogs of these stores need `cleanup.policy=compact,delete` and
//! `retention.ms = retention + 1 day` ([`window_changelog_configs`]), so expired windows leave
//! the changelog too but not before the store dropped them.

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, StoreError, StoreResult, WriteOp};
use rill_core::streams::window::{session_window_end, time_window_start};

mod memory;
mod rocks;
#[cfg(test)]
mod tests;

pub use memory::SegmentedInMemoryStore;
pub use rocks::SegmentedRocksDbStore;

/// Kafka's smallest default segment interval (`max(retention / 2, 60 s)`).
pub const MIN_DEFAULT_SEGMENT_INTERVAL_MS: i64 = 60_000;

/// How much longer than the store a window or session changelog keeps records (Kafka Streams'
/// `windowstore.changelog.additional.retention.ms`, 1 day).
pub const WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Kafka's default segment interval for a retention: `max(retention / 2, 60 s)`.
pub fn default_segment_interval(retention_ms: i64) -> i64 {
    (retention_ms / 2).max(MIN_DEFAULT_SEGMENT_INTERVAL_MS)
}

/// Topic configs of a window or session store's changelog: compacted (latest value per window)
/// and deleted by time (`retention.ms = retention + 1 day`), with record create times.
pub fn window_changelog_configs(retention_ms: i64) -> Vec<(String, String)> {
    let retention = retention_ms.saturating_add(WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS);
    vec![
        ("cleanup.policy".into(), "compact,delete".into()),
        ("retention.ms".into(), retention.to_string()),
        ("message.timestamp.type".into(), "CreateTime".into()),
    ]
}

/// Where the time that places a key in a segment is in its bytes.
#[derive(Debug, Clone, Copy)]
pub enum SegmentTime {
    /// Time-window keys (`key ++ start`, `TimeWindowedSerde`): the last 8 bytes.
    WindowStart,
    /// Session keys (`key ++ end ++ start`, `SessionWindowedSerde`): the end.
    SessionEnd,
    /// Any other layout: a function reading the time, `None` if the key has none.
    Custom(fn(&[u8]) -> Option<i64>),
}

impl SegmentTime {
    /// The time in `key`, if it has one.
    pub fn of(&self, key: &[u8]) -> Option<i64> {
        match self {
            SegmentTime::WindowStart => time_window_start(key),
            SegmentTime::SessionEnd => session_window_end(key),
            SegmentTime::Custom(f) => f(key),
        }
    }
}

/// A segmented store's shape: where keys keep their time, how long data lives and how wide a
/// segment is. The arithmetic of segments, as pure functions.
///
/// | stream time | retention | interval | min live segment | key time 40 written? | read? |
/// |---|---|---|---|---|---|
/// | none | 100 | 50 | none (all live) | yes | yes |
/// | 100 | 100 | 50 | 0 | yes | yes |
/// | 140 | 100 | 50 | 0 (`40 / 50`) | yes | no (`40 <= 140 - 100`) |
/// | 150 | 100 | 50 | 1 | no (segment 0 dropped) | no |
#[derive(Debug, Clone, Copy)]
pub struct SegmentSpec {
    /// Where a key's time is.
    pub time: SegmentTime,
    /// How long entries live behind stream time, in ms.
    pub retention_ms: i64,
    /// Width of a segment, in ms.
    pub segment_interval_ms: i64,
}

impl SegmentSpec {
    /// A time-window store: keys `key ++ start`.
    pub fn window(retention_ms: i64, segment_interval_ms: i64) -> Self {
        Self { time: SegmentTime::WindowStart, retention_ms, segment_interval_ms }
    }
    /// A session store: keys `key ++ end ++ start`, with Kafka's default interval.
    pub fn session(retention_ms: i64) -> Self {
        Self::session_with_interval(retention_ms, default_segment_interval(retention_ms))
    }
    /// A session store with segments `segment_interval_ms` wide.
    pub fn session_with_interval(retention_ms: i64, segment_interval_ms: i64) -> Self {
        Self { time: SegmentTime::SessionEnd, retention_ms, segment_interval_ms }
    }

    /// Why this shape cannot work, if it cannot: the interval must be positive, the retention
    /// not negative.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_interval_ms <= 0 {
            return Err(format!("segment interval {} ms must be positive", self.segment_interval_ms));
        }
        if self.retention_ms < 0 {
            return Err(format!("retention {} ms must not be negative", self.retention_ms));
        }
        Ok(())
    }

    /// The segment of time `t`.
    pub fn segment_id(&self, t: i64) -> i64 {
        t.div_euclid(self.segment_interval_ms)
    }

    /// The oldest live segment at `stream_time` (`None`: nothing written yet, all live).
    pub fn min_live_segment(&self, stream_time: Option<i64>) -> Option<i64> {
        stream_time.map(|st| self.segment_id(st.saturating_sub(self.retention_ms)))
    }

    /// Whether segment `id` is live at `stream_time`.
    pub fn is_live(&self, id: i64, stream_time: Option<i64>) -> bool {
        self.min_live_segment(stream_time).is_none_or(|min| id >= min)
    }

    /// Whether an entry with time `t` is past retention at `stream_time` and hidden from reads
    /// (`t <= stream time - retention`, Kafka's rule).
    pub fn is_expired(&self, t: i64, stream_time: Option<i64>) -> bool {
        stream_time.is_some_and(|st| t <= st.saturating_sub(self.retention_ms))
    }

    /// The time in `key`, or an error naming `store`.
    pub(crate) fn time_of(&self, store: &str, key: &[u8]) -> StoreResult<i64> {
        self.time.of(key).ok_or_else(|| StoreError::IllegalState {
            store: store.to_string(),
            cause: format!("a key of {} bytes has no window time ({:?} keys)", key.len(), self.time),
        })
    }

    /// Routes `batch` to segments in order, advancing `stream_time` record by record as Kafka
    /// does: a write whose segment is no longer live when it arrives is dropped and counted.
    /// Writes to segments that the batch's final stream time expires are left out too (their
    /// segment goes anyway), uncounted.
    pub(crate) fn route(&self, store: &str, batch: Vec<WriteOp>, stream_time: Option<i64>) -> StoreResult<Routed> {
        let mut ops = Vec::with_capacity(batch.len());
        let mut stream_time = stream_time;
        let mut dropped = 0;
        for (key, value) in batch {
            let t = self.time_of(store, &key)?;
            stream_time = Some(stream_time.map_or(t, |st| st.max(t)));
            let id = self.segment_id(t);
            if self.is_live(id, stream_time) {
                ops.push((id, key, value));
            } else {
                dropped += 1;
            }
        }
        ops.retain(|(id, _, _)| self.is_live(*id, stream_time));
        Ok(Routed { ops, stream_time, dropped })
    }
}

/// A batch sorted out by [`SegmentSpec::route`].
#[derive(Debug)]
pub(crate) struct Routed {
    /// `(segment, key, value)` to apply, in batch order.
    pub ops: Vec<(i64, Bytes, Option<Bytes>)>,
    /// Stream time after the batch.
    pub stream_time: Option<i64>,
    /// Writes dropped as expired.
    pub dropped: u64,
}

/// Ascending iterators over disjoint key sets merged into one ascending iterator (a key lives in
/// exactly one segment). Errors come through as soon as they are met.
pub(crate) fn merge_sorted<'a>(mut heads: Vec<BytesIter<'a>>) -> BytesIter<'a> {
    if heads.len() == 1 {
        return heads.pop().expect("one");
    }
    let peeked: Vec<_> = heads.into_iter().map(|it| it.peekable()).collect();
    Box::new(MergeSorted { iters: peeked })
}

struct MergeSorted<'a> {
    iters: Vec<std::iter::Peekable<BytesIter<'a>>>,
}

impl Iterator for MergeSorted<'_> {
    type Item = StoreResult<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, Bytes)> = None;
        for i in 0..self.iters.len() {
            match self.iters[i].peek() {
                None => {}
                Some(Err(_)) => return self.iters[i].next(),
                Some(Ok((key, _))) if best.as_ref().is_none_or(|(_, best_key)| key < best_key) => {
                    best = Some((i, key.clone()));
                }
                Some(Ok(_)) => {}
            }
        }
        best.and_then(|(i, _)| self.iters[i].next())
    }
}

#[cfg(test)]
mod arithmetic_tests {
    use super::*;

    #[test]
    fn segment_arithmetic_follows_the_table() {
        let spec = SegmentSpec::window(100, 50);
        // (stream time, min live segment, time 40 written, time 40 read)
        let cases = [
            (None, None, true, true),
            (Some(100), Some(0), true, true),
            (Some(139), Some(0), true, true),
            (Some(140), Some(0), true, false),
            (Some(149), Some(0), true, false),
            (Some(150), Some(1), false, false),
            (Some(i64::MIN), Some(i64::MIN.div_euclid(50)), true, true),
        ];
        for (st, min, written, read) in cases {
            assert_eq!(spec.min_live_segment(st), min, "{st:?}");
            assert_eq!(spec.is_live(spec.segment_id(40), st), written, "{st:?}");
            assert_eq!(!spec.is_expired(40, st), read, "{st:?}");
        }
        assert_eq!((spec.segment_id(0), spec.segment_id(49), spec.segment_id(50), spec.segment_id(-1)), (0, 0, 1, -1));
    }

    #[test]
    fn defaults_and_changelog_configs_are_kafkas() {
        assert_eq!(default_segment_interval(1_000), 60_000);
        assert_eq!(default_segment_interval(86_400_000), 43_200_000);
        assert_eq!(SegmentSpec::session(300_000).segment_interval_ms, 150_000);
        let configs = window_changelog_configs(3_600_000);
        assert!(configs.contains(&("cleanup.policy".into(), "compact,delete".into())));
        assert!(configs.contains(&("retention.ms".into(), "90000000".into())));
        assert_eq!(window_changelog_configs(i64::MAX)[1].1, i64::MAX.to_string());
        assert!(SegmentSpec::window(10, 0).validate().unwrap_err().contains("must be positive"));
        assert!(SegmentSpec::window(-1, 10).validate().unwrap_err().contains("must not be negative"));
        SegmentSpec::window(0, 1).validate().unwrap();
    }

    #[test]
    fn routing_advances_stream_time_record_by_record() {
        let spec = SegmentSpec::window(100, 50);
        let k = |t: i64| Bytes::from([b"k".as_slice(), &t.to_be_bytes()].concat());
        let v = Some(Bytes::from_static(b"v"));
        // 160 makes segment 1 the oldest live: 30 (segment 0) arriving after it is dropped and
        // counted; 20, written before, goes with its segment, uncounted.
        let batch = vec![(k(20), v.clone()), (k(160), v.clone()), (k(30), v.clone()), (k(60), None)];
        let r = spec.route("s", batch, Some(10)).unwrap();
        assert_eq!(r.stream_time, Some(160));
        assert_eq!(r.dropped, 1);
        assert_eq!(r.ops.iter().map(|(id, k, _)| (*id, k.clone())).collect::<Vec<_>>(), vec![(3, k(160)), (1, k(60))]);
        let err = spec.route("s", vec![(Bytes::from_static(b"short"), None)], None).unwrap_err();
        assert!(err.to_string().contains("store s: a key of 5 bytes has no window time (WindowStart keys)"), "{err}");
    }

    #[test]
    fn merge_sorted_interleaves_and_passes_errors() {
        let it = |keys: &[&'static str]| -> BytesIter<'static> {
            let v: Vec<_> = keys.iter().map(|k| Ok((Bytes::from_static(k.as_bytes()), Bytes::new()))).collect();
            Box::new(v.into_iter())
        };
        let got: Vec<_> = merge_sorted(vec![it(&["b", "e"]), it(&[]), it(&["a", "c", "f"]), it(&["d"])])
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(got, ["a", "b", "c", "d", "e", "f"].map(|k| Bytes::from_static(k.as_bytes())).to_vec());
        let failing: BytesIter<'static> = Box::new(vec![Err(StoreError::Closed("s".into()))].into_iter());
        let mut merged = merge_sorted(vec![it(&["a"]), failing]);
        assert!(merged.next().unwrap().is_err());
        assert_eq!(merge_sorted(Vec::new()).count(), 0);
    }
}
