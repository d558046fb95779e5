//! `rill bench replication`: what replication costs a producer.
//!
//! One cluster of three brokers in this process (temporary directories, loopback, a metadata
//! quorum of all three) takes the raw produce load of `rill bench produce` (same batches,
//! requests in flight and partitions) in four configurations, each on its own topic:
//!
//! | configuration | replication factor | acks | what it adds to the baseline           |
//! |---------------|--------------------|------|----------------------------------------|
//! | acks=1 RF1    | 1                  | 1    | nothing: the baseline                  |
//! | acks=all RF1  | 1                  | all  | the acks=all path with nobody to wait on|
//! | acks=1 RF3    | 3                  | 1    | two followers copying, nobody waiting  |
//! | acks=all RF3  | 3 (min ISR 2)      | all  | waiting for the ISR: the figure to watch|
//!
//! Rounds alternate the configurations (each round starting at the next one) so that noise on a
//! shared machine hits all alike; each configuration's median round is reported, with the ratio
//! acks=all RF3 / acks=1 RF1 over medians and per round.
//!
//! Beside throughput: produce request latency (p50, p99 over all rounds), and the process's CPU
//! time (brokers and client together) per MB produced and per second of wall time ("cores"; the
//! machine has however many it has, shared with whatever else runs).
//!
//! During the replicated rounds a sampler reads partition 0's offsets straight from the brokers
//! (atomics, every [`SAMPLE_EVERY`]): how far the leader's high watermark trails its log end,
//! how far the followers trail, and how many replica fetches sit parked at the leader. That
//! says whether acks=all producers wait on followers that are busy or on followers that are
//! idle.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill_broker::{Broker, BrokerConfig};
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};

use super::bench::{produce, ProduceLoad, ProduceRun};

/// Brokers in the cluster.
const BROKERS: usize = 3;
/// Measured rounds per configuration.
const ROUNDS: usize = 5;
/// `segment.bytes` of the benchmark topics: small enough that dropping each round's records
/// (DeleteRecords) frees their disk space, so a run never holds more than a round's data.
const SEGMENT_BYTES: &str = "67108864";
/// How long the cluster gets to elect, register brokers and place a topic's replicas.
const CONVERGE: Duration = Duration::from_secs(30);
/// How often the sampler reads the replicated partition's offsets.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// What `rill bench replication` needs from the command line.
pub(super) struct ReplicationBenchArgs {
    /// Value bytes of each record.
    pub record_size: usize,
    /// Partitions of every topic.
    pub partitions: i32,
    /// Value bytes per configuration and round.
    pub bytes: u64,
    /// Produce requests outstanding per leader.
    pub in_flight: usize,
    /// The encoded batch every request carries (once per partition).
    pub batch: Bytes,
    /// Records in `batch`.
    pub per_batch: usize,
}

/// One configuration: a topic's replication factor and the producer's acks.
struct Setup {
    label: &'static str,
    replication_factor: i16,
    acks: i16,
}

/// The configurations, baseline first.
const SETUPS: [Setup; 4] = [
    Setup { label: "acks=1 RF1", replication_factor: 1, acks: 1 },
    Setup { label: "acks=all RF1", replication_factor: 1, acks: -1 },
    Setup { label: "acks=1 RF3", replication_factor: 3, acks: 1 },
    Setup { label: "acks=all RF3", replication_factor: 3, acks: -1 },
];
const BASELINE: usize = 0;
const REPLICATED: usize = 3;

/// Start the cluster, measure, and shut the cluster down (also when measuring failed).
pub(super) async fn run(a: ReplicationBenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let started = Instant::now();
    let brokers = start_cluster(tmp.path()).await?;
    println!("cluster: {BROKERS} brokers registered in {:.1} s", started.elapsed().as_secs_f64());
    let outcome = measure(&brokers, &a).await;
    let mut stopped = Ok(());
    for b in brokers {
        stopped = stopped.and(b.shutdown().await.context("broker shutdown failed"));
    }
    outcome.and(stopped)
}

