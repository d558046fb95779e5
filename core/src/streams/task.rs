//! A task: one sub-topology instantiated for one input partition, with its stores, its record
//! collector, its stream time and its punctuation schedule. The runtime feeds it records; the
//! test driver does the same without a broker.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::error::{Result, StreamsError};
use super::global::{GlobalStoreReader, GlobalStores};
use super::node::{ErasedNode, RawNode};
use super::record::{Headers, RecordMetadata};
use super::store::{KeyValueStore, RecordTimestamp, StateStore};
use super::timestamp::{RecordView, TimestampExtractor};
use crate::consumer::TopicPattern;

/// A source over a topic pattern as a task holds it: the pattern, the node, its own extractor.
pub(crate) type PatternSource = (TopicPattern, Rc<RefCell<dyn RawNode>>, Option<Arc<dyn TimestampExtractor>>);

/// A task's id: sub-topology and partition, printed `0_3` as Kafka Streams does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology.
    pub subtopology: u32,
    /// Input partition.
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// Identifies a punctuation scheduled by a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PunctuationId(pub u64);

/// Which clock drives a punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// Stream time: advances only as records arrive.
    StreamTime,
    /// Wall-clock time: advances by itself.
    WallClockTime,
}

/// A store's index in its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreId(pub(crate) usize);

/// A store as a task holds it: typed for processors, a [`StateStore`] for the runtime.
pub trait TaskStore<K, V>: KeyValueStore<K, V> + StateStore {
    /// The runtime's view of the same store.
    fn state_mut(&mut self) -> &mut dyn StateStore;
}

impl<K, V, T: KeyValueStore<K, V> + StateStore> TaskStore<K, V> for T {
    fn state_mut(&mut self) -> &mut dyn StateStore {
        self
    }
}

/// Where sinks send records: the runtime's producer, or the test driver's output topics.
pub trait RecordCollector {
    /// Send one record; `partition: None` leaves the choice to the default partitioner.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        sink: &str,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()>;
    /// Partitions of `topic` (for custom partitioners).
    fn partition_count(&mut self, topic: &str) -> Result<i32>;
}

struct StoreSlot {
    name: String,
    /// `Box<dyn TaskStore<K, V>>` for the declared `K`, `V`.
    store: Box<dyn Any>,
    as_state: fn(&mut dyn Any) -> &mut dyn StateStore,
    key_type: &'static str,
    value_type: &'static str,
}

fn as_state<K: 'static, V: 'static>(a: &mut dyn Any) -> &mut dyn StateStore {
    a.downcast_mut::<Box<dyn TaskStore<K, V>>>().expect("a store slot holds the type it was made with").state_mut()
}

struct Schedule {
    id: PunctuationId,
    node: usize,
    interval: i64,
    kind: PunctuationType,
    next: i64,
}

/// What processors of one task share: stores, collector, clocks, the current record's origin.
pub struct TaskContext {
    task_id: TaskId,
    application_id: Arc<str>,
    stores: Vec<StoreSlot>,
    collector: Box<dyn RecordCollector>,
    metadata: Option<RecordMetadata>,
    stream_time: i64,
    wall_clock: i64,
    schedules: Vec<Schedule>,
    next_punctuation: u64,
    skipped_nulls: u64,
    pub(crate) dropped_records: u64,
    record_ts: RecordTimestamp,
    globals: GlobalStores,
}

impl TaskContext {
    pub(crate) fn new(task_id: TaskId, application_id: Arc<str>, collector: Box<dyn RecordCollector>) -> Self {
        Self {
            task_id,
            application_id,
            stores: Vec::new(),
            collector,
            metadata: None,
            stream_time: -1,
            wall_clock: 0,
            schedules: Vec::new(),
            next_punctuation: 0,
            skipped_nulls: 0,
            dropped_records: 0,
            record_ts: RecordTimestamp::default(),
            globals: GlobalStores::default(),
        }
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.task_id
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    pub(crate) fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.metadata.as_ref()
    }

    /// The cell holding the timestamp of the record being processed, shared with stores.
    pub fn record_timestamp(&self) -> RecordTimestamp {
        self.record_ts.clone()
    }

