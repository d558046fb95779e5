//! Fetch: whole batches straight from segment files, with long polling.
//!
//! The response waits up to `max_wait_ms` for `min_bytes` to accumulate, waking when any
//! partition receives data. Per partition at most `partition_max_bytes`, in all at most
//! `max_bytes`, except that the first batch found is always returned whole so a consumer can
//! make progress past a batch larger than its limits (Kafka's rule). With `isolation_level`
//! read_committed (v4+), data stops at the last stable offset and the response lists the aborted
//! transactions overlapping what it returns, for the consumer to skip. Incremental fetch sessions
//! are not kept: every response is a full response with session id 0, which KIP-227 allows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use tokio::time::Instant;

use super::{blocking, codes, log_error_code};
use crate::log::{FileSlice, Log, ReadLimit};
use crate::replica::manager::FollowerFetch;
use crate::server::conn::Reply;
use crate::server::response::{placeholder, Frame, SpliceBuf, MAX_SPLICE};
use crate::server::BrokerState;

pub fn handle(state: &Arc<BrokerState>, req: FetchRequest, version: i16, id: i32) -> Reply {
    let state = state.clone();
    Reply::Later(tokio::spawn(async move {
        match run(&state, req, version, id).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    }))
}

async fn run(state: &Arc<BrokerState>, req: FetchRequest, version: i16, id: i32) -> Result<Frame, String> {
    if version >= 7 && req.session_id != 0 {
        let resp = FetchResponse::default().with_error_code(codes::FETCH_SESSION_ID_NOT_FOUND);
        return encode_spliced(version, id, &resp, Vec::new());
    }
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let req = Arc::new(req);
    loop {
        let notified = state.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (st, r) = (state.clone(), req.clone());
        let (resp, slices, bytes, errors) = blocking(move || read_all(&st, &r, version)).await;
        let done = bytes >= req.min_bytes.max(0) as u64 || errors || Instant::now() >= deadline;
        if done {
            return encode_spliced(version, id, &resp, slices);
        }
        // Appends anywhere wake every parked fetch; look again only once one of this fetch's
        // partitions has grown past what it saw (under read_committed: its last stable offset),
        // so a wakeup elsewhere costs an atomic load.
        let committed = read_committed(&req, version);
        let follower = replica_of(&req, version) >= 0;
        let watch: Vec<(Arc<Log>, i64)> = req
            .topics
            .iter()
            .zip(&resp.responses)
            .flat_map(|(t, tr)| t.partitions.iter().zip(&tr.partitions).map(move |(p, pd)| (&t.topic, p, pd)))
            .filter_map(|(topic, p, pd)| {
                let seen = if committed { pd.last_stable_offset } else { pd.high_watermark };
                state.topics.partition(topic, p.partition).map(|l| (l, seen))
            })
            .collect();
        let _parked = Parked::new(&state.fetches_waiting);
        loop {
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = state.shutdown.cancelled() => return encode_spliced(version, id, &resp, slices),
            }
            notified.set(state.data_arrived.notified());
            notified.as_mut().enable();
            let grew = |log: &Log| match (follower, committed) {
                (true, _) => log.end_offset_hint(),
                (false, true) => log.stable_offset_hint(),
                (false, false) => log.high_watermark(),
            };
            if watch.iter().any(|(log, seen)| grew(log) > *seen) {
                break;
            }
        }
    }
}

