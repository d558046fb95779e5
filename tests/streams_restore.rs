//! Restoration: a task that moves to another instance resumes from a store rebuilt from its
//! changelog, and an instance restarted on its state directory restores only what its
//! checkpoints do not cover (after a clean close: nothing). Interactive queries read the stores.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_dsl::{Materialized, StreamsBuilder};

fn app(bootstrap: &str, state: &std::path::Path) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("visits")
        .group_by(|_, page| page.clone())
        .count_with(Materialized::as_("views").persistent())
        .to_stream()
        .to("page-views");
    let built = builder.build("restore").unwrap();
    let config = StreamsConfig::from_properties([
        ("application.id", "restore"),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", state.to_str().unwrap()),
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
        let page = format!("/page/{}", i % 13);
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

/// Wait until every page's last count read_committed from `page-views` is the model's, and
/// check each count came exactly once, in order.
async fn check_output(bootstrap: &str, model: &BTreeMap<String, i64>) {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("group.id", "checker"),
            ("isolation.level", "read_committed"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    c.assign((0..2).map(|p| ("page-views".to_string(), p))).unwrap();
    c.seek_to(&[("page-views".to_string(), 0), ("page-views".to_string(), 1)], true).await.unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let page = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            seen.entry(page).or_default().push(I64Serde.deserialize(r.value.as_deref().unwrap()).unwrap());
        }
        if model.iter().all(|(p, n)| seen.get(p).and_then(|v| v.last()) == Some(n)) {
            break;
        }
        assert!(Instant::now() < deadline, "page-views never reached the model: {seen:?}");
    }
    for (page, counts) in &seen {
        assert_eq!(counts, &(1..=model[page]).collect::<Vec<_>>(), "{page}");
    }
}

async fn setup(dir: &std::path::Path) -> (Broker, String) {
    let broker = Broker::embedded(dir.join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("visits", 2), ("page-views", 2)]).await;
    (broker, bootstrap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_moving_to_another_instance_resumes_from_its_restored_store() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut model = BTreeMap::new();
    produce(&bootstrap, 0, 200, &mut model).await;
    let mut first = app(&bootstrap, &dir.path().join("state-a"));
    first.start().await.unwrap();
    check_output(&bootstrap, &model).await;

    // A second instance joins: the group splits the tasks, and what moves is restored there.
    let mut second = app(&bootstrap, &dir.path().join("state-b"));
    second.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let moved = loop {
        let moved: Vec<_> = second.restorations().into_iter().filter(|r| r.store == "views").collect();
        if !moved.is_empty() {
            break moved;
        }
        assert!(Instant::now() < deadline, "no counting task moved to the second instance");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    produce(&bootstrap, 200, 200, &mut model).await;
    check_output(&bootstrap, &model).await;
    assert!(
        moved.iter().any(|r| r.stats.records > 0 && r.stats.from == 0),
        "moved stores restore from the start: {moved:?}"
    );
    second.close(Duration::from_secs(20)).await.unwrap();
    first.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_its_state_restores_nothing_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut model = BTreeMap::new();
    produce(&bootstrap, 0, 300, &mut model).await;
    let mut a = app(&bootstrap, &dir.path().join("state"));
    a.start().await.unwrap();
    check_output(&bootstrap, &model).await;
    a.close(Duration::from_secs(20)).await.unwrap();

    let mut b = app(&bootstrap, &dir.path().join("state"));
    b.start().await.unwrap();
    produce(&bootstrap, 300, 100, &mut model).await;
    check_output(&bootstrap, &model).await;
    let r: Vec<_> = b.restorations().into_iter().filter(|r| r.store == "views").collect();
    assert_eq!(r.len(), 2, "both counting tasks opened: {r:?}");
    for x in &r {
        assert_eq!(x.stats.records, 0, "the checkpoint covers the whole changelog: {x:?}");
        assert!(x.stats.from > 0, "restoration started at the checkpoint: {x:?}");
    }
    // Interactive queries read the local stores.
    let page = "/page/3".to_string();
    assert_eq!(b.get::<String, i64>("views", page.clone()).await.unwrap(), Some(model[&page]));
    assert_eq!(b.get::<String, i64>("views", "/nowhere".to_string()).await.unwrap(), None);
    let all: BTreeMap<String, i64> = b.all::<String, i64>("views").await.unwrap().into_iter().collect();
    assert_eq!(all, model);
    assert!(b.get::<String, String>("views", page).await.is_err(), "a store asked for with the wrong types");
    b.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}
