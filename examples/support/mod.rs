//! What the examples share: a broker (embedded, or `--bootstrap HOST:PORT`), topics, producing
//! keyed records with timestamps, and printing a topic as it fills.

#![allow(dead_code)] // each example uses part of it

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill::broker::Broker;
use rill::core::client::{Admin, Client, ClientConfig, NewTopic};
use rill::core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill::core::producer::{Producer, ProducerConfig};
use rill::core::records::ProducerRecord;

/// Where an example runs: the broker it talks to and a scratch directory.
pub struct Setup {
    /// `host:port` of the broker.
    pub bootstrap: String,
    /// The embedded broker, when no `--bootstrap` was given.
    pub embedded: Option<Broker>,
    /// Scratch space (the embedded broker's data, state directories).
    pub dir: tempfile::TempDir,
    /// Tells this run's topics and application ids apart from earlier runs on the same broker.
    pub run: u32,
}

impl Setup {
    /// From the command line (`[--bootstrap HOST:PORT]`), as example `name`.
    pub async fn from_args(name: &str) -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bootstrap = match args.as_slice() {
            [] => None,
            [flag, addr] if flag == "--bootstrap" => Some(addr.clone()),
            _ => anyhow::bail!("usage: {name} [--bootstrap HOST:PORT]"),
        };
        let dir = tempfile::tempdir()?;
        let (bootstrap, embedded) = match bootstrap {
            Some(b) => (b, None),
            None => {
                let b = Broker::embedded(dir.path().join("broker")).await?;
                (b.bootstrap(), Some(b))
            }
        };
        println!("broker: {bootstrap}{}", if embedded.is_some() { " (embedded)" } else { "" });
        Ok(Self { bootstrap, embedded, dir, run: std::process::id() })
    }

    /// `name` made unique to this run.
    pub fn name(&self, name: &str) -> String {
        format!("{name}-{}", self.run)
    }

    /// A state directory for the application.
    pub fn state_dir(&self) -> anyhow::Result<String> {
        Ok(self.dir.path().join("state").to_str().context("a UTF-8 temporary path")?.to_string())
    }

    /// Create `topics` with `partitions` each (`compact` ones as compacted topics).
    pub async fn create_topics(&self, topics: &[&str], compact: &[&str], partitions: i32) -> anyhow::Result<()> {
        let client = Client::connect(ClientConfig::new(&self.bootstrap)).await?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic {
                name: t.to_string(),
                partitions,
                replication_factor: -1,
                configs: [(
                    "cleanup.policy".to_string(),
                    if compact.contains(t) { "compact" } else { "delete" }.to_string(),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        Admin::new(&client).create_topics(&new, false).await.context("creating the topics")
    }

    /// Produce `(key, value, timestamp)` records to `topic` and wait for them.
    pub async fn produce(&self, topic: &str, records: &[(&str, &str, Option<i64>)]) -> anyhow::Result<()> {
        let producer = Producer::new(ProducerConfig::new(&self.bootstrap)).await?;
        for (k, v, ts) in records {
            let record = ProducerRecord {
                key: Some(Bytes::from(k.to_string())),
                value: Some(Bytes::from(v.to_string())),
                headers: Vec::new(),
                timestamp: *ts,
            };
            producer.send(topic, None, record).await?.await?;
        }
        producer.close().await;
        Ok(())
    }

    /// Read `topic` (read_committed, from the start) and hand each record to `show` until it
    /// answers that it has seen enough (or two minutes passed).
    pub async fn read(&self, topic: &str, mut show: impl FnMut(&PolledRecord) -> bool) -> anyhow::Result<()> {
        let mut reader = Consumer::new(ConsumerConfig::from_properties([
            ("bootstrap.servers", self.bootstrap.as_str()),
            ("group.id", &self.name("printer")),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ])?)
        .await?;
        reader.subscribe([topic.to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut done = false;
        while !done {
            anyhow::ensure!(Instant::now() < deadline, "{topic}: not everything expected came in 120 s");
            for r in reader.poll(Duration::from_millis(200)).await? {
                done |= show(&r);
            }
        }
        reader.close().await?;
        Ok(())
    }

    /// Shut the embedded broker down, if there is one.
    pub async fn finish(self) -> anyhow::Result<()> {
        if let Some(b) = self.embedded {
            b.shutdown().await?;
        }
        Ok(())
    }
}
