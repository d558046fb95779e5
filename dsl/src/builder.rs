//! [`StreamsBuilder`]: where a DSL program starts, and [`BuiltTopology`]: what it compiles to.
//!
//! Operators are recorded as they are called and replayed into a core [`Topology`] by
//! [`StreamsBuilder::build`], which knows the `application.id` that internal topic names carry
//! (`<application.id>-<name>-repartition`, `<application.id>-<store>-changelog`). Errors (a
//! missing serde, a duplicate name) surface there, naming the operator.
//!
//! Operators without a name get Kafka Streams' generated ones (`KSTREAM-MAP-0000000003`): they
//! shift when the topology changes, and with them the names of internal topics and stores. Name
//! the operators whose topics and stores must survive edits ([`crate::KStream::named`],
//! [`crate::Grouped::named`], [`crate::Materialized::as_`]).

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::processor::Processor;
use rill_core::streams::runtime::{InternalTopicSettings, KafkaStreams, StreamsConfig};
use rill_core::streams::task::TaskStore;
use rill_core::streams::timestamp::TimestampExtractor;
use rill_core::streams::topology::{StoreInit, Topology};
use rill_core::streams::{Partitioner, TopicChoice};
use rill_state::{StateConfig, StoreBuilder};

use crate::config::Materialized;
use crate::serdes::{owned, ArcSerde};
use crate::tap::Tapped;

/// One recorded operator: adds its nodes and stores to the topology.
pub(crate) type Op = Box<dyn FnOnce(&mut Topology, &BuildEnv) -> Result<()>>;

/// What operators learn at build time.
#[derive(Clone)]
pub(crate) struct BuildEnv {
    pub(crate) app: String,
    pub(crate) driver: Arc<DriverHooks>,
}

/// Settings the store factories read when tasks are built: the runtime's [`StateConfig`]
/// (RocksDB options), and the test driver's switch: every store in memory, with a handle on
/// each kept for [`TopologyTestDriver::key_value_store`](crate::TopologyTestDriver::key_value_store).
#[derive(Default)]
pub(crate) struct DriverHooks {
    pub(crate) config: Mutex<StateConfig>,
    pub(crate) active: AtomicBool,
    /// `(store name, Arc<Mutex<TypedStore<K, V>>>)`.
    pub(crate) taps: Mutex<Vec<(String, Box<dyn Any + Send>)>>,
}

/// A topic as the DSL refers to it before the application id is known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TopicRef {
    /// A user topic.
    User(String),
    /// The repartition topic named `<application.id>-<name>-repartition`.
    Repartition(String),
    /// Another internal topic written and read by the application, named
    /// `<application.id>-<name>` (foreign-key joins' `...-subscription-registration-topic`).
    Internal(String),
}

impl TopicRef {
    pub(crate) fn resolve(&self, app: &str) -> String {
        match self {
            Self::User(t) => t.clone(),
            Self::Repartition(n) => repartition_topic(app, n),
            Self::Internal(n) => format!("{app}-{n}"),
        }
    }
}

/// `<application_id>-<name>-repartition`.
pub fn repartition_topic(application_id: &str, name: &str) -> String {
    format!("{application_id}-{name}-repartition")
}

enum InternalSpec {
    Repartition { topic: TopicRef, partitions: Option<i32>, upstream: Vec<TopicRef> },
    Changelog { store: String, upstream: Vec<TopicRef>, configs: Vec<(String, String)> },
}

/// What a [`StreamsBuilder`] and its streams and tables share while the program is written.
#[derive(Default)]
pub(crate) struct State {
    ops: Vec<Op>,
    next_index: usize,
    error: Option<StreamsError>,
    internal: Vec<InternalSpec>,
    copartition: Vec<Vec<TopicRef>>,
    built: bool,
}

pub(crate) type Shared = Rc<RefCell<State>>;

impl State {
    /// `given`, or `<prefix><index>` with the next index (Kafka Streams' `KSTREAM-MAP-0000000003`).
    pub(crate) fn name(&mut self, given: Option<String>, prefix: &str) -> String {
        given.unwrap_or_else(|| {
            let n = format!("{prefix}{:010}", self.next_index);
            self.next_index += 1;
            n
        })
    }

    /// Record an operator.
    pub(crate) fn op(&mut self, op: impl FnOnce(&mut Topology, &BuildEnv) -> Result<()> + 'static) {
        self.ops.push(Box::new(op));
    }

