//! InitProducerId with a transactional id: a new producer id, or the next epoch of the current
//! one, fencing whatever producer held it before.
//!
//! | state                    | request                         | outcome                                   |
//! |--------------------------|---------------------------------|-------------------------------------------|
//! | unknown id               | any                             | new producer id, epoch 0                  |
//! | Empty / Complete*        | no producer id (a new producer) | epoch + 1 (fences the old one)            |
//! | Empty / Complete*        | current id and epoch (KIP-360)  | epoch + 1, the old epoch remembered       |
//! | Empty / Complete*        | current id, the remembered epoch| a retry: the same answer again            |
//! | Empty / Complete*        | other id or older epoch         | PRODUCER_FENCED                           |
//! | epoch exhausted          | no id, or the current epoch     | new producer id, epoch 0                  |
//! | Ongoing                  | valid                           | abort with epoch + 1, CONCURRENT_TRANSACTIONS (the retry gets epoch + 2) |
//! | PrepareCommit/Abort      | valid                           | CONCURRENT_TRANSACTIONS                   |

use std::collections::BTreeMap;

use super::state::{epoch_exhausted, Txn};
use super::{Ctx, ErrorCode, IdSource, InitProducerId, ProducerAnswer, RequestId, Response, TxnState};

pub(super) fn init_producer_id(
    txns: &mut BTreeMap<String, Txn>,
    ctx: &mut Ctx<'_>,
    new_id: &mut IdSource,
    request: RequestId,
    r: InitProducerId,
) {
    let answer = |ctx: &mut Ctx<'_>, a: ProducerAnswer| ctx.respond(request, Response::InitProducerId(a));
    let fail = |ctx: &mut Ctx<'_>, e: ErrorCode| answer(ctx, ProducerAnswer::error(e));
    if r.transactional_id.is_empty() {
        return fail(ctx, ErrorCode::InvalidRequest);
    }
    if r.timeout_ms <= 0 || r.timeout_ms > ctx.config.max_timeout_ms {
        return fail(ctx, ErrorCode::InvalidTransactionTimeout);
    }
    if !txns.contains_key(&r.transactional_id) {
        let Some(pid) = new_id() else { return fail(ctx, ErrorCode::CoordinatorNotAvailable) };
        txns.insert(r.transactional_id.clone(), Txn::new(&r.transactional_id, pid, r.timeout_ms, ctx.now));
    }
    let txn = txns.get_mut(&r.transactional_id).expect("inserted above");
    if let Some((pid, epoch)) = r.expected {
        // Kafka's isValidProducerId: a just-created id, the current producer id, or a retry
        // of a request that moved the id on from an exhausted epoch.
        let valid = txn.v.producer_epoch == -1
            || pid == txn.v.producer_id
            || (pid == txn.v.previous_producer_id && epoch_exhausted(epoch));
        if !valid {
            return fail(ctx, ErrorCode::ProducerFenced);
        }
    }
    match txn.v.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => fail(ctx, ErrorCode::ConcurrentTransactions),
        TxnState::Ongoing => {
            // Abort what the old producer left open; the client retries and then gets a new epoch.
            txn.fence_and_abort(ctx);
            fail(ctx, ErrorCode::ConcurrentTransactions);
            txn.send_markers(ctx);
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
            let expected_epoch = r.expected.map(|(_, e)| e);
            if epoch_exhausted(txn.v.producer_epoch) && expected_epoch.is_none_or(|e| e == txn.v.producer_epoch) {
                let Some(pid) = new_id() else { return fail(ctx, ErrorCode::CoordinatorNotAvailable) };
                txn.v.last_producer_epoch = if expected_epoch.is_some() { txn.v.producer_epoch } else { -1 };
                txn.v.previous_producer_id = txn.v.producer_id;
                txn.v.producer_id = pid;
                txn.v.producer_epoch = 0;
            } else {
                let current = txn.v.producer_epoch;
                let (epoch, last) = match expected_epoch {
                    None => (current + 1, -1),
                    Some(e) if current == -1 || e == current => (current + 1, current),
                    // A retry of a bump whose answer was lost: the same answer again.
                    Some(e) if e == txn.v.last_producer_epoch => (current, txn.v.last_producer_epoch),
                    Some(_) => return fail(ctx, ErrorCode::ProducerFenced),
                };
                txn.v.producer_epoch = epoch;
                txn.v.last_producer_epoch = last;
            }
            txn.v.state = TxnState::Empty;
            txn.v.timeout_ms = r.timeout_ms;
            txn.v.partitions.clear();
            txn.v.start_ms = -1;
            txn.v.next_producer_id = -1;
            txn.persist(ctx);
            answer(ctx, ProducerAnswer::ok(txn.v.producer_id, txn.v.producer_epoch));
        }
    }
}
