//! The parts of `rill bench streams` that talk to the broker with plain clients: the input
//! records and the transform every workload applies, the feeders, the output reader that times a
//! run and measures latency, and the hand-written consume-transform-produce loop (the baseline).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill_core::client::{Client, IsolationLevel, LATEST};
use rill_core::consumer::{Consumer, ConsumerConfig};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;

/// The filter drops every record whose sequence number is a multiple of this.
const DROP_EVERY: u64 = 10;

/// The key of input record `seq`: one of `keys` keys, in turn.
pub fn key(seq: u64, keys: u64) -> String {
    format!("k{}", seq % keys)
}

/// The value of input record `seq`: its sequence number (8 bytes, big-endian), then lower-case
/// letters up to `size` bytes (at least 8).
pub fn value(seq: u64, size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size.max(8));
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend((8..size).map(|j| b'a' + ((seq as usize + j) % 26) as u8));
    Bytes::from(v)
}

/// The map step of the stateless workloads: the payload after the sequence number upper-cased
/// into a new value.
pub fn transform(v: &[u8]) -> Bytes {
    let mut out = v.to_vec();
    if out.len() > 8 {
        out[8..].make_ascii_uppercase();
    }
    Bytes::from(out)
}

/// The filter step: keeps nine records in ten (by sequence number).
pub fn keep(v: &[u8]) -> bool {
    let seq = v.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))).unwrap_or(0);
    seq % DROP_EVERY != 0
}

/// How many of the sequence numbers `from..to` the filter keeps.
pub fn kept(from: u64, to: u64) -> u64 {
    let dropped = |n: u64| n.div_ceil(DROP_EVERY); // multiples of DROP_EVERY below n
    (to - from) - (dropped(to) - dropped(from))
}

fn producer_config(bootstrap: &str, linger_ms: &str) -> anyhow::Result<ProducerConfig> {
    Ok(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("batch.size", "262144"),
        ("linger.ms", linger_ms),
    ])?)
}

/// Produce input records `from..to` as fast as the producer goes; returns when every one is
/// acknowledged.
pub async fn produce_input(
    bootstrap: &str,
    topic: &str,
    from: u64,
    to: u64,
    keys: u64,
    size: usize,
) -> anyhow::Result<()> {
    let producer = Producer::new(producer_config(bootstrap, "5")?).await?;
    let mut pending = std::collections::VecDeque::new();
    for seq in from..to {
        let record = ProducerRecord {
            key: Some(Bytes::from(key(seq, keys))),
            value: Some(value(seq, size)),
            ..Default::default()
        };
        pending.push_back(producer.send(topic, None, record).await?);
        if pending.len() >= 1 << 16 {
            pending.pop_front().expect("non-empty").await?;
        }
    }
    for d in pending {
        d.await?;
    }
    producer.close().await;
    Ok(())
}

/// Produce input records `from..from + count` at `rate` records/s, each stamped with the time
/// it is sent (`linger.ms=0`, so the producer adds no wait of its own).
pub async fn produce_paced(
    bootstrap: &str,
    topic: &str,
    from: u64,
    count: u64,
    rate: u64,
    keys: u64,
    size: usize,
) -> anyhow::Result<()> {
    let producer = Producer::new(producer_config(bootstrap, "0")?).await?;
    let mut pending = Vec::with_capacity(count as usize);
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0;
    while sent < count {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(count);
        while sent < due {
            let seq = from + sent;
            let record = ProducerRecord {
                key: Some(Bytes::from(key(seq, keys))),
                value: Some(value(seq, size)),
                ..Default::default()
            };
            pending.push(producer.send(topic, None, record).await?);
            sent += 1;
        }
    }
    for d in pending {
        d.await?;
    }
    producer.close().await;
    Ok(())
}

