//! ListGroups, DescribeGroups and DeleteGroups.

use super::*;

fn delete(groups: &[&str]) -> DeleteGroups {
    DeleteGroups { group_ids: groups.iter().map(|g| (*g).into()).collect() }
}

fn list(states: &[GroupState]) -> ListGroups {
    ListGroups { states: states.to_vec() }
}

#[test]
fn groups_are_listed_and_described_by_state() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (6100, req(1, commit("s", "", -1, &[("t-0", 1)])), &["persist s: offset t-0=1", "#1 commit t-0:NONE"]),
            (6200, req(2, join("c", "").group("p")), &[]),
            (6300, req(3, list(&[])), &["#3 list g:consumer:Stable p:consumer:PreparingRebalance s::Empty"]),
            (6300, req(4, list(&[GroupState::Stable, GroupState::Empty])), &["#4 list g:consumer:Stable s::Empty"]),
            (6300, req(5, list(&[GroupState::Dead])), &["#5 list"]),
            (
                6400,
                req(6, describe(&["g", "p"])),
                &["#6 describe g Stable consumer/range [a-1=p0,b-2=p1] p PreparingRebalance consumer/ [c-3=]"],
            ),
            (6400, req(7, describe(&["s", "nope"])), &["#7 describe s Empty / [] nope Dead / []"]),
        ],
    );
    let Effect::Respond { response: Response::DescribeGroups(gs), .. } =
        &c.step(6500, RequestId(8), describe(&["g"]).into())[0]
    else {
        panic!()
    };
    let a = &gs[0].members[0];
    assert_eq!((a.client_id.as_str(), a.client_host.as_str()), ("a", "/10.0.0.1"));
    assert_eq!(super::subscription::subscribed_topics(&a.metadata), Some(["t".to_string()].into()));
    assert_eq!(GroupState::from_name("completingrebalance"), Some(GroupState::CompletingRebalance));
    assert_eq!(GroupState::from_name("Asleep"), None);
}

#[test]
fn only_empty_groups_can_be_deleted_and_take_their_offsets_along() {
    let mut c = coordinator();
    form(&mut c, &["a", "b"]);
    run(
        &mut c,
        &[
            (6100, req(1, commit("g", "a-1", 1, &[("t-0", 1)])), &["persist g: offset t-0=1", "#1 commit t-0:NONE"]),
            (6100, req(2, commit("s", "", -1, &[("t-0", 2)])), &["persist s: offset t-0=2", "#2 commit t-0:NONE"]),
            // s never had a generation, so it has no metadata record to delete.
            (
                6200,
                req(3, delete(&["g", "s", "nope", ""])),
                &[
                    "persist s: offset t-0=tombstone",
                    "#3 delete g:NON_EMPTY_GROUP s:NONE nope:GROUP_ID_NOT_FOUND :GROUP_ID_NOT_FOUND",
                ],
            ),
            (
                6300,
                req(4, leave(&["a-1", "b-2"])),
                &["persist g: group gen=2 - leader=- []", "#4 leave NONE a-1:NONE b-2:NONE"],
            ),
            (6400, req(5, delete(&["g"])), &["persist g: offset t-0=tombstone; group tombstone", "#5 delete g:NONE"]),
            (6500, req(6, list(&[])), &["#6 list"]),
            (6600, req(7, fetch("g", None)), &["#7 fetch g[]"]),
            (6700, req(8, heartbeat("a-1", 1)), &["#8 heartbeat UNKNOWN_MEMBER_ID"]),
        ],
    );
}
