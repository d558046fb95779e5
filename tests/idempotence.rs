//! The idempotent producer (the default) against a real `rill broker` process killed with
//! SIGKILL while batches are in flight: every record is stored exactly once, in send order per
//! partition, at the offset its delivery report gave (a retry of a batch already stored is
//! answered with the original offset), across five kill/restart rounds. (With `enable.idempotence=false` the same run
//! stores duplicates in about one run of three.)

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BrokerProc;
use rill_core::client::{Client, ClientConfig, LATEST};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::{decode_records, ProducerRecord};

const PARTITIONS: i32 = 3;

/// Every record of `topic`-`partition` as (offset, value).
async fn read_all(addr: &str, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let client = Client::connect(ClientConfig::new(addr)).await.unwrap();
    let end = client.list_offset(topic, partition, LATEST).await.unwrap();
    let mut offset = 0;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while offset < end {
        assert!(Instant::now() < deadline, "{topic}-{partition}: read {offset} of {end}");
        let got = client.fetch(topic, partition, offset, 1 << 20, 100).await.unwrap();
        for r in decode_records(got.records, offset).unwrap() {
            offset = r.offset + 1;
            out.push((r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap()));
        }
    }
    out
}

/// A tiny xorshift, seeded from the test's printed seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_neither_loses_nor_duplicates_nor_reorders() {
    let mut rng = common::seed("idempotence") | 1;
    let mut broker = BrokerProc::start(&[&format!("num.partitions={PARTITIONS}")]);
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", broker.addr.as_str()),
        ("linger.ms", "0"),
        ("batch.size", "1500"),
        ("retry.backoff.ms", "20"),
        ("retry.backoff.max.ms", "200"),
        ("request.timeout.ms", "5000"),
        ("delivery.timeout.ms", "60000"),
    ])
    .unwrap();
    assert!(config.idempotent(), "idempotence is the default");
    let producer = Producer::new(config).await.unwrap();
    let topic = "exactly-once";
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut i = 0usize;
    for round in 0..5 {
        // A burst of small batches (5 requests in flight), then SIGKILL at a seeded point
        // while many are unanswered: some were stored, some not; all are retried.
        let burst = 2_000 + (next(&mut rng) % 2_000) as usize;
        let kill_after = (next(&mut rng) % burst as u64) as usize;
        for k in 0..burst {
            let p = (next(&mut rng) % PARTITIONS as u64) as i32;
            let value = format!("r{round}-{i:06}");
            i += 1;
            let record = ProducerRecord { value: Some(Bytes::from(value.clone())), ..Default::default() };
            reports.push((p, value.clone(), producer.send(topic, Some(p), record).await.unwrap()));
            sent.entry(p).or_default().push(value);
            if k == kill_after {
                broker.kill9();
            }
        }
        tokio::task::block_in_place(|| broker.restart());
    }
    let mut stored_at: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for (p, value, report) in reports {
        let md = report.await.unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(md.partition, p);
        assert!(stored_at.insert((p, md.offset), value.clone()).is_none(), "two records reported at {p}/{}", md.offset);
    }
    producer.close().await;
    for p in 0..PARTITIONS {
        let read = read_all(&broker.addr, topic, p).await;
        let values: Vec<&String> = read.iter().map(|(_, v)| v).collect();
        let want: Vec<&String> = sent.get(&p).map(|v| v.iter().collect()).unwrap_or_default();
        assert_eq!(values.len(), want.len(), "partition {p}: stored {} of {} records", values.len(), want.len());
        if let Some(i) = values.iter().zip(&want).position(|(a, b)| a != b) {
            panic!("partition {p}: record {i} is {} (offset {}), expected {}", values[i], read[i].0, want[i]);
        }
        for (offset, value) in &read {
            assert_eq!(stored_at.get(&(p, *offset)), Some(value), "partition {p}: the report for offset {offset}");
        }
    }
}
