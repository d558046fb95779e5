//! `rill bench streams`: streams applications beside a hand-written consume-transform-produce
//! loop, on the same broker in the same run.
//!
//! Workloads, each with a fresh input topic, output topic and application.id:
//! - the hand-written loop: Rill consumer and producer, the map and filter in plain code;
//! - stateless: the DSL's `map_values` + `filter` -> `to`, under at_least_once and exactly_once_v2;
//! - count: `group_by_key().count()` into a RocksDB store (change-logged, no cache: one output per
//!   input), under at_least_once and exactly_once_v2;
//! - windowed count: the same per one-hour tumbling window (a RocksDB window store), exactly once;
//! - join: a second input topic with the same keys, joined record by record with
//!   `join_windowed` (one-hour windows; every key once on each side, so one output per pair),
//!   exactly once. No latency phase (a record alone has no partner).
//!
//! A run pre-produces its input (100 B values by default, keys spread over `--keys`), starts the
//! application, and watches the output's last stable offsets (what a read_committed consumer
//! may read). The rate is input records/s in steady state: the inputs whose outputs became
//! readable between the moments a fifth and four fifths of the outputs were, over that time. A
//! read_committed reader then checks every expected output is there (and, for count, that the
//! last counts add up to the inputs). Then the application, now caught up, gets records at a
//! steady rate for a second and the reader measures end-to-end latency: the time a record is
//! read from the output minus the timestamp its input record got when it was produced.
//! Workloads run in order and then in reverse order (A-B-B-A), each time with half the records,
//! so that drift during the run (logs growing, page-cache writeback, neighbours) weighs on all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};
use rill_core::streams::runtime::{KafkaStreams, StreamsConfig};
use rill_dsl::{JoinWindows, Materialized, StreamsBuilder, TimeWindows};

use super::bench_streams_io::{self as io, HandLoop, Reader};

/// Records/s of the latency phase.
const LATENCY_RATE: u64 = 10_000;
/// Records of the latency phase (one second's worth).
const LATENCY_RECORDS: u64 = LATENCY_RATE;
/// A run that takes longer than this fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of `rill bench streams`.
pub struct StreamsBenchArgs {
    /// Broker address.
    pub bootstrap: String,
    /// Input records per workload (over both halves): the loop and the stateless workloads.
    pub records: u64,
    /// Input records per count workload (over both halves).
    pub count_records: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Value size in bytes (at least 8).
    pub record_size: usize,
    /// Partitions of every input and output topic.
    pub partitions: i32,
    /// `commit.interval.ms` under exactly-once.
    pub commit_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// A tumbling-window count, exactly once.
    Windowed,
    /// A stream-stream windowed join of two topics, exactly once.
    Join,
    HandWritten,
    Stateless {
        eos: bool,
    },
    Count {
        eos: bool,
    },
}

impl Workload {
    const ALL: [Workload; 7] = [
        Workload::HandWritten,
        Workload::Stateless { eos: false },
        Workload::Stateless { eos: true },
        Workload::Count { eos: false },
        Workload::Count { eos: true },
        Workload::Windowed,
        Workload::Join,
    ];

    fn label(self) -> &'static str {
        match self {
            Workload::HandWritten => "hand-written loop (consume, map, filter, produce)",
            Workload::Stateless { eos: false } => "stateless map+filter, at_least_once",
            Workload::Stateless { eos: true } => "stateless map+filter, exactly_once_v2",
            Workload::Count { eos: false } => "count (RocksDB), at_least_once",
            Workload::Count { eos: true } => "count (RocksDB), exactly_once_v2",
            Workload::Windowed => "tumbling windowed count (RocksDB window store), exactly_once_v2",
            Workload::Join => "stream-stream windowed join, exactly_once_v2",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Workload::HandWritten => "loop",
            Workload::Stateless { eos: false } => "map-alos",
            Workload::Stateless { eos: true } => "map-eos",
            Workload::Count { eos: false } => "count-alos",
            Workload::Count { eos: true } => "count-eos",
            Workload::Windowed => "window-eos",
            Workload::Join => "join-eos",
        }
    }

    /// Output records for input sequence numbers `from..to`.
    fn outputs(self, from: u64, to: u64) -> u64 {
        match self {
            Workload::Count { .. } | Workload::Windowed | Workload::Join => to - from,
            _ => io::kept(from, to),
        }
    }
}

/// What the runs of one workload add up to.
#[derive(Default)]
struct Totals {
    /// Input records whose outputs were read in the timed windows.
    records: f64,
    busy: Duration,
    startup: Duration,
    runs: u32,
    latencies: Vec<i64>,
}

