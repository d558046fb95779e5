//! Seeded faults on a three-broker process cluster (`tests/common/cluster_proc.rs`).
//!
//! A topic with replication factor 3, `min.insync.replicas=2` and four partitions takes writes
//! from two idempotent producers (acks=all) and one transactional producer (commits some
//! transactions, aborts others), while a read_committed consumer reads all along. Faults drawn
//! from the seed hit the cluster meanwhile: SIGKILL of the current leader of a partition (then a
//! restart), SIGSTOP of a broker until it has dropped out of the ISRs, or further until it is
//! fenced (then SIGCONT), and a broker cut off from the other two until it is fenced (then
//! healed). Every fault waits for its effect in the metadata, never for a fixed time.
//!
//! Afterwards, with every broker up and every ISR full again, the history is checked
//! (`history/checker.rs`): no acknowledged write lost, no duplicate, no two records at one
//! offset (across the consumer's sessions, a final read_committed pass and a read_uncommitted
//! pass from each leader, and the offsets the producers' delivery reports gave), no aborted
//! record read, no committed transaction incomplete.
//!
//! Each seed is printed; `RILL_TEST_SEED=<seed>` replays one (faults and workload choices come
//! from the seed; where a fault lands in the brokers' work depends on timing).
//! `RILL_FAULT_SEEDS=<n>` sets how many seeds a run covers (default 4; `scripts/test` asks for
//! 20), one after another; a seed takes 6-16 s.
//! `RILL_FAULT_TXNS=0` leaves the transactional producer out. On a failure the brokers' logs
//! are printed (`RILL_LOG` sets their level); `RILL_CLUSTER_KEEP=1` keeps their directories.

#[path = "history/checker.rs"]
mod checker;
mod common;
#[path = "history/reader.rs"]
mod reader;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker::{Outcome, Read, Txn};
use common::cluster_proc::ProcCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_core::client::{Admin, Client, ClientConfig, IsolationLevel, Metadata, NewTopic, LATEST};
use rill_core::consumer::ConsumerConfig;
use rill_core::error::Error;
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::{decode_fetched, ProducerRecord};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 4;
/// How long the cluster gets to show a fault's effect, or to recover from it.
const CONVERGE: Duration = Duration::from_secs(30);

/// The seeds to run, one after another: two clusters at once on two cores starve each other's
/// heartbeats, and the controller then fences brokers that are only slow.
fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("RILL_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n: u64 = std::env::var("RILL_FAULT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    (0..n).map(|i| base.wrapping_mul(1000).wrapping_add(i)).collect()
}

/// Whether the transactional producer runs (`RILL_FAULT_TXNS=0` leaves it out).
fn transactions() -> bool {
    std::env::var("RILL_FAULT_TXNS").map_or(true, |v| v != "0")
}

#[test]
fn faults() {
    for seed in seeds() {
        eprintln!("cluster_faults: seed {seed} (replay with RILL_TEST_SEED={seed})");
        let started = Instant::now();
        let problems = run(seed);
        eprintln!("cluster_faults: seed {seed} done in {:.1?}", started.elapsed());
        assert!(problems.is_empty(), "seed {seed}: {} anomalies:\n{}", problems.len(), problems.join("\n"));
    }
}

/// Everything the workload threads record.
#[derive(Default)]
struct History {
    txns: Vec<Txn>,
    /// Acknowledged idempotent writes: value -> (partition, offset) from the delivery report.
    acked: HashMap<String, (i32, i64)>,
    sessions: Vec<Vec<Read>>,
}

type Shared = Arc<Mutex<History>>;

