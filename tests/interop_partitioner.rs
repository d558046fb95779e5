//! Keys land where librdkafka puts them: confluent-kafka with `partitioner=murmur2_random` (the
//! Java client's default for keyed records) produces k0..k999 to one 7-partition topic, the Rill
//! producer the same keys to another; read back with the Rill client, every key is in the same
//! partition of both topics, and where librdkafka's delivery reports said.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::BrokerProc;
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::{decode_records, ProducerRecord};

const KEYS: usize = 1000;
const PARTITIONS: i32 = 7;

/// key -> partition, for every record of `topic`.
async fn placement(client: &Client, topic: &str) -> BTreeMap<String, i32> {
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let got = client.fetch(topic, p, offset, 1 << 20, 0).await.unwrap();
            if offset >= got.high_watermark {
                break;
            }
            for r in decode_records(got.records, offset).unwrap() {
                let key = String::from_utf8(r.key.expect("keyed").to_vec()).unwrap();
                assert!(out.insert(key.clone(), p).is_none(), "{topic}: {key} stored twice");
                offset = r.offset + 1;
            }
        }
    }
    out
}

#[test]
fn rill_and_librdkafka_put_each_key_in_the_same_partition() {
    let broker = BrokerProc::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = Client::connect(ClientConfig::new(&broker.addr)).await.unwrap();
        let topics: Vec<NewTopic> = ["part-librdkafka", "part-rill"]
            .iter()
            .map(|t| NewTopic {
                name: t.to_string(),
                partitions: PARTITIONS,
                replication_factor: 1,
                configs: Default::default(),
            })
            .collect();
        Admin::new(&client).create_topics(&topics, false).await.unwrap();
        client
    });
    let out = support::python("partitioner.py", &[&broker.addr, "part-librdkafka", &KEYS.to_string()]);
    let reported: BTreeMap<String, i32> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, p)| (k.to_string(), p.parse().expect("partition")))
        .collect();
    assert_eq!(reported.len(), KEYS, "one delivery report per key");

    let (theirs, ours) = rt.block_on(async {
        let producer = Producer::new(ProducerConfig::new(&broker.addr)).await.unwrap();
        let mut futures = Vec::new();
        for i in 0..KEYS {
            let rec = ProducerRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                ..Default::default()
            };
            futures.push(producer.send("part-rill", None, rec).await.unwrap());
        }
        for f in futures {
            f.await.unwrap();
        }
        producer.close().await;
        (placement(&client, "part-librdkafka").await, placement(&client, "part-rill").await)
    });
    assert_eq!(theirs, reported, "librdkafka's records are stored where its delivery reports said");
    assert_eq!(theirs.len(), KEYS);
    let differ: Vec<_> = theirs.iter().filter(|(k, p)| ours.get(*k) != Some(p)).take(10).collect();
    assert!(differ.is_empty(), "keys placed differently (key, librdkafka's partition): {differ:?}");
    assert_eq!(ours.len(), KEYS);
    let used: std::collections::BTreeSet<i32> = ours.values().copied().collect();
    assert_eq!(used.len(), PARTITIONS as usize, "1000 keys spread over all 7 partitions");
}
