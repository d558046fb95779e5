//! Exactly-once under crashes: two application instances (child processes), two stream threads
//! each, eight input partitions, a count through a repartition topic in a change-logged RocksDB
//! store. While input flows, instances are killed with SIGKILL and restarted on their state at
//! seeded moments. At the end the output topic, read read_committed, holds for every item the
//! counts 1, 2, ..., n exactly once each (nothing missing, nothing twice), and the store's
//! changelog ends at the model's counts. Under at_least_once the same run may repeat counts and
//! overshoot (work redone after a crash counts again), but never loses one.
//!
//! The same faults run over two more applications under exactly-once: a tumbling-window count
//! through a repartition topic (every window's counts exactly once), and a windowed
//! stream-stream join of two co-partitioned topics (every pair of records exactly once).
//!
//! On a cluster of three broker processes (replication factor 3 for every topic, internal ones
//! included), the count also runs with its instances killed and, in about two rounds in five, a
//! broker killed with SIGKILL mid-round and restarted 0.2-2 s later (`RILL_STREAMS_BROKER_KILLS=0`
//! leaves the broker kills out). Every instance must still stop cleanly at the end.
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
use rill_dsl::{JoinWindows, Materialized, StreamsBuilder, TimeWindows};

const CHILD_ENV: &str = "RILL_STREAMS_CHILD";
/// How long the outputs get to reach the model after the last round. A killed instance's open
/// transaction holds the last stable offset until the coordinator aborts it
/// (`transaction.timeout.ms`, 60 s, plus the abort check), and broker kills add elections and
/// rebalances on top: 120 s was not always enough on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(240);
const PARTITIONS: i32 = 8;
const ITEMS: usize = 40;
const APP: &str = "eos-faults";

/// Event times of the windowed and join applications start here (fixed, so windows are too).
const BASE_TIME: i64 = 1_700_000_000_000;
/// Window size of the windowed count.
const WINDOW_MS: i64 = 5_000;

/// Which application the instances run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Count items through a repartition topic.
    Count,
    /// Count items per 5-second tumbling window through a repartition topic.
    Windowed,
    /// Join two streams within an hour of each other.
    Join,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Windowed => "windowed",
            Kind::Join => "join",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "count" => Kind::Count,
            "windowed" => Kind::Windowed,
            "join" => Kind::Join,
            other => panic!("unknown kind {other}"),
        }
    }
}

fn build(builder: &StreamsBuilder, kind: Kind) {
    match kind {
        Kind::Count => {
            builder
                .stream::<String, String>("items-in")
                .group_by(|_, item| item.clone())
                .count_with(Materialized::as_("counts").persistent())
                .to_stream()
                .to("counts-out");
        }
        Kind::Windowed => {
            builder
                .stream::<String, String>("items-in")
                .group_by(|_, item| item.clone())
                .windowed_by(TimeWindows::of_size_and_grace(
                    Duration::from_millis(WINDOW_MS as u64),
                    Duration::from_secs(3600),
                ))
                .count_with(Materialized::as_("window-counts").persistent())
                .to_stream()
                .map(|w, n| (format!("{}@{}", w.key, w.window.start), n))
                .to("counts-out");
        }
        Kind::Join => {
            let left = builder.stream::<String, String>("left-in");
            let right = builder.stream::<String, String>("right-in");
            left.join_windowed(
                &right,
                |_, l, r| format!("{l}+{r}"),
                JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(3600)),
            )
            .to("joined-out");
        }
    }
}

