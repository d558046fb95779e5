//! A topology: sources, processors, sinks and state stores, wired by name. It is a description;
//! [`Topology::build_task`] instantiates one sub-topology for one partition as a [`Task`].
//!
//! Nodes are added parents first, as in Kafka Streams' `Topology`. Edges are typed: a
//! processor's input types must be its parents' output types, checked as it is added.
//!
//! ```
//! use rill_core::streams::processor::{Processor, ProcessorContext};
//! use rill_core::streams::record::Record;
//! use rill_core::streams::serde::StringSerde;
//! use rill_core::streams::topology::Topology;
//! use rill_core::streams::error::Result;
//!
//! struct Upper;
//! impl Processor<String, String, String, String> for Upper {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
//!         let v = r.value.to_uppercase();
//!         ctx.forward(r.with_value(v))
//!     }
//! }
//!
//! let mut t = Topology::new();
//! t.add_source("in", &["words"], StringSerde, StringSerde)?
//!     .add_processor("upper", || Upper, &["in"])?
//!     .add_sink("out", "loud-words", StringSerde, StringSerde, &["upper"])?;
//! let text = t.describe().to_string();
//! assert!(text.contains("Source: in (topics: [words])"));
//! assert!(text.contains("--> upper"));
//! # Ok::<(), rill_core::streams::error::StreamsError>(())
//! ```

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::error::{Result, StreamsError};
use super::global::{GlobalStoreInit, GlobalStoreSpec, GlobalStores};
use super::node::{ErasedNode, ProcessorNode, RawNode, SinkNode, SourceNode, TopicChoice};
use super::processor::{Child, Processor};
use super::serde::Serde;
use super::task::{PatternSource, RecordCollector, Task, TaskContext, TaskId, TaskStore};
use super::timestamp::TimestampExtractor;
use crate::consumer::TopicPattern;

/// What a store factory is told when a task's store is made.
#[derive(Debug, Clone)]
pub struct StoreInit {
    /// Application id.
    pub application_id: String,
    /// The task.
    pub task_id: TaskId,
    /// Store name.
    pub name: String,
    /// Its changelog topic, if it keeps one: `<application.id>-<store>-changelog`.
    pub changelog_topic: Option<String>,
    /// `state.dir`: persistent stores go under `<state.dir>/<application.id>/<task>/<store>`.
    pub state_dir: std::path::PathBuf,
    /// `processing.guarantee` is exactly-once: stores stage writes until the transaction commits.
    pub exactly_once: bool,
    /// The task's current-record timestamp cell (change-logging stores stamp records with it).
    pub timestamp: super::store::RecordTimestamp,
}

/// What the runtime tells [`Topology::build_task_with`] about where and how tasks run.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// `application.id`.
    pub application_id: String,
    /// `state.dir`.
    pub state_dir: std::path::PathBuf,
    /// Exactly-once processing.
    pub exactly_once: bool,
    /// The instance's global stores, readable by every task's processors.
    pub global_stores: GlobalStores,
}

impl TaskSettings {
    /// Settings for `application_id` with the default state directory, at-least-once, and no
    /// global stores.
    pub fn new(application_id: &str) -> Self {
        Self {
            application_id: application_id.to_string(),
            state_dir: std::env::temp_dir().join("rill-streams"),
            exactly_once: false,
            global_stores: GlobalStores::default(),
        }
    }
}

type StoreFactory = Arc<dyn Fn(&StoreInit) -> Result<Box<dyn Any>> + Send + Sync>;
type AddStore = fn(&mut TaskContext, &str, Box<dyn Any>);

fn add_store<K: 'static, V: 'static>(ctx: &mut TaskContext, name: &str, store: Box<dyn Any>) {
    let store = *store.downcast::<Box<dyn TaskStore<K, V>>>().expect("a store factory makes the declared type");
    ctx.add_store::<K, V>(name, store);
}

struct StoreDef {
    name: String,
    logged: bool,
    factory: StoreFactory,
    add: AddStore,
    processors: Vec<String>,
}

