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

mod collector;
mod config;
mod internal;
mod restore;
mod thread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::{
    OnError, ProcessingGuarantee, StreamsConfig, DEFAULT_COMMIT_INTERVAL_ALOS, DEFAULT_COMMIT_INTERVAL_EOS,
    DEFAULT_NUM_STREAM_THREADS,
};
pub use internal::{InternalTopic, TopicPlan};
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

/// A running (or runnable) streams application instance.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    shutdown: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<()>>>,
    state: Arc<Mutex<StreamsState>>,
    listener: Option<Arc<Listener>>,
    plan: Option<Arc<TopicPlan>>,
    restorations: Arc<Mutex<Vec<Restoration>>>,
    copartition_groups: Vec<std::collections::BTreeSet<String>>,
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
            threads: Vec::new(),
            state: Arc::new(Mutex::new(StreamsState::Created)),
            listener: None,
            plan: None,
            restorations: Arc::default(),
            copartition_groups: Vec::new(),
        }
    }

    /// Groups of topics that must have equal partition counts (the DSL's
    /// `BuiltTopology::copartition_groups`: joins, cogroup); checked at start.
    pub fn with_copartition_groups(mut self, groups: Vec<std::collections::BTreeSet<String>>) -> Self {
        self.copartition_groups = groups;
        self
    }

    /// Called with (new, old) on every state change.
    pub fn set_state_listener(&mut self, f: impl Fn(StreamsState, StreamsState) + Send + Sync + 'static) {
        self.listener = Some(Arc::new(Box::new(f)));
    }

    /// The current state.
    pub fn state(&self) -> StreamsState {
        let s = *self.state.lock().expect("state lock");
        if s == StreamsState::Running && self.threads.iter().any(|t| t.is_finished()) {
            return StreamsState::Error;
        }
        s
    }

    fn set_state(&self, new: StreamsState) {
        let old = std::mem::replace(&mut *self.state.lock().expect("state lock"), new);
        if old != new {
            if let Some(l) = &self.listener {
                l(new, old);
            }
        }
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

    /// Create missing internal topics and start the stream threads.
    pub async fn start(&mut self) -> Result<()> {
        if *self.state.lock().expect("state lock") != StreamsState::Created {
            return Err(StreamsError::Topology("start: this instance was already started".into()));
        }
        self.config.validate()?;
        let client = Client::connect(ClientConfig::new(self.config.bootstrap_servers.clone())).await?;
        let plan = internal::plan(&client, &self.topology, &self.config.application_id).await?;
        internal::check_copartitioned(&plan, &self.copartition_groups)?;
        internal::create_internal(&client, &plan, self.config.replication_factor).await?;
        let plan = Arc::new(plan);
        self.plan = Some(plan.clone());
        let process_id = uuid_like();
        for index in 0..self.config.num_stream_threads {
            let cx = thread::ThreadContext {
                config: self.config.clone(),
                topology: self.topology.clone(),
                plan: plan.clone(),
                index,
                process_id: process_id.clone(),
                shutdown: self.shutdown.clone(),
                restorations: self.restorations.clone(),
            };
            let handle = thread::spawn(cx)
                .map_err(|e| StreamsError::Topology(format!("cannot start stream thread {index}: {e}")))?;
            self.threads.push(handle);
        }
        self.set_state(StreamsState::Running);
        Ok(())
    }

    /// Stop the threads: each commits what it processed and leaves the group. Waits up to
    /// `timeout`; returns the first thread error.
    pub async fn close(mut self, timeout: Duration) -> Result<()> {
        self.set_state(StreamsState::PendingShutdown);
        self.shutdown.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        let mut first_error = None;
        for h in std::mem::take(&mut self.threads) {
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

/// A process id for transactional ids: unique enough per process start.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}
