//! The streams runtime end to end on an embedded broker: word count (a flat-map, a repartition
//! topic, a count in a change-logged store) under exactly_once_v2 and at_least_once. The
//! output, read read_committed, counts every word exactly as a model does; after the
//! application closes and starts again on the same state directory, counting goes on from the
//! restored store.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{I64Serde, Serde};
use rill_dsl::StreamsBuilder;

fn split(line: String) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn app(bootstrap: &str, state: &std::path::Path, guarantee: &str) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder
        .stream::<(), String>("lines")
        .flat_map_values(split)
        .group_by(|_, w| w.clone())
        .count()
        .to_stream()
        .to("counts");
    let built = builder.build("wc").unwrap();
    let config = StreamsConfig::from_properties([
        ("application.id", "wc"),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", guarantee),
        ("commit.interval.ms", "100"),
        ("state.dir", state.to_str().unwrap()),
        ("repartition.purge.interval.ms", "0"),
    ])
    .unwrap();
    built.into_streams(config)
}

async fn produce(bootstrap: &str, lines: &[String]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let mut sent = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let rec =
            ProducerRecord { key: None, value: Some(Bytes::from(l.clone())), headers: Vec::new(), timestamp: None };
        sent.push(p.send("lines", Some(i as i32 % 2), rec).await.unwrap());
    }
    for d in sent {
        d.await.unwrap();
    }
    p.close().await;
}

/// Read `counts` from the start until every word's last count is the model's; returns each
/// word's counts in order.
async fn read_counts(bootstrap: &str, model: &BTreeMap<String, i64>) -> BTreeMap<String, Vec<i64>> {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("group.id", "reader"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let parts: Vec<(String, i32)> = (0..2).map(|p| ("counts".to_string(), p)).collect();
    c.assign(parts).unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            let word = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let n = I64Serde.deserialize(r.value.as_ref().unwrap()).unwrap();
            seen.entry(word).or_default().push(n);
        }
        let last: BTreeMap<String, i64> = seen.iter().map(|(w, v)| (w.clone(), *v.last().unwrap())).collect();
        if &last == model {
            return seen;
        }
        assert!(Instant::now() < deadline, "counts after 60 s: {last:?}\nexpected {model:?}");
    }
}

fn lines(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("w{} w{} common", i % 7, i % 3)).collect()
}

fn model(lines: &[String]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        for w in l.split_whitespace() {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// The repartition topic keeps records until the application purges what it committed past
/// (Kafka Streams' configs: delete, infinite retention), and it does purge.
async fn check_repartition_purged(bootstrap: &str) {
    use rill_core::client::{Admin, Client, ClientConfig, EARLIEST};
    let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let md = client.metadata(None, false).await.unwrap();
    let topic = md
        .topics
        .iter()
        .find(|t| t.name.starts_with("wc-") && t.name.ends_with("-repartition"))
        .expect("a repartition topic")
        .name
        .clone();
    let configs = Admin::new(&client).describe_configs(&topic).await.unwrap();
    assert_eq!(configs.get("retention.ms").map(String::as_str), Some("-1"), "{configs:?}");
    assert_eq!(configs.get("cleanup.policy").map(String::as_str), Some("delete"), "{configs:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut start = 0;
        for p in 0..2 {
            start += client.list_offset(&topic, p, EARLIEST).await.unwrap();
        }
        if start > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} was never purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(guarantee: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path().join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("lines", 2)]).await;

    let first = lines(0, 60);
    produce(&bootstrap, &first).await;
    let mut a = app(&bootstrap, &dir.path().join("state"), guarantee);
    let states = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = states.clone();
    a.set_state_listener(move |new, old| s.lock().unwrap().push((old, new)));
    a.start().await.unwrap();
    let seen = read_counts(&bootstrap, &model(&first)).await;
    check_repartition_purged(&bootstrap).await;
    a.close(Duration::from_secs(30)).await.unwrap();
    let states = states.lock().unwrap().clone();
    use rill_core::streams::runtime::StreamsState::*;
    assert_eq!(states.first(), Some(&(Created, Rebalancing)), "{states:?}");
    assert!(states.contains(&(Rebalancing, Running)), "{states:?}");
    assert_eq!(&states[states.len() - 2..], &[(Running, PendingShutdown), (PendingShutdown, NotRunning)], "{states:?}");
    if guarantee == "exactly_once_v2" {
        for (w, counts) in &seen {
            let want: Vec<i64> = (1..=counts.len() as i64).collect();
            assert_eq!(counts, &want, "{w}: each count once, in order");
        }
    }

    // Start again on the same state: counting goes on from the restored store.
    let second = lines(60, 40);
    produce(&bootstrap, &second).await;
    let mut b = app(&bootstrap, &dir.path().join("state"), guarantee);
    b.start().await.unwrap();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    read_counts(&bootstrap, &model(&all)).await;
    b.close(Duration::from_secs(30)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_exactly_once_and_after_a_restart() {
    run("exactly_once_v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_at_least_once_and_after_a_restart() {
    run("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repartition_topic_gets_the_partition_count_the_program_asks_for() {
    use rill_core::client::{Client, ClientConfig};
    use rill_dsl::Repartitioned;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path().join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("lines", 2), ("counts", 5)]).await;
    let builder = StreamsBuilder::new();
    builder
        .stream::<(), String>("lines")
        .flat_map_values(split)
        .select_key(|_, w| w.clone())
        .repartition_with(Repartitioned::named("by-word").with_partitions(5))
        .group_by_key()
        .count()
        .to_stream()
        .to("counts");
    let config = StreamsConfig::from_properties([
        ("application.id", "wc5"),
        ("bootstrap.servers", bootstrap.as_str()),
        ("commit.interval.ms", "100"),
        ("state.dir", dir.path().join("state").to_str().unwrap()),
    ])
    .unwrap();
    let mut app = builder.build("wc5").unwrap().into_streams(config);
    app.start().await.unwrap();
    assert_eq!(app.topic_plan().unwrap().partitions["wc5-by-word-repartition"], 5);
    let client = Client::connect(ClientConfig::new(bootstrap.as_str())).await.unwrap();
    let md = client.metadata(Some(&["wc5-by-word-repartition".to_string()]), false).await.unwrap();
    assert_eq!(md.topics[0].partitions.len(), 5);
    let first = lines(0, 30);
    produce(&bootstrap, &first).await;
    let m = model(&first);
    let mut c = Consumer::new(ConsumerConfig::from_properties([("bootstrap.servers", bootstrap.as_str())]).unwrap())
        .await
        .unwrap();
    let parts: Vec<(String, i32)> = (0..5).map(|p| ("counts".to_string(), p)).collect();
    c.assign(parts.clone()).unwrap();
    c.seek_to(&parts, true).await.unwrap();
    let mut last = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last != m {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            let word = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            last.insert(word, I64Serde.deserialize(r.value.as_ref().unwrap()).unwrap());
        }
        assert!(Instant::now() < deadline, "counts {last:?}, want {m:?}");
    }
    app.close(Duration::from_secs(30)).await.unwrap();
    broker.shutdown().await.unwrap();
}
