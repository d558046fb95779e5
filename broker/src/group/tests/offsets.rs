//! OffsetCommit, OffsetFetch, OffsetDelete and offset retention.

use super::*;

fn offset_delete(group: &str, partitions: &[&str]) -> OffsetDelete {
    OffsetDelete { group_id: group.into(), partitions: partitions.iter().map(|p| part(p)).collect() }
}

#[test]
fn members_commit_and_fetch_offsets() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    let long = OffsetCommit {
        offsets: vec![
            CommitOffset { partition: part("t-0"), offset: 11, leader_epoch: 3, metadata: Some("x".repeat(4096)) },
            CommitOffset { partition: part("t-1"), offset: 21, leader_epoch: 3, metadata: Some("x".repeat(4097)) },
        ],
        ..commit("g", "b-2", 1, &[])
    };
    run(
        &mut c,
        &[
            (
                6100,
                req(1, commit("g", "a-1", 1, &[("t-0", 10), ("t-1", 20)])),
                &["persist g: offset t-0=10; offset t-1=20", "#1 commit t-0:NONE t-1:NONE"],
            ),
            (6200, req(2, fetch("g", Some(&["t-0", "t-1", "t-2"]))), &["#2 fetch g[t-0=10 t-1=20 t-2=-1]"]),
            (6300, req(3, fetch("g", None)), &["#3 fetch g[t-0=10 t-1=20]"]),
            (6400, req(4, fetch("nope", Some(&["t-0"]))), &["#4 fetch nope[t-0=-1]"]),
            (6400, req(5, fetch("nope", None)), &["#5 fetch nope[]"]),
            // offset.metadata.max.bytes is 4096.
            (6500, req(6, long), &["persist g: offset t-0=11", "#6 commit t-0:NONE t-1:OFFSET_METADATA_TOO_LARGE"]),
            (6600, req(7, fetch("g", None)), &["#7 fetch g[t-0=11 t-1=20]"]),
        ],
    );
    // Several groups in one OffsetFetch (v8+), with leader epoch and metadata.
    let effects = c.step(
        6700,
        RequestId(8),
        OffsetFetch {
            groups: vec![
                OffsetFetchGroup { group_id: "g".into(), partitions: Some(vec![part("t-0")]) },
                OffsetFetchGroup { group_id: "h".into(), partitions: None },
            ],
            require_stable: false,
        }
        .into(),
    );
    let Effect::Respond { response: Response::OffsetFetch(groups), .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(groups.len(), 2);
    let t0 = &groups[0].partitions[0];
    assert_eq!((t0.offset, t0.leader_epoch, t0.metadata.len(), t0.error), (11, 3, 4096, ErrorCode::None));
    assert_eq!((groups[1].group_id.as_str(), groups[1].partitions.len()), ("h", 0));
}

#[test]
fn simple_consumers_commit_without_a_generation() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, req(1, commit("s", "", -1, &[("t-0", 5)])), &["persist s: offset t-0=5", "#1 commit t-0:NONE"]),
            (10, req(2, commit("s2", "", 0, &[("t-0", 5)])), &["#2 commit t-0:ILLEGAL_GENERATION"]),
            (20, req(3, fetch("s", None)), &["#3 fetch s[t-0=5]"]),
            (30, req(4, ListGroups::default()), &["#4 list s::Empty"]),
            (40, req(5, describe(&["s"])), &["#5 describe s Empty / []"]),
            // Any member id goes with generation -1 while the group has no members.
            (50, req(6, commit("s", "x-1", -1, &[("t-0", 6)])), &["persist s: offset t-0=6", "#6 commit t-0:NONE"]),
            // The group can later be used with group management.
            (60, req(7, join("a", "").group("s")), &[]),
            (3060, tick(), &["#7 join gen=1 range leader=a-1 member=a-1 members=a-1"]),
            (3070, req(8, commit("s", "", -1, &[("t-0", 7)])), &["#8 commit t-0:UNKNOWN_MEMBER_ID"]),
            (3080, req(9, fetch("s", None)), &["#9 fetch s[t-0=6]"]),
        ],
    );
}

