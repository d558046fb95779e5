//! Which instance and which stream thread runs each task, and where standby replicas go: a
//! pure function of what members reported, so every leader computes the same answer.
//!
//! Instances (clients) get active tasks in proportion to their thread count, exactly: quotas
//! are `tasks × threads / all threads` rounded down, and the leftover tasks go to the instances
//! that would otherwise give up the most of what they run. Within its quota an instance keeps
//! the tasks it ran (stickiness); the rest go first to an instance with local state for the task
//! (a standby, or files left on disk, the most caught-up first), then to the one with the most
//! room. Standby replicas (`num.standby.replicas` per task) go to other instances than the
//! task's active one, never two on one instance, least-loaded first and, among equals, to one
//! that has the task's state. Within an instance the same rules spread tasks over its threads.
//! Each sub-topology's tasks are spread as evenly as the quotas allow, so no instance ends up
//! with all the stateful work.

use std::collections::{BTreeMap, BTreeSet};

use crate::streams::task::TaskId;

/// One member (stream thread) as the leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Tasks it ran.
    pub prev_active: BTreeSet<TaskId>,
    /// Standby tasks it kept.
    pub prev_standby: BTreeSet<TaskId>,
}

/// One instance: its threads and the task state it holds locally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// Its members (any order).
    pub members: Vec<Member>,
    /// Tasks with local state and how far it is (sum of checkpoints; higher is more caught up).
    pub on_disk: BTreeMap<TaskId, i64>,
}

/// A member's share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assigned {
    /// Tasks it runs.
    pub active: BTreeSet<TaskId>,
    /// Standby tasks it keeps.
    pub standby: BTreeSet<TaskId>,
}

/// Assign `tasks` over `clients` (by process id), with `standbys` replicas of each task in
/// `stateful`; the answer has an entry for every member.
pub fn assign(
    clients: &BTreeMap<String, Client>,
    tasks: &BTreeSet<TaskId>,
    stateful: &BTreeSet<TaskId>,
    standbys: usize,
) -> BTreeMap<String, Assigned> {
    let clients: Vec<&Client> = clients.values().filter(|c| !c.members.is_empty()).collect();
    let mut out: BTreeMap<String, Assigned> = BTreeMap::new();
    if clients.is_empty() {
        return out;
    }
    let capacity: Vec<usize> = clients.iter().map(|c| c.members.len()).collect();
    let ran: Vec<BTreeSet<TaskId>> =
        clients.iter().map(|c| c.members.iter().flat_map(|m| m.prev_active.iter().copied()).collect()).collect();
    let state = |i: usize, t: &TaskId| -> Option<i64> {
        let c = clients[i];
        let standby = c.members.iter().any(|m| m.prev_standby.contains(t));
        match c.on_disk.get(t) {
            Some(sum) => Some(*sum),
            None if standby => Some(-1),
            None => None,
        }
    };
    let tasks: Vec<TaskId> = tasks.iter().copied().collect();
    let active = distribute(&tasks, &capacity, |i, t| ran[i].contains(t), state);

    // Standby replicas: on other instances than the active one, one per instance at most.
    let mut standby: Vec<BTreeSet<TaskId>> = vec![BTreeSet::new(); clients.len()];
    let mut load: Vec<usize> = active.iter().map(BTreeSet::len).collect();
    for t in tasks.iter().filter(|t| stateful.contains(t)) {
        for _ in 0..standbys {
            let best =
                (0..clients.len()).filter(|&i| !active[i].contains(t) && !standby[i].contains(t)).min_by(|&a, &b| {
                    // load[a] / capacity[a] against load[b] / capacity[b], without division.
                    (load[a] * capacity[b])
                        .cmp(&(load[b] * capacity[a]))
                        .then_with(|| state(b, t).is_some().cmp(&state(a, t).is_some()))
                        .then(a.cmp(&b))
                });
            let Some(i) = best else { break };
            standby[i].insert(*t);
            load[i] += 1;
        }
    }

    // Within each instance, over its threads.
    for (i, c) in clients.iter().enumerate() {
        let mut members: Vec<&Member> = c.members.iter().collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let ones = vec![1; members.len()];
        let mine: Vec<TaskId> = active[i].iter().copied().collect();
        let per_member = distribute(&mine, &ones, |m, t| members[m].prev_active.contains(t), |_, _| None);
        let mine: Vec<TaskId> = standby[i].iter().copied().collect();
        let standby_per_member = distribute(&mine, &ones, |m, t| members[m].prev_standby.contains(t), |_, _| None);
        for (m, (a, s)) in members.iter().zip(per_member.into_iter().zip(standby_per_member)) {
            out.insert(m.id.clone(), Assigned { active: a, standby: s });
        }
    }
    out
}

