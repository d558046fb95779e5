//! The group coordinator's driver: one task owns the [`GroupCoordinator`] state machine, feeds
//! it requests and timer ticks, and carries out its effects in order: records go to
//! `__consumer_offsets` (appended before any later response is sent, so an acknowledged commit
//! is in the log), responses go back to the waiting request handlers.
//!
//! `__consumer_offsets` is created on first use, as in Kafka (compacted, 50 partitions by
//! default); at start the driver replays it into the coordinator. If an append fails, the
//! responses still pending are dropped (their handlers answer codes::COORDINATOR_NOT_AVAILABLE) and
//! the coordinator is rebuilt from the log, so memory never runs ahead of what is stored.
//!
//! Transactional offsets (TxnOffsetCommit) are appended as a transactional batch of the
//! producer; memory takes them only once written, so a refused write (a fenced producer epoch)
//! is answered with its error and needs no rebuild. The transaction coordinator reports the end
//! of each transaction with [`GroupHandle::complete_txn`] once its marker is written.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rill_core::records::{encode_batch, ProducerRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handlers::codes;
use super::BrokerState;
use crate::group::{
    partition_for, Effect, GroupConfig, GroupCoordinator, LogEntry, Record, Request, RequestId, Response, TxnWrite,
    OFFSETS_TOPIC,
};
use crate::log::batch::BatchHeader;
use crate::log::producer_state::AppendOrigin;
use crate::log::{now_ms, validate, Log};
use crate::topics::TopicError;

/// `offsets.topic.num.partitions`.
pub const DEFAULT_OFFSETS_TOPIC_PARTITIONS: i32 = crate::group::DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS;
/// `offsets.topic.segment.bytes` (100 MiB).
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";

/// INVALID_COMMIT_OFFSET_SIZE.
const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;

enum Call {
    /// A request for the coordinator.
    Request { req: Request, reply: oneshot::Sender<Response> },
    /// A transaction ended with a marker in an offsets partition.
    CompleteTxn { producer_id: i64, commit: bool, partition: i32, reply: oneshot::Sender<()> },
}

/// A handle for request handlers to reach the coordinator.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    tx: mpsc::Sender<Call>,
}

impl GroupHandle {
    /// Ask the coordinator; `None` when it could not answer (shutting down, or a failed write to
    /// `__consumer_offsets`), which handlers report as codes::COORDINATOR_NOT_AVAILABLE.
    pub async fn call(&self, req: impl Into<Request>) -> Option<Response> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Call::Request { req: req.into(), reply }).await.ok()?;
        rx.await.ok()
    }

    /// The transaction of `producer_id` ended: its commit (`commit`) or abort marker is now in
    /// `__consumer_offsets` partition `offsets_partition`. Call only after the marker is written.
    /// The offsets that transaction committed for groups of that partition become visible to
    /// OffsetFetch, or are dropped on abort. `None` if the coordinator is gone (shutting down).
    pub async fn complete_txn(&self, producer_id: i64, commit: bool, offsets_partition: i32) -> Option<()> {
        let (reply, rx) = oneshot::channel();
        let call = Call::CompleteTxn { producer_id, commit, partition: offsets_partition, reply };
        self.tx.send(call).await.ok()?;
        rx.await.ok()
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Request { req, .. } => f.debug_struct("Request").field("req", req).finish(),
            Call::CompleteTxn { producer_id, commit, partition, .. } => f
                .debug_struct("CompleteTxn")
                .field("producer_id", producer_id)
                .field("commit", commit)
                .field("partition", partition)
                .finish(),
        }
    }
}

/// The handle, and the receiving end for [`run`].
pub fn channel() -> (GroupHandle, GroupInbox) {
    let (tx, rx) = mpsc::channel(1024);
    (GroupHandle { tx }, GroupInbox(rx))
}

/// Requests waiting for the driver.
#[derive(Debug)]
pub struct GroupInbox(mpsc::Receiver<Call>);

