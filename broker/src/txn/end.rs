//! EndTxn: commit or abort the open transaction; the answer goes out once the Prepare record is
//! stored, the markers follow.
//!
//! Before v5 the epoch stays and the producer must send its current epoch exactly:
//!
//! | state          | commit                  | abort                   |
//! |----------------|-------------------------|-------------------------|
//! | Ongoing        | PrepareCommit, markers  | PrepareAbort, markers   |
//! | CompleteCommit | NONE (a retry)          | INVALID_TXN_STATE       |
//! | CompleteAbort  | INVALID_TXN_STATE       | NONE (a retry)          |
//! | PrepareCommit  | CONCURRENT_TRANSACTIONS | INVALID_TXN_STATE       |
//! | PrepareAbort   | INVALID_TXN_STATE       | CONCURRENT_TRANSACTIONS |
//! | Empty          | INVALID_TXN_STATE       | INVALID_TXN_STATE       |
//!
//! From v5 (KIP-890 part 2) every end bumps the epoch: the Prepare record and the markers carry
//! epoch + 1 and the answer gives it to the producer (at an exhausted epoch, a new producer id at
//! epoch 0 instead, taken when the markers are done). A retry is recognised by its epoch being
//! one below the current one; an abort is also accepted with no partitions added (Empty).

use std::collections::BTreeMap;

use super::state::{epoch_exhausted, Txn};
use super::{Ctx, EndTxn, ErrorCode, IdSource, ProducerAnswer, RequestId, Response, TxnState};

pub(super) fn end_txn(
    txns: &mut BTreeMap<String, Txn>,
    ctx: &mut Ctx<'_>,
    new_id: &mut IdSource,
    request: RequestId,
    r: EndTxn,
) {
    let answer = |ctx: &mut Ctx<'_>, a: ProducerAnswer| ctx.respond(request, Response::EndTxn(a));
    let fail = |ctx: &mut Ctx<'_>, e: ErrorCode| answer(ctx, ProducerAnswer::error(e));
    if r.transactional_id.is_empty() {
        return fail(ctx, ErrorCode::InvalidRequest);
    }
    let Some(txn) = txns.get_mut(&r.transactional_id) else { return fail(ctx, ErrorCode::InvalidProducerIdMapping) };
    let current = |txn: &Txn| ProducerAnswer::ok(txn.v.producer_id, txn.v.producer_epoch);
    use TxnState::*;
    if !r.bump_epoch {
        if txn.v.producer_id != r.producer_id {
            return fail(ctx, ErrorCode::InvalidProducerIdMapping);
        }
        if txn.v.producer_epoch != r.producer_epoch {
            return fail(ctx, ErrorCode::ProducerFenced);
        }
        match (txn.v.state, r.commit) {
            (Ongoing, commit) => {
                txn.prepare(ctx, commit);
                answer(ctx, current(txn));
                txn.send_markers(ctx);
            }
            (CompleteCommit, true) | (CompleteAbort, false) => answer(ctx, current(txn)),
            (PrepareCommit, true) | (PrepareAbort, false) => fail(ctx, ErrorCode::ConcurrentTransactions),
            _ => fail(ctx, ErrorCode::InvalidTxnState),
        }
        return;
    }
    // KIP-890 part 2, as Kafka's TransactionCoordinator.endTransaction for transaction version 2.
    let retry_on_overflow =
        txn.v.previous_producer_id == r.producer_id && r.producer_epoch == i16::MAX - 1 && txn.v.producer_epoch == 0;
    let retry_on_bump = txn.v.producer_epoch as i32 == r.producer_epoch as i32 + 1;
    if txn.v.producer_id != r.producer_id && !retry_on_overflow {
        return fail(ctx, ErrorCode::InvalidProducerIdMapping);
    }
    let same_txn = txn.v.producer_epoch == r.producer_epoch && !matches!(txn.v.state, CompleteCommit | CompleteAbort);
    if !(same_txn || retry_on_overflow || retry_on_bump) {
        return fail(ctx, ErrorCode::ProducerFenced);
    }
    let retry = retry_on_bump || retry_on_overflow;
    match (txn.v.state, r.commit) {
        (Ongoing, commit) => prepare_bumped(txn, ctx, new_id, request, commit, false),
        (CompleteCommit, true) | (CompleteAbort, false) if retry => answer(ctx, current(txn)),
        (CompleteAbort, false) | (Empty, false) => prepare_bumped(txn, ctx, new_id, request, false, true),
        (CompleteCommit, false) if !retry => prepare_bumped(txn, ctx, new_id, request, false, true),
        (PrepareCommit, true) | (PrepareAbort, false) => fail(ctx, ErrorCode::ConcurrentTransactions),
        _ => fail(ctx, ErrorCode::InvalidTxnState),
    }
}

/// Prepare the end with the epoch bumped (EndTxn v5+), answer with the producer id and epoch for
/// the next transaction, then send the markers.
fn prepare_bumped(
    txn: &mut Txn,
    ctx: &mut Ctx<'_>,
    new_id: &mut IdSource,
    request: RequestId,
    commit: bool,
    no_partitions_added: bool,
) {
    let next_pid = if epoch_exhausted(txn.v.producer_epoch) {
        match new_id() {
            Some(pid) => pid,
            None => {
                let a = ProducerAnswer::error(ErrorCode::CoordinatorNotAvailable);
                return ctx.respond(request, Response::EndTxn(a));
            }
        }
    } else {
        -1
    };
    txn.v.last_producer_epoch = txn.v.producer_epoch;
    txn.v.producer_epoch = txn.v.producer_epoch.saturating_add(1);
    txn.v.next_producer_id = next_pid;
    txn.v.client_txn_version = 2;
    if no_partitions_added {
        txn.v.start_ms = ctx.now;
    }
    txn.prepare(ctx, commit);
    let a = if next_pid != -1 {
        ProducerAnswer::ok(next_pid, 0)
    } else {
        ProducerAnswer::ok(txn.v.producer_id, txn.v.producer_epoch)
    };
    ctx.respond(request, Response::EndTxn(a));
    txn.send_markers(ctx);
}
