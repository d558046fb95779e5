//! Joining, syncing, heartbeats, leaving, timeouts and the errors members get.

use super::*;
use crate::group::state::{Group, Member};

#[test]
fn single_member_joins_syncs_heartbeats_and_expires() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, join("a", "").v4()), &["#1 join MEMBER_ID_REQUIRED member=a-1"]),
            (10, req(2, join("a", "a-1").v4()), &[]),
        ],
    );
    // The first rebalance of an empty group waits group.initial.rebalance.delay.ms.
    assert_eq!(c.next_deadline(), Some(3010));
    run(
        &mut c,
        &[
            (3009, tick(), &[]),
            (3010, tick(), &["#2 join gen=1 range leader=a-1 member=a-1 members=a-1"]),
            (3011, req(3, heartbeat("a-1", 1)), &["#3 heartbeat NONE"]),
            (
                3020,
                req(4, sync("a-1", 1).assign(&[("a-1", "t-0")])),
                &["persist g: group gen=1 range leader=a-1 [a-1=t-0]", "#4 sync =t-0"],
            ),
            (3030, req(5, describe(&["g"])), &["#5 describe g Stable consumer/range [a-1=t-0]"]),
            (8000, req(6, heartbeat("a-1", 1)), &["#6 heartbeat NONE"]),
            (9000, req(7, heartbeat("a-1", 0)), &["#7 heartbeat ILLEGAL_GENERATION"]),
            (9000, req(8, heartbeat("x-9", 1)), &["#8 heartbeat UNKNOWN_MEMBER_ID"]),
            // The session runs from the last good heartbeat (8000 + 10 s).
            (17999, tick(), &[]),
            (18000, tick(), &["persist g: group gen=2 - leader=- []"]),
            (18001, req(9, heartbeat("a-1", 1)), &["#9 heartbeat UNKNOWN_MEMBER_ID"]),
            (18002, req(10, describe(&["g"])), &["#10 describe g Empty consumer/ []"]),
        ],
    );
}

#[test]
fn three_members_leader_assigns_followers_receive() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, join("a", "")), &[]),
            (100, req(2, join("b", "")), &[]),
            (200, req(3, join("c", "")), &[]),
            (3000, tick(), &[]),
            (
                6000,
                tick(),
                &[
                    "#1 join gen=1 range leader=a-1 member=a-1 members=a-1,b-2,c-3",
                    "#2 join gen=1 range leader=a-1 member=b-2",
                    "#3 join gen=1 range leader=a-1 member=c-3",
                ],
            ),
            (6010, req(4, heartbeat("c-3", 1)), &["#4 heartbeat NONE"]),
            // A follower syncing before the leader waits for the assignment.
            (6010, req(5, sync("b-2", 1)), &[]),
            (6020, req(6, describe(&["g"])), &["#6 describe g CompletingRebalance consumer/ [a-1=,b-2=,c-3=]"]),
            (
                6030,
                req(7, sync("a-1", 1).assign(&[("a-1", "p0"), ("b-2", "p1"), ("c-3", "p2")])),
                &["persist g: group gen=1 range leader=a-1 [a-1=p0,b-2=p1,c-3=p2]", "#7 sync =p0", "#5 sync =p1"],
            ),
            (6040, req(8, sync("c-3", 1)), &["#8 sync =p2"]),
            (6050, req(9, describe(&["g"])), &["#9 describe g Stable consumer/range [a-1=p0,b-2=p1,c-3=p2]"]),
            // A follower rejoining unchanged gets the current generation back, no rebalance.
            (6060, req(10, join("b", "b-2")), &["#10 join gen=1 range leader=a-1 member=b-2"]),
            (6070, req(11, heartbeat("c-3", 1)), &["#11 heartbeat NONE"]),
        ],
    );
}

