//! Quick start: an embedded broker, a topic, records produced and read back, all in-process.
//!
//! `cargo run --release --example quickstart` — until the streams runtime lands, this is the main
//! job: it shows the broker and client working together over real TCP on loopback.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill::broker::Broker;
use rill::core::client::{Admin, Client, ClientConfig, NewTopic, EARLIEST};
use rill::core::records::{decode_records, encode_batch, parse_compression, ProducerRecord};

/// A program hosting a broker installs Rill's allocator (see `rill::broker::alloc`).
#[global_allocator]
static GLOBAL: rill::broker::alloc::GuardedAlloc = rill::broker::alloc::GuardedAlloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::embedded(dir.path()).await?;
    println!("embedded broker on {}", broker.bootstrap());

    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await?;
    let admin = Admin::new(&client);
    let topic = "page-views";
    admin
        .create_topics(
            &[NewTopic { name: topic.into(), partitions: 3, replication_factor: 1, configs: BTreeMap::new() }],
            false,
        )
        .await?;

    // Produce 30,000 records: 100 batches of 100 per partition, lz4-compressed.
    let lz4 = parse_compression("lz4")?;
    for p in 0..3 {
        for b in 0..100 {
            let records: Vec<ProducerRecord> = (0..100)
                .map(|i| ProducerRecord {
                    key: Some(Bytes::from(format!("user-{}", (b * 100 + i) % 997))),
                    value: Some(Bytes::from(format!("{{\"page\":\"/item/{i}\",\"batch\":{b}}}"))),
                    headers: vec![("source".into(), Some(Bytes::from_static(b"quickstart")))],
                    timestamp: None,
                })
                .collect();
            client.produce(topic, p, encode_batch(&records, lz4, rill::broker::log::now_ms())?, -1).await?;
        }
    }

    // Read every partition back from the beginning.
    let mut total = 0;
    for p in 0..3 {
        let mut offset = client.list_offset(topic, p, EARLIEST).await?;
        let mut count = 0;
        loop {
            let f = client.fetch(topic, p, offset, 1 << 20, 100).await?;
            let recs = decode_records(f.records, offset)?;
            if recs.is_empty() {
                break;
            }
            offset = recs.last().map(|r| r.offset + 1).unwrap_or(offset);
            count += recs.len();
        }
        println!("partition {p}: read {count} records, log end offset {offset}");
        total += count;
    }
    println!("read back {total} of 30000 records");
    broker.shutdown().await?;
    anyhow::ensure!(total == 30_000, "expected 30000 records, read {total}");
    Ok(())
}
