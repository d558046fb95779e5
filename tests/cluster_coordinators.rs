//! The group and transaction coordinators on a three-broker cluster: each lives on the leader
//! of its internal topic's partition, and when that broker dies the new leader takes over from
//! its replica of the log: committed offsets and transactional state survive, a transactional
//! producer goes on with the next transaction, and a read_committed consumer group reads every
//! committed record once and no aborted one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::cluster::{metadata, until, Cluster};
use kafka_protocol::messages::{GroupId, HeartbeatRequest, InitProducerIdRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use rill_broker::group::partition_for;
use rill_core::client::{Admin, Client, ClientConfig, Connection, NewTopic};
use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;

const INTERNAL_PARTITIONS: i32 = 3;

fn rec(value: String) -> ProducerRecord {
    ProducerRecord { key: Some(Bytes::from(value.clone())), value: Some(Bytes::from(value)), ..Default::default() }
}

fn value(r: &PolledRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

/// One transaction of `values`, committed or aborted.
async fn transaction(p: &Producer, values: impl Iterator<Item = String>, commit: bool) {
    p.begin_transaction().unwrap();
    let mut acks = Vec::new();
    for v in values {
        acks.push(p.send("in", None, rec(v)).await.unwrap());
    }
    if commit {
        p.commit_transaction().await.expect("commit");
    } else {
        p.abort_transaction().await.expect("abort");
    }
}

/// Poll until `n` records came (at most 60 s); commits after every poll.
async fn read(c: &mut Consumer, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "read {} of {n}: {out:?}", out.len());
        out.extend(c.poll(Duration::from_millis(100)).await.unwrap().iter().map(value));
        // Committing may meet a coordinator that just moved; the next poll retries.
        let _ = c.commit_sync().await;
    }
    out.sort();
    out
}

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    let mut v: Vec<String> = range.map(|i| format!("v{i:03}")).collect();
    v.sort();
    v
}

/// A connection to a broker that does not lead `key`'s partition of the internal `topic`.
async fn not_the_coordinator(cluster: &Cluster, topic: &str, key: &str) -> Connection {
    let md = metadata(&cluster.nodes[0].addr).await;
    let t = md.topics.iter().find(|t| t.name == topic).expect("the internal topic exists");
    let coordinator = t.partitions[partition_for(key, INTERNAL_PARTITIONS) as usize].leader;
    let other = cluster.nodes.iter().find(|n| n.id != coordinator).unwrap();
    Connection::connect(&other.addr, "test").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinators_move_with_their_partitions() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let n = INTERNAL_PARTITIONS.to_string();
    let mut cluster =
        Cluster::start(3, &[("offsets.topic.num.partitions", &n), ("transaction.state.log.num.partitions", &n)]).await;
    let all: String = cluster.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",");
    let client = Client::connect(ClientConfig::new(&all)).await.unwrap();
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    let topic = NewTopic { name: "in".into(), partitions: 4, replication_factor: 3, configs };
    Admin::new(&client).create_topics(&[topic], false).await.unwrap();

    let producer_config = ProducerConfig::from_properties([
        ("bootstrap.servers", all.as_str()),
        ("transactional.id", "tx-1"),
        ("linger.ms", "1"),
        ("request.timeout.ms", "5000"),
        ("delivery.timeout.ms", "60000"),
    ])
    .unwrap();
    let p = Producer::new(producer_config).await.unwrap();
    p.init_transactions().await.unwrap();

    // A broker that does not lead the id's __transaction_state partition says NOT_COORDINATOR
    // (clients then look the coordinator up again).
    let conn = not_the_coordinator(&cluster, "__transaction_state", "tx-1").await;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))))
        .with_transaction_timeout_ms(60_000);
    assert_eq!(conn.call(req, 4).await.unwrap().error_code, 16, "NOT_COORDINATOR");
    transaction(&p, (0..40).map(|i| format!("v{i:03}")), true).await;
    transaction(&p, (0..20).map(|i| format!("aborted{i}")), false).await;

    let consumer_config = ConsumerConfig::from_properties([
        ("bootstrap.servers", all.as_str()),
        ("group.id", "g"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("enable.auto.commit", "false"),
    ])
    .unwrap();
    let mut c = Consumer::new(consumer_config).await.unwrap();
    c.subscribe(["in"]).unwrap();
    assert_eq!(read(&mut c, 40).await, values(0..40));

    // The same for a group: a broker not leading its __consumer_offsets partition says so.
    let conn = not_the_coordinator(&cluster, "__consumer_offsets", "g").await;
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str("m"))
        .with_generation_id(1);
    assert_eq!(conn.call(req, 4).await.unwrap().error_code, 16, "NOT_COORDINATOR");

    // Kill the group's coordinator (the leader of its __consumer_offsets partition).
    let md = metadata(&cluster.nodes[0].addr).await;
    let offsets = md.topics.iter().find(|t| t.name == "__consumer_offsets").expect("created by the group");
    let coordinator = offsets.partitions[partition_for("g", INTERNAL_PARTITIONS) as usize].leader;
    let victim = cluster.nodes.iter().position(|n| n.id == coordinator).unwrap();
    cluster.kill(victim);
    let survivor = cluster.nodes[(victim + 1) % 3].addr.clone();
    until(&survivor, "the dead coordinator is fenced", |md| !md.brokers.contains_key(&coordinator)).await;

    // The producer goes on (its coordinator may have moved too); the group resumes from its
    // committed offsets: the next 40, not the first 40 again, and nothing aborted.
    transaction(&p, (40..80).map(|i| format!("v{i:03}")), true).await;
    transaction(&p, (20..30).map(|i| format!("aborted{i}")), false).await;
    assert_eq!(read(&mut c, 40).await, values(40..80));

    // The dead broker comes back: one more round through whichever brokers lead now.
    cluster.restart(victim).await;
    transaction(&p, (80..100).map(|i| format!("v{i:03}")), true).await;
    assert_eq!(read(&mut c, 20).await, values(80..100));
    drop(c);
    p.close().await;
    cluster.shutdown().await;
}
