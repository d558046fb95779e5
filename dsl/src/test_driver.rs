//! [`TopologyTestDriver`]: runs a [`BuiltTopology`] synchronously, without a broker, as Kafka
//! Streams' driver does.
//!
//! Every sub-topology becomes one task (partition 0) with in-memory stores; global stores (of
//! GlobalKTables) are kept up to date by a task of their own, which records piped into a global
//! topic go to, and every task can read them. A record piped into
//! an input topic is processed at once; what the task sends to a repartition topic is fed
//! straight to the task that reads it, until nothing is left; records sent to any other topic
//! wait in that output topic for the test to read. After each input record (and each wall-clock
//! advance) the driver commits every store, as Kafka's driver does, and keeps the changelog
//! records they send in their changelog topics (readable as output topics too).
//!
//! Timestamps: a record piped without one gets the driver's wall-clock time, which starts at 0
//! and moves only with [`TopologyTestDriver::advance_wall_clock`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::global::GlobalStores;
use rill_core::streams::record::Headers;
use rill_core::streams::serde::Serde;
use rill_core::streams::store::{ChangelogSink, KeyValueStore, StoreResult};
use rill_core::streams::task::{RecordCollector, Task, TaskId};
use rill_core::streams::timestamp::{FailOnInvalidTimestamp, RecordView, TimestampExtractor};
use rill_core::streams::topology::TaskSettings;
use rill_state::TypedStore;

use crate::builder::{BuiltTopology, DriverHooks};

/// A record as a test writes or reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

#[derive(Debug, Clone)]
struct Captured {
    key: Option<Bytes>,
    value: Option<Bytes>,
    timestamp: i64,
    headers: Headers,
}

type Outbox = Rc<RefCell<VecDeque<(String, Captured)>>>;

/// The sinks' collector: everything into the outbox, drained by the driver.
struct DriverCollector(Outbox);

impl RecordCollector for DriverCollector {
    fn send(
        &mut self,
        _sink: &str,
        topic: &str,
        _partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.0.borrow_mut().push_back((topic.to_string(), Captured { key, value, timestamp, headers }));
        Ok(())
    }
    fn partition_count(&mut self, _topic: &str) -> Result<i32> {
        Ok(1)
    }
}

/// Changelog records of committing stores, kept as output topics.
struct ChangelogCapture<'a>(&'a mut HashMap<String, VecDeque<Captured>>);

impl ChangelogSink for ChangelogCapture<'_> {
    fn send(
        &mut self,
        topic: &str,
        _partition: i32,
        key: &Bytes,
        value: Option<&Bytes>,
        timestamp: i64,
    ) -> StoreResult<()> {
        let record = Captured { key: Some(key.clone()), value: value.cloned(), timestamp, headers: Vec::new() };
        self.0.entry(topic.to_string()).or_default().push_back(record);
        Ok(())
    }
}

struct Driver {
    tasks: Vec<Task>,
    /// Input topic -> the task reading it.
    readers: HashMap<String, usize>,
    /// Tasks with pattern sources: a topic no task reads by name goes to the first that matches.
    patterns: Vec<(rill_core::consumer::TopicPattern, usize)>,
    /// Repartition topics: fed back instead of kept.
    internal: HashSet<String>,
    outbox: Outbox,
    outputs: HashMap<String, VecDeque<Captured>>,
    offsets: HashMap<String, i64>,
    wall_clock: i64,
}

impl Driver {
    fn feed(&mut self, topic: &str, r: Captured) -> Result<()> {
        let by_pattern = || self.patterns.iter().find(|(p, _)| p.matches(topic)).map(|(_, t)| *t);
        let task =
            self.readers.get(topic).copied().or_else(by_pattern).ok_or_else(|| {
                StreamsError::Topology(format!("topic {topic} is not an input topic of the topology"))
            })?;
        let offset = self.offsets.entry(topic.to_string()).or_insert(0);
        let this = *offset;
        *offset += 1;
        // The source's own timestamp extractor, else the record's timestamp (a negative one
        // fails, as the runtime's default extractor does).
        let view = RecordView {
            topic,
            partition: 0,
            offset: this,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
        };
        let timestamp = match self.tasks[task].extract_timestamp(&view, -1) {
            Some(t) => t?,
            None => FailOnInvalidTimestamp.extract(&view, -1)?,
        };
        if timestamp < 0 {
            return Ok(());
        }
        self.tasks[task].process(topic, 0, this, r.key.as_deref(), r.value.as_deref(), timestamp, r.headers)
    }

