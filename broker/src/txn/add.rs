//! AddPartitionsToTxn and AddOffsetsToTxn: partitions join the open transaction (opening one).
//!
//! Checks in Kafka's order: the producer id must be the transactional id's
//! (INVALID_PRODUCER_ID_MAPPING), the epoch the current one (PRODUCER_FENCED), and the previous
//! transaction must have finished (CONCURRENT_TRANSACTIONS while its markers are written).
//! Partitions already in an Ongoing transaction are acknowledged without a write.

use std::collections::BTreeMap;

use super::state::Txn;
use super::{Ctx, ErrorCode, TxnState};
use crate::group::TopicPartition;

/// Add `partitions` to the transaction of `id` for producer `producer_id`/`producer_epoch`;
/// returns the error to answer with (after the Persist effect it may have pushed).
pub(super) fn add_partitions(
    txns: &mut BTreeMap<String, Txn>,
    ctx: &mut Ctx<'_>,
    id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<TopicPartition>,
) -> ErrorCode {
    if id.is_empty() {
        return ErrorCode::InvalidRequest;
    }
    let Some(txn) = txns.get_mut(id) else { return ErrorCode::InvalidProducerIdMapping };
    if txn.v.producer_id != producer_id {
        return ErrorCode::InvalidProducerIdMapping;
    }
    if txn.v.producer_epoch != producer_epoch {
        return ErrorCode::ProducerFenced;
    }
    match txn.v.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => ErrorCode::ConcurrentTransactions,
        TxnState::Ongoing if partitions.iter().all(|p| txn.v.partitions.contains(p)) => ErrorCode::None,
        state => {
            if state != TxnState::Ongoing {
                txn.v.start_ms = ctx.now;
            }
            txn.v.state = TxnState::Ongoing;
            txn.v.partitions.extend(partitions);
            txn.persist(ctx);
            ErrorCode::None
        }
    }
}
