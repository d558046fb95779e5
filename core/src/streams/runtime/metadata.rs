//! Which instance hosts what: the metadata interactive queries need to reach a key's store on
//! another instance (Kafka Streams' `queryMetadataForKey`, `metadataForAllStreamsClients`).
//!
//! Every assignment carries the tasks of each instance that set `application.server`; the
//! assignor keeps the latest in the instance's [`ClusterView`]. A key's partition is the default
//! partitioner's (murmur2 of the serialized key) over the partition count of the sub-topology
//! holding the store, as the records that built the store were partitioned.

use std::collections::BTreeSet;

use crate::producer::partitioner::partition_for_key;
use crate::streams::error::{Result, StreamsError};
use crate::streams::serde::Serde;
use crate::streams::task::TaskId;

use super::KafkaStreams;

/// Where a key of a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The instance (`application.server`) running the key's task; `None` while the group is
    /// rebalancing or when that instance set no `application.server`.
    pub active_host: Option<String>,
    /// Instances keeping a standby replica of the task.
    pub standby_hosts: Vec<String>,
    /// The key's partition (and task partition).
    pub partition: i32,
}

/// One instance of the application, as the group's last assignment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsMetadata {
    /// Its `application.server`.
    pub host: String,
    /// Stores of the tasks it runs.
    pub state_store_names: BTreeSet<String>,
    /// Tasks it runs.
    pub active_tasks: BTreeSet<TaskId>,
    /// Tasks it keeps standby replicas of.
    pub standby_tasks: BTreeSet<TaskId>,
    /// Input partitions of the tasks it runs.
    pub topic_partitions: BTreeSet<(String, i32)>,
}

impl KafkaStreams {
    /// Where `key` (serialized) of `store` lives. Errors if the instance has not started or the
    /// topology has no such store.
    pub fn query_metadata_for_key(&self, store: &str, key: &[u8]) -> Result<KeyQueryMetadata> {
        let plan = self.plan.as_ref().ok_or_else(|| not_started("query_metadata_for_key"))?;
        let sub = self.subtopology_of_store(store)?;
        let partitions = plan.tasks[sub as usize];
        let task = TaskId { subtopology: sub, partition: partition_for_key(key, partitions) };
        let view = self.view.read().expect("view lock");
        let active_host = view.hosts.iter().find(|(_, t)| t.active.contains(&task)).map(|(h, _)| h.clone());
        let standby_hosts =
            view.hosts.iter().filter(|(_, t)| t.standby.contains(&task)).map(|(h, _)| h.clone()).collect();
        Ok(KeyQueryMetadata { active_host, standby_hosts, partition: task.partition })
    }

    /// [`KafkaStreams::query_metadata_for_key`] for a typed key, serialized with `serde` (the
    /// store's key serde).
    pub fn query_metadata_for_key_with<K>(
        &self,
        store: &str,
        key: &K,
        serde: &impl Serde<K>,
    ) -> Result<KeyQueryMetadata> {
        let bytes = serde.serialize(key).map_err(StreamsError::Serde)?;
        self.query_metadata_for_key(store, &bytes)
    }

    /// Every instance that set `application.server`, with what it runs.
    pub fn metadata_for_all_clients(&self) -> Vec<StreamsMetadata> {
        let Some(plan) = self.plan.as_ref() else { return Vec::new() };
        let view = self.view.read().expect("view lock");
        view.hosts
            .iter()
            .map(|(host, tasks)| {
                let mut stores = BTreeSet::new();
                let mut partitions = BTreeSet::new();
                for t in &tasks.active {
                    stores.extend(self.topology.stores_of(t.subtopology).into_iter().map(|(s, _)| s));
                    for topic in self.topology.source_topics(t.subtopology) {
                        if plan.partitions.get(&topic).is_some_and(|n| t.partition < *n) {
                            partitions.insert((topic, t.partition));
                        }
                    }
                }
                StreamsMetadata {
                    host: host.clone(),
                    state_store_names: stores,
                    active_tasks: tasks.active.clone(),
                    standby_tasks: tasks.standby.clone(),
                    topic_partitions: partitions,
                }
            })
            .collect()
    }

    /// The instances running tasks with `store`.
    pub fn metadata_for_store(&self, store: &str) -> Vec<StreamsMetadata> {
        self.metadata_for_all_clients().into_iter().filter(|m| m.state_store_names.contains(store)).collect()
    }

    fn subtopology_of_store(&self, store: &str) -> Result<u32> {
        let subs = self.topology.subtopologies().len() as u32;
        (0..subs).find(|s| self.topology.stores_of(*s).iter().any(|(name, _)| name == store)).ok_or_else(|| {
            StreamsError::Topology(format!(
                "no store named {store} in this topology; check the name given to Materialized"
            ))
        })
    }
}

fn not_started(what: &str) -> StreamsError {
    StreamsError::Topology(format!("{what}: start the application first"))
}
