//! A foreign-key join on the real broker: orders (3 partitions, order id -> "product id:qty")
//! joined with products (2 partitions, product id -> name), inner and left, in one application.
//! The tables are not co-partitioned; each internal topic takes its side's partition count. The
//! updates (new orders, a product renamed, an order moved to another product, a product and an
//! order deleted) race through the two sub-topologies in whatever order the tasks run them, and
//! the results must settle on the join of the final tables.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::client::{Client, ClientConfig};
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::StreamsConfig;
use rill_core::streams::serde::{Serde, StringSerde};
use rill_dsl::StreamsBuilder;

type Table = BTreeMap<String, String>;

async fn produce(bootstrap: &str, topic: &str, records: &[(String, Option<String>)]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let mut sent = Vec::new();
    for (k, v) in records {
        let rec = ProducerRecord {
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
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

/// Apply `records` to `table` (a tombstone deletes).
/// Keyed rows to produce (`None`: a tombstone).
type Rows = Vec<(String, Option<String>)>;

fn apply(table: &mut Table, records: &[(String, Option<String>)]) {
    for (k, v) in records {
        match v {
            Some(v) => table.insert(k.clone(), v.clone()),
            None => table.remove(k),
        };
    }
}

/// The join of the final tables, as the results must settle.
fn expected(orders: &Table, products: &Table, left: bool) -> Table {
    orders
        .iter()
        .filter_map(|(o, v)| {
            let product = products.get(v.split(':').next().unwrap_or_default());
            match (product, left) {
                (Some(name), _) => Some((o.clone(), format!("{v}/{name}"))),
                (None, true) => Some((o.clone(), format!("{v}/null"))),
                (None, false) => None,
            }
        })
        .collect()
}

/// Read `topic` into a table until it equals `want`, or fail after a deadline.
async fn settle(reader: &mut Consumer, got: &mut Table, want: &Table, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while got != want {
        assert!(Instant::now() < deadline, "{what}: the results never settled:\n got {got:?}\nwant {want:?}");
        for r in reader.poll(Duration::from_millis(200)).await.unwrap() {
            let key = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            match r.value.as_deref() {
                Some(v) => got.insert(key, StringSerde.deserialize(v).unwrap()),
                None => got.remove(&key),
            };
        }
    }
}

async fn reader(bootstrap: &str, topic: &str) -> Consumer {
    let config = ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("group.id", &format!("{topic}-reader")),
        ("auto.offset.reset", "earliest"),
    ])
    .unwrap();
    let mut c = Consumer::new(config).await.unwrap();
    c.subscribe([topic.to_string()]).unwrap();
    c
}

fn rows(pairs: impl IntoIterator<Item = (String, Option<String>)>) -> Rows {
    pairs.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_joins_settle_on_the_join_of_the_final_tables_across_partition_counts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker(&dir.path().join("broker")).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("orders", 3), ("products", 2), ("inner-out", 2), ("left-out", 1)]).await;

    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders");
    let products = builder.table::<String, String>("products");
    let product_of = |o: &String| o.split(':').next().unwrap_or_default().to_string();
    orders.named("inner").join_fk(&products, product_of, |o, p| format!("{o}/{p}")).to_stream().to("inner-out");
    orders
        .named("left")
        .left_join_fk(&products, product_of, |o, p| format!("{o}/{}", p.map_or("null", String::as_str)))
        .to_stream()
        .to("left-out");
    let config = StreamsConfig::from_properties([
        ("application.id", "fk"),
        ("bootstrap.servers", bootstrap.as_str()),
        ("state.dir", dir.path().join("state").to_str().unwrap()),
        ("commit.interval.ms", "100"),
    ])
    .unwrap();
    let mut app = builder.build("fk").unwrap().into_streams(config);
    app.start().await.unwrap();

    // Each internal topic is partitioned like its side: registrations like products, responses
    // like orders.
    let plan = app.topic_plan().unwrap();
    let client = Client::connect(ClientConfig::new(bootstrap.as_str())).await.unwrap();
    for (topic, n) in [
        ("fk-inner-subscription-registration-topic", 2),
        ("fk-inner-subscription-response-topic", 3),
        ("fk-left-subscription-registration-topic", 2),
        ("fk-left-subscription-response-topic", 3),
    ] {
        assert_eq!(plan.partitions[topic], n, "{topic}");
        let md = client.metadata(Some(&[topic.to_string()]), false).await.unwrap();
        assert_eq!(md.topics[0].partitions.len(), n as usize, "{topic} as created");
    }

    let (mut order_table, mut product_table) = (Table::new(), Table::new());
    let mut inner = reader(&bootstrap, "inner-out").await;
    let mut left = reader(&bootstrap, "left-out").await;
    let (mut got_inner, mut got_left) = (Table::new(), Table::new());
    // Products p0..p4; orders reference p0..p5 (p5 never exists).
    let phases: Vec<(&str, Rows)> = vec![
        ("products", rows((0..5).map(|i| (format!("p{i}"), Some(format!("product {i}")))))),
        ("orders", rows((0..30).map(|i| (format!("o{i}"), Some(format!("p{}:{i}", i % 6)))))),
        ("products", rows([("p1".to_string(), Some("renamed".to_string())), ("p0".to_string(), None)])),
        (
            "orders",
            rows([
                ("o2".to_string(), Some("p3:2".to_string())),  // moved from p2
                ("o3".to_string(), Some("p5:3".to_string())),  // to a product that never exists
                ("o5".to_string(), Some("p1:55".to_string())), // from nowhere to p1
                ("o7".to_string(), None),
                ("o8".to_string(), Some("p2:8".to_string())), // same product, new quantity
            ]),
        ),
        (
            "products",
            rows([("p5".to_string(), Some("late".to_string())), ("p2".to_string(), Some("again".to_string()))]),
        ),
    ];
    for (topic, records) in &phases {
        produce(&bootstrap, topic, records).await;
        apply(if *topic == "orders" { &mut order_table } else { &mut product_table }, records);
        // Settle every other phase only: the rest race with the next phase's updates.
        if topic == &"products" {
            settle(&mut inner, &mut got_inner, &expected(&order_table, &product_table, false), "inner").await;
            settle(&mut left, &mut got_left, &expected(&order_table, &product_table, true), "left").await;
        }
    }
    assert!(got_inner.len() < got_left.len(), "orders of p0 have a left result only");

    inner.close().await.unwrap();
    left.close().await.unwrap();
    app.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}