/// Spread `tasks` over bins with `capacity` each, exactly in proportion: keep a task where
/// `kept(bin, task)` while the bin has room, then give it to the bin with the best
/// `state(bin, task)` among those with room, then to the one with the most room.
fn distribute(
    tasks: &[TaskId],
    capacity: &[usize],
    kept: impl Fn(usize, &TaskId) -> bool,
    state: impl Fn(usize, &TaskId) -> Option<i64>,
) -> Vec<BTreeSet<TaskId>> {
    let bins = capacity.len();
    let total: usize = capacity.iter().sum();
    let mut quota: Vec<usize> = capacity.iter().map(|c| tasks.len() * c / total.max(1)).collect();
    // Leftovers go to the bins that would otherwise give up the most of what they hold.
    let held: Vec<usize> = (0..bins).map(|b| tasks.iter().filter(|t| kept(b, t)).count()).collect();
    // Only bins whose exact share has a fraction may round up.
    let mut order: Vec<usize> = (0..bins).filter(|&b| tasks.len() * capacity[b] % total.max(1) != 0).collect();
    order.sort_by(|&a, &b| {
        let over = |i: usize| held[i] as i64 - quota[i] as i64;
        over(b).cmp(&over(a)).then(capacity[b].cmp(&capacity[a])).then(a.cmp(&b))
    });
    let leftover = tasks.len() - quota.iter().sum::<usize>();
    for &b in order.iter().take(leftover) {
        quota[b] += 1;
    }
    // Each sub-topology's tasks spread too, so every instance gets some of each kind of work.
    let mut per_sub: BTreeMap<u32, usize> = BTreeMap::new();
    for t in tasks {
        *per_sub.entry(t.subtopology).or_default() += 1;
    }
    let sub_quota = |b: usize, s: u32| (per_sub[&s] * capacity[b]).div_ceil(total.max(1));
    let mut sub_count: Vec<BTreeMap<u32, usize>> = vec![BTreeMap::new(); bins];
    let mut out: Vec<BTreeSet<TaskId>> = vec![BTreeSet::new(); bins];
    let mut rest = Vec::new();
    for t in tasks {
        let s = t.subtopology;
        let keep = (0..bins).find(|&b| {
            kept(b, t) && out[b].len() < quota[b] && sub_count[b].get(&s).copied().unwrap_or(0) < sub_quota(b, s)
        });
        match keep {
            Some(b) => {
                out[b].insert(*t);
                *sub_count[b].entry(s).or_default() += 1;
            }
            None => rest.push(*t),
        }
    }
    // Tasks some bin has state for go first, so stateless ones do not take their room.
    rest.sort_by_key(|t| !(0..bins).any(|b| state(b, t).is_some()));
    for t in rest {
        let s = t.subtopology;
        let room = |b: usize| quota[b] - out[b].len();
        let of_sub = |b: usize| sub_count[b].get(&s).copied().unwrap_or(0);
        let best = (0..bins).filter(|&b| out[b].len() < quota[b]).max_by(|&a, &b| {
            state(a, &t)
                .cmp(&state(b, &t))
                // Fewer of this sub-topology per unit of capacity first.
                .then((of_sub(b) * capacity[a]).cmp(&(of_sub(a) * capacity[b])))
                .then(room(a).cmp(&room(b)))
                .then(b.cmp(&a))
        });
        let b = best.expect("the quotas add up to the task count");
        out[b].insert(t);
        *sub_count[b].entry(s).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests;
