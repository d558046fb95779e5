//! Followers fetching from leaders: one task per leader broker, fetching all the partitions
//! this broker follows there in one Fetch request (as a replica: `replica_id` = this broker).
//!
//! A partition that starts following a leader (or a new epoch of it) first truncates its log
//! by leader epoch: it asks the leader for the end offset of its own latest epoch
//! (OffsetForLeaderEpoch) and cuts whatever follows it ([`super::hw::truncation_offset`]), so a
//! former leader drops the records its successor never had, whatever the high watermark says.
//! Then it appends what the leader sends, unchanged, and takes the leader's high watermark
//! (capped at its own log end).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_core::client::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::hw::truncation_offset;
use crate::log::{Log, LogError};
use crate::server::BrokerState;

type Key = (String, i32);

/// What a fetcher does for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    epoch: i32,
    truncated: bool,
}

#[derive(Debug)]
struct Handle {
    parts: Arc<Mutex<BTreeMap<Key, Want>>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// The fetcher tasks, by leader.
#[derive(Debug, Default)]
pub struct Fetchers {
    by_leader: Mutex<HashMap<i32, Handle>>,
    owner: Mutex<HashMap<Key, i32>>,
}

/// `replica.fetch.wait.max.ms`.
const FETCH_WAIT_MS: i32 = 500;
/// Longest wait for a leader's answer (`replica.socket.timeout.ms` is 30 s in Kafka; the
/// long poll itself is [`FETCH_WAIT_MS`]).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an error before trying again (`replica.fetch.backoff.ms`).
const BACKOFF: Duration = Duration::from_millis(100);

impl Fetchers {
    /// Follow `key` from `leader` (at `addr`) at `epoch`, truncating first.
    pub fn assign(&self, state: &Arc<BrokerState>, leader: i32, addr: &str, key: Key, epoch: i32) {
        self.remove(&key);
        let mut by_leader = self.by_leader.lock().unwrap_or_else(|p| p.into_inner());
        let h = by_leader.entry(leader).or_insert_with(|| {
            let h =
                Handle { parts: Arc::default(), wake: Arc::new(Notify::new()), cancel: state.shutdown.child_token() };
            let (st, addr, parts, wake, cancel) =
                (state.clone(), addr.to_string(), h.parts.clone(), h.wake.clone(), h.cancel.clone());
            tokio::spawn(async move { run(st, leader, addr, parts, wake, cancel).await });
            h
        });
        h.parts.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Want { epoch, truncated: false });
        h.wake.notify_one();
        self.owner.lock().unwrap_or_else(|p| p.into_inner()).insert(key, leader);
    }

    /// Stop following `key`.
    pub fn remove(&self, key: &Key) {
        let Some(leader) = self.owner.lock().unwrap_or_else(|p| p.into_inner()).remove(key) else { return };
        let mut by_leader = self.by_leader.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = by_leader.get(&leader) {
            let mut parts = h.parts.lock().unwrap_or_else(|p| p.into_inner());
            parts.remove(key);
            if parts.is_empty() {
                drop(parts);
                h.cancel.cancel();
                by_leader.remove(&leader);
            }
        }
    }
}

async fn run(
    state: Arc<BrokerState>,
    leader: i32,
    addr: String,
    parts: Arc<Mutex<BTreeMap<Key, Want>>>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let me = state.config.node_id;
    let mut conn: Option<Connection> = None;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let snapshot = parts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if snapshot.is_empty() {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = cancel.cancelled() => return,
            }
        }
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            match Connection::connect(&addr, &format!("rill-replica-{me}")).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach the leader");
                    if pause(&cancel).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let c = conn.as_ref().expect("connected above");
        let outcome = tokio::select! {
            r = round(&state, me, c, &parts, &snapshot) => r,
            _ = cancel.cancelled() => return,
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                if pause(&cancel).await {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                if pause(&cancel).await {
                    return;
                }
            }
        }
    }
}

/// Append what the leader sent. The leader answers with whole batches, the first one holding
/// the fetch offset; if that batch starts below this log's end, the two logs cut the same
/// records into different batches (histories that leader epochs did not tell apart): the
/// leader's copy wins, from that batch on.
fn append_from_leader(key: &Key, log: &Log, records: &Bytes) -> Result<crate::log::AppendInfo, LogError> {
    match log.append_replicated(records, crate::log::now_ms()) {
        Err(LogError::NonContiguous { .. }) if records.len() >= 8 => {
            let base = i64::from_be_bytes(records[..8].try_into().expect("8 bytes"));
            let end = log.log_end_offset();
            if base >= end || base < log.log_start_offset() {
                return log.append_replicated(records, crate::log::now_ms());
            }
            tracing::info!(topic = %key.0, partition = key.1, end, base, "the leader's batch overlaps this log's end; truncating to it");
            log.truncate_to(base)?;
            log.append_replicated(records, crate::log::now_ms())
        }
        other => other,
    }
}

