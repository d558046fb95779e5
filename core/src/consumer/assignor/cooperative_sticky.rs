//! `cooperative-sticky`: keep what members own, move as little as balance needs, and move in two
//! phases (KIP-429).
//!
//! # Goals, in order
//!
//! 1. *Valid*: every partition of every subscribed topic goes to exactly one member subscribed to
//!    it.
//! 2. *Balanced*: with equal subscriptions, member counts differ by at most one. With different
//!    subscriptions, as Kafka defines it: no partition could move to a member subscribed to its
//!    topic that holds at least two fewer partitions than its current holder.
//! 3. *Sticky*: members keep as many of the partitions they owned as the first two allow.
//!
//! # Previous owners
//!
//! Each member reports the partitions it owns and its generation. Claims on partitions that no
//! longer exist (deleted topics, partition numbers past the count) are ignored. When several
//! members claim a partition, the highest generation wins (the others missed a rebalance and their
//! claim is stale); if two members claim it in that same highest generation, neither is its owner
//! (Kafka logs this as an error) and it is handed out afresh. A member without a generation counts
//! as generation -1. Kafka's equal-subscription path additionally ignores *every* claim of a
//! member behind the group's highest generation; here an older claim that nobody newer contests
//! still counts, which keeps more and is just as safe (no newer member owns the partition).
//!
//! # Equal subscriptions
//!
//! With `P` partitions and `M` members everyone gets `P / M` and `P % M` members one more. Those
//! extra slots go to the members that own the most, so the number of partitions kept,
//! `sum(min(owned_i, quota_i))`, is the largest any balanced assignment allows: no balanced
//! assignment moves fewer partitions. Members over quota release their highest-numbered
//! partitions; released and unowned partitions, sorted, are dealt in turn to the members under
//! quota. For a fresh group this reproduces Kafka's documented layout.
//!
//! # Different subscriptions
//!
//! Owners keep every partition they still subscribe to. Unowned partitions are handed out
//! topics-with-fewest-subscribers first, each to the least-loaded subscriber (ties: the member
//! with fewer topics, then member order). Then, while some member holds a partition that a
//! subscriber with at least two fewer could take, one partition moves: from the most-loaded such
//! member, preferring a partition it did not own before the rebalance (moving it costs no
//! stickiness), to the least-loaded subscriber. Every such move lowers the sum of squared loads,
//! so this ends, and it ends balanced in Kafka's sense. Before a move that costs an owned
//! partition, one step of lookahead: if shifting a not-owned partition into the receiver (from a
//! member with one more) or out of the donor (to a member with one fewer) balances everything,
//! that is done instead. Like Kafka's, this path is a heuristic: on small random groups checked
//! against every balanced assignment it moves one partition more than the best in under 0.1% of
//! cases, and after large reshuffles a group occasionally needs a third round.
//!
//! # Two phases
//!
//! In the cooperative protocol a member keeps consuming what it owns while the group rebalances,
//! so a partition must not be given to B while A still owns it. The [`StickyPlan::target`] is the
//! assignment the group converges to; the assignment sent this round ([`StickyPlan::assignment`])
//! leaves out every partition whose previous owner is another member (or is contested) and lists
//! it in [`StickyPlan::pending`]. A, not finding it in its assignment, revokes it and rejoins (a
//! cooperative member that revoked something triggers another rebalance); in that next round the
//! partition is unowned and goes to B. Lower-generation (stale) claims do not hold a partition
//! back. With equal subscriptions the second round never revokes anything; with different ones
//! a later round occasionally moves one more partition.
//!
//! ```
//! use std::collections::BTreeMap;
//! use rill_core::consumer::assignor::{CooperativeStickyAssignor, MemberSubscription};
//!
//! let topics = BTreeMap::from([("t".to_string(), 4)]);
//! let tp = |p| ("t".to_string(), p);
//! // A owned all four partitions in generation 1; B joins.
//! let a = MemberSubscription::new("A", ["t"]).with_owned(1, (0..4).map(|p| ("t", p)));
//! let plan = CooperativeStickyAssignor.plan(&[a, MemberSubscription::new("B", ["t"])], &topics);
//! assert_eq!(plan.target["B"], [tp(2), tp(3)]);
//! assert_eq!(plan.assignment["A"], [tp(0), tp(1)]); // A revokes 2 and 3 ...
//! assert!(plan.assignment["B"].is_empty()); // ... before B gets them in the next round.
//! assert_eq!(plan.pending[&tp(2)], "B");
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{
    ordered, subscribed_topics, wire, Assignor, GroupAssignment, MemberId, MemberSubscription, RebalanceProtocol,
    NO_GENERATION,
};