/// Drive the coordinator until the broker stops.
///
/// In a cluster the coordinator holds only the groups of the `__consumer_offsets` partitions
/// this broker leads: it loads a partition's groups from the log when it becomes leader and
/// forgets them when it stops, and requests for other groups are refused (their handlers answer
/// codes::NOT_COORDINATOR, see `handlers::groups::refusal`, so clients look the coordinator up
/// again).
pub async fn run(state: Arc<BrokerState>, mut inbox: GroupInbox, config: GroupConfig, partitions: i32) {
    let clustered = state.cluster.is_some();
    let mut owned: HashMap<i32, i32> = HashMap::new();
    let mut leadership = state.replicas.leadership();
    let mut coordinator = if clustered {
        let mut c = GroupCoordinator::new(config.clone());
        follow_leadership(&state, &mut c, &mut owned, partitions).await;
        c
    } else {
        match load(&state, &config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot load {OFFSETS_TOPIC}; group requests will fail");
                GroupCoordinator::new(config.clone())
            }
        }
    };
    let mut pending: HashMap<u64, oneshot::Sender<Response>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let deadline = coordinator.next_deadline();
        let wake = deadline.map(|d| Instant::now() + std::time::Duration::from_millis((d - now_ms()).max(0) as u64));
        let effects = tokio::select! {
            call = inbox.0.recv() => {
                let (req, reply) = match call {
                    None => return,
                    Some(Call::Request { req, reply }) => (req, reply),
                    Some(Call::CompleteTxn { producer_id, commit, partition, reply }) => {
                        coordinator.complete_txn(producer_id, commit, |g| partition_for(g, partitions) == partition);
                        let _ = reply.send(());
                        continue;
                    }
                };
                if clustered && !groups_of(&req).iter().all(|g| owned.contains_key(&partition_for(g, partitions))) {
                    continue; // not coordinated here: dropping the reply answers codes::COORDINATOR_NOT_AVAILABLE
                }
                if let Err(e) = ensure_offsets_topic(&state, partitions).await {
                    tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
                    continue; // dropping the reply answers codes::COORDINATOR_NOT_AVAILABLE
                }
                next_id += 1;
                pending.insert(next_id, reply);
                coordinator.step(now_ms(), RequestId(next_id), req)
            }
            changed = leadership.changed(), if clustered => {
                if changed.is_err() {
                    return;
                }
                follow_leadership(&state, &mut coordinator, &mut owned, partitions).await;
                continue;
            }
            _ = sleep_until(wake) => coordinator.tick(now_ms()),
            _ = state.shutdown.cancelled() => return,
        };
        if !apply(&state, partitions, effects, &mut pending, &mut coordinator).await {
            // What memory holds may not be in the log: start again from the log.
            pending.clear();
            if clustered {
                coordinator = GroupCoordinator::new(config.clone());
                owned.clear();
                follow_leadership(&state, &mut coordinator, &mut owned, partitions).await;
                continue;
            }
            coordinator = match load(&state, &config).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload {OFFSETS_TOPIC}");
                    GroupCoordinator::new(config.clone())
                }
            };
        }
    }
}

/// The groups a request is about (none for ListGroups, which lists the groups held here).
fn groups_of(req: &Request) -> Vec<&str> {
    match req {
        Request::JoinGroup(r) => vec![&r.group_id],
        Request::SyncGroup(r) => vec![&r.group_id],
        Request::Heartbeat(r) => vec![&r.group_id],
        Request::LeaveGroup(r) => vec![&r.group_id],
        Request::OffsetCommit(r) => vec![&r.group_id],
        Request::TxnOffsetCommit(r) => vec![&r.group_id],
        Request::OffsetFetch(r) => r.groups.iter().map(|g| g.group_id.as_str()).collect(),
        Request::OffsetDelete(r) => vec![&r.group_id],
        Request::ListGroups(_) => Vec::new(),
        Request::DescribeGroups(r) => r.group_ids.iter().map(String::as_str).collect(),
        Request::DeleteGroups(r) => r.group_ids.iter().map(String::as_str).collect(),
    }
}

/// Load the groups of the offsets partitions this broker now leads (at a new epoch) and forget
/// those of partitions it no longer leads. `owned`: partition -> the leader epoch it was
/// loaded at.
async fn follow_leadership(
    state: &Arc<BrokerState>,
    coordinator: &mut GroupCoordinator,
    owned: &mut HashMap<i32, i32>,
    partitions: i32,
) {
    for p in 0..partitions {
        let epoch = state.replicas.leader_epoch(OFFSETS_TOPIC, p);
        if epoch.is_some() && owned.get(&p) == epoch.as_ref() {
            continue;
        }
        if owned.remove(&p).is_some() || epoch.is_some() {
            coordinator.unload(|g| partition_for(g, partitions) == p);
        }
        let (Some(epoch), Some(log)) = (epoch, state.topics.partition(OFFSETS_TOPIC, p)) else { continue };
        match super::handlers::blocking(move || read_entries(&log)).await {
            Ok(entries) => {
                tracing::info!(
                    partition = p,
                    epoch,
                    entries = entries.len(),
                    "coordinating the groups of {OFFSETS_TOPIC}-{p}"
                );
                coordinator.load(now_ms(), entries);
                owned.insert(p, epoch);
            }
            Err(e) => tracing::error!(partition = p, error = %e, "cannot load {OFFSETS_TOPIC}-{p}"),
        }
    }
}

