//! The streams runtime: [`KafkaStreams`] runs a [`Topology`] as a processing application.
//!
//! `application.id` is the consumer group and the prefix of internal topics. At start the
//! runtime works out each sub-topology's partition count, creates missing repartition and
//! changelog topics, and starts `num.stream.threads` stream threads. Each thread is a group
//! member; it owns the tasks (sub-topology x partition) of the partitions it is assigned,
//! restores their stores from their changelogs, and processes and commits as
//! `processing.guarantee` says (see `thread.rs`).
//!
//! ```no_run
//! # async fn run(topology: rill_core::streams::topology::Topology) -> rill_core::streams::error::Result<()> {
//! use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
//! let config = StreamsConfig::from_properties([
//!     ("application.id", "wordcount"),
//!     ("bootstrap.servers", "127.0.0.1:9092"),
//!     ("processing.guarantee", "exactly_once_v2"),
//! ])?;
//! let mut app = KafkaStreams::new(topology, config);
//! app.start().await?;
//! // ... until it is time to stop:
//! app.close(std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```

pub mod assignor;
mod collector;
mod config;
mod global;
mod internal;
mod metadata;
mod queues;
mod restore;
mod retry;
mod standby;
mod thread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::{
    OnError, ProcessingGuarantee, StreamsConfig, DEFAULT_COMMIT_INTERVAL_ALOS, DEFAULT_COMMIT_INTERVAL_EOS,
    DEFAULT_NUM_STREAM_THREADS,
};
pub use global::GlobalRestoration;
pub use internal::{InternalTopic, InternalTopicSettings, TopicPlan};
pub use metadata::{KeyQueryMetadata, StreamsMetadata};
pub use restore::RestoreStats;
pub use thread::Restoration;

use crate::client::{Client, ClientConfig};
use crate::streams::error::{Result, StreamsError};
use crate::streams::topology::Topology;

/// The life of an application instance (Kafka Streams' `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// A stream thread is joining the group, moving tasks or restoring stores.
    Rebalancing,
    /// Threads are running.
    Running,
    /// `close` was called; threads are finishing.
    PendingShutdown,
    /// Stopped cleanly.
    NotRunning,
    /// A stream thread failed.
    Error,
}

type Listener = Box<dyn Fn(StreamsState, StreamsState) + Send + Sync>;

/// What happens when a stream thread fails (Kafka Streams' `StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadFailure {
    /// Stop every thread of this instance; it ends in [`StreamsState::Error`] (the default).
    ShutdownClient,
    /// Start a new thread in the failed one's place; its tasks move through a rebalance and
    /// resume from the last commit.
    ReplaceThread,
}

type Handles = Arc<Mutex<Vec<Option<std::thread::JoinHandle<Result<()>>>>>>;

/// A running (or runnable) streams application instance.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    shutdown: Arc<AtomicBool>,
    threads: Handles,
    on_failure: ThreadFailure,
    replaced: Arc<std::sync::atomic::AtomicU64>,
    first_error: Arc<Mutex<Option<StreamsError>>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    /// Stream threads between a rebalance and having their tasks running.
    rebalancing: Arc<std::sync::atomic::AtomicUsize>,
    /// Each stream thread's inbox of interactive queries (replaced with the thread).
    queries: Arc<Mutex<Vec<std::sync::mpsc::Sender<thread::Query>>>>,
    state: Arc<Mutex<StreamsState>>,
    listener: Option<Arc<Listener>>,
    plan: Option<Arc<TopicPlan>>,
    restorations: Arc<Mutex<Vec<Restoration>>>,
    copartition_groups: Vec<std::collections::BTreeSet<String>>,
    /// Internal topics' partition counts and configs the program asked for.
    internal_settings: std::collections::HashMap<String, InternalTopicSettings>,
    /// Which host runs which tasks, as the last assignment said.
    view: Arc<std::sync::RwLock<assignor::ClusterView>>,
    global: global::GlobalHandle,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams").field("application_id", &self.config.application_id).finish()
    }
}

impl KafkaStreams {
    /// An instance of `topology` with `config`; nothing runs until [`KafkaStreams::start`].
    pub fn new(topology: Topology, config: StreamsConfig) -> Self {
        Self {
            topology: Arc::new(topology),
            config: Arc::new(config),
            shutdown: Arc::new(AtomicBool::new(false)),
            threads: Arc::default(),
            on_failure: ThreadFailure::ShutdownClient,
            replaced: Arc::default(),
            first_error: Arc::default(),
            supervisor: None,
            queries: Arc::default(),
            rebalancing: Arc::default(),
            state: Arc::new(Mutex::new(StreamsState::Created)),
            listener: None,
            plan: None,
            restorations: Arc::default(),
            copartition_groups: Vec::new(),
            view: Arc::default(),
            global: global::GlobalHandle::default(),
            internal_settings: Default::default(),
        }
    }