/// A call to the leader, given up after [`CALL_TIMEOUT`]: a leader cut off mid-request must not
/// leave the fetcher waiting forever (the connection is dropped and opened again).
async fn call<T>(f: impl std::future::Future<Output = rill_core::error::Result<T>>) -> rill_core::error::Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(rill_core::Error::Timeout(format!("replica fetch after {CALL_TIMEOUT:?}"))))
}

/// Sleep the backoff; true when cancelled meanwhile.
async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(BACKOFF) => false,
        _ = cancel.cancelled() => true,
    }
}

/// One round: truncate what needs it, then fetch the rest. Ok(false): nothing progressed
/// (back off before the next round).
async fn round(
    state: &Arc<BrokerState>,
    me: i32,
    conn: &Connection,
    parts: &Mutex<BTreeMap<Key, Want>>,
    snapshot: &BTreeMap<Key, Want>,
) -> rill_core::error::Result<bool> {
    let logs: BTreeMap<&Key, Arc<Log>> =
        snapshot.keys().filter_map(|k| state.topics.partition(&k.0, k.1).map(|l| (k, l))).collect();
    let untruncated: Vec<(&Key, i32)> =
        snapshot.iter().filter(|(k, w)| !w.truncated && logs.contains_key(k)).map(|(k, w)| (k, w.epoch)).collect();
    let mut truncated_now = Vec::new();
    if !untruncated.is_empty() {
        let done = truncate(me, conn, &logs, &untruncated).await?;
        let mut p = parts.lock().unwrap_or_else(|p| p.into_inner());
        for (key, epoch) in done {
            if let Some(w) = p.get_mut(&key).filter(|w| w.epoch == epoch) {
                w.truncated = true;
                truncated_now.push(key);
            }
        }
    }
    // Partitions still waiting for their truncation (the leader cannot answer for its epochs
    // yet) do not hold up the others.
    let fetching: Vec<(&Key, i32, &Arc<Log>)> = snapshot
        .iter()
        .filter(|(k, w)| w.truncated || truncated_now.contains(k))
        .filter_map(|(k, w)| logs.get(k).map(|l| (k, w.epoch, l)))
        .collect();
    if fetching.is_empty() {
        return Ok(!truncated_now.is_empty());
    }
    let limits = (state.config.replica_fetch_max_bytes, state.config.replica_fetch_response_max_bytes);
    fetch(me, limits, conn, parts, &fetching).await
}

/// Ask the leader where each partition's latest epoch ends, and truncate there.
async fn truncate(
    me: i32,
    conn: &Connection,
    logs: &BTreeMap<&Key, Arc<Log>>,
    wanted: &[(&Key, i32)],
) -> rill_core::error::Result<Vec<(Key, i32)>> {
    let mut done = Vec::new();
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked: HashMap<Key, i32> = HashMap::new();
    for (key, epoch) in wanted {
        let log = &logs[key];
        match log.latest_epoch() {
            // Nothing written under any epoch: nothing to cut.
            None => done.push(((*key).clone(), *epoch)),
            Some(latest) => {
                asked.insert((*key).clone(), latest);
                topics.entry(&key.0).or_default().push(
                    OffsetForLeaderPartition::default()
                        .with_partition(key.1)
                        .with_current_leader_epoch(*epoch)
                        .with_leader_epoch(latest),
                );
            }
        }
    }
    if topics.is_empty() {
        return Ok(done);
    }
    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(me)).with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let resp = call(conn.call(req, 4)).await?;
    let epochs: HashMap<Key, i32> = wanted.iter().map(|(k, e)| ((*k).clone(), *e)).collect();
    let mut cuts = Vec::new();
    for t in resp.topics {
        for p in t.partitions {
            let key = (t.topic.0.to_string(), p.partition);
            let (Some(asked), Some(epoch)) = (asked.get(&key), epochs.get(&key)) else { continue };
            if p.error_code != 0 {
                tracing::info!(topic = %key.0, partition = key.1, code = p.error_code, "leader cannot answer for its epochs yet");
                continue;
            }
            cuts.push((key, *asked, (p.leader_epoch, p.end_offset), *epoch));
        }
    }
    let logs: HashMap<Key, Arc<Log>> = logs.iter().map(|(k, l)| ((*k).clone(), l.clone())).collect();
    let truncated = crate::server::handlers::blocking(move || {
        let mut out = Vec::new();
        for (key, asked, answer, epoch) in cuts {
            let log = &logs[&key];
            let end = log.log_end_offset();
            let to = truncation_offset(asked, answer, |e| log.end_offset_for_epoch(e).1, end);
            tracing::debug!(topic = %key.0, partition = key.1, asked, ?answer, end, to, "epoch end from the leader");
            if to < end {
                tracing::info!(topic = %key.0, partition = key.1, from = end, to, "truncating by leader epoch");
                if let Err(e) = log.truncate_to(to) {
                    tracing::error!(topic = %key.0, partition = key.1, error = %e, "truncation failed");
                    continue;
                }
            }
            out.push((key, epoch));
        }
        out
    })
    .await;
    done.extend(truncated);
    Ok(done)
}

