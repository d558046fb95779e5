//! The cluster metadata image: brokers, topics, and each partition's replicas, ISR, leader and
//! epochs. The metadata quorum replicates [`Command`]s; every broker applies them in log order
//! to its own image with [`ClusterImage::apply`], which is deterministic (no clock, no
//! randomness), so every broker that applied the same prefix holds the same image.
//!
//! Leader elections happen inside `apply`, so they are part of the replicated history:
//!
//! | event                                   | effect on each partition it touches                                  |
//! |-----------------------------------------|----------------------------------------------------------------------|
//! | broker fenced (session expired)         | leaves every ISR that has another member; new leader from the ISR    |
//! | broker registers (start or restart)     | unfenced; leaderless partitions whose ISR holds it elect it          |
//! | leader asks to change the ISR           | accepted only at the current leader and partition epochs             |
//! | preferred election                      | first assigned replica leads, if it is in the ISR and unfenced       |
//! | no ISR member alive, unclean allowed    | first live assigned replica leads with ISR = {it} (may lose data)    |
//!
//! A leader change bumps the leader epoch and the partition epoch; an ISR change bumps the
//! partition epoch only (KIP-497's `partition_epoch`, called `PartitionEpoch` in AlterPartition).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::command::{Command, Reply};

/// No leader (every ISR member is fenced).
pub const NO_LEADER: i32 = -1;

/// A broker as the quorum knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// `node.id`.
    pub id: i32,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// Fenced brokers lead nothing and join no ISR.
    pub fenced: bool,
    /// Changes on every registration (one per process start): the broker epoch.
    pub epoch: u64,
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader broker, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition's state.
    pub partition_epoch: i32,
    /// A reassignment in progress: the replicas wanted once the new ones have caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_replicas: Option<Vec<i32>>,
    /// Replicas the reassignment in progress adds (dropped again if it is cancelled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic id.
    pub id: Uuid,
    /// Config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
}

/// The whole cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// Registered brokers.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Topics created so far (spreads the first replica of new topics over the brokers).
    pub topics_created: u64,
    /// The cluster id every broker reports (set once by the first controller).
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// Error codes the controller answers with (Kafka's).
pub mod codes {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// NOT_LEADER_OR_FOLLOWER.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// TOPIC_ALREADY_EXISTS.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REPLICATION_FACTOR.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// INVALID_REPLICA_ASSIGNMENT.
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    /// STALE_BROKER_EPOCH.
    pub const STALE_BROKER_EPOCH: i16 = 77;
    /// FENCED_LEADER_EPOCH.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// ELECTION_NOT_NEEDED.
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE.
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    /// NO_REASSIGNMENT_IN_PROGRESS.
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    /// INELIGIBLE_REPLICA.
    pub const INELIGIBLE_REPLICA: i16 = 107;
    /// INVALID_UPDATE_VERSION.
    pub const INVALID_UPDATE_VERSION: i16 = 108;
}

impl PartitionInfo {
    /// A new partition led by its first replica, every replica in sync.
    pub fn new(replicas: Vec<i32>) -> Self {
        Self {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            target_replicas: None,
            adding_replicas: Vec::new(),
        }
    }

    /// Make `leader` the leader (bumping both epochs if it changes).
    fn set_leader(&mut self, leader: i32) {
        if leader != self.leader {
            self.leader = leader;
            self.leader_epoch += 1;
        }
        self.partition_epoch += 1;
    }
}

