//! Tests of the cooperative-sticky assignor: Kafka's documented layouts, the two-phase moves,
//! conflicting claims, group life (joins, leaves, topic changes) and properties over random groups
//! (seeded; each test prints its seed).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::consumer::assignor::testkit::{assert_valid, is_balanced, spread, topics, tp, Rng};

type Partitions = BTreeMap<String, i32>;

/// Rebalances a group may need before nothing is pending any more.
const MAX_ROUNDS: usize = 4;

/// Run the assignor and check the invariants of every plan.
fn plan(members: &[MemberSubscription], partitions: &Partitions) -> StickyPlan {
    let plan = CooperativeStickyAssignor.plan(members, partitions);
    assert_valid(members, partitions, &plan.target);
    let mut withheld = 0;
    for (id, target) in &plan.target {
        let now = &plan.assignment[id];
        assert!(now.iter().all(|p| target.contains(p)), "{id}: {now:?} is not within {target:?}");
        for p in target.iter().filter(|p| !now.contains(p)) {
            assert_eq!(plan.pending.get(p), Some(id), "{p:?} withheld from {id} but not pending for it");
            withheld += 1;
        }
    }
    assert_eq!(plan.pending.len(), withheld);
    // The cooperative contract: nobody gets a partition another member still owns. A claim counts
    // unless a higher generation claims the partition too.
    for (id, now) in &plan.assignment {
        for p in now {
            let claims: Vec<(&str, i32)> = members
                .iter()
                .filter(|m| m.owned_partitions.contains(p))
                .map(|m| (m.member_id.as_str(), m.generation.unwrap_or(NO_GENERATION)))
                .collect();
            if let Some(top) = claims.iter().map(|c| c.1).max() {
                let owners: Vec<&str> = claims.iter().filter(|c| c.1 == top).map(|c| c.0).collect();
                assert_eq!(owners, [id.as_str()], "{id} got {p:?} while {claims:?} claim it");
            }
        }
    }
    plan
}

/// The group after members applied `plan`: each owns what it got, in the next generation.
fn after(members: &[MemberSubscription], plan: &StickyPlan, generation: i32) -> Vec<MemberSubscription> {
    members
        .iter()
        .map(|m| MemberSubscription {
            owned_partitions: plan.assignment[&m.member_id].clone(),
            generation: Some(generation),
            ..m.clone()
        })
        .collect()
}

/// A member's owned partitions it could keep: they exist and it still subscribes to them.
fn keepable<'a>(m: &'a MemberSubscription, partitions: &'a Partitions) -> impl Iterator<Item = &'a (String, i32)> {
    m.owned_partitions
        .iter()
        .filter(|(t, p)| m.topics.contains(t) && (0..partitions.get(t).copied().unwrap_or(0)).contains(p))
}

/// Owned, keepable partitions that `target` gives to someone else (claims must not conflict).
fn moved(members: &[MemberSubscription], partitions: &Partitions, target: &GroupAssignment) -> usize {
    members.iter().map(|m| keepable(m, partitions).filter(|p| !target[&m.member_id].contains(p)).count()).sum()
}

/// The fewest moves any balanced assignment needs when all members subscribe to the same topics:
/// balanced means `P % M` members hold `P / M + 1` and the rest `P / M`, and a member keeps at most
/// `min(owned, quota)`, most when the larger quotas go to the members owning most.
fn fewest_moves_equal(members: &[MemberSubscription], partitions: &Partitions) -> usize {
    let Some(first) = members.first() else { return 0 };
    let total: usize = first.topics.iter().filter_map(|t| partitions.get(t)).map(|&n| n as usize).sum();
    let mut owned: Vec<usize> = members.iter().map(|m| keepable(m, partitions).count()).collect();
    owned.sort_unstable_by(|a, b| b.cmp(a));
    let (each, extra) = (total / members.len(), total % members.len());
    let kept: usize = owned.iter().enumerate().map(|(i, &k)| k.min(each + usize::from(i < extra))).sum();
    owned.iter().sum::<usize>() - kept
}

