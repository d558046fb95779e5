//! [`StoreBuilder`]: a store declaration the runtime turns into a task's layered store,
//! `Metered(Caching(ChangeLogging(Staging(RocksDB | in-memory))))` with the optional layers left
//! out as declared.
//!
//! Window and session stores ([`StoreBuilder::window`], [`StoreBuilder::session`]) are the same
//! stack over a time-segmented bytes store ([`crate::SegmentedRocksDbStore`] or its in-memory
//! twin), seen as a `KeyValueStore<Windowed<K>, V>` through `TimeWindowedSerde` or
//! `SessionWindowedSerde` and read with `rill_core::streams::window::{fetch_key_range,
//! find_sessions}`. Their changelogs need `cleanup.policy=compact,delete` and
//! `retention.ms = retention + 1 day` ([`StoreBuilder::changelog_configs`]).
//!
//! ```
//! use rill_core::streams::serde::{I64Serde, StringSerde};
//! use rill_core::streams::store::{KeyValueStore, RecordTimestamp};
//! use rill_state::{StateConfig, StoreBuilder, StoreContext};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = StateConfig { state_dir: dir.path().into(), ..StateConfig::default() };
//! let ctx = StoreContext::new("wordcount", "0_3", 3, config, RecordTimestamp::default());
//! let decl = StoreBuilder::key_value("counts").persistent().with_caching(1 << 20);
//! let mut counts = decl.build_typed(&ctx, StringSerde, I64Serde).unwrap();
//! counts.put(&"rill".to_string(), &1).unwrap();
//! assert_eq!(counts.get(&"rill".to_string()).unwrap(), Some(1));
//! assert!(dir.path().join("wordcount/0_3/counts").is_dir());
//! ```

use rill_core::streams::global::GlobalStoreInit;
use rill_core::streams::serde::Serde;
use rill_core::streams::store::{BytesStore, RecordTimestamp, StoreResult};
use rill_core::streams::topology::StoreInit;

use crate::caching::Caching;
use crate::config::StateConfig;
use crate::layer::{Direct, KvLayer};
use crate::logging::{changelog_topic, ChangeLogging};
use crate::memory::InMemoryStore;
use crate::metered::Metered;
use crate::rocks::RocksDbStore;
use crate::segmented::{
    default_segment_interval, window_changelog_configs, SegmentSpec, SegmentedInMemoryStore, SegmentedRocksDbStore,
};
use crate::staging::Staging;
use crate::typed::TypedStore;

/// Where a task's store is built: its application, task and partition, the state settings, and
/// the task's record-timestamp cell.
#[derive(Debug, Clone)]
pub struct StoreContext {
    /// `application.id` (changelog topics are `<application.id>-<store>-changelog`).
    pub application_id: String,
    /// Task id as in directory names, e.g. `0_3`.
    pub task: String,
    /// The task's partition (the changelog partition).
    pub partition: i32,
    /// State settings (`state.dir`, RocksDB options).
    pub config: StateConfig,
    /// The current record's timestamp, set by the runtime.
    pub timestamp: RecordTimestamp,
}

impl StoreContext {
    /// A context for task `task` (partition `partition`) of `application_id`.
    pub fn new(
        application_id: impl Into<String>,
        task: impl Into<String>,
        partition: i32,
        config: StateConfig,
        timestamp: RecordTimestamp,
    ) -> Self {
        Self { application_id: application_id.into(), task: task.into(), partition, config, timestamp }
    }
}

impl StoreContext {
    /// The context the runtime describes in `init` (application, task, partition, `state.dir`,
    /// record-timestamp cell); other settings (RocksDB options) from `config`.
    pub fn for_task(init: &StoreInit, config: &StateConfig) -> Self {
        Self {
            application_id: init.application_id.clone(),
            task: init.task_id.to_string(),
            partition: init.task_id.partition,
            config: StateConfig { state_dir: init.state_dir.clone(), ..config.clone() },
            timestamp: init.timestamp.clone(),
        }
    }
}

/// What a store holds, and so which bytes store is at the bottom of its stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Plain keys ([`crate::RocksDbStore`], [`crate::InMemoryStore`]).
    KeyValue,
    /// Time-windowed keys (`key ++ start`), segmented by window start.
    Window {
        /// How long windows are kept behind stream time, in ms.
        retention_ms: i64,
        /// Segment width, in ms.
        segment_interval_ms: i64,
    },
    /// Session keys (`key ++ end ++ start`), segmented by session end.
    Session {
        /// How long sessions are kept behind stream time, in ms.
        retention_ms: i64,
        /// Segment width, in ms (Kafka's `max(retention / 2, 60 s)`).
        segment_interval_ms: i64,
    },
}

