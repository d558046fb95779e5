use super::*;

/// An image with brokers `ids` registered (epochs 1..) and topic "t" with the given replicas.
fn cluster(ids: &[i32], replicas: &[&[i32]]) -> (ClusterImage, u64) {
    let mut img = ClusterImage::default();
    let mut index = 0;
    for id in ids {
        index += 1;
        img.apply(index, &Command::RegisterBroker { id: *id, host: "localhost".into(), port: 9000 + *id as u16 });
    }
    index += 1;
    let cmd = Command::CreateTopic {
        name: "t".into(),
        partitions: 0,
        replication_factor: 0,
        assignments: Some(replicas.iter().map(|r| r.to_vec()).collect()),
        configs: BTreeMap::new(),
    };
    assert!(matches!(img.apply(index, &cmd), Reply::TopicId(_)));
    (img, index)
}

fn p0(img: &ClusterImage) -> &PartitionInfo {
    img.partition("t", 0).unwrap()
}

fn epoch_of(img: &ClusterImage, id: i32) -> u64 {
    img.brokers[&id].epoch
}

#[test]
fn fencing_moves_leadership_within_the_isr() {
    // (replicas, isr before, fenced broker, leader after, isr after, leader epoch after)
    type Case<'a> = (&'a [i32], &'a [i32], i32, i32, &'a [i32], i32);
    let cases: &[Case] = &[
        (&[1, 2, 3], &[1, 2, 3], 1, 2, &[2, 3], 1),
        (&[1, 2, 3], &[1, 2, 3], 2, 1, &[1, 3], 0),
        (&[1, 2, 3], &[1, 3], 1, 3, &[3], 1),
        // The last ISR member stays in the ISR, and the partition has no leader.
        (&[1, 2, 3], &[1], 1, NO_LEADER, &[1], 1),
    ];
    for (replicas, isr, fenced, leader, isr_after, epoch) in cases {
        let (mut img, mut i) = cluster(&[1, 2, 3], &[replicas]);
        let p = img.topics.get_mut("t").unwrap().partitions.get_mut(0).unwrap();
        p.isr = isr.to_vec();
        i += 1;
        let e = epoch_of(&img, *fenced);
        assert_eq!(img.apply(i, &Command::FenceBroker { id: *fenced, epoch: e }), Reply::Ok);
        let p = p0(&img);
        assert_eq!(
            (p.leader, p.isr.as_slice(), p.leader_epoch),
            (*leader, *isr_after, *epoch),
            "case {isr:?} {fenced}"
        );
    }
}

#[test]
fn a_stale_fence_is_refused() {
    let (mut img, i) = cluster(&[1, 2], &[&[1, 2]]);
    let old = epoch_of(&img, 1);
    img.apply(i + 1, &Command::RegisterBroker { id: 1, host: "h".into(), port: 1 });
    let r = img.apply(i + 2, &Command::FenceBroker { id: 1, epoch: old });
    assert_eq!(r.code(), codes::STALE_BROKER_EPOCH);
    assert!(img.is_live(1));
}

#[test]
fn a_returning_last_isr_member_leads_again() {
    let (mut img, mut i) = cluster(&[1, 2], &[&[1, 2]]);
    for id in [2, 1] {
        i += 1;
        let e = epoch_of(&img, id);
        img.apply(i, &Command::FenceBroker { id, epoch: e });
    }
    assert_eq!((p0(&img).leader, p0(&img).isr.clone()), (NO_LEADER, vec![1]));
    // Broker 2 returns: not in the ISR, so no clean election.
    img.apply(i + 1, &Command::RegisterBroker { id: 2, host: "h".into(), port: 2 });
    assert_eq!(p0(&img).leader, NO_LEADER);
    // Broker 1 returns: it is the ISR, so it leads.
    img.apply(i + 2, &Command::RegisterBroker { id: 1, host: "h".into(), port: 1 });
    assert_eq!((p0(&img).leader, p0(&img).isr.clone()), (1, vec![1]));
    assert_eq!(p0(&img).leader_epoch, 2);
}

