//! SyncGroup, Heartbeat and LeaveGroup.

use std::collections::{BTreeMap, HashMap};

use super::rebalance::{propagate_assignment, remove_member_and_update, remove_pending_and_update};
use super::state::{Group, GroupState};
use super::{
    Ctx, ErrorCode, Heartbeat, LeaveGroup, LeaveGroupResponse, LeftMember, RequestId, Response, SyncGroup,
    SyncGroupResponse,
};

/// The checks SyncGroup and Heartbeat share: the group exists, the member is in it under this
/// instance id, and it is in the current generation.
fn check_member<'g>(
    groups: &'g mut BTreeMap<String, Group>,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<&'g mut Group, ErrorCode> {
    if group_id.is_empty() {
        return Err(ErrorCode::InvalidGroupId);
    }
    let group = groups.get_mut(group_id).ok_or(ErrorCode::UnknownMemberId)?;
    if group.is_fenced(instance_id, member_id) {
        Err(ErrorCode::FencedInstanceId)
    } else if !group.members.contains_key(member_id) {
        Err(ErrorCode::UnknownMemberId)
    } else if generation != group.generation {
        Err(ErrorCode::IllegalGeneration)
    } else {
        Ok(group)
    }
}

/// Handle a SyncGroup. While the group completes its rebalance, members wait here for the
/// leader's assignment; once it arrives it is persisted and handed to everyone waiting.
pub(super) fn sync_group(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, s: SyncGroup) {
    let fail = |ctx: &mut Ctx<'_>, e| ctx.respond(request, Response::SyncGroup(SyncGroupResponse::error(e)));
    let instance = s.group_instance_id.as_deref();
    let group = match check_member(groups, &s.group_id, &s.member_id, instance, s.generation_id) {
        Ok(g) => g,
        Err(e) => return fail(ctx, e),
    };
    if s.protocol_type.as_ref().is_some_and(|t| group.protocol_type.as_ref() != Some(t))
        || s.protocol_name.as_ref().is_some_and(|n| group.protocol.as_ref() != Some(n))
    {
        return fail(ctx, ErrorCode::InconsistentGroupProtocol);
    }
    match group.state {
        GroupState::Empty | GroupState::Dead => fail(ctx, ErrorCode::UnknownMemberId),
        GroupState::PreparingRebalance => fail(ctx, ErrorCode::RebalanceInProgress),
        GroupState::CompletingRebalance => {
            let member = group.members.get_mut(&s.member_id).expect("checked");
            if let Some(old) = member.awaiting_sync.replace(request) {
                ctx.respond(old, Response::SyncGroup(SyncGroupResponse::error(ErrorCode::RebalanceInProgress)));
            }
            group.pending_sync.remove(&s.member_id);
            if group.is_leader(&s.member_id) {
                let mut assignments: HashMap<String, bytes::Bytes> =
                    s.assignments.into_iter().map(|a| (a.member_id, a.assignment)).collect();
                for m in group.members.values_mut() {
                    // Members the leader left out get an empty assignment.
                    m.assignment = assignments.remove(&m.id).unwrap_or_default();
                }
                group.transition(GroupState::Stable, ctx.now);
                ctx.persist(&group.id.clone(), vec![group.metadata_record()]);
                propagate_assignment(group, ctx);
                tracing::info!(group = %group.id, generation = group.generation, "group stable");
            }
            if group.pending_sync.is_empty() {
                group.sync_deadline = None;
            }
        }
        GroupState::Stable => {
            group.pending_sync.remove(&s.member_id);
            if group.pending_sync.is_empty() {
                group.sync_deadline = None;
            }
            let member = group.members.get_mut(&s.member_id).expect("checked");
            member.heartbeat_deadline = ctx.now + member.session_timeout_ms as i64;
            let response = SyncGroupResponse {
                error: ErrorCode::None,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                assignment: member.assignment.clone(),
            };
            ctx.respond(request, Response::SyncGroup(response));
        }
    }
}

/// Handle a Heartbeat: it keeps the member's session alive and, during a rebalance, tells it to
/// rejoin.
pub(super) fn heartbeat(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, h: Heartbeat) {
    let instance = h.group_instance_id.as_deref();
    let error = match check_member(groups, &h.group_id, &h.member_id, instance, h.generation_id) {
        Err(e) => e,
        Ok(group) => {
            let state = group.state;
            let member = group.members.get_mut(&h.member_id).expect("checked");
            member.heartbeat_deadline = ctx.now + member.session_timeout_ms as i64;
            match state {
                GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
                GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
                GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            }
        }
    };
    ctx.respond(request, Response::Heartbeat(error));
}

/// Handle a LeaveGroup: each member named (by member id, or by instance id alone for static
/// members removed by an administrator) leaves, and the group rebalances without it.
pub(super) fn leave_group(groups: &mut BTreeMap<String, Group>, ctx: &mut Ctx<'_>, request: RequestId, l: LeaveGroup) {
    let answer = |error, members| Response::LeaveGroup(LeaveGroupResponse { error, members });
    if l.group_id.is_empty() {
        return ctx.respond(request, answer(ErrorCode::InvalidGroupId, Vec::new()));
    }
    let mut group = groups.get_mut(&l.group_id);
    let mut results = Vec::with_capacity(l.members.len());
    for m in l.members {
        let error = match group.as_deref_mut() {
            None => ErrorCode::UnknownMemberId,
            Some(group) => leave_one(group, ctx, &m.member_id, m.group_instance_id.as_deref()),
        };
        results.push(LeftMember { member_id: m.member_id, group_instance_id: m.group_instance_id, error });
    }
    ctx.respond(request, answer(ErrorCode::None, results));
}

fn leave_one(group: &mut Group, ctx: &mut Ctx<'_>, member_id: &str, instance: Option<&str>) -> ErrorCode {
    if member_id.is_empty() {
        return match instance.and_then(|i| group.static_members.get(i)).cloned() {
            Some(current) => {
                tracing::info!(group = %group.id, member = %current, "static member removed by instance id");
                remove_member_and_update(group, ctx, &current);
                ErrorCode::None
            }
            None => ErrorCode::UnknownMemberId,
        };
    }
    if group.pending.contains_key(member_id) {
        remove_pending_and_update(group, ctx, member_id);
        ErrorCode::None
    } else if group.is_fenced(instance, member_id) {
        ErrorCode::FencedInstanceId
    } else if group.members.contains_key(member_id) {
        tracing::info!(group = %group.id, member = %member_id, "member leaves");
        remove_member_and_update(group, ctx, member_id);
        ErrorCode::None
    } else {
        ErrorCode::UnknownMemberId
    }
}
