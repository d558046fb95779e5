//! A stream over a topic pattern: every matching topic is read, and a matching topic created
//! while the application runs joins without a restart.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{Serde, StringSerde};
use rill_dsl::{Consumed, StreamsBuilder};

fn app(bootstrap: &str, state: &std::path::Path) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream_pattern("logs-.*", Consumed::with(StringSerde, StringSerde))
        .map_values(|line: String| line.to_uppercase())
        .to("all-logs");
    let built = builder.build("pattern").unwrap();
    let config = StreamsConfig::from_properties([
        ("application.id", "pattern"),
        ("bootstrap.servers", bootstrap),
        ("state.dir", state.to_str().unwrap()),
        ("commit.interval.ms", "100"),
        // Look for new matching topics often.
        ("consumer.metadata.max.age.ms", "300"),
    ])
    .unwrap();
    built.into_streams(config)
}

async fn produce(bootstrap: &str, topic: &str, lines: &[&str]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    for line in lines {
        let rec = ProducerRecord {
            key: Some(Bytes::from(topic.to_string())),
            value: Some(Bytes::from(line.to_string())),
            headers: Vec::new(),
            timestamp: None,
        };
        p.send(topic, None, rec).await.unwrap().await.unwrap();
    }
    p.close().await;
}

/// Read `all-logs` until it holds `want`.
async fn wait_for(c: &mut Consumer, seen: &mut BTreeSet<String>, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.iter().all(|w| seen.contains(*w)) {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert(StringSerde.deserialize(r.value.as_deref().unwrap()).unwrap());
        }
        assert!(Instant::now() < deadline, "all-logs has {seen:?}, not all of {want:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_topic_is_read_including_one_created_later() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("logs-web", 2), ("logs-db", 1), ("metrics", 1), ("all-logs", 1)]).await;
    produce(&bootstrap, "logs-web", &["get /", "get /a"]).await;
    produce(&bootstrap, "logs-db", &["select 1"]).await;
    produce(&bootstrap, "metrics", &["cpu 5"]).await;
    let mut a = app(&bootstrap, &dir.path().join("state"));
    a.start().await.unwrap();

    let mut c = Consumer::new(ConsumerConfig::from_properties([("bootstrap.servers", bootstrap.as_str())]).unwrap())
        .await
        .unwrap();
    c.assign([("all-logs".to_string(), 0)]).unwrap();
    c.seek(&("all-logs".to_string(), 0), 0).unwrap();
    let mut seen = BTreeSet::new();
    wait_for(&mut c, &mut seen, &["GET /", "GET /A", "SELECT 1"]).await;

    common::create_topics(&bootstrap, &[("logs-cache", 3)]).await;
    produce(&bootstrap, "logs-cache", &["hit k1", "miss k2", "hit k3"]).await;
    wait_for(&mut c, &mut seen, &["HIT K1", "MISS K2", "HIT K3"]).await;
    assert!(!seen.contains("CPU 5"), "a topic the pattern does not match is not read");
    a.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_matching_nothing_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("all-logs", 1)]).await;
    let mut a = app(&bootstrap, &dir.path().join("state"));
    let e = a.start().await.unwrap_err().to_string();
    assert!(e.contains("no topic matches the source pattern logs-.*"), "{e}");
    broker.shutdown().await.unwrap();
}
