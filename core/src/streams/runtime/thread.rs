//! A stream thread: a dedicated OS thread that owns its consumer (a member of the application's
//! group), its producer (transactional under exactly-once) and its tasks with their stores. No
//! locks on the per-record path; the thread runs a single-threaded tokio runtime for its I/O.
//!
//! Loop: poll; apply rebalance events; process each record in its task, sending what sinks and
//! change-logging stores queued; run wall-clock punctuations; commit every `commit.interval.ms`.
//!
//! Commit, exactly-once: stores flush their changes to the changelog, the input offsets go into
//! the transaction with the consumer's group metadata, the transaction commits, then each store
//! applies its staged writes with its changelog offset. At-least-once: the same without a
//! transaction, the offsets committed after the producer flushed.
//!
//! Rebalancing is cooperative ([`super::assignor`]): tasks that stay keep running. Before
//! partitions are given up the thread commits (so their next owner starts where this one
//! stopped) and only then lets the group go on (`Consumer::defer_revocations`). Newly assigned
//! tasks restore their stores and start at their committed offsets. Partitions lost without a
//! rebalance (the member was dropped from the group) cannot be committed: the open transaction
//! is aborted, stores drop their staged writes, and every partition still owned is rewound to
//! its last committed offset, so the work since the last commit is redone (exactly-once: its
//! effects were never visible; at-least-once: a repeat). Standby tasks are kept in
//! [`super::standby`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::client::{Client, ClientConfig};
use crate::consumer::{Consumer, ConsumerConfig, RebalanceListener};
use crate::producer::{DeliveryFuture, Producer, ProducerConfig};
use crate::records::ProducerRecord;
use crate::streams::error::{Result, StreamsError};
use crate::streams::task::{Task, TaskId};
use crate::streams::topology::{TaskSettings, Topology};

use super::assignor::{AssignmentInfo, ClusterView, StreamsAssignor, SubscriptionInfo};
use super::collector::Outbox;
use super::config::{OnError, StreamsConfig};
use super::internal::TopicPlan;
use super::queues::{PartitionQueues, Queued};
use super::restore::{restore_task, RestoreStats};
use super::standby::{build_task, Standbys};
use crate::streams::timestamp::{extractor_by_name, RecordView, TimestampExtractor};

/// One store restored when a task was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restoration {
    /// The task.
    pub task: TaskId,
    /// The store.
    pub store: String,
    /// What was replayed.
    pub stats: RestoreStats,
    /// The stream thread (0-based) that opened the task.
    pub thread: usize,
}

type TopicPartition = (String, i32);

/// Rebalance events recorded by the consumer's listener, applied by the thread after `poll`.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<Event>>>);

enum Event {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

impl RebalanceListener for Events {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().expect("events lock").push(Event::Assigned(partitions.to_vec()));
    }
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().expect("events lock").push(Event::Revoked(partitions.to_vec()));
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().expect("events lock").push(Event::Lost(partitions.to_vec()));
    }
}

/// An interactive query: runs on the stream thread, between polls, over its active tasks and
/// then its standby tasks.
pub(crate) type Query =
    Box<dyn for<'a> FnOnce(&mut dyn Iterator<Item = &'a mut Task>, &mut dyn Iterator<Item = &'a mut Task>) + Send>;

/// What a stream thread needs from its application.
pub(crate) struct ThreadContext {
    pub(crate) config: Arc<StreamsConfig>,
    pub(crate) topology: Arc<Topology>,
    pub(crate) plan: Arc<TopicPlan>,
    pub(crate) index: usize,
    pub(crate) process_id: String,
    pub(crate) shutdown: Arc<AtomicBool>,
    pub(crate) restorations: Arc<Mutex<Vec<Restoration>>>,
    pub(crate) queries: std::sync::mpsc::Receiver<Query>,
    /// Threads between a rebalance and running tasks (the instance's `Rebalancing` state).
    pub(crate) rebalancing: Arc<std::sync::atomic::AtomicUsize>,
    /// The application's runtime: the clients' background tasks (the producer's sender, the
    /// consumer's fetcher and group coordinator, connections) run there, so records go out and
    /// come in while the stream thread processes.
    pub(crate) io: tokio::runtime::Handle,
    /// The instance's view of which host runs which tasks (the assignor keeps it).
    pub(crate) view: Arc<RwLock<ClusterView>>,
    /// The instance's global stores (every task can read them).
    pub(crate) globals: crate::streams::global::GlobalStores,
}