/// Run every workload and print records/s, ratios and latencies.
pub async fn run(a: StreamsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.record_size >= 8, "--record-size must be at least 8 for streams (a sequence number)");
    anyhow::ensure!(
        a.keys >= 1 && a.records >= 10 && a.count_records >= 10,
        "--keys must be at least 1, --records and --count-records at least 10"
    );
    println!(
        "streams: {} records of {} B per workload ({} for count), {} keys, {} partition(s); map+filter keeps \
         9 in 10; latency at {} records/s",
        a.records, a.record_size, a.count_records, a.keys, a.partitions, LATENCY_RATE
    );
    let client = Client::connect(ClientConfig::new(&a.bootstrap)).await?;
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let mut totals: BTreeMap<usize, Totals> = BTreeMap::new();
    // A-B-B-A: every workload once in order, then once in reverse, half the records each time.
    let order: Vec<usize> = (0..Workload::ALL.len()).chain((0..Workload::ALL.len()).rev()).collect();
    for (pass, &w) in order.iter().enumerate() {
        let workload = Workload::ALL[w];
        let half = match workload {
            Workload::Count { .. } | Workload::Windowed | Workload::Join => a.count_records / 2,
            _ => a.records / 2,
        };
        let r = run_one(&a, &client, state.path(), workload, pass, half)
            .await
            .with_context(|| format!("workload {}", workload.label()))?;
        let t = totals.entry(w).or_default();
        t.records += r.records;
        t.busy += r.busy;
        t.startup += r.startup;
        t.runs += 1;
        t.latencies.extend(r.latencies);
    }
    let rate = |w: Workload| {
        let i = Workload::ALL.iter().position(|x| *x == w).expect("a workload");
        let t = &totals[&i];
        t.records / t.busy.as_secs_f64()
    };
    let rates: Vec<f64> = Workload::ALL.iter().map(|w| rate(*w)).collect();
    let (baseline, count_alos) = (rates[0], rates[3]);
    for (i, w) in Workload::ALL.iter().enumerate() {
        let t = totals.get_mut(&i).expect("every workload ran");
        let r = rates[i];
        let ratio = match w {
            Workload::HandWritten => String::new(),
            Workload::Stateless { .. } => format!(", {:.2}x the loop (target >= 0.7x)", r / baseline),
            Workload::Count { eos: false } => String::new(),
            Workload::Count { eos: true } => {
                format!(", {:.2}x at_least_once (target >= 0.85x)", r / count_alos)
            }
            Workload::Windowed | Workload::Join => format!(", {:.2}x the loop", r / baseline),
        };
        t.latencies.sort_unstable();
        let latency = match t.latencies.last() {
            None => "no latency phase".to_string(),
            Some(max) => format!(
                "latency p50 {} ms, p99 {} ms, max {max} ms",
                percentile(&t.latencies, 0.50),
                percentile(&t.latencies, 0.99)
            ),
        };
        println!(
            "{}: {:.0} records/s{ratio}; first output after {:.0} ms; {latency}",
            w.label(),
            r,
            t.startup.as_secs_f64() * 1e3 / t.runs as f64,
        );
    }
    Ok(())
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One run of one workload.
struct RunResult {
    /// Input records whose outputs were read in the timed window.
    records: f64,
    /// The timed window.
    busy: Duration,
    /// From starting the application to the first output read.
    startup: Duration,
    /// Latencies of the steady-rate phase, ms.
    latencies: Vec<i64>,
}

enum App {
    Streams(Box<KafkaStreams>),
    Loop(HandLoop),
}

