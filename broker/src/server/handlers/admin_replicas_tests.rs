//! Request -> command mapping of the replica admin APIs.

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;

use super::*;

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

#[test]
fn named_partitions_are_elected_as_named() {
    let req = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
        TopicPartitions::default().with_topic(topic_name("a")).with_partitions(vec![0, 2]),
        TopicPartitions::default().with_topic(topic_name("b")).with_partitions(vec![1]),
    ]));
    let parts = election_partitions(&req, [("ignored", 5)].into_iter());
    assert_eq!(parts, vec![tp("a", 0), tp("a", 2), tp("b", 1)]);
}

#[test]
fn null_topic_partitions_means_every_partition() {
    let req = ElectLeadersRequest::default().with_topic_partitions(None);
    let parts = election_partitions(&req, [("a", 2), ("b", 1)].into_iter());
    assert_eq!(parts, vec![tp("a", 0), tp("a", 1), tp("b", 0)]);
}

#[test]
fn election_types_map_to_preferred_or_leaderless_elections() {
    let cases: &[(i8, Option<bool>)] = &[(PREFERRED, Some(true)), (UNCLEAN, Some(false)), (2, None), (-1, None)];
    for &(kind, preferred) in cases {
        match (election_command(kind, vec![tp("a", 0)]), preferred) {
            (Ok(Command::ElectLeaders { partitions, preferred: p }), Some(want)) => {
                assert_eq!((partitions, p), (vec![tp("a", 0)], want), "type {kind}");
            }
            (Err((code, m)), None) => {
                assert_eq!(code, codes::INVALID_REQUEST, "type {kind}");
                assert!(m.contains(&kind.to_string()), "{m}");
            }
            (other, _) => panic!("type {kind}: {other:?}"),
        }
    }
}

#[test]
fn reassignments_keep_targets_and_cancellations() {
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![ReassignableTopic::default()
        .with_name(topic_name("t"))
        .with_partitions(vec![
            ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(3), BrokerId(1)])),
            ReassignablePartition::default().with_partition_index(1).with_replicas(None),
        ])]);
    assert_eq!(reassignments(&req), vec![("t".to_string(), 0, Some(vec![3, 1])), ("t".to_string(), 1, None)]);
}

#[test]
fn ongoing_reports_adding_and_removing_replicas() {
    // [1, 2] moving to [3, 1]: the replica set is the target then the old ones.
    let mut p = PartitionInfo::new(vec![3, 1, 2]);
    assert_eq!(ongoing(&p), None, "not moving");
    p.target_replicas = Some(vec![3, 1]);
    p.adding_replicas = vec![3];
    assert_eq!(ongoing(&p), Some((vec![3, 1, 2], vec![3], vec![2])));
}

#[test]
fn reassignment_shows_in_the_image_when_listed_done_or_cancelled() {
    let mut p = PartitionInfo::new(vec![3, 1, 2]);
    p.target_replicas = Some(vec![3, 1]);
    assert!(reassigned(&p, Some(&[3, 1])), "in progress");
    assert!(!reassigned(&p, None), "not cancelled yet");
    let done = PartitionInfo::new(vec![3, 1]);
    assert!(reassigned(&done, Some(&[3, 1])), "done");
    assert!(reassigned(&done, None), "cancelled");
    assert!(!reassigned(&done, Some(&[1, 3])), "order matters: the first replica is the preferred leader");
}

#[test]
fn elections_show_in_the_image() {
    let mut p = PartitionInfo::new(vec![2, 1]);
    p.leader = 1;
    let mut img = ClusterImage::default();
    img.topics.insert(
        "t".into(),
        crate::cluster::image::TopicInfo { id: uuid::Uuid::nil(), configs: Default::default(), partitions: vec![p] },
    );
    assert!(!elected_in(&img, "t", 0, true), "1 leads, 2 is preferred");
    assert!(elected_in(&img, "t", 0, false), "it has a leader");
    img.topics.get_mut("t").unwrap().partitions[0].leader = NO_LEADER;
    assert!(!elected_in(&img, "t", 0, false));
}
