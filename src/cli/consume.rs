//! `rill consume`: print records of a topic, alone (`--partition`, `--from`) or as a member of a
//! consumer group (`--group`), which commits after printing each batch and leaves the group
//! cleanly on Ctrl-C or SIGTERM.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rill_core::client::{Client, ClientConfig, IsolationLevel, EARLIEST, LATEST};
use rill_core::records::{decode_fetched, ConsumerRecord};

/// Arguments of `rill consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Broker to read from.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Partitions to read (repeatable); all of them if omitted.
    #[arg(long = "partition")]
    partitions: Vec<i32>,
    /// Where to start: `earliest`, `latest`, or an offset.
    #[arg(long, default_value = "latest", value_parser = parse_start)]
    from: Start,
    /// Shorthand for `--from earliest`.
    #[arg(long, conflicts_with = "from")]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop after this long without a new record (e.g. `5s`, `500ms`); run until Ctrl-C if omitted.
    #[arg(long, value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// How keys and values are printed.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print `partition:offset` before each record.
    #[arg(long)]
    print_offset: bool,
    /// Print the key before the value, separated by a tab.
    #[arg(long)]
    print_key: bool,
    /// Print headers after the value as `k=v,k=v`.
    #[arg(long)]
    print_headers: bool,
    /// Which records to show: `read_committed` (the default, as librdkafka's) skips aborted
    /// transactions and stops before open ones; `read_uncommitted` shows everything written.
    #[arg(long, value_enum, default_value_t = Isolation::ReadCommitted)]
    isolation: Isolation,
    /// Join this consumer group: partitions are assigned by the group and offsets committed to
    /// it; where the group has no committed offset, `--from earliest|latest` decides.
    #[arg(long, conflicts_with = "partitions")]
    group: Option<String>,
    /// A consumer property with its Kafka name, e.g. `--property session.timeout.ms=10000`
    /// (repeatable; with `--group`).
    #[arg(long = "property", value_parser = super::parse_kv, requires = "group")]
    properties: Vec<(String, String)>,
}

/// `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    /// Only records of committed transactions (and non-transactional ones).
    #[value(name = "read_committed")]
    ReadCommitted,
    /// Every record.
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
}

impl Isolation {
    fn level(self) -> IsolationLevel {
        match self {
            Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
            Isolation::ReadUncommitted => IsolationLevel::ReadUncommitted,
        }
    }
    fn property(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// UTF-8 text (invalid bytes replaced).
    Text,
    /// Lower-case hex.
    Hex,
}

fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Start::Offset)
            .ok_or_else(|| format!("'{s}' is not earliest, latest or an offset >= 0")),
    }
}

/// Parse `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = n.parse().map_err(|_| format!("'{s}' is not a duration like 500ms, 5s or 2m"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(60 * n),
        _ => return Err(format!("'{s}' is not a duration like 500ms, 5s or 2m")),
    })
}

