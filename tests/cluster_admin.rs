//! Replica administration on a three-broker cluster in one process: preferred leader elections
//! and partition reassignments through the client admin and the `rill topics` CLI, checked in
//! every broker's metadata.
//!
//! A reassignment completes once its added replicas are in the ISR: one within the ISR at once,
//! one to a fenced broker not before that broker is back and caught up.

mod common;

use common::cluster::{until, Cluster};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_core::client::{Admin, Client, ClientConfig, Metadata, PartitionInfo, PartitionReassignment};

/// ELECTION_NOT_NEEDED.
const ELECTION_NOT_NEEDED: i16 = 84;
/// PREFERRED_LEADER_NOT_AVAILABLE.
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// INVALID_REPLICA_ASSIGNMENT.
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// NO_REASSIGNMENT_IN_PROGRESS.
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// Create `topic` with one partition per entry of `assignment`, through CreateTopics.
async fn create_assigned(client: &Client, topic: &str, assignment: &[&[i32]]) {
    let t = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            assignment
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(i as i32)
                        .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![t]);
    let resp = client.any_broker().call(req, 7).await.expect("CreateTopics");
    let r = &resp.topics[0];
    assert_eq!(r.error_code, 0, "creating {topic}: {:?}", r.error_message);
}

fn partition<'a>(md: &'a Metadata, topic: &str, p: i32) -> Option<&'a PartitionInfo> {
    md.topics.iter().find(|t| t.name == topic)?.partitions.iter().find(|x| x.partition == p)
}

/// Wait until every live broker reports `topic`-`p` with `leader` and `replicas`.
async fn everywhere(cluster: &Cluster, what: &str, topic: &str, p: i32, leader: i32, replicas: &[i32]) {
    for n in cluster.nodes.iter().filter(|n| n.broker.is_some()) {
        until(&n.addr, &format!("{what} (broker {})", n.id), |md| {
            partition(md, topic, p).is_some_and(|x| x.leader == leader && x.replicas == replicas)
        })
        .await;
    }
}

