//! Segment tests written once and run against both segmented stores (DESIGN §5.11), plus the
//! RocksDB-only ones (reopen, interval check).

use bytes::Bytes;
use rill_core::streams::store::BytesStore;

use super::*;
use crate::layer::{Direct, KvLayer};
use crate::suite;

trait Segmented: BytesStore {
    fn ids(&self) -> Vec<i64>;
    fn time(&self) -> Option<i64>;
}

impl Segmented for SegmentedInMemoryStore {
    fn ids(&self) -> Vec<i64> {
        self.segment_ids()
    }
    fn time(&self) -> Option<i64> {
        self.stream_time()
    }
}

impl Segmented for SegmentedRocksDbStore {
    fn ids(&self) -> Vec<i64> {
        self.segment_ids()
    }
    fn time(&self) -> Option<i64> {
        self.stream_time()
    }
}

/// A time-window key: `key ++ t`.
fn wk(key: &str, t: i64) -> Bytes {
    Bytes::from([key.as_bytes(), &t.to_be_bytes()].concat())
}

fn v(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

fn all<S: BytesStore>(s: &S) -> Vec<Bytes> {
    s.range(None, None).unwrap().map(|r| r.unwrap().0).collect()
}

/// Keys placed by their first byte (`byte * 10` ms) in 100 ms segments, kept forever: any key
/// works, and the plain bytes-store suite spreads over several segments.
fn by_first_byte() -> SegmentSpec {
    fn time(key: &[u8]) -> Option<i64> {
        Some(key.first().map_or(0, |b| i64::from(*b) * 10))
    }
    SegmentSpec { time: SegmentTime::Custom(time), retention_ms: i64::MAX, segment_interval_ms: 100 }
}

/// Routing, merging, expiry, restore and clear, on a fresh store from `open` each call.
fn segment_suite<S: Segmented>(mut open: impl FnMut(SegmentSpec) -> S) {
    // Routing: one segment per 100 ms; ranges merge segments in key order.
    let mut s = open(SegmentSpec::window(1_000, 100));
    let batch =
        vec![(wk("b", 250), v("b250")), (wk("a", 0), v("a0")), (wk("a", 250), v("a250")), (wk("c", 99), v("c99"))];
    s.write(batch, Some(4)).unwrap();
    assert_eq!(s.ids(), vec![0, 2]);
    assert_eq!(s.time(), Some(250));
    assert_eq!(s.checkpoint().unwrap(), Some(4));
    assert_eq!(all(&s), vec![wk("a", 0), wk("a", 250), wk("b", 250), wk("c", 99)]);
    let a: Vec<_> = s.range(Some(&wk("a", 0)), Some(&wk("a", 251))).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(a, vec![wk("a", 0), wk("a", 250)]);
    assert_eq!(s.get(&wk("c", 99)).unwrap(), v("c99"));
    assert_eq!(s.get(&wk("c", 100)).unwrap(), None, "a segment never written");
    assert_eq!(s.approximate_len(), 4);
    // A delete in a segment never written creates nothing.
    s.write(vec![(wk("z", 550), None)], None).unwrap();
    assert_eq!(s.ids(), vec![0, 2]);
    assert_eq!(s.time(), Some(550), "deletes advance stream time too");
    let err = s.write(vec![(Bytes::from_static(b"short"), v("x"))], None).unwrap_err();
    assert!(err.to_string().contains("has no window time"), "{err}");

    // Expiry: stream time 1_150 makes segment 1 (100..200) the oldest live one.
    s.write(vec![(wk("a", 1_150), v("late"))], None).unwrap();
    assert_eq!(s.ids(), vec![2, 11]);
    assert_eq!(s.get(&wk("a", 0)).unwrap(), None, "segment 0 dropped");
    assert_eq!(all(&s), vec![wk("a", 250), wk("a", 1_150), wk("b", 250)]);
    // Writes to a dropped segment are dropped and counted; older times in a live segment are kept.
    s.write(vec![(wk("d", 99), v("x")), (wk("d", 150), v("y"))], None).unwrap();
    assert_eq!(s.expired_records(), 1);
    assert_eq!(s.ids(), vec![1, 2, 11]);
    // ... but reads hide what is past retention (time <= 1_150 - 1_000), segment or not.
    assert_eq!(s.get(&wk("d", 150)).unwrap(), None);
    assert!(!all(&s).contains(&wk("d", 150)));
    s.write(vec![(wk("e", 1_251), v("x"))], None).unwrap();
    assert_eq!(s.ids(), vec![2, 11, 12]);
    assert_eq!(s.get(&wk("a", 250)).unwrap(), None, "250 <= 1_251 - 1_000");
    assert_eq!(s.get(&wk("b", 251)).unwrap(), None);
    drop(s);

    // Restore goes through the same routing; its checkpoint is written with it.
    let mut direct = Direct::new(open(SegmentSpec::window(100, 50)));
    let restored = vec![(wk("k", 10), v("1")), (wk("k", 60), v("2")), (wk("k", 210), v("3")), (wk("k", 20), v("4"))];
    direct.restore(restored, 77).unwrap();
    assert_eq!(direct.checkpoint().unwrap(), Some(77));
    // 210 made segment 2 the oldest live one: 10 and 60 went with their segments, 20 arrived
    // after and was dropped.
    assert_eq!(direct.inner().ids(), vec![4]);
    assert_eq!(direct.inner().expired_records(), 1);
    assert_eq!(direct.get(&wk("k", 210)).unwrap(), v("3"));

    // Clear drops every segment, the checkpoint and stream time; the store stays usable.
    direct.clear().unwrap();
    let s = direct.inner();
    assert_eq!((s.ids(), s.time(), s.checkpoint().unwrap()), (vec![], None, None));
    assert!(all(s).is_empty());
    direct.restore(vec![(wk("k", 5), v("again"))], 1).unwrap();
    assert_eq!(direct.get(&wk("k", 5)).unwrap(), v("again"));
    assert_eq!(direct.inner().ids(), vec![0]);
    drop(direct);

    // Sessions: placed by their end (`key ++ end ++ start`).
    let mut s = open(SegmentSpec::session_with_interval(1_000, 100));
    let sk = |key: &str, start: i64, end: i64| -> Bytes {
        Bytes::from([key.as_bytes(), &end.to_be_bytes(), &start.to_be_bytes()].concat())
    };
    s.write(vec![(sk("a", 0, 350), v("s")), (sk("a", 0, 50), v("t"))], None).unwrap();
    assert_eq!(s.ids(), vec![0, 3]);
    assert_eq!(s.time(), Some(350));
}

#[test]
fn in_memory_passes_the_bytes_store_suite_across_segments() {
    suite::bytes_store_suite(|| SegmentedInMemoryStore::new("mem", by_first_byte()).unwrap());
    let mut s = SegmentedInMemoryStore::new("mem", by_first_byte()).unwrap();
    s.write(vec![(Bytes::from_static(b"\x00"), v("a")), (Bytes::from_static(b"\xff"), v("b"))], None).unwrap();
    assert_eq!(s.segment_ids(), vec![0, 25], "the suite's keys do spread over segments");
}

#[test]
fn in_memory_passes_the_segment_suite() {
    segment_suite(|spec| SegmentedInMemoryStore::new("mem", spec).unwrap());
}

#[test]
fn rocksdb_passes_the_bytes_store_suite_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    suite::bytes_store_suite(|| {
        n += 1;
        SegmentedRocksDbStore::open("rocks", dir.path().join(format!("s{n}")), by_first_byte()).unwrap()
    });
}

