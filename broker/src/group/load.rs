//! Rebuilding groups and offsets from `__consumer_offsets`.

use std::collections::{BTreeMap, BTreeSet};

use super::record::{GroupValue, Record};
use super::state::{Group, GroupState, Member, Stored};
use super::txn_offsets::end_txn;
use super::{Protocol, TopicPartition};

/// One entry of a `__consumer_offsets` partition, as [`GroupCoordinator::load`] replays it.
///
/// [`GroupCoordinator::load`]: super::GroupCoordinator::load
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A record of a batch at log offset `position` (the batch's base offset: records written
    /// together share it). `producer_id` is set for records of a transactional batch.
    Record {
        /// The batch's base offset.
        position: i64,
        /// The producer of a transactional batch; `None` otherwise.
        producer_id: Option<i64>,
        /// The record.
        record: Record,
    },
    /// A control batch's marker: the transaction of `producer_id` ended here.
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// Committed (else aborted).
        commit: bool,
    },
}

/// What the entries say about one group, latest entry winning.
#[derive(Default)]
struct Replayed {
    /// `Some(None)`: the metadata was deleted.
    metadata: Option<Option<GroupValue>>,
    offsets: BTreeMap<TopicPartition, Stored>,
    /// Offsets of transactions without a marker yet, by producer id.
    txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, Stored>>,
}

/// Replay one partition's `entries` (oldest first) and put the groups they name into `groups`.
/// Returns the largest position seen (-1 if none).
///
/// As in Kafka's loader, a transactional offset is pending until its producer's marker: a commit
/// makes it the committed offset unless a later-written offset is there, an abort drops it. As
/// at run time, an offset tombstone drops the pending offsets of its partition and a group
/// tombstone all of the group's.
pub(super) fn load(groups: &mut BTreeMap<String, Group>, now: i64, entries: impl IntoIterator<Item = LogEntry>) -> i64 {
    let mut replayed: BTreeMap<String, Replayed> = BTreeMap::new();
    // Producer id -> groups with offsets in its open transaction.
    let mut open: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut last = -1;
    for entry in entries {
        match entry {
            LogEntry::Record { position, producer_id, record } => {
                last = last.max(position);
                replay(&mut replayed, &mut open, position, producer_id, record);
            }
            LogEntry::Marker { producer_id, commit } => {
                for id in open.remove(&producer_id).into_iter().flatten() {
                    let r = replayed.get_mut(&id).expect("groups in open transactions are replayed");
                    match r.txn_offsets.remove(&producer_id) {
                        Some(pending) if commit => end_txn(&mut r.offsets, pending),
                        _ => {}
                    }
                }
            }
        }
    }
    for (id, r) in replayed {
        groups.remove(&id);
        let txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, Stored>> =
            r.txn_offsets.into_iter().filter(|(_, o)| !o.is_empty()).collect();
        let mut group = match r.metadata.flatten() {
            Some(value) => rebuild(&id, value, now),
            None if r.offsets.is_empty() && txn_offsets.is_empty() => continue,
            // Offsets only: a group used just to store offsets.
            None => Group::new(&id),
        };
        group.offsets = r.offsets;
        group.txn_offsets = txn_offsets;
        groups.insert(id, group);
    }
    last
}

fn replay(
    replayed: &mut BTreeMap<String, Replayed>,
    open: &mut BTreeMap<i64, BTreeSet<String>>,
    position: i64,
    producer_id: Option<i64>,
    record: Record,
) {
    match (record, producer_id) {
        (Record::Offset { group_id, partition, value }, Some(producer_id)) => {
            let r = replayed.entry(group_id.clone()).or_default();
            let pending = r.txn_offsets.entry(producer_id).or_default();
            match value {
                Some(value) => pending.insert(partition, Stored { value, position }),
                None => pending.remove(&partition),
            };
            open.entry(producer_id).or_default().insert(group_id);
        }
        (Record::Offset { group_id, partition, value }, None) => {
            let r = replayed.entry(group_id).or_default();
            match value {
                Some(value) => {
                    r.offsets.insert(partition, Stored { value, position });
                }
                None => {
                    r.offsets.remove(&partition);
                    r.txn_offsets.values_mut().for_each(|o| _ = o.remove(&partition));
                }
            }
        }
        (Record::Group { group_id, value }, _) => {
            let r = replayed.entry(group_id).or_default();
            if value.is_none() {
                r.txn_offsets.clear();
            }
            r.metadata = Some(value);
        }
    }
}

/// A group as its last metadata record left it: Stable with its members and assignments, or
/// Empty. Members must heartbeat within their session timeout from `now`.
fn rebuild(id: &str, v: GroupValue, now: i64) -> Group {
    let mut group = Group::new(id);
    group.generation = v.generation;
    group.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
    group.protocol = v.protocol;
    group.state_since = Some(v.current_state_timestamp_ms).filter(|t| *t >= 0);
    let protocol = group.protocol.clone().unwrap_or_default();
    for m in v.members {
        let member = Member {
            id: m.member_id,
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocols: vec![Protocol { name: protocol.clone(), metadata: m.subscription }],
            assignment: m.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline: now + m.session_timeout_ms as i64,
        };
        group.add_member(member);
    }
    // The stored leader wins over add_member's choice of the first member.
    group.leader = v.leader.filter(|l| group.members.contains_key(l)).or(group.leader.take());
    group.state = if group.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    group.subscribed_topics = group.compute_subscribed_topics();
    group
}
