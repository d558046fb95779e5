use super::*;

fn t(s: u32, p: i32) -> TaskId {
    TaskId { subtopology: s, partition: p }
}

fn tasks(subs: u32, parts: i32) -> BTreeSet<TaskId> {
    (0..subs).flat_map(|s| (0..parts).map(move |p| t(s, p))).collect()
}

fn member(id: &str) -> Member {
    Member { id: id.into(), ..Member::default() }
}

/// Instances named by process id, each with the given member ids.
fn group(spec: &[(&str, &[&str])]) -> BTreeMap<String, Client> {
    spec.iter()
        .map(|(p, ms)| (p.to_string(), Client { members: ms.iter().map(|m| member(m)).collect(), ..Client::default() }))
        .collect()
}

/// The group after every member took up what `out` gave it.
fn after(mut clients: BTreeMap<String, Client>, out: &BTreeMap<String, Assigned>) -> BTreeMap<String, Client> {
    for c in clients.values_mut() {
        for m in &mut c.members {
            let a = out.get(&m.id).cloned().unwrap_or_default();
            m.prev_active = a.active;
            m.prev_standby = a.standby;
        }
    }
    clients
}

fn owner(clients: &BTreeMap<String, Client>, out: &BTreeMap<String, Assigned>, task: TaskId) -> String {
    let m = out.iter().find(|(_, a)| a.active.contains(&task)).map(|(m, _)| m.clone()).expect("assigned");
    clients.iter().find(|(_, c)| c.members.iter().any(|x| x.id == m)).map(|(p, _)| p.clone()).expect("member")
}

fn moved(before: &BTreeMap<String, Assigned>, now: &BTreeMap<String, Assigned>) -> usize {
    now.iter()
        .map(|(m, a)| a.active.difference(&before.get(m).map(|b| b.active.clone()).unwrap_or_default()).count())
        .sum()
}

/// Every task runs exactly once; standbys are on other instances than the active and at most one
/// per instance; instances are within one task of their exact share.
fn check(
    clients: &BTreeMap<String, Client>,
    all: &BTreeSet<TaskId>,
    standbys: usize,
    out: &BTreeMap<String, Assigned>,
) {
    let mut seen = BTreeSet::new();
    for a in out.values() {
        for t in &a.active {
            assert!(seen.insert(*t), "{t} runs twice: {out:?}");
        }
    }
    assert_eq!(&seen, all, "every task runs");
    let threads: usize = clients.values().map(|c| c.members.len()).sum();
    for (p, c) in clients {
        let ids: BTreeSet<&str> = c.members.iter().map(|m| m.id.as_str()).collect();
        let mine: Vec<&Assigned> = out.iter().filter(|(m, _)| ids.contains(m.as_str())).map(|(_, a)| a).collect();
        let active: BTreeSet<TaskId> = mine.iter().flat_map(|a| a.active.iter().copied()).collect();
        let mut standby = BTreeSet::new();
        for a in &mine {
            for t in &a.standby {
                assert!(standby.insert(*t), "{p} keeps two standbys of {t}");
                assert!(!active.contains(t), "{p} keeps a standby of its own active {t}");
            }
        }
        let exact = all.len() as f64 * c.members.len() as f64 / threads as f64;
        let n = active.len() as f64;
        assert!(n >= exact.floor() && n <= exact.ceil(), "{p} runs {n} tasks; its share is {exact}");
    }
    let instances = clients.len();
    for task in all {
        let replicas = out.values().filter(|a| a.standby.contains(task)).count();
        assert_eq!(replicas, standbys.min(instances - 1), "standbys of {task}");
    }
}

#[test]
fn spreads_evenly_over_instances_and_threads() {
    let clients = group(&[("a", &["a1", "a2"]), ("b", &["b1", "b2"])]);
    let all = tasks(2, 4);
    let out = assign(&clients, &all, &all, 0);
    check(&clients, &all, 0, &out);
    for a in out.values() {
        assert_eq!(a.active.len(), 2, "{out:?}");
    }
}

#[test]
fn shares_follow_thread_counts() {
    let clients = group(&[("a", &["a1", "a2", "a3"]), ("b", &["b1"])]);
    let all = tasks(1, 8);
    let out = assign(&clients, &all, &all, 0);
    check(&clients, &all, 0, &out);
    assert_eq!(out.values().map(|a| a.active.len()).collect::<Vec<_>>(), [2, 2, 2, 2]);
}

#[test]
fn the_same_group_keeps_every_task_where_it_is() {
    let clients = group(&[("a", &["a1", "a2"]), ("b", &["b1"]), ("c", &["c1"])]);
    let all = tasks(3, 5);
    let first = assign(&clients, &all, &all, 1);
    let second = assign(&after(clients.clone(), &first), &all, &all, 1);
    assert_eq!(first, second);
}

