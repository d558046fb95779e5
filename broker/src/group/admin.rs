//! ListGroups, DescribeGroups and DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use super::offsets::remove_offsets;
use super::state::{Group, GroupState};
use super::{
    Ctx, DeleteGroups, DescribeGroups, DescribedGroup, ErrorCode, ListGroups, ListedGroup, RequestId, Response,
    TopicPartition,
};

/// Every group (optionally only those in the given states), by group id.
pub(super) fn list_groups(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, l: ListGroups) {
    let listed = groups
        .values()
        .filter(|g| l.states.is_empty() || l.states.contains(&g.state))
        .map(|g| ListedGroup {
            group_id: g.id.clone(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            state: g.state,
        })
        .collect();
    ctx.respond(request, Response::ListGroups(listed));
}

/// Describe groups; unknown ones are Dead with no error, as Kafka answers.
pub(super) fn describe_groups(
    groups: &mut BTreeMap<String, Group>,
    ctx: &mut Ctx<'_>,
    request: RequestId,
    d: DescribeGroups,
) {
    let described = d
        .group_ids
        .into_iter()
        .map(|id| match groups.get(&id) {
            Some(g) => g.describe(),
            None => DescribedGroup {
                group_id: id,
                error: ErrorCode::None,
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            },
        })
        .collect();
    ctx.respond(request, Response::DescribeGroups(described));
}

/// Delete groups without members, with all their offsets.
pub(super) fn delete_groups(
    groups: &mut BTreeMap<String, Group>,
    ctx: &mut Ctx<'_>,
    request: RequestId,
    d: DeleteGroups,
) {
    let mut results = Vec::with_capacity(d.group_ids.len());
    for id in d.group_ids {
        let error = match groups.get_mut(&id) {
            None => ErrorCode::GroupIdNotFound,
            Some(g) if g.state != GroupState::Empty => ErrorCode::NonEmptyGroup,
            Some(g) => {
                // Offsets of open transactions go too (their tombstones drop them on replay).
                let pending = g.txn_offsets.values().flat_map(|o| o.keys());
                let all: BTreeSet<TopicPartition> = g.offsets.keys().chain(pending).cloned().collect();
                let all: Vec<TopicPartition> = all.into_iter().collect();
                // Member ids handed out with MEMBER_ID_REQUIRED die with the group.
                g.pending.clear();
                remove_offsets(groups, ctx, &id, &all);
                ErrorCode::None
            }
        };
        results.push((id, error));
    }
    ctx.respond(request, Response::DeleteGroups(results));
}
