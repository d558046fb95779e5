//! The requests of idempotence and transactions, one function each, built for the version the
//! connection negotiated: InitProducerId, FindCoordinator for a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn. Errors carry the broker's
//! code; callers classify them (`txn::classify`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::sequence::IdAndEpoch;
use super::txn::codes;
use crate::client::Connection;
use crate::consumer::ConsumerGroupMetadata;
use crate::error::{Error, Result};

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn timed<T>(timeout: Duration, what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(timeout, f).await.map_err(|_| Error::Timeout(format!("{what} after {timeout:?}")))?
}

/// InitProducerId: a producer id and epoch. With `current` (an epoch bump, KIP-360) the request
/// carries the current ids, which needs v3; below v3 a non-transactional producer simply gets a
/// fresh id, and a transactional one fails with UNSUPPORTED_VERSION.
pub(crate) async fn init_producer_id(
    conn: &Connection,
    transactional_id: Option<&str>,
    transaction_timeout: Duration,
    current: Option<IdAndEpoch>,
    timeout: Duration,
) -> Result<IdAndEpoch> {
    let version = conn.version::<InitProducerIdRequest>(5)?;
    let mut req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(str(t))))
        .with_transaction_timeout_ms(transaction_timeout.as_millis().min(i32::MAX as u128) as i32);
    match current {
        Some(ids) if version >= 3 => {
            req = req.with_producer_id(ProducerId(ids.producer_id)).with_producer_epoch(ids.epoch);
        }
        Some(_) if transactional_id.is_some() => {
            return Err(Error::from_code(
                codes::UNSUPPORTED_VERSION,
                format!("InitProducerId v{version} at {}", conn.addr()),
                Some("bumping a transactional producer's epoch needs InitProducerId v3 (KIP-360)".into()),
            )
            .expect("nonzero"))
        }
        _ => {
            if version >= 3 {
                req = req.with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
            }
        }
    }
    let resp = timed(timeout, "InitProducerId", conn.call_at(req, version)).await?;
    let what = match transactional_id {
        Some(t) => format!("InitProducerId for transactional.id '{t}'"),
        None => "InitProducerId".to_string(),
    };
    if let Some(e) = Error::from_code(resp.error_code, what, None) {
        return Err(e);
    }
    Ok(IdAndEpoch { producer_id: resp.producer_id.0, epoch: resp.producer_epoch })
}

/// FindCoordinator for a transactional id (key type 1), then a connection to it.
pub(crate) async fn find_txn_coordinator(
    via: &Connection,
    transactional_id: &str,
    client_id: &str,
    timeout: Duration,
) -> Result<Connection> {
    let version = via.version::<FindCoordinatorRequest>(3)?;
    if version < 1 {
        return Err(Error::from_code(
            codes::UNSUPPORTED_VERSION,
            format!("FindCoordinator at {}", via.addr()),
            Some("transaction coordinators need FindCoordinator v1".into()),
        )
        .expect("nonzero"));
    }
    let req = FindCoordinatorRequest::default().with_key(str(transactional_id)).with_key_type(1);
    let resp = timed(timeout, "FindCoordinator", via.call_at(req, version)).await?;
    if let Some(e) = Error::from_code(
        resp.error_code,
        format!("FindCoordinator for transactional.id '{transactional_id}'"),
        resp.error_message.map(|m| m.to_string()),
    ) {
        return Err(e);
    }
    let addr = format!("{}:{}", resp.host, resp.port);
    timed(timeout, "connecting to the transaction coordinator", Connection::connect(&addr, client_id)).await
}