/// Kafka's `CooperativeStickyAssignor`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

/// One run of the cooperative-sticky assignor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StickyPlan {
    /// The balanced, sticky assignment the group converges to once every move has completed.
    pub target: GroupAssignment,
    /// What each member gets this round: its `target` minus the partitions in `pending`.
    pub assignment: GroupAssignment,
    /// Partitions that change hands, withheld this round because another member still owns them
    /// (or two members claim them), with the member they go to once revoked.
    pub pending: BTreeMap<(String, i32), MemberId>,
}

impl CooperativeStickyAssignor {
    /// Compute the target assignment and this round's share of it.
    pub fn plan(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> StickyPlan {
        let group = Group::new(members, partitions_per_topic);
        let previous = group.previous_owners();
        let assigned =
            if group.equal_subscriptions() { group.assign_equal(&previous) } else { group.assign_general(&previous) };
        group.plan(&assigned, &previous)
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    /// Both: Kafka allows it in eager groups so that a group can switch to it in a rolling
    /// upgrade. Eager members own nothing when they join, so nothing is withheld there.
    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager, RebalanceProtocol::Cooperative]
    }

    fn subscription_user_data(&self, generation: Option<i32>) -> Option<Bytes> {
        Some(wire::cooperative_sticky_user_data(generation))
    }

    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment {
        self.plan(members, partitions_per_topic).assignment
    }
}

/// Who owned a partition going into this rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Previous {
    Unowned,
    Owner {
        member: usize,
        generation: i32,
    },
    /// Claimed by two or more members in the same, highest, generation.
    Contested {
        generation: i32,
    },
}

impl Previous {
    fn is_owned_by(self, m: usize) -> bool {
        matches!(self, Previous::Owner { member, .. } if member == m)
    }
}

/// A partition as `(topic index, partition)`.
type Tp = (usize, i32);

/// The members and topics of one run, by index.
struct Group<'a> {
    /// In Kafka's member order.
    members: Vec<&'a MemberSubscription>,
    /// Subscribed topics that exist, by name, with their partition counts.
    topics: Vec<(&'a str, i32)>,
    /// Per topic, the members subscribed to it, in member order (never empty).
    eligible: Vec<Vec<usize>>,
    /// Per member, the topics it subscribes to.
    subscribed: Vec<BTreeSet<usize>>,
}

impl<'a> Group<'a> {
    fn new(members: &'a [MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> Self {
        let ordered = ordered(members);
        let topics = subscribed_topics(&ordered, partitions_per_topic);
        let subscribed: Vec<BTreeSet<usize>> = ordered
            .iter()
            .map(|(_, names)| (0..topics.len()).filter(|&t| names.contains(topics[t].0)).collect())
            .collect();
        let eligible = (0..topics.len()).map(|t| (0..ordered.len()).filter(|&m| subscribed[m].contains(&t)).collect());
        Group { members: ordered.iter().map(|(m, _)| *m).collect(), topics, eligible: eligible.collect(), subscribed }
    }

    fn equal_subscriptions(&self) -> bool {
        self.eligible.iter().all(|e| e.len() == self.members.len())
    }

