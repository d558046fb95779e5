use super::*;

fn t(s: u32, p: i32) -> TaskId {
    TaskId { subtopology: s, partition: p }
}

fn assignor(standbys: usize) -> StreamsAssignor {
    let subtopology_of = HashMap::from([("in".to_string(), 0), ("app-rep".to_string(), 1)]);
    let plan = Arc::new(TopicPlan { subtopology_of, ..TopicPlan::default() });
    StreamsAssignor::new(plan, BTreeSet::from([0, 1]), standbys, SubscriptionInfo::default(), Arc::default())
}

fn member(id: &str, process: &str, host: Option<&str>, owned: &[(&str, i32)], active: &[TaskId]) -> MemberSubscription {
    let info = SubscriptionInfo {
        process_id: process.into(),
        host: host.map(Into::into),
        active: active.iter().copied().collect(),
        ..SubscriptionInfo::default()
    };
    let mut m = MemberSubscription::new(id, ["in", "app-rep"]).with_owned(1, owned.iter().map(|(t, p)| (*t, *p)));
    m.user_data = Some(info.encode());
    m
}

fn counts() -> BTreeMap<String, i32> {
    BTreeMap::from([("in".to_string(), 2), ("app-rep".to_string(), 2)])
}

#[test]
fn a_task_takes_the_partitions_of_its_subtopology() {
    let a = assignor(1);
    let out = a.assign_with_data(
        &[member("m1", "p1", Some("h1:1"), &[], &[]), member("m2", "p2", Some("h2:1"), &[], &[])],
        &counts(),
    );
    let mut all: Vec<(String, i32)> = out.values().flat_map(|x| x.partitions.clone()).collect();
    all.sort();
    assert_eq!(all, [("app-rep".to_string(), 0), ("app-rep".into(), 1), ("in".into(), 0), ("in".into(), 1)]);
    for (m, x) in &out {
        let info = AssignmentInfo::decode(x.user_data.as_deref().unwrap()).unwrap();
        let expect: BTreeSet<TaskId> = info.active.clone();
        let got: BTreeSet<TaskId> =
            x.partitions.iter().map(|(topic, p)| t(if topic == "in" { 0 } else { 1 }, *p)).collect();
        assert_eq!(got, expect, "{m}: partitions are its tasks'");
        assert_eq!(info.hosts.len(), 2);
        assert_eq!(info.standby.len(), 2, "{m}: one standby of each task the other runs");
        assert!(info.standby.is_disjoint(&info.active));
    }
}

#[test]
fn a_task_moving_waits_until_its_old_owner_revoked_it() {
    let a = assignor(0);
    // m1 owned everything; m2 joins.
    let all = [t(0, 0), t(0, 1), t(1, 0), t(1, 1)];
    let owned = [("in", 0), ("in", 1), ("app-rep", 0), ("app-rep", 1)];
    let first =
        a.assign_with_data(&[member("m1", "p1", None, &owned, &all), member("m2", "p2", None, &[], &[])], &counts());
    assert_eq!(first["m1"].partitions.len(), 2, "m1 gives two tasks up");
    assert!(first["m2"].partitions.is_empty(), "m2 waits for m1 to revoke them: {:?}", first["m2"]);
    // Next round: m1 revoked and rejoined with what it kept.
    let kept: Vec<(&str, i32)> = first["m1"].partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let kept_tasks = AssignmentInfo::decode(first["m1"].user_data.as_deref().unwrap()).unwrap().active;
    let kept_tasks: Vec<TaskId> = kept_tasks.into_iter().collect();
    let second = a.assign_with_data(
        &[member("m1", "p1", None, &kept, &kept_tasks), member("m2", "p2", None, &[], &[])],
        &counts(),
    );
    assert_eq!(second["m1"].partitions, first["m1"].partitions, "what m1 kept stays");
    assert_eq!(second["m2"].partitions.len(), 2);
}

#[test]
fn a_member_that_is_not_ours_is_an_instance_of_its_own() {
    let a = assignor(0);
    let mut foreign = MemberSubscription::new("x", ["in", "app-rep"]);
    foreign.user_data = Some(Bytes::from_static(b"\x00\x07junk"));
    let out = a.assign_with_data(&[foreign, member("m1", "p1", None, &[], &[])], &counts());
    assert_eq!(out["x"].partitions.len() + out["m1"].partitions.len(), 4);
}

#[test]
fn on_assignment_publishes_the_hosts() {
    let a = assignor(0);
    let info = AssignmentInfo {
        active: [t(0, 0)].into(),
        hosts: [("h:1".to_string(), HostTasks { active: [t(0, 0)].into(), ..HostTasks::default() })].into(),
        ..AssignmentInfo::default()
    };
    let mut x = Assignment::new(vec![("in".into(), 0)]);
    x.user_data = Some(info.encode());
    a.on_assignment(&x, 7);
    assert_eq!(a.view.read().unwrap().generation, 7);
    assert_eq!(a.view.read().unwrap().hosts["h:1"].active, [t(0, 0)].into());
    assert_eq!(a.received.lock().unwrap().take(), Some(info));
}