struct Owned {
    task: Task,
    /// Next offset to commit per input partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Polled records waiting, per partition.
    queues: PartitionQueues,
}

struct Thread {
    cx: ThreadContext,
    consumer: Consumer,
    producer: Producer,
    client: Arc<Client>,
    outbox: Outbox,
    events: Events,
    tasks: BTreeMap<TaskId, Owned>,
    in_txn: bool,
    dirty: bool,
    /// Sends of changelog records since the last commit: (topic, partition) -> deliveries.
    changelog: HashMap<(Arc<str>, i32), Vec<DeliveryFuture>>,
    outputs: Vec<DeliveryFuture>,
    last_commit: Instant,
    /// When repartition topics were last purged up to the committed offsets.
    last_purge: Instant,
    /// The outbox's second buffer (swapped in and out, so sends allocate nothing per record).
    spare: Vec<super::collector::Outgoing>,
    /// What this thread reports to the group leader.
    me: Arc<Mutex<SubscriptionInfo>>,
    /// The assignment the assignor received, until the thread takes it up.
    received: Arc<Mutex<Option<AssignmentInfo>>>,
    /// The standby tasks the last assignment asked for.
    standby_wanted: BTreeSet<TaskId>,
    standbys: Standbys,
    /// `default.timestamp.extractor`.
    default_extractor: Arc<dyn TimestampExtractor>,
    /// Partitions paused because their task's queue is full.
    paused: HashSet<TopicPartition>,
}

/// Records a task queues per partition before that partition is paused (Kafka Streams'
/// `buffered.records.per.partition`).
const BUFFERED_PER_PARTITION: usize = 1000;

/// Run a stream thread until shutdown; returns the error that stopped it, if any.
pub(crate) fn spawn(cx: ThreadContext) -> std::io::Result<std::thread::JoinHandle<Result<()>>> {
    let name = format!("{}-StreamThread-{}", cx.config.application_id, cx.index + 1);
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamsError::Topology(format!("{name}: cannot start its runtime: {e}")))?;
        let r = rt.block_on(async {
            let mut t = Thread::new(cx).await?;
            let r = t.run().await;
            t.close(r.is_ok()).await;
            r
        });
        if let Err(e) = &r {
            tracing::error!(thread = %name, error = %e, "stream thread stopped");
        }
        r
    })
}