    /// Resolve the members' claims: highest generation wins, a tie there leaves it contested.
    fn previous_owners(&self) -> Vec<Vec<Previous>> {
        let index: BTreeMap<&str, usize> = self.topics.iter().enumerate().map(|(t, &(name, _))| (name, t)).collect();
        let mut previous: Vec<Vec<Previous>> =
            self.topics.iter().map(|&(_, count)| vec![Previous::Unowned; count as usize]).collect();
        for (m, member) in self.members.iter().enumerate() {
            let generation = member.generation.unwrap_or(NO_GENERATION);
            for (topic, partition) in &member.owned_partitions {
                let Some(&t) = index.get(topic.as_str()) else { continue };
                let Some(slot) = usize::try_from(*partition).ok().and_then(|p| previous[t].get_mut(p)) else {
                    continue;
                };
                *slot = match *slot {
                    Previous::Unowned => Previous::Owner { member: m, generation },
                    Previous::Owner { member, .. } if member == m => *slot,
                    Previous::Owner { generation: g, .. } | Previous::Contested { generation: g } if generation > g => {
                        Previous::Owner { member: m, generation }
                    }
                    Previous::Owner { generation: g, .. } if generation == g => Previous::Contested { generation },
                    stays => stays,
                };
            }
        }
        previous
    }

    /// Quotas for equal subscriptions; see the module docs.
    fn assign_equal(&self, previous: &[Vec<Previous>]) -> Vec<Vec<Tp>> {
        let n = self.members.len();
        let mut held: Vec<Vec<Tp>> = vec![Vec::new(); n];
        if n == 0 {
            return held;
        }
        let mut pool = Vec::new();
        for (t, owners) in previous.iter().enumerate() {
            for (p, owner) in owners.iter().enumerate() {
                match *owner {
                    Previous::Owner { member, .. } => held[member].push((t, p as i32)),
                    _ => pool.push((t, p as i32)),
                }
            }
        }
        let total: usize = previous.iter().map(Vec::len).sum();
        let mut quota = vec![total / n; n];
        let mut by_owned: Vec<usize> = (0..n).collect();
        by_owned.sort_by_key(|&m| (Reverse(held[m].len()), m));
        for &m in &by_owned[..total % n] {
            quota[m] += 1;
        }
        for (list, &quota) in held.iter_mut().zip(&quota) {
            if list.len() > quota {
                pool.extend(list.drain(quota..));
            }
        }
        pool.sort_unstable();
        // Quotas add up to the partition count, so someone is under quota while the pool lasts.
        let mut next = 0;
        for tp in pool {
            while held[next % n].len() >= quota[next % n] {
                next += 1;
            }
            held[next % n].push(tp);
            next += 1;
        }
        held
    }