/// Brokers 1..=3 on pre-bound loopback ports, all voters of the metadata quorum, started
/// together (each waits for a quorum of the others) and registered.
async fn start_cluster(dir: &std::path::Path) -> anyhow::Result<Vec<Broker>> {
    let listeners = (0..BROKERS)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot bind a loopback port")?;
    let mut voters = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        voters.push(format!("{}@{}", i + 1, l.local_addr()?));
    }
    let voters = voters.join(",");
    let mut starting = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = BrokerConfig::new(dir.join(format!("b{}", i + 1)));
        config.node_id = i as i32 + 1;
        config.set("controller.quorum.voters", &voters)?;
        starting.push(tokio::spawn(async move {
            let b = Broker::start_on(config, listener).await?;
            tokio::time::timeout(CONVERGE, b.wait_registered())
                .await
                .map_err(|_| anyhow::anyhow!("broker {} not registered within {CONVERGE:?}", i + 1))?;
            anyhow::Ok(b)
        }));
    }
    let mut brokers = Vec::new();
    let mut failed = None;
    for s in starting {
        match s.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(b) => brokers.push(b),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        for b in brokers {
            let _ = b.shutdown().await;
        }
        return Err(e.context("cannot start the benchmark cluster"));
    }
    Ok(brokers)
}

