//! Stream time on the runtime: a task reading two topics takes records in timestamp order
//! across them (waiting up to `max.task.idle.ms` for a partition with nothing fetched yet), and
//! a source's own timestamp extractor decides the records' time.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::StreamsConfig;
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_core::streams::timestamp::RecordView;
use rill_dsl::{Consumed, StreamsBuilder};

async fn produce(bootstrap: &str, topic: &str, records: &[(&str, i64, i64)]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    for (key, value, ts) in records {
        let rec = ProducerRecord {
            key: Some(Bytes::from(key.to_string())),
            value: Some(I64Serde.serialize(value).unwrap()),
            headers: Vec::new(),
            timestamp: Some(*ts),
        };
        p.send(topic, Some(0), rec).await.unwrap().await.unwrap();
    }
    p.close().await;
}

/// The first `n` records of `topic` partition 0 as (key, timestamp).
async fn read(bootstrap: &str, topic: &str, n: usize) -> Vec<(String, i64)> {
    let mut c =
        Consumer::new(ConsumerConfig::from_properties([("bootstrap.servers", bootstrap)]).unwrap()).await.unwrap();
    c.assign([(topic.to_string(), 0)]).unwrap();
    c.seek(&(topic.to_string(), 0), 0).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            out.push((StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap(), r.timestamp));
        }
        assert!(Instant::now() < deadline, "{topic}: {out:?}");
    }
    out
}

fn config(bootstrap: &str, app: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::from_properties([
        ("application.id", app),
        ("bootstrap.servers", bootstrap),
        ("state.dir", state.to_str().unwrap()),
        ("commit.interval.ms", "100"),
        ("max.task.idle.ms", "3000"),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_takes_the_earliest_record_across_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("left", 1), ("right", 1), ("merged", 1)]).await;
    produce(&bootstrap, "left", &[("l1", 1, 10), ("l2", 2, 20), ("l3", 3, 30)]).await;
    produce(&bootstrap, "right", &[("r1", 1, 5), ("r2", 2, 25), ("r3", 3, 26)]).await;
    let builder = StreamsBuilder::new();
    builder.stream_with(&["left", "right"], Consumed::with(StringSerde, I64Serde)).to("merged");
    let mut app = builder.build("merge").unwrap().into_streams(config(&bootstrap, "merge", &dir.path().join("s")));
    app.start().await.unwrap();
    let got = read(&bootstrap, "merged", 6).await;
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["r1", "l1", "l2", "r2", "r3", "l3"], "timestamp order across the two topics: {got:?}");
    app.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_extractor_sets_the_records_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("events", 1), ("timed", 1)]).await;
    // The value is the event time; the record's own timestamp is ignored.
    produce(&bootstrap, "events", &[("a", 1_000, 7), ("b", 2_000, 8)]).await;
    let event_time = |r: &RecordView<'_>, _: i64| {
        r.value.and_then(|v| v.first_chunk::<8>()).map(|b| i64::from_be_bytes(*b)).unwrap_or(-1)
    };
    let builder = StreamsBuilder::new();
    builder
        .stream_with(&["events"], Consumed::with(StringSerde, I64Serde).with_timestamp_extractor(event_time))
        .to("timed");
    let mut app = builder.build("timed").unwrap().into_streams(config(&bootstrap, "timed", &dir.path().join("s")));
    app.start().await.unwrap();
    assert_eq!(read(&bootstrap, "timed", 2).await, [("a".to_string(), 1_000), ("b".to_string(), 2_000)]);
    app.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}