/// The fewest moves of any assignment that is valid and balanced in Kafka's sense, by trying them
/// all (small groups only).
fn fewest_moves_brute_force(members: &[MemberSubscription], partitions: &Partitions) -> usize {
    let all: Vec<((String, i32), Vec<usize>)> = partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .map(|p| {
            let subscribers = (0..members.len()).filter(|&m| members[m].topics.contains(&p.0)).collect::<Vec<_>>();
            (p, subscribers)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let mut choice = vec![0usize; all.len()];
    let mut best = usize::MAX;
    loop {
        let mut out: GroupAssignment = members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect();
        for (i, (p, subscribers)) in all.iter().enumerate() {
            out.get_mut(&members[subscribers[choice[i]]].member_id).unwrap().push(p.clone());
        }
        if is_balanced(members, &out) {
            best = best.min(moved(members, partitions, &out));
        }
        // Next combination, odometer style.
        let Some(i) = (0..all.len()).find(|&i| choice[i] + 1 < all[i].1.len()) else { return best };
        choice[i] += 1;
        choice[..i].iter_mut().for_each(|c| *c = 0);
    }
}

/// Rebalance until nothing is pending: the settled group and the number of rounds it took.
fn settle(
    members: &[MemberSubscription],
    partitions: &Partitions,
    generation: &mut i32,
) -> (Vec<MemberSubscription>, usize) {
    let mut members = members.to_vec();
    for round in 1..=MAX_ROUNDS {
        let plan = plan(&members, partitions);
        *generation += 1;
        members = after(&members, &plan, *generation);
        if plan.pending.is_empty() {
            return (members, round);
        }
    }
    panic!("still moving partitions after {MAX_ROUNDS} rounds: {members:?}");
}

fn owned_by(plan: &GroupAssignment, id: &str) -> Vec<(String, i32)> {
    plan[id].clone()
}

#[test]
fn kafka_documentation_example_equal_subscriptions() {
    // StickyAssignor docs, example 1: three members, four topics of two partitions.
    let partitions = topics(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
    let all = ["t0", "t1", "t2", "t3"];
    let members: Vec<_> = ["C0", "C1", "C2"].iter().map(|id| MemberSubscription::new(*id, all)).collect();
    let first = plan(&members, &partitions);
    assert_eq!(first.assignment["C0"], [tp("t0", 0), tp("t1", 1), tp("t3", 0)]);
    assert_eq!(first.assignment["C1"], [tp("t0", 1), tp("t2", 0), tp("t3", 1)]);
    assert_eq!(first.assignment["C2"], [tp("t1", 0), tp("t2", 1)]);

    // C1 leaves: C0 and C2 keep everything and share C1's three partitions, two and one.
    let remaining: Vec<_> = after(&members, &first, 1).into_iter().filter(|m| m.member_id != "C1").collect();
    let second = plan(&remaining, &partitions);
    assert!(second.pending.is_empty());
    for m in &remaining {
        assert!(m.owned_partitions.iter().all(|p| second.assignment[&m.member_id].contains(p)), "{} lost", m.member_id);
        assert_eq!(second.assignment[&m.member_id].len(), 4);
    }
}

#[test]
fn kafka_documentation_example_different_subscriptions() {
    // StickyAssignor docs, example 2: C0 on t0, C1 on t0 and t1, C2 on t0, t1 and t2.
    let partitions = topics(&[("t0", 1), ("t1", 2), ("t2", 3)]);
    let members = [
        MemberSubscription::new("C0", ["t0"]),
        MemberSubscription::new("C1", ["t0", "t1"]),
        MemberSubscription::new("C2", ["t0", "t1", "t2"]),
    ];
    let first = plan(&members, &partitions);
    assert_eq!(first.assignment["C0"], [tp("t0", 0)]);
    assert_eq!(first.assignment["C1"], [tp("t1", 0), tp("t1", 1)]);
    assert_eq!(first.assignment["C2"], [tp("t2", 0), tp("t2", 1), tp("t2", 2)]);

    // C0 leaves: only its partition moves, to C1 (round robin would reshuffle t1).
    let remaining: Vec<_> = after(&members, &first, 1).into_iter().skip(1).collect();
    let second = plan(&remaining, &partitions);
    assert_eq!(second.assignment["C1"], [tp("t0", 0), tp("t1", 0), tp("t1", 1)]);
    assert_eq!(second.assignment["C2"], [tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
}

#[test]
fn moves_happen_in_two_phases() {
    struct Case {
        name: &'static str,
        members: Vec<MemberSubscription>,
        partitions: Vec<(&'static str, i32)>,
        /// Per member: what it gets in the first round, then in the second.
        want: Vec<(&'static str, Vec<Named>, Vec<Named>)>,
    }
    type Named = (String, i32);
    let t = |ps: &[i32]| ps.iter().map(|&p| tp("t", p)).collect::<Vec<_>>();
    let cases = [
        Case {
            name: "a member joins: the owner revokes first, the newcomer gets them next round",
            members: vec![
                MemberSubscription::new("A", ["t"]).with_owned(1, (0..4).map(|p| ("t", p))),
                MemberSubscription::new("B", ["t"]),
            ],
            partitions: vec![("t", 4)],
            want: vec![("A", t(&[0, 1]), t(&[0, 1])), ("B", t(&[]), t(&[2, 3]))],
        },
        Case {
            name: "a member drops a topic: its partitions there move in two phases",
            members: vec![
                MemberSubscription::new("A", ["u"]).with_owned(2, [("t", 0), ("u", 0), ("u", 1), ("u", 2)]),
                MemberSubscription::new("B", ["t", "u"]).with_owned(2, [("t", 1), ("u", 3)]),
            ],
            partitions: vec![("t", 2), ("u", 4)],
            want: vec![
                ("A", vec![tp("u", 0), tp("u", 1), tp("u", 2)], vec![tp("u", 0), tp("u", 1), tp("u", 2)]),
                ("B", vec![tp("t", 1), tp("u", 3)], vec![tp("t", 0), tp("t", 1), tp("u", 3)]),
            ],
        },
        Case {
            name: "two owners in the same generation: neither keeps it this round",
            members: vec![
                MemberSubscription::new("A", ["t"]).with_owned(3, [("t", 0), ("t", 1)]),
                MemberSubscription::new("B", ["t"]).with_owned(3, [("t", 1), ("t", 2)]),
            ],
            partitions: vec![("t", 4)],
            want: vec![("A", t(&[0]), t(&[0, 1])), ("B", t(&[2, 3]), t(&[2, 3]))],
        },
        Case {
            name: "the higher generation wins a claim; a stale claim holds nothing back",
            members: vec![
                MemberSubscription::new("A", ["t"]).with_owned(5, [("t", 0), ("t", 1)]),
                MemberSubscription::new("B", ["t"]).with_owned(4, [("t", 1), ("t", 2)]),
            ],
            partitions: vec![("t", 4)],
            want: vec![("A", t(&[0, 1]), t(&[0, 1])), ("B", t(&[2, 3]), t(&[2, 3]))],
        },
        Case {
            name: "claims on deleted topics and missing partitions are ignored",
            members: vec![
                MemberSubscription::new("A", ["t"]).with_owned(1, [("gone", 0), ("t", 9), ("t", -1), ("t", 1)]),
                MemberSubscription::new("B", ["t"]),
            ],
            partitions: vec![("t", 2)],
            want: vec![("A", t(&[1]), t(&[1])), ("B", t(&[0]), t(&[0]))],
        },
        Case {
            name: "eager members own nothing: nothing is withheld",
            members: vec![MemberSubscription::new("A", ["t"]), MemberSubscription::new("B", ["t"])],
            partitions: vec![("t", 3)],
            want: vec![("A", t(&[0, 2]), t(&[0, 2])), ("B", t(&[1]), t(&[1]))],
        },
    ];
    for case in cases {
        let partitions = topics(&case.partitions);
        let first = plan(&case.members, &partitions);
        let generation = case.members.iter().filter_map(|m| m.generation).max().unwrap_or(0) + 1;
        let second = plan(&after(&case.members, &first, generation), &partitions);
        assert!(second.pending.is_empty(), "{}: second round still moves {:?}", case.name, second.pending);
        for (id, round1, round2) in case.want {
            assert_eq!(owned_by(&first.assignment, id), round1, "{}: {id}, round 1", case.name);
            assert_eq!(owned_by(&second.assignment, id), round2, "{}: {id}, round 2", case.name);
        }
    }
}

#[test]
fn the_assignor_trait_sends_this_rounds_share() {
    let members = [
        MemberSubscription::new("A", ["t"]).with_owned(1, (0..4).map(|p| ("t", p))),
        MemberSubscription::new("B", ["t"]),
    ];
    let partitions = topics(&[("t", 4)]);
    assert_eq!(CooperativeStickyAssignor.assign(&members, &partitions), plan(&members, &partitions).assignment);
    assert_eq!(CooperativeStickyAssignor.name(), "cooperative-sticky");
    let user_data = CooperativeStickyAssignor.subscription_user_data(Some(3)).unwrap();
    assert_eq!(wire::generation_from_user_data(&user_data), Some(3));
}

#[test]
fn static_members_keep_their_layout_under_new_member_ids() {
    // A restarted static member comes back with a new member id; order follows instance ids.
    let partitions = topics(&[("t", 4)]);
    let first_ids = [
        MemberSubscription::new("x1", ["t"]).with_instance_id("b"),
        MemberSubscription::new("x2", ["t"]).with_instance_id("a"),
    ];
    let renamed = [
        MemberSubscription::new("y9", ["t"]).with_instance_id("b"),
        MemberSubscription::new("y0", ["t"]).with_instance_id("a"),
    ];
    let (p1, p2) = (plan(&first_ids, &partitions), plan(&renamed, &partitions));
    assert_eq!((&p1.assignment["x2"], &p1.assignment["x1"]), (&p2.assignment["y0"], &p2.assignment["y9"]));
    assert_eq!(p1.assignment["x2"], [tp("t", 0), tp("t", 2)]);
}

/// A group whose members apply every plan, for scenario tests.
struct Sim {
    members: Vec<MemberSubscription>,
    partitions: Partitions,
    generation: i32,
}

/// What one rebalance (all its rounds) did.
struct Rebalance {
    /// Owned partitions the target gives to someone else.
    moved: usize,
    /// The fewest moves a balanced assignment needs (equal subscriptions only).
    fewest: Option<usize>,
    rounds: usize,
}

impl Sim {
    fn new(partitions: &[(&str, i32)]) -> Self {
        Sim { members: Vec::new(), partitions: topics(partitions), generation: 0 }
    }

    fn member(&mut self, id: &str) -> &mut MemberSubscription {
        self.members.iter_mut().find(|m| m.member_id == id).unwrap()
    }

    fn owned(&self, id: &str) -> BTreeSet<(String, i32)> {
        self.members.iter().find(|m| m.member_id == id).unwrap().owned_partitions.iter().cloned().collect()
    }

    fn rebalance(&mut self) -> Rebalance {
        let first = plan(&self.members, &self.partitions);
        assert!(is_balanced(&self.members, &first.target), "unbalanced: {:?}", first.target);
        let equal = self.members.windows(2).all(|w| w[0].topics == w[1].topics);
        let moved = moved(&self.members, &self.partitions, &first.target);
        let fewest = equal.then(|| fewest_moves_equal(&self.members, &self.partitions));
        let (members, rounds) = settle(&self.members, &self.partitions, &mut self.generation);
        self.members = members;
        Rebalance { moved, fewest, rounds }
    }
}

#[test]
fn stickiness_across_joins_leaves_and_topic_changes() {
    let mut g = Sim::new(&[("a", 6), ("b", 6)]);
    let both = ["a", "b"];
    g.members = ["m1", "m2", "m3"].iter().map(|id| MemberSubscription::new(*id, both)).collect();
    let r = g.rebalance();
    assert_eq!((r.moved, r.rounds), (0, 1), "a fresh group moves nothing");
    let before: Vec<_> = ["m1", "m2", "m3"].iter().map(|id| g.owned(id)).collect();

    // A fourth member joins: 12 partitions over 4, so each of the three gives up exactly one.
    g.members.push(MemberSubscription::new("m4", both));
    let r = g.rebalance();
    assert_eq!((r.moved, r.fewest, r.rounds), (3, Some(3), 2));
    for (id, had) in ["m1", "m2", "m3"].iter().zip(&before) {
        assert_eq!(g.owned(id).intersection(had).count(), 3, "{id} kept 3 of its 4");
    }
    assert_eq!(g.owned("m4").len(), 3);

    // m2 leaves: nobody else loses anything; its partitions are spread over the others.
    let kept: Vec<_> = ["m1", "m3", "m4"].iter().map(|id| g.owned(id)).collect();
    g.members.retain(|m| m.member_id != "m2");
    let r = g.rebalance();
    assert_eq!((r.moved, r.rounds), (0, 1));
    for (id, had) in ["m1", "m3", "m4"].iter().zip(&kept) {
        assert!(g.owned(id).is_superset(had), "{id} lost a partition");
        assert_eq!(g.owned(id).len(), 4);
    }

    // Topic b grows to 9 partitions: the new ones are handed out, nothing moves.
    let kept: Vec<_> = ["m1", "m3", "m4"].iter().map(|id| g.owned(id)).collect();
    g.partitions.insert("b".into(), 9);
    let r = g.rebalance();
    assert_eq!((r.moved, r.rounds), (0, 1));
    for (id, had) in ["m1", "m3", "m4"].iter().zip(&kept) {
        assert!(g.owned(id).is_superset(had), "{id} lost a partition");
        assert_eq!(g.owned(id).len(), 5);
    }

    // Topic a is deleted: its partitions vanish; the b partitions move only as balance needs.
    g.partitions.remove("a");
    let r = g.rebalance();
    assert_eq!(Some(r.moved), r.fewest);
    assert!(r.rounds <= 2);

    // m3 subscribes to a new topic c that only it reads: its b partitions go to the others.
    g.partitions.insert("c".into(), 4);
    g.member("m3").topics = vec!["b".into(), "c".into()];
    let r = g.rebalance();
    assert!(r.rounds <= 2);
    assert!(g.owned("m3").iter().filter(|(t, _)| t == "c").count() == 4);
    let sizes: Vec<usize> = ["m1", "m3", "m4"].iter().map(|id| g.owned(id).len()).collect();
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
}

/// Random topics `t0..`, each with 1..=12 partitions.
fn random_partitions(rng: &mut Rng, max_topics: usize, max_partitions: usize) -> Partitions {
    (0..rng.range(1, max_topics)).map(|i| (format!("t{i}"), rng.range(1, max_partitions) as i32)).collect()
}

/// Ownership left by some earlier state: each partition owned by a random member or by nobody
/// (its owner left); plus, sometimes, claims on partitions that no longer exist.
fn random_ownership(rng: &mut Rng, members: &mut [MemberSubscription], partitions: &Partitions) {
    for (t, &n) in partitions {
        for p in 0..n {
            if rng.percent(75) {
                let m = rng.below(members.len());
                members[m].owned_partitions.push((t.clone(), p));
            }
        }
    }
    if rng.percent(20) {
        let m = rng.below(members.len());
        members[m].owned_partitions.push(("deleted".into(), 0));
        members[m].owned_partitions.push(("t0".into(), partitions["t0"] + 1));
    }
    for m in members.iter_mut() {
        m.generation = Some(7);
    }
}

#[test]
fn random_equal_subscriptions_move_the_fewest_and_settle_in_two_rounds() {
    let mut rng = Rng::from_env("cooperative_sticky equal subscriptions", 0xC0_57_1C_E1);
    for case in 0..1000 {
        let partitions = random_partitions(&mut rng, 4, 12);
        let names: Vec<&String> = partitions.keys().collect();
        let mut members: Vec<_> = (0..rng.range(1, 8))
            .map(|i| MemberSubscription::new(format!("m{}-{i}", rng.below(100)), names.iter().copied()))
            .collect();
        random_ownership(&mut rng, &mut members, &partitions);

        let first = plan(&members, &partitions);
        assert!(spread(&first.target) <= 1, "case {case}: unbalanced {:?}", first.target);
        let fewest = fewest_moves_equal(&members, &partitions);
        assert_eq!(moved(&members, &partitions, &first.target), fewest, "case {case}: {members:?}");
        assert_eq!(first.pending.len(), fewest, "case {case}: only moves are withheld");

        let next = after(&members, &first, 8);
        let second = plan(&next, &partitions);
        assert!(second.pending.is_empty(), "case {case}: the second round moves {:?}", second.pending);
        assert!(spread(&second.assignment) <= 1, "case {case}");
        for m in &next {
            assert!(m.owned_partitions.iter().all(|p| second.assignment[&m.member_id].contains(p)), "case {case}");
        }
    }
}

#[test]
fn random_different_subscriptions_are_balanced_and_settle() {
    let mut rng = Rng::from_env("cooperative_sticky different subscriptions", 0xD1_FF_E2);
    let mut rounds_seen = [0usize; MAX_ROUNDS + 1];
    for case in 0..1000 {
        let partitions = random_partitions(&mut rng, 5, 10);
        let names: Vec<&String> = partitions.keys().collect();
        let mut members: Vec<_> = (0..rng.range(1, 8))
            .map(|i| {
                let mut topics: Vec<&String> = names.iter().copied().filter(|_| rng.percent(50)).collect();
                if topics.is_empty() {
                    topics.push(names[rng.below(names.len())]);
                }
                MemberSubscription::new(format!("m{}-{i}", rng.below(100)), topics)
            })
            .collect();
        random_ownership(&mut rng, &mut members, &partitions);

        let first = plan(&members, &partitions);
        assert!(is_balanced(&members, &first.target), "case {case}: unbalanced {:?}", first.target);
        let mut generation = 7;
        let (settled, rounds) = settle(&members, &partitions, &mut generation);
        rounds_seen[rounds] += 1;
        // Settled means a fixed point: the next rebalance changes nothing.
        let again = plan(&settled, &partitions);
        assert!(is_balanced(&settled, &again.assignment), "case {case}");
        for m in &settled {
            assert_eq!(again.assignment[&m.member_id], m.owned_partitions, "case {case}: {} changed", m.member_id);
        }
    }
    println!("rounds to settle: {rounds_seen:?}");
}

#[test]
fn small_groups_move_about_as_few_as_the_best_balanced_assignment() {
    // Every valid, balanced assignment of up to seven partitions over two or three members, tried.
    // Equal subscriptions: never more moves than the best. Different subscriptions: the heuristic
    // (like Kafka's) is off by one in a few cases, as printed.
    let mut rng = Rng::from_env("cooperative_sticky brute force", 0xB2_07E);
    let (mut cases, mut worse) = (0, 0);
    for case in 0..3000 {
        let partitions = random_partitions(&mut rng, 3, 3);
        if partitions.values().sum::<i32>() > 7 {
            continue;
        }
        let names: Vec<&String> = partitions.keys().collect();
        let equal = rng.percent(30);
        let mut members: Vec<_> = (0..rng.range(2, 3))
            .map(|i| {
                let mut topics: Vec<&String> = names.iter().copied().filter(|_| equal || rng.percent(60)).collect();
                if topics.is_empty() {
                    topics.push(names[rng.below(names.len())]);
                }
                MemberSubscription::new(format!("m{i}"), topics)
            })
            .collect();
        random_ownership(&mut rng, &mut members, &partitions);
        let target = plan(&members, &partitions).target;
        assert!(is_balanced(&members, &target), "case {case}");
        let (got, best) = (moved(&members, &partitions, &target), fewest_moves_brute_force(&members, &partitions));
        cases += 1;
        if got != best {
            worse += 1;
            println!("case {case}: moved {got}, best {best}: {members:?} {partitions:?}");
            assert!(!equal && got == best + 1, "case {case}: moved {got}, best {best}");
        }
    }
    println!("more moves than the best balanced assignment in {worse} of {cases} groups");
    assert!(worse * 200 <= cases, "{worse} of {cases}");
}

#[test]
fn random_group_life_keeps_partitions_sticky() {
    let mut rng = Rng::from_env("cooperative_sticky group life", 0x11_FE);
    for equal in [true, false] {
        let mut g = Sim::new(&[("t0", 6), ("t1", 3)]);
        let mut next_id = 0;
        for step in 0..150 {
            let names: Vec<String> = g.partitions.keys().cloned().collect();
            let subscription = |rng: &mut Rng| -> Vec<String> {
                let mut topics: Vec<String> = names.iter().filter(|_| equal || rng.percent(60)).cloned().collect();
                if topics.is_empty() {
                    topics.push(names[rng.below(names.len())].clone());
                }
                topics
            };
            match rng.below(6) {
                0 | 1 if g.members.len() < 8 => {
                    next_id += 1;
                    let topics = subscription(&mut rng);
                    g.members.push(MemberSubscription::new(format!("m{next_id:03}"), topics));
                }
                2 if g.members.len() > 1 => {
                    let i = rng.below(g.members.len());
                    g.members.remove(i);
                }
                3 => {
                    let t = format!("t{}", rng.below(4));
                    let n = g.partitions.get(&t).copied().unwrap_or(0) + rng.range(1, 4) as i32;
                    g.partitions.insert(t, n);
                }
                4 if g.partitions.len() > 1 => {
                    let t = names[rng.below(names.len())].clone();
                    g.partitions.remove(&t);
                }
                _ if !equal && !g.members.is_empty() => {
                    let i = rng.below(g.members.len());
                    g.members[i].topics = subscription(&mut rng);
                }
                _ => {}
            }
            if equal {
                // New topics reach every member, as a pattern subscription would.
                let all: Vec<String> = g.partitions.keys().cloned().collect();
                g.members.iter_mut().for_each(|m| m.topics = all.clone());
            }
            let r = g.rebalance();
            if let Some(fewest) = r.fewest {
                assert_eq!(r.moved, fewest, "step {step}: moved more than needed");
                assert!(r.rounds <= 2, "step {step}");
            }
        }
    }
}

#[test]
fn a_large_group_is_assigned_quickly() {
    let mut rng = Rng::from_env("cooperative_sticky large group", 0x1A_26E);
    for (members, topics, equal) in [(200, 80, false), (500, 100, true)] {
        let partitions = random_partitions(&mut rng, topics, 32);
        let names: Vec<&String> = partitions.keys().collect();
        let mut members: Vec<_> = (0..members)
            .map(|i| {
                let topics = names.iter().copied().filter(|_| equal || rng.percent(70));
                MemberSubscription::new(format!("m{i:03}"), topics)
            })
            .collect();
        random_ownership(&mut rng, &mut members, &partitions);
        let started = std::time::Instant::now();
        let first = CooperativeStickyAssignor.plan(&members, &partitions);
        let took = started.elapsed();
        let total: i32 = partitions.values().sum();
        println!("{total} partitions, {} members, equal {equal}: {took:?}", members.len());
        assert_valid(&members, &partitions, &first.target);
        assert!(is_balanced(&members, &first.target));
    }
}