async fn measure(brokers: &[Broker], a: &ReplicationBenchArgs) -> anyhow::Result<()> {
    let bootstrap = brokers.iter().map(|b| b.bootstrap()).collect::<Vec<_>>().join(",");
    let client = Arc::new(Client::connect(ClientConfig::new(&bootstrap)).await?);
    let topics: Vec<String> = SETUPS
        .iter()
        .map(|s| format!("rill-bench-rf{}-acks{}-{}", s.replication_factor, s.acks, std::process::id()))
        .collect();
    for (s, topic) in SETUPS.iter().zip(&topics) {
        create_topic(&client, topic, s, a.partitions).await?;
    }
    let batch_value_bytes = (a.per_batch * a.record_size) as u64;
    let batches = (a.bytes / batch_value_bytes).max(a.partitions as u64);
    let records = batches * a.per_batch as u64;
    println!(
        "produce: {records} records of {} B ({:.1} MB) over {} partition(s) per configuration and round, \
         {} in flight, {ROUNDS} rounds",
        a.record_size,
        (records as usize * a.record_size) as f64 / 1e6,
        a.partitions,
        a.in_flight
    );
    let load = |s: &Setup| ProduceLoad { partitions: a.partitions, in_flight: a.in_flight, acks: s.acks };
    // Warm up every path (connections, leaders' follower state, page cache) before timing.
    let warmup = (a.in_flight as u64 * 2).max(a.partitions as u64);
    for (s, topic) in SETUPS.iter().zip(&topics) {
        produce(&client, topic, &load(s), &a.batch, warmup).await.with_context(|| format!("{} warm-up", s.label))?;
    }
    let mut runs: Vec<Vec<ProduceRun>> = SETUPS.iter().map(|_| Vec::new()).collect();
    let mut lags: Vec<Lag> = SETUPS.iter().map(|_| Lag::default()).collect();
    // Process CPU time (brokers and client alike) and wall time, summed over rounds.
    let (mut cpu, mut wall) = (vec![Duration::ZERO; SETUPS.len()], vec![Duration::ZERO; SETUPS.len()]);
    // Time the followers needed after each round to reach the leader's end, summed over rounds.
    let mut catch_up = vec![Duration::ZERO; SETUPS.len()];
    for round in 0..ROUNDS {
        for k in 0..SETUPS.len() {
            let i = (round + k) % SETUPS.len();
            let sampler = if SETUPS[i].replication_factor > 1 {
                Some(Sampler::start(&client, brokers, &topics[i]).await?)
            } else {
                None
            };
            let cpu_before = cpu_time();
            let run = produce(&client, &topics[i], &load(&SETUPS[i]), &a.batch, batches)
                .await
                .with_context(|| format!("{} round {}", SETUPS[i].label, round + 1))?;
            cpu[i] += cpu_time().saturating_sub(cpu_before);
            wall[i] += run.elapsed;
            if let Some(s) = sampler {
                lags[i].add(s.stop().await?);
            }
            runs[i].push(run);
            // Under acks=1 the followers are still copying when the producer is done: let them
            // finish (untimed) so their work does not land in the next configuration's round.
            let caught_up = caught_up(&client, brokers, &topics[i]).await?;
            catch_up[i] += caught_up;
            for p in 0..a.partitions {
                Admin::new(&client).delete_records(&topics[i], p, -1).await?;
            }
        }
    }
    let value_bytes = (records as usize * a.record_size) as f64;
    println!(
        "{:<13} {:>9} {:>11} {:>9} {:>9} {:>9} {:>7}   MB/s per round",
        "configuration", "MB/s", "records/s", "p50 ms", "p99 ms", "CPU ms/MB", "cores"
    );
    let mut medians = Vec::new();
    for (i, (s, rs)) in SETUPS.iter().zip(&runs).enumerate() {
        let secs = median(rs.iter().map(|r| r.elapsed.as_secs_f64()).collect());
        let mut lat: Vec<Duration> = rs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        lat.sort_unstable();
        let per_round: Vec<String> =
            rs.iter().map(|r| format!("{:.0}", value_bytes / r.elapsed.as_secs_f64() / 1e6)).collect();
        println!(
            "{:<13} {:>9.0} {:>11.0} {:>9.1} {:>9.1} {:>9.2} {:>7.2}   {}",
            s.label,
            value_bytes / secs / 1e6,
            records as f64 / secs,
            quantile(&lat, 0.50).as_secs_f64() * 1e3,
            quantile(&lat, 0.99).as_secs_f64() * 1e3,
            cpu[i].as_secs_f64() * 1e3 / (value_bytes * rs.len() as f64 / 1e6),
            cpu[i].as_secs_f64() / wall[i].as_secs_f64(),
            per_round.join(" ")
        );
        medians.push(secs);
    }
    let per_round: Vec<String> = runs[BASELINE]
        .iter()
        .zip(&runs[REPLICATED])
        .map(|(b, r)| format!("{:.2}", b.elapsed.as_secs_f64() / r.elapsed.as_secs_f64()))
        .collect();
    println!(
        "{} / {}: {:.2}x (per round: {})",
        SETUPS[REPLICATED].label,
        SETUPS[BASELINE].label,
        medians[BASELINE] / medians[REPLICATED],
        per_round.join(" ")
    );
    for (i, (s, lag)) in SETUPS.iter().zip(&lags).enumerate().filter(|(_, (_, l))| l.samples > 0) {
        let n = lag.samples as f64;
        println!(
            "{:<13} partition 0, mean over {} samples: high watermark {:.0} records behind the leader's end, \
             followers {:.0} behind; {:.2} of 2 replica fetches parked at the leader; \
             followers caught up {:.0} ms after the last ack (mean)",
            s.label,
            lag.samples,
            lag.hw_behind / n,
            lag.followers_behind / n,
            lag.parked / n,
            catch_up[i].as_secs_f64() * 1e3 / ROUNDS as f64
        );
    }
    Admin::new(&client).delete_topics(&topics).await?;
    Ok(())
}

