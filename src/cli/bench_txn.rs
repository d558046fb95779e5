//! `rill bench txn`: transactional produce beside idempotent produce, in the same run.
//!
//! Both runs send the same records through the Rill producer with `acks=all` and idempotence;
//! the transactional one commits every `--commit-ms` (100 ms by default, the streams commit
//! interval under exactly-once). The ratio of the two rates is the cost of transactions: the
//! AddPartitionsToTxn and EndTxn round trips, the markers, and the flush before every commit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;

/// Rates of one `rill bench txn` run, records per second.
pub struct TxnRates {
    /// Idempotent, not transactional.
    pub idempotent: f64,
    /// Transactional, committing every `commit_ms`.
    pub transactional: f64,
    /// Transactions committed.
    pub commits: u64,
}

fn config(bootstrap: &str, batch_size: &str, transactional_id: Option<&str>) -> anyhow::Result<ProducerConfig> {
    let mut props = vec![
        ("bootstrap.servers", bootstrap),
        ("batch.size", batch_size),
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
    ];
    if let Some(id) = transactional_id {
        props.push(("transactional.id", id));
    }
    Ok(ProducerConfig::from_properties(props)?)
}

/// Send `records` records of `record_size` bytes over `partitions` partitions of `topic`, first
/// idempotently, then in transactions committed every `commit_ms`.
pub async fn run(
    bootstrap: &str,
    topic: &str,
    records: u64,
    record_size: usize,
    batch_bytes: u64,
    commit_ms: u64,
) -> anyhow::Result<TxnRates> {
    let batch_size = batch_bytes.min(i32::MAX as u64).to_string();
    let value = Bytes::from(vec![7u8; record_size]);

    let plain = Producer::new(config(bootstrap, &batch_size, None)?).await?;
    let start = Instant::now();
    send_all(&plain, topic, records, &value, None).await?;
    let idempotent = records as f64 / start.elapsed().as_secs_f64();
    plain.close().await;

    let id = format!("rill-bench-txn-{}", std::process::id());
    let txn = Producer::new(config(bootstrap, &batch_size, Some(&id))?).await?;
    txn.init_transactions().await?;
    let start = Instant::now();
    let commits = send_all(&txn, topic, records, &value, Some(Duration::from_millis(commit_ms))).await?;
    let transactional = records as f64 / start.elapsed().as_secs_f64();
    txn.close().await;
    Ok(TxnRates { idempotent, transactional, commits })
}

/// Send and wait for every record; with `commit_every`, inside transactions committed that
/// often. Returns the number of commits.
async fn send_all(
    p: &Producer,
    topic: &str,
    records: u64,
    value: &Bytes,
    commit_every: Option<Duration>,
) -> anyhow::Result<u64> {
    let mut commits = 0;
    let mut pending = std::collections::VecDeque::new();
    let mut txn_started = Instant::now();
    if commit_every.is_some() {
        p.begin_transaction()?;
    }
    for _ in 0..records {
        let record = ProducerRecord { value: Some(value.clone()), ..Default::default() };
        pending.push_back(p.send(topic, None, record).await?);
        if pending.len() >= 1 << 16 {
            pending.pop_front().expect("non-empty").await?;
        }
        if let Some(every) = commit_every {
            if txn_started.elapsed() >= every {
                p.commit_transaction().await?;
                for d in pending.drain(..) {
                    d.await?;
                }
                commits += 1;
                p.begin_transaction()?;
                txn_started = Instant::now();
            }
        }
    }
    if commit_every.is_some() {
        p.commit_transaction().await?;
        commits += 1;
    }
    for d in pending {
        d.await?;
    }
    Ok(commits)
}
