//! Standby tasks: copies of other instances' task state, kept current by tailing the tasks'
//! changelogs (read_committed), so a task that moves here restores only the few records its
//! standby had not applied yet (`num.standby.replicas`).
//!
//! A stream thread owns its standbys and one consumer without a group that reads their
//! changelog partitions; between batches of active work the thread applies whatever that
//! consumer has prefetched, writing each batch with its changelog offset as the checkpoint. A
//! standby never processes records, sends nothing and is never committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::client::{Client, IsolationLevel, LATEST};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::streams::error::{Result, StreamsError};
use crate::streams::store::WriteOp;
use crate::streams::task::{Task, TaskId};
use crate::streams::topology::{TaskSettings, Topology};

use super::collector::Outbox;
use super::config::StreamsConfig;
use super::retry::retrying;

type TopicPartition = (String, i32);

/// A thread's standby tasks and the consumer feeding them.
pub(crate) struct Standbys {
    config: Arc<StreamsConfig>,
    topology: Arc<Topology>,
    /// Changelog topic -> (store, sub-topology).
    changelogs: HashMap<String, (String, u32)>,
    consumer: Option<Consumer>,
    client_id: String,
    pub(crate) tasks: BTreeMap<TaskId, Task>,
    /// Changelog records applied by standbys since the thread started.
    pub(crate) applied: u64,
}

impl Standbys {
    pub(crate) fn new(config: Arc<StreamsConfig>, topology: Arc<Topology>, client_id: String) -> Self {
        let app = &config.application_id;
        let subs = topology.subtopologies().len() as u32;
        let mut changelogs = HashMap::new();
        for s in 0..subs {
            for (store, logged) in topology.stores_of(s) {
                if logged {
                    changelogs.insert(format!("{app}-{store}-changelog"), (store, s));
                }
            }
        }
        Self { config, topology, changelogs, consumer: None, client_id, tasks: BTreeMap::new(), applied: 0 }
    }

    /// Keep standbys of exactly `wanted` minus `active` (a task runs or stands by here, never
    /// both): close the others, open the missing ones from their checkpoints.
    pub(crate) async fn reconcile(
        &mut self,
        wanted: &BTreeSet<TaskId>,
        active: &BTreeSet<TaskId>,
        client: &Client,
        outbox: &Outbox,
    ) -> Result<()> {
        let gone: Vec<TaskId> =
            self.tasks.keys().filter(|t| !wanted.contains(t) || active.contains(t)).copied().collect();
        for id in gone {
            self.close_one(id);
        }
        let mut seeks: Vec<(TopicPartition, i64)> = Vec::new();
        for id in wanted.difference(active) {
            if self.tasks.contains_key(id) {
                continue;
            }
            // Stateless sub-topologies have nothing to keep.
            if !self.changelogs.values().any(|(_, s)| *s == id.subtopology) {
                continue;
            }
            let mut task = self.build(*id, outbox).await?;
            for store in task.context().state_stores() {
                let changelog = format!("{}-{}-changelog", self.config.application_id, store.name());
                if !self.changelogs.contains_key(&changelog) {
                    continue;
                }
                let end = retrying(client, self.config.task_timeout, "a standby's changelog end", || {
                    client.list_offset_isolated(&changelog, id.partition, LATEST, IsolationLevel::ReadCommitted)
                })
                .await?;
                let from = match store.checkpoint()? {
                    Some(c) if c <= end => c,
                    Some(c) => {
                        tracing::warn!(store = store.name(), task = %id, checkpoint = c, end, "standby checkpoint past the changelog's end; rebuilding it");
                        store.clear()?;
                        0
                    }
                    None => 0,
                };
                seeks.push(((changelog, id.partition), from));
            }
            tracing::info!(task = %id, "standby task opened");
            self.tasks.insert(*id, task);
        }
        self.assign(seeks).await
    }

    /// Close a standby (its state stays on disk with its checkpoint).
    pub(crate) fn close_one(&mut self, id: TaskId) {
        if let Some(mut task) = self.tasks.remove(&id) {
            for store in task.context().state_stores() {
                if let Err(e) = store.flush() {
                    tracing::warn!(task = %id, store = store.name(), error = %e, "cannot flush standby store");
                }
            }
            task.close();
            tracing::info!(task = %id, "standby task closed");
        }
    }

