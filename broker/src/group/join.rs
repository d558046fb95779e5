//! JoinGroup: new members, rejoining members, static members replacing themselves.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::rebalance::{maybe_prepare_rebalance, prepare_rebalance, remove_member_and_update, try_complete_join};
use super::state::{Group, GroupState, JoinTimer, Member};
use super::{Ctx, ErrorCode, IdSource, JoinGroup, JoinGroupResponse, RequestId, Response, SyncGroupResponse};

fn fail(ctx: &mut Ctx<'_>, request: RequestId, member_id: &str, error: ErrorCode) {
    ctx.respond(request, Response::JoinGroup(JoinGroupResponse::error(member_id, error)));
}

/// Handle a JoinGroup. Successful joins are answered when the rebalance completes.
pub(super) fn join_group(
    groups: &mut BTreeMap<String, Group>,
    ctx: &mut Ctx<'_>,
    new_id: &mut IdSource,
    request: RequestId,
    j: JoinGroup,
) {
    if j.group_id.is_empty() {
        return fail(ctx, request, &j.member_id, ErrorCode::InvalidGroupId);
    }
    if j.session_timeout_ms < ctx.config.min_session_timeout_ms
        || j.session_timeout_ms > ctx.config.max_session_timeout_ms
    {
        return fail(ctx, request, &j.member_id, ErrorCode::InvalidSessionTimeout);
    }
    let group = match groups.get_mut(&j.group_id) {
        Some(g) => g,
        None if !j.member_id.is_empty() => return fail(ctx, request, &j.member_id, ErrorCode::UnknownMemberId),
        // Do not create a group for a join that cannot succeed.
        None if j.protocol_type.is_empty() || j.protocols.is_empty() => {
            return fail(ctx, request, &j.member_id, ErrorCode::InconsistentGroupProtocol)
        }
        None => groups.entry(j.group_id.clone()).or_insert_with(|| Group::new(&j.group_id)),
    };
    if !group.admits(&j.member_id, ctx.config.max_size) {
        if group.members.contains_key(&j.member_id) {
            remove_member_and_update(group, ctx, &j.member_id);
        }
        fail(ctx, request, "", ErrorCode::GroupMaxSizeReached);
    } else if !group.supports(&j.protocol_type, &j.protocols) {
        fail(ctx, request, &j.member_id, ErrorCode::InconsistentGroupProtocol);
    } else if j.member_id.is_empty() {
        let prefix = j.group_instance_id.as_deref().unwrap_or(&j.client_id);
        let member_id = format!("{prefix}-{}", new_id());
        join_new_member(group, ctx, request, j, member_id);
    } else {
        join_known_member(group, ctx, request, j);
    }
    if group.state == GroupState::PreparingRebalance {
        try_complete_join(group, ctx);
    }
}

/// A join without member id: static members take over their instance id's place, dynamic ones
/// get MEMBER_ID_REQUIRED first when the client is new enough to handle it.
fn join_new_member(group: &mut Group, ctx: &mut Ctx<'_>, request: RequestId, j: JoinGroup, member_id: String) {
    if let Some(instance) = &j.group_instance_id {
        match group.static_members.get(instance).cloned() {
            Some(old_id) => replace_static_member(group, ctx, request, j, &old_id, member_id),
            None => add_member_and_rebalance(group, ctx, request, j, member_id),
        }
    } else if j.require_known_member_id {
        group.pending.insert(member_id.clone(), ctx.now + j.session_timeout_ms as i64);
        fail(ctx, request, &member_id, ErrorCode::MemberIdRequired);
    } else {
        add_member_and_rebalance(group, ctx, request, j, member_id);
    }
}

fn join_known_member(group: &mut Group, ctx: &mut Ctx<'_>, request: RequestId, j: JoinGroup) {
    let member_id = j.member_id.clone();
    let instance = j.group_instance_id.as_deref();
    if group.pending.contains_key(&member_id) {
        // Pending ids are handed to dynamic members only.
        if instance.is_some() {
            return fail(ctx, request, &member_id, ErrorCode::UnknownMemberId);
        }
        return add_member_and_rebalance(group, ctx, request, j, member_id);
    }
    if group.is_fenced(instance, &member_id) {
        return fail(ctx, request, &member_id, ErrorCode::FencedInstanceId);
    }
    if !group.members.contains_key(&member_id) || instance.is_some_and(|i| !group.static_members.contains_key(i)) {
        return fail(ctx, request, &member_id, ErrorCode::UnknownMemberId);
    }
    let member = &group.members[&member_id];
    let unchanged = member.protocols == j.protocols;
    match group.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(group, ctx, request, j),
        // The member missed its JoinGroup answer: give it again.
        GroupState::CompletingRebalance if unchanged => {
            let leader = group.is_leader(&member_id);
            let response = current_generation(group, &member_id, leader, false);
            ctx.respond(request, Response::JoinGroup(response));
        }
        // A rejoining leader asks for a rebalance (e.g. the topics changed); followers without
        // changes just get the current generation back and sync.
        GroupState::Stable if unchanged && !group.is_leader(&member_id) => {
            let response = current_generation(group, &member_id, false, false);
            ctx.respond(request, Response::JoinGroup(response));
        }
        GroupState::CompletingRebalance | GroupState::Stable => update_member_and_rebalance(group, ctx, request, j),
        GroupState::Empty | GroupState::Dead => fail(ctx, request, &member_id, ErrorCode::UnknownMemberId),
    }
}

