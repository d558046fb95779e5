//! Exactly-once under crashes: two application instances (child processes), two stream threads
//! each, eight input partitions, a count through a repartition topic in a change-logged RocksDB
//! store. While input flows, instances are killed with SIGKILL and restarted on their state at
//! seeded moments. At the end the output topic, read read_committed, holds for every item the
//! counts 1, 2, ..., n exactly once each (nothing missing, nothing twice), and the store's
//! changelog ends at the model's counts. Under at_least_once the same run may repeat counts and
//! overshoot (work redone after a crash counts again), but never loses one.
//!
//! The seed is printed; `RILL_TEST_SEED=<seed>` replays one (where a kill lands depends on
//! timing). `RILL_STREAMS_SEEDS=<n>` sets how many seeds the exactly-once test covers (default 2).
//!
//! The instances are this test binary run again with `RILL_STREAMS_CHILD` set: the
//! `instance_process` test is then the application, and does nothing otherwise.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_broker::Broker;
use rill_core::client::{Client, ClientConfig};
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::streams::runtime::StreamsConfig;
use rill_core::streams::serde::{I64Serde, Serde, StringSerde};
use rill_dsl::{Materialized, StreamsBuilder};

const CHILD_ENV: &str = "RILL_STREAMS_CHILD";
const PARTITIONS: i32 = 8;
const ITEMS: usize = 40;
const APP: &str = "eos-faults";

/// The application: count input values (items) through a repartition topic.
#[test]
fn instance_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, state_dir, guarantee] = parts[..] else { panic!("bad {CHILD_ENV}: {spec}") };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("items-in")
            .group_by(|_, item| item.clone())
            .count_with(Materialized::as_("counts").persistent())
            .to_stream()
            .to("counts-out");
        let built = builder.build(&app_id(guarantee)).unwrap();
        let config = StreamsConfig::from_properties([
            ("application.id", app_id(guarantee).as_str()),
            ("bootstrap.servers", bootstrap),
            ("processing.guarantee", guarantee),
            ("num.stream.threads", "2"),
            ("commit.interval.ms", "100"),
            ("state.dir", state_dir),
            ("consumer.session.timeout.ms", "6000"),
            ("consumer.heartbeat.interval.ms", "500"),
        ])
        .unwrap();
        let mut app = built.into_streams(config);
        app.start().await.unwrap();
        println!("instance started");
        // Runs until killed (or until the parent's stdin closes, for a clean stop).
        tokio::task::spawn_blocking(|| {
            let mut buf = String::new();
            let _ = std::io::stdin().read_line(&mut buf);
        })
        .await
        .unwrap();
        app.close(Duration::from_secs(20)).await.unwrap();
    });
}

fn app_id(guarantee: &str) -> String {
    format!("{APP}-{guarantee}")
}

struct Instance {
    child: Option<Child>,
    spec: String,
}

impl Instance {
    fn start(bootstrap: &str, state: std::path::PathBuf, guarantee: &str) -> Self {
        let spec = format!("{bootstrap}|{}|{guarantee}", state.display());
        let mut i = Self { child: None, spec };
        i.spawn();
        i
    }

    fn spawn(&mut self) {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["instance_process", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &self.spec)
            .env("RILL_LOG", std::env::var("RILL_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn an application instance");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let status = c.wait().unwrap();
            assert!(status.success(), "instance exited with {status}");
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Read `topic` read_committed from the start until every key's last value is `model`'s (or
/// more, under at-least-once); every value read per key, in order.
async fn read_until(
    bootstrap: &str,
    topic: &str,
    model: &BTreeMap<String, i64>,
    exact: bool,
) -> BTreeMap<String, Vec<i64>> {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("group.id", "checker"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let n = Client::connect(ClientConfig::new(bootstrap))
        .await
        .unwrap()
        .metadata(Some(&[topic.to_string()]), false)
        .await
        .unwrap()
        .topics[0]
        .partitions
        .len();
    c.assign((0..n as i32).map(|p| (topic.to_string(), p))).unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let k = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            let Some(v) = r.value.as_deref() else { continue };
            seen.entry(k).or_default().push(I64Serde.deserialize(v).unwrap());
        }
        let done = model.iter().all(|(k, want)| {
            seen.get(k).and_then(|v| v.last()).is_some_and(|last| if exact { last == want } else { last >= want })
        });
        if done {
            return seen;
        }
        assert!(Instant::now() < deadline, "{topic}: not at the model after 120 s");
    }
}

async fn run(seed: u64, guarantee: &str) {
    eprintln!("streams_eos_faults: {guarantee} seed {seed} (replay with RILL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path().join("broker")).await.unwrap();
    let bootstrap = broker.bootstrap();
    common::create_topics(&bootstrap, &[("items-in", PARTITIONS), ("counts-out", PARTITIONS)]).await;

    let mut instances: Vec<Instance> =
        (0..2).map(|i| Instance::start(&bootstrap, dir.path().join(format!("state-{i}")), guarantee)).collect();
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await.unwrap();
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let rounds = 12;
    let mut kills = 0;
    for round in 0..rounds {
        let mut sent = Vec::new();
        for i in 0..rng.gen_range(50..200) {
            let item = format!("item-{}", rng.gen_range(0..ITEMS));
            *model.entry(item.clone()).or_insert(0) += 1;
            let rec = ProducerRecord {
                key: Some(Bytes::from(format!("user-{round}-{i}"))),
                value: Some(Bytes::from(item)),
                headers: Vec::new(),
                timestamp: None,
            };
            sent.push(producer.send("items-in", None, rec).await.unwrap());
        }
        for d in sent {
            d.await.unwrap();
        }
        if rng.gen_bool(0.5) {
            let victim = rng.gen_range(0..instances.len());
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..600))).await;
            instances[victim].kill9();
            kills += 1;
            instances[victim].spawn();
        } else {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        }
    }
    producer.close().await;
    let exact = guarantee == "exactly_once_v2";
    let seen = read_until(&bootstrap, "counts-out", &model, exact).await;
    for (item, want) in &model {
        let got = &seen[item];
        if exact {
            let expected: Vec<i64> = (1..=*want).collect();
            assert_eq!(got, &expected, "seed {seed}: {item}: each count exactly once, in order");
        } else {
            for n in 1..=*want {
                assert!(got.contains(&n), "seed {seed}: {item}: count {n} was lost");
            }
        }
    }
    // The store, through its changelog (compacted, read committed), ends at the model.
    let changelog = format!("{}-counts-changelog", app_id(guarantee));
    let store = read_until(&bootstrap, &changelog, &model, exact).await;
    if exact {
        let last: BTreeMap<String, i64> = store.iter().map(|(k, v)| (k.clone(), *v.last().unwrap())).collect();
        assert_eq!(last, model, "seed {seed}: the store's changelog");
    }
    for i in &mut instances {
        i.stop();
    }
    eprintln!(
        "streams_eos_faults: {guarantee} seed {seed}: {kills} kills, {} items, {} inputs: ok",
        model.len(),
        model.values().sum::<i64>()
    );
    broker.shutdown().await.unwrap();
}

fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("RILL_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n: u64 = std::env::var("RILL_STREAMS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    (0..n).map(|i| base.wrapping_mul(7919).wrapping_add(i)).collect()
}

/// One test, so that its runs do not compete for the machine with each other.
#[test]
fn exactly_once_and_at_least_once_with_killed_instances() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for seed in seeds(2) {
        rt.block_on(run(seed, "exactly_once_v2"));
    }
    for seed in seeds(1) {
        rt.block_on(run(seed, "at_least_once"));
    }
}
