//! TxnOffsetCommit (API 28): offsets committed inside a transaction (KIP-98; member id,
//! generation and instance id from v3, KIP-447). The coordinator writes them as a
//! transactional batch; they become visible when the transaction commits.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use super::codes;
use super::groups::by_topic;
use crate::group::{self, TopicPartition};
use crate::server::BrokerState;

pub async fn txn_offset_commit(
    state: &Arc<BrokerState>,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    // Partitions of topics that do not exist are answered here, as Kafka's request handler does.
    let mut unknown = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        let n = state.topics.get(&t.name.0).map(|x| x.partitions.len() as i32);
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.name.0.to_string(), partition: p.partition_index };
            if !n.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                unknown.push(tp);
                continue;
            }
            offsets.push(group::CommitOffset {
                partition: tp,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let results: Vec<(TopicPartition, i16)> = if offsets.is_empty() {
        Vec::new()
    } else {
        // Before v3 there is no member: Kafka's defaults skip the generation check.
        let v3 = version >= 3;
        let ask = group::TxnOffsetCommit {
            group_id: req.group_id.0.to_string(),
            transactional_id: req.transactional_id.0.to_string(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            member_id: if v3 { req.member_id.to_string() } else { String::new() },
            group_instance_id: if v3 { req.group_instance_id.map(|i| i.to_string()) } else { None },
            generation_id: if v3 { req.generation_id } else { -1 },
            offsets: offsets.clone(),
        };
        let all = |code| offsets.iter().map(|o| (o.partition.clone(), code)).collect();
        let refused = super::groups::refusal(state, &ask.group_id);
        match state.groups.call(ask).await {
            Some(group::Response::TxnOffsetCommit(rs)) => {
                rs.into_iter().map(|r| (r.partition, r.error.code())).collect()
            }
            Some(group::Response::WriteFailed(code)) => all(code),
            _ => all(refused),
        }
    };
    let all = results.into_iter().chain(unknown.into_iter().map(|tp| (tp, codes::UNKNOWN_TOPIC_OR_PARTITION)));
    let parts = all.map(|(tp, err)| {
        let part = TxnOffsetCommitResponsePartition::default().with_partition_index(tp.partition).with_error_code(err);
        (tp.topic, part)
    });
    TxnOffsetCommitResponse::default().with_topics(by_topic(parts, |name, partitions| {
        TxnOffsetCommitResponseTopic::default()
            .with_name(TopicName(StrBytes::from_string(name)))
            .with_partitions(partitions)
    }))
}
