//! Static membership (KIP-345): members with a `group.instance.id`.

use super::*;

/// A stable group of static member "ia" (id ia-1, leader, assigned p0) and dynamic b-2 (p1).
fn static_group(c: &mut GroupCoordinator) -> i64 {
    form_with(c, vec![join("a", "").instance("ia"), join("b", "")]).0
}

fn static_commit(member: &str) -> OffsetCommit {
    OffsetCommit { group_instance_id: Some("ia".into()), ..commit("g", member, 1, &[("t-0", 1)]) }
}

#[test]
fn a_restarted_static_member_keeps_its_assignment_without_rebalance_and_fences_the_old_id() {
    let mut c = coordinator();
    assert_eq!(static_group(&mut c), 6000);
    run(
        &mut c,
        &[
            // The instance restarts and joins without member id: new id, same place, no rebalance.
            // It led the group, but a client that cannot skip assignment is not told so.
            (
                7000,
                req(1, join("a", "").instance("ia").v4()),
                &[
                    "persist g: group gen=1 range leader=ia-3 [b-2=p1,ia-3=p0]",
                    "#1 join gen=1 range leader=ia-1 member=ia-3",
                ],
            ),
            (7100, req(2, sync("ia-3", 1).instance("ia")), &["#2 sync =p0"]),
            (7200, req(3, heartbeat("b-2", 1)), &["#3 heartbeat NONE"]),
            // The old incarnation is fenced everywhere.
            (7300, req(4, heartbeat("ia-1", 1).instance("ia")), &["#4 heartbeat FENCED_INSTANCE_ID"]),
            (7300, req(5, static_commit("ia-1")), &["#5 commit t-0:FENCED_INSTANCE_ID"]),
            (7400, req(6, join("a", "ia-1").instance("ia")), &["#6 join FENCED_INSTANCE_ID member=ia-1"]),
            (7500, req(7, sync("ia-1", 1).instance("ia")), &["#7 sync FENCED_INSTANCE_ID"]),
            (7600, req(8, leave(&["ia-1/ia"])), &["#8 leave NONE ia-1:FENCED_INSTANCE_ID"]),
            (7700, req(9, describe(&["g"])), &["#9 describe g Stable consumer/range [b-2=p1,ia-3=p0]"]),
            (7800, req(10, static_commit("ia-3")), &["persist g: offset t-0=1", "#10 commit t-0:NONE"]),
            // A v9 client is told it leads, with the members, and to skip the assignment (KIP-814).
            (
                8000,
                req(11, join("a", "").instance("ia").skip_capable()),
                &[
                    "persist g: group gen=1 range leader=ia-4 [b-2=p1,ia-4=p0]",
                    "#11 join gen=1 range leader=ia-4 member=ia-4 members=b-2,ia-4 skip",
                ],
            ),
            // An administrator removes the instance by its id alone: the group rebalances.
            (9000, req(12, leave(&["/ia", "/nope"])), &["#12 leave NONE :NONE :UNKNOWN_MEMBER_ID"]),
            (9100, req(13, heartbeat("b-2", 1)), &["#13 heartbeat REBALANCE_IN_PROGRESS"]),
            (9200, req(14, join("b", "b-2")), &["#14 join gen=2 range leader=b-2 member=b-2 members=b-2"]),
        ],
    );
}

#[test]
fn a_static_member_restarting_mid_rebalance_fences_the_old_one_and_restarts_the_rebalance() {
    let mut c = coordinator();
    static_group(&mut c);
    run(
        &mut c,
        &[
            // b changes its protocols: rebalance; ia-1 rejoins; generation 2 awaits assignment.
            (7000, req(1, join("b", "b-2").protocols(&["range", "roundrobin"], &["t"])), &[]),
            (
                7100,
                req(2, join("a", "ia-1").instance("ia")),
                &[
                    "#2 join gen=2 range leader=ia-1 member=ia-1 members=ia-1,b-2",
                    "#1 join gen=2 range leader=ia-1 member=b-2",
                ],
            ),
            (7200, req(3, sync("b-2", 2)), &[]),
            // ia restarts before the leader's assignment: that assignment would name the old id.
            (7300, req(4, join("a", "").instance("ia")), &["#3 sync REBALANCE_IN_PROGRESS"]),
            (
                7400,
                req(5, join("b", "b-2").protocols(&["range", "roundrobin"], &["t"])),
                &[
                    "#5 join gen=3 range leader=ia-3 member=b-2",
                    "#4 join gen=3 range leader=ia-3 member=ia-3 members=b-2,ia-3",
                ],
            ),
            // The old id stays fenced.
            (7500, req(6, heartbeat("ia-1", 3).instance("ia")), &["#6 heartbeat FENCED_INSTANCE_ID"]),
        ],
    );
}

#[test]
fn a_static_member_waiting_to_join_is_fenced_when_its_instance_rejoins() {
    let mut c = coordinator();
    static_group(&mut c);
    run(
        &mut c,
        &[
            (7000, req(1, join("a", "ia-1").instance("ia")), &[]),
            (7100, req(2, join("a", "").instance("ia")), &["#1 join FENCED_INSTANCE_ID member=ia-1"]),
            (
                7200,
                req(3, join("b", "b-2")),
                &[
                    "#3 join gen=2 range leader=ia-3 member=b-2",
                    "#2 join gen=2 range leader=ia-3 member=ia-3 members=b-2,ia-3",
                ],
            ),
        ],
    );
}

#[test]
fn a_static_member_that_does_not_rejoin_keeps_its_place_until_its_session_expires() {
    let mut c = coordinator();
    static_group(&mut c);
    run(
        &mut c,
        &[
            (7000, req(1, join("b", "b-2").protocols(&["range", "roundrobin"], &["t"])), &[]),
            // ia keeps heartbeating but does not rejoin: at the rebalance timeout it stays in the
            // group (its partitions are not moved) and leadership passes to b.
            (14000, req(2, heartbeat("ia-1", 1).instance("ia")), &["#2 heartbeat REBALANCE_IN_PROGRESS"]),
            (22000, req(3, heartbeat("ia-1", 1).instance("ia")), &["#3 heartbeat REBALANCE_IN_PROGRESS"]),
            (27000, tick(), &["#1 join gen=2 range leader=b-2 member=b-2 members=ia-1,b-2"]),
            (
                27050,
                req(4, sync("b-2", 2).assign(&[("b-2", "p1"), ("ia-1", "p0")])),
                &["persist g: group gen=2 range leader=b-2 [ia-1=p0,b-2=p1]", "#4 sync =p1"],
            ),
            (27100, req(5, heartbeat("ia-1", 1).instance("ia")), &["#5 heartbeat ILLEGAL_GENERATION"]),
            // Its session, restarted when the join phase ended, runs out: now it is removed and the
            // group rebalances.
            (36999, tick(), &[]),
            (37000, tick(), &[]),
            (37100, req(6, heartbeat("b-2", 2)), &["#6 heartbeat REBALANCE_IN_PROGRESS"]),
        ],
    );
}
