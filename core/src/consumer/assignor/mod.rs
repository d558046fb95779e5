//! Partition assignors: how the leader of a consumer group divides partitions among its members.
//!
//! In Kafka's classic group protocol every member sends JoinGroup with one
//! [`Subscription`](wire::Subscription) per assignor it supports (protocol type
//! [`wire::PROTOCOL_TYPE`]). The coordinator picks the first assignor every member supports and
//! hands all members' subscriptions to the leader, which runs [`Assignor::assign`] and returns one
//! [`Assignment`](wire::Assignment) per member in SyncGroup. Assignors are pure functions of the
//! members and the partition counts: the leader may be a Rill, Java or librdkafka client, so the
//! layouts follow Kafka's documented behaviour and are deterministic.
//!
//! | name (on the wire)   | protocols           | layout                                                 |
//! |----------------------|---------------------|--------------------------------------------------------|
//! | `range`              | eager               | per topic, contiguous ranges; first members get one more |
//! | `roundrobin`         | eager               | all partitions, sorted, dealt in turn to subscribers   |
//! | `cooperative-sticky` | cooperative, eager  | keeps owned partitions, moves as few as balance needs; a moving partition is first revoked (KIP-429) |
//!
//! Members are ordered as Kafka orders them (static members by `group.instance.id` first, then
//! dynamic members by member id), so static members keep their layout across restarts.
//!
//! ```
//! use std::collections::BTreeMap;
//! use rill_core::consumer::assignor::{Assignor, MemberSubscription, RangeAssignor};
//!
//! let members = [MemberSubscription::new("c0", ["t"]), MemberSubscription::new("c1", ["t"])];
//! let partitions = BTreeMap::from([("t".to_string(), 3)]);
//! let out = RangeAssignor.assign(&members, &partitions);
//! assert_eq!(out["c0"], [("t".to_string(), 0), ("t".to_string(), 1)]);
//! assert_eq!(out["c1"], [("t".to_string(), 2)]);
//! ```

mod cooperative_sticky;
mod range;
mod roundrobin;
pub mod wire;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

pub use cooperative_sticky::{CooperativeStickyAssignor, StickyPlan};
pub use range::RangeAssignor;
pub use roundrobin::RoundRobinAssignor;

/// A member id as the coordinator hands it out.
pub type MemberId = String;

/// What an assignor produces: every member's partitions as `(topic, partition)`, sorted.
/// Every member of the input has an entry, possibly empty.
pub type GroupAssignment = BTreeMap<MemberId, Vec<(String, i32)>>;

/// Kafka's generation for "no generation known" (`DEFAULT_GENERATION`).
pub const NO_GENERATION: i32 = -1;

/// How members hand partitions over during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining; the leader assigns from scratch.
    Eager,
    /// Members keep their partitions across the rebalance and revoke only what the assignment
    /// takes away; a partition that moves is revoked in one rebalance and assigned in the next
    /// (KIP-429).
    Cooperative,
}

/// A partition assignment strategy (`partition.assignment.strategy`).
pub trait Assignor: Send + Sync + std::fmt::Debug {
    /// The protocol name members advertise in JoinGroup: `range`, `roundrobin`,
    /// `cooperative-sticky`.
    fn name(&self) -> &'static str;

    /// The rebalance protocols this assignor supports, lowest first.
    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    /// The `user_data` a member puts in its subscription; `generation` is its current one.
    fn subscription_user_data(&self, _generation: Option<i32>) -> Option<Bytes> {
        None
    }

    /// Divide the partitions of every subscribed topic among the members.
    ///
    /// `partitions_per_topic` is the leader's metadata; subscribed topics missing from it (not
    /// created yet, deleted, unauthorised) are skipped. Member ids must be unique. The result has
    /// an entry for every member and assigns each partition of a subscribed topic to exactly one
    /// member subscribed to it.
    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment;