    /// Keep, fill, then balance by single moves; see the module docs.
    fn assign_general(&self, previous: &[Vec<Previous>]) -> Vec<Vec<Tp>> {
        let n = self.members.len();
        let mut h = Holdings { held: vec![BTreeMap::new(); n], load: vec![0; n] };
        let mut unowned = Vec::new();
        for (t, owners) in previous.iter().enumerate() {
            for (p, owner) in owners.iter().enumerate() {
                match *owner {
                    Previous::Owner { member, .. } if self.subscribed[member].contains(&t) => {
                        h.give(member, t, p as i32)
                    }
                    _ => unowned.push((t, p as i32)),
                }
            }
        }
        unowned.sort_by_key(|&(t, p)| (self.eligible[t].len(), t, p));
        for (t, p) in unowned {
            if let Some(m) = self.least_loaded(t, &h.load, None) {
                h.give(m, t, p);
            }
        }
        while let Some(Move { from, topic, to, costs_a_move }) = self.improving_move(&h, previous) {
            if costs_a_move && self.rebalance_for_free(&mut h, previous, from, to) {
                break;
            }
            let Some(p) = h.pick(from, topic, previous) else { break };
            h.shift(from, topic, p, to);
        }
        h.held
            .into_iter()
            .map(|topics| topics.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t, p))).collect())
            .collect()
    }

    /// The least-loaded member subscribed to `t`, other than `except`. On ties, the member with
    /// the fewest topics (it has the fewest other partitions it could take), then member order.
    fn least_loaded(&self, t: usize, load: &[usize], except: Option<usize>) -> Option<usize> {
        let key = |&m: &usize| (load[m], self.subscribed[m].len(), m);
        self.eligible[t].iter().copied().filter(|&m| Some(m) != except).min_by_key(key)
    }

    /// A move that leaves the loads more even, from the most-loaded member that has one,
    /// preferring a partition that moves anyway; `None` when the assignment is balanced.
    fn improving_move(&self, h: &Holdings, previous: &[Vec<Previous>]) -> Option<Move> {
        let floor = h.load.iter().copied().min().unwrap_or(0);
        let mut donors: Vec<usize> = (0..self.members.len()).filter(|&m| h.load[m] >= floor + 2).collect();
        donors.sort_by_key(|&m| (Reverse(h.load[m]), m));
        // Per topic, its two least-loaded subscribers, so that leaving out the donor is cheap.
        let mut receivers: Vec<Option<[Option<usize>; 2]>> = vec![None; self.topics.len()];
        for from in donors {
            let best = h.held[from]
                .keys()
                .filter_map(|&t| {
                    let [first, second] = *receivers[t].get_or_insert_with(|| self.two_least_loaded(t, &h.load));
                    let to = if first == Some(from) { second } else { first };
                    let to = to.filter(|&to| h.load[to] + 2 <= h.load[from])?;
                    Some((!h.has_free(from, t, previous), h.load[to], t, to))
                })
                .min();
            if let Some((costs_a_move, _, topic, to)) = best {
                return Some(Move { from, topic, to, costs_a_move });
            }
        }
        None
    }

    /// The two members [`least_loaded`](Self::least_loaded) would pick first for `t`.
    fn two_least_loaded(&self, t: usize, load: &[usize]) -> [Option<usize>; 2] {
        let first = self.least_loaded(t, load, None);
        [first, first.and_then(|m| self.least_loaded(t, load, Some(m)))]
    }

    /// Before moving an owned partition from `from` to `to`, look one step further: a partition
    /// that moves anyway, shifted into `to` from a member with one more, or out of `from` to a
    /// member with one fewer, may balance everything at no cost. Applies it and returns true if so.
    fn rebalance_for_free(&self, h: &mut Holdings, previous: &[Vec<Previous>], from: usize, to: usize) -> bool {
        let mut candidates = Vec::new();
        for x in (0..self.members.len()).filter(|&x| h.load[x] == h.load[to] + 1) {
            for &t in h.held[x].keys().filter(|t| self.subscribed[to].contains(t)) {
                candidates.push((x, t, to));
            }
        }
        for &t in h.held[from].keys() {
            for &y in self.eligible[t].iter().filter(|&&y| h.load[y] + 1 == h.load[from]) {
                candidates.push((from, t, y));
            }
        }
        let (most, least) = self.extremes(h);
        let unbalanced: Vec<usize> = (0..self.topics.len()).filter(|&t| most[t] >= least[t] + 2).collect();
        for (x, t, y) in candidates {
            // The shift changes only the loads of x and y, so it can only balance a topic if x is
            // one of its most-loaded holders or y one of its least-loaded subscribers.
            let may_fix = |u: &usize| {
                (h.load[x] == most[*u] && h.held[x].contains_key(u))
                    || (h.load[y] == least[*u] && self.subscribed[y].contains(u))
            };
            if !unbalanced.iter().all(may_fix) {
                continue;
            }
            let Some(p) = h.pick(x, t, previous).filter(|&p| !previous[t][p as usize].is_owned_by(x)) else { continue };
            h.shift(x, t, p, y);
            let (most, least) = self.extremes(h);
            if (0..self.topics.len()).all(|t| most[t] < least[t] + 2) {
                return true;
            }
            h.shift(y, t, p, x);
        }
        false
    }

    /// Per topic, the load of its most-loaded holder and of its least-loaded subscriber. Kafka's
    /// balance holds when, for every topic, the first is less than the second plus two.
    fn extremes(&self, h: &Holdings) -> (Vec<usize>, Vec<usize>) {
        let mut most = vec![0; self.topics.len()];
        for (m, topics) in h.held.iter().enumerate() {
            for &t in topics.keys() {
                most[t] = most[t].max(h.load[m]);
            }
        }
        let least = self.eligible.iter().map(|e| e.iter().map(|&m| h.load[m]).min().unwrap_or(0)).collect();
        (most, least)
    }

    /// Names, and this round's share of `assigned` (see "Two phases" in the module docs).
    fn plan(&self, assigned: &[Vec<Tp>], previous: &[Vec<Previous>]) -> StickyPlan {
        let mut plan = StickyPlan::default();
        for (m, member) in self.members.iter().enumerate() {
            let mut parts = assigned.get(m).cloned().unwrap_or_default();
            parts.sort_unstable();
            let (mut target, mut now) = (Vec::with_capacity(parts.len()), Vec::with_capacity(parts.len()));
            for (t, p) in parts {
                let tp = (self.topics[t].0.to_string(), p);
                let held_elsewhere = match previous[t][p as usize] {
                    Previous::Unowned => false,
                    Previous::Owner { member: owner, .. } => owner != m,
                    Previous::Contested { .. } => true,
                };
                if held_elsewhere {
                    plan.pending.insert(tp.clone(), member.member_id.clone());
                } else {
                    now.push(tp.clone());
                }
                target.push(tp);
            }
            plan.target.insert(member.member_id.clone(), target);
            plan.assignment.insert(member.member_id.clone(), now);
        }
        plan
    }
}