#[test]
fn a_new_instance_takes_only_what_balance_needs() {
    let two = group(&[("a", &["a1"]), ("b", &["b1"])]);
    let all = tasks(1, 8);
    let first = assign(&two, &all, &all, 0);
    let mut three = after(two, &first);
    three.insert("c".into(), Client { members: vec![member("c1")], ..Client::default() });
    let second = assign(&three, &all, &all, 0);
    check(&three, &all, 0, &second);
    // 8 tasks over 3: shares 3, 3, 2; the newcomer's 2 are the only moves.
    assert_eq!(moved(&first, &second), 2, "{first:?} -> {second:?}");
    assert_eq!(second["c1"].active.len(), 2);
}

#[test]
fn a_departed_instances_tasks_go_to_their_standbys() {
    let clients = group(&[("a", &["a1"]), ("b", &["b1"]), ("c", &["c1"])]);
    let all = tasks(1, 6);
    let first = assign(&clients, &all, &all, 1);
    check(&clients, &all, 1, &first);
    let mut left = after(clients.clone(), &first);
    left.remove("c");
    let second = assign(&left, &all, &all, 1);
    check(&left, &all, 1, &second);
    for task in &first["c1"].active {
        let had_standby =
            left.iter().find(|(_, c)| c.members.iter().any(|m| m.prev_standby.contains(task))).map(|(p, _)| p.clone());
        assert_eq!(Some(owner(&left, &second, *task)), had_standby, "{task} goes to its standby");
    }
}

#[test]
fn a_restarted_instance_is_preferred_for_tasks_it_has_on_disk() {
    let mut clients = group(&[("a", &["a1"]), ("new", &["n1"])]);
    clients.get_mut("new").unwrap().on_disk = [(t(0, 2), 10), (t(0, 3), 10)].into();
    let all = tasks(1, 4);
    let out = assign(&clients, &all, &all, 0);
    check(&clients, &all, 0, &out);
    assert_eq!(out["n1"].active, [t(0, 2), t(0, 3)].into());
}

#[test]
fn more_standbys_than_other_instances_are_skipped() {
    let clients = group(&[("a", &["a1", "a2"])]);
    let all = tasks(1, 4);
    let out = assign(&clients, &all, &all, 2);
    check(&clients, &all, 2, &out);
    assert!(out.values().all(|a| a.standby.is_empty()));
    let two = group(&[("a", &["a1"]), ("b", &["b1"])]);
    let out = assign(&two, &all, &all, 2);
    check(&two, &all, 2, &out);
}

#[test]
fn random_groups_keep_the_invariants_and_move_little() {
    let seed = std::env::var("RILL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    println!("seed {seed} (RILL_TEST_SEED replays it)");
    let mut x = seed;
    let mut next = move |n: u64| {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    };
    for round in 0..200 {
        let all = tasks(1 + next(3) as u32, 1 + next(12) as i32);
        let standbys = next(3) as usize;
        let mut clients = BTreeMap::new();
        for c in 0..1 + next(4) {
            let members = (0..1 + next(3)).map(|m| member(&format!("m{c}-{m}"))).collect();
            clients.insert(format!("p{c}"), Client { members, ..Client::default() });
        }
        let first = assign(&clients, &all, &all, standbys);
        check(&clients, &all, standbys, &first);
        let again = after(clients.clone(), &first);
        assert_eq!(assign(&again, &all, &all, standbys), first, "round {round}: stable");
        // One instance leaves: only its tasks and what balance needs move.
        if clients.len() > 1 {
            let mut fewer = again.clone();
            let gone = fewer.keys().nth(next(clients.len() as u64) as usize).cloned().unwrap();
            let gone_ids: BTreeSet<String> = fewer[&gone].members.iter().map(|m| m.id.clone()).collect();
            fewer.remove(&gone);
            let second = assign(&fewer, &all, &all, standbys);
            check(&fewer, &all, standbys, &second);
            let lost: usize = first.iter().filter(|(m, _)| gone_ids.contains(*m)).map(|(_, a)| a.active.len()).sum();
            let stayed: BTreeMap<String, Assigned> = first.into_iter().filter(|(m, _)| !gone_ids.contains(m)).collect();
            let threads: usize = fewer.values().map(|c| c.members.len()).sum();
            assert!(moved(&stayed, &second) <= lost + threads, "round {round}: moved too much");
        }
    }
}

#[test]
fn only_stateful_tasks_get_standbys() {
    let clients = group(&[("a", &["a1"]), ("b", &["b1"])]);
    let all = tasks(2, 2);
    let stateful: BTreeSet<TaskId> = all.iter().filter(|t| t.subtopology == 1).copied().collect();
    let out = assign(&clients, &all, &stateful, 1);
    let standbys: BTreeSet<TaskId> = out.values().flat_map(|a| a.standby.iter().copied()).collect();
    assert_eq!(standbys, stateful);
}

#[test]
fn each_subtopology_is_spread_too() {
    // One instance ran everything; a second joins and must get stateful work, not only the
    // first sub-topology's tasks.
    let mut clients = group(&[("a", &["a1"]), ("b", &["b1"])]);
    let all = tasks(2, 4);
    clients.get_mut("a").unwrap().members[0].prev_active = all.clone();
    let out = assign(&clients, &all, &all, 0);
    check(&clients, &all, 0, &out);
    for a in out.values() {
        assert_eq!(a.active.iter().filter(|t| t.subtopology == 1).count(), 2, "{out:?}");
    }
}