#[test]
fn rocksdb_passes_the_segment_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    segment_suite(|spec| {
        n += 1;
        SegmentedRocksDbStore::open("rocks", dir.path().join(format!("s{n}")), spec).unwrap()
    });
}

#[test]
fn bad_specs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = SegmentedInMemoryStore::new("w", SegmentSpec::window(10, 0)).unwrap_err();
    assert!(e.to_string().contains("store w: segment interval 0 ms must be positive"), "{e}");
    assert!(SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(-5, 10)).is_err());
}

#[test]
fn rocksdb_reopen_keeps_segments_stream_time_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(1_000, 100)).unwrap();
        // One atomic batch over three segments with its checkpoint.
        s.write(vec![(wk("a", 10), v("1")), (wk("a", 310), v("2")), (wk("b", 620), v("3"))], Some(9)).unwrap();
        s.write(vec![(wk("a", 10), None)], None).unwrap();
        s.flush().unwrap();
    }
    let s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(1_000, 100)).unwrap();
    assert_eq!(s.segment_ids(), vec![0, 3, 6]);
    assert_eq!(s.stream_time(), Some(620));
    assert_eq!(s.checkpoint().unwrap(), Some(9));
    assert_eq!(all(&s), vec![wk("a", 310), wk("b", 620)]);
    assert!(dir.path().join("CURRENT").exists());
    drop(s);

    // A shorter retention at the next open expires what stream time has passed (620 - 350 is
    // in segment 2), as an open after a crash between a write and its segment drops does.
    let s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(350, 100)).unwrap();
    assert_eq!(s.segment_ids(), vec![3, 6]);
    assert_eq!(all(&s), vec![wk("a", 310), wk("b", 620)]);
    drop(s);
    let s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(350, 100)).unwrap();
    assert_eq!(s.segment_ids(), vec![3, 6]);
}

#[test]
fn rocksdb_refuses_another_segment_interval() {
    let dir = tempfile::tempdir().unwrap();
    drop(SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(1_000, 100)).unwrap());
    let e = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(1_000, 200)).unwrap_err().to_string();
    assert!(e.contains("created with segment interval 100 ms, opened with 200 ms"), "{e}");
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
}

#[test]
fn rocksdb_clear_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(10_000, 100)).unwrap();
        let batch = (0..2_000).map(|i| (wk("k", i), v("x"))).collect();
        s.write(batch, Some(3)).unwrap();
        assert_eq!(s.segment_ids().len(), 20);
        s.clear().unwrap();
    }
    let s = SegmentedRocksDbStore::open("w", dir.path(), SegmentSpec::window(10_000, 100)).unwrap();
    assert_eq!((s.segment_ids(), s.stream_time(), s.checkpoint().unwrap()), (vec![], None, None));
    assert!(all(&s).is_empty());
}