/// Fetch from the leader and append what it sends. `limits`: `replica.fetch.max.bytes` and
/// `replica.fetch.response.max.bytes`.
async fn fetch(
    me: i32,
    limits: (i32, i32),
    conn: &Connection,
    parts: &Mutex<BTreeMap<Key, Want>>,
    fetching: &[(&Key, i32, &Arc<Log>)],
) -> rill_core::error::Result<bool> {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (key, epoch, log) in fetching {
        topics.entry(&key.0).or_default().push(
            FetchPartition::default()
                .with_partition(key.1)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.last_fetched_epoch().unwrap_or(-1))
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(limits.0),
        );
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(limits.1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = call(conn.call(req, 12)).await?;
    let logs: HashMap<Key, Arc<Log>> = fetching.iter().map(|(k, _, l)| ((*k).clone(), (*l).clone())).collect();
    let mut work: Vec<(Key, Arc<Log>, i16, Bytes, i64, i64)> = Vec::new();
    for t in resp.responses {
        for p in t.partitions {
            let key = (t.topic.0.to_string(), p.partition_index);
            let Some(log) = logs.get(&key) else { continue };
            let records = p.records.unwrap_or_default();
            work.push((key, log.clone(), p.error_code, records, p.high_watermark, p.log_start_offset));
        }
    }
    let (progressed, errors, retruncate) = crate::server::handlers::blocking(move || {
        let mut progressed = false;
        let mut errors = false;
        let mut retruncate = Vec::new();
        for (key, log, code, records, hw, leader_start) in work {
            match code {
                0 => {
                    if !records.is_empty() {
                        match append_from_leader(&key, &log, &records) {
                            Ok(_) => progressed = true,
                            Err(LogError::NonContiguous { .. }) => retruncate.push(key.clone()),
                            Err(e) => {
                                tracing::error!(topic = %key.0, partition = key.1, error = %e, "follower append failed");
                                continue;
                            }
                        }
                    }
                    if leader_start > log.log_start_offset() {
                        if let Err(e) = log.delete_records(leader_start.min(log.high_watermark())) {
                            tracing::debug!(topic = %key.0, partition = key.1, error = %e, "cannot follow the leader's log start");
                        }
                    }
                    if hw >= 0 {
                        log.set_high_watermark(hw.min(log.end_offset_hint()));
                    }
                }
                1 => {
                    // OFFSET_OUT_OF_RANGE: behind the leader's log start (retention, DeleteRecords)
                    // or, after an unclean election, ahead of its end.
                    if leader_start >= 0 && log.log_end_offset() < leader_start {
                        tracing::info!(topic = %key.0, partition = key.1, start = leader_start, "follower fell behind the leader's log start");
                        if let Err(e) = log.truncate_fully_and_start_at(leader_start) {
                            tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot restart the log");
                        }
                        progressed = true;
                    } else {
                        tracing::info!(topic = %key.0, partition = key.1, end = log.log_end_offset(), leader_start,
                            leader_hw = hw, "fetch position out of the leader's range; truncating by epoch again");
                        retruncate.push(key.clone());
                    }
                }
                code => {
                    errors = true;
                    tracing::debug!(topic = %key.0, partition = key.1, code, "leader refused the replica fetch");
                }
            }
        }
        (progressed, errors, retruncate)
    })
    .await;
    if !retruncate.is_empty() {
        let mut p = parts.lock().unwrap_or_else(|p| p.into_inner());
        for key in retruncate {
            if let Some(w) = p.get_mut(&key) {
                w.truncated = false;
            }
        }
    }
    // A refusal comes back at once: back off unless something else moved.
    Ok(progressed || !errors)
}