/// The JoinGroup answer for the current generation; the member list only for `with_members`.
pub(super) fn current_generation(group: &Group, member_id: &str, with_members: bool, skip: bool) -> JoinGroupResponse {
    JoinGroupResponse {
        error: ErrorCode::None,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        skip_assignment: skip,
        member_id: member_id.to_owned(),
        members: if with_members { group.joined_members() } else { Vec::new() },
    }
}

fn add_member_and_rebalance(group: &mut Group, ctx: &mut Ctx<'_>, request: RequestId, j: JoinGroup, id: String) {
    if matches!(group.join_timer, Some(JoinTimer::Initial { .. })) {
        group.new_member_added = true;
    }
    tracing::info!(group = %group.id, member = %id, "new member joins");
    group.add_member(Member {
        id,
        instance_id: j.group_instance_id,
        client_id: j.client_id,
        client_host: j.client_host,
        session_timeout_ms: j.session_timeout_ms,
        rebalance_timeout_ms: j.rebalance_timeout_ms,
        protocol_type: j.protocol_type,
        protocols: j.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(request),
        awaiting_sync: None,
        is_new: true,
        // Until its first rebalance completes, a new member cannot heartbeat; give its
        // JoinGroup a fixed time before giving up on it.
        heartbeat_deadline: ctx.now + ctx.config.new_member_join_timeout_ms,
    });
    maybe_prepare_rebalance(group, ctx);
}

/// Record a member's (re)join: new protocols and timeouts, and its JoinGroup now waits.
fn set_joining(group: &mut Group, ctx: &mut Ctx<'_>, request: RequestId, member_id: &str, j: JoinGroup) {
    let member = group.members.get_mut(member_id).expect("joining member exists");
    member.protocols = j.protocols;
    member.session_timeout_ms = j.session_timeout_ms;
    member.rebalance_timeout_ms = j.rebalance_timeout_ms;
    member.client_id = j.client_id;
    member.client_host = j.client_host;
    // A second JoinGroup while one waits (e.g. the client retried on a new connection) takes
    // its place; the first is told to rejoin.
    if let Some(old) = member.awaiting_join.replace(request) {
        fail(ctx, old, member_id, ErrorCode::RebalanceInProgress);
    }
}

fn update_member_and_rebalance(group: &mut Group, ctx: &mut Ctx<'_>, request: RequestId, j: JoinGroup) {
    let member_id = j.member_id.clone();
    set_joining(group, ctx, request, &member_id, j);
    maybe_prepare_rebalance(group, ctx);
}

/// A static member rejoined without its member id (it restarted): it takes over the old
/// member's place and assignment under a new id, and the old id is fenced. A stable group
/// whose protocol choice does not change needs no rebalance (KIP-345).
fn replace_static_member(
    group: &mut Group,
    ctx: &mut Ctx<'_>,
    request: RequestId,
    j: JoinGroup,
    old_id: &str,
    new_id: String,
) {
    let old_leader = group.leader.clone().unwrap_or_default();
    let supports_skip = j.supports_skip_assignment;
    let instance = j.group_instance_id.clone().expect("static member");
    tracing::info!(group = %group.id, %instance, old = %old_id, new = %new_id, "static member replaced");
    let mut member = group.members.shift_remove(old_id).expect("static member exists");
    if let Some(r) = member.awaiting_join.take() {
        fail(ctx, r, old_id, ErrorCode::FencedInstanceId);
    }
    if let Some(r) = member.awaiting_sync.take() {
        ctx.respond(r, Response::SyncGroup(SyncGroupResponse::error(ErrorCode::FencedInstanceId)));
    }
    member.id = new_id.clone();
    member.heartbeat_deadline = ctx.now + j.session_timeout_ms as i64;
    group.members.insert(new_id.clone(), member);
    group.static_members.insert(instance, new_id.clone());
    if group.is_leader(old_id) {
        group.leader = Some(new_id.clone());
    }
    if group.pending_sync.remove(old_id) {
        group.pending_sync.insert(new_id.clone());
    }
    set_joining(group, ctx, request, &new_id, j);
    match group.state {
        GroupState::Stable if group.select_protocol() == group.protocol => {
            group.members[&new_id].awaiting_join = None;
            ctx.persist(&group.id.clone(), vec![group.metadata_record()]);
            // A leader that cannot skip assignment is not told it leads: an assignment sent to a
            // stable group would not reach the others.
            let leads = group.is_leader(&new_id) && supports_skip;
            let mut response = current_generation(group, &new_id, leads, leads);
            if !supports_skip {
                response.leader = old_leader;
            }
            ctx.respond(request, Response::JoinGroup(response));
        }
        GroupState::Stable => maybe_prepare_rebalance(group, ctx),
        // The leader may already be assigning with the old member id: start over.
        GroupState::CompletingRebalance => prepare_rebalance(group, ctx),
        GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
    }
}
