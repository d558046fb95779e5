//! Joins on the real broker: page views (keyed by view id, re-keyed by user) enriched with a
//! user-profile table through a repartition topic that takes the table's partition count, and
//! the clear error a join of topics with different partition counts fails to start with.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{Serde, StringSerde};
use rill_dsl::{Consumed, Materialized, StreamsBuilder};

fn config(app: &str, bootstrap: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::from_properties([
        ("application.id", app),
        ("bootstrap.servers", bootstrap),
        ("state.dir", state.to_str().unwrap()),
        ("commit.interval.ms", "100"),
    ])
    .unwrap()
}

/// views (view id -> "user|page") re-keyed by user, left-joined with profiles (user -> name).
fn enrich(bootstrap: &str, state: &std::path::Path) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    let profiles = builder.table_with::<String, String>(
        "profiles",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_("profiles-store"),
    );
    builder
        .stream::<String, String>("views")
        .select_key(|_, v| v.split('|').next().unwrap_or_default().to_string())
        .named("views-by-user")
        .left_join(&profiles, |view, name| {
            let page = view.split('|').nth(1).unwrap_or_default().to_string();
            format!("{page} by {}", name.unwrap_or_else(|| "unknown".into()))
        })
        .to("enriched");
    let built = builder.build("enrich").unwrap();
    built.into_streams(config("enrich", bootstrap, state))
}

async fn produce(bootstrap: &str, topic: &str, records: &[(&str, &str)]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let mut sent = Vec::new();
    for (k, v) in records {
        let rec = ProducerRecord {
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: Vec::new(),
            timestamp: None,
        };
        sent.push(p.send(topic, None, rec).await.unwrap());
    }
    for d in sent {
        d.await.unwrap();
    }
    p.close().await;
}

/// Poll until the profile store answers `name` for `user` on this instance.
async fn wait_for_profile(app: &KafkaStreams, user: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get::<String, String>("profiles-store", user.to_string()).await.unwrap().as_deref() != Some(name) {
        assert!(Instant::now() < deadline, "the profile of {user} never became {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read `enriched` until `n` records came, or fail after a deadline.
async fn read_enriched(reader: &mut Consumer, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} enriched views came: {got:?}", got.len());
        for r in reader.poll(Duration::from_millis(200)).await.unwrap() {
            let key = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            got.push((key, StringSerde.deserialize(r.value.as_deref().unwrap()).unwrap()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_views_are_enriched_with_the_profile_current_when_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(&dir.path().join("broker")).await;
    let bootstrap = broker.bootstrap();
    // The views topic has fewer partitions than the table: the repartition topic before the join
    // takes the table's count, as Kafka Streams makes it.
    common::create_topics(&bootstrap, &[("views", 2), ("profiles", 4), ("enriched", 4)]).await;
    let users: Vec<(String, String)> = (0..8).map(|i| (format!("u{i}"), format!("user {i}"))).collect();
    let pairs: Vec<(&str, &str)> = users.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    produce(&bootstrap, "profiles", &pairs).await;

    let mut app = enrich(&bootstrap, &dir.path().join("state"));
    app.start().await.unwrap();
    for (u, name) in &users {
        wait_for_profile(&app, u, name).await;
    }
    let views: Vec<(String, String)> =
        (0..40).map(|i| (format!("v{i}"), format!("u{}|/page/{}", i % 10, i % 3))).collect();
    let pairs: Vec<(&str, &str)> = views.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    produce(&bootstrap, "views", &pairs).await;

    let mut reader = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap.as_str()),
            ("group.id", "enriched-reader"),
            ("auto.offset.reset", "earliest"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    reader.subscribe(["enriched".to_string()]).unwrap();
    let got: BTreeSet<(String, String)> = read_enriched(&mut reader, views.len()).await.into_iter().collect();
    let want: BTreeSet<(String, String)> = (0..40)
        .map(|i| {
            let user = i % 10;
            let name = if user < 8 { format!("user {user}") } else { "unknown".to_string() };
            (format!("u{user}"), format!("/page/{} by {name}", i % 3))
        })
        .collect();
    assert_eq!(got, want);

    // A profile update changes what later views find, not what earlier ones got.
    produce(&bootstrap, "profiles", &[("u1", "renamed")]).await;
    wait_for_profile(&app, "u1", "renamed").await;
    produce(&bootstrap, "views", &[("v100", "u1|/late")]).await;
    let late = read_enriched(&mut reader, 1).await;
    assert_eq!(late, vec![("u1".to_string(), "/late by renamed".to_string())]);

    reader.close().await.unwrap();
    app.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_of_topics_with_different_partition_counts_fails_to_start_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(&dir.path().join("broker")).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("orders", 2), ("customers", 3), ("out", 1)]).await;
    let builder = StreamsBuilder::new();
    let customers = builder.table::<String, String>("customers");
    builder.stream::<String, String>("orders").join(&customers, |o, c| format!("{o} for {c}")).to("out");
    let mut app =
        builder.build("copart").unwrap().into_streams(config("copart", &bootstrap, &dir.path().join("state")));
    let e = app.start().await.unwrap_err().to_string();
    assert!(
        e.contains("co-partitioned") && e.contains("customers (3), orders (2)"),
        "the error names the topics and their counts: {e}"
    );
    broker.shutdown().await.unwrap();
}
