//! One group's state: members, generation, protocol, committed offsets, and the timers that
//! drive its rebalances. The transitions themselves live in `join.rs`, `rebalance.rs`,
//! `membership.rs` and `offsets.rs`; this file holds the data and the small operations they share.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use super::record::{GroupValue, MemberValue, OffsetValue, Record};
use super::response::{DescribedGroup, DescribedMember, JoinedMember};
use super::subscription::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use super::{ErrorCode, Protocol, RequestId, TopicPartition};

/// The state of a group, with Kafka's names. Transitions:
///
/// - Empty -> PreparingRebalance: a member joins.
/// - PreparingRebalance -> CompletingRebalance: every member has rejoined, or the rebalance
///   timeout ran out (for a group that was empty: the initial rebalance delay).
/// - PreparingRebalance -> Empty: nobody is left when the join phase ends.
/// - CompletingRebalance -> Stable: the leader's SyncGroup brings the assignment.
/// - CompletingRebalance or Stable -> PreparingRebalance: a member joins, changes its protocols,
///   leaves, or misses its session or SyncGroup deadline; or the leader rejoins.
///
/// A group without members or offsets is forgotten; an unknown group is described as Dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group does not exist (or was deleted).
    Dead,
}

impl GroupState {
    /// Kafka's name, as shown by ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// The state with this name (ignoring case), as ListGroups' state filter gives it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Empty, Self::PreparingRebalance, Self::CompletingRebalance, Self::Stable, Self::Dead]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<RequestId>,
    /// The SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<RequestId>,
    /// Joined but no rebalance completed since: the session timeout does not apply yet.
    pub is_new: bool,
    /// When the member is dropped unless it heartbeats (or is waiting in a rebalance).
    pub heartbeat_deadline: i64,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }

    /// Whether its session timeout can expire now: members waiting in a rebalance are covered by
    /// the rebalance timeout instead, except new ones (their JoinGroup may be abandoned).
    pub fn can_expire(&self) -> bool {
        self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none())
    }
}

/// The timer of a group preparing a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinTimer {
    /// First rebalance of an empty group: complete at `deadline` (pushed back while new members
    /// arrive, never past `cap`) even if everybody has joined.
    Initial { deadline: i64, cap: i64 },
    /// Complete when every member has rejoined, or at `deadline` without those that have not.
    Rebalance { deadline: i64 },
}

impl JoinTimer {
    pub fn deadline(self) -> i64 {
        match self {
            Self::Initial { deadline, .. } | Self::Rebalance { deadline } => deadline,
        }
    }
}

/// An offset with the position of its write among the group's writes to `__consumer_offsets`
/// (the batch's log offset when loaded; a counter above every loaded position while running).
/// When a transaction commits, its offsets replace only offsets written before them, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    pub value: OffsetValue,
    pub position: i64,
}

/// A group and its committed offsets.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered `state` (`None` for groups that only ever stored offsets).
    pub state_since: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// `group.instance.id` -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to join with them.
    pub pending: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup since the last rebalance, and the deadline for it.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<i64>,
    pub join_timer: Option<JoinTimer>,
    /// A new member arrived during the initial rebalance delay.
    pub new_member_added: bool,
    /// Topics the members of a `consumer` group subscribe to, if their metadata says.
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub offsets: BTreeMap<TopicPartition, Stored>,
    /// Transactional offsets in the log whose transaction has not ended, by producer id.
    pub txn_offsets: BTreeMap<i64, BTreeMap<TopicPartition, Stored>>,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: GroupState::Empty,
            state_since: None,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join_timer: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            txn_offsets: BTreeMap::new(),
        }
    }

    /// Whether an open transaction holds an offset for `tp`.
    pub fn has_txn_offset(&self, tp: &TopicPartition) -> bool {
        self.txn_offsets.values().any(|o| o.contains_key(tp))
    }

    /// An empty group with nothing stored: it can be forgotten.
    pub fn is_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.pending.is_empty()
            && self.txn_offsets.is_empty()
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        tracing::debug!(group = %self.id, from = self.state.name(), to = state.name(), "group state change");
        self.state = state;
        self.state_since = Some(now);
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// A request naming `instance_id` and `member_id` comes from a static member that another
    /// member with the same `group.instance.id` has replaced.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id.and_then(|i| self.static_members.get(i)).is_some_and(|current| current != member_id)
    }

    /// Whether a member with these protocols may join: a new group takes any non-empty protocol
    /// type and list; otherwise the type must match and one protocol must be shared by everyone.
    pub fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.values().all(|m| m.protocols.iter().any(|q| q.name == p.name)))
    }

    /// The protocol for the next generation: among those every member supports, the one most
    /// members prefer (each votes for its first supported choice); ties go to the earlier choice of
    /// the longest-standing member.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.protocols.iter().any(|q| q.name == *name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m.protocols.iter().find_map(|p| candidates.iter().position(|c| *c == p.name)) {
                votes[i] += 1;
            }
        }
        let best = votes.iter().enumerate().max_by(|(i, a), (j, b)| a.cmp(b).then(j.cmp(i)))?.0;
        Some(candidates[best].to_owned())
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join.is_some()).count()
    }

    pub fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The longest rebalance timeout of any member: how long a rebalance waits for rejoins.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0)
    }

    /// Whether a joining member is admitted under `group.max.size`. While rebalancing, members
    /// count once they rejoin, so the last to rejoin are the ones turned away.
    pub fn admits(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member.id.clone());
        }
        self.pending.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Remove a member from the books (no rebalance decisions here); a new leader is the
    /// longest-standing member left.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).is_some_and(|id| id == member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_sync.remove(member_id);
        Some(member)
    }

    /// If the leader has not rejoined, hand leadership to a member that has. False if nobody has.
    pub fn elect_joined_leader(&mut self) -> bool {
        if self.leader.as_ref().and_then(|l| self.members.get(l)).is_some_and(|m| m.awaiting_join.is_some()) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Start the next generation: `CompletingRebalance` with the chosen protocol, or `Empty`.
    pub fn init_next_generation(&mut self, now: i64) {
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
        } else {
            self.protocol = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now);
        }
        self.subscribed_topics = self.compute_subscribed_topics();
    }

    pub fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let Some(protocol) = &self.protocol else {
            return self.members.is_empty().then(BTreeSet::new);
        };
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscribed_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    /// Every member with its metadata for the chosen protocol, as the leader receives it.
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// The group metadata record for the current generation and assignments.
    pub fn metadata_record(&self) -> Record {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata(protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        let value = GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_since.unwrap_or(-1),
            members,
        };
        Record::Group { group_id: self.id.clone(), value: Some(value) }
    }

    pub fn describe(&self) -> DescribedGroup {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().filter(|_| stable).unwrap_or_default();
        DescribedGroup {
            group_id: self.id.clone(),
            error: ErrorCode::None,
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            members: self
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
            protocol_data: protocol,
        }
    }
}