/// AddPartitionsToTxn (v3 at most: v4+ is for brokers). The first partition error other than
/// OPERATION_NOT_ATTEMPTED (a sibling failed) is the answer.
pub(crate) async fn add_partitions(
    conn: &Connection,
    transactional_id: &str,
    ids: IdAndEpoch,
    partitions: &[(Arc<str>, i32)],
    timeout: Duration,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t).or_default().push(*p);
    }
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = TransactionalId(str(transactional_id));
    req.v3_and_below_producer_id = ProducerId(ids.producer_id);
    req.v3_and_below_producer_epoch = ids.epoch;
    req.v3_and_below_topics = topics
        .into_iter()
        .map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(TopicName(str(t))).with_partitions(ps))
        .collect();
    let resp = timed(timeout, "AddPartitionsToTxn", conn.call(req, 3)).await?;
    let mut not_attempted = None;
    for t in &resp.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            let what = format!("AddPartitionsToTxn of {}-{}", t.name.0, p.partition_index);
            match Error::from_code(p.partition_error_code, what, None) {
                Some(e) if p.partition_error_code == codes::OPERATION_NOT_ATTEMPTED => not_attempted = Some(e),
                Some(e) => return Err(e),
                None => {}
            }
        }
    }
    not_attempted.map_or(Ok(()), Err)
}

/// AddOffsetsToTxn: the group's offsets partition joins the transaction.
pub(crate) async fn add_offsets(
    conn: &Connection,
    transactional_id: &str,
    ids: IdAndEpoch,
    group: &str,
    timeout: Duration,
) -> Result<()> {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str(transactional_id)))
        .with_producer_id(ProducerId(ids.producer_id))
        .with_producer_epoch(ids.epoch)
        .with_group_id(GroupId(str(group)));
    let resp = timed(timeout, "AddOffsetsToTxn", conn.call(req, 4)).await?;
    match Error::from_code(resp.error_code, format!("AddOffsetsToTxn for group '{group}'"), None) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// TxnOffsetCommit to the group coordinator; from v3 with the consumer's member id and
/// generation, so a zombie of an old generation is fenced. The first partition error fails it.
pub(crate) async fn txn_offset_commit(
    conn: &Connection,
    transactional_id: &str,
    ids: IdAndEpoch,
    group: &ConsumerGroupMetadata,
    offsets: &BTreeMap<(String, i32), i64>,
    timeout: Duration,
) -> Result<()> {
    let version = conn.version::<TxnOffsetCommitRequest>(3)?;
    let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().push(
            TxnOffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(if version >= 2 { -1 } else { Default::default() }),
        );
    }
    let mut req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str(transactional_id)))
        .with_group_id(GroupId(str(&group.group_id)))
        .with_producer_id(ProducerId(ids.producer_id))
        .with_producer_epoch(ids.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| TxnOffsetCommitRequestTopic::default().with_name(TopicName(str(t))).with_partitions(ps))
                .collect(),
        );
    if version >= 3 {
        req = req
            .with_generation_id(group.generation_id)
            .with_member_id(str(&group.member_id))
            .with_group_instance_id(group.group_instance_id.as_deref().map(str));
    }
    let resp = timed(timeout, "TxnOffsetCommit", conn.call_at(req, version)).await?;
    for t in &resp.topics {
        for p in &t.partitions {
            let what = format!("TxnOffsetCommit of {}-{} in group '{}'", t.name.0, p.partition_index, group.group_id);
            if let Some(e) = Error::from_code(p.error_code, what, None) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// EndTxn (commit or abort). From v5 (KIP-890 part 2) the coordinator bumps the epoch and
/// answers with the ids to use next.
pub(crate) async fn end_txn(
    conn: &Connection,
    transactional_id: &str,
    ids: IdAndEpoch,
    commit: bool,
    timeout: Duration,
) -> Result<Option<IdAndEpoch>> {
    let version = conn.version::<EndTxnRequest>(5)?;
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str(transactional_id)))
        .with_producer_id(ProducerId(ids.producer_id))
        .with_producer_epoch(ids.epoch)
        .with_committed(commit);
    let resp = timed(timeout, "EndTxn", conn.call_at(req, version)).await?;
    let what =
        format!("EndTxn ({}) for transactional.id '{transactional_id}'", if commit { "commit" } else { "abort" });
    if let Some(e) = Error::from_code(resp.error_code, what, None) {
        return Err(e);
    }
    Ok((version >= 5 && resp.producer_id.0 >= 0)
        .then_some(IdAndEpoch { producer_id: resp.producer_id.0, epoch: resp.producer_epoch }))
}