impl ClusterImage {
    /// Whether broker `id` is registered and not fenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// One partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    /// Whether a topic allows unclean leader election (`unclean.leader.election.enable`).
    fn unclean_allowed(configs: &BTreeMap<String, String>) -> bool {
        configs.get("unclean.leader.election.enable").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Apply one command. `index` is the command's position in the metadata log (used as the
    /// broker epoch of registrations). Refusals leave the image unchanged.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Reply {
        match cmd {
            Command::RegisterBroker { id, host, port } => self.register(index, *id, host, *port),
            Command::FenceBroker { id, epoch } => self.fence(*id, *epoch),
            Command::UnfenceBroker { id, epoch } => self.unfence(*id, *epoch),
            Command::CreateTopic { name, partitions, replication_factor, assignments, configs } => {
                self.create_topic(name, *partitions, *replication_factor, assignments.as_deref(), configs)
            }
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Reply::Ok,
                None => Reply::error(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")),
            },
            Command::CreatePartitions { name, count } => self.create_partitions(name, *count),
            Command::AlterConfigs { name, configs } => match self.topics.get_mut(name) {
                Some(t) => {
                    t.configs = configs.clone();
                    Reply::Ok
                }
                None => Reply::error(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")),
            },
            Command::AlterPartition { topic, partition, leader, leader_epoch, partition_epoch, isr } => {
                self.alter_partition(topic, *partition, *leader, *leader_epoch, *partition_epoch, isr)
            }
            Command::ElectLeaders { partitions, preferred } => self.elect_leaders(partitions, *preferred),
            Command::Reassign { topic, partition, replicas } => self.reassign(topic, *partition, replicas.as_deref()),
            Command::SetClusterId { id } => {
                self.cluster_id.get_or_insert_with(|| id.clone());
                Reply::Ok
            }
            Command::AllocateProducerIds { count } => {
                let start = self.next_producer_id;
                self.next_producer_id += i64::from(*count);
                Reply::ProducerIds { start, count: *count }
            }
        }
    }

    fn register(&mut self, index: u64, id: i32, host: &str, port: u16) -> Reply {
        // A restart may have lost whatever the broker had not flushed: first treat the previous
        // incarnation as gone (out of every ISR that has someone else), then let it back in.
        if self.is_live(id) {
            self.fence_partitions(id);
        }
        self.brokers.insert(id, BrokerInfo { id, host: host.to_string(), port, fenced: false, epoch: index });
        self.elect_leaderless(id);
        Reply::BrokerEpoch(index)
    }

    fn fence(&mut self, id: i32, epoch: u64) -> Reply {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => {
                if !b.fenced {
                    b.fenced = true;
                    self.fence_partitions(id);
                }
                Reply::Ok
            }
            _ => Reply::error(codes::STALE_BROKER_EPOCH, format!("broker {id} is not at epoch {epoch}")),
        }
    }