async fn run_one(
    a: &StreamsBenchArgs,
    client: &Client,
    state: &std::path::Path,
    workload: Workload,
    pass: usize,
    records: u64,
) -> anyhow::Result<RunResult> {
    // The workload first: thread names (as perf shows them) start with the application.id.
    let app_id = format!("{}-{pass}-bench-streams-{}", workload.short(), std::process::id());
    let (input, output) = (format!("{app_id}-in"), format!("{app_id}-out"));
    let right = format!("{app_id}-right");
    let topics = [&input, &output, &right].map(|t| NewTopic {
        name: t.clone(),
        partitions: a.partitions,
        replication_factor: -1,
        configs: Default::default(),
    });
    Admin::new(client).create_topics(&topics, false).await?;
    // The join: every key once on each side.
    let keys = if workload == Workload::Join { records } else { a.keys };
    io::produce_input(&a.bootstrap, &input, 0, records, keys, a.record_size).await?;
    if workload == Workload::Join {
        io::produce_input(&a.bootstrap, &right, 0, records, keys, a.record_size).await?;
    }

    let count_keys = matches!(workload, Workload::Count { .. } | Workload::Windowed).then_some(a.keys);
    let mut reader = Reader::new(&a.bootstrap, &output, a.partitions, count_keys).await?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let started = Instant::now();
    let app = start(a, workload, &app_id, &input, &output, state).await?;
    // The rate in steady state: between the moments a fifth and four fifths of the outputs were
    // readable. Startup stays out, and so does the wait for the last commit at the end (under
    // exactly-once, outputs become readable a commit at a time, so both ends of the window fall
    // on commits and the window holds whole commit intervals). The reader reads everything
    // after that, to check it; reading alongside would take CPU from the application.
    let expected = workload.outputs(0, records);
    let [(first, _), (t_a, n_a), (t_b, n_b)] =
        io::watch_end(client, &output, a.partitions, [1, expected / 5, expected * 4 / 5], deadline).await?;
    reader.read_until(expected, deadline, None).await?;

    // Latency: the application is caught up; records come at a steady rate (not for the join:
    // a record alone has no partner).
    let latency_records = if workload == Workload::Join { 0 } else { LATENCY_RECORDS };
    let feeder = {
        let (bootstrap, input, size, keys) = (a.bootstrap.clone(), input.clone(), a.record_size, a.keys);
        tokio::spawn(async move {
            io::produce_paced(&bootstrap, &input, records, latency_records, LATENCY_RATE, keys, size).await
        })
    };
    let mut latencies = Vec::with_capacity(latency_records as usize);
    let target = workload.outputs(0, records + latency_records);
    let read = reader.read_until(target, deadline, Some(&mut latencies)).await;
    feeder.await??;
    read?;

    match app {
        App::Streams(s) => {
            s.close(Duration::from_secs(60)).await?;
            let dir = state.join(&app_id);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        App::Loop(l) => l.stop().await?,
    }
    // (Windowed counts add up to the inputs too unless the run crossed an hour boundary.)
    if let Some(sum) = reader.counted().filter(|_| workload != Workload::Windowed) {
        anyhow::ensure!(
            sum == (records + latency_records) as i64,
            "the last counts per key add up to {sum}, expected {}",
            records + latency_records
        );
    }
    anyhow::ensure!(reader.seen() == target, "read {} output records, expected {target}", reader.seen());
    reader.close().await?;
    let ours: Vec<String> =
        Admin::new(client).list_topics().await?.into_iter().filter(|t| t.starts_with(&app_id)).collect();
    Admin::new(client).delete_topics(&ours).await?;
    anyhow::ensure!(t_b > t_a, "the outputs came too fast to time a window; use more --records");
    // In input records: the stateless workloads write 9 outputs for 10 inputs.
    let inputs = (n_b - n_a) as f64 * records as f64 / expected as f64;
    Ok(RunResult { records: inputs, busy: t_b - t_a, startup: first - started, latencies })
}

async fn start(
    a: &StreamsBenchArgs,
    workload: Workload,
    app_id: &str,
    input: &str,
    output: &str,
    state: &std::path::Path,
) -> anyhow::Result<App> {
    let eos = match workload {
        Workload::HandWritten => {
            let l = HandLoop::spawn(
                a.bootstrap.clone(),
                app_id.to_string(),
                input.to_string(),
                output.to_string(),
                rill_core::streams::runtime::DEFAULT_COMMIT_INTERVAL_ALOS,
            )?;
            return Ok(App::Loop(l));
        }
        Workload::Stateless { eos } | Workload::Count { eos } => eos,
        Workload::Windowed | Workload::Join => true,
    };
    let builder = StreamsBuilder::new();
    let source = builder.stream::<String, Bytes>(input);
    let hour = Duration::from_secs(3600);
    match workload {
        Workload::Count { .. } => {
            source.group_by_key().count_with(Materialized::as_("counts").persistent()).to_stream().to(output)
        }
        Workload::Windowed => source
            .group_by_key()
            .windowed_by(TimeWindows::of_size_and_grace(hour, hour))
            .count_with(Materialized::as_("window-counts").persistent())
            .to_stream()
            .map(|w, n| (w.key, n))
            .to(output),
        Workload::Join => {
            let other = builder.stream::<String, Bytes>(&format!("{app_id}-right"));
            source
                .join_windowed(&other, |_, l: Bytes, _r: Bytes| l, JoinWindows::of_time_difference_with_no_grace(hour))
                .to(output)
        }
        _ => source.map_values(|v: Bytes| io::transform(&v)).filter(|_, v| io::keep(v)).to(output),
    }
    let built = builder.build(app_id)?;
    let state_dir = state.join(app_id);
    let commit_ms = a.commit_ms.to_string();
    let mut props = vec![
        ("application.id", app_id),
        ("bootstrap.servers", a.bootstrap.as_str()),
        ("processing.guarantee", if eos { "exactly_once_v2" } else { "at_least_once" }),
        ("state.dir", state_dir.to_str().context("a UTF-8 state directory")?),
    ];
    if eos {
        props.push(("commit.interval.ms", &commit_ms));
    }
    let mut app = built.into_streams(StreamsConfig::from_properties(props)?);
    app.start().await?;
    Ok(App::Streams(Box::new(app)))
}