    /// Remember the first error; [`StreamsBuilder::build`] returns it.
    pub(crate) fn fail(&mut self, e: StreamsError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// A processor `name` after `parents`.
    pub(crate) fn processor<KI, VI, KO, VO, P>(
        &mut self,
        name: &str,
        parents: Vec<String>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) where
        KI: 'static,
        VI: 'static,
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<KI, VI, KO, VO>,
    {
        let name = name.to_string();
        self.op(move |t, _| {
            let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
            t.add_processor(&name, supplier, &parents).map(|_| ())
        });
    }

    /// A source `name` reading `topics`.
    pub(crate) fn source<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        name: &str,
        topics: Vec<TopicRef>,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        extractor: Option<Arc<dyn TimestampExtractor>>,
    ) {
        let name = name.to_string();
        self.op(move |t, env| {
            let topics: Vec<String> = topics.iter().map(|t| t.resolve(&env.app)).collect();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            t.add_source(&name, &topics, owned(&keys), owned(&values))?;
            if let Some(e) = extractor {
                t.set_timestamp_extractor(&name, e)?;
            }
            Ok(())
        });
    }

    /// A source `name` reading every topic matching `pattern`.
    pub(crate) fn source_pattern<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        name: &str,
        pattern: &str,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        extractor: Option<Arc<dyn TimestampExtractor>>,
    ) {
        let (name, pattern) = (name.to_string(), pattern.to_string());
        self.op(move |t, _| {
            t.add_source_pattern(&name, &pattern, owned(&keys), owned(&values))?;
            if let Some(e) = extractor {
                t.set_timestamp_extractor(&name, e)?;
            }
            Ok(())
        });
    }

    /// A sink `name` after `parent`, writing to `topic` (a [`TopicRef`] or a per-record choice).
    pub(crate) fn sink<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        parent: &str,
        topic: SinkTopic<K, V>,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        partitioner: Option<Partitioner>,
    ) {
        let (name, parent) = (name.to_string(), parent.to_string());
        self.op(move |t, env| {
            let topic = match topic {
                SinkTopic::Fixed(r) => TopicChoice::Fixed(r.resolve(&env.app)),
                SinkTopic::Chosen(c) => c,
            };
            t.add_sink_with(&name, topic, owned(&keys), owned(&values), partitioner, &[&parent]).map(|_| ())
        });
    }

    /// A repartition through `<application.id>-<topic_name>-repartition`: a sink after `parent`
    /// and a source reading the topic back (`<topic_name>-repartition-sink` and `-source`, as
    /// Kafka Streams names them). Returns the source's name.
    pub(crate) fn repartition<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        parent: &str,
        topic_name: &str,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        partitions: Option<i32>,
        upstream: Vec<TopicRef>,
    ) -> String {
        let topic = TopicRef::Repartition(topic_name.to_string());
        let nodes = [format!("{topic_name}-repartition-sink"), format!("{topic_name}-repartition-source")];
        self.through(parent, topic, nodes, (keys, values), None, partitions, upstream)
    }

    /// Records of `parent` through the internal topic `topic` (a repartition topic, created as
    /// one): a sink `nodes[0]` after `parent` writing it, with `partitioner` if given, and a
    /// source `nodes[1]` reading it back. Returns the source's name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn through<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        parent: &str,
        topic: TopicRef,
        nodes: [String; 2],
        serdes: (ArcSerde<K>, ArcSerde<V>),
        partitioner: Option<Partitioner>,
        partitions: Option<i32>,
        upstream: Vec<TopicRef>,
    ) -> String {
        let [sink, source] = nodes;
        let (keys, values) = serdes;
        self.sink(&sink, parent, SinkTopic::Fixed(topic.clone()), keys.clone(), values.clone(), partitioner);
        self.source(&source, vec![topic.clone()], keys, values, None);
        self.internal_topic(topic, partitions, upstream);
        source
    }

    /// Declare the internal topic `topic`, written and read by the application and created as
    /// a repartition topic: `partitions` of them, else as many as the `upstream` topics have.
    pub(crate) fn internal_topic(&mut self, topic: TopicRef, partitions: Option<i32>, upstream: Vec<TopicRef>) {
        self.internal.push(InternalSpec::Repartition { topic, partitions, upstream });
    }

    /// A key-value store declared by `mat` (named `name`), connected to `processors`; its
    /// changelog has as many partitions as the `upstream` topics.
    pub(crate) fn store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        mat: &Materialized<K, V>,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        processors: Vec<String>,
        upstream: Vec<TopicRef>,
    ) {
        let decl = mat.declare(StoreBuilder::key_value(name));
        self.store_with(decl, keys, values, processors, upstream);
    }

    /// The store `decl` declares (any kind: key-value, window, session), with `keys` and
    /// `values` as its serdes, connected to `processors`; its changelog (if logged) has as many
    /// partitions as the `upstream` topics and the configs its kind needs.
    pub(crate) fn store_with<K: 'static, V: 'static>(
        &mut self,
        decl: StoreBuilder,
        keys: ArcSerde<K>,
        values: ArcSerde<V>,
        processors: Vec<String>,
        upstream: Vec<TopicRef>,
    ) {
        let logged = decl.logging_enabled();
        if logged {
            let configs = decl.changelog_configs();
            self.internal.push(InternalSpec::Changelog { store: decl.name().to_string(), upstream, configs });
        }
        let name = decl.name().to_string();
        self.op(move |t, env| {
            let driver = env.driver.clone();
            let factory = move |init: &StoreInit| -> Result<Box<dyn TaskStore<K, V>>> {
                let config = driver.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if driver.active.load(Ordering::Relaxed) {
                    let store = decl.clone().in_memory().build_for_task(init, &config, owned(&keys), owned(&values))?;
                    let tapped = Tapped { name: decl.name().to_string(), inner: Arc::new(Mutex::new(store)) };
                    let handle: Box<dyn Any + Send> = Box::new(tapped.inner.clone());
                    driver.taps.lock().unwrap_or_else(|p| p.into_inner()).push((tapped.name.clone(), handle));
                    return Ok(Box::new(tapped));
                }
                Ok(Box::new(decl.build_for_task(init, &config, owned(&keys), owned(&values))?))
            };
            let procs: Vec<&str> = processors.iter().map(String::as_str).collect();
            t.add_state_store(&name, logged, factory, &procs).map(|_| ())
        });
    }

    /// Connect store `store` to `processor` (added before this call), which reads `upstream`.
    pub(crate) fn connect(&mut self, store: &str, processor: &str, upstream: &[TopicRef]) {
        for spec in &mut self.internal {
            if let InternalSpec::Changelog { store: s, upstream: u, .. } = spec {
                if s == store {
                    u.extend(upstream.iter().cloned());
                }
            }
        }
        let (store, processor) = (store.to_string(), processor.to_string());
        self.op(move |t, _| t.connect_store(&store, &[&processor]).map(|_| ()));
    }

    /// `topics` must have equal partition counts (cogroup inputs; joins will too).
    pub(crate) fn copartition(&mut self, topics: Vec<TopicRef>) {
        self.copartition.push(topics);
    }
}

