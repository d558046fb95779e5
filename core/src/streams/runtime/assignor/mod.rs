//! The streams partition assignor (Kafka Streams' `StreamsPartitionAssignor`): the group leader
//! assigns tasks, not partitions, keeps tasks where their state is, places standby replicas,
//! and tells every member which instance (`application.server`) hosts which tasks.
//!
//! Members are stream threads; threads of one instance share a process id. Each sends its
//! [`SubscriptionInfo`]; the leader groups members by process, runs [`tasks::assign`], and
//! answers each member with the source partitions of its active tasks plus an
//! [`AssignmentInfo`]. Rebalancing is cooperative (KIP-429): a task whose partitions another
//! member still owns is left out of its new owner's assignment until the old owner has revoked
//! them (and rejoined, which the consumer does after every revocation), so tasks that stay put
//! keep running through a rebalance.

pub mod info;
pub mod tasks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::consumer::assignor::wire::Assignment;
use crate::consumer::assignor::{Assignor, GroupAssignment, MemberId, MemberSubscription, RebalanceProtocol};
use crate::streams::task::TaskId;

use super::internal::TopicPlan;

pub use info::{AssignmentInfo, HostTasks, SubscriptionInfo};

/// What the instance knows of the whole group after its last assignment: which host runs which
/// tasks (shared by the instance's threads; read by `KafkaStreams::query_metadata_for_key`).
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Tasks of each host with `application.server` set.
    pub hosts: BTreeMap<String, HostTasks>,
    /// The generation it was learned in.
    pub generation: i32,
}

/// One stream thread's assignor: the consumer calls it to build the subscription, to assign
/// (when this thread leads), and with the assignment it got.
#[derive(Debug)]
pub struct StreamsAssignor {
    /// Which sub-topology reads each source topic.
    plan: Arc<TopicPlan>,
    /// Sub-topologies with logged stores (only their tasks get standbys).
    stateful: BTreeSet<u32>,
    standbys: usize,
    /// What this member reports (the thread keeps it current).
    pub(crate) me: Arc<Mutex<SubscriptionInfo>>,
    /// The last assignment this member got (taken by the thread after `poll`).
    pub(crate) received: Arc<Mutex<Option<AssignmentInfo>>>,
    /// The instance's view of the group.
    pub(crate) view: Arc<RwLock<ClusterView>>,
}

impl StreamsAssignor {
    /// An assignor for a topology whose sub-topologies read what `plan` says, with `standbys`
    /// replicas of each task of the `stateful` sub-topologies.
    pub fn new(
        plan: Arc<TopicPlan>,
        stateful: BTreeSet<u32>,
        standbys: usize,
        me: SubscriptionInfo,
        view: Arc<RwLock<ClusterView>>,
    ) -> Self {
        Self { plan, stateful, standbys, me: Arc::new(Mutex::new(me)), received: Arc::new(Mutex::new(None)), view }
    }

    /// The tasks the partitions define, and each task's partitions.
    fn tasks(&self, partitions_per_topic: &BTreeMap<String, i32>) -> BTreeMap<TaskId, Vec<(String, i32)>> {
        let mut out: BTreeMap<TaskId, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, &n) in partitions_per_topic {
            let Some(sub) = self.plan.subtopology(topic) else { continue };
            for p in 0..n {
                out.entry(TaskId { subtopology: sub, partition: p }).or_default().push((topic.clone(), p));
            }
        }
        out
    }
}

impl Assignor for StreamsAssignor {
    fn name(&self) -> &'static str {
        "rill-streams"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager, RebalanceProtocol::Cooperative]
    }

    fn subscription_user_data(&self, _generation: Option<i32>) -> Option<Bytes> {
        Some(self.me.lock().expect("assignor lock").encode())
    }

    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment {
        self.assign_with_data(members, partitions_per_topic).into_iter().map(|(m, a)| (m, a.partitions)).collect()
    }

    fn assign_with_data(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<MemberId, Assignment> {
        let task_parts = self.tasks(partitions_per_topic);
        let all: BTreeSet<TaskId> = task_parts.keys().copied().collect();
        let mut clients: BTreeMap<String, tasks::Client> = BTreeMap::new();
        let mut host_of: BTreeMap<String, String> = BTreeMap::new();
        for m in members {
            let info = match m.user_data.as_deref().map(SubscriptionInfo::decode) {
                Some(Ok(info)) => info,
                other => {
                    // Not one of ours (or a version we cannot read): its own instance, no history.
                    if let Some(Err(e)) = other {
                        tracing::warn!(member = %m.member_id, error = %e, "cannot read a member's subscription");
                    }
                    SubscriptionInfo { process_id: m.member_id.clone(), ..SubscriptionInfo::default() }
                }
            };
            let c = clients.entry(info.process_id.clone()).or_default();
            for (t, sum) in &info.on_disk {
                let e = c.on_disk.entry(*t).or_insert(*sum);
                *e = (*e).max(*sum);
            }
            c.members.push(tasks::Member {
                id: m.member_id.clone(),
                prev_active: info.active.clone(),
                prev_standby: info.standby.clone(),
            });
            if let Some(h) = info.host {
                host_of.insert(m.member_id.clone(), h);
            }
        }
        let stateful: BTreeSet<TaskId> =
            all.iter().filter(|t| self.stateful.contains(&t.subtopology)).copied().collect();
        let mut shares = tasks::assign(&clients, &all, &stateful, self.standbys);

        // Cooperative: a partition another member still owns reaches its new owner only after
        // that member revoked it (in the rebalance that follows).
        let owner: HashMap<&(String, i32), &str> =
            members.iter().flat_map(|m| m.owned_partitions.iter().map(move |tp| (tp, m.member_id.as_str()))).collect();
        let mut waiting = 0;
        for (member, share) in shares.iter_mut() {
            share.active.retain(|t| {
                let held_elsewhere =
                    task_parts[t].iter().any(|tp| owner.get(tp).is_some_and(|o| *o != member.as_str()));
                waiting += usize::from(held_elsewhere);
                !held_elsewhere
            });
        }
        if waiting > 0 {
            tracing::debug!(tasks = waiting, "tasks wait for their previous owners to revoke them");
        }

        let mut hosts: BTreeMap<String, HostTasks> = BTreeMap::new();
        for (member, share) in &shares {
            if let Some(h) = host_of.get(member) {
                let e = hosts.entry(h.clone()).or_default();
                e.active.extend(share.active.iter().copied());
                e.standby.extend(share.standby.iter().copied());
            }
        }
        members
            .iter()
            .map(|m| {
                let share = shares.remove(&m.member_id).unwrap_or_default();
                let mut partitions: Vec<(String, i32)> =
                    share.active.iter().flat_map(|t| task_parts[t].iter().cloned()).collect();
                partitions.sort();
                let info = AssignmentInfo { active: share.active, standby: share.standby, hosts: hosts.clone() };
                let mut a = Assignment::new(partitions);
                a.user_data = Some(info.encode());
                (m.member_id.clone(), a)
            })
            .collect()
    }

    fn on_assignment(&self, assignment: &Assignment, generation: i32) {
        let info = match assignment.user_data.as_deref().map(AssignmentInfo::decode) {
            Some(Ok(info)) => info,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot read this thread's assignment; running its partitions' tasks only");
                AssignmentInfo::default()
            }
            None => AssignmentInfo::default(),
        };
        *self.view.write().expect("view lock") = ClusterView { hosts: info.hosts.clone(), generation };
        *self.received.lock().expect("assignor lock") = Some(info);
    }
}

#[cfg(test)]
mod tests;
