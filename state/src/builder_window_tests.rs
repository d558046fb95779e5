//! Window and session stores built by [`StoreBuilder`]: the layer suites over every stack, and
//! windows through the typed stack (segments, expiry, changelog, restore, reopen).

use bytes::Bytes;
use rill_core::streams::serde::{I64Serde, StringSerde};
use rill_core::streams::store::{
    BytesIter, ChangelogSink, KeyValueStore, RecordTimestamp, StateStore, StoreResult, WriteOp,
};
use rill_core::streams::task::TaskId;
use rill_core::streams::topology::StoreInit;
use rill_core::streams::window::{
    fetch_key_range, find_sessions, SessionWindowedSerde, TimeWindowedSerde, Window, Windowed,
};

use super::*;
use crate::metered::StoreMetrics;
use crate::suite::{self, RecordingSink};

/// Zero times as a key suffix (window start 0; session end 0 and start 0): the layer suites'
/// plain keys become windowed keys in one segment. A constant suffix of zeros keeps the byte
/// order of keys and range bounds.
const ZEROS: [u8; 16] = [0; 16];

/// The layer suites' view of a window (suffix 8) or session (16) store: keys go down with
/// `.1` zero bytes appended and come back without.
struct AtZero(Box<dyn KvLayer>, usize);

impl AtZero {
    fn suffixed(&self, k: &[u8]) -> Bytes {
        Bytes::from([k, &ZEROS[..self.1]].concat())
    }
}

fn strip(k: &Bytes, n: usize) -> Bytes {
    k.slice(..k.len() - n)
}

struct StripSink<'a>(&'a mut dyn ChangelogSink, usize);

impl ChangelogSink for StripSink<'_> {
    fn send(&mut self, topic: &str, partition: i32, key: &Bytes, value: Option<&Bytes>, ts: i64) -> StoreResult<()> {
        self.0.send(topic, partition, &strip(key, self.1), value, ts)
    }
}

impl KvLayer for AtZero {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        self.0.get(&self.suffixed(key))
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        let (from, to) = (from.map(|k| self.suffixed(k)), to.map(|k| self.suffixed(k)));
        let inner = self.0.range(from.as_deref(), to.as_deref())?;
        let n = self.1;
        Ok(Box::new(inner.map(move |r| r.map(|(k, v)| (strip(&k, n), v)))))
    }
    fn put(&mut self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> StoreResult<()> {
        let key = self.suffixed(&key);
        self.0.put(key, value, timestamp)
    }
    fn flush_cache(&mut self) -> StoreResult<()> {
        self.0.flush_cache()
    }
    fn send_changelog(&mut self, sink: &mut dyn ChangelogSink) -> StoreResult<()> {
        self.0.send_changelog(&mut StripSink(sink, self.1))
    }
    fn commit(&mut self, changelog_offset: Option<i64>) -> StoreResult<()> {
        self.0.commit(changelog_offset)
    }
    fn abort(&mut self) {
        self.0.abort()
    }
    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.0.checkpoint()
    }
    fn restore(&mut self, batch: Vec<WriteOp>, next_offset: i64) -> StoreResult<()> {
        let batch = batch.into_iter().map(|(k, v)| (self.suffixed(&k), v)).collect();
        self.0.restore(batch, next_offset)
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.0.clear()
    }
    fn approximate_len(&self) -> u64 {
        self.0.approximate_len()
    }
    fn flush(&mut self) -> StoreResult<()> {
        self.0.flush()
    }
    fn metrics(&self) -> Option<StoreMetrics> {
        self.0.metrics()
    }
    fn expired_records(&self) -> u64 {
        self.0.expired_records()
    }
}

fn ctx(dir: &std::path::Path, task: &str) -> StoreContext {
    let config = StateConfig { state_dir: dir.into(), ..StateConfig::default() };
    StoreContext::new("app", task, 2, config, RecordTimestamp::new(77))
}