/// One partition of `topic` from `from` to `to`; `costs_a_move` when every partition `from` holds
/// there is one it owned before the rebalance.
struct Move {
    from: usize,
    topic: usize,
    to: usize,
    costs_a_move: bool,
}

/// Who holds what while the general path runs.
struct Holdings {
    /// Per member, partitions by topic.
    held: Vec<BTreeMap<usize, Vec<i32>>>,
    /// Per member, how many partitions it holds.
    load: Vec<usize>,
}

impl Holdings {
    fn give(&mut self, m: usize, t: usize, p: i32) {
        self.held[m].entry(t).or_default().push(p);
        self.load[m] += 1;
    }

    fn shift(&mut self, from: usize, t: usize, p: i32, to: usize) {
        if let Some(partitions) = self.held[from].get_mut(&t) {
            partitions.retain(|&q| q != p);
            if partitions.is_empty() {
                self.held[from].remove(&t);
            }
            self.load[from] -= 1;
            self.give(to, t, p);
        }
    }

    /// Whether `m` holds a partition of `t` it did not own before the rebalance.
    fn has_free(&self, m: usize, t: usize, previous: &[Vec<Previous>]) -> bool {
        self.held[m].get(&t).is_some_and(|ps| ps.iter().any(|&p| !previous[t][p as usize].is_owned_by(m)))
    }

    /// The partition of `t` that `m` gives up first: the last one it did not own before, else its
    /// last one.
    fn pick(&self, m: usize, t: usize, previous: &[Vec<Previous>]) -> Option<i32> {
        let partitions = self.held[m].get(&t)?;
        partitions.iter().rev().find(|&&p| !previous[t][p as usize].is_owned_by(m)).or(partitions.last()).copied()
    }
}

#[cfg(test)]
mod tests;
