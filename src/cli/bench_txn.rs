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
    /// Mean time inside `commit_transaction` (flush, EndTxn), milliseconds.
    pub commit_ms: f64,
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

/// Send `records` records of `record_size` bytes to `topic` idempotently and the same number in
/// transactions committed every `commit_ms`, in alternating halves.
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
    let id = format!("rill-bench-txn-{}", std::process::id());
    let plain = Producer::new(config(bootstrap, &batch_size, None)?).await?;
    let txn = Producer::new(config(bootstrap, &batch_size, Some(&id))?).await?;
    txn.init_transactions().await?;
    // A-B-B-A halves, so that whatever drifts during the run (the log growing, page-cache
    // writeback, a noisy neighbour) weighs on both alike.
    let half = records / 2;
    let (mut plain_time, mut txn_time, mut commits, mut in_commit) =
        (Duration::ZERO, Duration::ZERO, 0, Duration::ZERO);
    for transactional in [false, true, true, false] {
        let start = Instant::now();
        if transactional {
            let (c, t) = send_all(&txn, topic, half, &value, Some(Duration::from_millis(commit_ms))).await?;
            txn_time += start.elapsed();
            commits += c;
            in_commit += t;
        } else {
            send_all(&plain, topic, half, &value, None).await?;
            plain_time += start.elapsed();
        }
    }
    plain.close().await;
    txn.close().await;
    let sent = (half * 2) as f64;
    Ok(TxnRates {
        idempotent: sent / plain_time.as_secs_f64(),
        transactional: sent / txn_time.as_secs_f64(),
        commits,
        commit_ms: in_commit.as_secs_f64() * 1e3 / commits.max(1) as f64,
    })
}

/// Send and wait for every record; with `commit_every`, inside transactions committed that
/// often. Returns the number of commits and the time spent committing.
async fn send_all(
    p: &Producer,
    topic: &str,
    records: u64,
    value: &Bytes,
    commit_every: Option<Duration>,
) -> anyhow::Result<(u64, Duration)> {
    let mut commits = 0;
    let mut in_commit = Duration::ZERO;
    let mut pending = std::collections::VecDeque::new();
    let mut txn_started = Instant::now();
    if commit_every.is_some() {
        p.begin_transaction()?;
    }
    for i in 0..records {
        let record = ProducerRecord { value: Some(value.clone()), ..Default::default() };
        pending.push_back(p.send(topic, None, record).await?);
        if pending.len() >= 1 << 16 {
            pending.pop_front().expect("non-empty").await?;
        }
        // The clock is read every 256 records: once per record would cost the transactional
        // run a few percent the idempotent one does not pay.
        if let Some(every) = commit_every.filter(|_| i % 256 == 255) {
            if txn_started.elapsed() >= every {
                let t = Instant::now();
                p.commit_transaction().await?;
                in_commit += t.elapsed();
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
    Ok((commits, in_commit))
}