    /// The leader's whole answer: every member's [`wire::Assignment`], which may carry
    /// assignor-specific `user_data` (Kafka Streams' assignor sends tasks and hosts there). By
    /// default [`Assignor::assign`]'s partitions with no user data.
    fn assign_with_data(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<MemberId, wire::Assignment> {
        self.assign(members, partitions_per_topic).into_iter().map(|(m, p)| (m, wire::Assignment::new(p))).collect()
    }

    /// Called on every member with the assignment it received in `generation` (Kafka's
    /// `onAssignment`), before the rebalance listener hears of the partitions.
    fn on_assignment(&self, _assignment: &wire::Assignment, _generation: i32) {}
}

/// An assignor the application supplies itself (see `ConsumerConfig::with_assignor`). Two
/// handles are equal when they share the assignor.
#[derive(Debug, Clone)]
pub struct CustomAssignor(pub std::sync::Arc<dyn Assignor>);

impl PartialEq for CustomAssignor {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CustomAssignor {}

impl Assignor for CustomAssignor {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        self.0.supported_protocols()
    }
    fn subscription_user_data(&self, generation: Option<i32>) -> Option<Bytes> {
        self.0.subscription_user_data(generation)
    }
    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment {
        self.0.assign(members, partitions_per_topic)
    }
    fn assign_with_data(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<MemberId, wire::Assignment> {
        self.0.assign_with_data(members, partitions_per_topic)
    }
    fn on_assignment(&self, assignment: &wire::Assignment, generation: i32) {
        self.0.on_assignment(assignment, generation)
    }
}

/// One member as the leader sees it in JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    /// Member id from the coordinator.
    pub member_id: MemberId,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Subscribed topics (order and duplicates do not matter).
    pub topics: Vec<String>,
    /// Partitions the member owned when it joined (cooperative members; eager members own none).
    pub owned_partitions: Vec<(String, i32)>,
    /// The generation in which it owned them; `None` when unknown.
    pub generation: Option<i32>,
    /// The assignor-specific data of its subscription.
    pub user_data: Option<Bytes>,
}

impl MemberSubscription {
    /// A dynamic member owning nothing.
    pub fn new<T: Into<String>>(member_id: impl Into<MemberId>, topics: impl IntoIterator<Item = T>) -> Self {
        Self { member_id: member_id.into(), topics: topics.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Make it a static member.
    pub fn with_instance_id(mut self, group_instance_id: impl Into<String>) -> Self {
        self.group_instance_id = Some(group_instance_id.into());
        self
    }

    /// Set what it owned in `generation`.
    pub fn with_owned<T: Into<String>>(mut self, generation: i32, owned: impl IntoIterator<Item = (T, i32)>) -> Self {
        self.generation = Some(generation);
        self.owned_partitions = owned.into_iter().map(|(t, p)| (t.into(), p)).collect();
        self
    }

    /// Build from a member's decoded JoinGroup metadata.
    ///
    /// The generation comes from the subscription's `generation_id` (v2+) or, for older
    /// subscriptions, from the cooperative-sticky or sticky `user_data`
    /// ([`wire::generation_from_user_data`]).
    pub fn from_subscription(
        member_id: impl Into<MemberId>,
        group_instance_id: Option<String>,
        subscription: &wire::Subscription,
    ) -> Self {
        let generation = subscription
            .generation_id
            .or_else(|| subscription.user_data.as_deref().and_then(wire::generation_from_user_data));
        Self {
            member_id: member_id.into(),
            group_instance_id,
            topics: subscription.topics.clone(),
            owned_partitions: subscription.owned_partitions.clone(),
            generation,
            user_data: subscription.user_data.clone(),
        }
    }
}

/// Kafka's member order: static members by `group.instance.id`, then dynamic members by member
/// id (member id breaks any remaining tie).
pub fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    let by_instance = match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_instance.then_with(|| a.member_id.cmp(&b.member_id))
}

/// Look an assignor up by its wire name or Java class name, as `partition.assignment.strategy`
/// lists them. `None` for strategies Rill does not implement (such as the eager `sticky`).
pub fn assignor_by_name(name: &str) -> Option<Box<dyn Assignor>> {
    let short = name.trim().strip_prefix("org.apache.kafka.clients.consumer.").unwrap_or(name.trim());
    match short {
        "range" | "RangeAssignor" => Some(Box::new(RangeAssignor)),
        "roundrobin" | "RoundRobinAssignor" => Some(Box::new(RoundRobinAssignor)),
        "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Box::new(CooperativeStickyAssignor)),
        _ => None,
    }
}

/// The rebalance protocol a consumer with these assignors uses: the highest one all of them
/// support, as Kafka's consumer chooses it. `None` if they have none in common (a configuration
/// error) or the list is empty.
pub fn common_protocol(assignors: &[&dyn Assignor]) -> Option<RebalanceProtocol> {
    let (first, rest) = assignors.split_first()?;
    first
        .supported_protocols()
        .iter()
        .copied()
        .filter(|p| rest.iter().all(|a| a.supported_protocols().contains(p)))
        .max()
}

/// The members in [`member_order`], each with its subscribed topics as a set.
fn ordered(members: &[MemberSubscription]) -> Vec<(&MemberSubscription, BTreeSet<&str>)> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| member_order(a, b));
    sorted.into_iter().map(|m| (m, m.topics.iter().map(String::as_str).collect())).collect()
}