    fn unfence(&mut self, id: i32, epoch: u64) -> Reply {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => {
                if b.fenced {
                    b.fenced = false;
                    self.elect_leaderless(id);
                }
                Reply::Ok
            }
            _ => Reply::error(codes::STALE_BROKER_EPOCH, format!("broker {id} is not at epoch {epoch}")),
        }
    }

    /// Take broker `id` out of every ISR that has another member and move its leaderships.
    fn fence_partitions(&mut self, id: i32) {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced && b.id != id).map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            let unclean = Self::unclean_allowed(&t.configs);
            for p in t.partitions.iter_mut() {
                if !p.isr.contains(&id) && p.leader != id {
                    continue;
                }
                if p.isr.len() > 1 {
                    p.isr.retain(|r| *r != id);
                }
                if p.leader == id {
                    let next = elect(p, &live, unclean).unwrap_or(NO_LEADER);
                    if next != NO_LEADER && !p.isr.contains(&next) {
                        p.isr = vec![next];
                    }
                    p.set_leader(next);
                } else {
                    p.partition_epoch += 1;
                }
            }
        }
    }

    /// Partitions without a leader whose ISR holds newly live broker `id` elect a leader.
    fn elect_leaderless(&mut self, id: i32) {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            let unclean = Self::unclean_allowed(&t.configs);
            for p in t.partitions.iter_mut() {
                if p.leader != NO_LEADER || !p.replicas.contains(&id) {
                    continue;
                }
                if let Some(next) = elect(p, &live, unclean) {
                    if !p.isr.contains(&next) {
                        p.isr = vec![next];
                    }
                    p.set_leader(next);
                }
            }
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignments: Option<&[Vec<i32>]>,
        configs: &BTreeMap<String, String>,
    ) -> Reply {
        if self.topics.contains_key(name) {
            return Reply::error(codes::TOPIC_ALREADY_EXISTS, format!("topic '{name}' already exists"));
        }
        let replicas = match assignments {
            Some(a) => match self.check_assignments(a) {
                Ok(()) => a.to_vec(),
                Err(r) => return r,
            },
            None => match self.assign(partitions, replication_factor, self.topics_created) {
                Ok(a) => a,
                Err(r) => return r,
            },
        };
        self.topics_created += 1;
        // A deterministic id: every broker derives the same one from the log position.
        let id = Uuid::from_u64_pair(0x5249_4c4c_0000_0000 | self.topics_created, fnv(name));
        let partitions = replicas.into_iter().map(PartitionInfo::new).collect();
        self.topics.insert(name.to_string(), TopicInfo { id, configs: configs.clone(), partitions });
        Reply::TopicId(id)
    }

    fn check_assignments(&self, a: &[Vec<i32>]) -> Result<(), Reply> {
        let bad = |m: String| Err(Reply::error(codes::INVALID_REPLICA_ASSIGNMENT, m));
        if a.is_empty() {
            return bad("no partitions assigned".into());
        }
        for (i, replicas) in a.iter().enumerate() {
            if replicas.is_empty() || replicas.len() != a[0].len() {
                return bad(format!("partition {i} needs {} replicas, has {}", a[0].len(), replicas.len()));
            }
            if let Some(b) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return bad(format!("partition {i} names broker {b}, which is not registered"));
            }
            let mut seen = replicas.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != replicas.len() {
                return bad(format!("partition {i} names a broker twice"));
            }
        }
        Ok(())
    }

    /// Kafka's rack-unaware assignment: partition `p`'s replicas are consecutive live brokers
    /// starting at `(start + p) mod n`, followers shifted so leaders and followers spread.
    fn assign(&self, partitions: i32, rf: i16, start: u64) -> Result<Vec<Vec<i32>>, Reply> {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect();
        if partitions <= 0 {
            return Err(Reply::error(codes::INVALID_PARTITIONS, format!("{partitions} partitions: use at least 1")));
        }
        if rf <= 0 || rf as usize > live.len() {
            return Err(Reply::error(
                codes::INVALID_REPLICATION_FACTOR,
                format!("replication factor {rf} is more than the {} live brokers", live.len()),
            ));
        }
        let n = live.len();
        let first = (start as usize) % n;
        Ok((0..partitions as usize)
            .map(|p| {
                let lead = (first + p) % n;
                let shift = p / n;
                let follower = |r: usize| (lead + 1 + (shift + r - 1) % (n - 1)) % n;
                (0..rf as usize).map(|r| live[if r == 0 { lead } else { follower(r) }]).collect()
            })
            .collect())
    }

    fn create_partitions(&mut self, name: &str, count: i32) -> Reply {
        let Some(t) = self.topics.get(name) else {
            return Reply::error(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist"));
        };
        let have = t.partitions.len() as i32;
        if count <= have {
            return Reply::error(
                codes::INVALID_PARTITIONS,
                format!("topic '{name}' has {have} partitions; ask for more than that"),
            );
        }
        let rf = t.partitions[0].replicas.len() as i16;
        let added = match self.assign(count - have, rf, self.topics_created + have as u64) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let t = self.topics.get_mut(name).expect("checked above");
        t.partitions.extend(added.into_iter().map(PartitionInfo::new));
        Reply::Ok
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Reply {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect();
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return Reply::error(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("{topic}-{partition} does not exist"));
        };
        if p.leader != leader {
            return Reply::error(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!("broker {leader} does not lead {topic}-{partition}"),
            );
        }
        if p.leader_epoch != leader_epoch {
            return Reply::error(
                codes::FENCED_LEADER_EPOCH,
                format!("leader epoch {leader_epoch} is not {topic}-{partition}'s {}", p.leader_epoch),
            );
        }
        if p.partition_epoch != partition_epoch {
            return Reply::error(
                codes::INVALID_UPDATE_VERSION,
                format!("partition epoch {partition_epoch} is not {topic}-{partition}'s {}", p.partition_epoch),
            );
        }
        if !isr.contains(&leader) {
            return Reply::error(codes::INVALID_REQUEST, format!("the ISR {isr:?} must hold its leader {leader}"));
        }
        // KIP-841: only assigned, live brokers may join.
        if let Some(b) = isr.iter().find(|b| !p.isr.contains(b) && (!p.replicas.contains(b) || !live.contains(b))) {
            return Reply::error(
                codes::INELIGIBLE_REPLICA,
                format!("broker {b} may not join {topic}-{partition}'s ISR"),
            );
        }
        p.isr = isr.to_vec();
        p.partition_epoch += 1;
        complete_reassignment(p, &live);
        Reply::Partition(p.clone())
    }

    fn elect_leaders(&mut self, partitions: &[(String, i32)], preferred: bool) -> Reply {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect();
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, index) in partitions {
            let Some(t) = self.topics.get_mut(topic) else {
                results.push(codes::UNKNOWN_TOPIC_OR_PARTITION);
                continue;
            };
            let unclean = Self::unclean_allowed(&t.configs);
            let Some(p) = t.partitions.get_mut(*index as usize) else {
                results.push(codes::UNKNOWN_TOPIC_OR_PARTITION);
                continue;
            };
            let code = if preferred {
                let want = p.replicas[0];
                if p.leader == want {
                    codes::ELECTION_NOT_NEEDED
                } else if p.isr.contains(&want) && live.contains(&want) {
                    p.set_leader(want);
                    0
                } else {
                    codes::PREFERRED_LEADER_NOT_AVAILABLE
                }
            } else if p.leader != NO_LEADER {
                codes::ELECTION_NOT_NEEDED
            } else {
                match elect(p, &live, unclean) {
                    Some(next) => {
                        if !p.isr.contains(&next) {
                            p.isr = vec![next];
                        }
                        p.set_leader(next);
                        0
                    }
                    None => codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                }
            };
            results.push(code);
        }
        Reply::Elections(results)
    }

    fn reassign(&mut self, topic: &str, partition: i32, replicas: Option<&[i32]>) -> Reply {
        let live: Vec<i32> = self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect();
        let registered: Vec<i32> = self.brokers.keys().copied().collect();
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return Reply::error(codes::UNKNOWN_TOPIC_OR_PARTITION, format!("{topic}-{partition} does not exist"));
        };
        let Some(target) = replicas else {
            // Cancel (KIP-455): drop the replicas the reassignment added.
            if p.target_replicas.take().is_none() {
                return Reply::error(codes::NO_REASSIGNMENT_IN_PROGRESS, format!("{topic}-{partition} is not moving"));
            }
            let adding = std::mem::take(&mut p.adding_replicas);
            p.replicas.retain(|r| !adding.contains(r));
            p.isr.retain(|r| !adding.contains(r));
            if adding.contains(&p.leader) {
                let next = elect(p, &live, false).unwrap_or(NO_LEADER);
                p.set_leader(next);
            } else {
                p.partition_epoch += 1;
            }
            return Reply::Ok;
        };
        let mut sorted = target.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if target.is_empty() || sorted.len() != target.len() || target.iter().any(|b| !registered.contains(b)) {
            return Reply::error(
                codes::INVALID_REPLICA_ASSIGNMENT,
                format!("{target:?} must name distinct registered brokers"),
            );
        }
        // Adding first: the partition is replicated to old and new replicas until every new one
        // is in sync, then it shrinks to the target (KIP-455).
        if p.target_replicas.is_some() {
            return Reply::error(
                codes::INVALID_REPLICA_ASSIGNMENT,
                format!("{topic}-{partition} is already moving; cancel that first"),
            );
        }
        p.adding_replicas = target.iter().copied().filter(|r| !p.replicas.contains(r)).collect();
        let mut all = target.to_vec();
        for r in &p.replicas {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        p.replicas = all;
        p.target_replicas = Some(target.to_vec());
        p.partition_epoch += 1;
        complete_reassignment(p, &live);
        Reply::Ok
    }
}

/// Finish a reassignment whose target replicas are all in sync: shrink to the target and move
/// leadership into it if needed.
fn complete_reassignment(p: &mut PartitionInfo, live: &[i32]) {
    let Some(target) = p.target_replicas.clone() else { return };
    if !target.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    p.replicas = target;
    p.target_replicas = None;
    p.adding_replicas.clear();
    p.isr.retain(|r| p.replicas.contains(r));
    if !p.replicas.contains(&p.leader) {
        let next = elect(p, live, false).unwrap_or(NO_LEADER);
        p.set_leader(next);
    } else {
        p.partition_epoch += 1;
    }
}

/// The replica to lead: the first assigned replica that is in the ISR and live; failing that,
/// with `unclean`, the first live assigned replica.
pub fn elect(p: &PartitionInfo, live: &[i32], unclean: bool) -> Option<i32> {
    let clean = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live.contains(r));
    clean.or_else(|| if unclean { p.replicas.iter().copied().find(|r| live.contains(r)) } else { None })
}

/// FNV-1a, for stable topic ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
