//! GlobalKTables on the real broker: every instance holds every key of a multi-partition global
//! topic (updates and deletes made while running included), tasks read the global store, a
//! restart replays only the tail past the global checkpoint, and records that do not
//! deserialize follow the deserialization handler.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::error::Result;
use rill_core::streams::global::GlobalStoreReader;
use rill_core::streams::processor::{Processor, ProcessorContext};
use rill_core::streams::record::Record;
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_dsl::{Consumed, Materialized, StreamsBuilder};

const STORE: &str = "rates-store";

/// Prices each order (value: a currency) with the currency's rate from the global table; -1
/// when it has none.
struct Price(Option<GlobalStoreReader<String, i64>>);

impl Processor<String, String, String, i64> for Price {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        self.0 = Some(ctx.global_store(STORE)?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<()> {
        let rate = self.0.as_ref().expect("init ran").get(&r.value)?.unwrap_or(-1);
        ctx.forward(r.with_value(rate))
    }
}

fn app(bootstrap: &str, state: &Path, extra: &[(&str, &str)]) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    let rates = builder.global_table_with::<String, i64>(
        "rates",
        Consumed::with(StringSerde, I64Serde),
        Materialized::as_(STORE).persistent(),
    );
    assert_eq!(rates.store_name(), STORE);
    builder.stream::<String, String>("orders").process(|| Price(None), &[]).to("priced");
    let built = builder.build("global").unwrap();
    let mut props = vec![
        ("application.id", "global"),
        ("bootstrap.servers", bootstrap),
        ("state.dir", state.to_str().unwrap()),
        ("commit.interval.ms", "200"),
        ("consumer.session.timeout.ms", "6000"),
        ("consumer.heartbeat.interval.ms", "500"),
    ];
    props.extend_from_slice(extra);
    built.into_streams(StreamsConfig::from_properties(props).unwrap())
}

