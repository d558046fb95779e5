//! Standby replicas, cooperative rebalancing and the metadata of which instance hosts a key.
//!
//! Two instances count page views with `num.standby.replicas=1`: each keeps a standby of every
//! counting task the other runs, current enough that stale queries see every count, and a task
//! that moves when its instance leaves starts from the standby's checkpoint instead of from the
//! changelog's start. A third instance joining leaves the tasks that stay where they are running
//! (cooperative rebalancing: no task is closed and reopened).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_dsl::{Materialized, StreamsBuilder};

const PARTITIONS: i32 = 4;

fn app(bootstrap: &str, state: &std::path::Path, host: &str) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits")
        .group_by(|_, page| page.clone())
        .count_with(Materialized::as_("views").persistent())
        .to_stream()
        .to("page-views");
    let built = builder.build("standby").unwrap();
    let config = StreamsConfig::from_properties([
        ("application.id", "standby"),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", state.to_str().unwrap()),
        ("num.standby.replicas", "1"),
        ("application.server", host),
        ("consumer.session.timeout.ms", "6000"),
        ("consumer.heartbeat.interval.ms", "500"),
    ])
    .unwrap();
    built.into_streams(config)
}

async fn produce(bootstrap: &str, from: usize, n: usize, model: &mut BTreeMap<String, i64>) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let mut sent = Vec::new();
    for i in from..from + n {
        let page = format!("/page/{}", i % 17);
        *model.entry(page.clone()).or_insert(0) += 1;
        let rec = ProducerRecord {
            key: Some(Bytes::from(format!("visitor-{i}"))),
            value: Some(Bytes::from(page)),
            headers: Vec::new(),
            timestamp: None,
        };
        sent.push(p.send("visits", None, rec).await.unwrap());
    }
    for d in sent {
        d.await.unwrap();
    }
    p.close().await;
}

/// Wait until every page's last count read_committed from `page-views` is the model's.
async fn wait_for_output(bootstrap: &str, model: &BTreeMap<String, i64>) {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([("bootstrap.servers", bootstrap), ("isolation.level", "read_committed")])
            .unwrap(),
    )
    .await
    .unwrap();
    let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| ("page-views".to_string(), p)).collect();
    c.assign(parts.clone()).unwrap();
    c.seek_to(&parts, true).await.unwrap();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while &last != model {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let page = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            last.insert(page, I64Serde.deserialize(r.value.as_deref().unwrap()).unwrap());
        }
        assert!(Instant::now() < deadline, "page-views never reached the model: {last:?}");
    }
}

/// Poll `f` until it holds (every 50 ms, up to 60 s).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(dir: &std::path::Path) -> (Broker, String) {
    let broker = Broker::embedded(dir.join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("visits", PARTITIONS), ("page-views", PARTITIONS)]).await;
    (broker, bootstrap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_keep_up_answer_stale_queries_and_take_over_from_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut model = BTreeMap::new();
    let mut a = app(&bootstrap, &dir.path().join("state-a"), "a.example:1");
    let mut b = app(&bootstrap, &dir.path().join("state-b"), "b.example:2");
    a.start().await.unwrap();
    b.start().await.unwrap();
    produce(&bootstrap, 0, 400, &mut model).await;
    wait_for_output(&bootstrap, &model).await;

    // Each instance runs some counting tasks and keeps standbys of the others: with stale
    // stores allowed, each sees every count.
    for (name, app) in [("a", &a), ("b", &b)] {
        eventually(&format!("{name}'s active and standby stores to hold every count"), || async {
            let all: BTreeMap<String, i64> = app.all_stale::<String, i64>("views").await.unwrap().into_iter().collect();
            all == model
        })
        .await;
    }
    let actives: BTreeMap<String, i64> = a
        .all::<String, i64>("views")
        .await
        .unwrap()
        .into_iter()
        .chain(b.all::<String, i64>("views").await.unwrap())
        .collect();
    assert_eq!(actives, model, "active stores split the keys");

    // The metadata says which instance runs each key, and which keeps its standby.
    for page in model.keys() {
        let md = a.query_metadata_for_key_with("views", page, &StringSerde).unwrap();
        assert_eq!(md, b.query_metadata_for_key_with("views", page, &StringSerde).unwrap(), "both instances agree");
        let (active, other) = match md.active_host.as_deref() {
            Some("a.example:1") => (&a, &b),
            Some("b.example:2") => (&b, &a),
            h => panic!("{page}: active host {h:?}"),
        };
        let standby = if std::ptr::eq(other, &a) { "a.example:1" } else { "b.example:2" };
        assert_eq!(md.standby_hosts, [standby.to_string()], "{page}");
        assert_eq!(active.get::<String, i64>("views", page.clone()).await.unwrap(), Some(model[page]), "{page}");
        assert_eq!(other.get::<String, i64>("views", page.clone()).await.unwrap(), None, "{page}: not active there");
    }
    let hosts: BTreeSet<String> = a.metadata_for_store("views").into_iter().map(|m| m.host).collect();
    assert_eq!(hosts, BTreeSet::from(["a.example:1".to_string(), "b.example:2".to_string()]));
    assert!(a.query_metadata_for_key("nope", b"x").is_err(), "an unknown store is an error");

    // a leaves: b takes its counting tasks over from its standbys' checkpoints.
    let before = b.restorations().len();
    a.close(Duration::from_secs(20)).await.unwrap();
    eventually("b to run every counting task", || async {
        let all: BTreeMap<String, i64> = b.all::<String, i64>("views").await.unwrap().into_iter().collect();
        all == model
    })
    .await;
    let taken: Vec<_> = b.restorations().into_iter().skip(before).filter(|r| r.store == "views").collect();
    assert!(!taken.is_empty(), "b opened a's counting tasks");
    for r in &taken {
        assert!(r.stats.from > 0, "restoration started at the standby's checkpoint, not the start: {r:?}");
    }
    produce(&bootstrap, 400, 200, &mut model).await;
    wait_for_output(&bootstrap, &model).await;
    b.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_stay_keep_running_when_an_instance_joins() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut model = BTreeMap::new();
    let mut a = app(&bootstrap, &dir.path().join("state-a"), "a.example:1");
    a.start().await.unwrap();
    produce(&bootstrap, 0, 300, &mut model).await;
    wait_for_output(&bootstrap, &model).await;
    let opened_alone = a.restorations().iter().filter(|r| r.store == "views").count();
    assert_eq!(opened_alone, PARTITIONS as usize, "a runs every counting task");

    let mut b = app(&bootstrap, &dir.path().join("state-b"), "b.example:2");
    b.start().await.unwrap();
    eventually("b to run counting tasks", || async { b.restorations().iter().any(|r| r.store == "views") }).await;
    produce(&bootstrap, 300, 300, &mut model).await;
    wait_for_output(&bootstrap, &model).await;
    // Every task a kept was opened once: the rebalance did not close and reopen it.
    let mut opened: BTreeMap<String, usize> = BTreeMap::new();
    for r in a.restorations().iter().filter(|r| r.store == "views") {
        *opened.entry(r.task.to_string()).or_default() += 1;
    }
    assert!(opened.values().all(|n| *n == 1), "a reopened tasks: {opened:?}");
    let kept: BTreeMap<String, i64> = a.all::<String, i64>("views").await.unwrap().into_iter().collect();
    assert!(!kept.is_empty() && kept.len() < model.len(), "a kept some keys, not all: {kept:?}");
    b.close(Duration::from_secs(20)).await.unwrap();
    a.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}