pub async fn run(a: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = a.group.clone() {
        return run_group(a, group).await;
    }
    let client = Client::connect(ClientConfig::new(&a.bootstrap)).await?;
    let md = client.metadata(Some(std::slice::from_ref(&a.topic)), false).await?;
    let info =
        md.topics.iter().find(|t| t.name == a.topic && t.error_code == 0).ok_or_else(|| {
            anyhow::anyhow!("topic '{}' does not exist; create it with `rill topics create`", a.topic)
        })?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions = if a.partitions.is_empty() { all.clone() } else { a.partitions.clone() };
    if let Some(p) = partitions.iter().find(|p| !all.contains(p)) {
        anyhow::bail!("topic '{}' has no partition {p}; it has {}", a.topic, all.len());
    }
    let start = if a.from_beginning { Start::Earliest } else { a.from };
    let mut offsets = Vec::new();
    for &p in &partitions {
        let o = match start {
            Start::Earliest => client.list_offset(&a.topic, p, EARLIEST).await?,
            Start::Latest => client.list_offset_isolated(&a.topic, p, LATEST, a.isolation.level()).await?,
            Start::Offset(o) => o,
        };
        offsets.push((p, o));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    loop {
        let got = client.fetch_many_isolated(&a.topic, &offsets, 1 << 20, 1 << 20, 500, a.isolation.level()).await?;
        let mut any = false;
        for (p, data) in got {
            let data = data?;
            let slot = offsets.iter_mut().find(|(q, _)| *q == p).expect("requested partition");
            let fetched = decode_fetched(data.records, slot.1, &data.aborted_transactions)?;
            // Past markers and aborted batches too, so they are not fetched again.
            if let Some(next) = fetched.next_offset {
                slot.1 = slot.1.max(next);
            }
            for r in fetched.records {
                print_record(&mut out, &a, p, &r)?;
                any = true;
                printed += 1;
                if a.max_messages.is_some_and(|m| printed >= m) {
                    out.flush()?;
                    return Ok(());
                }
            }
        }
        out.flush()?;
        if any {
            last_record = Instant::now();
        } else if a.idle_timeout.is_some_and(|t| last_record.elapsed() >= t) {
            return Ok(());
        }
    }
}

fn print_record(out: &mut impl Write, a: &ConsumeArgs, partition: i32, r: &ConsumerRecord) -> std::io::Result<()> {
    let show = |b: &Option<bytes::Bytes>| match (b, a.format) {
        (None, _) => "null".to_string(),
        (Some(b), Format::Text) => String::from_utf8_lossy(b).into_owned(),
        (Some(b), Format::Hex) => b.iter().map(|x| format!("{x:02x}")).collect(),
    };
    if a.print_offset {
        write!(out, "{partition}:{}\t", r.offset)?;
    }
    if a.print_key {
        write!(out, "{}\t", show(&r.key))?;
    }
    write!(out, "{}", show(&r.value))?;
    if a.print_headers {
        let hs: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
        write!(out, "\t{}", hs.join(","))?;
    }
    writeln!(out)
}

/// Consume as a member of `group`: print each polled batch, then commit it.
async fn run_group(a: ConsumeArgs, group: String) -> anyhow::Result<()> {
    use rill_core::consumer::{Consumer, ConsumerConfig};
    use tokio::signal::unix::{signal, SignalKind};
    let reset = match (a.from_beginning, a.from) {
        (true, _) | (_, Start::Earliest) => "earliest",
        (_, Start::Latest) => "latest",
        (_, Start::Offset(_)) => {
            anyhow::bail!("--from OFFSET needs --partition; a group starts from its committed offsets")
        }
    };
    let props = [
        ("bootstrap.servers".to_string(), a.bootstrap.clone()),
        ("group.id".to_string(), group),
        ("client.id".to_string(), "rill-consume".to_string()),
        ("auto.offset.reset".to_string(), reset.to_string()),
        ("enable.auto.commit".to_string(), "false".to_string()),
        ("isolation.level".to_string(), a.isolation.property().to_string()),
    ]
    .into_iter()
    .chain(a.properties.iter().cloned());
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(props)?).await?;
    consumer.subscribe([a.topic.clone()])?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    loop {
        let batch = tokio::select! {
            b = consumer.poll(Duration::from_millis(500)) => b?,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let mut done = false;
        // Commit exactly what was printed: with --max-messages the batch may stop part-way.
        let mut next: std::collections::BTreeMap<(String, i32), i64> = Default::default();
        for r in &batch {
            print_record(&mut out, &a, r.partition, &r.record)?;
            next.insert((r.topic.to_string(), r.partition), r.record.offset + 1);
            printed += 1;
            if a.max_messages.is_some_and(|m| printed >= m) {
                done = true;
                break;
            }
        }
        out.flush()?;
        if !next.is_empty() {
            consumer.commit_offsets(&next).await?;
            last_record = Instant::now();
        } else if a.idle_timeout.is_some_and(|t| last_record.elapsed() >= t) {
            break;
        }
        if done {
            break;
        }
    }
    consumer.close().await?;
    Ok(())
}