/// Every combination of engine, cache, logging and staging, as for key-value stores, with
/// whether abort rolls back (the layer suite's third argument).
fn combinations(base: &StoreBuilder) -> Vec<(StoreBuilder, Option<bool>)> {
    let mut out = Vec::new();
    for persistent in [false, true] {
        for cache in [None, Some(0), Some(3 * (crate::ENTRY_OVERHEAD_BYTES + 16)), Some(1 << 20)] {
            for logging in [false, true] {
                for staged in [false, true] {
                    let mut decl = base.clone().with_logging(logging).staged(staged);
                    decl = if persistent { decl.persistent() } else { decl.in_memory() };
                    if let Some(max) = cache {
                        decl = decl.with_caching(max);
                    }
                    let rolls_back = if staged {
                        Some(true)
                    } else if cache.is_none() {
                        Some(false)
                    } else {
                        None
                    };
                    out.push((decl, rolls_back));
                }
            }
        }
    }
    out
}

#[test]
fn window_and_session_stacks_pass_the_layer_suites() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (base, suffix) in [(StoreBuilder::window("w", 1_000, 100), 8), (StoreBuilder::session("w", 1_000), 16)] {
        for (decl, rolls_back) in combinations(&base) {
            suite::layer_suite(
                || {
                    n += 1;
                    AtZero(decl.build(&ctx(dir.path(), &format!("l{n}"))).unwrap(), suffix)
                },
                rolls_back,
            );
            for seed in 0..2 {
                n += 1;
                let store = AtZero(decl.build(&ctx(dir.path(), &format!("m{n}"))).unwrap(), suffix);
                // Write-through cannot roll back, so aborts are exercised over staging only.
                suite::model_check(store, seed, 300, decl.logging, decl.staged);
            }
        }
    }
}

fn w(key: &str, start: i64) -> Windowed<String> {
    Windowed::new(key.to_string(), Window::new(start, start + 100))
}

#[test]
fn windows_through_the_typed_stack_span_segments_expire_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let decl = StoreBuilder::window("counts", 1_000, 200).persistent().with_caching(1 << 16);
    assert_eq!(decl.kind(), StoreKind::Window { retention_ms: 1_000, segment_interval_ms: 200 });
    let serde = || TimeWindowedSerde::new(StringSerde, 100);
    {
        let mut s = decl.build_typed(&ctx(dir.path(), "0_2"), serde(), I64Serde).unwrap();
        for (key, start, count) in [("a", 0, 1), ("a", 100, 2), ("a", 500, 3), ("ab", 100, 9), ("b", 100, 4)] {
            s.put(&w(key, start), &count).unwrap();
        }
        let a = fetch_key_range(&s, &"a".to_string(), 0, 400).unwrap();
        assert_eq!(a, vec![(w("a", 0), 1), (w("a", 100), 2)], "read-your-writes through the cache");
        let mut sink = RecordingSink::default();
        s.prepare_commit(&mut sink).unwrap();
        assert_eq!(sink.sent.len(), 5);
        assert_eq!(sink.sent[0].0, "app-counts-changelog");
        s.commit(Some(5)).unwrap();
        let all = fetch_key_range(&s, &"a".to_string(), 0, i64::MAX).unwrap();
        assert_eq!(all.iter().map(|(w, _)| w.window.start).collect::<Vec<_>>(), vec![0, 100, 500]);
        // Stream time 1_300 expires segment 0 (0..200): a write there is dropped and counted.
        s.put(&w("c", 1_300), &1).unwrap();
        s.prepare_commit(&mut sink).unwrap();
        s.commit(Some(6)).unwrap();
        s.put(&w("a", 150), &7).unwrap();
        s.prepare_commit(&mut sink).unwrap();
        s.commit(Some(7)).unwrap();
        assert_eq!(s.expired_records(), 1);
        assert_eq!(s.metrics().unwrap().expired_records, 1);
        assert_eq!(fetch_key_range(&s, &"a".to_string(), 0, i64::MAX).unwrap(), vec![(w("a", 500), 3)]);
        StateStore::flush(&mut s).unwrap();
    }
    let s = decl.build_typed(&ctx(dir.path(), "0_2"), serde(), I64Serde).unwrap();
    assert_eq!(StateStore::checkpoint(&s).unwrap(), Some(7));
    let keys: Vec<_> = s.all().unwrap().into_iter().map(|(w, _)| (w.key, w.window.start)).collect();
    assert_eq!(keys, vec![("a".to_string(), 500), ("c".to_string(), 1_300)]);
}

