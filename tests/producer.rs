//! The Rill producer end to end against an embedded broker over real TCP: keyed records over
//! several partitions acknowledged at the right offsets and read back in order, back-pressure
//! from a small `buffer.memory`, `flush` overriding a long `linger.ms`, every codec, `acks=0`,
//! auto-creating a topic on first send, and a delivery timeout once the broker is gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};
use rill_core::producer::partitioner::partition_for_key;
use rill_core::producer::{DeliveryFuture, Producer, ProducerConfig, RecordMetadata};
use rill_core::records::{decode_records, ConsumerRecord, ProducerRecord};

async fn producer(broker: &Broker, props: &[(&str, &str)]) -> Producer {
    let bootstrap = broker.bootstrap();
    let mut all = vec![("bootstrap.servers", bootstrap.as_str())];
    all.extend_from_slice(props);
    Producer::new(ProducerConfig::from_properties(all).expect("valid config")).await.expect("producer")
}

async fn create(client: &Client, name: &str, partitions: i32) {
    Admin::new(client)
        .create_topics(
            &[NewTopic { name: name.into(), partitions, replication_factor: 1, configs: BTreeMap::new() }],
            false,
        )
        .await
        .unwrap();
}

/// Every record of one partition, from offset 0 to its high watermark.
async fn read_partition(client: &Client, topic: &str, partition: i32) -> (Vec<ConsumerRecord>, Vec<i16>) {
    let mut out = Vec::new();
    let mut codecs = Vec::new();
    loop {
        let offset = out.last().map_or(0, |r: &ConsumerRecord| r.offset + 1);
        let got = client.fetch(topic, partition, offset, 1 << 20, 0).await.unwrap();
        if offset >= got.high_watermark {
            return (out, codecs);
        }
        let mut at = 0;
        while at + 23 <= got.records.len() {
            codecs.push(i16::from_be_bytes([got.records[at + 21], got.records[at + 22]]) & 7);
            at += 12 + i32::from_be_bytes(got.records[at + 8..at + 12].try_into().unwrap()) as usize;
        }
        let records = decode_records(got.records, offset).unwrap();
        assert!(!records.is_empty(), "{topic}-{partition}: no progress at offset {offset}");
        out.extend(records);
    }
}

fn keyed(i: usize) -> ProducerRecord {
    ProducerRecord {
        key: Some(Bytes::from(format!("key-{}", i % 500))),
        value: Some(Bytes::from(format!("value-{i}-").repeat(1 + i % 20))),
        headers: if i % 10 == 0 { vec![("i".into(), Some(Bytes::from(i.to_string())))] } else { vec![] },
        timestamp: None,
    }
}

/// Poll once: the outcome if the future is already complete.
fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// 20,000 keyed records over 6 partitions through a 128 KiB buffer (so `send` waits for room):
/// each key lands on Kafka's partition for it, acknowledged offsets run 0, 1, 2, ... per
/// partition in send order, and reading back gives the same records at those offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_kafkas_partitions_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    create(&client, "keyed", 6).await;
    let producer = producer(&broker, &[("buffer.memory", "131072"), ("linger.ms", "2")]).await;
    const N: usize = 20_000;
    let mut futures: Vec<DeliveryFuture> = Vec::with_capacity(N);
    for i in 0..N {
        let f = producer.send("keyed", None, keyed(i)).await.unwrap();
        let key = keyed(i).key.unwrap();
        assert_eq!(f.partition(), partition_for_key(&key, 6), "record {i}");
        futures.push(f);
    }
    let mut placed: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        let RecordMetadata { topic, partition, offset, timestamp } = f.await.unwrap();
        assert_eq!(&*topic, "keyed");
        assert!(timestamp > 1_600_000_000_000, "send time as timestamp: {timestamp}");
        placed.entry(partition).or_default().push((offset, i));
    }
    assert_eq!(placed.len(), 6, "500 keys reach every partition");
    for (p, recs) in &placed {
        let offsets: Vec<i64> = recs.iter().map(|(o, _)| *o).collect();
        assert!(
            offsets.iter().enumerate().all(|(n, o)| *o == n as i64),
            "partition {p}: offsets {:?}...",
            &offsets[..10]
        );
        let (read, _) = read_partition(&client, "keyed", *p).await;
        assert_eq!(read.len(), recs.len(), "partition {p}");
        for (r, (offset, i)) in read.iter().zip(recs) {
            let want = keyed(*i);
            assert_eq!(r.offset, *offset);
            assert_eq!((&r.key, &r.value, &r.headers), (&want.key, &want.value, &want.headers), "record {i}");
        }
    }
    producer.close().await;
    broker.shutdown().await.unwrap();
}

