//! A seeded history test of transactions under crashes. Transactional producers (Rill's) run
//! transactions over a 4-partition topic, some committing, some aborting, some fenced by a newer
//! instance with the same `transactional.id`; a read_committed consumer reads all along; the
//! broker process is killed with SIGKILL and restarted at seeded random moments. At the end every
//! transaction is resolved (a new instance of each producer fences the old one), one complete
//! read_committed pass is made, and `history/checker.rs` looks for aborted reads, lost writes,
//! duplicates, inconsistent offsets, non-monotonic polls and torn transactions.
//!
//! Each seed is printed; `RILL_TEST_SEED=<seed>` runs just that one (the kill moments are drawn
//! from the seed, though where they land in the broker's work depends on timing).
//! `RILL_HISTORY_SEEDS=<n>` sets how many seeds one run covers (default 20).

#[path = "history/checker.rs"]
mod checker;
mod common;
#[path = "history/reader.rs"]
mod reader;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker::{Outcome, Read, Txn};
use common::BrokerProc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_core::client::{Client, ClientConfig};
use rill_core::consumer::ConsumerConfig;
use rill_core::error::Error;
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;

const TOPIC: &str = "history";
const PARTITIONS: i32 = 4;
const SLOTS: usize = 3;
const TXNS: usize = 24;

fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("RILL_TEST_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n: u64 = std::env::var("RILL_HISTORY_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    (0..n).map(|i| base.wrapping_mul(1000).wrapping_add(i)).collect()
}

#[test]
fn transactions_survive_broker_crashes_without_anomalies() {
    for seed in seeds() {
        eprintln!("txn_history: seed {seed} (replay with RILL_TEST_SEED={seed})");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let problems = rt.block_on(run(seed));
        assert!(problems.is_empty(), "seed {seed}: {} anomalies:\n{}", problems.len(), problems.join("\n"));
    }
}

async fn producer(addr: &str, slot: usize, seed: u64) -> Result<Producer, Error> {
    let id = format!("history-{seed}-{slot}");
    let props = [
        ("bootstrap.servers", addr),
        ("transactional.id", id.as_str()),
        ("transaction.timeout.ms", "20000"),
        ("linger.ms", "2"),
        ("max.block.ms", "20000"),
        ("delivery.timeout.ms", "20000"),
        ("request.timeout.ms", "5000"),
    ];
    Producer::new(ProducerConfig::from_properties(props).unwrap()).await
}