    /// Feed repartitioned records on until none are left; keep the rest as output.
    fn drain(&mut self) -> Result<()> {
        loop {
            let next = self.outbox.borrow_mut().pop_front();
            let Some((topic, record)) = next else { return Ok(()) };
            if self.internal.contains(&topic) {
                self.feed(&topic, record)?;
            } else {
                self.outputs.entry(topic).or_default().push_back(record);
            }
        }
    }

    fn commit(&mut self) -> Result<()> {
        let Self { tasks, outputs, .. } = self;
        for task in tasks.iter_mut() {
            for store in task.context().state_stores() {
                store.prepare_commit(&mut ChangelogCapture(outputs))?;
                store.commit(None)?;
            }
        }
        Ok(())
    }

    fn pipe(&mut self, topic: &str, r: Captured) -> Result<()> {
        self.feed(topic, r)?;
        self.drain()?;
        self.commit()
    }
}

/// Runs a topology without a broker (see the module docs).
///
/// ```
/// use rill_core::streams::serde::StringSerde;
/// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").map_values(|v| v.to_uppercase()).to("out");
/// let driver = TopologyTestDriver::new(builder.build("app")?)?;
/// let input = driver.create_input_topic("in", StringSerde, StringSerde);
/// let output = driver.create_output_topic("out", StringSerde, StringSerde);
/// input.pipe_input("k".into(), "quiet".into())?;
/// assert_eq!(output.read_key_value(), Some(("k".to_string(), "QUIET".to_string())));
/// assert!(output.is_empty());
/// # Ok::<(), rill_core::streams::error::StreamsError>(())
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Driver>>,
    hooks: Arc<DriverHooks>,
    globals: GlobalStores,
    built: BuiltTopology,
}

impl TopologyTestDriver {
    /// Build one task per sub-topology of `built` (partition 0), with in-memory stores.
    pub fn new(built: BuiltTopology) -> Result<Self> {
        let hooks = built.driver.clone();
        hooks.active.store(true, std::sync::atomic::Ordering::Relaxed);
        let outbox: Outbox = Rc::default();
        let mut tasks = Vec::new();
        let mut readers = HashMap::new();
        let mut patterns = Vec::new();
        let settings = TaskSettings::new(&built.application_id);
        let globals = built.topology.build_global_stores(&built.application_id, &settings.state_dir)?;
        if !globals.is_empty() {
            tasks.push(built.topology.build_global_task(&globals, Box::new(DriverCollector(outbox.clone())))?);
            for (topic, _) in built.topology.global_topics() {
                readers.insert(topic, 0);
            }
        }
        let settings = TaskSettings { global_stores: globals.clone(), ..settings };
        for id in 0..built.topology.subtopologies().len() as u32 {
            let task_id = TaskId { subtopology: id, partition: 0 };
            let task = built.topology.build_task_with(&settings, task_id, Box::new(DriverCollector(outbox.clone())))?;
            for topic in built.topology.source_topics(id) {
                readers.insert(topic, tasks.len());
            }
            for p in built.topology.source_patterns(id) {
                patterns.push((p, tasks.len()));
            }
            tasks.push(task);
        }
        let internal = built.repartition_topics().map(str::to_string).collect();
        let driver = Driver {
            tasks,
            readers,
            patterns,
            internal,
            outbox,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            wall_clock: 0,
        };
        Ok(Self { inner: Rc::new(RefCell::new(driver)), hooks, globals, built })
    }

