//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, and retention.

use std::collections::BTreeMap;

use super::record::{OffsetValue, Record};
use super::state::{Group, GroupState, Stored};
use super::subscription::CONSUMER_PROTOCOL_TYPE;
use super::{
    CommitOffset, Ctx, ErrorCode, FetchedGroup, FetchedOffset, OffsetCommit, OffsetDelete, OffsetDeleteResponse,
    OffsetFetch, PartitionResult, RequestId, Response, TopicPartition,
};

/// Handle an OffsetCommit. Members must be in the current generation; simple consumers (no
/// member id, generation -1) may commit to a group without members. As in Kafka, a member may
/// commit offsets for partitions it is not assigned.
pub(super) fn commit(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, c: OffsetCommit) {
    let all = |error| c.offsets.iter().map(|o| PartitionResult { partition: o.partition.clone(), error }).collect();
    let instance = c.group_instance_id.as_deref();
    let group = match groups.get_mut(&c.group_id) {
        Some(g) => g,
        // No group-managed member would commit to a group that does not exist.
        None if c.generation_id >= 0 => {
            return ctx.respond(request, Response::OffsetCommit(all(ErrorCode::IllegalGeneration)))
        }
        None => groups.entry(c.group_id.clone()).or_insert_with(|| Group::new(&c.group_id)),
    };
    let error = if group.is_fenced(instance, &c.member_id) {
        ErrorCode::FencedInstanceId
    } else if c.generation_id < 0 && group.state == GroupState::Empty {
        ErrorCode::None
    } else if !group.members.contains_key(&c.member_id) {
        ErrorCode::UnknownMemberId
    } else if c.generation_id != group.generation {
        ErrorCode::IllegalGeneration
    } else {
        match group.state {
            // During PreparingRebalance commits are still taken: the member learns of the
            // rebalance from its next heartbeat.
            GroupState::Stable | GroupState::PreparingRebalance => {
                let member = group.members.get_mut(&c.member_id).expect("checked");
                member.heartbeat_deadline = ctx.now + member.session_timeout_ms as i64;
                ErrorCode::None
            }
            // The member has a generation but not its assignment yet.
            GroupState::CompletingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
        }
    };
    if !error.is_ok() {
        return ctx.respond(request, Response::OffsetCommit(all(error)));
    }
    let position = ctx.position; // the position the write below takes
    let (records, results) = offset_records(ctx, &group.id, c.offsets);
    for r in &records {
        if let Record::Offset { partition, value: Some(value), .. } = r {
            group.offsets.insert(partition.clone(), Stored { value: value.clone(), position });
        }
    }
    ctx.persist(&group.id, records);
    ctx.respond(request, Response::OffsetCommit(results));
}

/// The records for `offsets` committed now to `group_id`, and each partition's result: offsets
/// whose metadata exceeds `offset.metadata.max.bytes` are refused.
pub(super) fn offset_records(
    ctx: &Ctx<'_>,
    group_id: &str,
    offsets: Vec<CommitOffset>,
) -> (Vec<Record>, Vec<PartitionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(offsets.len());
    for o in offsets {
        let metadata = o.metadata.unwrap_or_default();
        if metadata.len() > ctx.config.offset_metadata_max_bytes {
            results.push(PartitionResult { partition: o.partition, error: ErrorCode::OffsetMetadataTooLarge });
            continue;
        }
        let value =
            OffsetValue { offset: o.offset, leader_epoch: o.leader_epoch, metadata, commit_timestamp_ms: ctx.now };
        records.push(Record::Offset {
            group_id: group_id.to_owned(),
            partition: o.partition.clone(),
            value: Some(value),
        });
        results.push(PartitionResult { partition: o.partition, error: ErrorCode::None });
    }
    (records, results)
}

/// Handle an OffsetFetch. Partitions without a committed offset (and unknown groups) answer
/// offset -1 without error. With `require_stable`, partitions an open transaction holds an
/// offset for answer UNSTABLE_OFFSET_COMMIT (offset -1) instead, as Kafka does; without it they
/// answer the last committed offset. Asking for every partition lists the committed ones.
pub(super) fn fetch(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, f: OffsetFetch) {
    let fetched = |group: Option<&Group>, partition: &TopicPartition| {
        let unstable = f.require_stable && group.is_some_and(|g| g.has_txn_offset(partition));
        let value = group.and_then(|g| g.offsets.get(partition)).map(|s| &s.value).filter(|_| !unstable);
        FetchedOffset {
            partition: partition.clone(),
            offset: value.map_or(-1, |v| v.offset),
            leader_epoch: value.map_or(-1, |v| v.leader_epoch),
            metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
            error: if unstable { ErrorCode::UnstableOffsetCommit } else { ErrorCode::None },
        }
    };
    let answer = f
        .groups
        .iter()
        .map(|g| {
            let group = groups.get(&g.group_id);
            let partitions = match &g.partitions {
                Some(wanted) => wanted.iter().map(|tp| fetched(group, tp)).collect(),
                None => group.into_iter().flat_map(|gr| gr.offsets.keys()).map(|tp| fetched(group, tp)).collect(),
            };
            FetchedGroup { group_id: g.group_id.clone(), error: ErrorCode::None, partitions }
        })
        .collect();
    ctx.respond(request, Response::OffsetFetch(answer));
}

