//! Rebalances: starting one, completing the join phase, handing out assignments, and taking
//! members out of a group.

use super::join::current_generation;
use super::state::{Group, GroupState, JoinTimer};
use super::{Ctx, ErrorCode, JoinGroupResponse, Response, SyncGroupResponse};

/// Start a rebalance unless one is already under way.
pub(super) fn maybe_prepare_rebalance(group: &mut Group, ctx: &mut Ctx<'_>) {
    if matches!(group.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty) {
        prepare_rebalance(group, ctx);
    }
}

/// Move to PreparingRebalance: members waiting for an assignment are told to rejoin, and the
/// join phase gets its timer (the initial delay for an empty group, else the rebalance timeout).
pub(super) fn prepare_rebalance(group: &mut Group, ctx: &mut Ctx<'_>) {
    if group.state == GroupState::CompletingRebalance {
        reset_and_propagate_error(group, ctx, ErrorCode::RebalanceInProgress);
    }
    group.pending_sync.clear();
    group.sync_deadline = None;
    let timeout = group.rebalance_timeout_ms();
    let delay = ctx.config.initial_rebalance_delay_ms as i64;
    group.join_timer = Some(if group.state == GroupState::Empty && delay > 0 {
        group.new_member_added = false;
        JoinTimer::Initial { deadline: ctx.now + delay, cap: ctx.now + timeout.max(delay) }
    } else {
        JoinTimer::Rebalance { deadline: ctx.now + timeout }
    });
    tracing::info!(group = %group.id, generation = group.generation, "preparing to rebalance");
    group.transition(GroupState::PreparingRebalance, ctx.now);
    try_complete_join(group, ctx);
}

/// Complete the join phase now if nothing more is awaited (outside the initial delay).
pub(super) fn try_complete_join(group: &mut Group, ctx: &mut Ctx<'_>) {
    if group.state == GroupState::PreparingRebalance
        && matches!(group.join_timer, Some(JoinTimer::Rebalance { .. }))
        && group.all_joined()
    {
        complete_join(group, ctx);
    }
}

/// End the join phase: dynamic members that did not rejoin are dropped (static ones keep their
/// place until their session expires), the next generation starts, and every waiting JoinGroup
/// is answered, the leader's with the member list.
pub(super) fn complete_join(group: &mut Group, ctx: &mut Ctx<'_>) {
    group.join_timer = None;
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in gone {
        tracing::info!(group = %group.id, member = %id, "member did not rejoin in time; removed");
        drop_member(group, ctx, &id);
    }
    if !group.members.is_empty() && !group.elect_joined_leader() {
        // Only static members that have not rejoined are left: wait for them (or their sessions).
        group.join_timer = Some(JoinTimer::Rebalance { deadline: ctx.now + group.rebalance_timeout_ms() });
        return;
    }
    group.init_next_generation(ctx.now);
    if group.state == GroupState::Empty {
        ctx.persist(&group.id.clone(), vec![group.metadata_record()]);
        return;
    }
    tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), "group joined");
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in &ids {
        let response = current_generation(group, id, group.is_leader(id), false);
        let member = group.members.get_mut(id).expect("member");
        if let Some(r) = member.awaiting_join.take() {
            ctx.respond(r, Response::JoinGroup(response));
        }
        member.is_new = false;
        member.heartbeat_deadline = ctx.now + member.session_timeout_ms as i64;
    }
    group.pending_sync = ids.into_iter().collect();
    group.sync_deadline = Some(ctx.now + group.rebalance_timeout_ms());
}

/// Clear every assignment and answer waiting SyncGroups with `error`.
pub(super) fn reset_and_propagate_error(group: &mut Group, ctx: &mut Ctx<'_>, error: ErrorCode) {
    for m in group.members.values_mut() {
        m.assignment = Default::default();
        if let Some(r) = m.awaiting_sync.take() {
            ctx.respond(r, Response::SyncGroup(SyncGroupResponse::error(error)));
            m.heartbeat_deadline = ctx.now + m.session_timeout_ms as i64;
        }
    }
}

/// Answer waiting SyncGroups with each member's assignment.
pub(super) fn propagate_assignment(group: &mut Group, ctx: &mut Ctx<'_>) {
    for m in group.members.values_mut() {
        if let Some(r) = m.awaiting_sync.take() {
            let response = SyncGroupResponse {
                error: ErrorCode::None,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                assignment: m.assignment.clone(),
            };
            ctx.respond(r, Response::SyncGroup(response));
            m.heartbeat_deadline = ctx.now + m.session_timeout_ms as i64;
        }
    }
}

/// Take a member out, answering its waiting requests with UNKNOWN_MEMBER_ID (it may rejoin).
pub(super) fn drop_member(group: &mut Group, ctx: &mut Ctx<'_>, member_id: &str) {
    if let Some(m) = group.remove_member(member_id) {
        if let Some(r) = m.awaiting_join {
            ctx.respond(r, Response::JoinGroup(JoinGroupResponse::error("", ErrorCode::UnknownMemberId)));
        }
        if let Some(r) = m.awaiting_sync {
            ctx.respond(r, Response::SyncGroup(SyncGroupResponse::error(ErrorCode::UnknownMemberId)));
        }
    }
}

/// Take a member out (it left, was fenced or expired) and let the group react: a rebalance, or
/// completing the one under way if it was waiting only for this member.
pub(super) fn remove_member_and_update(group: &mut Group, ctx: &mut Ctx<'_>, member_id: &str) {
    drop_member(group, ctx, member_id);
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare_rebalance(group, ctx),
        GroupState::PreparingRebalance => try_complete_join(group, ctx),
        GroupState::Empty | GroupState::Dead => {}
    }
}

/// Forget a member id handed out with MEMBER_ID_REQUIRED.
pub(super) fn remove_pending_and_update(group: &mut Group, ctx: &mut Ctx<'_>, member_id: &str) {
    group.pending.remove(member_id);
    try_complete_join(group, ctx);
}
