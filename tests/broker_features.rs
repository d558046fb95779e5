//! Broker behaviour end to end, through a real `rill broker` process: long-poll fetches and
//! background compaction.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_core::client::{Admin, Client, ClientConfig, Connection, NewTopic};
use rill_core::records::{decode_records, encode_batch, ProducerRecord};

fn record(key: &str, value: Option<&str>) -> ProducerRecord {
    ProducerRecord {
        key: Some(Bytes::from(key.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        ..Default::default()
    }
}

fn fetch_req(topic: &str, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

async fn create(client: &Client, name: &str, configs: &[(&str, &str)]) {
    let configs: BTreeMap<String, String> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Admin::new(client)
        .create_topics(&[NewTopic { name: name.into(), partitions: 1, replication_factor: 1, configs }], false)
        .await
        .unwrap();
}

/// A fetch at the log end waits for data instead of answering at once, and is woken by a
/// produce well before its `max.wait.ms`; with `min.bytes` above one batch it waits for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_wakes_on_produce_and_honours_min_bytes() {
    let broker = common::BrokerProc::start(&[]);
    let client = Client::connect(ClientConfig::new(&broker.addr)).await.unwrap();
    create(&client, "poll", &[]).await;
    let conn = Connection::connect(&broker.addr, "long-poll").await.unwrap();
    let batch = encode_batch(&[record("k", Some(&"v".repeat(500)))], Compression::None, 0).unwrap();

    // max.wait.ms = 60 s: if the produce did not wake the fetch, the test would hang for a
    // minute and then fail on the data check below.
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(fetch_req("poll", 0, 60_000, 1), 12).await })
    };
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    let started = Instant::now();
    let resp =
        tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("fetch woken by produce").unwrap().unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(decode_records(p.records.clone().unwrap(), 0).unwrap().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(30));

    // min.bytes of two batches: one more batch is not enough, a second one is.
    let need = 2 * batch.len() as i32;
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(fetch_req("poll", 1, 60_000, need), 12).await })
    };
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("fetch answered").unwrap().unwrap();
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap(), 1).unwrap();
    assert_eq!(got.len(), 2, "min.bytes of two batches answered with {} record(s)", got.len());

    // With max.wait.ms = 0 an empty answer comes back at once.
    let resp = conn.call(fetch_req("poll", 3, 0, 1), 12).await.unwrap();
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 3);
    assert!(resp.responses[0].partitions[0].records.as_ref().is_none_or(|r| r.is_empty()));
}

/// A compacted topic, cleaned in the background by the running broker, keeps the latest value
/// of every key at its original offset, drops superseded values, and keeps accepting appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_keeps_latest_value_per_key() {
    let broker = common::BrokerProc::start(&["log.cleaner.backoff.ms=50"]);
    let client = Client::connect(ClientConfig::new(&broker.addr)).await.unwrap();
    create(
        &client,
        "table",
        &[("cleanup.policy", "compact"), ("segment.bytes", "4096"), ("min.cleanable.dirty.ratio", "0.01")],
    )
    .await;
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for round in 0..40 {
        // Uncompressed 10 x 400 B: every batch is larger than half a segment, so each append
        // rolls and the active segment holds exactly the last batch.
        let recs: Vec<ProducerRecord> =
            (0..10).map(|k| record(&format!("key-{k}"), Some(&format!("round-{round}-{}", "x".repeat(400))))).collect();
        let base = client.produce("table", 0, encode_batch(&recs, Compression::None, 0).unwrap(), 1).await.unwrap();
        for (i, r) in recs.iter().enumerate() {
            let k = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            latest.insert(k, (base + i as i64, String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()));
        }
    }
    let produced = 400;
    // Fully compacted: the newest record of each of the 10 keys among the sealed segments, plus
    // the active segment's batch (never cleaned) = 20. The cleaner runs every 50 ms; wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = loop {
        let recs = read_all(&client, "table").await;
        if recs.len() == 20 {
            break recs;
        }
        assert!(Instant::now() < deadline, "no compaction within 30 s: still {} records", recs.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every key's latest value is present at its offset; whatever else remains is older values
    // of keys whose newest version sits in the active segment (never cleaned).
    let by_offset: BTreeMap<i64, (String, String)> = read.into_iter().collect();
    for (k, (offset, v)) in &latest {
        assert_eq!(by_offset.get(offset), Some(&(k.clone(), v.clone())), "latest value of {k} missing at {offset}");
    }
    let offsets: Vec<i64> = by_offset.keys().copied().collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets not increasing after compaction");
    // Appends continue after cleaning, at the next offset.
    let next = client
        .produce("table", 0, encode_batch(&[record("key-0", Some("after"))], Compression::None, 0).unwrap(), 1)
        .await;
    assert_eq!(next.unwrap(), produced as i64);
}

/// Every record of partition 0 as (offset, (key, value)), following offset gaps left by compaction.
async fn read_all(client: &Client, topic: &str) -> Vec<(i64, (String, String))> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = client.fetch(topic, 0, offset, 1 << 20, 0).await.unwrap();
        if offset >= f.high_watermark {
            return out;
        }
        let mut data = f.records.clone();
        let recs = decode_records(f.records, offset).unwrap();
        // A batch whose records were all removed still advances the offset: step past it.
        let next_batch = {
            let mut next = offset;
            while data.len() >= 61 {
                let len = i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize + 12;
                let base = i64::from_be_bytes(data[0..8].try_into().unwrap());
                let delta = i32::from_be_bytes(data[23..27].try_into().unwrap()) as i64;
                next = next.max(base + delta + 1);
                if len > data.len() {
                    break;
                }
                let _ = data.split_to(len);
            }
            next
        };
        for r in recs {
            let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap();
            out.push((r.offset, (k, v)));
        }
        offset = next_batch.max(offset + 1);
    }
}