/// A producer of `slot` with its transactions initialised (fencing any earlier instance), retried
/// while the broker is down.
async fn ready_producer(addr: &str, slot: usize, seed: u64) -> Producer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = match producer(addr, slot, seed).await {
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
        // The broker is restarting: try again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run one transaction: `Ok(outcome)`, or the error that ended it (the producer is then unusable
/// for this test and is replaced).
async fn one_txn(p: &Producer, rng: &mut StdRng, values: &[String]) -> (Outcome, Option<Error>) {
    if let Err(e) = p.begin_transaction() {
        return (Outcome::Aborted, Some(e));
    }
    for v in values {
        let rec =
            ProducerRecord { key: None, value: Some(Bytes::from(v.clone())), headers: Vec::new(), timestamp: None };
        if let Err(e) = p.send(TOPIC, Some(rng.gen_range(0..PARTITIONS)), rec).await {
            // Nothing of it can commit now; whether an abort completes is unknown until resolved.
            return (Outcome::Unknown, Some(e));
        }
    }
    if rng.gen_bool(0.7) {
        match p.commit_transaction().await {
            Ok(()) => (Outcome::Committed, None),
            Err(e) => (Outcome::Unknown, Some(e)),
        }
    } else {
        match p.abort_transaction().await {
            Ok(()) => (Outcome::Aborted, None),
            Err(e) => (Outcome::Unknown, Some(e)),
        }
    }
}

async fn run(seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut broker = BrokerProc::start(&[]);
    let addr = broker.addr.clone();
    common::create_topics(&addr, &[(TOPIC, PARTITIONS)]).await;

    // The killer: SIGKILL and restart at seeded moments while the workload runs; the workload
    // goes on until the last restart.
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let pauses: Vec<u64> = (0..rng.gen_range(2..=4)).map(|_| rng.gen_range(50..600)).collect();
    let kills = pauses.len();
    let killer = {
        let killed = killed.clone();
        tokio::task::spawn_blocking(move || {
            for pause in pauses {
                std::thread::sleep(Duration::from_millis(pause));
                broker.kill9();
                broker.restart();
            }
            killed.store(true, Ordering::Release);
            broker
        })
    };

    // The reader: a read_committed consumer polling all along, replaced when it fails. On its
    // own thread: a consumer's future is not `Send`.
    let sessions: Arc<Mutex<Vec<Vec<Read>>>> = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (stop, sessions, addr) = (stop.clone(), sessions.clone(), addr.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
                while !stop.load(Ordering::Acquire) {
                    let mut session = Vec::new();
                    let _ = reader::read_session(consumer_props(&addr), TOPIC, &mut next, &stop, &mut session).await;
                    sessions.lock().unwrap().push(session);
                }
            })
        })
    };

    // The workload.
    let mut txns: Vec<Txn> = Vec::new();
    let mut producers: Vec<Option<Producer>> = Vec::new();
    for slot in 0..SLOTS {
        producers.push(Some(ready_producer(&addr, slot, seed).await));
    }
    let mut t = 0;
    while t < TXNS || !killed.load(Ordering::Acquire) {
        assert!(t < 100_000, "seed {seed}: the killer never finished");
        t += 1;
        let slot = rng.gen_range(0..SLOTS);
        let p = match producers[slot].take() {
            Some(p) => p,
            None => ready_producer(&addr, slot, seed).await,
        };
        let values: Vec<String> = (0..rng.gen_range(1..=6)).map(|i| format!("s{slot}-t{t}-{i}")).collect();
        if rng.gen_bool(0.1) {
            // A newer instance fences this one mid-transaction: what it sent is aborted.
            let _ = p.begin_transaction();
            for v in &values {
                let rec = ProducerRecord {
                    key: None,
                    value: Some(Bytes::from(v.clone())),
                    headers: Vec::new(),
                    timestamp: None,
                };
                let _ = p.send(TOPIC, Some(rng.gen_range(0..PARTITIONS)), rec).await;
            }
            p.flush().await;
            let newer = ready_producer(&addr, slot, seed).await;
            let zombie = p.commit_transaction().await;
            assert!(zombie.is_err(), "seed {seed}: a fenced producer committed");
            txns.push(Txn { values, outcome: Outcome::Aborted });
            p.close().await;
            producers[slot] = Some(newer);
            continue;
        }
        let (outcome, err) = one_txn(&p, &mut rng, &values).await;
        txns.push(Txn { values, outcome });
        match err {
            None => producers[slot] = Some(p),
            // Whatever went wrong, the next instance of this slot resolves the transaction.
            Some(_) => p.close().await,
        }
    }
    stop.store(true, Ordering::Release);
    let mut broker = killer.await.unwrap();
    reader.join().unwrap();
    // Resolve every transaction: a fresh instance per slot aborts whatever its predecessor left.
    for (slot, p) in producers.into_iter().enumerate() {
        if let Some(p) = p {
            p.close().await;
        }
        ready_producer(&addr, slot, seed).await.close().await;
    }
    let final_read = read_everything(&addr).await;
    broker.stop();
    let sessions = sessions.lock().unwrap().clone();
    let n = final_read.len();
    let count = |o: Outcome| txns.iter().filter(|t| t.outcome == o).count();
    eprintln!(
        "txn_history: seed {seed}: {kills} kills; {} transactions ({} committed, {} aborted, {} unknown); {n} records read at the end; {} reader sessions read {} records",
        txns.len(),
        count(Outcome::Committed),
        count(Outcome::Aborted),
        count(Outcome::Unknown),
        sessions.len(),
        sessions.iter().map(|s| s.len()).sum::<usize>()
    );
    checker::check(&txns, &sessions, &final_read)
}

fn consumer_props(addr: &str) -> ConsumerConfig {
    ConsumerConfig::from_properties([
        ("bootstrap.servers", addr),
        ("isolation.level", "read_committed"),
        ("group.id", "history-reader"),
        ("request.timeout.ms", "5000"),
    ])
    .unwrap()
}

/// A complete read_committed pass, up to each partition's last stable offset.
async fn read_everything(addr: &str) -> Vec<Read> {
    let client = Client::connect(ClientConfig::new(addr.to_string())).await.unwrap();
    let mut ends = BTreeMap::new();
    for p in 0..PARTITIONS {
        ends.insert(p, client.list_offset(TOPIC, p, -1).await.unwrap());
    }
    match reader::read_to(consumer_props(addr), TOPIC, &ends, Duration::from_secs(60)).await {
        Ok(reads) => reads,
        Err(positions) => panic!("the final read did not reach the end offsets {ends:?}: positions {positions:?}"),
    }
}