impl Thread {
    async fn new(cx: ThreadContext) -> Result<Self> {
        // Clients made here spawn their background tasks on the application's runtime.
        let io = cx.io.clone();
        let _io = io.enter();
        let c = &cx.config;
        let thread = format!("{}-StreamThread-{}", c.application_id, cx.index + 1);
        let mut cprops: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), c.bootstrap_servers.clone()),
            ("group.id".into(), c.application_id.clone()),
            ("client.id".into(), format!("{thread}-consumer")),
            ("enable.auto.commit".into(), "false".into()),
            ("auto.offset.reset".into(), "earliest".into()),
            ("isolation.level".into(), "read_committed".into()),
        ];
        cprops.extend(c.consumer.iter().cloned());
        let me = SubscriptionInfo {
            process_id: cx.process_id.clone(),
            host: c.application_server.clone(),
            on_disk: tasks_on_disk(c),
            ..SubscriptionInfo::default()
        };
        let stateful = (0..cx.topology.subtopologies().len() as u32)
            .filter(|s| cx.topology.stores_of(*s).iter().any(|(_, logged)| *logged))
            .collect();
        let assignor = StreamsAssignor::new(cx.plan.clone(), stateful, c.num_standby_replicas, me, cx.view.clone());
        let (me, received) = (assignor.me.clone(), assignor.received.clone());
        let config = ConsumerConfig::from_properties(cprops)?.with_assignor(Arc::new(assignor));
        let mut consumer = Consumer::new(config).await?;
        consumer.defer_revocations();
        let events = Events::default();
        consumer.set_rebalance_listener(events.clone());
        match cx.plan.subscription_pattern() {
            // Pattern sources: topics that appear later join the subscription.
            Some(pattern) => consumer.subscribe_pattern(&pattern)?,
            None => {
                let mut topics: Vec<String> = cx.plan.subtopology_of.keys().cloned().collect();
                topics.sort();
                consumer.subscribe(topics)?;
            }
        }
        let mut pprops: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), c.bootstrap_servers.clone()),
            ("client.id".into(), format!("{thread}-producer")),
            ("acks".into(), "all".into()),
            ("linger.ms".into(), "5".into()),
        ];
        if c.exactly_once() {
            pprops
                .push(("transactional.id".into(), format!("{}-{}-{}", c.application_id, cx.process_id, cx.index + 1)));
        }
        pprops.extend(c.producer.iter().cloned());
        let producer = Producer::new(ProducerConfig::from_properties(pprops)?).await?;
        if c.exactly_once() {
            producer.init_transactions().await?;
        }
        let client = Arc::new(Client::connect(ClientConfig::new(c.bootstrap_servers.clone())).await?);
        let outbox = Outbox::new(cx.plan.partitions.clone());
        let standbys = Standbys::new(cx.config.clone(), cx.topology.clone(), format!("{thread}-standby-consumer"));
        let default_extractor = extractor_by_name(&cx.config.default_timestamp_extractor).ok_or_else(|| {
            StreamsError::Topology(format!(
                "default.timestamp.extractor={}: not a built-in extractor",
                cx.config.default_timestamp_extractor
            ))
        })?;
        Ok(Self {
            default_extractor,
            paused: HashSet::new(),
            me,
            received,
            standby_wanted: BTreeSet::new(),
            standbys,
            cx,
            consumer,
            producer,
            client,
            outbox,
            events,
            tasks: BTreeMap::new(),
            in_txn: false,
            dirty: false,
            changelog: HashMap::new(),
            outputs: Vec::new(),
            last_commit: Instant::now(),
            last_purge: Instant::now(),
            spare: Vec::new(),
        })
    }

    async fn run(&mut self) -> Result<()> {
        // Until the first assignment is applied, this thread is rebalancing.
        let mut joining = Some(Rebalancing::new(&self.cx.rebalancing));
        let interval = self.cx.config.commit_interval();
        while !self.cx.shutdown.load(Ordering::Acquire) {
            let mut records = self.consumer.poll(self.cx.config.poll).await?;
            while let Ok(q) = self.cx.queries.try_recv() {
                q(&mut self.tasks.values_mut().map(|o| &mut o.task), &mut self.standbys.tasks.values_mut());
            }
            let events: Vec<Event> = std::mem::take(&mut *self.events.0.lock().expect("events lock"));
            let received = self.received.lock().expect("assignment lock").take();
            if !events.is_empty() || received.is_some() {
                let _busy = Rebalancing::new(&self.cx.rebalancing);
                match self.rebalance(events, received).await? {
                    // What this poll returned predates the rewind: it is fetched again.
                    Rewound::All => {
                        drop(joining.take());
                        continue;
                    }
                    // Newly assigned partitions start at their committed offsets.
                    Rewound::Only(new) => records.retain(|r| !new.contains(&(r.topic.to_string(), r.partition))),
                }
                drop(joining.take());
            }
            self.standbys.apply_fetched().await?;
            self.route(records).await?;
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            let now = Instant::now();
            for id in ids {
                while let Some((topic, partition, queued)) =
                    self.tasks.get_mut(&id).and_then(|o| o.queues.next(self.cx.config.max_task_idle, now))
                {
                    self.process_one(id, &topic, partition, queued).await?;
                }
            }
            if !self.cx.config.max_task_idle.is_zero() {
                self.pause_full_queues();
            }
            let now = wall_clock_ms();
            for owned in self.tasks.values_mut() {
                if self.cx.config.exactly_once() && !self.in_txn {
                    // A punctuation may write: it needs a transaction too.
                    self.producer.begin_transaction()?;
                    self.in_txn = true;
                }
                owned.task.advance_wall_clock(now)?;
            }
            self.send_queued().await?;
            if self.dirty && self.last_commit.elapsed() >= interval && !self.commit_or_abort().await? {
                self.rewind_all().await?;
            }
        }
        if self.dirty {
            // Aborted or not, the next owner starts from the last commit.
            self.commit_or_abort().await?;
        }
        Ok(())
    }

    /// Commit, or, if the group moved on without this member meanwhile (the transaction's
    /// offsets carry a stale generation: Kafka Streams' `TaskMigratedException`), abort
    /// everything since the last commit and return false: the caller rewinds to the committed
    /// offsets, and the consumer rejoins the group on its own.
    async fn commit_or_abort(&mut self) -> Result<bool> {
        match self.commit().await {
            Ok(()) => Ok(true),
            Err(StreamsError::Client(e)) if migrated(&e) => {
                tracing::warn!(error = %e, "the group moved on while committing; aborting back to the last commit");
                self.abort_uncommitted().await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// After an abort: every owned partition starts again at its committed offset, and whatever
    /// was fetched or queued past it is dropped.
    async fn rewind_all(&mut self) -> Result<()> {
        let all = self.consumer.assignment();
        self.rewind(&all).await?;
        for owned in self.tasks.values_mut() {
            owned.positions.clear();
            owned.queues.clear();
        }
        Ok(())
    }

    /// Tasks waiting for some partitions (`max.task.idle.ms`) keep what others delivered: stop
    /// fetching a partition with more than `BUFFERED_PER_PARTITION` records waiting, and go on
    /// once its queue is drained.
    fn pause_full_queues(&mut self) {
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for tp in self.consumer.assignment() {
            let Some(sub) = self.cx.plan.subtopology(&tp.0) else { continue };
            let waiting = self
                .tasks
                .get(&TaskId { subtopology: sub, partition: tp.1 })
                .map_or(0, |o| o.queues.len_of(&tp.0, tp.1));
            match (waiting > BUFFERED_PER_PARTITION, self.paused.contains(&tp)) {
                (true, false) => pause.push(tp),
                (false, true) => resume.push(tp),
                _ => {}
            }
        }
        for tp in &resume {
            self.paused.remove(tp);
        }
        self.paused.extend(pause.iter().cloned());
        self.consumer.pause(&pause);
        self.consumer.resume(&resume);
    }

    /// Hand polled records to their tasks, with the timestamps their extractors give them: at
    /// once when the task reads one partition and has nothing waiting, else through its queues.
    async fn route(&mut self, records: Vec<crate::consumer::PolledRecord>) -> Result<()> {
        for r in records {
            let Some(sub) = self.cx.plan.subtopology(&r.topic) else { continue };
            let id = TaskId { subtopology: sub, partition: r.partition };
            let Some(owned) = self.tasks.get_mut(&id) else { continue };
            let rec = r.record;
            let view = RecordView {
                topic: &r.topic,
                partition: r.partition,
                offset: rec.offset,
                key: rec.key.as_deref(),
                value: rec.value.as_deref(),
                timestamp: rec.timestamp,
            };
            let time = owned.queues.partition_time(&r.topic, r.partition);
            let extracted = match owned.task.extract_timestamp(&view, time) {
                Some(ts) => ts,
                None => self.default_extractor.extract(&view, time),
            };
            let ts = match extracted {
                Ok(ts) => ts,
                Err(e) => {
                    self.handle_error(e, &r.topic, r.partition, &rec)?;
                    -1
                }
            };
            let Some(owned) = self.tasks.get_mut(&id) else { continue };
            if owned.queues.bypass(&r.topic, r.partition, ts) {
                self.process_one(id, &r.topic, r.partition, Queued { timestamp: ts, record: rec }).await?;
            } else {
                owned.queues.push(&r.topic, r.partition, ts, rec);
            }
        }
        Ok(())
    }

    /// Process one queued record of task `id` (a negative timestamp: skip it) and send what it
    /// produced.
    async fn process_one(&mut self, id: TaskId, topic: &Arc<str>, partition: i32, queued: Queued) -> Result<()> {
        let Some(owned) = self.tasks.get_mut(&id) else { return Ok(()) };
        let rec = queued.record;
        let result = if queued.timestamp < 0 {
            Ok(())
        } else {
            if self.cx.config.exactly_once() && !self.in_txn {
                self.producer.begin_transaction()?;
                self.in_txn = true;
            }
            owned.task.process(
                topic,
                partition,
                rec.offset,
                rec.key.as_deref(),
                rec.value.as_deref(),
                queued.timestamp,
                rec.headers.clone(),
            )
        };
        // No allocation per record: the position's entry exists after a partition's first record.
        match owned.positions.iter_mut().find(|((t, p), _)| t.as_str() == topic.as_ref() && *p == partition) {
            Some((_, next)) => *next = rec.offset + 1,
            None => {
                owned.positions.insert((topic.to_string(), partition), rec.offset + 1);
            }
        }
        // This task's stores hand over their changes; sinks already queued their records.
        for store in owned.task.context().state_stores() {
            store.send_changelog(&mut self.outbox)?;
        }
        self.dirty = true;
        if let Err(e) = result {
            self.handle_error(e, topic, partition, &rec)?;
        }
        self.send_outbox().await
    }

    /// A record failed in its task: fail the thread, or (as the handler for its kind says) log
    /// it, queue it for the dead-letter topic and go on.
    fn handle_error(
        &mut self,
        e: StreamsError,
        topic: &str,
        partition: i32,
        rec: &crate::records::ConsumerRecord,
    ) -> Result<()> {
        let c = &self.cx.config;
        let (policy, kind) = match &e {
            StreamsError::Deserialization { .. } => (c.on_deserialization_error, "deserialization"),
            StreamsError::Processing { .. } | StreamsError::Store(_) | StreamsError::Serde(_) => {
                (c.on_processing_error, "processing")
            }
            _ => return Err(e),
        };
        if policy == OnError::LogAndFail {
            tracing::error!(topic, partition, offset = rec.offset, error = %e, "{kind} error; stopping (set {kind}.exception.handler=log_and_continue to skip such records)");
            return Err(e);
        }
        tracing::warn!(topic, partition, offset = rec.offset, error = %e, "{kind} error; record skipped");
        if let Some(dlq) = &c.dead_letter_topic {
            let mut headers = rec.headers.clone();
            let h = |k: &str, v: String| (format!("__streams.errors.{k}"), Some(bytes::Bytes::from(v)));
            headers.push(h("exception", kind.to_string()));
            headers.push(h("message", e.to_string()));
            headers.push(h("topic", topic.to_string()));
            headers.push(h("partition", partition.to_string()));
            headers.push(h("offset", rec.offset.to_string()));
            let mut out = self.outbox.clone();
            crate::streams::task::RecordCollector::send(
                &mut out,
                "dead-letter-queue",
                dlq,
                None,
                rec.key.clone(),
                rec.value.clone(),
                rec.timestamp,
                headers,
            )?;
        }
        Ok(())
    }

    /// An output record could not be sent: fail the thread, or (as
    /// `production.exception.handler` says) log it and go on. Only errors of the record itself
    /// (too large, invalid) can be skipped, and under exactly-once only before the record joined
    /// the transaction: a transaction with a failed record cannot commit. Changelog records are
    /// never skipped (the store would not match its changelog).
    fn production_error(&mut self, e: crate::error::Error, topic: &str, delivered: bool) -> Result<()> {
        let record_error = matches!(e.code(), Some(2 | 10 | 18 | 87));
        let may_skip = record_error && !(delivered && self.cx.config.exactly_once());
        if !may_skip || self.cx.config.on_production_error == OnError::LogAndFail {
            tracing::error!(topic, error = %e, "cannot send an output record; stopping (production.exception.handler=log_and_continue skips records that are too large or invalid)");
            return Err(e.into());
        }
        tracing::warn!(topic, error = %e, "cannot send an output record; skipped (production.exception.handler)");
        Ok(())
    }

    /// Send what sinks and every task's stores queued.
    async fn send_queued(&mut self) -> Result<()> {
        for owned in self.tasks.values_mut() {
            for store in owned.task.context().state_stores() {
                store.send_changelog(&mut self.outbox)?;
            }
        }
        self.send_outbox().await
    }

    /// Send what is in the outbox.
    async fn send_outbox(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.spare);
        self.outbox.swap_into(&mut batch);
        for o in batch.drain(..) {
            let rec = ProducerRecord { key: o.key, value: o.value, headers: o.headers, timestamp: Some(o.timestamp) };
            let f = match self.producer.send(&o.topic, o.partition, rec).await {
                Ok(f) => f,
                // Refused before it joined a batch (or the transaction): it may be skipped.
                Err(e) if !o.changelog => {
                    self.production_error(e, &o.topic, false)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match (o.changelog, o.partition) {
                (true, Some(p)) => self.changelog.entry((o.topic, p)).or_default().push(f),
                _ => self.outputs.push(f),
            }
        }
        self.spare = batch;
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        for owned in self.tasks.values_mut() {
            for store in owned.task.context().state_stores() {
                store.prepare_commit(&mut self.outbox)?;
            }
        }
        self.send_queued().await?;
        let offsets: BTreeMap<TopicPartition, i64> =
            self.tasks.values().flat_map(|o| o.positions.iter().map(|(tp, off)| (tp.clone(), *off))).collect();
        if self.cx.config.exactly_once() {
            if self.in_txn {
                let group = self.consumer.group_metadata()?;
                self.producer.send_offsets_to_transaction(&offsets, &group).await?;
                self.producer.commit_transaction().await?;
                self.in_txn = false;
            }
        } else {
            self.producer.flush().await;
        }
        for f in std::mem::take(&mut self.outputs) {
            if let Err(e) = f.await {
                self.production_error(e, "an output topic", true)?;
            }
        }
        // Each changelog partition's offset after this commit's records: the stores' checkpoints.
        let mut ends: HashMap<(Arc<str>, i32), i64> = HashMap::new();
        for (tp, futures) in self.changelog.drain() {
            let mut last = -1;
            for f in futures {
                last = last.max(f.await?.offset);
            }
            ends.insert(tp, last + 1);
        }
        if !self.cx.config.exactly_once() && !offsets.is_empty() {
            self.consumer.commit_offsets(&offsets).await?;
        }
        let app = &self.cx.config.application_id;
        for (id, owned) in self.tasks.iter_mut() {
            for store in owned.task.context().state_stores() {
                let tp: (Arc<str>, i32) = (Arc::from(format!("{app}-{}-changelog", store.name())), id.partition);
                store.commit(ends.get(&tp).copied())?;
            }
        }
        self.dirty = false;
        self.last_commit = Instant::now();
        if self.last_purge.elapsed() >= self.cx.config.repartition_purge_interval {
            self.last_purge = Instant::now();
            self.purge_repartition(&offsets);
        }
        Ok(())
    }

    /// Delete what this thread committed past in repartition topics (foreign-key joins'
    /// subscription topics too: every internal topic it reads) in the background: a failure
    /// only leaves the records for the next purge or retention.
    fn purge_repartition(&self, committed: &BTreeMap<TopicPartition, i64>) {
        let app = &self.cx.config.application_id;
        let purge: Vec<(TopicPartition, i64)> = committed
            .iter()
            .filter(|((t, _), _)| t.starts_with(app.as_str()) && !t.ends_with("-changelog"))
            .filter(|((t, _), _)| self.cx.plan.internal.iter().any(|i| &i.name == t))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if purge.is_empty() {
            return;
        }
        let client = self.client.clone();
        self.cx.io.spawn(async move {
            let admin = crate::client::Admin::new(&client);
            for ((topic, partition), offset) in purge {
                if let Err(e) = admin.delete_records(&topic, partition, offset).await {
                    tracing::debug!(topic, partition, offset, error = %e, "cannot purge a repartition topic");
                }
            }
        });
    }

    /// Apply an assignment change: commit and close what is revoked, abort and rewind if
    /// anything was lost, open what is new, keep the standbys the assignment asks for.
    async fn rebalance(&mut self, events: Vec<Event>, received: Option<AssignmentInfo>) -> Result<Rewound> {
        let mut new: HashSet<TopicPartition> = HashSet::new();
        let mut lost = false;
        for e in events {
            match e {
                Event::Revoked(parts) => {
                    // Commit first: the next owner starts from the committed offsets.
                    if (self.dirty || self.in_txn) && !self.commit_or_abort().await? {
                        lost = true;
                    }
                    self.close_tasks_of(&parts, "revoked");
                    self.consumer.confirm_revocations();
                }
                Event::Lost(parts) => {
                    self.abort_uncommitted().await?;
                    self.close_tasks_of(&parts, "lost");
                    self.consumer.confirm_revocations();
                    lost = true;
                }
                Event::Assigned(parts) => new.extend(parts),
            }
        }
        if let Some(info) = received {
            self.standby_wanted = info.standby;
        }
        let mut opened = Vec::new();
        for (t, p) in &new {
            let Some(sub) = self.cx.plan.subtopology(t) else { continue };
            let id = TaskId { subtopology: sub, partition: *p };
            if !self.tasks.contains_key(&id) {
                // A standby promoted here: its store is already (nearly) current.
                self.standbys.close_one(id);
                self.open_task(id).await?;
                opened.push(id);
            }
        }
        let active: BTreeSet<TaskId> = self.tasks.keys().copied().collect();
        self.standbys.reconcile(&self.standby_wanted, &active, &self.client, &self.outbox).await?;
        self.report();
        if lost {
            self.rewind_all().await?;
            return Ok(Rewound::All);
        }
        let rewind: Vec<TopicPartition> = new.iter().cloned().collect();
        self.rewind(&rewind).await?;
        Ok(Rewound::Only(new))
    }

    /// Abort the open transaction and everything staged since the last commit.
    async fn abort_uncommitted(&mut self) -> Result<()> {
        if self.in_txn {
            self.outbox.clear();
            self.producer.abort_transaction().await?;
            self.in_txn = false;
        }
        self.changelog.clear();
        self.outputs.clear();
        for owned in self.tasks.values_mut() {
            for store in owned.task.context().state_stores() {
                store.abort();
            }
        }
        self.dirty = false;
        Ok(())
    }

    /// Close the tasks reading any of `parts`.
    fn close_tasks_of(&mut self, parts: &[TopicPartition], why: &str) {
        let gone: Vec<TaskId> = self
            .tasks
            .keys()
            .copied()
            .filter(|id| {
                parts.iter().any(|(t, p)| *p == id.partition && self.cx.plan.subtopology(t) == Some(id.subtopology))
            })
            .collect();
        for id in gone {
            if let Some(mut owned) = self.tasks.remove(&id) {
                for store in owned.task.context().state_stores() {
                    if let Err(e) = store.flush() {
                        tracing::warn!(task = %id, store = store.name(), error = %e, "cannot flush store");
                    }
                }
                owned.task.close();
                tracing::info!(task = %id, "task closed ({why})");
            }
        }
    }

    /// Position `parts` at their committed offsets (or the start).
    async fn rewind(&mut self, parts: &[TopicPartition]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let committed = self.consumer.committed(parts).await?;
        let mut from_start = Vec::new();
        for tp in parts {
            match committed.get(tp).copied().flatten() {
                Some(o) => self.consumer.seek(tp, o)?,
                None => from_start.push(tp.clone()),
            }
        }
        if !from_start.is_empty() {
            self.consumer.seek_to(&from_start, true).await?;
        }
        Ok(())
    }

    /// Tell the group leader, at the next rebalance, what this thread runs and keeps.
    fn report(&self) {
        let mut me = self.me.lock().expect("assignor lock");
        me.active = self.tasks.keys().copied().collect();
        me.standby = self.standbys.tasks.keys().copied().collect();
        me.on_disk = tasks_on_disk(&self.cx.config);
    }

    async fn open_task(&mut self, id: TaskId) -> Result<()> {
        let settings = TaskSettings {
            application_id: self.cx.config.application_id.clone(),
            state_dir: self.cx.config.state_dir.clone(),
            exactly_once: self.cx.config.exactly_once(),
            global_stores: self.cx.globals.clone(),
        };
        // A task moving between threads of one process: the old owner may still hold its
        // stores' files for a moment.
        let mut task = build_task(&self.cx.topology, &settings, id, &self.outbox).await?;
        let stats = restore_task(
            &self.client,
            &mut task,
            &self.cx.config.application_id,
            &self.cx.plan.partitions,
            self.cx.config.task_timeout,
        )
        .await?;
        self.cx.restorations.lock().expect("restorations lock").extend(
            stats.into_iter().map(|(store, stats)| Restoration { task: id, store, stats, thread: self.cx.index }),
        );
        task.init()?;
        tracing::info!(task = %id, "task running");
        let inputs = self
            .cx
            .plan
            .subtopology_of
            .iter()
            .filter(|(t, s)| {
                **s == id.subtopology && self.cx.plan.partitions.get(*t).is_some_and(|n| id.partition < *n)
            })
            .count();
        self.tasks.insert(id, Owned { task, positions: BTreeMap::new(), queues: PartitionQueues::new(inputs) });
        Ok(())
    }

    async fn close(mut self, clean: bool) {
        if !clean && self.in_txn {
            let _ = self.producer.abort_transaction().await;
        }
        for (id, mut owned) in std::mem::take(&mut self.tasks) {
            for store in owned.task.context().state_stores() {
                if let Err(e) = store.flush() {
                    tracing::warn!(task = %id, store = store.name(), error = %e, "cannot flush store at close");
                }
            }
            owned.task.close();
        }
        self.standbys.close().await;
        self.producer.close().await;
        if let Err(e) = self.consumer.close().await {
            tracing::debug!(error = %e, "consumer close");
        }
    }
}

/// What a rebalance did to positions.
enum Rewound {
    /// Every owned partition was rewound (something was lost): drop what the last poll returned.
    All,
    /// Only these newly assigned partitions were positioned.
    Only(HashSet<TopicPartition>),
}

/// Whether a commit failed because this member's group generation is over (Kafka's
/// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID on the
/// transaction's offsets): its work since the last commit belongs to no one and is aborted.
fn migrated(e: &crate::error::Error) -> bool {
    use crate::consumer::protocol::codes::{
        FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
    };
    matches!(e.code(), Some(ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID | REBALANCE_IN_PROGRESS | FENCED_INSTANCE_ID))
}

/// Tasks with a directory under `<state.dir>/<application.id>/` (named `<sub>_<partition>`),
/// reported so the leader prefers this instance for them.
fn tasks_on_disk(config: &StreamsConfig) -> BTreeMap<TaskId, i64> {
    let Ok(dir) = std::fs::read_dir(config.state_dir.join(&config.application_id)) else { return BTreeMap::new() };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name().into_string().ok()?;
        let (s, p) = name.split_once('_')?;
        Some((TaskId { subtopology: s.parse().ok()?, partition: p.parse().ok()? }, -1))
    })
    .collect()
}

/// Counts a thread as rebalancing while it lives.
struct Rebalancing(Arc<std::sync::atomic::AtomicUsize>);

impl Rebalancing {
    fn new(n: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n.clone())
    }
}

impl Drop for Rebalancing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