#[test]
fn leaving_members_trigger_rebalances_and_the_last_one_empties_the_group() {
    let mut c = coordinator();
    let t = form(&mut c, &["a", "b", "c"]);
    assert_eq!(t, 6000);
    run(
        &mut c,
        &[
            // The leader leaves: the longest-standing member left leads next.
            (7000, req(1, leave(&["a-1"])), &["#1 leave NONE a-1:NONE"]),
            (7100, req(2, heartbeat("b-2", 1)), &["#2 heartbeat REBALANCE_IN_PROGRESS"]),
            (7200, req(3, join("c", "c-3")), &[]),
            (
                7300,
                req(4, join("b", "b-2")),
                &[
                    "#4 join gen=2 range leader=b-2 member=b-2 members=b-2,c-3",
                    "#3 join gen=2 range leader=b-2 member=c-3",
                ],
            ),
            (7400, req(5, leave(&["c-3", "a-1"])), &["#5 leave NONE c-3:NONE a-1:UNKNOWN_MEMBER_ID"]),
            // c left during CompletingRebalance: b rejoins alone.
            (7500, req(6, sync("b-2", 2)), &["#6 sync REBALANCE_IN_PROGRESS"]),
            (7600, req(7, join("b", "b-2")), &["#7 join gen=3 range leader=b-2 member=b-2 members=b-2"]),
            (
                7700,
                req(8, sync("b-2", 3).assign(&[("b-2", "p0,p1,p2")])),
                &["persist g: group gen=3 range leader=b-2 [b-2=p0,p1,p2]", "#8 sync =p0,p1,p2"],
            ),
            (7800, req(9, leave(&["b-2"])), &["persist g: group gen=4 - leader=- []", "#9 leave NONE b-2:NONE"]),
            (7900, req(10, leave(&["b-2"])), &["#10 leave NONE b-2:UNKNOWN_MEMBER_ID"]),
            (7900, req(11, leave(&["x-1"]).group("nope")), &["#11 leave NONE x-1:UNKNOWN_MEMBER_ID"]),
            (7900, req(12, leave(&["x-1"]).group("")), &["#12 leave INVALID_GROUP_ID"]),
        ],
    );
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (14000, req(1, heartbeat("a-1", 1)), &["#1 heartbeat NONE"]),
            // b's session runs out 10 s after its SyncGroup at 6000.
            (15999, tick(), &[]),
            (16000, tick(), &[]),
            (16100, req(2, heartbeat("a-1", 1)), &["#2 heartbeat REBALANCE_IN_PROGRESS"]),
            (16200, req(3, join("a", "a-1")), &["#3 join gen=2 range leader=a-1 member=a-1 members=a-1"]),
            (16300, req(4, heartbeat("b-2", 1)), &["#4 heartbeat UNKNOWN_MEMBER_ID"]),
        ],
    );
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            // The leader rejoins (e.g. the topics changed): rebalance, 20 s rebalance timeout.
            (7000, req(1, join("a", "a-1")), &[]),
            // b keeps heartbeating but never rejoins.
            (15000, req(2, heartbeat("b-2", 1)), &["#2 heartbeat REBALANCE_IN_PROGRESS"]),
            (24000, req(3, heartbeat("b-2", 1)), &["#3 heartbeat REBALANCE_IN_PROGRESS"]),
            (26999, tick(), &[]),
            (27000, tick(), &["#1 join gen=2 range leader=a-1 member=a-1 members=a-1"]),
            (27100, req(4, heartbeat("b-2", 1)), &["#4 heartbeat UNKNOWN_MEMBER_ID"]),
        ],
    );
}