/// Handle an OffsetDelete. A group with members keeps the offsets of topics it consumes; only a
/// `consumer` group can tell which those are, so other groups with members refuse entirely.
pub(super) fn delete(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, d: OffsetDelete) {
    let fail = |ctx: &mut Ctx<'_>, error| {
        ctx.respond(request, Response::OffsetDelete(OffsetDeleteResponse { error, partitions: Vec::new() }))
    };
    if d.group_id.is_empty() {
        return fail(ctx, ErrorCode::InvalidGroupId);
    }
    let Some(group) = groups.get_mut(&d.group_id) else {
        return fail(ctx, ErrorCode::GroupIdNotFound);
    };
    let consumer = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
    if group.state != GroupState::Empty && !consumer {
        return fail(ctx, ErrorCode::NonEmptyGroup);
    }
    let subscribed = |tp: &TopicPartition| {
        group.state != GroupState::Empty && group.subscribed_topics.as_ref().is_some_and(|t| t.contains(&tp.topic))
    };
    let results: Vec<PartitionResult> = d
        .partitions
        .iter()
        .map(|tp| PartitionResult {
            partition: tp.clone(),
            error: if subscribed(tp) { ErrorCode::GroupSubscribedToTopic } else { ErrorCode::None },
        })
        .collect();
    let doomed: Vec<TopicPartition> = results.iter().filter(|r| r.error.is_ok()).map(|r| r.partition.clone()).collect();
    remove_offsets(groups, ctx, &d.group_id, &doomed);
    ctx.respond(request, Response::OffsetDelete(OffsetDeleteResponse { error: ErrorCode::None, partitions: results }));
}

/// Remove `partitions`' offsets from a group, persisting tombstones. Open transactions' offsets
/// for them go too, as in Kafka (replaying the log drops them at the tombstone as well). A group
/// left empty and without offsets is gone (with a tombstone for its metadata, if it ever had a
/// generation).
pub(super) fn remove_offsets(
    groups: &mut BTreeMap<String, Group>,
    ctx: &mut Ctx<'_>,
    group_id: &str,
    partitions: &[TopicPartition],
) {
    let Some(group) = groups.get_mut(group_id) else { return };
    let mut records = Vec::new();
    for tp in partitions {
        let committed = group.offsets.remove(tp).is_some();
        let mut pending = false;
        for o in group.txn_offsets.values_mut() {
            pending |= o.remove(tp).is_some();
        }
        if committed || pending {
            records.push(Record::Offset { group_id: group_id.to_owned(), partition: tp.clone(), value: None });
        }
    }
    group.txn_offsets.retain(|_, pending| !pending.is_empty());
    if group.is_unused() {
        if group.generation > 0 {
            records.push(Record::Group { group_id: group_id.to_owned(), value: None });
        }
        tracing::info!(group = %group_id, generation = group.generation, "group removed");
        groups.remove(group_id);
    }
    ctx.persist(group_id, records);
}

/// The offsets of `group` that have outlived `offsets.retention.minutes`: all of them once an
/// empty group has been empty that long (by commit time for groups that only store offsets),
/// and in a stable consumer group those of topics no member subscribes to any more.
fn expired(group: &Group, now: i64, retention: i64) -> Vec<TopicPartition> {
    let old = |since: i64| now - since >= retention;
    let pick = |keep: &dyn Fn(&TopicPartition, &OffsetValue) -> bool| {
        group.offsets.iter().filter(|(tp, v)| !keep(tp, &v.value)).map(|(tp, _)| tp.clone()).collect()
    };
    match (&group.protocol_type, group.state) {
        (Some(_), GroupState::Empty) => pick(&|_, v| !old(group.state_since.unwrap_or(v.commit_timestamp_ms))),
        (None, _) => pick(&|_, v| !old(v.commit_timestamp_ms)),
        (Some(t), GroupState::Stable) if t == CONSUMER_PROTOCOL_TYPE => match &group.subscribed_topics {
            Some(topics) => pick(&|tp, v| topics.contains(&tp.topic) || !old(v.commit_timestamp_ms)),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Expire old offsets of every group, and remove groups left with nothing.
pub(super) fn expire_offsets(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>) {
    let retention = ctx.config.offsets_retention_ms;
    let work: Vec<(String, Vec<TopicPartition>)> =
        groups.values().map(|g| (g.id.clone(), expired(g, ctx.now, retention))).collect();
    for (group_id, partitions) in work {
        if !partitions.is_empty() {
            tracing::info!(group = %group_id, count = partitions.len(), "offsets expired");
        }
        remove_offsets(groups, ctx, &group_id, &partitions);
    }
}