    /// The topology under test.
    pub fn built(&self) -> &BuiltTopology {
        &self.built
    }

    /// Records processors dropped on purpose so far (late records for closed windows, ...):
    /// Kafka Streams' `dropped-records-total`.
    pub fn dropped_records(&self) -> u64 {
        self.inner.borrow_mut().tasks.iter_mut().map(|t| t.context().dropped_records()).sum()
    }

    /// A handle to pipe records into `topic`, serialized with `keys` and `values`.
    pub fn create_input_topic<K: 'static, V: 'static>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            driver: self.inner.clone(),
            topic: topic.to_string(),
            keys: Box::new(keys),
            values: Box::new(values),
        }
    }

    /// A handle to read what the topology wrote to `topic`, deserialized with `keys` and
    /// `values`. Reading consumes: handles of one topic share its queue.
    pub fn create_output_topic<K: 'static, V: 'static>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            driver: self.inner.clone(),
            topic: topic.to_string(),
            keys: Box::new(keys),
            values: Box::new(values),
        }
    }

    /// Move the wall clock forward by `by`, running the wall-clock punctuations that come due.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_core::streams::error::Result;
    /// use rill_core::streams::processor::{Processor, ProcessorContext};
    /// use rill_core::streams::record::Record;
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_core::streams::task::{PunctuationId, PunctuationType};
    /// use rill_dsl::{StreamsBuilder, TopologyTestDriver};
    ///
    /// /// Emits a tick every second of wall-clock time.
    /// struct Ticker;
    /// impl Processor<String, String, String, i64> for Ticker {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
    ///         ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>, _: Record<String, String>) -> Result<()> {
    ///         Ok(())
    ///     }
    ///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, _: PunctuationId, now: i64) -> Result<()> {
    ///         ctx.forward(Record::new("tick".to_string(), now, now))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").process(|| Ticker, &[]).to("ticks");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let ticks = driver.create_output_topic("ticks", StringSerde, I64Serde);
    /// driver.advance_wall_clock(Duration::from_millis(2500))?;
    /// assert_eq!(ticks.read_values(), vec![2500]); // once per advance, however far it jumps
    /// driver.advance_wall_clock(Duration::from_millis(600))?;
    /// assert_eq!(ticks.read_values(), vec![3100]);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn advance_wall_clock(&self, by: Duration) -> Result<()> {
        let mut d = self.inner.borrow_mut();
        d.wall_clock += by.as_millis() as i64;
        let now = d.wall_clock;
        for i in 0..d.tasks.len() {
            d.tasks[i].advance_wall_clock(now)?;
            d.drain()?;
        }
        d.commit()
    }

    /// The driver's wall-clock time (ms).
    pub fn wall_clock(&self) -> i64 {
        self.inner.borrow().wall_clock
    }

    /// Every entry of the key-value store (or global store) `name` of `(K, V)`, in key order.
    pub fn key_value_store<K: 'static, V: 'static>(&self, name: &str) -> Result<Vec<(K, V)>> {
        self.with_store(name, |s: &mut dyn KeyValueStore<K, V>| s.all())?.map_err(Into::into)
    }

    /// Run `f` on the key-value store (or global store) `name` of `(K, V)` (reads and writes).
    pub fn with_store<K: 'static, V: 'static, R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut dyn KeyValueStore<K, V>) -> R,
    ) -> Result<R> {
        if self.globals.contains(name) {
            let r = self.globals.write::<K, V, R>(name, |s| f(s.key_value_mut())).expect("checked");
            return r.map_err(StreamsError::Topology);
        }
        let taps = self.hooks.taps.lock().unwrap_or_else(|p| p.into_inner());
        let (_, handle) = taps
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| StreamsError::Topology(format!("the topology has no state store named {name}")))?;
        let store = handle.downcast_ref::<Arc<Mutex<TypedStore<K, V>>>>().ok_or_else(|| {
            StreamsError::Topology(format!(
                "store {name} does not hold ({}, {})",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))
        })?;
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut *guard))
    }

    /// Topics the topology wrote to that still hold unread records.
    pub fn output_topics(&self) -> Vec<String> {
        let d = self.inner.borrow();
        let mut names: Vec<String> = d.outputs.iter().filter(|(_, q)| !q.is_empty()).map(|(t, _)| t.clone()).collect();
        names.sort();
        names
    }
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        if let Ok(mut d) = self.inner.try_borrow_mut() {
            for t in &mut d.tasks {
                t.close();
            }
        }
    }
}