fn run(seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = ProcCluster::start(
        3,
        &["broker.session.timeout.ms=4000", "replica.lag.time.max.ms=1500", "transaction.max.timeout.ms=60000"],
    );
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap);
    cluster.wait_until("the topic with full ISRs", CONVERGE, |md| all_in_sync(md, 3));

    let stop = Arc::new(AtomicBool::new(false));
    let history: Shared = Arc::default();
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for k in 0..2 {
        let (b, s, h, r) = (bootstrap.clone(), stop.clone(), history.clone(), rng.gen());
        workers.push(thread(move || idempotent_producer(b, k, r, s, h)));
    }
    let txn_seed: u64 = rng.gen();
    if transactions() {
        let (b, s, h) = (bootstrap.clone(), stop.clone(), history.clone());
        workers.push(thread(move || transactional_producer(b, seed, txn_seed, s, h)));
    }
    let reader = {
        let (b, s, h) = (bootstrap.clone(), stop.clone(), history.clone());
        thread(move || read_sessions(b, s, h))
    };

    let faults = inject_faults(&mut cluster, &mut rng);
    eprintln!("cluster_faults: seed {seed}: faults [{}]", faults.join(", "));
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().expect("a workload thread panicked");
    }
    reader.join().expect("the reader panicked");

    // Every broker is up and connected again: wait for the ISRs, resolve any transaction left
    // open, then read everything.
    cluster.wait_until("full ISRs after the faults", CONVERGE * 2, |md| all_in_sync(md, 3));
    let final_read = block_on(async {
        if transactions() {
            ready_txn_producer(&bootstrap, seed).await.close().await;
        }
        read_committed_everything(&bootstrap).await
    });
    let uncommitted = block_on(read_uncommitted_everything(bootstrap.clone()));

    let h = history.lock().unwrap();
    let count = |o: Outcome| h.txns.iter().filter(|t| t.outcome == o).count();
    eprintln!(
        "cluster_faults: seed {seed}: {} writes and transactions ({} acknowledged/committed, {} aborted, {} unknown); {} records read at the end; {} reader sessions read {} records",
        h.txns.len(),
        count(Outcome::Committed),
        count(Outcome::Aborted),
        count(Outcome::Unknown),
        final_read.len(),
        h.sessions.len(),
        h.sessions.iter().map(|s| s.len()).sum::<usize>()
    );
    let mut problems = checker::check(&h.txns, &h.sessions, &final_read);
    // The offsets delivery reports gave, and every record at every offset read uncommitted.
    let mut at: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for r in &uncommitted {
        at.insert((r.partition, r.offset), &r.value);
    }
    for r in final_read.iter().chain(h.sessions.iter().flatten()) {
        match at.get(&(r.partition, r.offset)) {
            Some(v) if *v == r.value => {}
            other => problems.push(format!(
                "inconsistent offsets: {}@{} read committed as {:?}, uncommitted as {other:?}",
                r.partition, r.offset, r.value
            )),
        }
    }
    for (value, &(p, o)) in &h.acked {
        match at.get(&(p, o)) {
            Some(v) if v == value => {}
            other => problems.push(format!("acknowledged {value:?} at {p}@{o}, but the log holds {other:?} there")),
        }
    }
    if !problems.is_empty() {
        cluster.keep_evidence();
    }
    problems
}

/// Every partition of [`TOPIC`] has a leader and `n` in-sync replicas.
fn all_in_sync(md: &Metadata, n: usize) -> bool {
    md.brokers.len() == n
        && md.topics.iter().find(|t| t.name == TOPIC).is_some_and(|t| {
            t.partitions.len() == PARTITIONS as usize && t.partitions.iter().all(|p| p.leader >= 0 && p.isr.len() == n)
        })
}

/// Broker `id` is fenced (no longer listed), leads nothing and is out of every ISR it shared.
fn fenced(md: &Metadata, id: i32) -> bool {
    !md.brokers.contains_key(&id) && out_of_isrs(md, id)
}

/// Broker `id` leads no partition of [`TOPIC`] and is in no ISR that has another member.
fn out_of_isrs(md: &Metadata, id: i32) -> bool {
    md.topics
        .iter()
        .find(|t| t.name == TOPIC)
        .is_some_and(|t| t.partitions.iter().all(|p| p.leader != id && (!p.isr.contains(&id) || p.isr.len() == 1)))
}

