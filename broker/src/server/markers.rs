//! Transaction markers: written by the partition's leader, in a cluster with acks=all. The
//! transaction coordinator writes a marker itself when this broker leads the partition and
//! otherwise sends WriteTxnMarkers (API 27) to the leader, as Kafka's coordinator does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::StrBytes;
use rill_core::client::Connection;

use super::handlers::{blocking, codes, log_error_code};
use super::BrokerState;
use crate::group::{TopicPartition, OFFSETS_TOPIC};
use crate::log::producer_state::ProducerError;
use crate::log::{now_ms, LogError};

/// How long a marker waits for the ISR.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In the log (and, in a cluster, in the ISR).
    Written,
    /// Nothing to write, ever: the partition is gone, or a newer producer epoch or coordinator
    /// already ended the transaction there.
    Skipped,
    /// Not now (no leader here, not replicated yet, I/O): try again later.
    Retry,
}

/// What a marker answered with Kafka error `code` became. `known`: this broker's metadata has
/// the partition (a lone broker: whether its log exists). A partition unknown to the broker that
/// answered but known here (a restarted broker not yet in step with the quorum) is tried again;
/// only a partition gone everywhere is skipped.
fn outcome_of_code(code: i16, known: bool) -> Outcome {
    match code {
        0 => Outcome::Written,
        codes::UNKNOWN_TOPIC_OR_PARTITION if known => Outcome::Retry,
        codes::UNKNOWN_TOPIC_OR_PARTITION | codes::INVALID_PRODUCER_EPOCH | codes::TRANSACTION_COORDINATOR_FENCED => {
            Outcome::Skipped
        }
        _ => Outcome::Retry,
    }
}

/// Write one marker into a partition this broker leads (any partition on a lone broker);
/// returns the Kafka error code (0: written and, in a cluster, replicated).
pub async fn write_local(
    state: &Arc<BrokerState>,
    tp: &TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> i16 {
    let Some(log) = state.topics.partition(&tp.topic, tp.partition) else { return codes::UNKNOWN_TOPIC_OR_PARTITION };
    let epoch = match state.cluster {
        Some(_) => match state.replicas.leader_epoch(&tp.topic, tp.partition) {
            Some(e) => Some(e),
            None => return codes::NOT_LEADER_OR_FOLLOWER,
        },
        None => None,
    };
    let l = log.clone();
    let res = blocking(move || l.append_marker(producer_id, producer_epoch, commit, coordinator_epoch, now_ms())).await;
    let info = match res {
        Ok(info) => info,
        Err(LogError::Producer(e @ ProducerError::InvalidEpoch { .. })) => {
            tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "marker refused");
            return codes::INVALID_PRODUCER_EPOCH;
        }
        Err(e) => {
            tracing::warn!(topic = %tp.topic, partition = tp.partition, producer_id, error = %e, "cannot write a marker");
            return log_error_code(&e);
        }
    };
    state.data_arrived.notify_waiters();
    if let Some(epoch) = epoch {
        let end = info.last_offset + 1;
        if let Err(code) =
            state.replicas.replicate(state, &tp.topic, tp.partition, &log, end, epoch, REPLICATION_TIMEOUT).await
        {
            return code;
        }
    }
    if tp.topic == OFFSETS_TOPIC && state.groups.complete_txn(producer_id, commit, tp.partition).await.is_none() {
        tracing::warn!(partition = tp.partition, producer_id, "group coordinator gone; offsets not completed");
    }
    0
}

/// WriteTxnMarkers (API 27, v1): another broker's transaction coordinator asks this leader to
/// write markers.
pub async fn handle(state: &Arc<BrokerState>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut resp = WriteTxnMarkersResponse::default();
    for m in req.markers {
        let mut mr = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
        for t in m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
            for p in t.partition_indexes {
                let tp = TopicPartition::new(t.name.0.as_str(), p);
                let code = write_local(
                    state,
                    &tp,
                    m.producer_id.0,
                    m.producer_epoch,
                    m.transaction_result,
                    m.coordinator_epoch,
                )
                .await;
                tr.partitions
                    .push(WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code));
            }
            mr.topics.push(tr);
        }
        resp.markers.push(mr);
    }
    resp
}

/// Marker writes of one transaction, local or sent to the partitions' leaders.
pub struct MarkerWriter {
    conns: HashMap<i32, Connection>,
}

impl std::fmt::Debug for MarkerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkerWriter").field("peers", &self.conns.len()).finish()
    }
}

impl MarkerWriter {
    /// No connections yet.
    pub fn new() -> Self {
        Self { conns: HashMap::new() }
    }

    /// Write a marker into every partition; returns each partition's outcome.
    pub async fn write(
        &mut self,
        state: &Arc<BrokerState>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, Outcome)> {
        let mut out = Vec::new();
        let mut remote: HashMap<i32, Vec<TopicPartition>> = HashMap::new();
        let image = state.cluster.as_ref().map(|n| n.image());
        let known = |tp: &TopicPartition| match &image {
            Some(img) => img.partition(&tp.topic, tp.partition).is_some(),
            None => state.topics.partition(&tp.topic, tp.partition).is_some(),
        };
        for tp in partitions {
            let leader = image.as_ref().map(|img| img.partition(&tp.topic, tp.partition).map(|p| p.leader));
            match leader {
                // A lone broker, or this broker leads: write here.
                None => {
                    let code = write_local(state, &tp, producer_id, producer_epoch, commit, coordinator_epoch).await;
                    out.push((tp, code));
                }
                Some(Some(l)) if l == state.config.node_id => {
                    let code = write_local(state, &tp, producer_id, producer_epoch, commit, coordinator_epoch).await;
                    out.push((tp, code));
                }
                Some(None) => out.push((tp, codes::UNKNOWN_TOPIC_OR_PARTITION)),
                Some(Some(l)) if l < 0 => out.push((tp, codes::LEADER_NOT_AVAILABLE)),
                Some(Some(l)) => remote.entry(l).or_default().push(tp),
            }
        }
        for (leader, tps) in remote {
            out.extend(self.send(state, leader, producer_id, producer_epoch, commit, coordinator_epoch, &tps).await);
        }
        out.into_iter()
            .map(|(tp, code)| {
                let outcome = outcome_of_code(code, known(&tp));
                (tp, outcome)
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        state: &Arc<BrokerState>,
        leader: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        tps: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let retry = || tps.iter().map(|tp| (tp.clone(), codes::NETWORK_EXCEPTION)).collect::<Vec<_>>();
        let Some(addr) = state.config.cluster.voters.get(&leader) else { return retry() };
        if self.conns.get(&leader).is_none_or(|c| c.is_closed()) {
            match Connection::connect(addr, &format!("rill-txn-coordinator-{}", state.config.node_id)).await {
                Ok(c) => {
                    self.conns.insert(leader, c);
                }
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach a partition leader for markers");
                    return retry();
                }
            }
        }
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for tp in tps {
            match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                Some(t) => t.partition_indexes.push(tp.partition),
                None => topics.push(
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                        .with_partition_indexes(vec![tp.partition]),
                ),
            }
        }
        let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(topics)]);
        let conn = self.conns.get(&leader).expect("connected above");
        match conn.call(req, 1).await {
            Ok(resp) => {
                let mut out = Vec::new();
                for m in resp.markers {
                    for t in m.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                            out.push((tp, p.error_code));
                        }
                    }
                }
                out
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "WriteTxnMarkers failed");
                self.conns.remove(&leader);
                retry()
            }
        }
    }
}

impl Default for MarkerWriter {
    fn default() -> Self {
        Self::new()
    }
}
