//! Error handlers of the streams runtime: by default a record that cannot be deserialized or
//! processed stops the application (Kafka Streams' log-and-fail); with log_and_continue it is
//! skipped, and with a dead-letter topic it lands there with the reason in its headers. An output
//! record the producer refuses stops the application unless `production.exception.handler` says
//! to skip it.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::error::{Result, StreamsError};
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig, StreamsState, ThreadFailure};
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_core::streams::topology::Topology;

/// Doubles values; a negative value is a processing error.
struct Double;

impl Processor<String, i64, String, i64> for Double {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) -> Result<()> {
        if r.value < 0 {
            return Err(StreamsError::processing(ctx.name(), format_args!("negative value {}", r.value)));
        }
        let v = r.value * 2;
        ctx.forward(r.with_value(v))
    }
}

fn topology() -> Topology {
    let mut t = Topology::new();
    t.add_source("numbers", &["numbers"], StringSerde, I64Serde)
        .unwrap()
        .add_processor("double", || Double, &["numbers"])
        .unwrap()
        .add_sink("doubled", "doubled", StringSerde, I64Serde, &["double"])
        .unwrap();
    t
}

async fn setup(dir: &std::path::Path) -> (Broker, String) {
    let broker = Broker::embedded(dir.join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("numbers", 1), ("doubled", 1), ("dead-letters", 1)]).await;
    // Good values, a value of 3 bytes (not an i64) and a negative one.
    let p = Producer::new(ProducerConfig::new(&bootstrap)).await.unwrap();
    let values: Vec<(&str, Bytes)> = vec![
        ("a", I64Serde.serialize(&1).unwrap()),
        ("bad-bytes", Bytes::from_static(b"xyz")),
        ("b", I64Serde.serialize(&2).unwrap()),
        ("negative", I64Serde.serialize(&-5).unwrap()),
        ("c", I64Serde.serialize(&3).unwrap()),
    ];
    for (k, v) in values {
        let rec = ProducerRecord { key: Some(Bytes::from(k)), value: Some(v), headers: Vec::new(), timestamp: None };
        p.send("numbers", Some(0), rec).await.unwrap().await.unwrap();
    }
    p.close().await;
    (broker, bootstrap)
}

fn app(bootstrap: &str, state: &std::path::Path, extra: &[(&str, &str)]) -> KafkaStreams {
    let mut props = vec![
        ("application.id", "errors"),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", state.to_str().unwrap()),
    ];
    props.extend_from_slice(extra);
    KafkaStreams::new(topology(), StreamsConfig::from_properties(props).unwrap())
}

async fn read(bootstrap: &str, topic: &str, n: usize) -> Vec<PolledRecord> {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("group.id", "reader"),
            ("isolation.level", "read_committed"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    c.assign([(topic.to_string(), 0)]).unwrap();
    c.seek(&(topic.to_string(), 0), 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "{topic}: {} of {n} records", out.len());
        out.extend(c.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

fn header(r: &PolledRecord, name: &str) -> String {
    let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()).unwrap_or_default();
    String::from_utf8(v.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_stops_the_application_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut a = app(&bootstrap, &dir.path().join("state"), &[]);
    a.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.state() != StreamsState::Error {
        assert!(Instant::now() < deadline, "the application kept running past a bad record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = a.close(Duration::from_secs(10)).await.unwrap_err().to_string();
    assert!(e.contains("source numbers") && e.contains("I64Serde"), "{e}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_continue_skips_bad_records_into_the_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut a = app(
        &bootstrap,
        &dir.path().join("state"),
        &[
            ("deserialization.exception.handler", "log_and_continue"),
            ("processing.exception.handler", "log_and_continue"),
            ("errors.dead.letter.queue.topic.name", "dead-letters"),
        ],
    );
    a.start().await.unwrap();
    let doubled = read(&bootstrap, "doubled", 3).await;
    let got: Vec<(String, i64)> = doubled
        .iter()
        .map(|r| {
            (
                StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap(),
                I64Serde.deserialize(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![("a".into(), 2), ("b".into(), 4), ("c".into(), 6)]);
    let dead = read(&bootstrap, "dead-letters", 2).await;
    assert_eq!(dead[0].key.as_deref(), Some(&b"bad-bytes"[..]));
    assert_eq!(header(&dead[0], "__streams.errors.exception"), "deserialization");
    assert_eq!(header(&dead[0], "__streams.errors.offset"), "1");
    assert_eq!(dead[1].key.as_deref(), Some(&b"negative"[..]));
    assert_eq!(header(&dead[1], "__streams.errors.exception"), "processing");
    assert!(header(&dead[1], "__streams.errors.message").contains("negative value -5"));
    assert!(matches!(a.state(), StreamsState::Running | StreamsState::Rebalancing), "{:?}", a.state());
    a.close(Duration::from_secs(10)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_thread_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut a = app(&bootstrap, &dir.path().join("state"), &[]);
    a.set_uncaught_exception_handler(ThreadFailure::ReplaceThread);
    a.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The bad record fails every thread that reaches it; each is replaced and the instance stays up.
    while a.replaced_threads() < 2 {
        assert!(Instant::now() < deadline, "no thread was replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(a.state(), StreamsState::Running | StreamsState::Rebalancing), "{:?}", a.state());
    let _ = a.close(Duration::from_secs(10)).await;
    broker.shutdown().await.unwrap();
}

/// Adds a record whose key is too large for a producer with `max.request.size=1000`.
async fn add_oversized(bootstrap: &str) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let rec = ProducerRecord {
        key: Some(Bytes::from("k".repeat(4000))),
        value: Some(I64Serde.serialize(&4).unwrap()),
        headers: Vec::new(),
        timestamp: None,
    };
    p.send("numbers", Some(0), rec).await.unwrap().await.unwrap();
    let rec = ProducerRecord {
        key: Some(Bytes::from("d")),
        value: Some(I64Serde.serialize(&5).unwrap()),
        headers: Vec::new(),
        timestamp: None,
    };
    p.send("numbers", Some(0), rec).await.unwrap().await.unwrap();
    p.close().await;
}

const SKIP_INPUT_ERRORS: [(&str, &str); 3] = [
    ("deserialization.exception.handler", "log_and_continue"),
    ("processing.exception.handler", "log_and_continue"),
    ("producer.max.request.size", "1000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_record_that_cannot_be_sent_stops_the_application_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    add_oversized(&bootstrap).await;
    let mut a = app(&bootstrap, &dir.path().join("state"), &SKIP_INPUT_ERRORS);
    a.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.state() != StreamsState::Error {
        assert!(Instant::now() < deadline, "the application kept running past an output it could not send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = a.close(Duration::from_secs(10)).await.unwrap_err().to_string();
    assert!(e.contains("MESSAGE_TOO_LARGE"), "{e}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_handler_can_skip_an_output_record_that_cannot_be_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    add_oversized(&bootstrap).await;
    let mut props = SKIP_INPUT_ERRORS.to_vec();
    props.push(("production.exception.handler", "log_and_continue"));
    let mut a = app(&bootstrap, &dir.path().join("state"), &props);
    a.start().await.unwrap();
    let keys: Vec<String> = read(&bootstrap, "doubled", 4)
        .await
        .iter()
        .map(|r| StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d"], "the oversized output was skipped, the rest went out");
    assert!(matches!(a.state(), StreamsState::Running | StreamsState::Rebalancing), "{:?}", a.state());
    a.close(Duration::from_secs(10)).await.unwrap();
    broker.shutdown().await.unwrap();
}