/// Topics at least one member subscribes to that exist with at least one partition, by name.
fn subscribed_topics<'a>(
    members: &[(&MemberSubscription, BTreeSet<&'a str>)],
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Vec<(&'a str, i32)> {
    let all: BTreeSet<&str> = members.iter().flat_map(|(_, topics)| topics.iter().copied()).collect();
    all.into_iter().filter_map(|t| partitions_per_topic.get(t).filter(|&&n| n > 0).map(|&n| (t, n))).collect()
}

/// An assignment with an empty entry for every member.
fn empty_assignment(members: &[MemberSubscription]) -> GroupAssignment {
    members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect()
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Helpers shared by the assignor tests: a seeded RNG and the invariants every assignor keeps.

    use std::collections::{BTreeMap, BTreeSet};

    use super::{GroupAssignment, MemberSubscription};

    /// splitmix64: small, seedable, and the same on every platform.
    pub struct Rng(u64);

    impl Rng {
        /// Seeded from `RILL_ASSIGNOR_SEED` when set (to replay a failure), else from `default`;
        /// the seed is printed so a failing run can be replayed.
        pub fn from_env(test: &str, default: u64) -> Self {
            let seed = std::env::var("RILL_ASSIGNOR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
            println!("{test}: seed {seed} (replay with RILL_ASSIGNOR_SEED={seed})");
            Rng(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (`n > 0`).
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        /// Uniform in `lo..=hi`.
        pub fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + self.below(hi - lo + 1)
        }

        /// True with probability `percent`/100.
        pub fn percent(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    /// A random group: 1-4 topics of 1-12 partitions and 1-7 members; with `equal` (returned,
    /// chosen at random) every member subscribes to every topic, else each to a random subset.
    pub fn random_group(rng: &mut Rng) -> (BTreeMap<String, i32>, Vec<MemberSubscription>, bool) {
        let names: Vec<String> = (0..rng.range(1, 5)).map(|i| format!("t{i}")).collect();
        let partitions: BTreeMap<String, i32> = names.iter().map(|t| (t.clone(), rng.range(1, 12) as i32)).collect();
        let equal = rng.percent(50);
        let members = (0..rng.range(1, 8))
            .map(|i| {
                let subscribed: Vec<&String> = names.iter().filter(|_| equal || rng.percent(60)).collect();
                MemberSubscription::new(format!("m{}", rng.below(1000) * 10 + i), subscribed)
            })
            .collect();
        (partitions, members, equal)
    }

    /// `(topic, partition)` for tests.
    pub fn tp(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_string(), partition)
    }

    /// Partition counts from `(topic, count)` pairs.
    pub fn topics(counts: &[(&str, i32)]) -> BTreeMap<String, i32> {
        counts.iter().map(|&(t, n)| (t.to_string(), n)).collect()
    }

    /// Every member has an entry; every partition of every subscribed, existing topic is assigned
    /// exactly once, to a member subscribed to it; nothing else is assigned; lists are sorted.
    pub fn assert_valid(members: &[MemberSubscription], partitions: &BTreeMap<String, i32>, out: &GroupAssignment) {
        let ids: BTreeSet<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
        let got: BTreeSet<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(ids, got, "one entry per member");
        let mut seen = BTreeSet::new();
        for (member, parts) in out {
            let m = members.iter().find(|m| &m.member_id == member).unwrap();
            assert!(
                parts.windows(2).all(|w| w[0] < w[1]),
                "{member}'s list is sorted and has no duplicates: {parts:?}"
            );
            for (t, p) in parts {
                assert!(m.topics.contains(t), "{member} got {t}-{p} without subscribing to {t}");
                assert!((0..partitions.get(t).copied().unwrap_or(0)).contains(p), "{t}-{p} does not exist");
                assert!(seen.insert((t.clone(), *p)), "{t}-{p} assigned twice");
            }
        }
        for (t, &n) in partitions {
            if members.iter().any(|m| m.topics.contains(t)) {
                for p in 0..n {
                    assert!(seen.contains(&(t.clone(), p)), "{t}-{p} not assigned");
                }
            }
        }
    }

    /// Largest minus smallest number of partitions per member.
    pub fn spread(out: &GroupAssignment) -> usize {
        let sizes = out.values().map(Vec::len);
        sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0)
    }

    /// Kafka's balance for any subscriptions: no partition could move to a member subscribed to its
    /// topic that has at least two fewer partitions than its holder.
    pub fn is_balanced(members: &[MemberSubscription], out: &GroupAssignment) -> bool {
        out.values().all(|parts| {
            parts.iter().all(|(t, _)| {
                members.iter().all(|m| !m.topics.contains(t) || out[&m.member_id].len() + 2 > parts.len())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_members_come_first_by_instance_id_then_dynamic_by_member_id() {
        let mut members = [
            MemberSubscription::new("a", ["t"]),
            MemberSubscription::new("z", ["t"]).with_instance_id("i2"),
            MemberSubscription::new("b", ["t"]).with_instance_id("i1"),
            MemberSubscription::new("0", ["t"]),
        ];
        members.sort_by(member_order);
        let ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["b", "z", "0", "a"]);
    }

    #[test]
    fn assignors_by_wire_and_java_names() {
        for (name, wire) in [
            ("range", "range"),
            ("org.apache.kafka.clients.consumer.RangeAssignor", "range"),
            ("roundrobin", "roundrobin"),
            ("org.apache.kafka.clients.consumer.RoundRobinAssignor", "roundrobin"),
            (" cooperative-sticky", "cooperative-sticky"),
            ("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "cooperative-sticky"),
        ] {
            assert_eq!(assignor_by_name(name).map(|a| a.name()), Some(wire), "{name}");
        }
        assert!(assignor_by_name("sticky").is_none());
        assert!(assignor_by_name("org.apache.kafka.clients.consumer.StickyAssignor").is_none());
    }

    #[test]
    fn protocol_is_the_highest_all_assignors_support() {
        let (range, sticky): (&dyn Assignor, &dyn Assignor) = (&RangeAssignor, &CooperativeStickyAssignor);
        assert_eq!(common_protocol(&[sticky]), Some(RebalanceProtocol::Cooperative));
        assert_eq!(common_protocol(&[sticky, range]), Some(RebalanceProtocol::Eager));
        assert_eq!(common_protocol(&[range, &RoundRobinAssignor]), Some(RebalanceProtocol::Eager));
        assert_eq!(common_protocol(&[]), None);
    }

    #[test]
    fn member_from_subscription_takes_the_generation_from_the_field_or_user_data() {
        use wire::Subscription;
        let owned = vec![("t".to_string(), 1)];
        let v3 = Subscription { generation_id: Some(7), owned_partitions: owned.clone(), ..Subscription::new(["t"]) };
        let m = MemberSubscription::from_subscription("m", Some("i".into()), &v3);
        assert_eq!((m.generation, m.owned_partitions, m.group_instance_id), (Some(7), owned, Some("i".into())));

        // Java cooperative-sticky before v2: four bytes of generation in user_data.
        let v1 = Subscription {
            version: 1,
            user_data: CooperativeStickyAssignor.subscription_user_data(Some(5)),
            ..Subscription::new(["t"])
        };
        assert_eq!(MemberSubscription::from_subscription("m", None, &v1).generation, Some(5));

        // Neither: unknown.
        let v0 = Subscription { version: 0, ..Subscription::new(["t"]) };
        assert_eq!(MemberSubscription::from_subscription("m", None, &v0).generation, None);
    }
}