/// Pipes records into one input topic (see [`TopologyTestDriver::create_input_topic`]).
pub struct TestInputTopic<K, V> {
    driver: Rc<RefCell<Driver>>,
    topic: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipe one record stamped with the driver's wall-clock time, and process everything it
    /// causes.
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        let now = self.driver.borrow().wall_clock;
        self.pipe_input_at(key, value, now)
    }

    /// Pipe one record with timestamp `timestamp`.
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.pipe_record(TestRecord { key, value, timestamp, headers: Vec::new() })
    }

    /// Pipe one record with headers.
    pub fn pipe_record(&self, r: TestRecord<K, V>) -> Result<()> {
        let key = self.keys.serialize_nullable(&r.key)?;
        let value = self.values.serialize_nullable(&r.value)?;
        self.driver.borrow_mut().pipe(&self.topic, Captured { key, value, timestamp: r.timestamp, headers: r.headers })
    }

    /// Pipe each `(key, value)` in turn.
    pub fn pipe_all(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        records.into_iter().try_for_each(|(k, v)| self.pipe_input(k, v))
    }
}

/// Reads what the topology wrote to one topic (see [`TopologyTestDriver::create_output_topic`]).
///
/// # Panics
///
/// The read methods panic, naming the topic, if a record's bytes do not deserialize with the
/// handle's serdes (a null the serde cannot represent included: read with
/// [`OptionSerde`](rill_core::streams::serde::OptionSerde)).
pub struct TestOutputTopic<K, V> {
    driver: Rc<RefCell<Driver>>,
    topic: String,
    keys: Box<dyn Serde<K>>,
    values: Box<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    fn decode<T: 'static>(&self, serde: &dyn Serde<T>, bytes: Option<&[u8]>, what: &str) -> T {
        let topic = &self.topic;
        match bytes {
            Some(b) => serde.deserialize(b).unwrap_or_else(|e| panic!("output topic {topic}: {what}: {e}")),
            None => serde.deserialize_null().unwrap_or_else(|| {
                panic!("output topic {topic}: a null {what} its serde cannot read (use OptionSerde)")
            }),
        }
    }

    /// The next record, if any.
    pub fn read_record(&self) -> Option<TestRecord<K, V>> {
        let r = self.driver.borrow_mut().outputs.get_mut(&self.topic)?.pop_front()?;
        Some(TestRecord {
            key: self.decode(self.keys.as_ref(), r.key.as_deref(), "key"),
            value: self.decode(self.values.as_ref(), r.value.as_deref(), "value"),
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }

    /// The next record's key and value.
    pub fn read_key_value(&self) -> Option<(K, V)> {
        self.read_record().map(|r| (r.key, r.value))
    }

    /// The next record's value.
    pub fn read_value(&self) -> Option<V> {
        self.read_record().map(|r| r.value)
    }

    /// Every unread record.
    pub fn read_records(&self) -> Vec<TestRecord<K, V>> {
        std::iter::from_fn(|| self.read_record()).collect()
    }

    /// Every unread record's key and value.
    pub fn read_all(&self) -> Vec<(K, V)> {
        std::iter::from_fn(|| self.read_key_value()).collect()
    }

    /// Every unread record's value.
    pub fn read_values(&self) -> Vec<V> {
        std::iter::from_fn(|| self.read_value()).collect()
    }

    /// How many records are unread.
    pub fn len(&self) -> usize {
        self.driver.borrow().outputs.get(&self.topic).map_or(0, VecDeque::len)
    }

    /// Whether every record was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