type Edge = (TypeId, &'static str);

fn edge<K: 'static, V: 'static>() -> Edge {
    (TypeId::of::<(K, V)>(), std::any::type_name::<(K, V)>())
}

type BuildSource = Box<dyn Fn(&[(String, &dyn Any)]) -> Rc<RefCell<dyn RawNode>> + Send + Sync>;
type BuildProcessor =
    Box<dyn Fn(usize, &[(String, &dyn Any)]) -> (Box<dyn Any>, Rc<RefCell<dyn ErasedNode>>) + Send + Sync>;
type BuildSink = Box<dyn Fn() -> Box<dyn Any> + Send + Sync>;

enum Kind {
    /// A source over named topics, or (`pattern`) over every topic whose whole name matches.
    Source {
        topics: Vec<String>,
        pattern: Option<TopicPattern>,
        build: BuildSource,
    },
    Processor {
        build: BuildProcessor,
    },
    Sink {
        topic: String,
        fixed: bool,
        build: BuildSink,
    },
}

struct NodeDef {
    name: String,
    kind: Kind,
    parents: Vec<String>,
    output: Option<Edge>,
}

type MakeGlobal = Box<dyn Fn(&GlobalStoreInit, &mut GlobalStores) -> Result<()> + Send + Sync>;
type AddWriter = fn(&mut TaskContext, &str, &GlobalStores) -> Result<()>;

fn add_writer<K: 'static, V: 'static>(ctx: &mut TaskContext, name: &str, globals: &GlobalStores) -> Result<()> {
    let w = globals
        .writer::<K, V>(name)
        .ok_or_else(|| StreamsError::Topology(format!("global store {name} was not built")))?
        .map_err(StreamsError::Topology)?;
    ctx.add_store::<K, V>(name, Box::new(w));
    Ok(())
}

/// A global store with its source and updating processor: no sub-topology, no tasks.
struct GlobalDef {
    store: String,
    make: MakeGlobal,
    add_writer: AddWriter,
    topic: String,
    source: NodeDef,
    processor: NodeDef,
}

/// A topology under construction, then a description to build tasks from.
#[derive(Default)]
pub struct Topology {
    nodes: Vec<NodeDef>,
    stores: Vec<StoreDef>,
    globals: Vec<GlobalDef>,
    /// Timestamp extractors of sources that have their own, by source name.
    extractors: HashMap<String, Arc<dyn TimestampExtractor>>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

/// Children handles as a node's builder receives them: (child name, `Child<K, V>` as `Any`).
fn children_of<K: 'static, V: 'static>(node: &str, children: &[(String, &dyn Any)]) -> Vec<(String, Child<K, V>)> {
    children
        .iter()
        .map(|(name, c)| {
            let c = c
                .downcast_ref::<Child<K, V>>()
                .unwrap_or_else(|| panic!("{node} -> {name}: edge types were checked when the topology was built"));
            (name.clone(), c.clone())
        })
        .collect()
}

fn source_builder<K: Clone + 'static, V: Clone + 'static>(
    name: &str,
    key_serde: impl Serde<K>,
    value_serde: impl Serde<V>,
) -> BuildSource {
    let (ks, vs): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) = (Arc::new(key_serde), Arc::new(value_serde));
    let node = name.to_string();
    Box::new(move |children| {
        Rc::new(RefCell::new(SourceNode {
            name: node.clone(),
            key_serde: ks.clone(),
            value_serde: vs.clone(),
            children: children_of::<K, V>(&node, children),
        }))
    })
}

fn processor_builder<KIn, VIn, KOut, VOut, P>(
    name: &str,
    supplier: impl Fn() -> P + Send + Sync + 'static,
) -> BuildProcessor
where
    KIn: 'static,
    VIn: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
    P: Processor<KIn, VIn, KOut, VOut>,
{
    let node = name.to_string();
    Box::new(move |index, children| {
        let n = Rc::new(RefCell::new(ProcessorNode {
            name: node.clone(),
            index,
            processor: supplier(),
            children: children_of::<KOut, VOut>(&node, children),
            _types: PhantomData::<fn(KIn, VIn)>,
        }));
        let as_child: Child<KIn, VIn> = n.clone();
        let as_erased: Rc<RefCell<dyn ErasedNode>> = n;
        (Box::new(as_child) as Box<dyn Any>, as_erased)
    })
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_new(&self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(StreamsError::Topology("a node needs a name".into()));
        }
        let global = self.globals.iter().any(|g| g.source.name == name || g.processor.name == name);
        if global || self.nodes.iter().any(|n| n.name == name) {
            return Err(StreamsError::Topology(format!("two nodes are named {name}; names must be unique")));
        }
        Ok(())
    }

    fn check_topic_free(&self, topic: &str, reader: &str) -> Result<()> {
        if let Some(other) = self
            .nodes
            .iter()
            .find(|n| matches!(&n.kind, Kind::Source { topics, .. } if topics.iter().any(|x| x == topic)))
        {
            return Err(StreamsError::Topology(format!("topic {topic} is read by both {} and {reader}", other.name)));
        }
        if let Some((other, p)) = self.nodes.iter().find_map(|n| match &n.kind {
            Kind::Source { pattern: Some(p), .. } if p.matches(topic) => Some((n, p)),
            _ => None,
        }) {
            return Err(StreamsError::Topology(format!(
                "topic {topic} is read by {reader} and also matches {}'s pattern {}",
                other.name,
                p.as_str()
            )));
        }
        if let Some(g) = self.globals.iter().find(|g| g.topic == topic) {
            return Err(StreamsError::Topology(format!(
                "topic {topic} is read by both {} (global store {}) and {reader}",
                g.source.name, g.store
            )));
        }
        Ok(())
    }

    fn check_store_free(&self, name: &str) -> Result<()> {
        if self.stores.iter().any(|s| s.name == name) || self.globals.iter().any(|g| g.store == name) {
            return Err(StreamsError::Topology(format!("two stores are named {name}")));
        }
        Ok(())
    }

    fn check_parents(&self, name: &str, parents: &[&str], input: Edge) -> Result<()> {
        if parents.is_empty() {
            return Err(StreamsError::Topology(format!("{name} needs at least one parent")));
        }
        for p in parents {
            let parent = self.nodes.iter().find(|n| n.name == *p).ok_or_else(|| {
                StreamsError::Topology(format!("{name}: parent {p} does not exist (add parents first)"))
            })?;
            match parent.output {
                None => return Err(StreamsError::Topology(format!("{name}: {p} is a sink and cannot be a parent"))),
                Some(out) if out.0 != input.0 => {
                    return Err(StreamsError::Topology(format!(
                        "{name} takes {} but its parent {p} gives {}",
                        input.1, out.1
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// A source reading `topics`, deserializing with the given serdes.
    pub fn add_source<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<&mut Self> {
        self.check_new(name)?;
        if topics.is_empty() {
            return Err(StreamsError::Topology(format!("source {name} reads no topic")));
        }
        for t in topics {
            self.check_topic_free(t, name)?;
        }
        let build = source_builder(name, key_serde, value_serde);
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind: Kind::Source { topics: topics.iter().map(|t| t.to_string()).collect(), pattern: None, build },
            parents: Vec::new(),
            output: Some(edge::<K, V>()),
        });
        Ok(self)
    }

    /// A source reading every topic whose whole name matches the regex `pattern` (Kafka's
    /// `addSource(name, Pattern)`), deserializing with the given serdes. The runtime resolves
    /// the pattern against the cluster's topics at start and again every
    /// `metadata.max.age.ms`; internal topics never match. A topic a named source reads is
    /// claimed by that source only if the pattern does not match it too: overlapping sources are
    /// an error at start.
    pub fn add_source_pattern<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        name: &str,
        pattern: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<&mut Self> {
        self.check_new(name)?;
        let pattern = TopicPattern::new(pattern).map_err(|e| StreamsError::Topology(format!("source {name}: {e}")))?;
        for n in &self.nodes {
            if let Kind::Source { topics, .. } = &n.kind {
                if let Some(t) = topics.iter().find(|t| pattern.matches(t)) {
                    return Err(StreamsError::Topology(format!(
                        "topic {t} is read by {} and also matches {name}'s pattern {}",
                        n.name,
                        pattern.as_str()
                    )));
                }
            }
        }
        let build = source_builder(name, key_serde, value_serde);
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind: Kind::Source { topics: Vec::new(), pattern: Some(pattern), build },
            parents: Vec::new(),
            output: Some(edge::<K, V>()),
        });
        Ok(self)
    }

    /// Give source `source` its own timestamp extractor (instead of the application's
    /// `default.timestamp.extractor`), as Kafka's `addSource(TimestampExtractor, ...)`.
    pub fn set_timestamp_extractor(
        &mut self,
        source: &str,
        extractor: Arc<dyn TimestampExtractor>,
    ) -> Result<&mut Self> {
        if !self.nodes.iter().any(|n| n.name == source && matches!(n.kind, Kind::Source { .. })) {
            return Err(StreamsError::Topology(format!("there is no source named {source}")));
        }
        self.extractors.insert(source.to_string(), extractor);
        Ok(self)
    }

    /// The topic patterns sub-topology `id` reads, as given.
    pub fn source_patterns(&self, id: u32) -> Vec<TopicPattern> {
        let subs = self.subtopologies();
        let Some(nodes) = subs.get(id as usize) else { return Vec::new() };
        nodes
            .iter()
            .filter_map(|&i| match &self.nodes[i].kind {
                Kind::Source { pattern, .. } => pattern.clone(),
                _ => None,
            })
            .collect()
    }

    /// A processor made by `supplier` (once per task), after `parents`.
    pub fn add_processor<KIn, VIn, KOut, VOut, P>(
        &mut self,
        name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        KIn: 'static,
        VIn: 'static,
        KOut: Clone + 'static,
        VOut: Clone + 'static,
        P: Processor<KIn, VIn, KOut, VOut>,
    {
        self.check_new(name)?;
        self.check_parents(name, parents, edge::<KIn, VIn>())?;
        let build = processor_builder(name, supplier);
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind: Kind::Processor { build },
            parents: parents.iter().map(|p| p.to_string()).collect(),
            output: Some(edge::<KOut, VOut>()),
        });
        Ok(self)
    }

    /// A sink writing to `topic`, after `parents`.
    pub fn add_sink<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        self.add_sink_with(name, TopicChoice::Fixed(topic.to_string()), key_serde, value_serde, None, parents)
    }

    /// A sink with a topic chosen per record and/or a custom partitioner.
    pub fn add_sink_with<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        topic: TopicChoice<K, V>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        partitioner: Option<super::node::Partitioner>,
        parents: &[&str],
    ) -> Result<&mut Self> {
        self.check_new(name)?;
        self.check_parents(name, parents, edge::<K, V>())?;
        let (shown, fixed) = match &topic {
            TopicChoice::Fixed(t) => (t.clone(), true),
            TopicChoice::PerRecord(_) => ("<chosen per record>".to_string(), false),
        };
        let (ks, vs): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) = (Arc::new(key_serde), Arc::new(value_serde));
        let node = name.to_string();
        let build: BuildSink = Box::new(move || {
            let n: Child<K, V> = Rc::new(RefCell::new(SinkNode {
                name: node.clone(),
                topic: topic.clone(),
                key_serde: ks.clone(),
                value_serde: vs.clone(),
                partitioner: partitioner.clone(),
            }));
            Box::new(n) as Box<dyn Any>
        });
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind: Kind::Sink { topic: shown, fixed, build },
            parents: parents.iter().map(|p| p.to_string()).collect(),
            output: None,
        });
        Ok(self)
    }

    /// A key-value store of `(K, V)` made per task by `factory`, reachable from `processors`.
    /// `logged`: it keeps a changelog topic `<application.id>-<name>-changelog`.
    pub fn add_state_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        logged: bool,
        factory: impl Fn(&StoreInit) -> Result<Box<dyn TaskStore<K, V>>> + Send + Sync + 'static,
        processors: &[&str],
    ) -> Result<&mut Self> {
        self.check_store_free(name)?;
        for p in processors {
            match self.nodes.iter().find(|n| n.name == *p) {
                Some(NodeDef { kind: Kind::Processor { .. }, .. }) => {}
                Some(_) => return Err(StreamsError::Topology(format!("store {name}: {p} is not a processor"))),
                None => return Err(StreamsError::Topology(format!("store {name}: no processor named {p}"))),
            }
        }
        let factory: StoreFactory = Arc::new(move |init| factory(init).map(|s| Box::new(s) as Box<dyn Any>));
        self.stores.push(StoreDef {
            name: name.to_string(),
            logged,
            factory,
            add: add_store::<K, V>,
            processors: processors.iter().map(|p| p.to_string()).collect(),
        });
        Ok(self)
    }

    /// Connect an existing store to more processors.
    pub fn connect_store(&mut self, store: &str, processors: &[&str]) -> Result<&mut Self> {
        let s = self
            .stores
            .iter_mut()
            .find(|s| s.name == store)
            .ok_or_else(|| StreamsError::Topology(format!("no store named {store}")))?;
        s.processors.extend(processors.iter().map(|p| p.to_string()));
        Ok(self)
    }

    /// A global store (Kafka Streams' `addGlobalStore`): the store `store` declares, fully
    /// replicated on every application instance, kept up to date by the processor `processor`
    /// (made by `supplier`) from the source `source` reading every partition of `topic`.
    ///
    /// A global store belongs to no sub-topology (it makes no tasks) and has no changelog: its
    /// topic is its changelog, read from the start (or a persistent store's checkpoint) when an
    /// instance starts, before any task runs. Its processor should only update the store; what
    /// it forwards goes nowhere. Every processor can read the store with
    /// [`ProcessorContext::global_store`](super::processor::ProcessorContext::global_store).
    ///
    /// ```
    /// use rill_core::streams::error::Result;
    /// use rill_core::streams::global::GlobalStoreSpec;
    /// use rill_core::streams::processor::{Processor, ProcessorContext};
    /// use rill_core::streams::record::Record;
    /// use rill_core::streams::serde::StringSerde;
    /// use rill_core::streams::topology::Topology;
    ///
    /// struct Update;
    /// impl Processor<String, String, (), ()> for Update {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, (), ()>, r: Record<String, String>) -> Result<()> {
    ///         ctx.store::<String, String>("countries")?.put(&r.key, &r.value)?;
    ///         Ok(())
    ///     }
    /// }
    /// # let factory = |_: &_| -> Result<Box<dyn rill_core::streams::global::GlobalStore<String, String>>> { unimplemented!() };
    /// let mut t = Topology::new();
    /// t.add_global_store(GlobalStoreSpec::new("countries", factory), "countries-source", "countries",
    ///     StringSerde, StringSerde, "countries-update", || Update)?;
    /// let text = t.describe().to_string();
    /// assert!(text.contains("Sub-topology: 0 for global store (will not generate tasks)"));
    /// assert!(text.contains("Processor: countries-update (stores: [countries])"));
    /// assert!(t.subtopologies().is_empty());
    /// # Ok::<(), rill_core::streams::error::StreamsError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn add_global_store<K, V, KIn, VIn, P>(
        &mut self,
        store: GlobalStoreSpec<K, V>,
        source: &str,
        topic: &str,
        key_serde: impl Serde<KIn>,
        value_serde: impl Serde<VIn>,
        processor: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> Result<&mut Self>
    where
        K: 'static,
        V: 'static,
        KIn: Clone + 'static,
        VIn: Clone + 'static,
        P: Processor<KIn, VIn, (), ()>,
    {
        self.check_new(source)?;
        self.check_new(processor)?;
        if source == processor {
            return Err(StreamsError::Topology(format!("two nodes are named {source}; names must be unique")));
        }
        self.check_topic_free(topic, source)?;
        self.check_store_free(&store.name)?;
        let GlobalStoreSpec { name, persistent, factory } = store;
        let store_name = name.clone();
        let make: MakeGlobal = Box::new(move |init, globals| {
            let s = factory(init)?;
            globals.insert::<K, V>(&store_name, s, persistent);
            Ok(())
        });
        self.globals.push(GlobalDef {
            store: name,
            make,
            add_writer: add_writer::<K, V>,
            topic: topic.to_string(),
            source: NodeDef {
                name: source.to_string(),
                kind: Kind::Source {
                    topics: vec![topic.to_string()],
                    pattern: None,
                    build: source_builder(source, key_serde, value_serde),
                },
                parents: Vec::new(),
                output: Some(edge::<KIn, VIn>()),
            },
            processor: NodeDef {
                name: processor.to_string(),
                kind: Kind::Processor { build: processor_builder(processor, supplier) },
                parents: vec![source.to_string()],
                output: Some(edge::<(), ()>()),
            },
        });
        Ok(self)
    }

    /// The topics global stores read, with the store each feeds.
    pub fn global_topics(&self) -> Vec<(String, String)> {
        self.globals.iter().map(|g| (g.topic.clone(), g.store.clone())).collect()
    }

    /// Make every global store (once per application instance, by the global thread or the
    /// test driver): `<state.dir>/<application.id>/global/<store>` for persistent ones.
    pub fn build_global_stores(&self, application_id: &str, state_dir: &std::path::Path) -> Result<GlobalStores> {
        let mut globals = GlobalStores::default();
        for g in &self.globals {
            let init = GlobalStoreInit {
                application_id: application_id.to_string(),
                name: g.store.clone(),
                state_dir: state_dir.to_path_buf(),
                timestamp: super::store::RecordTimestamp::default(),
            };
            (g.make)(&init, &mut globals)?;
        }
        Ok(globals)
    }

    /// The task that keeps the global stores up to date: a source per global topic feeding its
    /// store's processor, which sees its store as a writable task store. Only the global thread
    /// (or the test driver) runs it. Its id is `<first global sub-topology>_-1`.
    pub fn build_global_task(&self, globals: &GlobalStores, collector: Box<dyn RecordCollector>) -> Result<Task> {
        let id = TaskId { subtopology: self.subtopologies().len() as u32, partition: -1 };
        let mut ctx = TaskContext::new(id, Arc::from("global"), collector);
        ctx.set_global_stores(globals.clone());
        let mut sources: HashMap<String, Rc<RefCell<dyn RawNode>>> = HashMap::new();
        let mut erased = Vec::new();
        for (i, g) in self.globals.iter().enumerate() {
            (g.add_writer)(&mut ctx, &g.store, globals)?;
            let (Kind::Source { build: source, .. }, Kind::Processor { build: processor }) =
                (&g.source.kind, &g.processor.kind)
            else {
                unreachable!("a global store has a source and a processor")
            };
            let (handle, node) = processor(i, &[]);
            erased.push(Some(node));
            sources.insert(g.topic.clone(), source(&[(g.processor.name.clone(), handle.as_ref())]));
        }
        Ok(Task::new(ctx, sources, erased))
    }

    /// Sub-topologies: groups of node indexes connected by parent edges (and shared stores),
    /// numbered in the order of their first node.
    pub fn subtopologies(&self) -> Vec<Vec<usize>> {
        let n = self.nodes.len();
        let mut root: Vec<usize> = (0..n).collect();
        fn find(root: &mut [usize], i: usize) -> usize {
            let mut i = i;
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        let index: HashMap<&str, usize> = self.nodes.iter().enumerate().map(|(i, d)| (d.name.as_str(), i)).collect();
        let union = |a: usize, b: usize, root: &mut Vec<usize>| {
            let (ra, rb) = (find(root, a), find(root, b));
            if ra != rb {
                root[ra.max(rb)] = ra.min(rb);
            }
        };
        for (i, d) in self.nodes.iter().enumerate() {
            for p in &d.parents {
                union(i, index[p.as_str()], &mut root);
            }
        }
        for s in &self.stores {
            for w in s.processors.windows(2) {
                union(index[w[0].as_str()], index[w[1].as_str()], &mut root);
            }
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for i in 0..n {
            let r = find(&mut root, i);
            match groups.iter_mut().find(|(g, _)| *g == r) {
                Some((_, v)) => v.push(i),
                None => groups.push((r, vec![i])),
            }
        }
        groups.into_iter().map(|(_, v)| v).collect()
    }

    /// The topics sub-topology `id` reads.
    pub fn source_topics(&self, id: u32) -> Vec<String> {
        let subs = self.subtopologies();
        let Some(nodes) = subs.get(id as usize) else { return Vec::new() };
        nodes
            .iter()
            .filter_map(|&i| match &self.nodes[i].kind {
                Kind::Source { topics, .. } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The fixed topics sub-topology `id` writes (sinks choosing a topic per record excluded).
    pub fn sink_topics(&self, id: u32) -> Vec<String> {
        let subs = self.subtopologies();
        let Some(nodes) = subs.get(id as usize) else { return Vec::new() };
        nodes
            .iter()
            .filter_map(|&i| match &self.nodes[i].kind {
                Kind::Sink { topic, fixed: true, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the stores sub-topology `id` uses, with whether each keeps a changelog.
    pub fn stores_of(&self, id: u32) -> Vec<(String, bool)> {
        let subs = self.subtopologies();
        let Some(nodes) = subs.get(id as usize) else { return Vec::new() };
        let names: BTreeSet<&str> = nodes.iter().map(|&i| self.nodes[i].name.as_str()).collect();
        self.stores
            .iter()
            .filter(|s| s.processors.iter().any(|p| names.contains(p.as_str())))
            .map(|s| (s.name.clone(), s.logged))
            .collect()
    }

    /// Instantiate sub-topology `task.subtopology` for `task.partition`: its nodes, its stores
    /// (made by their factories) and the collector its sinks send to.
    pub fn build_task(&self, application_id: &str, task: TaskId, collector: Box<dyn RecordCollector>) -> Result<Task> {
        self.build_task_with(&TaskSettings::new(application_id), task, collector)
    }

    /// [`Topology::build_task`] with the runtime's settings for stores.
    pub fn build_task_with(
        &self,
        settings: &TaskSettings,
        task: TaskId,
        collector: Box<dyn RecordCollector>,
    ) -> Result<Task> {
        let application_id = settings.application_id.as_str();
        let subs = self.subtopologies();
        let nodes = subs
            .get(task.subtopology as usize)
            .ok_or_else(|| StreamsError::Topology(format!("there is no sub-topology {}", task.subtopology)))?;
        let mut ctx = TaskContext::new(task, Arc::from(application_id), collector);
        ctx.set_global_stores(settings.global_stores.clone());
        for (name, logged) in self.stores_of(task.subtopology) {
            let def = self.stores.iter().find(|s| s.name == name).expect("listed");
            let init = StoreInit {
                application_id: application_id.to_string(),
                task_id: task,
                name: name.clone(),
                changelog_topic: logged.then(|| format!("{application_id}-{name}-changelog")),
                state_dir: settings.state_dir.clone(),
                exactly_once: settings.exactly_once,
                timestamp: ctx.record_timestamp(),
            };
            let store = (def.factory)(&init)?;
            (def.add)(&mut ctx, &name, store);
        }
        // Children before parents: nodes were added parents first, so build in reverse order.
        let mut handles: HashMap<&str, Box<dyn Any>> = HashMap::new();
        let mut sources: HashMap<String, Rc<RefCell<dyn RawNode>>> = HashMap::new();
        let mut patterns: Vec<PatternSource> = Vec::new();
        let mut extractors: HashMap<String, Arc<dyn TimestampExtractor>> = HashMap::new();
        let mut erased: Vec<Option<Rc<RefCell<dyn ErasedNode>>>> = vec![None; self.nodes.len()];
        let mut members: Vec<usize> = nodes.clone();
        members.sort_unstable();
        for &i in members.iter().rev() {
            let d = &self.nodes[i];
            let kids: Vec<(String, &dyn Any)> = self
                .nodes
                .iter()
                .filter(|c| c.parents.contains(&d.name))
                .map(|c| (c.name.clone(), handles[c.name.as_str()].as_ref()))
                .collect();
            match &d.kind {
                Kind::Source { topics, pattern, build } => {
                    let s = build(&kids);
                    let extractor = self.extractors.get(&d.name);
                    for t in topics {
                        sources.insert(t.clone(), s.clone());
                        if let Some(e) = extractor {
                            extractors.insert(t.clone(), e.clone());
                        }
                    }
                    if let Some(p) = pattern {
                        patterns.push((p.clone(), s.clone(), extractor.cloned()));
                    }
                }
                Kind::Processor { build } => {
                    let (handle, node) = build(i, &kids);
                    erased[i] = Some(node);
                    handles.insert(&d.name, handle);
                }
                Kind::Sink { build, .. } => {
                    handles.insert(&d.name, build());
                }
            }
        }
        Ok(Task::new(ctx, sources, erased).with_patterns(patterns).with_extractors(extractors))
    }

    /// The topology as Kafka Streams prints it.
    pub fn describe(&self) -> TopologyDescription<'_> {
        TopologyDescription { topology: self }
    }
}

/// [`Topology::describe`]: sub-topologies with their sources, processors, sinks and stores.
pub struct TopologyDescription<'a> {
    topology: &'a Topology,
}

impl std::fmt::Display for TopologyDescription<'_> {
    /// Kafka Streams' layout. Global stores are printed as sub-topologies numbered after the
    /// ones that make tasks (Kafka numbers them in declaration order with the others; keeping
    /// task sub-topologies first means adding a global table renumbers no task, and so moves no
    /// state directory).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.topology;
        writeln!(f, "Topologies:")?;
        let subs = t.subtopologies();
        for (id, nodes) in subs.iter().enumerate() {
            writeln!(f, "   Sub-topology: {id}")?;
            for &i in nodes {
                let d = &t.nodes[i];
                let stores: Vec<&str> =
                    t.stores.iter().filter(|s| s.processors.contains(&d.name)).map(|s| s.name.as_str()).collect();
                let children: Vec<&str> =
                    t.nodes.iter().filter(|c| c.parents.contains(&d.name)).map(|c| c.name.as_str()).collect();
                describe_node(f, d, &stores, &children, false)?;
            }
            writeln!(f)?;
        }
        for (i, g) in t.globals.iter().enumerate() {
            writeln!(f, "   Sub-topology: {} for global store (will not generate tasks)", subs.len() + i)?;
            describe_node(f, &g.source, &[], &[g.processor.name.as_str()], true)?;
            describe_node(f, &g.processor, &[g.store.as_str()], &[], true)?;
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One node as Kafka prints it; `leaf_none`: print `--> none` when it has no children (as Kafka
/// does under a global store's processor).
fn describe_node(
    f: &mut std::fmt::Formatter<'_>,
    d: &NodeDef,
    stores: &[&str],
    children: &[&str],
    leaf_none: bool,
) -> std::fmt::Result {
    match &d.kind {
        Kind::Source { pattern: Some(p), .. } => writeln!(f, "    Source: {} (topics: [{}])", d.name, p.as_str())?,
        Kind::Source { topics, .. } => writeln!(f, "    Source: {} (topics: [{}])", d.name, topics.join(", "))?,
        Kind::Processor { .. } => writeln!(f, "    Processor: {} (stores: [{}])", d.name, stores.join(", "))?,
        Kind::Sink { topic, .. } => writeln!(f, "    Sink: {} (topic: {topic})", d.name)?,
    }
    if !children.is_empty() {
        writeln!(f, "      --> {}", children.join(", "))?;
    } else if leaf_none {
        writeln!(f, "      --> none")?;
    }
    if !d.parents.is_empty() {
        writeln!(f, "      <-- {}", d.parents.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
