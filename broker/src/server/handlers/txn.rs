//! Transaction APIs: InitProducerId, AddPartitionsToTxn (v0-3), AddOffsetsToTxn, EndTxn.
//!
//! Each turns the wire message into the coordinator's request, waits for its answer and encodes
//! it with only the fields that version has. Versions before KIP-588 (InitProducerId < 4, the
//! others < 2) get INVALID_PRODUCER_EPOCH where newer ones get PRODUCER_FENCED, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use super::codes;
use crate::group::TopicPartition;
use crate::server::BrokerState;
use crate::txn::{self, ErrorCode, ProducerAnswer, Response};

/// OPERATION_NOT_ATTEMPTED: the other partitions of a request with an unknown one.
const OPERATION_NOT_ATTEMPTED: i16 = 55;

/// The error code for a client at `version`, where versions below `fenced_from` predate
/// PRODUCER_FENCED.
fn wire(e: ErrorCode, version: i16, fenced_from: i16) -> i16 {
    if version < fenced_from {
        e.for_old_client().code()
    } else {
        e.code()
    }
}

pub async fn init_producer_id(
    state: &Arc<BrokerState>,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let answer = |error: i16, pid: i64, epoch: i16| {
        InitProducerIdResponse::default()
            .with_error_code(error)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
    };
    let Some(id) = req.transactional_id else {
        // An idempotent producer: a new producer id every time, epoch 0.
        return match state.txns.new_producer_id().await {
            Ok(pid) => answer(0, pid, 0),
            Err(e) => {
                tracing::error!(error = %e, "cannot hand out a producer id");
                answer(codes::COORDINATOR_NOT_AVAILABLE, -1, -1)
            }
        };
    };
    let expected = (version >= 3 && req.producer_id.0 != -1).then_some((req.producer_id.0, req.producer_epoch));
    let ask =
        txn::InitProducerId { transactional_id: id.0.to_string(), timeout_ms: req.transaction_timeout_ms, expected };
    match state.txns.call(ask).await {
        Ok(Response::InitProducerId(a)) => answer(wire(a.error, version, 4), a.producer_id, a.producer_epoch),
        Ok(_) => answer(codes::COORDINATOR_NOT_AVAILABLE, -1, -1),
        Err(code) => answer(code, -1, -1),
    }
}

pub async fn add_partitions(
    state: &Arc<BrokerState>,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let asked: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect();
    // Kafka checks the partitions first: with an unknown one, nothing is added.
    let unknown = |(t, p): &(String, i32)| state.topics.partition(t, *p).is_none();
    let codes: Vec<i16> = if asked.iter().any(unknown) {
        let code =
            |tp: &(String, i32)| if unknown(tp) { codes::UNKNOWN_TOPIC_OR_PARTITION } else { OPERATION_NOT_ATTEMPTED };
        asked.iter().map(code).collect()
    } else {
        let ask = txn::AddPartitions {
            transactional_id: req.v3_and_below_transactional_id.0.to_string(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            partitions: asked.iter().map(|(t, p)| TopicPartition::new(t.clone(), *p)).collect(),
        };
        let code = match state.txns.call(ask).await {
            Ok(Response::AddPartitions(e)) => wire(e, version, 2),
            Ok(_) => codes::COORDINATOR_NOT_AVAILABLE,
            Err(code) => code,
        };
        vec![code; asked.len()]
    };
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), code) in asked.into_iter().zip(codes) {
        let result =
            AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(topic.into()))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

pub async fn add_offsets(
    state: &Arc<BrokerState>,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let ask = txn::AddOffsets {
        transactional_id: req.transactional_id.0.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        group_id: req.group_id.0.to_string(),
    };
    let code = match state.txns.call(ask).await {
        Ok(Response::AddOffsets(e)) => wire(e, version, 2),
        Ok(_) => codes::COORDINATOR_NOT_AVAILABLE,
        Err(code) => code,
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end_txn(state: &Arc<BrokerState>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let ask = txn::EndTxn {
        transactional_id: req.transactional_id.0.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        commit: req.committed,
        bump_epoch: version >= 5,
    };
    let none = ProducerAnswer { error: ErrorCode::CoordinatorNotAvailable, producer_id: -1, producer_epoch: -1 };
    let (code, a) = match state.txns.call(ask).await {
        Ok(Response::EndTxn(a)) => (wire(a.error, version, 2), a),
        Ok(_) => (codes::COORDINATOR_NOT_AVAILABLE, none),
        Err(code) => (code, none),
    };
    let resp = EndTxnResponse::default().with_error_code(code);
    if version >= 5 {
        resp.with_producer_id(ProducerId(a.producer_id)).with_producer_epoch(a.producer_epoch)
    } else {
        resp
    }
}