    /// Apply what the changelog consumer has fetched (never waits).
    pub(crate) async fn apply_fetched(&mut self) -> Result<()> {
        let Some(consumer) = self.consumer.as_mut() else { return Ok(()) };
        if self.tasks.is_empty() {
            return Ok(());
        }
        let records = consumer.poll(Duration::ZERO).await?;
        if records.is_empty() {
            return Ok(());
        }
        // Batches per (task, store), in changelog order.
        let mut batches: BTreeMap<(TaskId, String), (Vec<WriteOp>, i64)> = BTreeMap::new();
        for r in records {
            let Some((store, sub)) = self.changelogs.get(r.topic.as_ref()) else { continue };
            let id = TaskId { subtopology: *sub, partition: r.partition };
            let e = batches.entry((id, store.clone())).or_insert_with(|| (Vec::new(), 0));
            e.1 = r.record.offset + 1;
            if let Some(k) = r.record.key {
                e.0.push((k, r.record.value));
            }
        }
        for ((id, name), (batch, next)) in batches {
            let Some(task) = self.tasks.get_mut(&id) else { continue };
            self.applied += batch.len() as u64;
            for store in task.context().state_stores() {
                if store.name() == name {
                    store.restore(batch, next)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Read exactly the open standbys' changelog partitions, new ones from `seeks`.
    async fn assign(&mut self, seeks: Vec<(TopicPartition, i64)>) -> Result<()> {
        let app = &self.config.application_id;
        let wanted: Vec<TopicPartition> = self
            .tasks
            .keys()
            .flat_map(|id| {
                self.changelogs
                    .iter()
                    .filter(move |(_, (_, s))| *s == id.subtopology)
                    .map(move |(topic, _)| (topic.clone(), id.partition))
            })
            .collect();
        if self.consumer.is_none() {
            if wanted.is_empty() {
                return Ok(());
            }
            let mut props: Vec<(String, String)> = vec![
                ("bootstrap.servers".into(), self.config.bootstrap_servers.clone()),
                ("client.id".into(), self.client_id.clone()),
                ("enable.auto.commit".into(), "false".into()),
                ("auto.offset.reset".into(), "earliest".into()),
                ("isolation.level".into(), "read_committed".into()),
            ];
            props.extend(self.config.consumer.iter().filter(|(k, _)| k.starts_with("fetch.")).cloned());
            self.consumer = Some(Consumer::new(ConsumerConfig::from_properties(props)?).await?);
        }
        let consumer = self.consumer.as_mut().expect("created above");
        consumer.assign(wanted)?;
        for (tp, offset) in seeks {
            consumer.seek(&tp, offset)?;
        }
        tracing::debug!(app = %app, standbys = self.tasks.len(), "standby changelogs assigned");
        Ok(())
    }

    async fn build(&self, id: TaskId, outbox: &Outbox) -> Result<Task> {
        let settings = TaskSettings {
            application_id: self.config.application_id.clone(),
            state_dir: self.config.state_dir.clone(),
            exactly_once: self.config.exactly_once(),
            // A standby runs no processor: it never reads a global store.
            global_stores: Default::default(),
        };
        build_task(&self.topology, &settings, id, outbox).await
    }

    /// Close every standby and the consumer.
    pub(crate) async fn close(&mut self) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.close_one(id);
        }
        if let Some(c) = self.consumer.take() {
            let _ = c.close().await;
        }
    }
}

/// Build a task's processors and stores, waiting a moment for a store another thread of this
/// instance is still closing (its files are locked until then).
pub(crate) async fn build_task(
    topology: &Topology,
    settings: &TaskSettings,
    id: TaskId,
    outbox: &Outbox,
) -> Result<Task> {
    let mut attempt = 0;
    loop {
        match topology.build_task_with(settings, id, Box::new(outbox.clone())) {
            Ok(t) => return Ok(t),
            Err(e) if attempt < 50 => {
                attempt += 1;
                tracing::debug!(task = %id, error = %e, "task not ready; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(StreamsError::Topology(format!("cannot open task {id} after {attempt} attempts: {e}")))
            }
        }
    }
}