#[test]
fn members_that_do_not_sync_within_the_rebalance_timeout_are_dropped() {
    let mut c = coordinator_with(GroupConfig { initial_rebalance_delay_ms: 0, ..config() });
    run(
        &mut c,
        &[
            // Without an initial delay a lone member completes the rebalance at once.
            (0, req(1, join("a", "")), &["#1 join gen=1 range leader=a-1 member=a-1 members=a-1"]),
            (
                10,
                req(2, sync("a-1", 1).assign(&[("a-1", "p0")])),
                &["persist g: group gen=1 range leader=a-1 [a-1=p0]", "#2 sync =p0"],
            ),
            (20, req(3, join("b", "")), &[]),
            (30, req(4, heartbeat("a-1", 1)), &["#4 heartbeat REBALANCE_IN_PROGRESS"]),
            (
                40,
                req(5, join("a", "a-1")),
                &[
                    "#5 join gen=2 range leader=a-1 member=a-1 members=a-1,b-2",
                    "#3 join gen=2 range leader=a-1 member=b-2",
                ],
            ),
            (
                50,
                req(6, sync("a-1", 2).assign(&[("a-1", "p0"), ("b-2", "p1")])),
                &["persist g: group gen=2 range leader=a-1 [a-1=p0,b-2=p1]", "#6 sync =p0"],
            ),
            // b heartbeats but never syncs; the deadline is 40 + 20 s.
            (9000, req(7, heartbeat("a-1", 2)), &["#7 heartbeat NONE"]),
            (10000, req(8, heartbeat("b-2", 2)), &["#8 heartbeat NONE"]),
            (18000, req(9, heartbeat("a-1", 2)), &["#9 heartbeat NONE"]),
            (19000, req(10, heartbeat("b-2", 2)), &["#10 heartbeat NONE"]),
            (20039, tick(), &[]),
            (20040, tick(), &[]),
            (20050, req(11, heartbeat("b-2", 2)), &["#11 heartbeat UNKNOWN_MEMBER_ID"]),
            (20060, req(12, heartbeat("a-1", 2)), &["#12 heartbeat REBALANCE_IN_PROGRESS"]),
            (20070, req(13, join("a", "a-1")), &["#13 join gen=3 range leader=a-1 member=a-1 members=a-1"]),
        ],
    );
}

#[test]
fn a_new_member_whose_join_never_completes_is_dropped_after_five_minutes() {
    let mut c = coordinator();
    let t = form_with(&mut c, vec![join("a", "").session(1_800_000).rebalance(600_000)]).0;
    assert_eq!(t, 3000);
    run(
        &mut c,
        &[
            // c joins; the group waits up to a's 10 min rebalance timeout for a to rejoin, but
            // gives c's JoinGroup only 5 min.
            (4000, req(1, join("c", "").rebalance(600_000)), &[]),
            (303_999, tick(), &[]),
            (304_000, tick(), &["#1 join UNKNOWN_MEMBER_ID"]),
            (304_100, req(2, heartbeat("a-1", 1)), &["#2 heartbeat REBALANCE_IN_PROGRESS"]),
            (304_200, req(3, join("a", "a-1")), &["#3 join gen=2 range leader=a-1 member=a-1 members=a-1"]),
        ],
    );
}

#[test]
fn initial_rebalance_delay_extends_while_members_arrive_up_to_the_rebalance_timeout() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, join("a", "")), &[]),
            (2000, req(2, join("b", "")), &[]),
            (2999, tick(), &[]),
            (3000, tick(), &[]),
            (5000, req(3, join("c", "")), &[]),
            (6000, tick(), &[]),
            (8999, tick(), &[]),
            (
                9000,
                tick(),
                &[
                    "#1 join gen=1 range leader=a-1 member=a-1 members=a-1,b-2,c-3",
                    "#2 join gen=1 range leader=a-1 member=b-2",
                    "#3 join gen=1 range leader=a-1 member=c-3",
                ],
            ),
        ],
    );
    // With a 5 s rebalance timeout the delay never runs past 5 s.
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, join("a", "").rebalance(5000)), &[]),
            (1000, req(2, join("b", "").rebalance(5000)), &[]),
            (3000, tick(), &[]),
            (4000, req(3, join("c", "").rebalance(5000)), &[]),
            (4999, tick(), &[]),
            (
                5000,
                tick(),
                &[
                    "#1 join gen=1 range leader=a-1 member=a-1 members=a-1,b-2,c-3",
                    "#2 join gen=1 range leader=a-1 member=b-2",
                    "#3 join gen=1 range leader=a-1 member=c-3",
                ],
            ),
        ],
    );
}

