//! Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit, and the end of transactions.
//!
//! A TxnOffsetCommit is validated like Kafka's classic group does it, then written as one
//! transactional batch of the producer ([`Effect::PersistTxn`](super::Effect::PersistTxn)). Once
//! written, its offsets are pending for that producer: OffsetFetch does not show them (and with
//! `require_stable` answers UNSTABLE_OFFSET_COMMIT) until the transaction ends. When the
//! commit marker is in the log the pending offsets replace the committed ones that were written
//! before them (a commit written later wins, as in Kafka's `completePendingTxnOffsetCommit`); an
//! abort drops them.

use std::collections::BTreeMap;

use super::offsets::offset_records;
use super::record::Record;
use super::state::{Group, GroupState, Stored};
use super::{Ctx, Effect, ErrorCode, PartitionResult, RequestId, Response, TopicPartition, TxnOffsetCommit, TxnWrite};

/// Handle a TxnOffsetCommit: check the member, then ask for the transactional write.
pub(super) fn commit(groups: &BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, c: TxnOffsetCommit) {
    let all = |error| c.offsets.iter().map(|o| PartitionResult { partition: o.partition.clone(), error }).collect();
    let error = if c.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else {
        match groups.get(&c.group_id) {
            Some(group) => check_member(group, &c),
            // Kafka creates the group; it exists here once the offsets are written.
            None => check_member(&Group::new(&c.group_id), &c),
        }
    };
    if !error.is_ok() {
        tracing::debug!(group = %c.group_id, transactional_id = %c.transactional_id, %error, "txn offset commit refused");
        return ctx.respond(request, Response::TxnOffsetCommit(all(error)));
    }
    let (records, results) = offset_records(ctx, &c.group_id, c.offsets);
    if !records.is_empty() {
        let position = ctx.next_position();
        ctx.out.push(Effect::PersistTxn(TxnWrite {
            request,
            group_id: c.group_id,
            transactional_id: c.transactional_id,
            producer_id: c.producer_id,
            producer_epoch: c.producer_epoch,
            position,
            records,
        }));
    }
    ctx.respond(request, Response::TxnOffsetCommit(results));
}

/// Kafka's classic-group check for transactional commits: a request naming a member (v3+) must
/// come from a current member of the current generation; one without member id and generation
/// (v0-2 clients) is taken from anyone. Unlike OffsetCommit, the group's state does not matter.
fn check_member(group: &Group, c: &TxnOffsetCommit) -> ErrorCode {
    let instance = c.group_instance_id.as_deref();
    if c.generation_id < 0 && group.state == GroupState::Empty {
        return ErrorCode::None;
    }
    if c.generation_id < 0 && c.member_id.is_empty() && instance.is_none() {
        return ErrorCode::None;
    }
    if group.is_fenced(instance, &c.member_id) {
        ErrorCode::FencedInstanceId
    } else if !group.members.contains_key(&c.member_id) {
        ErrorCode::UnknownMemberId
    } else if c.generation_id != group.generation {
        ErrorCode::IllegalGeneration
    } else {
        ErrorCode::None
    }
}

/// The write is in the log: its offsets are pending for the producer.
pub(super) fn written(groups: &mut BTreeMap<String, Group>, w: &TxnWrite) {
    let group = groups.entry(w.group_id.clone()).or_insert_with(|| Group::new(&w.group_id));
    let pending = group.txn_offsets.entry(w.producer_id).or_default();
    for r in &w.records {
        if let Record::Offset { partition, value: Some(value), .. } = r {
            pending.insert(partition.clone(), Stored { value: value.clone(), position: w.position });
        }
    }
}

/// The transaction of `producer_id` ended (its marker is in the partitions of the groups for
/// which `in_partition` holds): commit or drop its pending offsets.
pub(super) fn complete(
    groups: &mut BTreeMap<String, Group>,
    producer_id: i64,
    commit: bool,
    in_partition: impl Fn(&str) -> bool,
) {
    for group in groups.values_mut().filter(|g| in_partition(&g.id)) {
        let Some(pending) = group.txn_offsets.remove(&producer_id) else { continue };
        tracing::debug!(group = %group.id, producer_id, commit, offsets = pending.len(), "transaction ended");
        if commit {
            end_txn(&mut group.offsets, pending);
        }
    }
}

/// Commit `pending` into `offsets`: each replaces the offset written before it, or none.
pub(super) fn end_txn(offsets: &mut BTreeMap<TopicPartition, Stored>, pending: BTreeMap<TopicPartition, Stored>) {
    for (tp, s) in pending {
        if offsets.get(&tp).is_none_or(|current| current.position < s.position) {
            offsets.insert(tp, s);
        }
    }
}