#[test]
fn unclean_election_only_when_the_topic_allows_it() {
    for (allow, leader) in [(false, NO_LEADER), (true, 2)] {
        let (mut img, mut i) = cluster(&[1, 2], &[&[1, 2]]);
        if allow {
            let configs = BTreeMap::from([("unclean.leader.election.enable".to_string(), "true".to_string())]);
            img.apply(i + 1, &Command::AlterConfigs { name: "t".into(), configs });
        }
        img.topics.get_mut("t").unwrap().partitions[0].isr = vec![1];
        i += 2;
        let e = epoch_of(&img, 1);
        img.apply(i, &Command::FenceBroker { id: 1, epoch: e });
        assert_eq!(p0(&img).leader, leader, "unclean allowed: {allow}");
        if allow {
            assert_eq!(p0(&img).isr, vec![2]);
        }
    }
}

#[test]
fn a_restart_fences_the_previous_incarnation() {
    let (mut img, i) = cluster(&[1, 2, 3], &[&[1, 2, 3]]);
    img.apply(i + 1, &Command::RegisterBroker { id: 1, host: "h".into(), port: 1 });
    let p = p0(&img);
    assert_eq!((p.leader, p.isr.as_slice(), p.leader_epoch), (2, &[2, 3][..], 1));
    assert!(img.is_live(1));
}

#[test]
fn alter_partition_checks_leader_and_epochs() {
    let (mut img, i) = cluster(&[1, 2, 3], &[&[1, 2, 3]]);
    let alter = |leader, le, pe, isr: &[i32]| Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: le,
        partition_epoch: pe,
        isr: isr.to_vec(),
    };
    let cases: &[(Command, i16)] = &[
        (alter(2, 0, 0, &[1, 2]), codes::NOT_LEADER_OR_FOLLOWER),
        (alter(1, 1, 0, &[1, 2]), codes::FENCED_LEADER_EPOCH),
        (alter(1, 0, 7, &[1, 2]), codes::INVALID_UPDATE_VERSION),
        (alter(1, 0, 0, &[2, 3]), codes::INVALID_REQUEST),
        (alter(1, 0, 0, &[1, 4]), codes::INELIGIBLE_REPLICA),
    ];
    for (cmd, code) in cases {
        assert_eq!(img.apply(i + 1, cmd).code(), *code, "{cmd:?}");
    }
    assert!(matches!(img.apply(i + 1, &alter(1, 0, 0, &[1, 3])), Reply::Partition(ref p) if p.partition_epoch == 1));
    assert_eq!(p0(&img).isr, vec![1, 3]);
    // A fenced broker may not rejoin.
    let e = epoch_of(&img, 2);
    img.apply(i + 2, &Command::FenceBroker { id: 2, epoch: e });
    let pe = p0(&img).partition_epoch;
    assert_eq!(img.apply(i + 3, &alter(1, 0, pe, &[1, 2, 3])).code(), codes::INELIGIBLE_REPLICA);
}

#[test]
fn preferred_election() {
    let (mut img, mut i) = cluster(&[1, 2, 3], &[&[1, 2, 3]]);
    let elect = Command::ElectLeaders { partitions: vec![("t".into(), 0), ("t".into(), 9)], preferred: true };
    assert_eq!(
        img.apply(i + 1, &elect),
        Reply::Elections(vec![codes::ELECTION_NOT_NEEDED, codes::UNKNOWN_TOPIC_OR_PARTITION])
    );
    i += 2;
    let e = epoch_of(&img, 1);
    img.apply(i, &Command::FenceBroker { id: 1, epoch: e });
    assert_eq!(img.apply(i + 1, &elect), Reply::Elections(vec![codes::PREFERRED_LEADER_NOT_AVAILABLE, 3]));
    // Back, and caught up (the leader put it back in the ISR): the preferred election moves it.
    img.apply(i + 2, &Command::RegisterBroker { id: 1, host: "h".into(), port: 1 });
    assert_eq!(p0(&img).leader, 2);
    let pe = p0(&img).partition_epoch;
    let alter = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 2,
        leader_epoch: 1,
        partition_epoch: pe,
        isr: vec![2, 3, 1],
    };
    assert!(matches!(img.apply(i + 3, &alter), Reply::Partition(_)));
    assert_eq!(img.apply(i + 4, &elect), Reply::Elections(vec![0, 3]));
    assert_eq!((p0(&img).leader, p0(&img).leader_epoch), (1, 2));
}

