//! `roundrobin`: all partitions, sorted by topic and partition, dealt in turn to the members.
//!
//! The members (in [`member_order`](super::member_order)) form a circle. Each partition goes to
//! the next member in the circle that subscribes to its topic, and the deal continues from the
//! member after it. With equal subscriptions the counts differ by at most one; with different
//! subscriptions the result can be unbalanced, as in Kafka.
//!
//! Kafka's examples: members C0 and C1, topics t0 and t1 with three partitions each:
//!
//! ```text
//! C0: [t0p0, t0p2, t1p1]
//! C1: [t0p1, t1p0, t1p2]
//! ```
//!
//! and C0 subscribed to t0, C1 to t0 and t1, C2 to t0, t1 and t2, with 1, 2 and 3 partitions:
//!
//! ```text
//! C0: [t0p0]
//! C1: [t1p0]
//! C2: [t1p1, t2p0, t2p1, t2p2]
//! ```

use std::collections::BTreeMap;

use super::{empty_assignment, ordered, subscribed_topics, Assignor, GroupAssignment, MemberSubscription};

/// Kafka's `RoundRobinAssignor` (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let members = ordered(members);
        let mut next = 0;
        for (topic, count) in subscribed_topics(&members, partitions_per_topic) {
            for partition in 0..count {
                // The topic has a subscriber, so this stops within one turn of the circle.
                while !members[next % members.len()].1.contains(topic) {
                    next += 1;
                }
                let member = &members[next % members.len()].0.member_id;
                out.entry(member.clone()).or_default().push((topic.to_string(), partition));
                next += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignor::testkit::{assert_valid, random_group, spread, topics, tp, Rng};

    #[test]
    fn kafka_documentation_examples() {
        let members = [MemberSubscription::new("C0", ["t0", "t1"]), MemberSubscription::new("C1", ["t0", "t1"])];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(out["C0"], [tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(out["C1"], [tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

        let members = [
            MemberSubscription::new("C0", ["t0"]),
            MemberSubscription::new("C1", ["t0", "t1"]),
            MemberSubscription::new("C2", ["t0", "t1", "t2"]),
        ];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(out["C0"], [tp("t0", 0)]);
        assert_eq!(out["C1"], [tp("t1", 0)]);
        assert_eq!(out["C2"], [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }

    #[test]
    fn known_layouts() {
        // Static members first (by instance id), and the deal continues across topics.
        let members = [
            MemberSubscription::new("a", ["x", "y"]),
            MemberSubscription::new("b", ["x", "y"]).with_instance_id("s1"),
            MemberSubscription::new("c", ["x", "y"]).with_instance_id("s0"),
        ];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("x", 2), ("y", 3), ("z", 4)]));
        assert_eq!(out["c"], [tp("x", 0), tp("y", 1)]);
        assert_eq!(out["b"], [tp("x", 1), tp("y", 2)]);
        assert_eq!(out["a"], [tp("y", 0)]);

        // Nobody subscribed to anything that exists: everyone gets an empty list.
        let members = [MemberSubscription::new("a", ["gone"])];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("x", 2)]));
        assert_eq!(out["a"], []);
    }

    #[test]
    fn random_groups_are_valid_and_balanced_with_equal_subscriptions() {
        let mut rng = Rng::from_env("roundrobin", 0x5252_4f42);
        for _ in 0..300 {
            let (partitions, members, equal) = random_group(&mut rng);
            let out = RoundRobinAssignor.assign(&members, &partitions);
            assert_valid(&members, &partitions, &out);
            if equal {
                assert!(spread(&out) <= 1, "unbalanced: {out:?}");
            }
        }
    }
}
