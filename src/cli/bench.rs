//! `rill bench produce|consume|txn|streams|replication`: whole-system throughput beside same-run
//! baselines.
//!
//! Each run first measures two ceilings on this machine, now: the loopback TCP copy rate (one
//! socket, 1 MiB writes) and the sequential file write rate (page cache, 1 MiB writes), then the
//! broker. Results are printed as records/s, MB/s and the ratio to the loopback rate, because
//! absolute numbers on a shared machine mean little.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use rill_broker::Broker;
use rill_core::client::{Admin, Client, ClientConfig, NewTopic, EARLIEST};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::{encode_batch, ProducerRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Arguments of `rill bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    what: What,
    /// Broker to use; an embedded broker in a temporary directory if omitted.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    record_size: u32,
    /// Partitions of the benchmark topic (default 1; streams: 4, for every input and output topic).
    #[arg(long = "partitions", value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions_given: Option<i32>,
    /// `--partitions` or the workload's default.
    #[arg(skip)]
    partitions: i32,
    /// Total bytes of record values to move (default 512MiB; replication: 256MiB per
    /// configuration and round).
    #[arg(long = "bytes", value_parser = parse_size)]
    bytes_given: Option<u64>,
    /// `--bytes` or the workload's default.
    #[arg(skip)]
    bytes: u64,
    /// Bytes of records per produce batch.
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    batch_bytes: u64,
    /// Produce requests in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Milliseconds between commits (txn).
    #[arg(long, default_value_t = 100)]
    commit_ms: u64,
    /// Bytes per fetch (consume).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    fetch_bytes: u64,
    /// acks for produce (0, 1 or -1).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    /// Which client: `raw` sends pre-encoded batches and walks fetched batches with the low-level
    /// client; `rill` sends records one by one through the Rill producer and reads them through
    /// the Rill consumer (decoding every record).
    #[arg(long, value_enum, default_value_t = ProduceClient::Raw)]
    client: ProduceClient,
    /// Input records per workload (streams: the loop and the stateless ones).
    #[arg(long, default_value_t = 4_000_000)]
    records: u64,
    /// Input records per count workload (streams).
    #[arg(long, default_value_t = 1_000_000)]
    count_records: u64,
    /// Distinct keys of the input records (streams).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProduceClient {
    /// Pre-encoded batches through `Client::produce_many`; raw `Client::fetch_many`.
    Raw,
    /// Records through `rill_core::Producer` and `rill_core::consumer::Consumer`.
    Rill,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum What {
    /// Produce throughput.
    Produce,
    /// Consume (fetch) throughput.
    Consume,
    /// Transactional produce (a commit every `--commit-ms`) beside idempotent produce.
    Txn,
    /// Streams applications (stateless map/filter, a RocksDB count; at-least-once and
    /// exactly-once) beside a hand-written consume-transform-produce loop.
    Streams,
    /// Produce on an in-process 3-broker cluster: acks=all to replication factor 3 beside acks=1
    /// to replication factor 1, in interleaved rounds.
    Replication,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = t.strip_suffix("MiB") {
        (n, 1 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1 << 10)
    } else {
        (t, 1)
    };
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|_| format!("'{s}' is not a size like 512MiB"))
}

pub async fn run(mut a: BenchArgs) -> anyhow::Result<()> {
    a.partitions = a.partitions_given.unwrap_or(if matches!(a.what, What::Streams) { 4 } else { 1 });
    a.bytes = a.bytes_given.unwrap_or(if matches!(a.what, What::Replication) { 256 << 20 } else { 512 << 20 });
    if let What::Streams = a.what {
        return run_streams(a).await;
    }
    if let What::Replication = a.what {
        anyhow::ensure!(a.bootstrap.is_none(), "bench replication starts its own cluster; drop --bootstrap");
        let (batch, per_batch) = bench_batch(a.record_size, a.batch_bytes)?;
        return super::bench_replication::run(super::bench_replication::ReplicationBenchArgs {
            record_size: a.record_size as usize,
            partitions: a.partitions,
            bytes: a.bytes,
            in_flight: a.in_flight,
            batch,
            per_batch,
        })
        .await;
    }
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let loopback = loopback_rate(a.bytes.min(1 << 30)).await?;
    let disk = write_rate(tmp.path(), a.bytes.min(1 << 30))?;
    println!("baseline: loopback TCP copy {:.0} MB/s, sequential write {:.0} MB/s", loopback / 1e6, disk / 1e6);
    let embedded = match &a.bootstrap {
        Some(_) => None,
        None => Some(Broker::embedded(tmp.path().join("broker")).await?),
    };
    let bootstrap = a.bootstrap.clone().unwrap_or_else(|| embedded.as_ref().expect("embedded").bootstrap());
    let client = Arc::new(Client::connect(ClientConfig::new(&bootstrap)).await?);
    let topic = format!("rill-bench-{}", std::process::id());
    Admin::new(&client)
        .create_topics(
            &[NewTopic {
                name: topic.clone(),
                partitions: a.partitions,
                replication_factor: -1,
                configs: Default::default(),
            }],
            false,
        )
        .await?;
    let (batch, per_batch) = bench_batch(a.record_size, a.batch_bytes)?;
    let total_batches = (a.bytes / (per_batch * (a.record_size as usize)) as u64).max(a.partitions as u64);
    let records = total_batches * per_batch as u64;
    if let What::Txn = a.what {
        let rates =
            super::bench_txn::run(&bootstrap, &topic, records, a.record_size as usize, a.batch_bytes, a.commit_ms)
                .await?;
        println!(
            "idempotent produce: {records} records of {} B over {} partition(s), acks=all: {:.0} records/s",
            a.record_size, a.partitions, rates.idempotent
        );
        println!(
            "transactional produce, a commit every {} ms ({} commits, {:.1} ms each): {:.0} records/s, {:.2}x idempotent",
            a.commit_ms,
            rates.commits,
            rates.commit_ms,
            rates.transactional,
            rates.transactional / rates.idempotent
        );
        Admin::new(&client).delete_topics(&[topic]).await?;
        if let Some(b) = embedded {
            b.shutdown().await?;
        }
        return Ok(());
    }
    let load = ProduceLoad { partitions: a.partitions, in_flight: a.in_flight, acks: a.acks };
    let (label, elapsed) = match a.what {
        What::Produce if a.client == ProduceClient::Rill => {
            ("produce (rill producer)", produce_records(&bootstrap, &topic, &a, records).await?)
        }
        What::Produce => ("produce", produce(&client, &topic, &load, &batch, total_batches).await?.elapsed),
        What::Consume if a.client == ProduceClient::Rill => {
            produce(&client, &topic, &load, &batch, total_batches).await?;
            ("consume (rill consumer)", consume_records(&bootstrap, &topic, a.partitions, records).await?)
        }
        What::Txn | What::Streams | What::Replication => unreachable!("handled above"),
        What::Consume => {
            produce(&client, &topic, &load, &batch, total_batches).await?;
            (
                "consume",
                consume(&client, &topic, a.partitions, records, a.fetch_bytes.min(i32::MAX as u64) as i32).await?,
            )
        }
    };
    let secs = elapsed.as_secs_f64();
    let value_bytes = records as f64 * (a.record_size as usize) as f64;
    println!(
        "{label}: {} records of {} B over {} partition(s), acks={}: {:.0} records/s, {:.0} MB/s, {:.2}x loopback",
        records,
        a.record_size,
        a.partitions,
        a.acks,
        records as f64 / secs,
        value_bytes / secs / 1e6,
        value_bytes / secs / loopback
    );
    Admin::new(&client).delete_topics(&[topic]).await?;
    if let Some(b) = embedded {
        b.shutdown().await?;
    }
    Ok(())
}

/// `rill bench streams` on an embedded broker (no initial rebalance delay) or `--bootstrap`.
async fn run_streams(a: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let embedded = match &a.bootstrap {
        Some(_) => None,
        None => {
            let mut config = rill_broker::BrokerConfig::new(tmp.path().join("broker"));
            config.listen = "127.0.0.1:0".parse().expect("a valid address");
            config.group.initial_rebalance_delay_ms = 0;
            Some(Broker::start(config).await?)
        }
    };
    let bootstrap = a.bootstrap.clone().unwrap_or_else(|| embedded.as_ref().expect("embedded").bootstrap());
    super::bench_streams::run(super::bench_streams::StreamsBenchArgs {
        bootstrap,
        records: a.records,
        count_records: a.count_records,
        keys: a.keys,
        record_size: a.record_size as usize,
        partitions: a.partitions,
        commit_ms: a.commit_ms,
    })
    .await?;
    if let Some(b) = embedded {
        b.shutdown().await?;
    }
    Ok(())
}

/// One batch of `batch_bytes / record_size` records (at least one) without keys, each value
/// `record_size` bytes: (the encoded batch, records in it).
pub(super) fn bench_batch(record_size: u32, batch_bytes: u64) -> anyhow::Result<(Bytes, usize)> {
    let per_batch = (batch_bytes as usize / (record_size as usize).max(1)).max(1);
    let batch = encode_batch(
        &(0..per_batch)
            .map(|i| ProducerRecord {
                key: None,
                value: Some(Bytes::from(vec![(i % 251) as u8; record_size as usize])),
                ..Default::default()
            })
            .collect::<Vec<_>>(),
        kafka_protocol::records::Compression::None,
        0,
    )?;
    Ok((batch, per_batch))
}

/// How [`produce`] sends.
pub(super) struct ProduceLoad {
    /// Partitions of the topic, each getting one batch per round.
    pub partitions: i32,
    /// Produce requests outstanding per leader.
    pub in_flight: usize,
    /// `acks` of every request.
    pub acks: i16,
}

/// What [`produce`] measured.
pub(super) struct ProduceRun {
    /// From the first request sent to the last answered.
    pub elapsed: Duration,
    /// Every request's time from sending to its answer, in completion order.
    pub latencies: Vec<Duration>,
}

/// Send `batches` copies of `batch` to `topic` through the low-level client.
pub(super) async fn produce(
    client: &Arc<Client>,
    topic: &str,
    load: &ProduceLoad,
    batch: &Bytes,
    batches: u64,
) -> anyhow::Result<ProduceRun> {
    // As Kafka producers do: each request carries one batch for every partition its broker
    // leads, with up to `in_flight` requests outstanding per broker.
    let md = client.metadata(Some(&[topic.to_string()]), false).await?;
    let leader_of = |p: i32| {
        md.topics
            .iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.partitions.iter().find(|x| x.partition == p))
            .map_or(-1, |x| x.leader)
    };
    let mut by_leader: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for p in 0..load.partitions {
        by_leader.entry(leader_of(p)).or_default().push(p);
    }
    let in_flight = load.in_flight.max(1) * by_leader.len();
    let rounds = batches.div_ceil(load.partitions as u64);
    let start = Instant::now();
    let mut latencies = Vec::with_capacity((rounds as usize).saturating_mul(by_leader.len()));
    let mut pending = JoinSet::new();
    for r in 0..rounds {
        for group in by_leader.values() {
            while pending.len() >= in_flight {
                latencies.push(pending.join_next().await.expect("non-empty")??);
            }
            let parts: Vec<(i32, Bytes)> = group
                .iter()
                .filter(|p| r * load.partitions as u64 + (**p as u64) < batches)
                .map(|p| (*p, batch.clone()))
                .collect();
            if parts.is_empty() {
                continue;
            }
            let (c, t, acks) = (client.clone(), topic.to_string(), load.acks);
            pending.spawn(async move {
                let sent = Instant::now();
                for (p, res) in c.produce_many(&t, parts, acks).await? {
                    res.map_err(|e| anyhow::anyhow!("partition {p}: {e}"))?;
                }
                anyhow::Ok(sent.elapsed())
            });
        }
    }
    while let Some(r) = pending.join_next().await {
        latencies.push(r??);
    }
    Ok(ProduceRun { elapsed: start.elapsed(), latencies })
}

/// `records` records of `--record-size` bytes without keys through the Rill producer, with
/// `batch.size` = `--batch-bytes` and `max.in.flight.requests.per.connection` = `--in-flight`;
/// timed until the last record is acknowledged.
async fn produce_records(bootstrap: &str, topic: &str, a: &BenchArgs, records: u64) -> anyhow::Result<Duration> {
    let batch_size = a.batch_bytes.min(i32::MAX as u64).to_string();
    let (in_flight, acks) = (a.in_flight.to_string(), a.acks.to_string());
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("batch.size", &batch_size),
        ("max.in.flight.requests.per.connection", &in_flight),
        ("acks", &acks),
    ])?;
    let producer = Producer::new(config).await?;
    let value = Bytes::from(vec![7u8; a.record_size as usize]);
    let start = Instant::now();
    // Every delivery is checked, the oldest first once many are outstanding (most are done by
    // then), so failures are not missed and the futures kept stay bounded.
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..records {
        let record = ProducerRecord { value: Some(value.clone()), ..Default::default() };
        pending.push_back(producer.send(topic, None, record).await?);
        if pending.len() >= 1 << 16 {
            pending.pop_front().expect("non-empty").await?;
        }
    }
    for delivery in pending {
        delivery.await?;
    }
    let elapsed = start.elapsed();
    producer.close().await;
    Ok(elapsed)
}

async fn consume(
    client: &Arc<Client>,
    topic: &str,
    partitions: i32,
    records: u64,
    fetch_bytes: i32,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    // As Kafka consumers do: one fetch per round for every partition still behind its end, each
    // partition getting an equal share of the fetch size.
    let mut offsets = Vec::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        offsets.push((p, client.list_offset(topic, p, EARLIEST).await?));
        ends.push(client.list_offset(topic, p, rill_core::client::LATEST).await?);
    }
    let per_partition = (fetch_bytes / partitions.max(1)).max(1);
    let mut count = 0u64;
    loop {
        // Stop at the ends known up front: a fetch at the log end would long-poll for
        // max.wait.ms and count that idle time as consume time.
        let behind: Vec<(i32, i64)> = offsets.iter().copied().filter(|(p, o)| *o < ends[*p as usize]).collect();
        if behind.is_empty() {
            break;
        }
        for (p, data) in client.fetch_many(topic, &behind, fetch_bytes, per_partition, 100).await? {
            let data = data?;
            let offset = &mut offsets[p as usize].1;
            // Walk batch headers: a consumer must at least find the batches and their offsets.
            let mut d = &data.records[..];
            while d.len() >= 61 {
                let len = i32::from_be_bytes(d[8..12].try_into().expect("4")) as usize + 12;
                if len > d.len() {
                    break;
                }
                let base = i64::from_be_bytes(d[0..8].try_into().expect("8"));
                let delta = i32::from_be_bytes(d[23..27].try_into().expect("4")) as i64;
                count += (base + delta + 1 - (*offset).max(base)).max(0) as u64;
                *offset = base + delta + 1;
                d = &d[len..];
            }
        }
    }
    anyhow::ensure!(count == records, "consumed {count} records, expected {records}");
    Ok(start.elapsed())
}

/// Read `records` records from the start of every partition with the Rill consumer (assigned,
/// no group), decoding each record as an application would.
async fn consume_records(bootstrap: &str, topic: &str, partitions: i32, records: u64) -> anyhow::Result<Duration> {
    use rill_core::consumer::{Consumer, ConsumerConfig};
    let config = ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("auto.offset.reset", "earliest"),
        ("max.poll.records", "100000"),
        ("fetch.max.bytes", "67108864"),
        ("max.partition.fetch.bytes", "8388608"),
    ])?;
    let start = Instant::now();
    let mut consumer = Consumer::new(config).await?;
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)))?;
    let mut count = 0u64;
    while count < records {
        count += consumer.poll(Duration::from_millis(500)).await?.len() as u64;
    }
    let elapsed = start.elapsed();
    consumer.close().await?;
    anyhow::ensure!(count == records, "consumed {count} records, expected {records}");
    Ok(elapsed)
}

/// Bytes/s through one loopback TCP connection with 1 MiB writes.
async fn loopback_rate(total: u64) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        while n < total {
            let r = s.read(&mut buf).await?;
            if r == 0 {
                break;
            }
            n += r as u64;
        }
        std::io::Result::Ok(n)
    });
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&buf).await?;
        sent += buf.len() as u64;
    }
    let got = reader.await??;
    Ok(got as f64 / start.elapsed().as_secs_f64())
}

/// Bytes/s of sequential 1 MiB writes to a new file (page cache, one fsync at the end).
fn write_rate(dir: &std::path::Path, total: u64) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("write-rate.bin");
    let mut f = std::fs::File::create(&path)?;
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut n = 0;
    while n < total {
        f.write_all(&buf)?;
        n += buf.len() as u64;
    }
    f.sync_all()?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}