#[test]
fn sessions_are_found_and_restored_through_the_task_stack() {
    let dir = tempfile::tempdir().unwrap();
    let init = |exactly_once| StoreInit {
        application_id: "sa".into(),
        task_id: TaskId { subtopology: 0, partition: 1 },
        name: "sessions".into(),
        changelog_topic: Some("sa-sessions-changelog".into()),
        state_dir: dir.path().into(),
        exactly_once,
        timestamp: RecordTimestamp::new(5),
    };
    let decl = StoreBuilder::session("sessions", 300_000).persistent();
    assert_eq!(decl.kind(), StoreKind::Session { retention_ms: 300_000, segment_interval_ms: 150_000 });
    let session = |start, end| Windowed::new("u1".to_string(), Window::new(start, end));
    let mut changes = Vec::new();
    for exactly_once in [true, false] {
        let mut s = decl
            .build_for_task(&init(exactly_once), &StateConfig::default(), SessionWindowedSerde(StringSerde), I64Serde)
            .unwrap();
        s.clear().unwrap();
        s.put(&session(0, 1_000), &2).unwrap();
        s.put(&session(200_000, 200_000), &1).unwrap();
        // A record at 1_500 with a 1 s gap merges with the first session only.
        let found = find_sessions(&s, &"u1".to_string(), 500, 2_500).unwrap();
        assert_eq!(found, vec![(session(0, 1_000), 2)]);
        let mut sink = RecordingSink::default();
        s.prepare_commit(&mut sink).unwrap();
        s.commit(Some(2)).unwrap();
        assert_eq!(
            sink.sent.iter().map(|c| (c.0.as_str(), c.1, c.4)).collect::<Vec<_>>(),
            vec![("sa-sessions-changelog", 1, 5); 2]
        );
        changes = sink.sent.into_iter().map(|c| (c.2, c.3)).collect();
    }
    // Restoring the changelog into a wiped in-memory twin routes the sessions to their segments.
    let mem = StoreBuilder::session("sessions", 300_000).in_memory();
    let mut m = mem.build_typed(&ctx(dir.path(), "r"), SessionWindowedSerde(StringSerde), I64Serde).unwrap();
    StateStore::restore(&mut m, changes, 2).unwrap();
    assert_eq!(StateStore::checkpoint(&m).unwrap(), Some(2));
    let found = find_sessions(&m, &"u1".to_string(), 0, i64::MAX).unwrap();
    assert_eq!(found, vec![(session(0, 1_000), 2), (session(200_000, 200_000), 1)]);
}

#[test]
fn changelog_configs_follow_the_kind_and_global_stores_stay_key_value() {
    let kv = StoreBuilder::key_value("kv").changelog_configs();
    assert!(kv.contains(&("cleanup.policy".into(), "compact".into())));
    let win = StoreBuilder::window("w", 3_600_000, 60_000).changelog_configs();
    assert!(win.contains(&("cleanup.policy".into(), "compact,delete".into())));
    assert!(win.contains(&("retention.ms".into(), (3_600_000 + 86_400_000).to_string())));
    let ses = StoreBuilder::session("s", 1_000).changelog_configs();
    assert!(ses.contains(&("retention.ms".into(), "86401000".into())));
    assert_eq!(StoreBuilder::key_value("kv").kind().segment_spec().map(|s| s.retention_ms), None);

    let dir = tempfile::tempdir().unwrap();
    let init = rill_core::streams::global::GlobalStoreInit {
        application_id: "app".into(),
        name: "w".into(),
        state_dir: dir.path().into(),
        timestamp: RecordTimestamp::default(),
    };
    let err = StoreBuilder::window("w", 1_000, 100)
        .build_global(&init, &StateConfig::default(), TimeWindowedSerde::new(StringSerde, 10), I64Serde)
        .err()
        .unwrap();
    assert!(err.to_string().contains("global stores are key-value stores"), "{err}");
    let bad = StoreBuilder::window("w", 1_000, 0).build(&ctx(dir.path(), "x")).err().unwrap();
    assert!(bad.to_string().contains("segment interval 0 ms must be positive"), "{bad}");
}