/// Where a sink writes.
pub(crate) enum SinkTopic<K, V> {
    Fixed(TopicRef),
    Chosen(TopicChoice<K, V>),
}

/// Writes a topology with the DSL: sources are made here ([`StreamsBuilder::stream`],
/// [`StreamsBuilder::table`]), everything else on the streams and tables they return.
///
/// ```
/// use rill_dsl::StreamsBuilder;
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").filter(|_, v| !v.is_empty()).to("out");
/// let built = builder.build("app")?;
/// assert!(built.topology.describe().to_string().contains("KSTREAM-FILTER-0000000001"));
/// # Ok::<(), rill_core::streams::error::StreamsError>(())
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) state: Shared,
}

/// How many partitions an internal topic gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitions {
    /// Exactly this many.
    Fixed(i32),
    /// As many as the largest of these topics has (some may be internal topics themselves:
    /// resolve those first).
    MaxOf(Vec<String>),
}

/// What an internal topic is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopicKind {
    /// Records re-keyed for a downstream sub-topology (`cleanup.policy=delete`).
    Repartition,
    /// A store's changelog (`cleanup.policy=compact`).
    Changelog,
}

/// A topic the runtime must create before the application runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// Full name (`<application.id>-<name>-repartition` / `<application.id>-<store>-changelog`).
    pub name: String,
    /// Repartition or changelog.
    pub kind: InternalTopicKind,
    /// Partition count.
    pub partitions: Partitions,
    /// Topic configs to create it with (Kafka's names).
    pub configs: Vec<(String, String)>,
}

/// A compiled DSL program: the processor topology, and what the runtime must set up for it.
pub struct BuiltTopology {
    /// `application.id` the names were made for.
    pub application_id: String,
    /// The processor topology.
    pub topology: Topology,
    /// Repartition and changelog topics, in the order they were declared.
    pub internal_topics: Vec<InternalTopic>,
    /// Sets of topics that must have equal partition counts (checked at start).
    pub copartition_groups: Vec<BTreeSet<String>>,
    pub(crate) driver: Arc<DriverHooks>,
}

