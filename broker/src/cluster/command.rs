//! What the metadata quorum replicates, and what applying it answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::PartitionInfo;

/// One change to the cluster metadata. See [`super::image::ClusterImage::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker process started (its new epoch is the command's log index).
    RegisterBroker {
        /// `node.id`.
        id: i32,
        /// Host for clients.
        host: String,
        /// Port for clients.
        port: u16,
    },
    /// The broker's session expired: it leaves ISRs and leaderships.
    FenceBroker {
        /// `node.id`.
        id: i32,
        /// The registration this is about (a newer one wins).
        epoch: u64,
    },
    /// A fenced broker is heard from again.
    UnfenceBroker {
        /// `node.id`.
        id: i32,
        /// Its registration.
        epoch: u64,
    },
    /// CreateTopics.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count (ignored with `assignments`).
        partitions: i32,
        /// Replicas per partition (ignored with `assignments`).
        replication_factor: i16,
        /// Explicit replicas per partition.
        assignments: Option<Vec<Vec<i32>>>,
        /// Config overrides.
        configs: BTreeMap<String, String>,
    },
    /// DeleteTopics.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// CreatePartitions: grow to `count`.
    CreatePartitions {
        /// Topic.
        name: String,
        /// New total.
        count: i32,
    },
    /// Replace a topic's config overrides.
    AlterConfigs {
        /// Topic.
        name: String,
        /// The overrides in full.
        configs: BTreeMap<String, String>,
    },
    /// A leader changes its partition's ISR (Kafka's AlterPartition).
    AlterPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The leader asking.
        leader: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The partition epoch it last saw.
        partition_epoch: i32,
        /// The ISR it wants.
        isr: Vec<i32>,
    },
    /// Elect leaders: the preferred replica, or any eligible one for leaderless partitions.
    ElectLeaders {
        /// (topic, partition) pairs.
        partitions: Vec<(String, i32)>,
        /// Preferred election; otherwise only leaderless partitions elect.
        preferred: bool,
    },
    /// Move a partition to `replicas` (`None` cancels a move in progress).
    Reassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Target replicas, preferred leader first.
        replicas: Option<Vec<i32>>,
    },
    /// Name the cluster (the first controller does, once): every broker reports this id.
    SetClusterId {
        /// The id.
        id: String,
    },
    /// Hand out a block of producer ids (idempotent and transactional producers).
    AllocateProducerIds {
        /// Block size.
        count: u32,
    },
}

/// What applying a [`Command`] answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Ok,
    /// Refused; the image is unchanged.
    Error {
        /// Kafka error code.
        code: i16,
        /// Why, for people.
        message: String,
    },
    /// The new broker epoch of a registration.
    BrokerEpoch(u64),
    /// A created topic's id.
    TopicId(Uuid),
    /// The partition after an ISR change.
    Partition(PartitionInfo),
    /// One error code per partition of an election (0: elected).
    Elections(Vec<i16>),
    /// A block of producer ids.
    ProducerIds {
        /// First id.
        start: i64,
        /// How many.
        count: u32,
    },
}

impl Reply {
    /// A refusal.
    pub fn error(code: i16, message: impl Into<String>) -> Self {
        Self::Error { code, message: message.into() }
    }

    /// The error code (0 when not an error).
    pub fn code(&self) -> i16 {
        match self {
            Self::Error { code, .. } => *code,
            _ => 0,
        }
    }
}
