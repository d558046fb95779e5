//! Broker behaviour end to end over real TCP: long-poll fetches (on an embedded broker, whose
//! parked-fetch metric the tests wait on), fetch limits, and background compaction (through a
//! real `rill broker` process).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rill_broker::Broker;
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

/// Wait (bounded) until `n` fetches are parked in the broker.
async fn parked(broker: &Broker, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.state().fetches_waiting.load(Ordering::SeqCst) != n {
        assert!(Instant::now() < deadline, "expected {n} parked fetch(es)");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A fetch at the log end parks instead of answering at once, and a produce wakes it well
/// before its `max.wait.ms`; with `min.bytes` above what is there, it waits for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_wakes_on_produce_and_honours_min_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    create(&client, "poll", &[]).await;
    let conn = Connection::connect(&broker.bootstrap(), "long-poll").await.unwrap();
    let batch = encode_batch(&[record("k", Some(&"v".repeat(500)))], Compression::None, 0).unwrap();

    // max.wait.ms = 60 s: only a wakeup by the produce answers within the 30 s timeout below.
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(fetch_req("poll", 0, 60_000, 1), 12).await })
    };
    parked(&broker, 1).await;
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    let resp =
        tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("fetch woken by produce").unwrap().unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(decode_records(p.records.clone().unwrap(), 0).unwrap().len(), 1);

    // min.bytes of two batches: the first produce leaves it parked, the second answers it.
    let need = 2 * batch.len() as i32;
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(fetch_req("poll", 1, 60_000, need), 12).await })
    };
    parked(&broker, 1).await;
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    // Still parked after the first batch (it re-read and went back to waiting).
    parked(&broker, 1).await;
    assert!(!waiting.is_finished(), "answered with less than min.bytes");
    client.produce("poll", 0, batch.clone(), 1).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("fetch answered").unwrap().unwrap();
    let got = decode_records(resp.responses[0].partitions[0].records.clone().unwrap(), 1).unwrap();
    assert_eq!(got.len(), 2, "min.bytes of two batches answered with {} record(s)", got.len());

    // With max.wait.ms = 0 an empty answer comes back at once.
    let resp = conn.call(fetch_req("poll", 3, 0, 1), 12).await.unwrap();
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 3);
    assert!(resp.responses[0].partitions[0].records.as_ref().is_none_or(|r| r.is_empty()));
    broker.shutdown().await.unwrap();
}

/// A client that hangs up during a long poll releases it at once, not when `max.wait.ms` ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_releases_a_parked_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    create(&client, "idle", &[]).await;
    for _ in 0..3 {
        let conn = Connection::connect(&broker.bootstrap(), "hang-up").await.unwrap();
        let call = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call(fetch_req("idle", 0, i32::MAX, 1), 12).await })
        };
        parked(&broker, 1).await;
        call.abort();
        drop(conn);
        parked(&broker, 0).await;
    }
    broker.shutdown().await.unwrap();
}

/// `partition_max_bytes` and `max_bytes` bound every partition after the first with data; only
/// that first one may exceed them, so an oversized batch still makes progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_limits_bind_all_but_the_first_partition_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    Admin::new(&client)
        .create_topics(
            &[NewTopic { name: "lim".into(), partitions: 3, replication_factor: 1, configs: BTreeMap::new() }],
            false,
        )
        .await
        .unwrap();
    let batch = encode_batch(&[record("k", Some(&"v".repeat(5000)))], Compression::None, 0).unwrap();
    for p in 0..3 {
        client.produce("lim", p, batch.clone(), 1).await.unwrap();
    }
    let lens = |max_bytes: i32, partition_max: i32| {
        let client = &client;
        async move {
            let got = client.fetch_many("lim", &[(0, 0), (1, 0), (2, 0)], max_bytes, partition_max, 0).await.unwrap();
            got.into_iter().map(|(_, d)| d.unwrap().records.len()).collect::<Vec<_>>()
        }
    };
    let one = batch.len();
    assert_eq!(lens(1 << 20, 100).await, vec![one, 0, 0], "partition_max_bytes below one batch");
    assert_eq!(lens(one as i32 + 1000, 1 << 20).await, vec![one, 0, 0], "max_bytes fits one batch");
    assert_eq!(lens(2 * one as i32, 1 << 20).await, vec![one, one, 0], "max_bytes fits two batches");
    assert_eq!(lens(1 << 20, 1 << 20).await, vec![one, one, one], "everything fits");
    broker.shutdown().await.unwrap();
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

