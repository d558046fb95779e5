//! Replica administration: leader elections (ElectLeaders) and partition reassignments
//! (AlterPartitionReassignments, ListPartitionReassignments; KIP-455).
//!
//! In a cluster each change goes through the controller as one [`Command`], and the answer waits
//! until this broker's own image shows it, as the other cluster admin requests do. A broker
//! running alone has one replica per partition on itself: there is nothing to elect (every
//! partition answers ELECTION_NOT_NEEDED) and nowhere to move a replica.
//!
//! Election types differ slightly from Kafka's: a *preferred* election (type 0) makes the first
//! assigned replica the leader if it is alive and in the ISR; an *unclean* election (type 1)
//! elects a leader for partitions that have none. Whether that leader may come from outside
//! the ISR is decided by the topic's `unclean.leader.election.enable`, not by the request: with
//! it off, a type-1 election only elects from the ISR (ELIGIBLE_LEADERS_NOT_AVAILABLE when no ISR
//! member is alive), where Kafka would elect any live replica.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::codes;
use crate::cluster::command::{Command, Reply};
use crate::cluster::image::{codes as cc, ClusterImage, PartitionInfo, NO_LEADER};
use crate::server::cluster::{propose, wait_and_sync};
use crate::server::BrokerState;

/// ElectLeaders `election_type` of a preferred election.
pub const PREFERRED: i8 = 0;
/// ElectLeaders `election_type` of an unclean election.
pub const UNCLEAN: i8 = 1;

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The partitions an ElectLeaders request names; `None` (all partitions) lists every partition
/// of `all`, given as (topic, partition count).
pub fn election_partitions<'a>(
    req: &ElectLeadersRequest,
    all: impl Iterator<Item = (&'a str, usize)>,
) -> Vec<(String, i32)> {
    match &req.topic_partitions {
        Some(tps) => tps.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p))).collect(),
        None => all.flat_map(|(t, n)| (0..n as i32).map(move |p| (t.to_string(), p))).collect(),
    }
}

/// The command for an election of `partitions` of type `election_type` (0 preferred, 1
/// unclean), or the error code and message for an unknown type.
pub fn election_command(election_type: i8, partitions: Vec<(String, i32)>) -> Result<Command, (i16, String)> {
    match election_type {
        PREFERRED => Ok(Command::ElectLeaders { partitions, preferred: true }),
        UNCLEAN => Ok(Command::ElectLeaders { partitions, preferred: false }),
        t => Err((codes::INVALID_REQUEST, format!("election type {t}: use 0 (preferred) or 1 (unclean)"))),
    }
}

/// What an election result code means, for people.
fn election_message(code: i16, preferred: bool) -> Option<String> {
    match code {
        0 => None,
        cc::ELECTION_NOT_NEEDED if preferred => Some("the preferred replica already leads".into()),
        cc::ELECTION_NOT_NEEDED => Some("the partition has a leader".into()),
        cc::PREFERRED_LEADER_NOT_AVAILABLE => Some("the preferred replica is not alive or not in the ISR".into()),
        cc::ELIGIBLE_LEADERS_NOT_AVAILABLE => Some(
            "no ISR member is alive (and unclean.leader.election.enable is off for the topic, or no replica is alive)"
                .into(),
        ),
        codes::UNKNOWN_TOPIC_OR_PARTITION => Some("no such topic or partition".into()),
        _ => None,
    }
}

/// Group per-partition results by topic, in first-seen order.
fn election_results(results: Vec<((String, i32), i16, Option<String>)>) -> Vec<ReplicaElectionResult> {
    let mut out: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), code, message) in results {
        let r = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string));
        match out.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partition_result.push(r),
            None => {
                out.push(ReplicaElectionResult::default().with_topic(topic_name(&topic)).with_partition_result(vec![r]))
            }
        }
    }
    out
}