/// With `linger.ms` at a minute nothing would go out for a minute; `flush` sends it now and
/// returns with every record's outcome known. Unkeyed records stick to one partition per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sends_lingering_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    create(&client, "lingering", 3).await;
    let producer = producer(&broker, &[("linger.ms", "60000"), ("delivery.timeout.ms", "120000")]).await;
    let started = Instant::now();
    let mut futures = Vec::new();
    for i in 0..100 {
        let rec = ProducerRecord { value: Some(Bytes::from(format!("v{i}"))), ..Default::default() };
        futures.push(producer.send("lingering", None, rec).await.unwrap());
    }
    let sticky = futures[0].partition();
    assert!(futures.iter().all(|f| f.partition() == sticky), "one small batch: one sticky partition");
    assert!(futures.iter_mut().all(|f| now_or_never(f).is_none()), "lingering, not sent");
    producer.flush().await;
    let offsets: Vec<i64> =
        futures.into_iter().map(|f| now_or_never(f).expect("complete after flush").unwrap().offset).collect();
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
    assert!(started.elapsed() < Duration::from_secs(30), "flush did not wait for linger.ms");
    let (read, _) = read_partition(&client, "lingering", sticky).await;
    assert_eq!(read.len(), 100);
    producer.close().await;
    broker.shutdown().await.unwrap();
}

/// Each codec's batches are stored compressed with it and read back intact; `acks=0` gets
/// offsets -1 and its records are stored too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_and_acks_0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    for (id, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].into_iter().enumerate() {
        let topic = format!("codec-{codec}");
        create(&client, &topic, 2).await;
        let producer = producer(&broker, &[("compression.type", codec), ("batch.size", "65536")]).await;
        let mut futures = Vec::new();
        for i in 0..3_000 {
            futures.push(producer.send(&topic, Some(i as i32 % 2), keyed(i)).await.unwrap());
        }
        for f in futures {
            f.await.unwrap();
        }
        producer.close().await;
        for p in 0..2 {
            let (read, codecs) = read_partition(&client, &topic, p).await;
            assert_eq!(read.len(), 1_500, "{codec} partition {p}");
            assert!(codecs.iter().all(|c| *c == id as i16), "{codec}: stored codecs {codecs:?}");
            assert!(codecs.len() < 100, "{codec}: records were batched, {} batches", codecs.len());
            for (n, r) in read.iter().enumerate() {
                assert_eq!(r.value, keyed(2 * n + p as usize).value, "{codec} partition {p} offset {n}");
            }
        }
    }
    create(&client, "acks0", 1).await;
    let producer = producer(&broker, &[("acks", "0")]).await;
    let mut futures = Vec::new();
    for i in 0..500 {
        futures.push(producer.send("acks0", None, keyed(i)).await.unwrap());
    }
    for f in futures {
        assert_eq!(f.await.unwrap().offset, -1, "acks=0: no offsets");
    }
    producer.close().await;
    // The broker handles a connection's requests in order: a later request sees them all.
    assert_eq!(read_partition(&client, "acks0", 0).await.0.len(), 500);
    broker.shutdown().await.unwrap();
}

