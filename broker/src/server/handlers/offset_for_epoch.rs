//! OffsetForLeaderEpoch: where a leader epoch ends in this leader's log (KIP-101/KIP-279).
//! Followers ask it to truncate after a leader change; consumers (librdkafka, Kafka's own) ask it
//! to detect a log that was truncated under them.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::codes;
use crate::server::BrokerState;

pub fn handle(state: &Arc<BrokerState>, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in &req.topics {
        let mut tr = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        for p in &t.partitions {
            let mut r = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
            let refused = state
                .cluster
                .is_some()
                .then(|| state.replicas.check_leader(&t.topic.0, p.partition, p.current_leader_epoch).err())
                .flatten();
            match (state.topics.partition(&t.topic.0, p.partition), refused) {
                (None, _) => r.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                (Some(_), Some(code)) => r.error_code = code,
                (Some(log), None) => {
                    let (epoch, end) = log.end_offset_for_epoch(p.leader_epoch);
                    r.leader_epoch = epoch;
                    r.end_offset = end;
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}
