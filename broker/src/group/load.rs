//! Rebuilding groups and offsets from `__consumer_offsets`.

use std::collections::BTreeMap;

use super::record::{GroupValue, OffsetValue, Record};
use super::state::{Group, GroupState, Member};
use super::{Protocol, TopicPartition};

/// What the records say about one group, latest record winning.
#[derive(Default)]
struct Replayed {
    /// `Some(None)`: the metadata was deleted.
    metadata: Option<Option<GroupValue>>,
    offsets: BTreeMap<TopicPartition, Option<OffsetValue>>,
}

/// Replay `records` (oldest first) and put the groups they name into `groups`.
pub(super) fn load(groups: &mut BTreeMap<String, Group>, now: i64, records: impl IntoIterator<Item = Record>) {
    let mut replayed: BTreeMap<String, Replayed> = BTreeMap::new();
    for record in records {
        match record {
            Record::Offset { group_id, partition, value } => {
                replayed.entry(group_id).or_default().offsets.insert(partition, value);
            }
            Record::Group { group_id, value } => replayed.entry(group_id).or_default().metadata = Some(value),
        }
    }
    for (id, r) in replayed {
        groups.remove(&id);
        let offsets: BTreeMap<TopicPartition, OffsetValue> =
            r.offsets.into_iter().filter_map(|(tp, v)| Some((tp, v?))).collect();
        let mut group = match r.metadata.flatten() {
            Some(value) => rebuild(&id, value, now),
            None if offsets.is_empty() => continue,
            // Offsets only: a group used just to store offsets.
            None => Group::new(&id),
        };
        group.offsets = offsets;
        groups.insert(id, group);
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
