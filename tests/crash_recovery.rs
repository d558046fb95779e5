//! kill -9 during a produce stream with flush-per-write: after a restart every acknowledged
//! record is there, at the offset it was acknowledged at, and nothing corrupt is served.
//! Seeded: the number of acknowledgements before each kill comes from the seed.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use rand::{Rng, SeedableRng};
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};
use rill_core::records::{decode_records, encode_batch, ProducerRecord};

const PARTITIONS: i32 = 2;

/// (partition, offset) -> value of every acknowledged record.
type Acked = Arc<Mutex<BTreeMap<(i32, i64), Bytes>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_flush_per_write_produce_loses_no_acknowledged_record() {
    let seed = common::seed("kill9_during_flush_per_write");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut broker = common::BrokerProc::start(&["log.flush.interval.messages=1", "log.segment.bytes=65536"]);
    {
        let client = Client::connect(ClientConfig::new(&broker.addr)).await.unwrap();
        Admin::new(&client)
            .create_topics(
                &[NewTopic {
                    name: "crash".into(),
                    partitions: PARTITIONS,
                    replication_factor: 1,
                    configs: Default::default(),
                }],
                false,
            )
            .await
            .unwrap();
    }
    let acked: Acked = Arc::default();
    for round in 0..3 {
        let kill_after = rng.gen_range(20..200usize);
        let stream_seed = rng.gen::<u64>();
        produce_until_killed(&mut broker, &acked, round, kill_after, stream_seed).await;
        broker.restart();
        let n = verify(&broker.addr, &acked, seed).await;
        eprintln!("round {round}: killed after {kill_after} acknowledged batches; {} acknowledged records verified, {n} records in the log", acked.lock().unwrap().len());
    }
}

/// Produce from one task per partition until `kill_after` batches are acknowledged in all,
/// then kill -9 the broker while requests are still in flight.
async fn produce_until_killed(
    broker: &mut common::BrokerProc,
    acked: &Acked,
    round: u32,
    kill_after: usize,
    seed: u64,
) {
    let client = Arc::new(Client::connect(ClientConfig::new(&broker.addr)).await.unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let (client, acked, count, notify) = (client.clone(), acked.clone(), count.clone(), notify.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ p as u64);
            for b in 0u64.. {
                let n = rng.gen_range(1..20);
                let values: Vec<Bytes> = (0..n)
                    .map(|i| Bytes::from(format!("r{round}-p{p}-b{b}-i{i}-{}", "x".repeat(rng.gen_range(0..300)))))
                    .collect();
                let recs: Vec<ProducerRecord> = values
                    .iter()
                    .map(|v| ProducerRecord {
                        key: Some(Bytes::from(format!("k{b}"))),
                        value: Some(v.clone()),
                        ..Default::default()
                    })
                    .collect();
                let codec = [Compression::None, Compression::Lz4, Compression::Gzip][b as usize % 3];
                let batch = encode_batch(&recs, codec, 0).unwrap();
                match client.produce("crash", p, batch, 1).await {
                    Ok(base) => {
                        let mut a = acked.lock().unwrap();
                        for (i, v) in values.into_iter().enumerate() {
                            a.insert((p, base + i as i64), v);
                        }
                        drop(a);
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        notify.notify_one();
                    }
                    // The broker is gone: everything not acknowledged may or may not be there.
                    Err(_) => return,
                }
            }
        }));
    }
    while count.load(std::sync::atomic::Ordering::SeqCst) < kill_after {
        notify.notified().await;
    }
    broker.kill9();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Check every acknowledged record; returns how many records the log holds.
async fn verify(addr: &str, acked: &Acked, seed: u64) -> usize {
    let mut total = 0;
    let client = Client::connect(ClientConfig::new(addr)).await.unwrap();
    let expected = acked.lock().unwrap().clone();
    for p in 0..PARTITIONS {
        let mut offset = 0;
        let mut seen = BTreeMap::new();
        loop {
            let f = client.fetch("crash", p, offset, 1 << 20, 0).await.unwrap();
            if offset >= f.high_watermark {
                break;
            }
            // decode_records checks every CRC: a corrupt batch fails the test here.
            let recs =
                decode_records(f.records, offset).unwrap_or_else(|e| panic!("seed {seed}: corrupt data served: {e}"));
            assert!(!recs.is_empty(), "seed {seed}: fetch at {offset} below hw {} returned nothing", f.high_watermark);
            for r in recs {
                assert_eq!(r.offset, offset, "seed {seed}: partition {p} skips or repeats an offset");
                seen.insert(r.offset, r.value.unwrap());
                offset += 1;
            }
        }
        total += seen.len();
        for ((ep, eo), v) in expected.range((p, 0)..(p + 1, 0)) {
            assert_eq!(*ep, p);
            assert_eq!(seen.get(eo), Some(v), "seed {seed}: acknowledged record {p}@{eo} lost or changed");
        }
    }
    total
}
