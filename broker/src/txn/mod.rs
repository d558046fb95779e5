//! The transaction coordinator, as a state machine without I/O.
//!
//! [`TxnCoordinator`] holds every transactional id this broker coordinates: its producer id and
//! epoch, the state of its transaction and the partitions in it. A driver feeds it decoded
//! requests with [`step`](TxnCoordinator::step), calls [`tick`](TxnCoordinator::tick) as time
//! passes (at the latest by [`next_deadline`](TxnCoordinator::next_deadline)), and carries out the
//! [`Effect`]s in order: records to append to `__transaction_state` before the answers that
//! follow them, answers, and markers to write to the partitions of a transaction that ends. When
//! the markers of a `WriteMarkers` effect are written (or some failed), the driver reports with
//! [`markers_written`](TxnCoordinator::markers_written), and the transaction completes (or those
//! markers are retried after `marker_retry_backoff_ms`). On start the driver replays the topic
//! through [`load`](TxnCoordinator::load); transactions found half-ended get their markers
//! written again on the next tick. Time is passed in; nothing here reads a clock, a socket or a
//! file. New producer ids come from the source given at construction.
//!
//! Behaviour follows Kafka's TransactionCoordinator: Empty -> Ongoing (AddPartitionsToTxn,
//! AddOffsetsToTxn) -> PrepareCommit/PrepareAbort (EndTxn) -> CompleteCommit/CompleteAbort
//! (markers written) -> Ongoing ... InitProducerId bumps the epoch (fencing older producers) and
//! aborts a transaction left open; a transaction open longer than its timeout is aborted with
//! the epoch bumped, checked every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
//! KIP-360 retries of InitProducerId and KIP-890 part 2 epoch bumps at EndTxn v5 are supported.
//!
//! - `request.rs`: requests, answers and effects; `error.rs`: the error codes.
//! - `init.rs`, `add.rs`, `end.rs`: the requests; `state.rs`: transitions they share.
//! - `record.rs`: the `__transaction_state` records and their binary format.

mod add;
mod config;
mod end;
mod error;
mod init;
mod record;
mod request;
mod state;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use config::*;
pub use error::ErrorCode;
pub use record::{
    DecodeError, TxnRecord, TxnState, TxnValue, DEFAULT_TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
pub use request::*;

use crate::group::{partition_for, TopicPartition, OFFSETS_TOPIC};
use state::{PendingMarkers, Txn};

/// Hands out new producer ids; `None` when none is available right now (answered as
/// COORDINATOR_NOT_AVAILABLE, which clients retry).
type IdSource = Box<dyn FnMut() -> Option<i64> + Send>;

/// Every transactional id this broker coordinates. See the [module docs](self) for the contract.
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, Txn>,
    /// When open transactions are next checked against their timeouts.
    next_abort_check_ms: Option<i64>,
    new_id: IdSource,
}

impl fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnCoordinator")
            .field("config", &self.config)
            .field("txns", &self.txns.len())
            .field("next_abort_check_ms", &self.next_abort_check_ms)
            .finish()
    }
}

/// What a transition needs: the time, the settings, and where effects go.
struct Ctx<'a> {
    now: i64,
    config: &'a TxnConfig,
    out: Vec<Effect>,
}

impl Ctx<'_> {
    fn respond(&mut self, request: RequestId, response: Response) {
        self.out.push(Effect::Respond { request, response });
    }
}

