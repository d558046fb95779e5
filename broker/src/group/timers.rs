//! What happens to a group as time passes: sessions expire, rebalance delays and timeouts run out.

use super::rebalance::{
    complete_join, drop_member, prepare_rebalance, remove_member_and_update, remove_pending_and_update,
};
use super::state::{Group, GroupState, JoinTimer};
use super::Ctx;

/// Carry out everything due for `group` at `ctx.now`.
pub(super) fn expire(group: &mut Group, ctx: &mut Ctx<'_>) {
    let now = ctx.now;
    let pending: Vec<String> = group.pending.iter().filter(|(_, d)| **d <= now).map(|(id, _)| id.clone()).collect();
    for id in pending {
        remove_pending_and_update(group, ctx, &id);
    }
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| m.heartbeat_deadline <= now && m.can_expire())
        .map(|m| m.id.clone())
        .collect();
    for id in expired {
        tracing::info!(group = %group.id, member = %id, "member session expired; removed");
        remove_member_and_update(group, ctx, &id);
    }
    if group.state == GroupState::PreparingRebalance {
        match group.join_timer {
            Some(JoinTimer::Initial { deadline, cap }) if deadline <= now => {
                if group.new_member_added && now < cap {
                    // Members are still arriving: give the others another delay to join.
                    group.new_member_added = false;
                    let delay = ctx.config.initial_rebalance_delay_ms as i64;
                    group.join_timer = Some(JoinTimer::Initial { deadline: (now + delay).min(cap), cap });
                } else {
                    complete_join(group, ctx);
                }
            }
            Some(JoinTimer::Rebalance { deadline }) if deadline <= now => complete_join(group, ctx),
            _ => {}
        }
    }
    if group.sync_deadline.is_some_and(|d| d <= now) {
        group.sync_deadline = None;
        let late: Vec<String> = std::mem::take(&mut group.pending_sync).into_iter().collect();
        if matches!(group.state, GroupState::CompletingRebalance | GroupState::Stable) && !late.is_empty() {
            for id in &late {
                tracing::info!(group = %group.id, member = %id, "member did not sync in time; removed");
                drop_member(group, ctx, id);
            }
            prepare_rebalance(group, ctx);
        }
    }
}

/// The earliest time something is due for `group`.
pub(super) fn next_deadline(group: &Group) -> Option<i64> {
    let members = group.members.values().filter(|m| m.can_expire()).map(|m| m.heartbeat_deadline);
    let join = group.join_timer.filter(|_| group.state == GroupState::PreparingRebalance).map(JoinTimer::deadline);
    group.pending.values().copied().chain(members).chain(join).chain(group.sync_deadline).min()
}