    /// Groups of topics that must have equal partition counts (the DSL's
    /// `BuiltTopology::copartition_groups`: joins, cogroup); checked at start.
    pub fn with_copartition_groups(mut self, groups: Vec<std::collections::BTreeSet<String>>) -> Self {
        self.copartition_groups = groups;
        self
    }

    /// Partition counts and configs for internal topics, by full name (the DSL's
    /// `BuiltTopology::internal_topic_settings`); applied when they are created at start.
    pub fn with_internal_topics(mut self, settings: impl IntoIterator<Item = (String, InternalTopicSettings)>) -> Self {
        self.internal_settings.extend(settings);
        self
    }

    /// What to do when a stream thread fails (before [`KafkaStreams::start`]).
    pub fn set_uncaught_exception_handler(&mut self, on_failure: ThreadFailure) {
        self.on_failure = on_failure;
    }

    /// How many failed stream threads were replaced.
    pub fn replaced_threads(&self) -> u64 {
        self.replaced.load(Ordering::Acquire)
    }

    /// Called with (new, old) on every state change.
    pub fn set_state_listener(&mut self, f: impl Fn(StreamsState, StreamsState) + Send + Sync + 'static) {
        self.listener = Some(Arc::new(Box::new(f)));
    }

    /// The current state.
    pub fn state(&self) -> StreamsState {
        let s = *self.state.lock().expect("state lock");
        if matches!(s, StreamsState::Running | StreamsState::Rebalancing)
            && self.first_error.lock().expect("error lock").is_some()
        {
            return StreamsState::Error;
        }
        s
    }

    fn set_state(&self, new: StreamsState) {
        set_state(&self.state, &self.listener, new);
    }

    /// The topics the topology reads and writes with their partition counts, and the internal
    /// topics (known after [`KafkaStreams::start`]).
    pub fn topic_plan(&self) -> Option<&TopicPlan> {
        self.plan.as_deref()
    }

    /// Every store restoration so far: which task, which store, how many changelog records
    /// were replayed from which offset.
    pub fn restorations(&self) -> Vec<Restoration> {
        self.restorations.lock().expect("restorations lock").clone()
    }

    /// What bootstrapping the global stores replayed at start, per global topic partition.
    pub fn global_restorations(&self) -> Vec<GlobalRestoration> {
        self.global.restorations.clone()
    }

    /// Interactive query: the value of `key` in the local store `store` (whichever local task
    /// holds it; under exactly-once this includes writes not committed yet), or in the global
    /// store `store`. `None` if no local task has it: the key may live on another instance
    /// ([`KafkaStreams::query_metadata_for_key`] says which).
    pub async fn get<K, V>(&self, store: &str, key: K) -> Result<Option<V>>
    where
        K: Send + Sync + 'static,
        V: Send + 'static,
    {
        self.get_from(store, key, false).await
    }

    /// Like [`KafkaStreams::get`], but standby replicas answer too (Kafka's "stale stores"):
    /// a standby may be a little behind its active task.
    pub async fn get_stale<K, V>(&self, store: &str, key: K) -> Result<Option<V>>
    where
        K: Send + Sync + 'static,
        V: Send + 'static,
    {
        self.get_from(store, key, true).await
    }

    async fn get_from<K, V>(&self, store: &str, key: K, stale: bool) -> Result<Option<V>>
    where
        K: Send + Sync + 'static,
        V: Send + 'static,
    {
        if let Some(answer) = self.global.get::<K, V>(store, &key) {
            return answer;
        }
        let key = Arc::new(key);
        let answers = self
            .ask(store, stale, move |name, tasks| {
                for t in tasks {
                    if let Some(s) = t.context().key_value_store::<K, V>(name) {
                        match s.map_err(StreamsError::Topology)?.get(&key)? {
                            Some(v) => return Ok(vec![v]),
                            None => continue,
                        }
                    }
                }
                Ok(Vec::new())
            })
            .await?;
        Ok(answers.into_iter().next())
    }