#[test]
fn offset_delete_keeps_the_offsets_of_subscribed_topics() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (
                6100,
                req(1, commit("g", "a-1", 1, &[("t-0", 1), ("u-0", 2)])),
                &["persist g: offset t-0=1; offset u-0=2", "#1 commit t-0:NONE u-0:NONE"],
            ),
            // The members subscribe to t; u and v can go (v had no offset).
            (
                6200,
                req(2, offset_delete("g", &["t-0", "u-0", "v-0"])),
                &[
                    "persist g: offset u-0=tombstone",
                    "#2 offset-delete NONE t-0:GROUP_SUBSCRIBED_TO_TOPIC u-0:NONE v-0:NONE",
                ],
            ),
            (6300, req(3, offset_delete("nope", &["t-0"])), &["#3 offset-delete GROUP_ID_NOT_FOUND"]),
            (6300, req(4, offset_delete("", &["t-0"])), &["#4 offset-delete INVALID_GROUP_ID"]),
            (
                6400,
                req(5, leave(&["a-1", "b-2"])),
                &["persist g: group gen=2 - leader=- []", "#5 leave NONE a-1:NONE b-2:NONE"],
            ),
            // Once empty, everything can go; with its last offset the group is gone.
            (
                6500,
                req(6, offset_delete("g", &["t-0"])),
                &["persist g: offset t-0=tombstone; group tombstone", "#6 offset-delete NONE t-0:NONE"],
            ),
            (6600, req(7, ListGroups::default()), &["#7 list"]),
            // A group with members whose protocol is not `consumer` cannot tell what it uses.
            (6700, req(8, join("w", "").group("c").protocol_type("connect")), &[]),
            (6800, req(9, offset_delete("c", &["t-0"])), &["#9 offset-delete NON_EMPTY_GROUP"]),
        ],
    );
}

#[test]
fn offsets_of_groups_empty_longer_than_the_retention_expire() {
    // offsets.retention at 1,000 s, checked every 10 s from the first tick.
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, tick(), &[]),
            (0, req(1, commit("s", "", -1, &[("t-0", 1)])), &["persist s: offset t-0=1", "#1 commit t-0:NONE"]),
            (500_000, req(2, commit("s", "", -1, &[("t-1", 2)])), &["persist s: offset t-1=2", "#2 commit t-1:NONE"]),
            (999_999, tick(), &[]),
            // Not yet due for a check.
            (1_000_000, tick(), &[]),
            // Group-less offsets expire one by one, by commit time; no group record to delete.
            (1_009_999, tick(), &["persist s: offset t-0=tombstone"]),
            (1_500_000, tick(), &["persist s: offset t-1=tombstone"]),
            (1_500_001, req(3, ListGroups::default()), &["#3 list"]),
        ],
    );

    // A consumer group's offsets expire together, counted from when the group became empty.
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (6100, req(1, commit("g", "a-1", 1, &[("t-0", 1)])), &["persist g: offset t-0=1", "#1 commit t-0:NONE"]),
            (
                7000,
                req(2, leave(&["a-1", "b-2"])),
                &["persist g: group gen=2 - leader=- []", "#2 leave NONE a-1:NONE b-2:NONE"],
            ),
            (1_006_999, tick(), &[]),
            (1_016_999, tick(), &["persist g: offset t-0=tombstone; group tombstone"]),
            (1_017_000, req(3, describe(&["g"])), &["#3 describe g Dead / []"]),
        ],
    );

    // A stable consumer group loses the offsets of topics it no longer subscribes to.
    let mut c = coordinator();
    form_with(&mut c, vec![join("a", "").session(1_800_000), join("b", "").session(1_800_000)]);
    run(
        &mut c,
        &[
            (
                6100,
                req(1, commit("g", "a-1", 1, &[("t-0", 1), ("old-0", 2)])),
                &["persist g: offset t-0=1; offset old-0=2", "#1 commit t-0:NONE old-0:NONE"],
            ),
            (1_006_099, tick(), &[]),
            (1_016_099, tick(), &["persist g: offset old-0=tombstone"]),
            (1_016_100, req(2, fetch("g", None)), &["#2 fetch g[t-0=1]"]),
        ],
    );
}