/// Draw two or three faults from `rng` and apply each, waiting for its effect and for the
/// cluster to take the broker back. Returns what was done.
fn inject_faults(cluster: &mut ProcCluster, rng: &mut StdRng) -> Vec<String> {
    let mut done = Vec::new();
    for _ in 0..rng.gen_range(2..=3) {
        // Load before the fault (shaping the workload, not waiting for anything).
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..800)));
        match rng.gen_range(0..3) {
            0 => {
                let p = rng.gen_range(0..PARTITIONS);
                let Some(leader) = cluster.leader_of(TOPIC, p) else { continue };
                let i = cluster.index(leader);
                cluster.kill9(i);
                // Every partition it led moves to another in-sync replica, except one whose ISR
                // had shrunk to the killed broker alone: that one stays offline until the
                // restart (unclean election is off), as Kafka's would.
                cluster.wait_until("a new leader after kill -9", CONVERGE, |md| {
                    md.topics.iter().any(|t| {
                        t.name == TOPIC
                            && t.partitions
                                .iter()
                                .all(|q| (q.leader >= 0 && q.leader != leader) || (q.leader < 0 && q.isr == [leader]))
                    })
                });
                cluster.restart(i);
                done.push(format!("kill -9 broker {leader} (leader of {p}), restart"));
            }
            1 => {
                let i = rng.gen_range(0..3);
                let id = cluster.nodes[i].id;
                let until_fenced = rng.gen_bool(0.5);
                cluster.stop(i);
                if until_fenced {
                    cluster.wait_until("a stopped broker fenced", CONVERGE, |md| fenced(md, id));
                } else {
                    cluster.wait_until("a stopped broker out of the ISRs", CONVERGE, |md| {
                        md.topics.iter().any(|t| {
                            t.name == TOPIC && t.partitions.iter().all(|p| p.leader == id || !p.isr.contains(&id))
                        })
                    });
                }
                cluster.cont(i);
                done.push(format!(
                    "SIGSTOP broker {id} until {}, SIGCONT",
                    if until_fenced { "fenced" } else { "out of ISRs" }
                ));
            }
            _ => {
                let i = rng.gen_range(0..3);
                let id = cluster.nodes[i].id;
                cluster.isolate(i);
                cluster.wait_until("an isolated broker fenced", CONVERGE, |md| fenced(md, id));
                cluster.heal(i);
                done.push(format!("isolate broker {id} until fenced, heal"));
            }
        }
        let n = cluster.nodes.len();
        cluster.wait_until("every broker back", CONVERGE, |md| md.brokers.len() == n);
    }
    // Some load after the last fault.
    std::thread::sleep(Duration::from_millis(rng.gen_range(200..800)));
    done
}

fn create_topic(bootstrap: &str) {
    let bootstrap = bootstrap.to_string();
    block_on(async move {
        let client = Client::connect(ClientConfig::new(bootstrap)).await.expect("connect");
        let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
        let topic = NewTopic { name: TOPIC.into(), partitions: PARTITIONS, replication_factor: 3, configs };
        Admin::new(&client).create_topics(&[topic], false).await.expect("create the topic");
    })
}

/// A named thread running `f` on a runtime of its own (clients' futures need not be `Send`).
fn thread(f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::spawn(f)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
}

