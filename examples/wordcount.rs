//! Word count, the main job: a streams application counting words in lines of text, exactly
//! once, printing counts as they change.
//!
//! `cargo run --release --example wordcount` starts a broker inside this process, feeds it text,
//! runs the topology and prints each count update as it is committed. With
//! `-- --bootstrap HOST:PORT` the same application runs against a standalone `rill broker` (or
//! any Kafka cluster) instead:
//!
//! ```sh
//! target/release/rill broker --data-dir ./rill-data --listen 127.0.0.1:9092 &
//! cargo run --release --example wordcount -- --bootstrap 127.0.0.1:9092
//! ```
//!
//! The topology (`describe()` prints it): lines -> flat_map_values(split into words) ->
//! group_by(word) (through the repartition topic `wordcount-...-repartition`) -> count (a
//! change-logged RocksDB store) -> to_stream -> `word-counts`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill::broker::Broker;
use rill::core::client::{Admin, Client, ClientConfig, NewTopic};
use rill::core::consumer::{Consumer, ConsumerConfig};
use rill::core::producer::{Producer, ProducerConfig};
use rill::core::records::ProducerRecord;
use rill::core::streams::runtime::StreamsConfig;
use rill::core::streams::serde::{I64Serde, Serde};
use rill::dsl::{Materialized, StreamsBuilder};

/// A program hosting a broker installs Rill's allocator (see `rill::broker::alloc`).
#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

const TEXT: &str = "\
the quick brown fox jumps over the lazy dog
all streams lead to kafka
hello kafka streams
join kafka summit
the fox and the dog are friends now
streams of words flow into counts
every word counted exactly once
";

fn words(line: String) -> Vec<String> {
    line.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap_arg = match args.as_slice() {
        [] => None,
        [flag, addr] if flag == "--bootstrap" => Some(addr.clone()),
        _ => anyhow::bail!("usage: wordcount [--bootstrap HOST:PORT]"),
    };
    let dir = tempfile::tempdir()?;
    let embedded = match &bootstrap_arg {
        Some(_) => None,
        None => Some(Broker::embedded(dir.path().join("broker")).await?),
    };
    let bootstrap = match (&bootstrap_arg, &embedded) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) => b.bootstrap(),
        (None, None) => unreachable!("one of them is set"),
    };
    println!("broker: {bootstrap}{}", if embedded.is_some() { " (embedded)" } else { "" });

    // A fresh run id keeps reruns against a standalone broker apart.
    let run = std::process::id();
    let (input, output, app_id) =
        (format!("text-lines-{run}"), format!("word-counts-{run}"), format!("wordcount-{run}"));
    let client = Client::connect(ClientConfig::new(&bootstrap)).await?;
    let topics = [&input, &output].map(|t| NewTopic {
        name: t.to_string(),
        partitions: 2,
        replication_factor: -1,
        configs: BTreeMap::new(),
    });
    Admin::new(&client).create_topics(&topics, false).await.context("creating the input and output topics")?;

    let builder = StreamsBuilder::new();
    builder
        .stream::<(), String>(&input)
        .flat_map_values(words)
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_("counts").persistent())
        .to_stream()
        .to(&output);
    let built = builder.build(&app_id)?;
    println!("{}", built.topology.describe());
    let config = StreamsConfig::from_properties([
        ("application.id", app_id.as_str()),
        ("bootstrap.servers", bootstrap.as_str()),
        ("processing.guarantee", "exactly_once_v2"),
        ("state.dir", dir.path().join("state").to_str().context("a UTF-8 temporary path")?),
    ])?;
    let mut app = built.into_streams(config);
    app.start().await?;

    // Feed the text, a line at a time, and keep the model of what the counts must become.
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    for line in TEXT.lines() {
        for w in words(line.to_string()) {
            *model.entry(w).or_insert(0) += 1;
        }
        let record = ProducerRecord { value: Some(Bytes::from(line.to_string())), ..Default::default() };
        producer.send(&input, None, record).await?.await?;
    }
    producer.close().await;

    // Print counts as they are committed, until they match the model.
    let mut reader = Consumer::new(ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("group.id", "wordcount-printer"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
    ])?)
    .await?;
    reader.subscribe([output.clone()])?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while counts != model {
        anyhow::ensure!(Instant::now() < deadline, "counts did not reach the expected values in 120 s");
        for r in reader.poll(Duration::from_millis(200)).await? {
            let word = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let n = I64Serde.deserialize(r.value.as_deref().unwrap_or_default())?;
            println!("{word:>10}: {n}");
            counts.insert(word, n);
        }
    }
    reader.close().await?;
    app.close(Duration::from_secs(30)).await?;
    println!("{} distinct words, {} in all: every count as expected", counts.len(), counts.values().sum::<i64>());
    if let Some(b) = embedded {
        b.shutdown().await?;
    }
    Ok(())
}