/// Send `(key, value)` records (`None`: a tombstone) to `topic`, waiting for every ack.
async fn produce(bootstrap: &str, topic: &str, records: &[(String, Option<Bytes>)]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    let mut sent = Vec::new();
    for (k, v) in records {
        let rec = ProducerRecord {
            key: Some(Bytes::from(k.clone())),
            value: v.clone(),
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

/// Apply rate updates to `model` and produce them.
async fn rates(bootstrap: &str, model: &mut BTreeMap<String, i64>, updates: &[(String, Option<i64>)]) {
    let mut records = Vec::new();
    for (k, v) in updates {
        match v {
            Some(v) => model.insert(k.clone(), *v),
            None => model.remove(k),
        };
        records.push((k.clone(), v.map(|v| I64Serde.serialize(&v).unwrap())));
    }
    produce(bootstrap, "rates", &records).await;
}

async fn global_contents(app: &KafkaStreams) -> BTreeMap<String, i64> {
    app.all::<String, i64>(STORE).await.unwrap().into_iter().collect()
}

/// Wait until `app`'s global store holds exactly `model`.
async fn wait_for(app: &KafkaStreams, model: &BTreeMap<String, i64>, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = global_contents(app).await;
        if &got == model {
            return;
        }
        assert!(Instant::now() < deadline, "{who}: the global store never reached the model:\n{got:?}\n{model:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read `priced` until every order in `expected` has its price.
async fn check_priced(bootstrap: &str, expected: &BTreeMap<String, i64>) {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([("bootstrap.servers", bootstrap), ("group.id", "priced-checker")]).unwrap(),
    )
    .await
    .unwrap();
    let parts: Vec<(String, i32)> = (0..2).map(|p| ("priced".to_string(), p)).collect();
    c.assign(parts.clone()).unwrap();
    c.seek_to(&parts, true).await.unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while expected.keys().any(|k| !seen.contains_key(k)) {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let order = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            seen.insert(order, I64Serde.deserialize(r.value.as_deref().unwrap()).unwrap());
        }
        assert!(Instant::now() < deadline, "orders never all priced: {seen:?}");
    }
    for (order, price) in expected {
        assert_eq!(seen.get(order), Some(price), "{order}");
    }
    c.close().await.unwrap();
}

async fn setup(dir: &Path) -> (rill_broker::Broker, String) {
    let broker = common::embedded_broker(&dir.join("broker")).await;
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("rates", 3), ("orders", 2), ("priced", 2)]).await;
    (broker, bootstrap)
}

fn cur(i: usize) -> String {
    format!("cur-{i:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_holds_every_key_and_its_tasks_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let mut model = BTreeMap::new();
    let initial: Vec<(String, Option<i64>)> = (0..30).map(|i| (cur(i), Some(100 + i as i64))).collect();
    rates(&bootstrap, &mut model, &initial).await;

    let mut a = app(&bootstrap, &dir.path().join("state-a"), &[]);
    let mut b = app(&bootstrap, &dir.path().join("state-b"), &[]);
    a.start().await.unwrap();
    b.start().await.unwrap();
    // start() returns once the global stores caught up: no waiting needed.
    assert_eq!(global_contents(&a).await, model, "a bootstrapped every partition");
    assert_eq!(global_contents(&b).await, model, "b bootstrapped every partition");
    for x in [&a, &b] {
        let r = x.global_restorations();
        assert_eq!(r.len(), 3, "one per partition: {r:?}");
        assert_eq!(r.iter().map(|r| r.stats.records).sum::<u64>(), 30, "{r:?}");
        assert!(r.iter().all(|r| r.store == STORE && r.topic == "rates" && r.stats.from == 0), "{r:?}");
    }
    assert_eq!(a.get::<String, i64>(STORE, cur(7)).await.unwrap(), Some(107));

    // Tasks of both instances read the global store, whichever partition an order is in.
    let orders: Vec<(String, Option<Bytes>)> =
        (0..20).map(|i| (format!("order-{i}"), Some(Bytes::from(cur(i % 25))))).collect();
    produce(&bootstrap, "orders", &orders).await;
    let expected: BTreeMap<String, i64> = (0..20).map(|i| (format!("order-{i}"), 100 + (i % 25) as i64)).collect();
    check_priced(&bootstrap, &expected).await;

    // Updates, deletes and new keys made while running reach both instances.
    let changes: Vec<(String, Option<i64>)> = vec![
        (cur(1), Some(1)),
        (cur(2), None),
        (cur(29), None),
        (cur(40), Some(40)),
        (cur(41), Some(41)),
        (cur(1), Some(2)),
    ];
    rates(&bootstrap, &mut model, &changes).await;
    wait_for(&a, &model, "a").await;
    wait_for(&b, &model, "b").await;
    assert_eq!(b.get::<String, i64>(STORE, cur(2)).await.unwrap(), None, "deleted");
    // And tasks see the new values.
    let late = vec![
        ("order-late-1".to_string(), Some(Bytes::from(cur(1)))),
        ("order-late-2".to_string(), Some(Bytes::from(cur(2)))),
    ];
    produce(&bootstrap, "orders", &late).await;
    check_priced(&bootstrap, &BTreeMap::from([("order-late-1".to_string(), 2), ("order-late-2".to_string(), -1)]))
        .await;

    a.close(Duration::from_secs(20)).await.unwrap();
    b.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_only_the_tail_past_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let state = dir.path().join("state");
    let mut model = BTreeMap::new();
    let initial: Vec<(String, Option<i64>)> = (0..40).map(|i| (cur(i), Some(i as i64))).collect();
    rates(&bootstrap, &mut model, &initial).await;
    let mut first = app(&bootstrap, &state, &[]);
    first.start().await.unwrap();
    assert_eq!(global_contents(&first).await, model);
    let first_ends: BTreeMap<i32, i64> =
        first.global_restorations().into_iter().map(|r| (r.partition, r.stats.to)).collect();
    first.close(Duration::from_secs(20)).await.unwrap();
    let checkpoint = std::fs::read_to_string(state.join("global/global/.checkpoint")).unwrap();
    assert!(checkpoint.starts_with("0\n3\nrates 0 "), "Kafka's checkpoint layout:\n{checkpoint}");

    // While it is down: four updates, a delete and a new key.
    let tail: Vec<(String, Option<i64>)> = vec![
        (cur(3), Some(300)),
        (cur(4), Some(400)),
        (cur(5), None),
        (cur(6), Some(600)),
        (cur(3), Some(301)),
        (cur(50), Some(50)),
    ];
    rates(&bootstrap, &mut model, &tail).await;
    let mut second = app(&bootstrap, &state, &[]);
    second.start().await.unwrap();
    assert_eq!(global_contents(&second).await, model, "the store holds everything after the restart");
    let r = second.global_restorations();
    assert_eq!(r.iter().map(|r| r.stats.records).sum::<u64>(), 6, "only the tail is replayed: {r:?}");
    for x in &r {
        assert_eq!(x.stats.from, first_ends[&x.partition], "restoration starts at the checkpoint: {x:?}");
    }
    second.close(Duration::from_secs(20)).await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_deserialize_follow_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = setup(dir.path()).await;
    let good = |k: &str, v: i64| (k.to_string(), Some(I64Serde.serialize(&v).unwrap()));
    produce(&bootstrap, "rates", &[good("a", 1), ("b".to_string(), Some(Bytes::from_static(b"bad"))), good("c", 3)])
        .await;

    let mut failing = app(&bootstrap, &dir.path().join("state-fail"), &[]);
    let e = failing.start().await.unwrap_err().to_string();
    assert!(e.contains("KSTREAM-SOURCE"), "the default handler fails on the bad record: {e}");

    let mut skipping =
        app(&bootstrap, &dir.path().join("state-skip"), &[("deserialization.exception.handler", "log_and_continue")]);
    skipping.start().await.unwrap();
    let got = global_contents(&skipping).await;
    assert_eq!(got, BTreeMap::from([("a".to_string(), 1), ("c".to_string(), 3)]), "the bad record is skipped");
    skipping.close(Duration::from_secs(20)).await.unwrap();

    // A global topic that does not exist is named at start.
    let builder = StreamsBuilder::new();
    builder.global_table::<String, String>("nowhere");
    builder.stream::<String, String>("orders").to("priced");
    let config = StreamsConfig::from_properties([
        ("application.id", "global-missing"),
        ("bootstrap.servers", bootstrap.as_str()),
        ("state.dir", dir.path().join("state-missing").to_str().unwrap()),
    ])
    .unwrap();
    let mut missing = KafkaStreams::new(builder.build("global-missing").unwrap().topology, config);
    let e = missing.start().await.unwrap_err().to_string();
    assert!(e.contains("topic nowhere of global store nowhere-STATE-STORE-") && e.contains("create it"), "{e}");
    broker.shutdown().await.unwrap();
}