/// ElectLeaders (API 43). With `topic_partitions: null` every partition is tried and, as in
/// Kafka, partitions that needed no election are left out of the answer.
pub async fn elect_leaders(state: &Arc<BrokerState>, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    // The top-level error code exists from v1 on; v0 has no election type to get wrong.
    let top = |code: i16| if version >= 1 { code } else { 0 };
    let all = req.topic_partitions.is_none();
    let preferred = req.election_type != UNCLEAN;
    let mut results: Vec<((String, i32), i16, Option<String>)> = Vec::new();
    match &state.cluster {
        None => {
            let local = state.topics.all();
            let parts = election_partitions(&req, local.iter().map(|t| (t.name.as_str(), t.partitions.len())));
            if let Err((code, m)) = election_command(req.election_type, Vec::new()) {
                return ElectLeadersResponse::default().with_error_code(top(code)).with_replica_election_results(
                    election_results(parts.into_iter().map(|tp| (tp, code, Some(m.clone()))).collect()),
                );
            }
            for (topic, p) in parts {
                let exists = state.topics.get(&topic).is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
                let code = if exists { cc::ELECTION_NOT_NEEDED } else { codes::UNKNOWN_TOPIC_OR_PARTITION };
                results.push(((topic, p), code, election_message(code, preferred)));
            }
        }
        Some(node) => {
            let image = node.image();
            let parts = election_partitions(&req, image.topics.iter().map(|(n, t)| (n.as_str(), t.partitions.len())));
            let cmd = match election_command(req.election_type, parts.clone()) {
                Ok(c) => c,
                Err((code, m)) => {
                    return ElectLeadersResponse::default().with_error_code(top(code)).with_replica_election_results(
                        election_results(parts.into_iter().map(|tp| (tp, code, Some(m.clone()))).collect()),
                    )
                }
            };
            // Nothing named and no topics: nothing to propose.
            let answer = if parts.is_empty() { Ok(Reply::Elections(Vec::new())) } else { propose(state, cmd).await };
            match answer {
                Ok(Reply::Elections(codes)) => {
                    for (tp, code) in parts.into_iter().zip(codes) {
                        results.push((tp, code, election_message(code, preferred)));
                    }
                }
                Ok(other) => {
                    const UNKNOWN_SERVER_ERROR: i16 = -1;
                    let m = format!("unexpected controller answer {other:?}");
                    results.extend(parts.into_iter().map(|tp| (tp, UNKNOWN_SERVER_ERROR, Some(m.clone()))));
                }
                Err((code, m)) => results.extend(parts.into_iter().map(|tp| (tp, code, Some(m.clone())))),
            }
            let elected: Vec<(String, i32)> =
                results.iter().filter(|(_, code, _)| *code == 0).map(|(tp, _, _)| tp.clone()).collect();
            if !elected.is_empty() {
                wait_and_sync(state, move |img| elected.iter().all(|(t, p)| elected_in(img, t, *p, preferred))).await;
            }
        }
    }
    if all {
        results.retain(|(_, code, _)| *code != cc::ELECTION_NOT_NEEDED);
    }
    ElectLeadersResponse::default().with_replica_election_results(election_results(results))
}

/// Whether the image shows the outcome of an election of `topic`-`partition`.
fn elected_in(img: &ClusterImage, topic: &str, partition: i32, preferred: bool) -> bool {
    img.partition(topic, partition).is_none_or(|p| {
        if preferred {
            p.replicas.first() == Some(&p.leader)
        } else {
            p.leader != NO_LEADER
        }
    })
}

/// The (topic, partition, target) moves of an AlterPartitionReassignments request (`None`
/// cancels).
pub fn reassignments(req: &AlterPartitionReassignmentsRequest) -> Vec<(String, i32, Option<Vec<i32>>)> {
    req.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (t.name.0.to_string(), p.partition_index, p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()))
            })
        })
        .collect()
}

/// Whether the image shows a reassignment of `p` to `target` (in progress or done), or its
/// cancellation.
fn reassigned(p: &PartitionInfo, target: Option<&[i32]>) -> bool {
    match target {
        Some(t) => p.target_replicas.as_deref() == Some(t) || (p.target_replicas.is_none() && p.replicas == t),
        None => p.target_replicas.is_none(),
    }
}

