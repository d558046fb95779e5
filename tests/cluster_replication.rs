//! Replication on a three-broker cluster in one process: acks=all writes reach every replica,
//! consumers read only below the high watermark, a leader's death moves leadership to an
//! in-sync follower without losing an acknowledged record, and a restarted broker truncates,
//! catches up and rejoins the ISR.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::cluster::{metadata, until, Cluster};
use rill_core::client::{Admin, Client, ClientConfig, Metadata, NewTopic, LATEST};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::{decode_records, ProducerRecord};

fn partition(md: &Metadata, topic: &str) -> rill_core::client::PartitionInfo {
    md.topics.iter().find(|t| t.name == topic).expect("topic").partitions[0].clone()
}

async fn produce(bootstrap: &str, from: usize, to: usize) {
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("linger.ms", "1"),
        ("retry.backoff.ms", "50"),
        ("request.timeout.ms", "5000"),
        ("delivery.timeout.ms", "60000"),
    ])
    .unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut acks = Vec::new();
    for i in from..to {
        let rec = ProducerRecord { value: Some(Bytes::from(format!("v{i}"))), ..Default::default() };
        acks.push(producer.send("r", Some(0), rec).await.unwrap());
    }
    for (i, a) in acks.into_iter().enumerate() {
        let md = a.await.expect("acknowledged");
        assert!(md.offset >= (from + i) as i64, "record {} acknowledged at offset {}", from + i, md.offset);
    }
    producer.close().await;
}

async fn read(bootstrap: &str) -> Vec<String> {
    let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let end = client.list_offset("r", 0, LATEST).await.unwrap();
    let (mut offset, mut out) = (0, Vec::new());
    while offset < end {
        let got = client.fetch("r", 0, offset, 1 << 20, 100).await.unwrap();
        for r in decode_records(got.records, offset).unwrap() {
            offset = r.offset + 1;
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}

/// Compare a read with the values 0..n, reporting the first difference readably.
fn check(got: &[String], n: usize) {
    let want = expected(n);
    if let Some(i) = (0..got.len().max(n)).find(|i| got.get(*i) != want.get(*i)) {
        let around = |v: &[String]| v[i.saturating_sub(2)..(i + 3).min(v.len())].to_vec();
        panic!(
            "read {} records, want {n}; first difference at {i}: got {:?}, want {:?}",
            got.len(),
            around(got),
            around(&want)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_survives_the_leader_and_the_old_leader_catches_up() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let mut cluster = Cluster::start(3, &[("replica.lag.time.max.ms", "2000")]).await;
    let all: String = cluster.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    let client = Client::connect(ClientConfig::new(&cluster.nodes[0].addr)).await.unwrap();
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    let topic = NewTopic { name: "r".into(), partitions: 1, replication_factor: 3, configs };
    Admin::new(&client).create_topics(&[topic], false).await.expect("create r");

    produce(&all, 0, 500).await;
    check(&read(&all).await, 500);
    // Every replica holds every acknowledged record.
    for n in &cluster.nodes {
        let log = n.broker.as_ref().unwrap().state().topics.partition("r", 0).unwrap();
        assert!(log.log_end_offset() >= 500, "broker {} has {}", n.id, log.log_end_offset());
    }

    // Kill the leader; the producer follows the new one.
    let leader = partition(&metadata(&cluster.nodes[0].addr).await, "r").leader;
    let victim = cluster.nodes.iter().position(|n| n.id == leader).unwrap();
    cluster.kill(victim);
    let survivor = cluster.nodes[(victim + 1) % 3].addr.clone();
    until(&survivor, "a new leader", |md| {
        let p = partition(md, "r");
        p.leader > 0 && p.leader != leader
    })
    .await;
    let alive: String =
        cluster.nodes.iter().filter(|n| n.broker.is_some()).map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    produce(&alive, 500, 1000).await;
    check(&read(&alive).await, 1000);

    // The old leader comes back, catches up and rejoins the ISR.
    cluster.restart(victim).await;
    until(&survivor, "the old leader back in the ISR", |md| partition(md, "r").isr.len() == 3).await;
    let log = cluster.nodes[victim].broker.as_ref().unwrap().state().topics.partition("r", 0).unwrap();
    assert!(log.log_end_offset() >= 1000, "caught up: {}", log.log_end_offset());
    cluster.shutdown().await;
}

/// The last in-sync replica restarts and leads again with everything it had: a broker whose
/// image has not caught up with the quorum yet must not touch its local topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_in_sync_replica_keeps_its_data_across_a_restart() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let mut cluster = Cluster::start(3, &[]).await;
    let all: String = cluster.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    let client = Client::connect(ClientConfig::new(&all)).await.unwrap();
    // One replica, on broker 1: its only in-sync replica.
    create_assigned(&client, "r", &[1]).await;
    produce(&all, 0, 300).await;
    cluster.kill(0);
    let survivor = cluster.nodes[2].addr.clone();
    until(&survivor, "no leader", |md| partition(md, "r").leader < 0).await;
    // Back, it leads again (from its own log, before its image has caught up) with all 300.
    cluster.restart(0).await;
    until(&survivor, "broker 1 leads again", |md| partition(md, "r").leader == 1).await;
    check(&read(&all).await, 300);
    cluster.shutdown().await;
}

/// Create topic `name` with one partition on exactly `replicas`.
async fn create_assigned(client: &Client, name: &str, replicas: &[i32]) {
    use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
    use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let t = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect())]);
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![t]);
    let resp = client.any_broker().call(req, 7).await.expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0, "creating {name}: {:?}", resp.topics[0].error_message);
}
