//! One transactional id in memory, and the transitions every request path shares: preparing an
//! end, writing markers, completing, fencing.

use std::collections::BTreeSet;

use super::{Ctx, Effect, TxnRecord, TxnState, TxnValue};
use crate::group::TopicPartition;

/// The highest epoch a producer id is used with before InitProducerId (or an EndTxn v5 bump)
/// moves the transactional id to a new producer id: `i16::MAX - 1`, leaving one bump for fencing.
pub(super) fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Markers still to be written for a transaction in a Prepare state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingMarkers {
    /// Partitions whose marker is not written yet.
    pub partitions: Vec<TopicPartition>,
    /// When to (re)send them; `None` while the driver is writing them.
    pub due: Option<i64>,
}

/// A transactional id: what is stored, plus the markers in flight.
#[derive(Debug, Clone)]
pub(super) struct Txn {
    pub id: String,
    pub v: TxnValue,
    /// In PrepareCommit/PrepareAbort: the markers still to write.
    pub markers: Option<PendingMarkers>,
}

impl Txn {
    /// A new id with producer id `producer_id` and no epoch yet (the first InitProducerId makes it 0).
    pub fn new(id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        let v = TxnValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now,
            start_ms: -1,
            client_txn_version: 0,
        };
        Self { id: id.to_owned(), v, markers: None }
    }

    /// Store the current state.
    pub fn persist(&mut self, ctx: &mut Ctx<'_>) {
        self.v.last_update_ms = ctx.now;
        ctx.out.push(Effect::Persist(TxnRecord { transactional_id: self.id.clone(), value: Some(self.v.clone()) }));
    }

    /// Move to PrepareCommit or PrepareAbort and store it. Markers follow with [`Txn::send_markers`]
    /// (after the answer to the request, which only needs the Prepare record stored).
    pub fn prepare(&mut self, ctx: &mut Ctx<'_>, commit: bool) {
        self.v.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        self.persist(ctx);
    }

    /// Ask the driver to write the markers of a prepared transaction; with no partitions there is
    /// nothing to mark and the transaction completes at once.
    pub fn send_markers(&mut self, ctx: &mut Ctx<'_>) {
        let partitions: Vec<TopicPartition> = self.v.partitions.iter().cloned().collect();
        if partitions.is_empty() {
            self.complete(ctx);
            return;
        }
        self.markers = Some(PendingMarkers { partitions: partitions.clone(), due: None });
        ctx.out.push(self.write_markers(partitions));
    }

    /// The WriteMarkers effect for `partitions`.
    pub fn write_markers(&self, partitions: Vec<TopicPartition>) -> Effect {
        Effect::WriteMarkers {
            transactional_id: self.id.clone(),
            producer_id: self.v.producer_id,
            producer_epoch: self.v.producer_epoch,
            commit: self.v.state == TxnState::PrepareCommit,
            partitions,
        }
    }

    /// Every marker is written: CompleteCommit or CompleteAbort, stored. An epoch overflow at an
    /// EndTxn v5 moves to the next producer id here, at epoch 0.
    pub fn complete(&mut self, ctx: &mut Ctx<'_>) {
        self.v.state =
            if self.v.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        if self.v.next_producer_id != -1 {
            self.v.previous_producer_id = self.v.producer_id;
            self.v.producer_id = self.v.next_producer_id;
            self.v.producer_epoch = 0;
            self.v.next_producer_id = -1;
        }
        self.v.partitions.clear();
        self.markers = None;
        self.persist(ctx);
    }

    /// Abort the open transaction with the epoch bumped, so the producer that owns it is fenced
    /// (its next request, and its late writes at the partitions, carry an older epoch). Used by
    /// InitProducerId on an Ongoing transaction and by the timeout. No answer goes with it.
    pub fn fence_and_abort(&mut self, ctx: &mut Ctx<'_>) {
        self.v.producer_epoch = self.v.producer_epoch.saturating_add(1);
        self.v.last_producer_epoch = -1;
        self.prepare(ctx, false);
    }
}