/// Idempotent producer `k` (acks=all): unique values to seeded partitions, at most 64 records
/// unanswered, until `stop`; then every delivery report is awaited.
fn idempotent_producer(bootstrap: String, k: usize, seed: u64, stop: Arc<AtomicBool>, history: Shared) {
    block_on(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let config = ProducerConfig::from_properties([
            ("bootstrap.servers", bootstrap.as_str()),
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("retry.backoff.ms", "50"),
            ("request.timeout.ms", "3000"),
            ("delivery.timeout.ms", "120000"),
        ])
        .unwrap();
        let producer = Producer::new(config).await.expect("an idempotent producer");
        let mut pending = VecDeque::new();
        let mut n = 0;
        let settle = |value: String, r: Result<rill_core::producer::RecordMetadata, Error>| {
            let mut h = history.lock().unwrap();
            let outcome = match r {
                Ok(md) => {
                    h.acked.insert(value.clone(), (md.partition, md.offset));
                    Outcome::Committed
                }
                Err(_) => Outcome::Unknown,
            };
            h.txns.push(Txn { values: vec![value], outcome });
        };
        while !stop.load(Ordering::Acquire) {
            let value = format!("i{k}-{n}");
            n += 1;
            let rec = ProducerRecord { value: Some(Bytes::from(value.clone())), ..Default::default() };
            match producer.send(TOPIC, Some(rng.gen_range(0..PARTITIONS)), rec).await {
                Ok(f) => pending.push_back((value, f)),
                Err(e) => settle(value, Err(e)),
            }
            if pending.len() >= 64 {
                let (value, f) = pending.pop_front().unwrap();
                settle(value, f.await);
            }
        }
        for (value, f) in pending {
            settle(value, f.await);
        }
        producer.close().await;
    })
}

async fn txn_producer(bootstrap: &str, seed: u64) -> Result<Producer, Error> {
    let id = format!("faults-{seed}");
    Producer::new(
        ProducerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("transactional.id", id.as_str()),
            ("transaction.timeout.ms", "30000"),
            ("linger.ms", "2"),
            ("max.block.ms", "10000"),
            ("delivery.timeout.ms", "30000"),
            ("request.timeout.ms", "3000"),
        ])
        .unwrap(),
    )
    .await
}

/// A transactional producer with its transactions initialised (which aborts whatever an earlier
/// instance left open), retried while the cluster recovers.
async fn ready_txn_producer(bootstrap: &str, seed: u64) -> Producer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = match txn_producer(bootstrap, seed).await {
            Ok(p) => match p.init_transactions().await {
                Ok(()) => return p,
                Err(e) => {
                    p.close().await;
                    e
                }
            },
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "a transactional producer could not start: {e}");
        // The cluster is electing or a broker is down: try again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Transactions of one to four records over seeded partitions until `stop`: about two in three
/// commit, the rest abort. A transaction that fails is recorded as unknown and its producer
/// replaced (the next instance resolves it).
fn transactional_producer(bootstrap: String, seed: u64, rng_seed: u64, stop: Arc<AtomicBool>, history: Shared) {
    block_on(async move {
        let mut rng = StdRng::seed_from_u64(rng_seed);
        let mut producer = None;
        let mut t = 0;
        while !stop.load(Ordering::Acquire) {
            let p = match producer.take() {
                Some(p) => p,
                None => ready_txn_producer(&bootstrap, seed).await,
            };
            let values: Vec<String> = (0..rng.gen_range(1..=4)).map(|i| format!("t{t}-{i}")).collect();
            t += 1;
            let (outcome, ok) = one_txn(&p, &mut rng, &values).await;
            history.lock().unwrap().txns.push(Txn { values, outcome });
            if ok {
                producer = Some(p);
            } else {
                p.close().await;
            }
        }
        if let Some(p) = producer {
            p.close().await;
        }
    })
}

async fn one_txn(p: &Producer, rng: &mut StdRng, values: &[String]) -> (Outcome, bool) {
    if p.begin_transaction().is_err() {
        return (Outcome::Aborted, false);
    }
    for v in values {
        let rec = ProducerRecord { value: Some(Bytes::from(v.clone())), ..Default::default() };
        if p.send(TOPIC, Some(rng.gen_range(0..PARTITIONS)), rec).await.is_err() {
            return (Outcome::Unknown, false);
        }
    }
    if rng.gen_bool(0.65) {
        match p.commit_transaction().await {
            Ok(()) => (Outcome::Committed, true),
            Err(_) => (Outcome::Unknown, false),
        }
    } else {
        match p.abort_transaction().await {
            Ok(()) => (Outcome::Aborted, true),
            Err(_) => (Outcome::Unknown, false),
        }
    }
}