#[test]
fn reassignment_adds_then_shrinks() {
    let (mut img, i) = cluster(&[1, 2, 3, 4], &[&[1, 2]]);
    let cmd = Command::Reassign { topic: "t".into(), partition: 0, replicas: Some(vec![3, 4]) };
    assert_eq!(img.apply(i + 1, &cmd), Reply::Ok);
    assert_eq!(p0(&img).replicas, vec![3, 4, 1, 2]);
    assert_eq!(p0(&img).leader, 1);
    // The new replicas catch up one by one; the move completes when both are in the ISR.
    for (n, isr) in [vec![1, 2, 3], vec![1, 2, 3, 4]].into_iter().enumerate() {
        let pe = p0(&img).partition_epoch;
        let alter = Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: pe,
            isr,
        };
        assert!(matches!(img.apply(i + 2 + n as u64, &alter), Reply::Partition(_)));
    }
    let p = p0(&img);
    assert_eq!(
        (p.replicas.as_slice(), p.isr.as_slice(), p.leader, p.target_replicas.is_none()),
        (&[3, 4][..], &[3, 4][..], 3, true)
    );
}

#[test]
fn reassignment_cancel_drops_the_added_replicas() {
    let (mut img, i) = cluster(&[1, 2, 3], &[&[1, 2]]);
    img.apply(i + 1, &Command::Reassign { topic: "t".into(), partition: 0, replicas: Some(vec![2, 3]) });
    assert_eq!(img.apply(i + 2, &Command::Reassign { topic: "t".into(), partition: 0, replicas: None }), Reply::Ok);
    assert_eq!((p0(&img).replicas.clone(), p0(&img).leader), (vec![2, 1], 1));
    let again = img.apply(i + 3, &Command::Reassign { topic: "t".into(), partition: 0, replicas: None });
    assert_eq!(again.code(), codes::NO_REASSIGNMENT_IN_PROGRESS);
}

#[test]
fn automatic_assignment_spreads_leaders_and_replicas() {
    let mut img = ClusterImage::default();
    for id in 1..=3 {
        img.apply(id as u64, &Command::RegisterBroker { id, host: "h".into(), port: 1 });
    }
    let create = |name: &str, rf| Command::CreateTopic {
        name: name.into(),
        partitions: 6,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::new(),
    };
    assert!(matches!(img.apply(4, &create("a", 3)), Reply::TopicId(_)));
    let a = &img.topics["a"];
    let mut leaders = [0; 3];
    for p in &a.partitions {
        let mut r = p.replicas.clone();
        r.sort_unstable();
        assert_eq!(r, vec![1, 2, 3]);
        leaders[(p.leader - 1) as usize] += 1;
    }
    assert_eq!(leaders, [2, 2, 2]);
    assert_eq!(img.apply(5, &create("b", 4)).code(), codes::INVALID_REPLICATION_FACTOR);
    assert_eq!(img.apply(6, &create("a", 1)).code(), codes::TOPIC_ALREADY_EXISTS);
    // Ids are the same wherever the log is applied, and differ between topics.
    let mut other = ClusterImage::default();
    for id in 1..=3 {
        other.apply(id as u64, &Command::RegisterBroker { id, host: "h".into(), port: 1 });
    }
    other.apply(4, &create("a", 3));
    assert_eq!(other.topics["a"].id, img.topics["a"].id);
    assert_eq!(img.apply(7, &Command::CreatePartitions { name: "a".into(), count: 8 }), Reply::Ok);
    assert_eq!(img.topics["a"].partitions.len(), 8);
    assert_eq!(
        img.apply(8, &Command::CreatePartitions { name: "a".into(), count: 8 }).code(),
        codes::INVALID_PARTITIONS
    );
}

#[test]
fn producer_id_blocks_do_not_overlap() {
    let mut img = ClusterImage::default();
    let a = img.apply(1, &Command::AllocateProducerIds { count: 1000 });
    let b = img.apply(2, &Command::AllocateProducerIds { count: 1000 });
    assert_eq!(a, Reply::ProducerIds { start: 0, count: 1000 });
    assert_eq!(b, Reply::ProducerIds { start: 1000, count: 1000 });
}