    /// The largest record timestamp processed (-1 before any).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    pub(crate) fn wall_clock(&self) -> i64 {
        self.wall_clock
    }

    pub(crate) fn add_store<K: 'static, V: 'static>(&mut self, name: &str, store: Box<dyn TaskStore<K, V>>) {
        self.stores.push(StoreSlot {
            name: name.to_string(),
            store: Box::new(store),
            as_state: as_state::<K, V>,
            key_type: std::any::type_name::<K>(),
            value_type: std::any::type_name::<V>(),
        });
    }

    /// The store named `name` typed as `(K, V)`: `None` if the task has no such store, an error
    /// if it holds other types (interactive queries, the test driver).
    pub fn key_value_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Option<Result<&mut dyn KeyValueStore<K, V>, String>> {
        let id = self.store_id(name)?;
        Some(self.store::<K, V>(id))
    }

    pub(crate) fn set_global_stores(&mut self, globals: GlobalStores) {
        self.globals = globals;
    }

    /// The global stores this task can read.
    pub fn global_stores(&self) -> &GlobalStores {
        &self.globals
    }

    /// A read-only handle on the global store `name` typed as `(K, V)`: `None` if there is no
    /// such global store, an error if it holds other types.
    pub fn global_store<K: 'static, V: 'static>(&self, name: &str) -> Option<Result<GlobalStoreReader<K, V>, String>> {
        self.globals.reader(name)
    }

    pub(crate) fn store_id(&self, name: &str) -> Option<StoreId> {
        self.stores.iter().position(|s| s.name == name).map(StoreId)
    }

    pub(crate) fn store<K: 'static, V: 'static>(
        &mut self,
        id: StoreId,
    ) -> Result<&mut dyn KeyValueStore<K, V>, String> {
        let slot = self.stores.get_mut(id.0).ok_or_else(|| format!("no store with id {}", id.0))?;
        let (name, kt, vt) = (slot.name.clone(), slot.key_type, slot.value_type);
        match slot.store.downcast_mut::<Box<dyn TaskStore<K, V>>>() {
            Some(s) => Ok(s.as_mut() as &mut dyn TaskStore<K, V> as &mut dyn KeyValueStore<K, V>),
            None => Err(format!(
                "store {name} holds ({kt}, {vt}), not ({}, {})",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            )),
        }
    }

    /// Every store of the task, as the runtime sees them (commit, abort, restore).
    pub fn state_stores(&mut self) -> impl Iterator<Item = &mut dyn StateStore> {
        self.stores.iter_mut().map(|s| (s.as_state)(s.store.as_mut()))
    }

    pub(crate) fn schedule(&mut self, node: usize, interval: Duration, kind: PunctuationType) -> PunctuationId {
        self.next_punctuation += 1;
        let id = PunctuationId(self.next_punctuation);
        let interval = (interval.as_millis() as i64).max(1);
        let now = match kind {
            PunctuationType::StreamTime => self.stream_time.max(0),
            PunctuationType::WallClockTime => self.wall_clock,
        };
        self.schedules.push(Schedule { id, node, interval, kind, next: now + interval });
        id
    }

    pub(crate) fn cancel(&mut self, id: PunctuationId) {
        self.schedules.retain(|s| s.id != id);
    }

    pub(crate) fn note_skipped_null(&mut self) {
        self.skipped_nulls += 1;
    }

    /// Records processors dropped on purpose (late records, null keys): Kafka Streams'
    /// `dropped-records` metric.
    pub fn dropped_records(&self) -> u64 {
        self.dropped_records
    }

    /// Records dropped at a source because their key or value was null and the serde cannot
    /// represent null.
    pub fn skipped_nulls(&self) -> u64 {
        self.skipped_nulls
    }

    pub(crate) fn partition_count(&mut self, topic: &str) -> Result<i32> {
        self.collector.partition_count(topic)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        sink: &str,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.collector.send(sink, topic, partition, key, value, timestamp, headers)
    }

    /// Punctuations of `kind` due at `now`: (node, id), each advanced past `now`.
    fn due(&mut self, kind: PunctuationType, now: i64) -> Vec<(usize, PunctuationId)> {
        let mut out = Vec::new();
        for s in self.schedules.iter_mut().filter(|s| s.kind == kind && s.next <= now) {
            out.push((s.node, s.id));
            // Once per due time, however far the clock jumped (as Kafka Streams).
            s.next += ((now - s.next) / s.interval + 1) * s.interval;
        }
        out
    }
}