fn consumer_config(bootstrap: &str) -> ConsumerConfig {
    ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("isolation.level", "read_committed"),
        ("request.timeout.ms", "3000"),
    ])
    .unwrap()
}

/// A read_committed consumer (assigned, no group) polling every partition until `stop`; a
/// session that fails is recorded and a new one continues where it left off.
fn read_sessions(bootstrap: String, stop: Arc<AtomicBool>, history: Shared) {
    block_on(async move {
        let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        while !stop.load(Ordering::Acquire) {
            let mut session = Vec::new();
            let _ = reader::read_session(consumer_config(&bootstrap), TOPIC, &mut next, &stop, &mut session).await;
            history.lock().unwrap().sessions.push(session);
        }
    })
}

/// A complete read_committed pass up to each partition's high watermark (every transaction is
/// resolved by now, so the last stable offset is there too).
async fn read_committed_everything(bootstrap: &str) -> Vec<Read> {
    let client = Client::connect(ClientConfig::new(bootstrap.to_string())).await.unwrap();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        ends.insert(p, client.list_offset(TOPIC, p, LATEST).await.expect("the end offset"));
    }
    let positions = match reader::read_to(consumer_config(bootstrap), TOPIC, &ends, Duration::from_secs(60)).await {
        Ok(reads) => return reads,
        Err(positions) => positions,
    };
    // Stuck below an end: say what each partition's leader answers, then fail.
    let mut stable = BTreeMap::new();
    for (p, at) in &positions {
        let got =
            client.fetch_many_isolated(TOPIC, &[(*p, *at)], 1 << 20, 1 << 20, 100, IsolationLevel::ReadCommitted).await;
        let got = got.map(|v| {
            v.into_iter()
                .map(|(p, r)| (p, r.map(|d| (d.high_watermark, d.last_stable_offset, d.records.len()))))
                .collect::<Vec<_>>()
        });
        eprintln!("partition {p} at {at}: a fetch gets {got:?}");
    }
    for addr in bootstrap.split(',') {
        let md = Client::connect(ClientConfig::new(addr)).await.unwrap().metadata(None, false).await;
        let view: Vec<_> = md
            .iter()
            .flat_map(|md| md.topics.iter().filter(|t| t.name == TOPIC))
            .flat_map(|t| t.partitions.iter().map(|p| (p.partition, p.leader, p.leader_epoch, p.isr.clone())))
            .collect();
        eprintln!("{addr} says (partition, leader, epoch, isr): {view:?}");
    }
    for p in 0..PARTITIONS {
        stable.insert(p, client.list_offset_isolated(TOPIC, p, LATEST, IsolationLevel::ReadCommitted).await);
    }
    panic!(
        "the final read_committed pass did not reach the high watermarks {ends:?}: positions {positions:?}, \
         last stable offsets {stable:?} (a transaction left open?)"
    );
}

/// Every data record of every partition, read uncommitted from its leader.
async fn read_uncommitted_everything(bootstrap: String) -> Vec<Read> {
    let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let end = client.list_offset(TOPIC, p, LATEST).await.expect("the end offset");
        let mut offset = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while offset < end {
            assert!(Instant::now() < deadline, "{TOPIC}-{p}: read {offset} of {end}");
            let got = client.fetch(TOPIC, p, offset, 1 << 20, 100).await.expect("fetch");
            let fetched = decode_fetched(got.records, offset, &[]).expect("decode");
            if let Some(next) = fetched.next_offset {
                offset = offset.max(next);
            }
            for r in fetched.records {
                let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                out.push(Read { partition: p, offset: r.offset, value });
            }
        }
    }
    out
}