    /// Interactive query: every entry of the local store `store` across this instance's tasks,
    /// by key bytes within each task (of a global store: all of it, by key bytes).
    pub async fn all<K, V>(&self, store: &str) -> Result<Vec<(K, V)>>
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        self.all_from(store, false).await
    }

    /// Like [`KafkaStreams::all`], with the entries of standby replicas too (tasks with both
    /// here are not possible: a task runs or stands by on an instance, never both).
    pub async fn all_stale<K, V>(&self, store: &str) -> Result<Vec<(K, V)>>
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        self.all_from(store, true).await
    }

    async fn all_from<K, V>(&self, store: &str, stale: bool) -> Result<Vec<(K, V)>>
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        if let Some(answer) = self.global.all::<K, V>(store) {
            return answer;
        }
        self.ask(store, stale, |name, tasks| {
            let mut out = Vec::new();
            for t in tasks {
                if let Some(s) = t.context().key_value_store::<K, V>(name) {
                    out.extend(s.map_err(StreamsError::Topology)?.all()?);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Run `f` on every stream thread over its tasks (and standby tasks if `stale`) and gather
    /// the answers.
    async fn ask<T: Send + 'static>(
        &self,
        store: &str,
        stale: bool,
        f: impl Fn(&str, &mut dyn Iterator<Item = &mut crate::streams::task::Task>) -> Result<Vec<T>>
            + Send
            + Sync
            + 'static,
    ) -> Result<Vec<T>> {
        let f = Arc::new(f);
        let mut replies = Vec::new();
        for inbox in self.queries.lock().expect("queries lock").iter() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (f, name) = (f.clone(), store.to_string());
            let q: thread::Query = Box::new(move |active, standby| {
                let answer = if stale { f(&name, &mut active.chain(standby)) } else { f(&name, active) };
                let _ = tx.send(answer);
            });
            if inbox.send(q).is_ok() {
                replies.push(rx);
            }
        }
        let mut out = Vec::new();
        for r in replies {
            // A thread that stopped meanwhile answers nothing.
            if let Ok(answer) = r.await {
                out.extend(answer?);
            }
        }
        Ok(out)
    }

    /// Plan the topics (source partition counts, internal topics) and create the internal ones.
    async fn prepare_topics(&self) -> Result<internal::TopicPlan> {
        let client = Client::connect(ClientConfig::new(self.config.bootstrap_servers.clone())).await?;
        let plan = internal::plan(
            &client,
            &self.topology,
            &self.config.application_id,
            &self.internal_settings,
            &self.copartition_groups,
        )
        .await?;
        internal::check_copartitioned(&plan, &self.copartition_groups)?;
        internal::create_internal(&client, &plan, self.config.replication_factor).await?;
        Ok(plan)
    }

    /// Create missing internal topics and start the stream threads.
    pub async fn start(&mut self) -> Result<()> {
        if *self.state.lock().expect("state lock") != StreamsState::Created {
            return Err(StreamsError::Topology("start: this instance was already started".into()));
        }
        self.config.validate()?;
        // A broker of a cluster may die while the topics are looked up or created: try again
        // (through another broker) for up to a minute, as Kafka Streams' admin calls do.
        let minute = std::time::Duration::from_secs(60);
        let plan = retry::retrying(&(), minute, "preparing the application's topics", || self.prepare_topics()).await?;
        let plan = Arc::new(plan);
        self.plan = Some(plan.clone());
        // Global stores catch up with their topics before any task can read them.
        self.global = global::start(global::GlobalContext {
            config: self.config.clone(),
            topology: self.topology.clone(),
            shutdown: self.shutdown.clone(),
            first_error: self.first_error.clone(),
            io: tokio::runtime::Handle::current(),
        })
        .await?;
        let globals = self.global.stores.clone();
        let process_id = uuid_like();
        let spawn_thread = {
            let (config, topology, shutdown, restorations) =
                (self.config.clone(), self.topology.clone(), self.shutdown.clone(), self.restorations.clone());
            let inboxes = self.queries.clone();
            let rebalancing = self.rebalancing.clone();
            let io = tokio::runtime::Handle::current();
            let view = self.view.clone();
            move |index: usize| {
                let (tx, queries) = std::sync::mpsc::channel();
                {
                    let mut q = inboxes.lock().expect("queries lock");
                    if q.len() <= index {
                        q.resize_with(index + 1, || std::sync::mpsc::channel().0);
                    }
                    q[index] = tx;
                }
                let cx = thread::ThreadContext {
                    config: config.clone(),
                    topology: topology.clone(),
                    plan: plan.clone(),
                    index,
                    process_id: process_id.clone(),
                    shutdown: shutdown.clone(),
                    restorations: restorations.clone(),
                    queries,
                    rebalancing: rebalancing.clone(),
                    io: io.clone(),
                    view: view.clone(),
                    globals: globals.clone(),
                };
                thread::spawn(cx)
                    .map_err(|e| StreamsError::Topology(format!("cannot start stream thread {index}: {e}")))
            }
        };
        {
            let mut threads = self.threads.lock().expect("threads lock");
            for index in 0..self.config.num_stream_threads {
                threads.push(Some(spawn_thread(index)?));
            }
        }
        // The supervisor applies the uncaught-error policy to threads that stop on their own.
        let (threads, shutdown, on_failure, replaced, first_error) = (
            self.threads.clone(),
            self.shutdown.clone(),
            self.on_failure,
            self.replaced.clone(),
            self.first_error.clone(),
        );
        let (state, listener, rebalancing) = (self.state.clone(), self.listener.clone(), self.rebalancing.clone());
        self.set_state(StreamsState::Rebalancing);
        self.supervisor = Some(tokio::spawn(async move {
            while !shutdown.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = *state.lock().expect("state lock");
                if matches!(now, StreamsState::Running | StreamsState::Rebalancing) {
                    let next = if first_error.lock().expect("error lock").is_some() {
                        StreamsState::Error
                    } else if rebalancing.load(Ordering::Acquire) > 0 {
                        StreamsState::Rebalancing
                    } else {
                        StreamsState::Running
                    };
                    set_state(&state, &listener, next);
                }
                let mut failed = Vec::new();
                {
                    let mut t = threads.lock().expect("threads lock");
                    for (i, slot) in t.iter_mut().enumerate() {
                        if slot.as_ref().is_some_and(|h| h.is_finished()) && !shutdown.load(Ordering::Acquire) {
                            let h = slot.take().expect("checked");
                            let e = match h.join() {
                                Ok(Ok(())) => StreamsError::Topology(format!("stream thread {i} stopped")),
                                Ok(Err(e)) => e,
                                Err(_) => StreamsError::Topology(format!("stream thread {i} panicked")),
                            };
                            failed.push((i, e));
                        }
                    }
                }
                for (i, e) in failed {
                    match on_failure {
                        ThreadFailure::ReplaceThread => {
                            tracing::warn!(thread = i, error = %e, "stream thread failed; replacing it");
                            match spawn_thread(i) {
                                Ok(h) => {
                                    threads.lock().expect("threads lock")[i] = Some(h);
                                    replaced.fetch_add(1, Ordering::AcqRel);
                                }
                                Err(e2) => {
                                    first_error.lock().expect("error lock").get_or_insert(e2);
                                    shutdown.store(true, Ordering::Release);
                                }
                            }
                        }
                        ThreadFailure::ShutdownClient => {
                            tracing::error!(thread = i, error = %e, "stream thread failed; shutting this instance down");
                            first_error.lock().expect("error lock").get_or_insert(e);
                            shutdown.store(true, Ordering::Release);
                        }
                    }
                }
            }
        }));
        Ok(())
    }

    /// Stop the threads: each commits what it processed and leaves the group. Waits up to
    /// `timeout`; returns the first thread error.
    pub async fn close(mut self, timeout: Duration) -> Result<()> {
        self.set_state(StreamsState::PendingShutdown);
        self.shutdown.store(true, Ordering::Release);
        if let Some(s) = self.supervisor.take() {
            let _ = s.await;
        }
        let deadline = Instant::now() + timeout;
        let mut first_error = self.first_error.lock().expect("error lock").take();
        let handles: Vec<_> = self.threads.lock().expect("threads lock").iter_mut().filter_map(Option::take).collect();
        for h in handles {
            while !h.is_finished() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !h.is_finished() {
                first_error.get_or_insert(StreamsError::Topology(
                    "a stream thread did not stop within the close timeout".into(),
                ));
                continue;
            }
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(StreamsError::Topology("a stream thread panicked".into()));
                }
            }
        }
        if let Err(e) = self.global.join(deadline).await {
            first_error.get_or_insert(e);
        }
        match first_error {
            None => {
                self.set_state(StreamsState::NotRunning);
                Ok(())
            }
            Some(e) => {
                self.set_state(StreamsState::Error);
                Err(e)
            }
        }
    }
}

fn set_state(state: &Mutex<StreamsState>, listener: &Option<Arc<Listener>>, new: StreamsState) {
    let old = std::mem::replace(&mut *state.lock().expect("state lock"), new);
    if old != new {
        if let Some(l) = listener {
            l(new, old);
        }
    }
}

/// A process id for transactional ids: unique enough per process start.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}