/// Wait until every replica of every partition of `topic` has the leader's log end and the
/// leader's high watermark is there too; how long that took.
async fn caught_up(client: &Client, brokers: &[Broker], topic: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let md = client.metadata(Some(&[topic.to_string()]), false).await?;
    let parts = md.topics.iter().find(|t| t.name == topic).map(|t| t.partitions.clone()).unwrap_or_default();
    // Only the assigned replicas: other brokers may hold an empty log of the partition.
    let logs: Vec<(i32, Vec<Arc<rill_broker::log::Log>>)> = parts
        .iter()
        .map(|p| {
            let on =
                |id: &i32| brokers.get((*id - 1) as usize).and_then(|b| b.state().topics.partition(topic, p.partition));
            (p.partition, p.replicas.iter().filter_map(on).collect())
        })
        .collect();
    loop {
        let done = logs.iter().all(|(_, ls)| {
            let end = ls.iter().map(|l| l.end_offset_hint()).max().unwrap_or(0);
            ls.iter().all(|l| l.end_offset_hint() == end) && ls.iter().map(|l| l.high_watermark()).max() == Some(end)
        });
        if done {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= CONVERGE {
            let offsets: Vec<String> = logs
                .iter()
                .flat_map(|(p, ls)| {
                    ls.iter().map(move |l| format!("{p}: end {} hw {}", l.end_offset_hint(), l.high_watermark()))
                })
                .collect();
            anyhow::bail!("{topic}: replicas not caught up within {CONVERGE:?} ({})", offsets.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sums over samples of a replicated partition (means are these over `samples`).
#[derive(Debug, Default, Clone, Copy)]
struct Lag {
    samples: u64,
    /// Leader's log end minus its high watermark, in records.
    hw_behind: f64,
    /// Leader's log end minus a follower's, averaged over the followers.
    followers_behind: f64,
    /// Fetches parked at the leader (the followers' long polls; no consumer runs).
    parked: f64,
}

impl Lag {
    fn add(&mut self, o: Lag) {
        self.samples += o.samples;
        self.hw_behind += o.hw_behind;
        self.followers_behind += o.followers_behind;
        self.parked += o.parked;
    }
}

/// Reads partition 0's offsets on its leader and followers until stopped.
struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Lag>,
}

impl Sampler {
    async fn start(client: &Client, brokers: &[Broker], topic: &str) -> anyhow::Result<Self> {
        let md = client.metadata(Some(&[topic.to_string()]), false).await?;
        let p = md
            .topics
            .iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.partitions.first())
            .with_context(|| format!("{topic} has no partition 0"))?;
        let log_on = |id: i32| {
            brokers
                .get((id - 1) as usize)
                .and_then(|b| b.state().topics.partition(topic, 0))
                .with_context(|| format!("broker {id} has no replica of {topic}-0"))
        };
        let leader = log_on(p.leader)?;
        let followers =
            p.replicas.iter().filter(|r| **r != p.leader).map(|r| log_on(*r)).collect::<anyhow::Result<Vec<_>>>()?;
        let leader_state = brokers[(p.leader - 1) as usize].state().clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut lag = Lag::default();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => return lag,
                }
                let end = leader.end_offset_hint();
                lag.samples += 1;
                lag.hw_behind += (end - leader.high_watermark()) as f64;
                let behind: i64 = followers.iter().map(|f| end - f.end_offset_hint()).sum();
                lag.followers_behind += behind as f64 / followers.len().max(1) as f64;
                lag.parked += leader_state.fetches_waiting.load(std::sync::atomic::Ordering::Relaxed) as f64;
            }
        });
        Ok(Self { stop, task })
    }

    async fn stop(self) -> anyhow::Result<Lag> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

/// Create `topic` for `s` and wait until every partition has a leader and its full ISR, so that
/// no round measures an ISR still forming.
async fn create_topic(client: &Client, topic: &str, s: &Setup, partitions: i32) -> anyhow::Result<()> {
    let mut configs = BTreeMap::from([("segment.bytes".to_string(), SEGMENT_BYTES.to_string())]);
    if s.replication_factor > 1 {
        configs.insert("min.insync.replicas".to_string(), "2".to_string());
    }
    let new = NewTopic { name: topic.to_string(), partitions, replication_factor: s.replication_factor, configs };
    Admin::new(client).create_topics(&[new], false).await.with_context(|| format!("cannot create {topic}"))?;
    let deadline = Instant::now() + CONVERGE;
    loop {
        let md = client.metadata(Some(&[topic.to_string()]), false).await?;
        let ready = md.topics.iter().find(|t| t.name == topic).is_some_and(|t| {
            t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader >= 0 && p.isr.len() == s.replication_factor as usize)
        });
        if ready {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{topic}: leaders and full ISRs not within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// User and system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given, which is zeroed plain data.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a pointer to a live rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The `q` quantile of sorted `xs` (nearest rank); zero when empty.
fn quantile(xs: &[Duration], q: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}
