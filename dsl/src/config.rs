//! Operator settings as Kafka Streams names them: [`Consumed`] (source serdes), [`Produced`]
//! (sink serdes and partitioner), [`Grouped`] (serdes and name of a repartition topic),
//! [`Materialized`] (a table's store), [`Repartitioned`] (an explicit repartition topic).
//!
//! Each is typed by the key and value it describes; a serde left out falls back to the one the
//! stream carries, then to the type's default (see [`crate::serdes`]).

use std::sync::Arc;

use rill_core::streams::serde::Serde;
use rill_core::streams::timestamp::TimestampExtractor;
use rill_core::streams::Partitioner;
use rill_state::StoreBuilder;

use crate::serdes::{ArcSerde, SerdeSlot};

fn arc<T: 'static>(s: impl Serde<T>) -> SerdeSlot<T> {
    Some(Arc::new(s) as ArcSerde<T>)
}

/// How a source reads its topics: key and value serdes, and the source's name.
pub struct Consumed<K, V> {
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    pub(crate) name: Option<String>,
    pub(crate) extractor: Option<Arc<dyn TimestampExtractor>>,
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Self { keys: None, values: None, name: None, extractor: None }
    }
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// Read keys with `keys` and values with `values`.
    pub fn with(keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        Self { keys: arc(keys), values: arc(values), ..Self::default() }
    }
    /// Default serdes (by type), with the source named `name`.
    pub fn named(name: &str) -> Self {
        Self { name: Some(name.to_string()), ..Self::default() }
    }
    /// Name the source node.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Take record timestamps from `extractor` instead of the application's
    /// `default.timestamp.extractor` (a closure `|record, partition_time| -> i64` will do).
    ///
    /// ```
    /// use rill_core::streams::serde::{I64Serde, StringSerde};
    /// use rill_core::streams::timestamp::RecordView;
    /// use rill_dsl::{Consumed, StreamsBuilder, TopologyTestDriver};
    ///
    /// // Event time is the value (milliseconds); the stream keeps it on to the output.
    /// let event_time = |r: &RecordView<'_>, _: i64| {
    ///     r.value.and_then(|v| v.first_chunk::<8>()).map(|b| i64::from_be_bytes(*b)).unwrap_or(-1)
    /// };
    /// let builder = StreamsBuilder::new();
    /// builder.stream_with(&["events"], Consumed::with(StringSerde, I64Serde).with_timestamp_extractor(event_time)).to("out");
    /// let driver = TopologyTestDriver::new(builder.build("app")?)?;
    /// let input = driver.create_input_topic("events", StringSerde, I64Serde);
    /// let out = driver.create_output_topic("out", StringSerde, I64Serde);
    /// input.pipe_input_at("a".into(), 42_000, 5)?;
    /// assert_eq!(out.read_record().unwrap().timestamp, 42_000);
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    pub fn with_timestamp_extractor(mut self, extractor: impl TimestampExtractor + 'static) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }
}

/// How a sink writes: serdes, an optional partitioner, and the sink's name.
pub struct Produced<K, V> {
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    pub(crate) partitioner: Option<Partitioner>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    /// Write keys with `keys` and values with `values`.
    pub fn with(keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        Self { keys: arc(keys), values: arc(values), partitioner: None, name: None }
    }
    /// The serdes the stream carries (or the types' defaults), with the sink named `name`.
    pub fn named(name: &str) -> Self {
        Self { keys: None, values: None, partitioner: None, name: Some(name.to_string()) }
    }
    /// Choose partitions with `partitioner` (serialized key and value, partition count).
    pub fn with_partitioner(mut self, partitioner: Partitioner) -> Self {
        self.partitioner = Some(partitioner);
        self
    }
    /// Name the sink node.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Self { keys: None, values: None, partitioner: None, name: None }
    }
}

/// How records are grouped: the serdes of the repartition topic (when one is needed) and its
/// name, `<application.id>-<name>-repartition`.
pub struct Grouped<K, V> {
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Grouped<K, V> {
    /// Repartition with `keys` and `values`.
    pub fn with(keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        Self { keys: arc(keys), values: arc(values), name: None }
    }
    /// Name the grouping (and so the repartition topic and its nodes).
    pub fn named(name: &str) -> Self {
        Self { keys: None, values: None, name: Some(name.to_string()) }
    }
    /// Name the grouping.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Self { keys: None, values: None, name: None }
    }
}

/// A table's state store: name (a stable changelog `<application.id>-<name>-changelog` and
/// something to query), serdes, RocksDB or in-memory, caching, change-logging.
///
/// By default, as in Kafka Streams: a persistent (RocksDB) store, change-logged, with a
/// generated name. The TopologyTestDriver keeps every store in memory.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
    pub(crate) persistent: bool,
    pub(crate) cache_max_bytes: Option<usize>,
    pub(crate) logging: bool,
    /// Window and session stores: how long windows are kept behind stream time.
    pub(crate) retention_ms: Option<i64>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Self {
            name: None,
            keys: None,
            values: None,
            persistent: true,
            cache_max_bytes: None,
            logging: true,
            retention_ms: None,
        }
    }
}

impl<K: 'static, V: 'static> Materialized<K, V> {
    /// A store named `name`.
    pub fn as_(name: &str) -> Self {
        Self { name: Some(name.to_string()), ..Self::default() }
    }
    /// A store with generated name, keys in `keys` and values in `values`.
    pub fn with(keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        Self { keys: arc(keys), values: arc(values), ..Self::default() }
    }
    /// Key serde.
    pub fn with_key_serde(mut self, keys: impl Serde<K>) -> Self {
        self.keys = arc(keys);
        self
    }
    /// Value serde.
    pub fn with_value_serde(mut self, values: impl Serde<V>) -> Self {
        self.values = arc(values);
        self
    }
    /// Keep the store in memory (rebuilt from its changelog on every start).
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }
    /// Keep the store in RocksDB (the default).
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }
    /// Cache writes, up to `max_bytes`, coalescing updates per key before they reach the store
    /// and its changelog.
    pub fn with_caching(mut self, max_bytes: usize) -> Self {
        self.cache_max_bytes = Some(max_bytes);
        self
    }
    /// Keep a changelog (the default; without one the store is not restored after a move).
    pub fn with_logging(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }
    /// Window and session stores: keep windows this long behind stream time (at least the
    /// window size plus grace, the default), for interactive queries of older windows.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention_ms = Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self
    }
}

impl<K, V> Materialized<K, V> {
    /// `decl` with this declaration's choices: RocksDB or memory, caching, logging.
    pub(crate) fn declare(&self, decl: StoreBuilder) -> StoreBuilder {
        let mut decl = decl.with_logging(self.logging);
        decl = if self.persistent { decl.persistent() } else { decl.in_memory() };
        match self.cache_max_bytes {
            Some(max) => decl.with_caching(max),
            None => decl,
        }
    }
}

/// An explicit repartition: the topic's name, partition count and serdes.
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
    pub(crate) keys: SerdeSlot<K>,
    pub(crate) values: SerdeSlot<V>,
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Self { name: None, partitions: None, keys: None, values: None }
    }
}

impl<K: 'static, V: 'static> Repartitioned<K, V> {
    /// Repartition with `keys` and `values`.
    pub fn with(keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        Self { keys: arc(keys), values: arc(values), ..Self::default() }
    }
    /// Name the topic `<application.id>-<name>-repartition`.
    pub fn named(name: &str) -> Self {
        Self { name: Some(name.to_string()), ..Self::default() }
    }
    /// Name the topic.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Give the topic `n` partitions (default: as many as the upstream input topics).
    pub fn with_partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}
