//! Stream-table enrichment: page views joined with user profiles, each view printed with the
//! profile its user had when the view was processed.
//!
//! `cargo run --release --example enrich` starts a broker inside this process, writes a few
//! profiles to a table topic, runs the topology and prints every enriched view; with
//! `-- --bootstrap HOST:PORT` the same application runs against a standalone `rill broker` (or
//! any Kafka cluster):
//!
//! ```sh
//! target/release/rill broker --data-dir ./rill-data --listen 127.0.0.1:9092 &
//! cargo run --release --example enrich -- --bootstrap 127.0.0.1:9092
//! ```
//!
//! The topology (`describe()` prints it): `user-profiles` -> table (a change-logged RocksDB
//! store); `page-views` (user -> page) -> left_join(profiles) -> `enriched-views`. Both topics
//! have the same partition count (the join checks it at start) and the same keys, so a view
//! and its user's profile are in the same task.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill::broker::Broker;
use rill::core::client::{Admin, Client, ClientConfig, NewTopic};
use rill::core::consumer::{Consumer, ConsumerConfig};
use rill::core::producer::{Producer, ProducerConfig};
use rill::core::records::ProducerRecord;
use rill::core::streams::runtime::StreamsConfig;
use rill::core::streams::serde::StringSerde;
use rill::dsl::{Consumed, Materialized, StreamsBuilder};

/// A program hosting a broker installs Rill's allocator (see `rill::broker::alloc`).
#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

/// user -> "name, city".
const PROFILES: &[(&str, &str)] =
    &[("alice", "Alice, Lisbon"), ("bob", "Bob, Oslo"), ("carol", "Carol, Nairobi"), ("dan", "Dan, Lima")];

/// user -> page viewed (erin has no profile).
const VIEWS: &[(&str, &str)] = &[
    ("alice", "/home"),
    ("bob", "/pricing"),
    ("erin", "/home"),
    ("carol", "/docs/joins"),
    ("alice", "/cart"),
    ("dan", "/home"),
    ("bob", "/checkout"),
];

async fn produce(bootstrap: &str, topic: &str, records: &[(&str, &str)]) -> anyhow::Result<()> {
    let producer = Producer::new(ProducerConfig::new(bootstrap)).await?;
    for (k, v) in records {
        let record = ProducerRecord {
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            ..Default::default()
        };
        producer.send(topic, None, record).await?.await?;
    }
    producer.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap_arg = match args.as_slice() {
        [] => None,
        [flag, addr] if flag == "--bootstrap" => Some(addr.clone()),
        _ => anyhow::bail!("usage: enrich [--bootstrap HOST:PORT]"),
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
    let (profiles, views, enriched, app_id) = (
        format!("user-profiles-{run}"),
        format!("page-views-{run}"),
        format!("enriched-views-{run}"),
        format!("enrich-{run}"),
    );
    let client = Client::connect(ClientConfig::new(&bootstrap)).await?;
    let topics = [&profiles, &views, &enriched].map(|t| NewTopic {
        name: t.to_string(),
        partitions: 2,
        replication_factor: -1,
        configs: [("cleanup.policy".to_string(), if *t == profiles { "compact" } else { "delete" }.to_string())]
            .into_iter()
            .collect(),
    });
    Admin::new(&client).create_topics(&topics, false).await.context("creating the topics")?;
    produce(&bootstrap, &profiles, PROFILES).await.context("writing the profiles")?;

    let builder = StreamsBuilder::new();
    let table = builder.table_with::<String, String>(
        &profiles,
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_("profiles").persistent(),
    );
    builder
        .stream::<String, String>(&views)
        .left_join(&table, |page, profile| format!("{page} viewed by {}", profile.as_deref().unwrap_or("(no profile)")))
        .to(&enriched);
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

    // A view joins the profile its user has when it is processed: let the table load first.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (user, profile) in PROFILES {
        while app.get::<String, String>("profiles", user.to_string()).await?.as_deref() != Some(*profile) {
            anyhow::ensure!(Instant::now() < deadline, "the profile table did not load in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    produce(&bootstrap, &views, VIEWS).await.context("writing the page views")?;

    let mut reader = Consumer::new(ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("group.id", "enrich-printer"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
    ])?)
    .await?;
    reader.subscribe([enriched.clone()])?;
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < VIEWS.len() {
        anyhow::ensure!(Instant::now() < deadline, "only {seen} of {} enriched views came in 120 s", VIEWS.len());
        for r in reader.poll(Duration::from_millis(200)).await? {
            let user = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let view = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            println!("{user:>6}: {view}");
            seen += 1;
        }
    }
    reader.close().await?;
    app.close(Duration::from_secs(30)).await?;
    println!("{seen} page views enriched");
    if let Some(b) = embedded {
        b.shutdown().await?;
    }
    Ok(())
}