/// A compacted topic written by transactions (as an exactly-once changelog is) loses the markers
/// of transactions whose records were all superseded, once `delete.retention.ms` (0 here) has
/// passed, while read_committed still reads exactly the latest committed value of every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_removes_markers_of_superseded_transactions() {
    use rill_core::client::IsolationLevel;
    use rill_core::producer::{Producer, ProducerConfig};
    use rill_core::records::decode_fetched;

    // Embedded: the broker is this checkout's code, whatever other checkout last linked the
    // shared target directory's `rill` binary.
    let dir = tempfile::tempdir().unwrap();
    let mut config = rill_broker::BrokerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.cleaner_backoff = Duration::from_millis(50);
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.bootstrap();
    let client = Client::connect(ClientConfig::new(&addr)).await.unwrap();
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "0"),
    ];
    create(&client, "txn-table", &configs).await;
    let props = [("bootstrap.servers", addr.as_str()), ("transactional.id", "table-writer"), ("linger.ms", "1")];
    let p = Producer::new(ProducerConfig::from_properties(props).unwrap()).await.unwrap();
    p.init_transactions().await.unwrap();
    let rounds = 30;
    for round in 0..rounds {
        p.begin_transaction().unwrap();
        for k in 0..5 {
            let v = format!("round-{round}-{}", "x".repeat(400));
            let _delivery = p.send("txn-table", Some(0), record(&format!("key-{k}"), Some(&v))).await.unwrap();
        }
        if round == rounds / 2 {
            p.flush().await;
            p.abort_transaction().await.unwrap();
        } else {
            p.commit_transaction().await.unwrap();
        }
    }
    p.close().await;
    // Every transaction has all its records superseded but the newest one in the sealed
    // segments and those in the active segment (never cleaned; it holds one or two of these
    // 2 KB transactions). The cleaner runs every 50 ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let markers = count_markers(&client, "txn-table").await;
        if markers <= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "markers not removed within 30 s: {markers} of {rounds} left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // read_committed: every key ends at the last round's value, and nothing of the aborted
    // round is read.
    let (mut offset, mut values) = (0, BTreeMap::new());
    loop {
        let isolation = IsolationLevel::ReadCommitted;
        let mut got = client.fetch_many_isolated("txn-table", &[(0, offset)], 1 << 20, 1 << 20, 0, isolation).await;
        let f = got.as_mut().unwrap().pop().unwrap().1.unwrap();
        if offset >= f.last_stable_offset {
            break;
        }
        let fetched = decode_fetched(f.records, offset, &f.aborted_transactions).unwrap();
        for r in fetched.records {
            let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
            let v = text(r.value.unwrap());
            assert!(!v.starts_with(&format!("round-{}-", rounds / 2)), "aborted record read at {}", r.offset);
            values.insert(text(r.key.unwrap()), v);
        }
        offset = fetched.next_offset.unwrap();
    }
    let last = format!("round-{}-{}", rounds - 1, "x".repeat(400));
    assert_eq!(values.into_values().collect::<Vec<_>>(), vec![last; 5]);
    broker.shutdown().await.unwrap();
}

/// Transaction markers (non-empty control batches) in partition 0 of `topic`.
async fn count_markers(client: &Client, topic: &str) -> usize {
    let (mut offset, mut markers) = (0, 0);
    loop {
        let f = client.fetch(topic, 0, offset, 1 << 20, 0).await.unwrap();
        if offset >= f.high_watermark {
            return markers;
        }
        let mut data = f.records;
        while data.len() >= 61 {
            let len = i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize + 12;
            if len > data.len() {
                break;
            }
            let base = i64::from_be_bytes(data[0..8].try_into().unwrap());
            let delta = i32::from_be_bytes(data[23..27].try_into().unwrap()) as i64;
            let attributes = i16::from_be_bytes([data[21], data[22]]);
            let count = i32::from_be_bytes(data[57..61].try_into().unwrap());
            markers += usize::from(attributes & 0x20 != 0 && count > 0);
            offset = offset.max(base + delta + 1);
            let _ = data.split_to(len);
        }
    }
}