/// The broker a replica fetch comes from; -1 for consumers.
fn replica_of(req: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

/// Whether the fetch reads committed data only (isolation level 1, Fetch v4+).
fn read_committed(req: &FetchRequest, version: i16) -> bool {
    version >= 4 && req.isolation_level == 1
}

/// Read every requested partition once: (response, regions in encoding order, bytes, any error).
fn read_all(state: &Arc<BrokerState>, req: &FetchRequest, version: i16) -> (FetchResponse, Vec<FileSlice>, u64, bool) {
    let committed = read_committed(req, version);
    let replica = replica_of(req, version);
    let clustered = state.cluster.is_some();
    let mut budget = if version >= 3 && req.max_bytes > 0 { req.max_bytes as u64 } else { u64::MAX };
    let mut slices = Vec::new();
    let mut total = 0u64;
    let mut errors = false;
    let mut resp = FetchResponse::default();
    for t in &req.topics {
        let mut tr = FetchableTopicResponse::default().with_topic(t.topic.clone()).with_topic_id(t.topic_id);
        for p in &t.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions((version >= 4).then(Vec::new))
                .with_records(Some(Bytes::new()));
            match state.topics.partition(&t.topic.0, p.partition) {
                None => {
                    pd.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
                    errors = true;
                }
                Some(log) if clustered && role_refused(state, &t.topic.0, p, replica, &log).is_some() => {
                    pd.error_code = role_refused(state, &t.topic.0, p, replica, &log).unwrap_or_default();
                    errors = true;
                }
                Some(log) => {
                    let limit = (p.partition_max_bytes.max(0) as u64).min(budget).min(MAX_SPLICE as u64);
                    // Once something is in the response, an exhausted budget means no more data.
                    let limit = if total == 0 { limit.max(1) } else { limit };
                    let read = if limit == 0 {
                        Ok(None)
                    } else {
                        let upto = match (replica >= 0, committed) {
                            (true, _) => ReadLimit::LogEnd,
                            (false, true) => ReadLimit::Committed,
                            (false, false) => ReadLimit::HighWatermark,
                        };
                        log.read_upto(p.fetch_offset, limit, upto).map(|r| {
                            pd.high_watermark = r.high_watermark;
                            pd.last_stable_offset = r.last_stable_offset;
                            if version >= 5 {
                                pd.log_start_offset = r.log_start_offset;
                            }
                            r.slice
                        })
                    };
                    // Only the first partition with data may exceed its limits (so a batch larger
                    // than them still makes progress); later ones keep an oversized first batch
                    // for a later fetch.
                    let read = read.map(|s| s.filter(|s| total == 0 || s.len <= limit));
                    match read {
                        Ok(Some(mut s)) => {
                            if committed {
                                let aborted = log.aborted_txns(p.fetch_offset, s.end_offset);
                                pd.aborted_transactions = Some(
                                    aborted
                                        .iter()
                                        .map(|a| {
                                            AbortedTransaction::default()
                                                .with_producer_id(ProducerId(a.producer_id))
                                                .with_first_offset(a.first_offset)
                                        })
                                        .collect(),
                                );
                            }
                            s.len = s.len.min(MAX_SPLICE as u64);
                            total += s.len;
                            budget = budget.saturating_sub(s.len);
                            pd.records = Some(placeholder(s.len as usize));
                            slices.push(s);
                        }
                        Ok(None) => {
                            if pd.high_watermark < 0 {
                                pd.high_watermark = log.high_watermark();
                                pd.last_stable_offset = log.last_stable_offset();
                                if version >= 5 {
                                    pd.log_start_offset = log.log_start_offset();
                                }
                            }
                        }
                        Err(e) => {
                            pd.error_code = log_error_code(&e);
                            pd.high_watermark = log.high_watermark();
                            pd.last_stable_offset = log.last_stable_offset();
                            if version >= 5 {
                                pd.log_start_offset = log.log_start_offset();
                            }
                            errors = true;
                        }
                    }
                }
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    (resp, slices, total, errors)
}

/// In a cluster: a consumer must fetch from the leader at its epoch; a follower's fetch is
/// recorded as its progress. `Some(code)` refuses the partition.
fn role_refused(
    state: &Arc<BrokerState>,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    replica: i32,
    log: &Log,
) -> Option<i16> {
    let r = &state.replicas;
    if replica >= 0 {
        let fetch = FollowerFetch { replica, current_epoch: p.current_leader_epoch, offset: p.fetch_offset };
        r.on_follower_fetch(state, topic, p.partition, fetch, log).err()
    } else {
        r.check_leader(topic, p.partition, p.current_leader_epoch).err()
    }
}

fn encode_spliced(version: i16, id: i32, resp: &FetchResponse, slices: Vec<FileSlice>) -> Result<Frame, String> {
    let mut buf = SpliceBuf::new(256, slices);
    bytes::BufMut::put_i32(&mut buf, 0);
    ResponseHeader::default()
        .with_correlation_id(id)
        .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
        .and_then(|_| resp.encode(&mut buf, version))
        .map_err(|e| format!("cannot encode Fetch v{version} response: {e}"))?;
    let mut frame = buf.into_frame().map_err(|e| e.to_string())?;
    frame.finish();
    Ok(frame)
}

/// Counts a fetch as parked for as long as it lives (also when the task is aborted).
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