/// The application: `kind`, as an instance of a group of two.
#[test]
fn instance_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [bootstrap, state_dir, guarantee, kind] = parts[..] else { panic!("bad {CHILD_ENV}: {spec}") };
    let kind = Kind::parse(kind);
    // The instance's own account on stderr (`RILL_LOG`, passed down by the parent).
    let filter = tracing_subscriber::EnvFilter::try_from_env("RILL_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let builder = StreamsBuilder::new();
        build(&builder, kind);
        let app = app_id(guarantee, kind);
        let built = builder.build(&app).unwrap();
        let config = StreamsConfig::from_properties([
            ("application.id", app.as_str()),
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

fn app_id(guarantee: &str, kind: Kind) -> String {
    format!("{APP}-{}-{guarantee}", kind.name())
}

struct Instance {
    child: Option<Child>,
    spec: String,
}

impl Instance {
    fn start(bootstrap: &str, state: std::path::PathBuf, guarantee: &str, kind: Kind) -> Self {
        let spec = format!("{bootstrap}|{}|{guarantee}|{}", state.display(), kind.name());
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
    let deadline = Instant::now() + CONVERGE;
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
        assert!(Instant::now() < deadline, "{topic}: not at the model after {CONVERGE:?}");
    }
}

/// Where the brokers run.
enum Brokers {
    /// One broker in this process.
    One(Broker),
    /// Three broker processes.
    Three { cluster: common::cluster_proc::ProcCluster },
}

async fn run(seed: u64, guarantee: &str, kind: Kind) {
    run_on(seed, guarantee, kind, false).await
}

async fn run_on(seed: u64, guarantee: &str, kind: Kind, three_brokers: bool) {
    let what = format!("{guarantee} {}{}", kind.name(), if three_brokers { " on 3 brokers" } else { "" });
    eprintln!("streams_eos_faults: {what} seed {seed} (replay with RILL_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut brokers = if three_brokers {
        let settings = ["default.replication.factor=3", "replica.lag.time.max.ms=10000"];
        let cluster = tokio::task::block_in_place(|| common::cluster_proc::ProcCluster::start(3, &settings));
        Brokers::Three { cluster }
    } else {
        Brokers::One(Broker::embedded(dir.path().join("broker")).await.unwrap())
    };
    let bootstrap = match &brokers {
        Brokers::One(b) => b.bootstrap(),
        Brokers::Three { cluster, .. } => cluster.bootstrap(),
    };
    let mut broker_kills = 0;
    common::create_topics(
        &bootstrap,
        &[
            ("items-in", PARTITIONS),
            ("counts-out", PARTITIONS),
            ("left-in", PARTITIONS),
            ("right-in", PARTITIONS),
            ("joined-out", PARTITIONS),
        ],
    )
    .await;

    let mut instances: Vec<Instance> =
        (0..2).map(|i| Instance::start(&bootstrap, dir.path().join(format!("state-{i}")), guarantee, kind)).collect();
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await.unwrap();
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut pairs = Pairs::default();
    let rounds = 12;
    let mut kills = 0;
    let mut seq = 0i64;
    for round in 0..rounds {
        let mut sent = Vec::new();
        for i in 0..rng.gen_range(50..200) {
            seq += 1;
            let time = BASE_TIME + seq * 37;
            let (topic, key, value) = match kind {
                Kind::Count | Kind::Windowed => {
                    let item = format!("item-{}", rng.gen_range(0..ITEMS));
                    let counted = match kind {
                        Kind::Windowed => format!("{item}@{}", (time / WINDOW_MS) * WINDOW_MS),
                        _ => item.clone(),
                    };
                    *model.entry(counted).or_insert(0) += 1;
                    ("items-in", format!("user-{round}-{i}"), item)
                }
                Kind::Join => {
                    let key = format!("k{}", rng.gen_range(0..ITEMS));
                    let left = rng.gen_bool(0.5);
                    let value = format!("{}{seq}", if left { "L" } else { "R" });
                    pairs.add(&key, left, &value);
                    (if left { "left-in" } else { "right-in" }, key, value)
                }
            };
            let rec = ProducerRecord {
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
                timestamp: Some(time),
            };
            sent.push(producer.send(topic, None, rec).await.unwrap());
        }
        if let Brokers::Three { cluster, .. } = &mut brokers {
            // While the round's records are in flight, a broker may die and come back: a
            // partition whose ISR was that broker alone is unavailable until it does, as in Kafka.
            if rng.gen_bool(0.4) && std::env::var("RILL_STREAMS_BROKER_KILLS").map_or(true, |v| v != "0") {
                let i = rng.gen_range(0..3);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
                tokio::task::block_in_place(|| cluster.kill9(i));
                broker_kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2000))).await;
                tokio::task::block_in_place(|| cluster.restart(i));
            }
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
    if kind == Kind::Join {
        let got = read_joined(&bootstrap, pairs.total()).await;
        assert_eq!(got, pairs.expected, "seed {seed}: every pair of records joined exactly once");
        for i in &mut instances {
            i.stop();
        }
        eprintln!("streams_eos_faults: {what} seed {seed}: {kills} kills, {} pairs: ok", pairs.total());
        if let Brokers::One(b) = brokers {
            b.shutdown().await.unwrap();
        }
        return;
    }
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
    let changelog = format!("{}-counts-changelog", app_id(guarantee, kind));
    if kind == Kind::Count {
        let store = read_until(&bootstrap, &changelog, &model, exact).await;
        if exact {
            let last: BTreeMap<String, i64> = store.iter().map(|(k, v)| (k.clone(), *v.last().unwrap())).collect();
            assert_eq!(last, model, "seed {seed}: the store's changelog");
        }
    }
    for i in &mut instances {
        i.stop();
    }
    eprintln!(
        "streams_eos_faults: {what} seed {seed}: {kills} instance kills, {broker_kills} broker kills, {} items, {} inputs: ok",
        model.len(),
        model.values().sum::<i64>()
    );
    if let Brokers::One(b) = brokers {
        b.shutdown().await.unwrap();
    }
}

/// The join's model: every left and right value per key, and the pairs they make.
#[derive(Default)]
struct Pairs {
    sides: BTreeMap<String, (Vec<String>, Vec<String>)>,
    expected: BTreeMap<(String, String), usize>,
}

impl Pairs {
    fn add(&mut self, key: &str, left: bool, value: &str) {
        let (l, r) = self.sides.entry(key.to_string()).or_default();
        let partners: Vec<String> = if left { r.clone() } else { l.clone() };
        for p in partners {
            let joined = if left { format!("{value}+{p}") } else { format!("{p}+{value}") };
            *self.expected.entry((key.to_string(), joined)).or_insert(0) += 1;
        }
        if left {
            l.push(value.to_string());
        } else {
            r.push(value.to_string());
        }
    }
    fn total(&self) -> usize {
        self.expected.values().sum()
    }
}

/// Read `joined-out` read_committed until `n` results came, then to the end: each (key, value)
/// with how often it came.
async fn read_joined(bootstrap: &str, n: usize) -> BTreeMap<(String, String), usize> {
    let mut c = Consumer::new(
        ConsumerConfig::from_properties([("bootstrap.servers", bootstrap), ("isolation.level", "read_committed")])
            .unwrap(),
    )
    .await
    .unwrap();
    let parts: Vec<(String, i32)> = (0..PARTITIONS).map(|p| ("joined-out".to_string(), p)).collect();
    c.assign(parts.clone()).unwrap();
    c.seek_to(&parts, true).await.unwrap();
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count < n {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let k = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            let v = StringSerde.deserialize(r.value.as_deref().unwrap()).unwrap();
            *got.entry((k, v)).or_insert(0) += 1;
            count += 1;
        }
        assert!(Instant::now() < deadline, "joined-out: {count} of {n} results after 120 s");
    }
    // Anything past the expected count is a duplicate: read to the committed end to see it.
    let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        let end = client
            .list_offset_isolated(
                "joined-out",
                p,
                rill_core::client::LATEST,
                rill_core::client::IsolationLevel::ReadCommitted,
            )
            .await
            .unwrap();
        ends.insert(p, end);
    }
    loop {
        let mut behind = false;
        for tp in &parts {
            behind |= c.position(tp).await.unwrap_or(0) < ends[&tp.1];
        }
        if !behind {
            break;
        }
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let k = StringSerde.deserialize(r.key.as_deref().unwrap()).unwrap();
            let v = StringSerde.deserialize(r.value.as_deref().unwrap()).unwrap();
            *got.entry((k, v)).or_insert(0) += 1;
        }
        assert!(Instant::now() < deadline, "joined-out: not at its end after 120 s");
    }
    got
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
        rt.block_on(run(seed, "exactly_once_v2", Kind::Count));
    }
    for seed in seeds(1) {
        rt.block_on(run(seed, "at_least_once", Kind::Count));
    }
    for seed in seeds(1) {
        rt.block_on(run(seed, "exactly_once_v2", Kind::Windowed));
        rt.block_on(run(seed, "exactly_once_v2", Kind::Join));
    }
}

/// The count under exactly-once on three broker processes, instances and brokers killed.
#[test]
fn exactly_once_on_three_brokers_with_killed_instances() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for seed in seeds(1) {
        rt.block_on(run_on(seed, "exactly_once_v2", Kind::Count, true));
    }
}