/// A built task.
pub struct Task {
    ctx: TaskContext,
    sources: HashMap<String, Rc<RefCell<dyn RawNode>>>,
    patterns: Vec<PatternSource>,
    /// Sources' own timestamp extractors, by topic.
    extractors: HashMap<String, Arc<dyn TimestampExtractor>>,
    /// Processor nodes by node index (others `None`).
    nodes: Vec<Option<Rc<RefCell<dyn ErasedNode>>>>,
    initialized: bool,
}

impl Task {
    pub(crate) fn new(
        ctx: TaskContext,
        sources: HashMap<String, Rc<RefCell<dyn RawNode>>>,
        nodes: Vec<Option<Rc<RefCell<dyn ErasedNode>>>>,
    ) -> Self {
        Self { ctx, sources, patterns: Vec::new(), extractors: HashMap::new(), nodes, initialized: false }
    }

    /// Sources over topic patterns: a topic no named source reads goes to the first whose
    /// pattern matches it.
    pub(crate) fn with_patterns(mut self, patterns: Vec<PatternSource>) -> Self {
        self.patterns = patterns;
        self
    }

    /// Sources' own timestamp extractors, by topic.
    pub(crate) fn with_extractors(mut self, extractors: HashMap<String, Arc<dyn TimestampExtractor>>) -> Self {
        self.extractors = extractors;
        self
    }

    /// The source reading `topic` (a pattern source's match is remembered).
    fn source_of(&mut self, topic: &str) -> Option<Rc<RefCell<dyn RawNode>>> {
        if let Some(s) = self.sources.get(topic) {
            return Some(s.clone());
        }
        let (_, s, e) = self.patterns.iter().find(|(p, _, _)| p.matches(topic))?;
        let s = s.clone();
        if let Some(e) = e.clone() {
            self.extractors.insert(topic.to_string(), e);
        }
        self.sources.insert(topic.to_string(), s.clone());
        Some(s)
    }

    /// The timestamp of `record` by its source's own extractor; `None` when the source has none
    /// (the caller applies the application's default).
    pub fn extract_timestamp(&mut self, record: &RecordView<'_>, partition_time: i64) -> Option<Result<i64>> {
        if !self.sources.contains_key(record.topic) {
            self.source_of(record.topic);
        }
        self.extractors.get(record.topic).map(|e| e.extract(record, partition_time))
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.ctx.task_id
    }

    /// The input topics this task reads.
    pub fn input_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Shared state: stores for commit and restore, clocks.
    pub fn context(&mut self) -> &mut TaskContext {
        &mut self.ctx
    }

    /// Initialise every processor (once, before the first record or punctuation).
    pub fn init(&mut self) -> Result<()> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        for n in self.nodes.iter().flatten() {
            n.borrow_mut().init(&mut self.ctx)?;
        }
        Ok(())
    }

    /// Process one input record, then any stream-time punctuation it made due.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.init()?;
        let source = self.source_of(topic).ok_or_else(|| {
            StreamsError::Topology(format!("task {} has no source for topic {topic}", self.ctx.task_id))
        })?;
        self.ctx.stream_time = self.ctx.stream_time.max(timestamp);
        self.ctx.record_ts.set(timestamp);
        self.ctx.metadata = Some(RecordMetadata { topic: Arc::from(topic), partition, offset });
        let r = source.borrow_mut().process_raw(key, value, timestamp, headers, &mut self.ctx);
        self.ctx.metadata = None;
        r?;
        let now = self.ctx.stream_time;
        self.fire(PunctuationType::StreamTime, now)
    }

    /// Move the wall clock to `now` and run the wall-clock punctuations that are due.
    pub fn advance_wall_clock(&mut self, now: i64) -> Result<()> {
        self.init()?;
        self.ctx.wall_clock = self.ctx.wall_clock.max(now);
        let now = self.ctx.wall_clock;
        self.ctx.record_ts.set(now);
        self.fire(PunctuationType::WallClockTime, now)
    }

    fn fire(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        for (node, id) in self.ctx.due(kind, now) {
            self.ctx.record_ts.set(now);
            if let Some(n) = self.nodes.get(node).and_then(|n| n.clone()) {
                n.borrow_mut().punctuate(id, now, &mut self.ctx)?;
            }
        }
        Ok(())
    }

    /// Close every processor.
    pub fn close(&mut self) {
        for n in self.nodes.iter().flatten() {
            n.borrow_mut().close();
        }
    }
}