/// In a cluster: wait until the ISR holds what was appended to an offsets partition up to
/// `end` (Kafka's coordinators write with acks=all).
async fn replicated(
    state: &Arc<BrokerState>,
    p: i32,
    log: &Arc<Log>,
    end: i64,
    epoch: Option<i32>,
) -> Result<(), String> {
    let Some(epoch) = epoch else { return Ok(()) };
    state
        .replicas
        .replicate(state, OFFSETS_TOPIC, p, log, end, epoch, REPLICATION_TIMEOUT)
        .await
        .map_err(|code| format!("{OFFSETS_TOPIC}-{p} not replicated (error {code})"))
}

/// In a cluster, the leader epoch of `__consumer_offsets` partition `p` here (`Ok(None)` on a
/// lone broker); Err when this broker does not lead it.
fn leading_epoch(state: &BrokerState, p: i32) -> Result<Option<i32>, String> {
    match state.cluster {
        None => Ok(None),
        Some(_) => state
            .replicas
            .leader_epoch(OFFSETS_TOPIC, p)
            .map(Some)
            .ok_or_else(|| format!("no longer leading {OFFSETS_TOPIC}-{p}")),
    }
}

/// How long a coordinator write waits for the ISR (Kafka's `offsets.commit.timeout.ms`).
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Carry out effects in order. Returns false if an append failed and memory may be ahead of
/// the log (the caller reloads).
async fn apply(
    state: &Arc<BrokerState>,
    partitions: i32,
    effects: Vec<Effect>,
    pending: &mut HashMap<u64, oneshot::Sender<Response>>,
    coordinator: &mut GroupCoordinator,
) -> bool {
    for effect in effects {
        match effect {
            Effect::Persist { group_id, records } => {
                if let Err(e) = persist(state, partitions, &group_id, records).await {
                    tracing::error!(group = %group_id, error = %e, "cannot write to {OFFSETS_TOPIC}");
                    return false;
                }
            }
            Effect::PersistTxn(write) => match persist_txn(state, partitions, &write).await {
                Ok(()) => coordinator.txn_written(&write),
                Err(code) => {
                    // Memory did not take the offsets: only this request fails.
                    if let Some(reply) = pending.remove(&write.request.0) {
                        let _ = reply.send(Response::WriteFailed(code));
                    }
                }
            },
            Effect::Respond { request, response } => {
                if let Some(reply) = pending.remove(&request.0) {
                    // The handler may have gone (client hung up): nothing to do.
                    let _ = reply.send(response);
                }
            }
        }
    }
    true
}

