//! `range`: each topic's partitions split into contiguous ranges, one per subscribed member.
//!
//! For each topic, the members subscribed to it (in [`member_order`](super::member_order)) get
//! `n / m` partitions each, in order, and the first `n % m` of them one more. Topics are handled
//! independently, so with equal subscriptions each topic is balanced but the first members can
//! get one extra partition of every topic — the layout that lines up partition `i` of
//! co-partitioned topics on the same member, which is why joins rely on it.
//!
//! Kafka's example: members C0 and C1, topics t0 and t1 with three partitions each:
//!
//! ```text
//! C0: [t0p0, t0p1, t1p0, t1p1]
//! C1: [t0p2, t1p2]
//! ```

use std::collections::BTreeMap;

use super::{empty_assignment, ordered, subscribed_topics, Assignor, GroupAssignment, MemberSubscription};

/// Kafka's `RangeAssignor` (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(&self, members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, i32>) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let members = ordered(members);
        for (topic, count) in subscribed_topics(&members, partitions_per_topic) {
            let subscribers: Vec<&MemberSubscription> =
                members.iter().filter(|(_, topics)| topics.contains(topic)).map(|(m, _)| *m).collect();
            let (each, extra) = (count as usize / subscribers.len(), count as usize % subscribers.len());
            let mut next = 0;
            for (i, member) in subscribers.iter().enumerate() {
                let len = each + usize::from(i < extra);
                let share = out.entry(member.member_id.clone()).or_default();
                share.extend((next..next + len).map(|p| (topic.to_string(), p as i32)));
                next += len;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignor::testkit::{assert_valid, random_group, topics, tp, Rng};

    #[test]
    fn kafka_documentation_example() {
        let members = [MemberSubscription::new("C0", ["t0", "t1"]), MemberSubscription::new("C1", ["t0", "t1"])];
        let out = RangeAssignor.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(out["C0"], [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(out["C1"], [tp("t0", 2), tp("t1", 2)]);
    }

    #[test]
    fn known_layouts() {
        struct Case {
            name: &'static str,
            members: Vec<MemberSubscription>,
            topics: Vec<(&'static str, i32)>,
            want: Vec<(&'static str, Vec<(String, i32)>)>,
        }
        let cases = [
            Case {
                name: "more members than partitions: the last ones get nothing",
                members: vec![
                    MemberSubscription::new("a", ["t"]),
                    MemberSubscription::new("b", ["t"]),
                    MemberSubscription::new("c", ["t"]),
                ],
                topics: vec![("t", 2)],
                want: vec![("a", vec![tp("t", 0)]), ("b", vec![tp("t", 1)]), ("c", vec![])],
            },
            Case {
                name: "seven partitions over three members: 3, 2, 2",
                members: vec![
                    MemberSubscription::new("c", ["t"]),
                    MemberSubscription::new("a", ["t"]),
                    MemberSubscription::new("b", ["t"]),
                ],
                topics: vec![("t", 7)],
                want: vec![
                    ("a", vec![tp("t", 0), tp("t", 1), tp("t", 2)]),
                    ("b", vec![tp("t", 3), tp("t", 4)]),
                    ("c", vec![tp("t", 5), tp("t", 6)]),
                ],
            },
            Case {
                name: "different subscriptions: each topic split among its own subscribers",
                members: vec![MemberSubscription::new("a", ["x"]), MemberSubscription::new("b", ["x", "y"])],
                topics: vec![("x", 2), ("y", 3)],
                want: vec![("a", vec![tp("x", 0)]), ("b", vec![tp("x", 1), tp("y", 0), tp("y", 1), tp("y", 2)])],
            },
            Case {
                name: "static members sort by instance id, ahead of dynamic ones",
                members: vec![
                    MemberSubscription::new("a", ["t"]),
                    MemberSubscription::new("z", ["t"]).with_instance_id("i0"),
                ],
                topics: vec![("t", 3)],
                want: vec![("z", vec![tp("t", 0), tp("t", 1)]), ("a", vec![tp("t", 2)])],
            },
            Case {
                name: "a topic missing from metadata is skipped",
                members: vec![MemberSubscription::new("a", ["t", "gone"])],
                topics: vec![("t", 1)],
                want: vec![("a", vec![tp("t", 0)])],
            },
        ];
        for case in cases {
            let partitions = topics(&case.topics);
            let out = RangeAssignor.assign(&case.members, &partitions);
            assert_valid(&case.members, &partitions, &out);
            for (member, want) in case.want {
                assert_eq!(out[member], want, "{}: {member}", case.name);
            }
        }
    }

    #[test]
    fn random_groups_are_valid_and_balanced_per_topic() {
        let mut rng = Rng::from_env("range", 0x5241_4e47);
        for _ in 0..300 {
            let (partitions, members, _) = random_group(&mut rng);
            let out = RangeAssignor.assign(&members, &partitions);
            assert_valid(&members, &partitions, &out);
            for (topic, n) in &partitions {
                let counts: Vec<usize> = members
                    .iter()
                    .filter(|m| m.topics.contains(topic))
                    .map(|m| out[&m.member_id].iter().filter(|(t, _)| t == topic).count())
                    .collect();
                if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
                    assert!(max - min <= 1, "{topic} ({n} partitions) split {counts:?}");
                }
            }
        }
    }
}