#[test]
fn member_id_required_hands_out_ids_that_expire_unused() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, join("a", "").v4()), &["#1 join MEMBER_ID_REQUIRED member=a-1"]),
            (0, req(2, join("b", "").v4()), &["#2 join MEMBER_ID_REQUIRED member=b-2"]),
            (100, req(3, join("a", "a-1").v4()), &[]),
            // The initial delay does not wait for b's pending id.
            (3100, tick(), &["#3 join gen=1 range leader=a-1 member=a-1 members=a-1"]),
            (
                3200,
                req(4, sync("a-1", 1).assign(&[("a-1", "p0")])),
                &["persist g: group gen=1 range leader=a-1 [a-1=p0]", "#4 sync =p0"],
            ),
            (9999, tick(), &[]),
            // b's id was good for its session timeout.
            (10000, tick(), &[]),
            (10100, req(5, join("b", "b-2").v4()), &["#5 join UNKNOWN_MEMBER_ID member=b-2"]),
            (10200, req(6, join("c", "").v4()), &["#6 join MEMBER_ID_REQUIRED member=c-3"]),
            // A rebalance waits for members holding a pending id.
            (10300, req(7, join("a", "a-1").v4()), &[]),
            (
                10400,
                req(8, join("c", "c-3").v4()),
                &[
                    "#7 join gen=2 range leader=a-1 member=a-1 members=a-1,c-3",
                    "#8 join gen=2 range leader=a-1 member=c-3",
                ],
            ),
        ],
    );
}

#[test]
fn stale_generations_unknown_members_and_bad_joins_get_kafkas_errors() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (6100, req(1, commit("g", "a-1", 0, &[("t-0", 5)])), &["#1 commit t-0:ILLEGAL_GENERATION"]),
            (6100, req(2, commit("g", "x-9", 1, &[("t-0", 5)])), &["#2 commit t-0:UNKNOWN_MEMBER_ID"]),
            // A simple (group-less) commit to a group with members.
            (6100, req(3, commit("g", "", -1, &[("t-0", 5)])), &["#3 commit t-0:UNKNOWN_MEMBER_ID"]),
            (6100, req(4, commit("h", "a-1", 1, &[("t-0", 5)])), &["#4 commit t-0:ILLEGAL_GENERATION"]),
            (6100, req(5, sync("a-1", 2)), &["#5 sync ILLEGAL_GENERATION"]),
            (6100, req(6, sync("x-9", 1)), &["#6 sync UNKNOWN_MEMBER_ID"]),
            (6100, req(7, heartbeat("b-2", 2)), &["#7 heartbeat ILLEGAL_GENERATION"]),
            (6100, req(8, join("x", "x-9")), &["#8 join UNKNOWN_MEMBER_ID member=x-9"]),
            (6100, req(9, join("x", "x-9").group("h")), &["#9 join UNKNOWN_MEMBER_ID member=x-9"]),
            (6100, req(10, join("x", "").session(5999)), &["#10 join INVALID_SESSION_TIMEOUT"]),
            (6100, req(11, join("x", "").session(1_800_001)), &["#11 join INVALID_SESSION_TIMEOUT"]),
            (6100, req(12, join("x", "").group("")), &["#12 join INVALID_GROUP_ID"]),
            (6100, req(13, join("x", "").protocol_type("connect")), &["#13 join INCONSISTENT_GROUP_PROTOCOL"]),
            (
                6100,
                req(14, join("x", "").protocols(&["roundrobin"], &["t"])),
                &["#14 join INCONSISTENT_GROUP_PROTOCOL"],
            ),
            (6100, req(15, join("x", "").protocol_type("").group("h")), &["#15 join INCONSISTENT_GROUP_PROTOCOL"]),
            (6100, req(16, ListGroups::default()), &["#16 list g:consumer:Stable"]),
            (6100, req(17, sync("a-1", 1).protocol("roundrobin")), &["#17 sync INCONSISTENT_GROUP_PROTOCOL"]),
            // Kafka's classic coordinator does not check that a member owns what it commits.
            (
                6200,
                req(18, commit("g", "a-1", 1, &[("t-0", 5), ("u-3", 7)])),
                &["persist g: offset t-0=5; offset u-3=7", "#18 commit t-0:NONE u-3:NONE"],
            ),
            (6300, req(19, join("a", "a-1")), &[]),
            // Commits are still taken while the group prepares a rebalance...
            (6400, req(20, commit("g", "b-2", 1, &[("t-1", 3)])), &["persist g: offset t-1=3", "#20 commit t-1:NONE"]),
            (6500, req(21, sync("b-2", 1)), &["#21 sync REBALANCE_IN_PROGRESS"]),
            (
                6600,
                req(22, join("b", "b-2")),
                &[
                    "#19 join gen=2 range leader=a-1 member=a-1 members=a-1,b-2",
                    "#22 join gen=2 range leader=a-1 member=b-2",
                ],
            ),
            // ...but not between the JoinGroup and SyncGroup answers.
            (6700, req(23, commit("g", "b-2", 2, &[("t-1", 4)])), &["#23 commit t-1:REBALANCE_IN_PROGRESS"]),
            (6800, req(24, commit("g", "b-2", 1, &[("t-1", 4)])), &["#24 commit t-1:ILLEGAL_GENERATION"]),
        ],
    );
}