/// A broker running alone: its partitions stay where they are.
fn reassign_alone(
    state: &BrokerState,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<(), (i16, String)> {
    let me = state.config.node_id;
    if !state.topics.get(topic).is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len()) {
        return Err((codes::UNKNOWN_TOPIC_OR_PARTITION, format!("{topic}-{partition} does not exist")));
    }
    match target {
        None => Err((cc::NO_REASSIGNMENT_IN_PROGRESS, format!("{topic}-{partition} is not moving"))),
        Some([b]) if *b == me => Ok(()),
        Some(t) => Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "{t:?}: this broker (node {me}) runs alone, so its only replica stays on it; \
                 start the brokers with controller.quorum.voters to move replicas"
            ),
        )),
    }
}

/// AlterPartitionReassignments (API 45): start (`replicas`) or cancel (`null`) moves.
pub async fn alter_reassignments(
    state: &Arc<BrokerState>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    let mut changed = Vec::new();
    for (topic, partition, target) in reassignments(&req) {
        let out = if state.cluster.is_none() {
            reassign_alone(state, &topic, partition, target.as_deref())
        } else {
            let cmd = Command::Reassign { topic: topic.clone(), partition, replicas: target.clone() };
            let out = propose(state, cmd).await.map(|_| ());
            if out.is_ok() {
                changed.push((topic.clone(), partition, target));
            }
            out
        };
        let mut r = ReassignablePartitionResponse::default().with_partition_index(partition);
        if let Err((code, m)) = out {
            r.error_code = code;
            r.error_message = msg(m);
        }
        match resp.responses.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(r),
            None => resp
                .responses
                .push(ReassignableTopicResponse::default().with_name(topic_name(&topic)).with_partitions(vec![r])),
        }
    }
    if !changed.is_empty() {
        wait_and_sync(state, move |img| {
            changed.iter().all(|(t, p, target)| img.partition(t, *p).is_none_or(|x| reassigned(x, target.as_deref())))
        })
        .await;
    }
    resp
}

/// One partition's reassignment in progress as ListPartitionReassignments reports it:
/// (replicas, adding, removing), where removing = current replicas not in the target.
pub fn ongoing(p: &PartitionInfo) -> Option<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    let target = p.target_replicas.as_ref()?;
    let removing = p.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
    Some((p.replicas.clone(), p.adding_replicas.clone(), removing))
}

/// ListPartitionReassignments (API 46), from this broker's image (`topics: null`: all).
/// Partitions that do not exist or are not moving are left out.
pub fn list_reassignments(
    state: &BrokerState,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    let Some(node) = &state.cluster else { return resp };
    let image = node.image();
    let wanted: Vec<(String, Option<Vec<i32>>)> = match &req.topics {
        Some(ts) => ts.iter().map(|t| (t.name.0.to_string(), Some(t.partition_indexes.clone()))).collect(),
        None => image.topics.keys().map(|n| (n.clone(), None)).collect(),
    };
    let broker_ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    for (name, indexes) in wanted {
        let Some(t) = image.topics.get(&name) else { continue };
        let mut partitions = Vec::new();
        for (i, p) in t.partitions.iter().enumerate() {
            let i = i as i32;
            if indexes.as_ref().is_some_and(|ix| !ix.contains(&i)) {
                continue;
            }
            if let Some((replicas, adding, removing)) = ongoing(p) {
                partitions.push(
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i)
                        .with_replicas(broker_ids(replicas))
                        .with_adding_replicas(broker_ids(adding))
                        .with_removing_replicas(broker_ids(removing)),
                );
            }
        }
        if !partitions.is_empty() {
            resp.topics
                .push(OngoingTopicReassignment::default().with_name(topic_name(&name)).with_partitions(partitions));
        }
    }
    resp
}

#[cfg(test)]
#[path = "admin_replicas_tests.rs"]
mod tests;