/// Run `rill ARGS` off the runtime's threads (the brokers run on them).
async fn rill_ok(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || common::ok(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

fn code(r: &Result<(), rill_core::Error>) -> Option<i16> {
    r.as_ref().err().map(|e| e.code().unwrap_or_else(|| panic!("not a broker error: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preferred_elections_and_reassignments() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let mut cluster = Cluster::start(3, &[("auto.leader.rebalance.enable", "false")]).await;
    let bootstrap = cluster.nodes[0].addr.clone();
    let client = Client::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    let admin = Admin::new(&client);

    // A preferred leader that does not lead: reorder the replicas (a move within the ISR
    // completes at once) so that broker 2 is preferred while broker 1 still leads.
    create_assigned(&client, "moved", &[&[1, 2, 3]]).await;
    everywhere(&cluster, "moved is created", "moved", 0, 1, &[1, 2, 3]).await;
    let out = admin.alter_partition_reassignments(&[("moved".into(), 0, Some(vec![2, 1, 3]))]).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].1.is_ok(), "{out:?}");
    assert_eq!(admin.list_partition_reassignments().await.unwrap(), vec![], "a move within the ISR is done at once");
    everywhere(&cluster, "moved is reordered", "moved", 0, 1, &[2, 1, 3]).await;

    let all = admin.elect_leaders(None, false).await.unwrap();
    assert!(all.is_empty(), "every partition has a leader: {all:?}");
    let out = admin.elect_leaders(Some(&[("moved".into(), 0), ("nowhere".into(), 0)]), true).await.unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].0, ("moved".to_string(), 0));
    assert!(out[0].1.is_ok(), "{out:?}");
    assert_eq!(code(&out[1].1), Some(UNKNOWN_TOPIC_OR_PARTITION), "{out:?}");
    everywhere(&cluster, "the preferred replica leads", "moved", 0, 2, &[2, 1, 3]).await;
    let again = admin.elect_leaders(Some(&[("moved".into(), 0)]), true).await.unwrap();
    assert_eq!(code(&again[0].1), Some(ELECTION_NOT_NEEDED), "{again:?}");
    assert!(admin.elect_leaders(None, true).await.unwrap().is_empty(), "preferred leaders everywhere");

    // Broker 3 is down, so a move to it stays in progress (a fenced broker cannot join the
    // ISR): replicas are target + old ones.
    cluster.kill(2);
    until(&bootstrap, "broker 3 is fenced", |md| !md.brokers.contains_key(&3)).await;
    create_assigned(&client, "pair", &[&[1, 2]]).await;
    everywhere(&cluster, "pair is created", "pair", 0, 1, &[1, 2]).await;
    let out = admin.alter_partition_reassignments(&[("pair".into(), 0, Some(vec![3, 1]))]).await.unwrap();
    assert!(out[0].1.is_ok(), "{out:?}");
    let moving = PartitionReassignment {
        topic: "pair".into(),
        partition: 0,
        replicas: vec![3, 1, 2],
        adding_replicas: vec![3],
        removing_replicas: vec![2],
    };
    assert_eq!(admin.list_partition_reassignments().await.unwrap(), vec![moving]);
    everywhere(&cluster, "pair is moving", "pair", 0, 1, &[3, 1, 2]).await;
    let busy = admin.alter_partition_reassignments(&[("pair".into(), 0, Some(vec![3, 2]))]).await.unwrap();
    assert_eq!(code(&busy[0].1), Some(INVALID_REPLICA_ASSIGNMENT), "{busy:?}");

    // The CLI shows the same.
    let b = bootstrap.clone();
    let listed = rill_ok(vec!["topics".into(), "--bootstrap".into(), b.clone(), "reassignments".into()]).await;
    assert_eq!(listed, "pair-0: replicas: 3,1,2. adding: 3. removing: 2.\n");
    let d = rill_ok(vec!["topics".into(), "--bootstrap".into(), b.clone(), "describe".into(), "pair".into()]).await;
    assert!(d.contains("\tTopic: pair\tPartition: 0\tLeader: 1\tReplicas: 3,1,2\tIsr: 1,2"), "{d}");

    // Cancelling drops the added replica.
    let out = admin.alter_partition_reassignments(&[("pair".into(), 0, None)]).await.unwrap();
    assert!(out[0].1.is_ok(), "{out:?}");
    assert_eq!(admin.list_partition_reassignments().await.unwrap(), vec![]);
    everywhere(&cluster, "pair is back", "pair", 0, 1, &[1, 2]).await;
    let out = admin.alter_partition_reassignments(&[("pair".into(), 0, None)]).await.unwrap();
    assert_eq!(code(&out[0].1), Some(NO_REASSIGNMENT_IN_PROGRESS), "{out:?}");

    // Through the CLI: a move, its cancellation, an election with nothing to do.
    let args = |a: &[&str]| ["topics", "--bootstrap", &b].iter().chain(a).map(|s| s.to_string()).collect::<Vec<_>>();
    let out = rill_ok(args(&["reassign", "--topic", "pair", "--partition", "0", "--replicas", "3,1"])).await;
    assert!(out.contains("started: adding 3, removing 2"), "{out}");
    let out = rill_ok(args(&["reassign", "--topic", "pair", "--partition", "0", "--cancel"])).await;
    assert_eq!(out, "Cancelled the reassignment of pair-0.\n");
    let out = rill_ok(args(&["elect-leaders", "--topic", "moved"])).await;
    assert_eq!(out, "Valid replica already elected for partitions moved-0\n");

    // Broker 3 is back: it catches up, joins the ISR, and the move completes without broker 2.
    cluster.restart(2).await;
    let out = admin.alter_partition_reassignments(&[("pair".into(), 0, Some(vec![3, 1]))]).await.unwrap();
    assert!(out[0].1.is_ok(), "{out:?}");
    everywhere(&cluster, "pair has moved", "pair", 0, 1, &[3, 1]).await;
    until(&bootstrap, "pair's ISR is the target", |md| {
        partition(md, "pair", 0).is_some_and(|p| {
            let mut isr = p.isr.clone();
            isr.sort_unstable();
            isr == [1, 3]
        })
    })
    .await;
    assert_eq!(admin.list_partition_reassignments().await.unwrap(), vec![]);

    // The preferred replica dies: another leads, and a preferred election cannot bring it back
    // (it is out of the ISR).
    cluster.kill(1);
    until(&bootstrap, "broker 2 is fenced", |md| partition(md, "moved", 0).is_some_and(|p| p.leader == 1)).await;
    let out = admin.elect_leaders(Some(&[("moved".into(), 0)]), true).await.unwrap();
    assert_eq!(code(&out[0].1), Some(PREFERRED_LEADER_NOT_AVAILABLE), "{out:?}");
    cluster.shutdown().await;
}