#[test]
fn group_max_size_turns_away_new_members() {
    let mut c = coordinator_with(GroupConfig { max_size: 2, ..config() });
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (6100, req(1, join("c", "")), &["#1 join GROUP_MAX_SIZE_REACHED"]),
            (6200, req(2, join("b", "b-2")), &["#2 join gen=1 range leader=a-1 member=b-2"]),
        ],
    );
}

#[test]
fn a_second_join_while_one_waits_replaces_it() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (7000, req(1, join("a", "a-1")), &[]),
            (7100, req(2, join("a", "a-1")), &["#1 join REBALANCE_IN_PROGRESS member=a-1"]),
            (
                7200,
                req(3, join("b", "b-2")),
                &[
                    "#2 join gen=2 range leader=a-1 member=a-1 members=a-1,b-2",
                    "#3 join gen=2 range leader=a-1 member=b-2",
                ],
            ),
            // A member that missed its answer and rejoins unchanged gets it again.
            (7300, req(4, join("b", "b-2")), &["#4 join gen=2 range leader=a-1 member=b-2"]),
        ],
    );
}

fn member(id: &str, protocols: &[&str]) -> Member {
    Member {
        id: id.into(),
        instance_id: None,
        client_id: id.into(),
        client_host: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
        protocols: protocols.iter().map(|p| Protocol { name: (*p).into(), metadata: Bytes::new() }).collect(),
        assignment: Bytes::new(),
        awaiting_join: None,
        awaiting_sync: None,
        is_new: false,
        heartbeat_deadline: 0,
    }
}

#[test]
fn the_protocol_is_the_most_preferred_among_those_all_members_support() {
    let cases: &[(&[&[&str]], &str)] = &[
        (&[&["range"]], "range"),
        (&[&["range", "roundrobin"], &["roundrobin", "range"], &["roundrobin"]], "roundrobin"),
        (&[&["range", "roundrobin"], &["roundrobin", "range"], &["range", "roundrobin"]], "range"),
        (&[&["roundrobin", "range"], &["roundrobin", "sticky"], &["sticky", "range", "roundrobin"]], "roundrobin"),
        // A tie goes to the first member's earlier choice.
        (&[&["range", "roundrobin"], &["roundrobin", "range"]], "range"),
        (&[&["sticky", "range", "roundrobin"], &["roundrobin", "range"]], "range"),
    ];
    for (members, want) in cases {
        let mut g = Group::new("g");
        for (i, ps) in members.iter().enumerate() {
            g.add_member(member(&format!("m{i}"), ps));
        }
        assert_eq!(g.select_protocol().as_deref(), Some(*want), "{members:?}");
    }
}