impl std::fmt::Debug for BuiltTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltTopology")
            .field("application_id", &self.application_id)
            .field("internal_topics", &self.internal_topics)
            .field("copartition_groups", &self.copartition_groups)
            .finish_non_exhaustive()
    }
}

impl BuiltTopology {
    /// RocksDB options and other state settings for the stores of tasks built from now on
    /// (`state.dir` comes from the runtime's `TaskSettings` through each `StoreInit`).
    pub fn set_state_config(&self, config: StateConfig) {
        *self.driver.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// The repartition topics (full names).
    pub fn repartition_topics(&self) -> impl Iterator<Item = &str> {
        self.internal_topics.iter().filter(|t| t.kind == InternalTopicKind::Repartition).map(|t| t.name.as_str())
    }

    /// What the runtime needs to create the internal topics as the program declared them
    /// (fixed partition counts, topic configs), by full name.
    pub fn internal_topic_settings(&self) -> Vec<(String, InternalTopicSettings)> {
        self.internal_topics
            .iter()
            .map(|t| {
                let partitions = match &t.partitions {
                    Partitions::Fixed(n) => Some(*n),
                    Partitions::MaxOf(_) => None,
                };
                (t.name.clone(), InternalTopicSettings { partitions, configs: t.configs.iter().cloned().collect() })
            })
            .collect()
    }

    /// An application instance running this program with `config`: the topology, its
    /// co-partitioning groups and its internal topics' settings.
    ///
    /// ```no_run
    /// # async fn run() -> rill_core::streams::error::Result<()> {
    /// use rill_core::streams::runtime::StreamsConfig;
    /// use rill_dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").to("out");
    /// let config = StreamsConfig::from_properties([("application.id", "copy"), ("bootstrap.servers", "127.0.0.1:9092")])?;
    /// let mut app = builder.build("copy")?.into_streams(config);
    /// app.start().await?;
    /// # Ok(()) }
    /// ```
    pub fn into_streams(self, config: StreamsConfig) -> KafkaStreams {
        let settings = self.internal_topic_settings();
        KafkaStreams::new(self.topology, config)
            .with_copartition_groups(self.copartition_groups)
            .with_internal_topics(settings)
    }
}

impl StreamsBuilder {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compile the program for `application_id`: replay the operators into a topology and list
    /// the internal topics. Fails on the first operator that cannot be added, or if called twice.
    pub fn build(&self, application_id: &str) -> Result<BuiltTopology> {
        let mut s = self.state.borrow_mut();
        if s.built {
            return Err(StreamsError::Topology("StreamsBuilder::build was already called".into()));
        }
        s.built = true;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let env = BuildEnv { app: application_id.to_string(), driver: Arc::default() };
        let mut topology = Topology::new();
        for op in std::mem::take(&mut s.ops) {
            op(&mut topology, &env)?;
        }
        let app = application_id;
        let resolve = |v: &[TopicRef]| -> Vec<String> {
            let set: BTreeSet<String> = v.iter().map(|t| t.resolve(app)).collect();
            set.into_iter().collect()
        };
        let internal_topics = s
            .internal
            .iter()
            .map(|spec| match spec {
                InternalSpec::Repartition { topic, partitions, upstream } => InternalTopic {
                    name: topic.resolve(app),
                    kind: InternalTopicKind::Repartition,
                    partitions: match partitions {
                        Some(n) => Partitions::Fixed(*n),
                        None => Partitions::MaxOf(resolve(upstream)),
                    },
                    configs: vec![
                        ("cleanup.policy".into(), "delete".into()),
                        ("message.timestamp.type".into(), "CreateTime".into()),
                    ],
                },
                InternalSpec::Changelog { store, upstream, configs } => InternalTopic {
                    name: rill_state::changelog_topic(app, store),
                    kind: InternalTopicKind::Changelog,
                    partitions: Partitions::MaxOf(resolve(upstream)),
                    configs: configs.clone(),
                },
            })
            .collect();
        let copartition_groups = s.copartition.iter().map(|g| resolve(g).into_iter().collect()).collect();
        Ok(BuiltTopology {
            application_id: application_id.to_string(),
            topology,
            internal_topics,
            copartition_groups,
            driver: env.driver,
        })
    }
}