impl StoreKind {
    /// The segmented store's shape, for window and session stores.
    pub fn segment_spec(&self) -> Option<SegmentSpec> {
        match *self {
            StoreKind::KeyValue => None,
            StoreKind::Window { retention_ms, segment_interval_ms } => {
                Some(SegmentSpec::window(retention_ms, segment_interval_ms))
            }
            StoreKind::Session { retention_ms, segment_interval_ms } => {
                Some(SegmentSpec::session_with_interval(retention_ms, segment_interval_ms))
            }
        }
    }
}

/// A store declaration (see the module docs). By default: in-memory, change-logged, staged
/// (exactly-once), metered, no cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreBuilder {
    name: String,
    kind: StoreKind,
    persistent: bool,
    cache_max_bytes: Option<usize>,
    logging: bool,
    staged: bool,
    metered: bool,
}

impl StoreBuilder {
    /// A key-value store called `name`.
    pub fn key_value(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: StoreKind::KeyValue,
            persistent: false,
            cache_max_bytes: None,
            logging: true,
            staged: true,
            metered: true,
        }
    }
    /// A window store called `name`: time-windowed keys (`TimeWindowedSerde`) kept `retention_ms`
    /// behind stream time in segments `segment_interval_ms` wide
    /// ([`default_segment_interval`] gives Kafka's choice). Kafka Streams sizes the retention as
    /// `max(window size + grace, retention)`; stream-stream joins keep both sides in such stores.
    pub fn window(name: impl Into<String>, retention_ms: i64, segment_interval_ms: i64) -> Self {
        Self { kind: StoreKind::Window { retention_ms, segment_interval_ms }, ..Self::key_value(name) }
    }
    /// A session store called `name`: session keys (`SessionWindowedSerde`) kept `retention_ms`
    /// behind stream time (by session end), in Kafka's `max(retention / 2, 60 s)` segments.
    pub fn session(name: impl Into<String>, retention_ms: i64) -> Self {
        let segment_interval_ms = default_segment_interval(retention_ms);
        Self { kind: StoreKind::Session { retention_ms, segment_interval_ms }, ..Self::key_value(name) }
    }
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// What the store holds.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }
    /// Keep the store in RocksDB under `<state.dir>/<application.id>/<task>/<name>`.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }
    /// Keep the store in memory (rebuilt from the changelog on every start).
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }
    /// Cache writes, up to `max_bytes` (`statestore.cache.max.bytes` share).
    pub fn with_caching(mut self, max_bytes: usize) -> Self {
        self.cache_max_bytes = Some(max_bytes);
        self
    }
    /// No write cache.
    pub fn without_caching(mut self) -> Self {
        self.cache_max_bytes = None;
        self
    }
    /// Log changes to `<application.id>-<name>-changelog` (on by default).
    pub fn with_logging(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }
    /// Stage writes until commit (exactly-once, the default), or write through at once
    /// (at-least-once: no memory held between commits, but abort cannot undo).
    pub fn staged(mut self, staged: bool) -> Self {
        self.staged = staged;
        self
    }
    /// Count operations and their latency (on by default).
    pub fn with_metering(mut self, enabled: bool) -> Self {
        self.metered = enabled;
        self
    }
    /// Whether changes are logged.
    pub fn logging_enabled(&self) -> bool {
        self.logging
    }
    /// The changelog topic in `application_id`, if logging.
    pub fn changelog_topic(&self, application_id: &str) -> Option<String> {
        self.logging.then(|| changelog_topic(application_id, &self.name))
    }
    /// Topic configs the changelog needs (for the application's internal topic list):
    /// `cleanup.policy=compact` for key-value stores; for window and session stores
    /// `cleanup.policy=compact,delete` and `retention.ms = retention + 1 day` (Kafka Streams'
    /// `windowstore.changelog.additional.retention.ms`), so expired windows leave the changelog
    /// too, after the store dropped them. Record create times in both.
    pub fn changelog_configs(&self) -> Vec<(String, String)> {
        match self.kind {
            StoreKind::KeyValue => vec![
                ("cleanup.policy".into(), "compact".into()),
                ("message.timestamp.type".into(), "CreateTime".into()),
            ],
            StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms, .. } => {
                window_changelog_configs(retention_ms)
            }
        }
    }

    /// Open the bytes store and stack the declared layers over it.
    pub fn build(&self, ctx: &StoreContext) -> StoreResult<Box<dyn KvLayer>> {
        let dir = || ctx.config.store_dir(&ctx.application_id, &ctx.task, &self.name);
        let name = self.name.clone();
        let bytes: Box<dyn BytesStore> = match (self.kind.segment_spec(), self.persistent) {
            (None, true) => Box::new(RocksDbStore::open_with(name, dir(), &ctx.config.rocksdb)?),
            (None, false) => Box::new(InMemoryStore::new(name)),
            (Some(spec), true) => Box::new(SegmentedRocksDbStore::open_with(name, dir(), spec, &ctx.config.rocksdb)?),
            (Some(spec), false) => Box::new(SegmentedInMemoryStore::new(name, spec)?),
        };
        let mut layer: Box<dyn KvLayer> =
            if self.staged { Box::new(Staging::new(bytes)) } else { Box::new(Direct::new(bytes)) };
        if self.logging {
            let topic = changelog_topic(&ctx.application_id, &self.name);
            layer = Box::new(ChangeLogging::new(layer, topic, ctx.partition));
        }
        if let Some(max_bytes) = self.cache_max_bytes {
            layer = Box::new(Caching::new(layer, max_bytes));
        }
        if self.metered {
            layer = Box::new(Metered::new(layer));
        }
        Ok(layer)
    }

    /// The typed store of the task `init` describes: staged under exactly-once, write-through
    /// under at-least-once (`init.exactly_once`), in `init.state_dir`, stamping changes with
    /// `init.timestamp`; RocksDB options from `config`.
    pub fn build_for_task<K: 'static, V: 'static>(
        &self,
        init: &StoreInit,
        config: &StateConfig,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> StoreResult<TypedStore<K, V>> {
        let decl = self.clone().staged(init.exactly_once);
        decl.build_typed(&StoreContext::for_task(init, config), keys, values)
    }

    /// The global store `init` describes (a GlobalKTable's): in RocksDB under
    /// `<state.dir>/<application.id>/global/<name>` if persistent, else in memory. Written
    /// through, with none of the other layers: it has no changelog (its topic is its changelog),
    /// nothing to stage (no transaction), and tasks on other threads read it, so it is `Sync`.
    /// RocksDB options from `config`.
    pub fn build_global<K: 'static, V: 'static>(
        &self,
        init: &GlobalStoreInit,
        config: &StateConfig,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> StoreResult<TypedStore<K, V, Box<dyn KvLayer + Sync>>> {
        if self.kind != StoreKind::KeyValue {
            let cause = format!("global stores are key-value stores, not {:?}", self.kind);
            return Err(rill_core::streams::store::StoreError::IllegalState { store: self.name.clone(), cause });
        }
        let layer: Box<dyn KvLayer + Sync> = if self.persistent {
            let dir = crate::store_dir(&init.state_dir, &init.application_id, "global", &self.name);
            Box::new(Direct::new(RocksDbStore::open_with(self.name.clone(), dir, &config.rocksdb)?))
        } else {
            Box::new(Direct::new(InMemoryStore::new(self.name.clone())))
        };
        Ok(TypedStore::new(layer, keys, values, init.timestamp.clone()))
    }

    /// [`build`](Self::build), seen through `keys` and `values`.
    pub fn build_typed<K: 'static, V: 'static>(
        &self,
        ctx: &StoreContext,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> StoreResult<TypedStore<K, V>> {
        Ok(TypedStore::new(self.build(ctx)?, keys, values, ctx.timestamp.clone()))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rill_core::streams::serde::{I64Serde, StringSerde};
    use rill_core::streams::store::{KeyValueStore, StateStore};
    use rill_core::streams::task::TaskId;

    use super::*;
    use crate::suite::{self, RecordingSink};

    fn ctx(dir: &std::path::Path) -> StoreContext {
        let config = StateConfig { state_dir: dir.into(), ..StateConfig::default() };
        StoreContext::new("app", "1_2", 2, config, RecordTimestamp::new(77))
    }

    #[test]
    fn every_combination_passes_the_layer_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        for persistent in [false, true] {
            for cache in [None, Some(0), Some(1 << 20)] {
                for logging in [false, true] {
                    for staged in [false, true] {
                        let mut decl = StoreBuilder::key_value("s").with_logging(logging).staged(staged);
                        decl = if persistent { decl.persistent() } else { decl.in_memory() };
                        if let Some(max) = cache {
                            decl = decl.with_caching(max);
                        }
                        suite::layer_suite(
                            || {
                                n += 1;
                                let c = StoreContext { task: format!("t{n}"), ..ctx(dir.path()) };
                                decl.build(&c).unwrap()
                            },
                            if staged {
                                Some(true)
                            } else if cache.is_none() {
                                Some(false)
                            } else {
                                None
                            },
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_combination_matches_the_model_under_random_operations() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        for persistent in [false, true] {
            for cache in [None, Some(0), Some(3 * (crate::ENTRY_OVERHEAD_BYTES + 8)), Some(1 << 20)] {
                for logging in [false, true] {
                    for staged in [false, true] {
                        for seed in 0..3 {
                            let mut decl = StoreBuilder::key_value("s").with_logging(logging).staged(staged);
                            decl = if persistent { decl.persistent() } else { decl.in_memory() };
                            if let Some(max) = cache {
                                decl = decl.with_caching(max);
                            }
                            n += 1;
                            let store = decl.build(&StoreContext { task: format!("m{n}"), ..ctx(dir.path()) }).unwrap();
                            // Write-through cannot roll back, so aborts are exercised over staging only.
                            suite::model_check(store, seed, 600, logging, staged);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn persistent_store_reopens_with_its_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let decl = StoreBuilder::key_value("counts").persistent().with_caching(1 << 16);
        assert_eq!(decl.changelog_topic("app").as_deref(), Some("app-counts-changelog"));
        {
            let mut s = decl.build_typed(&ctx(dir.path()), StringSerde, I64Serde).unwrap();
            s.put(&"a".into(), &1).unwrap();
            let mut sink = RecordingSink::default();
            s.prepare_commit(&mut sink).unwrap();
            assert_eq!(sink.sent[0].0, "app-counts-changelog");
            assert_eq!((sink.sent[0].1, sink.sent[0].4), (2, 77));
            s.commit(Some(1)).unwrap();
            s.put(&"a".into(), &2).unwrap(); // never committed
            assert!(s.metrics().unwrap().put.count == 2);
        }
        let s = decl.build_typed(&ctx(dir.path()), StringSerde, I64Serde).unwrap();
        assert_eq!(StateStore::checkpoint(&s).unwrap(), Some(1));
        assert_eq!(s.get(&"a".into()).unwrap(), Some(1));
        assert!(dir.path().join("app/1_2/counts").is_dir());
    }

    #[test]
    fn a_task_store_follows_the_runtime_settings() {
        let dir = tempfile::tempdir().unwrap();
        let init = |exactly_once| StoreInit {
            application_id: "wc".into(),
            task_id: TaskId { subtopology: 1, partition: 4 },
            name: "counts".into(),
            changelog_topic: Some("wc-counts-changelog".into()),
            state_dir: dir.path().into(),
            exactly_once,
            timestamp: RecordTimestamp::new(5),
        };
        let decl = StoreBuilder::key_value("counts").persistent();
        for exactly_once in [true, false] {
            let mut s =
                decl.build_for_task(&init(exactly_once), &StateConfig::default(), StringSerde, I64Serde).unwrap();
            s.put(&"k".into(), &1).unwrap();
            let mut sink = RecordingSink::default();
            s.send_changelog(&mut sink).unwrap();
            assert_eq!((sink.sent[0].0.as_str(), sink.sent[0].1, sink.sent[0].4), ("wc-counts-changelog", 4, 5));
            s.abort();
            // Staged writes are dropped by an abort; at-least-once writes went straight in.
            assert_eq!(s.get(&"k".into()).unwrap(), (!exactly_once).then_some(1));
        }
        assert!(dir.path().join("wc/1_4/counts").is_dir());
    }

    #[test]
    fn a_global_store_writes_through_and_reopens_with_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let init = GlobalStoreInit {
            application_id: "app".into(),
            name: "rates".into(),
            state_dir: dir.path().into(),
            timestamp: RecordTimestamp::default(),
        };
        let decl = StoreBuilder::key_value("rates").persistent().with_caching(1 << 20);
        {
            let mut s = decl.build_global(&init, &StateConfig::default(), StringSerde, I64Serde).unwrap();
            s.put(&"EUR".into(), &108).unwrap();
            s.put(&"GBP".into(), &126).unwrap();
            s.delete(&"GBP".into()).unwrap();
            let mut sink = RecordingSink::default();
            s.prepare_commit(&mut sink).unwrap();
            assert!(sink.sent.is_empty(), "no changelog");
            StateStore::flush(&mut s).unwrap();
        }
        assert!(dir.path().join("app/global/rates").is_dir());
        let s = decl.build_global(&init, &StateConfig::default(), StringSerde, I64Serde).unwrap();
        assert_eq!(s.all().unwrap(), vec![("EUR".to_string(), 108)]);
        let mem = StoreBuilder::key_value("rates").in_memory();
        let m = mem.build_global(&init, &StateConfig::default(), StringSerde, I64Serde).unwrap();
        assert!(m.all().unwrap().is_empty());
        fn shared_across_threads<T: Sync + Send>(_: &T) {}
        shared_across_threads(&m);
    }

    #[test]
    fn unlogged_unmetered_store_sends_nothing_and_has_no_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let decl = StoreBuilder::key_value("s").with_logging(false).with_metering(false);
        assert_eq!(decl.changelog_topic("app"), None);
        let mut s = decl.build(&ctx(dir.path())).unwrap();
        s.put(Bytes::from_static(b"k"), Some(Bytes::from_static(b"v")), 0).unwrap();
        let mut sink = RecordingSink::default();
        s.send_changelog(&mut sink).unwrap();
        assert!(sink.sent.is_empty());
        assert!(s.metrics().is_none());
    }
}

#[cfg(test)]
#[path = "builder_window_tests.rs"]
mod window_tests;