async fn persist(
    state: &Arc<BrokerState>,
    partitions: i32,
    group_id: &str,
    records: Vec<Record>,
) -> Result<(), String> {
    let p = partition_for(group_id, partitions);
    let log = state.topics.partition(OFFSETS_TOPIC, p).ok_or_else(|| format!("{OFFSETS_TOPIC}-{p} is missing"))?;
    let recs: Vec<ProducerRecord> = records
        .iter()
        .map(|r| ProducerRecord {
            key: Some(r.encode_key()),
            value: r.encode_value(),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect();
    let batch = encode_batch(&recs, Compression::None, now_ms()).map_err(|e| e.to_string())?;
    let epoch = leading_epoch(state, p)?;
    let l = log.clone();
    let info = super::handlers::blocking(move || l.append(&batch, now_ms())).await.map_err(|e| e.to_string())?;
    replicated(state, p, &log, info.last_offset + 1, epoch).await
}

/// Append a TxnOffsetCommit's records as a transactional batch of its producer. On failure,
/// the Kafka error code to answer with (mapped as Kafka's group coordinator maps append errors).
async fn persist_txn(state: &Arc<BrokerState>, partitions: i32, write: &TxnWrite) -> Result<(), i16> {
    let p = partition_for(&write.group_id, partitions);
    let Some(log) = state.topics.partition(OFFSETS_TOPIC, p) else {
        tracing::error!(group = %write.group_id, "{OFFSETS_TOPIC}-{p} is missing");
        return Err(codes::COORDINATOR_NOT_AVAILABLE);
    };
    let batch = txn_offsets_batch(write, now_ms()).map_err(|e| {
        tracing::error!(group = %write.group_id, error = %e, "cannot encode transactional offsets");
        codes::COORDINATOR_NOT_AVAILABLE
    })?;
    let epoch = leading_epoch(state, p).map_err(|_| codes::NOT_COORDINATOR)?;
    let (st, txn_id, topic_p, l) = (state.clone(), write.transactional_id.clone(), p, log.clone());
    let result = super::handlers::blocking(move || {
        let verify = |producer_id: i64, epoch: i16| st.txns.verify(&txn_id, producer_id, epoch, OFFSETS_TOPIC, topic_p);
        l.append_verified_as(&batch, now_ms(), AppendOrigin::Coordinator, &verify)
    })
    .await;
    if let Ok(info) = &result {
        if let Err(e) = replicated(state, p, &log, info.last_offset + 1, epoch).await {
            tracing::warn!(group = %write.group_id, error = %e, "transactional offsets not replicated");
            return Err(codes::NOT_COORDINATOR);
        }
    }
    result.map(|_| ()).map_err(|e| {
        tracing::warn!(group = %write.group_id, producer_id = write.producer_id, error = %e,
            "cannot write transactional offsets to {OFFSETS_TOPIC}");
        match super::handlers::log_error_code(&e) {
            super::handlers::codes::UNKNOWN_TOPIC_OR_PARTITION => codes::COORDINATOR_NOT_AVAILABLE,
            super::handlers::codes::KAFKA_STORAGE_ERROR => codes::NOT_COORDINATOR,
            super::handlers::codes::MESSAGE_TOO_LARGE => INVALID_COMMIT_OFFSET_SIZE,
            code => code,
        }
    })
}

/// The records of `write` as one transactional magic-v2 batch of its producer: attribute bit
/// 0x10, the producer id and epoch, base sequence -1 (coordinator writes carry no sequence).
pub(crate) fn txn_offsets_batch(write: &TxnWrite, now: i64) -> Result<BytesMut, String> {
    let records: Vec<KafkaRecord> = write
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| KafkaRecord {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: write.producer_id,
            producer_epoch: write.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder derives the base sequence from the first record: -1.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(r.encode_key()),
            value: r.encode_value(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Create `__consumer_offsets` if it does not exist yet.
async fn ensure_offsets_topic(state: &Arc<BrokerState>, partitions: i32) -> Result<(), TopicError> {
    super::ensure_internal_topic(state, OFFSETS_TOPIC, partitions, OFFSETS_TOPIC_SEGMENT_BYTES).await
}

/// A coordinator rebuilt from every entry in `__consumer_offsets`, one partition at a time.
async fn load(state: &Arc<BrokerState>, config: &GroupConfig) -> Result<GroupCoordinator, String> {
    let st = state.clone();
    let partitions = super::handlers::blocking(move || -> Result<Vec<Vec<LogEntry>>, String> {
        let Some(topic) = st.topics.get(OFFSETS_TOPIC) else { return Ok(Vec::new()) };
        topic.partitions.iter().map(|log| read_entries(log)).collect()
    })
    .await?;
    let n: usize = partitions.iter().map(Vec::len).sum();
    let mut coordinator = GroupCoordinator::new(config.clone());
    let now = now_ms();
    for entries in partitions {
        coordinator.load(now, entries);
    }
    if n > 0 {
        tracing::info!(entries = n, "loaded group state from {OFFSETS_TOPIC}");
    }
    Ok(coordinator)
}

/// Every entry of one `__consumer_offsets` partition, oldest first: records (with their batch's
/// base offset and, in transactional batches, the producer id) and transaction markers.
fn read_entries(log: &Log) -> Result<Vec<LogEntry>, String> {
    let mut out = Vec::new();
    log.scan(|h, batch, from| {
        let set = validate::decode_batch(batch)?;
        entries_of(h, set.records.into_iter().filter(|r| r.offset >= from), &mut out);
        Ok(())
    })?;
    Ok(out)
}

/// The entries of one decoded batch.
fn entries_of(h: &BatchHeader, mut records: impl Iterator<Item = KafkaRecord>, out: &mut Vec<LogEntry>) {
    if h.is_control() {
        // One control record: key = version (i16), type (i16: 0 abort, 1 commit).
        let key = records.next().and_then(|r| r.key);
        match key.as_deref().and_then(|k| k.get(..4)) {
            Some(&[_, _, 0, t @ (0 | 1)]) => out.push(LogEntry::Marker { producer_id: h.producer_id, commit: t == 1 }),
            _ => tracing::warn!(offset = h.base_offset, "skipping an unknown control batch in {OFFSETS_TOPIC}"),
        }
        return;
    }
    let producer_id = h.is_transactional().then_some(h.producer_id);
    for r in records {
        let Some(key) = r.key else { continue };
        match Record::decode(&key, r.value.as_deref()) {
            Ok(record) => out.push(LogEntry::Record { position: h.base_offset, producer_id, record }),
            Err(e) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable record in {OFFSETS_TOPIC}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{ErrorCode, FetchedOffset, OffsetFetch, OffsetFetchGroup, OffsetValue, TopicPartition};
    use crate::log::LogConfig;

    fn offset_record(group: &str, partition: i32, offset: i64) -> Record {
        let value = OffsetValue { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1 };
        Record::Offset { group_id: group.into(), partition: TopicPartition::new("t", partition), value: Some(value) }
    }

    fn write(producer_id: i64, producer_epoch: i16, records: Vec<Record>) -> TxnWrite {
        TxnWrite {
            request: RequestId(1),
            group_id: "g".into(),
            transactional_id: "t".into(),
            producer_id,
            producer_epoch,
            position: 0,
            records,
        }
    }

    /// Append a transactional write as the driver does; the Kafka error code if refused.
    fn append_txn(log: &Log, w: &TxnWrite) -> Result<(), i16> {
        let batch = txn_offsets_batch(w, 1_000).expect("encode");
        log.append_as(&batch, now_ms(), AppendOrigin::Coordinator)
            .map(|_| ())
            .map_err(|e| super::super::handlers::log_error_code(&e))
    }

    #[test]
    fn transactional_offsets_go_in_one_transactional_batch_without_sequence() {
        let w = write(7, 3, vec![offset_record("g", 0, 5), offset_record("g", 1, 6)]);
        let batch = txn_offsets_batch(&w, 1_000).unwrap();
        let h = BatchHeader::parse_checked(&batch).unwrap();
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.record_count), (7, 3, -1, 2));
        let (mut out, set) = (Vec::new(), validate::decode_batch(&batch).unwrap());
        entries_of(&h, set.records.into_iter(), &mut out);
        let records: Vec<Record> = out
            .into_iter()
            .map(|e| match e {
                LogEntry::Record { producer_id: Some(7), record, .. } => record,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(records, w.records);
    }

    #[test]
    fn the_log_replays_into_committed_aborted_and_open_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), LogConfig::default(), true, 0).unwrap();
        let plain =
            |r: Record| ProducerRecord { key: Some(r.encode_key()), value: r.encode_value(), ..Default::default() };
        // t-0: committed by producer 7; t-1: committed plainly after 7's offset (it stays);
        // t-2: aborted by 8; t-3: open for 9.
        append_txn(&log, &write(7, 0, vec![offset_record("g", 0, 70), offset_record("g", 1, 70)])).unwrap();
        let batch = encode_batch(&[plain(offset_record("g", 1, 11))], Compression::None, 1_000).unwrap();
        log.append(&batch, 1_000).unwrap();
        append_txn(&log, &write(8, 0, vec![offset_record("g", 2, 80)])).unwrap();
        log.append_marker(7, 0, true, 0, 1_000).unwrap();
        log.append_marker(8, 0, false, 0, 1_000).unwrap();
        append_txn(&log, &write(9, 0, vec![offset_record("g", 3, 90)])).unwrap();
        // A zombie of producer 7 after a newer epoch ended its transaction is refused.
        log.append_marker(7, 1, false, 0, 1_000).unwrap();
        assert_eq!(append_txn(&log, &write(7, 0, vec![offset_record("g", 0, 71)])), Err(47));

        let mut c = GroupCoordinator::new(GroupConfig::default());
        c.load(2_000, read_entries(&log).unwrap());
        let fetch = |c: &mut GroupCoordinator, require_stable| {
            let wanted = (0..4).map(|p| TopicPartition::new("t", p)).collect();
            let groups = vec![OffsetFetchGroup { group_id: "g".into(), partitions: Some(wanted) }];
            let effects = c.step(2_000, RequestId(1), OffsetFetch { groups, require_stable }.into());
            let [Effect::Respond { response: Response::OffsetFetch(g), .. }] = &effects[..] else {
                panic!("{effects:?}")
            };
            g[0].partitions.iter().map(|p: &FetchedOffset| (p.offset, p.error)).collect::<Vec<_>>()
        };
        let none = ErrorCode::None;
        assert_eq!(fetch(&mut c, false), [(70, none), (11, none), (-1, none), (-1, none)]);
        assert_eq!(fetch(&mut c, true), [(70, none), (11, none), (-1, none), (-1, ErrorCode::UnstableOffsetCommit)]);
        c.complete_txn(9, true, |g| g == "g");
        assert_eq!(fetch(&mut c, true), [(70, none), (11, none), (-1, none), (90, none)]);
    }
}
