//! The read side of the history tests: read_committed consumer sessions that record what they
//! polled while faults go on, and one complete pass at the end. Assigned partitions, no group
//! membership: a session that fails is replaced by a new one continuing where it left off.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill_core::error::Error;

use crate::checker::Read;

fn read(r: &PolledRecord) -> Read {
    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
    Read { partition: r.partition, offset: r.offset, value }
}

async fn assigned(config: ConsumerConfig, topic: &str, from: &BTreeMap<i32, i64>) -> Result<Consumer, Error> {
    let mut c = Consumer::new(config).await?;
    c.assign(from.keys().map(|p| (topic.to_string(), *p)))?;
    for (p, offset) in from {
        c.seek(&(topic.to_string(), *p), *offset)?;
    }
    Ok(c)
}

/// One consumer session over the partitions of `next`, each from its offset there, until
/// `stop` or an error; what it reads goes to `out` and moves `next` on.
pub async fn read_session(
    config: ConsumerConfig,
    topic: &str,
    next: &mut BTreeMap<i32, i64>,
    stop: &AtomicBool,
    out: &mut Vec<Read>,
) -> Result<(), Error> {
    let mut c = assigned(config, topic, next).await?;
    while !stop.load(Ordering::Acquire) {
        for r in c.poll(Duration::from_millis(100)).await? {
            next.insert(r.partition, r.offset + 1);
            out.push(read(&r));
        }
    }
    Ok(())
}

/// A complete pass over the partitions of `ends` from offset 0 until each position reaches its
/// end offset. Err: the positions reached when `within` ran out.
pub async fn read_to(
    config: ConsumerConfig,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    within: Duration,
) -> Result<Vec<Read>, BTreeMap<i32, i64>> {
    let deadline = Instant::now() + within;
    let start: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let mut c = assigned(config, topic, &start).await.expect("a consumer for the final read");
    let mut out = Vec::new();
    loop {
        out.extend(c.poll(Duration::from_millis(100)).await.expect("the final read").iter().map(read));
        let mut positions = BTreeMap::new();
        for p in ends.keys() {
            positions.insert(*p, c.position(&(topic.to_string(), *p)).await.expect("a position"));
        }
        if positions.iter().all(|(p, at)| *at >= ends[p]) {
            return Ok(out);
        }
        if Instant::now() > deadline {
            return Err(positions);
        }
    }
}