impl TxnCoordinator {
    /// A coordinator with no transactional ids (check `config` with [`TxnConfig::validate`]
    /// first), taking new producer ids from `new_producer_id`.
    pub fn new(config: TxnConfig, new_producer_id: impl FnMut() -> Option<i64> + Send + 'static) -> Self {
        Self { config, txns: BTreeMap::new(), next_abort_check_ms: None, new_id: Box::new(new_producer_id) }
    }

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// What is known about `transactional_id`, as it would be stored.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnValue> {
        self.txns.get(transactional_id).map(|t| &t.v)
    }

    /// Handle one request arriving at `now_ms`; its answer is among the effects.
    pub fn step(&mut self, now_ms: i64, request: RequestId, req: Request) -> Vec<Effect> {
        self.next_abort_check_ms.get_or_insert(now_ms + self.config.abort_check_interval_ms);
        let mut ctx = Ctx { now: now_ms, config: &self.config, out: Vec::new() };
        let txns = &mut self.txns;
        match req {
            Request::InitProducerId(r) => init::init_producer_id(txns, &mut ctx, &mut self.new_id, request, r),
            Request::AddPartitions(r) => {
                let e = add::add_partitions(
                    txns,
                    &mut ctx,
                    &r.transactional_id,
                    r.producer_id,
                    r.producer_epoch,
                    r.partitions,
                );
                ctx.respond(request, Response::AddPartitions(e));
            }
            Request::AddOffsets(r) => {
                let p = partition_for(&r.group_id, ctx.config.offsets_topic_partitions);
                let tp = vec![TopicPartition::new(OFFSETS_TOPIC, p)];
                let e = add::add_partitions(txns, &mut ctx, &r.transactional_id, r.producer_id, r.producer_epoch, tp);
                ctx.respond(request, Response::AddOffsets(e));
            }
            Request::EndTxn(r) => end::end_txn(txns, &mut ctx, &mut self.new_id, request, r),
        }
        ctx.out
    }

    /// The driver finished a `WriteMarkers` effect: the markers went to every partition except
    /// `failed` (partitions that refused them for now; a partition that no longer exists counts
    /// as written). When none failed the transaction completes; otherwise the failed ones are
    /// sent again after `marker_retry_backoff_ms`. A report that no longer matches the
    /// transaction (another producer id or epoch, or not in a Prepare state) is ignored.
    pub fn markers_written(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        failed: Vec<TopicPartition>,
    ) -> Vec<Effect> {
        let mut ctx = Ctx { now: now_ms, config: &self.config, out: Vec::new() };
        let Some(txn) = self.txns.get_mut(transactional_id) else { return ctx.out };
        if !txn.v.state.is_prepare() || txn.v.producer_id != producer_id || txn.v.producer_epoch != producer_epoch {
            tracing::warn!(
                transactional_id,
                producer_id,
                producer_epoch,
                "markers reported for a finished transaction"
            );
            return ctx.out;
        }
        if failed.is_empty() {
            txn.complete(&mut ctx);
        } else {
            let due = Some(now_ms + self.config.marker_retry_backoff_ms);
            txn.markers = Some(PendingMarkers { partitions: failed, due });
        }
        ctx.out
    }

    /// Let time pass to `now_ms`: send markers that are due again, and (every
    /// `abort_check_interval_ms`) abort transactions open longer than their timeout, bumping the
    /// epoch so that their producer is fenced.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut ctx = Ctx { now: now_ms, config: &self.config, out: Vec::new() };
        for txn in self.txns.values_mut() {
            if let Some(m) = txn.markers.as_mut().filter(|m| m.due.is_some_and(|d| d <= now_ms)) {
                m.due = None;
                let partitions = m.partitions.clone();
                ctx.out.push(txn.write_markers(partitions));
            }
        }
        let next = *self.next_abort_check_ms.get_or_insert(now_ms + self.config.abort_check_interval_ms);
        if now_ms >= next {
            for txn in self.txns.values_mut() {
                if txn.v.state == TxnState::Ongoing && txn.v.start_ms + (txn.v.timeout_ms as i64) < now_ms {
                    tracing::info!(transactional_id = %txn.id, producer_id = txn.v.producer_id,
                        "transaction timed out after {} ms; aborting it", txn.v.timeout_ms);
                    txn.fence_and_abort(&mut ctx);
                    txn.send_markers(&mut ctx);
                }
            }
            self.next_abort_check_ms = Some(now_ms + self.config.abort_check_interval_ms);
        }
        ctx.out
    }

    /// The earliest time at which [`tick`](Self::tick) has something to do, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let markers = self.txns.values().filter_map(|t| t.markers.as_ref()?.due);
        markers.chain(self.next_abort_check_ms).min()
    }

    /// Rebuild from `__transaction_state` records, oldest first, at `now_ms`. Pass every record of
    /// a partition: the ids the records name replace those in memory. Transactions left in
    /// PrepareCommit/PrepareAbort get their markers written again on the next [`tick`](Self::tick).
    pub fn load(&mut self, now_ms: i64, records: impl IntoIterator<Item = TxnRecord>) {
        self.next_abort_check_ms.get_or_insert(now_ms + self.config.abort_check_interval_ms);
        let mut latest: BTreeMap<String, Option<TxnValue>> = BTreeMap::new();
        for r in records {
            latest.insert(r.transactional_id, r.value);
        }
        for (id, value) in latest {
            self.txns.remove(&id);
            let Some(v) = value.filter(|v| v.state != TxnState::Dead) else { continue };
            let markers = v
                .state
                .is_prepare()
                .then(|| PendingMarkers { partitions: v.partitions.iter().cloned().collect(), due: Some(now_ms) });
            self.txns.insert(id.clone(), Txn { id, v, markers });
        }
    }

    /// Every transactional id and its state, ascending by id.
    pub fn list(&self) -> impl Iterator<Item = (&str, &TxnValue)> {
        self.txns.iter().map(|(id, t)| (id.as_str(), &t.v))
    }
}

/// KIP-890 part 1: may producer `producer_id`/`producer_epoch` write transactional records to
/// `partition`, given what is stored for its transactional id (`None`: nothing)? Ok when the
/// transaction is Ongoing with the partition added and the producer matches. Otherwise, in
/// Kafka's order: INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id),
/// PRODUCER_FENCED (another epoch), CONCURRENT_TRANSACTIONS (the transaction is ending),
/// INVALID_TXN_STATE (the partition is not in an open transaction).
pub fn verify(
    value: Option<&TxnValue>,
    producer_id: i64,
    producer_epoch: i16,
    partition: &TopicPartition,
) -> Result<(), ErrorCode> {
    let Some(v) = value else { return Err(ErrorCode::InvalidProducerIdMapping) };
    if v.producer_id != producer_id {
        return Err(ErrorCode::InvalidProducerIdMapping);
    }
    if v.producer_epoch != producer_epoch {
        return Err(ErrorCode::ProducerFenced);
    }
    if v.state.is_prepare() {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    if v.state != TxnState::Ongoing || !v.partitions.contains(partition) {
        return Err(ErrorCode::InvalidTxnState);
    }
    Ok(())
}