/// The first send to a topic that does not exist creates it (the broker's
/// `auto.create.topics.enable`, one partition by default), as Kafka producers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_send_auto_creates_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let producer = producer(&broker, &[]).await;
    let rec = ProducerRecord { key: Some(Bytes::from("k")), value: Some(Bytes::from("v")), ..Default::default() };
    // From another task: the producer, `send` and its delivery future are all Send.
    let p = producer.clone();
    let md =
        tokio::spawn(async move { p.send("created-on-send", None, rec).await.unwrap().await.unwrap() }).await.unwrap();
    assert_eq!((&*md.topic, md.partition, md.offset), ("created-on-send", 0, 0));
    let rec = ProducerRecord { value: Some(Bytes::from("w")), ..Default::default() };
    let e = producer.send("created-on-send", Some(3), rec).await.unwrap_err();
    assert_eq!(e.code(), Some(3), "a partition the topic lacks: {e}");
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let (read, _) = read_partition(&client, "created-on-send", 0).await;
    assert_eq!(read.iter().map(|r| r.value.clone()).collect::<Vec<_>>(), [Some(Bytes::from("v"))]);
    producer.close().await;
    broker.shutdown().await.unwrap();
}

/// Once the broker is gone, a record's future fails with the delivery timeout (not an error per
/// attempt, not never): the producer retries connecting until `delivery.timeout.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_times_out_when_the_broker_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let producer = producer(
        &broker,
        &[
            ("delivery.timeout.ms", "1500"),
            ("request.timeout.ms", "500"),
            ("linger.ms", "0"),
            ("retry.backoff.ms", "20"),
        ],
    )
    .await;
    let rec = || ProducerRecord { value: Some(Bytes::from("v")), ..Default::default() };
    assert_eq!(producer.send("doomed", None, rec()).await.unwrap().await.unwrap().offset, 0);
    broker.shutdown().await.unwrap();
    let sent = Instant::now();
    let f = producer.send("doomed", None, rec()).await.expect("metadata is cached: queued at once");
    let e = f.await.unwrap_err();
    let took = sent.elapsed();
    assert!(matches!(e, rill_core::Error::Timeout(_)), "{e:?}");
    assert!(e.to_string().contains("delivery.timeout.ms (1500 ms): 1 record(s) for doomed-0"), "{e}");
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(10), "failed after {took:?}");
    producer.close().await;
    let e = producer.send("doomed", None, rec()).await.unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}

/// Records sent while the broker is down are retried (reconnecting, refreshing metadata) and
/// stored once it is back on the same address, in send order with one request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_while_the_broker_is_down_arrive_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::embedded(dir.path()).await.unwrap();
    let addr = broker.addr();
    let producer = producer(
        &broker,
        &[("max.in.flight.requests.per.connection", "1"), ("linger.ms", "0"), ("retry.backoff.max.ms", "50")],
    )
    .await;
    let rec = |i: usize| ProducerRecord { value: Some(Bytes::from(format!("r{i}"))), ..Default::default() };
    let mut before = Vec::new();
    for i in 0..1000 {
        before.push(producer.send("returns", Some(0), rec(i)).await.unwrap());
    }
    for f in before {
        f.await.unwrap();
    }
    broker.shutdown().await.unwrap();
    let mut during = Vec::new();
    for i in 1000..2000 {
        during.push(producer.send("returns", Some(0), rec(i)).await.unwrap());
    }
    let mut config = rill_broker::BrokerConfig::new(dir.path());
    config.listen = addr;
    let broker = Broker::start(config).await.unwrap();
    let offsets: Vec<i64> = {
        let mut v = Vec::new();
        for f in during {
            v.push(f.await.unwrap().offset);
        }
        v
    };
    assert_eq!(offsets, (1000..2000).collect::<Vec<i64>>());
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let (read, _) = read_partition(&client, "returns", 0).await;
    let values: Vec<Bytes> = read.into_iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(values, (0..2000).map(|i| Bytes::from(format!("r{i}"))).collect::<Vec<_>>());
    producer.close().await;
    broker.shutdown().await.unwrap();
}