/// Watch the end of `topic` as a read_committed consumer sees it (the sum over partitions of
/// the last stable offset, polled every 5 ms) until it reaches each of `marks`; returns, per
/// mark, when it was first seen at or past it and the sum then. Under exactly-once the sum also
/// counts the transaction markers (one per partition per commit), a few in a hundred thousand.
pub async fn watch_end<const N: usize>(
    client: &Client,
    topic: &str,
    partitions: i32,
    marks: [u64; N],
    deadline: Instant,
) -> anyhow::Result<[(Instant, u64); N]> {
    let mut seen: [Option<(Instant, u64)>; N] = [None; N];
    while seen.iter().any(Option::is_none) {
        anyhow::ensure!(Instant::now() < deadline, "the output of {topic} did not reach {marks:?} in time");
        // One partition after the other: each answer takes a fraction of a millisecond.
        let mut sum = 0;
        for p in 0..partitions {
            sum += client.list_offset_isolated(topic, p, LATEST, IsolationLevel::ReadCommitted).await?.max(0) as u64;
        }
        let now = Instant::now();
        for (mark, at) in marks.iter().zip(seen.iter_mut()) {
            if at.is_none() && sum >= *mark {
                *at = Some((now, sum));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(seen.map(|s| s.expect("every mark seen")))
}

/// Reads a workload's output topic (read_committed, from the start, no group) and counts it.
pub struct Reader {
    consumer: Consumer,
    seen: u64,
    /// For the count workloads: the last count read per key index.
    counts: Option<Vec<i64>>,
}

impl Reader {
    /// A reader of every partition of `topic`; with `keys`, it also keeps the last count per key.
    pub async fn new(bootstrap: &str, topic: &str, partitions: i32, keys: Option<u64>) -> anyhow::Result<Self> {
        let mut consumer = Consumer::new(ConsumerConfig::from_properties([
            ("bootstrap.servers", bootstrap),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("max.poll.records", "100000"),
            ("fetch.max.bytes", "67108864"),
            ("max.partition.fetch.bytes", "8388608"),
            ("fetch.max.wait.ms", "100"),
        ])?)
        .await?;
        consumer.assign((0..partitions).map(|p| (topic.to_string(), p)))?;
        Ok(Self { consumer, seen: 0, counts: keys.map(|k| vec![0; k as usize]) })
    }

    /// Read until `target` records have been read in all. With `latencies`, each record's age
    /// when read (now minus its timestamp, ms) is pushed.
    pub async fn read_until(
        &mut self,
        target: u64,
        deadline: Instant,
        mut latencies: Option<&mut Vec<i64>>,
    ) -> anyhow::Result<()> {
        while self.seen < target {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the output had {} of the {target} records expected at the deadline",
                self.seen
            );
            let records = self.consumer.poll(Duration::from_millis(100)).await?;
            let now_ms = wall_clock_ms();
            for r in &records {
                if let Some(l) = latencies.as_deref_mut() {
                    l.push(now_ms - r.timestamp);
                }
                if let Some(counts) = &mut self.counts {
                    let key = r.key.as_deref().unwrap_or_default();
                    let index: usize = std::str::from_utf8(key)
                        .ok()
                        .and_then(|k| k.strip_prefix('k'))
                        .and_then(|n| n.parse().ok())
                        .filter(|i| *i < counts.len())
                        .with_context(|| format!("unexpected key {key:?} in the output"))?;
                    let v = r.value.as_deref().context("a null count in the output")?;
                    counts[index] = i64::from_be_bytes(v.try_into().context("a count that is not 8 bytes")?);
                }
            }
            self.seen += records.len() as u64;
        }
        Ok(())
    }

    /// Records read so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sum of the last counts per key (the count workloads), which must equal the inputs.
    pub fn counted(&self) -> Option<i64> {
        self.counts.as_ref().map(|c| c.iter().sum())
    }

    /// Close the consumer.
    pub async fn close(self) -> anyhow::Result<()> {
        Ok(self.consumer.close().await?)
    }
}

/// Milliseconds since the epoch, as record timestamps count.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The hand-written consume-transform-produce loop, running on its own thread.
pub struct HandLoop {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl HandLoop {
    /// Start the loop as a member of `group`: read `input`, apply [`transform`] and [`keep`],
    /// write to `output` keyed as the input and with the input's timestamp; flush and commit
    /// offsets every `commit_interval`. Like a stream thread: a dedicated OS thread with a
    /// single-threaded runtime, the same consumer and producer settings.
    pub fn spawn(
        bootstrap: String,
        group: String,
        input: String,
        output: String,
        commit_interval: Duration,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name(format!("{group}-loop")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(hand_loop(&bootstrap, &group, &input, &output, commit_interval, &flag))
        })?;
        Ok(Self { stop, handle })
    }

    /// Stop the loop (it commits what it processed) and return its error, if any.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        let handle = self.handle;
        tokio::task::spawn_blocking(move || handle.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the hand-written loop panicked"))?
    }
}

async fn hand_loop(
    bootstrap: &str,
    group: &str,
    input: &str,
    output: &str,
    commit_interval: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut consumer = Consumer::new(ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
        ("partition.assignment.strategy", "range"),
    ])?)
    .await?;
    consumer.subscribe([input.to_string()])?;
    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("acks", "all"),
        ("linger.ms", "5"),
    ])?)
    .await?;
    let mut positions: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut outputs = Vec::new();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Acquire) {
        for r in consumer.poll(Duration::from_millis(100)).await? {
            let v = r.record.value.as_deref().unwrap_or_default();
            let mapped = transform(v);
            if keep(&mapped) {
                let record = ProducerRecord {
                    key: r.record.key.clone(),
                    value: Some(mapped),
                    headers: Vec::new(),
                    timestamp: Some(r.record.timestamp),
                };
                outputs.push(producer.send(output, None, record).await?);
            }
            positions.insert((r.topic.to_string(), r.partition), r.record.offset + 1);
        }
        if last_commit.elapsed() >= commit_interval {
            commit(&consumer, &producer, &mut outputs, &positions).await?;
            last_commit = Instant::now();
        }
    }
    commit(&consumer, &producer, &mut outputs, &positions).await?;
    producer.close().await;
    consumer.close().await?;
    Ok(())
}

async fn commit(
    consumer: &Consumer,
    producer: &Producer,
    outputs: &mut Vec<rill_core::producer::DeliveryFuture>,
    positions: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<()> {
    producer.flush().await;
    for d in outputs.drain(..) {
        d.await?;
    }
    if !positions.is_empty() {
        consumer.commit_offsets(positions).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_counts_what_keep_keeps() {
        for (from, to) in [(0, 0), (0, 1), (0, 10), (0, 11), (3, 27), (10, 20), (9, 101)] {
            let want = (from..to).filter(|s| keep(&transform(&value(*s, 100)))).count() as u64;
            assert_eq!(kept(from, to), want, "{from}..{to}");
        }
    }

    #[test]
    fn values_carry_their_sequence_and_size() {
        let v = value(1234, 100);
        assert_eq!(v.len(), 100);
        assert_eq!(u64::from_be_bytes(v[..8].try_into().unwrap()), 1234);
        let t = transform(&v);
        assert_eq!(&t[..8], &v[..8]);
        assert!(t[8..].iter().all(u8::is_ascii_uppercase));
        assert_eq!(key(100_007, 100_000), "k7");
    }
}
