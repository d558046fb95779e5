//! The group coordinator's driver: one task owns the [`GroupCoordinator`] state machine, feeds
//! it requests and timer ticks, and carries out its effects in order: records go to
//! `__consumer_offsets` (appended before any later response is sent, so an acknowledged commit
//! is in the log), responses go back to the waiting request handlers.
//!
//! `__consumer_offsets` is created on first use, as in Kafka (compacted, 50 partitions by
//! default); at start the driver replays it into the coordinator. If an append fails, the
//! responses still pending are dropped (their handlers answer COORDINATOR_NOT_AVAILABLE) and
//! the coordinator is rebuilt from the log, so memory never runs ahead of what is stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use rill_core::records::{encode_batch, ProducerRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::BrokerState;
use crate::group::{
    partition_for, Effect, GroupConfig, GroupCoordinator, Record, Request, RequestId, Response, OFFSETS_TOPIC,
};
use crate::log::{now_ms, validate};
use crate::topics::TopicError;

/// `offsets.topic.num.partitions`.
pub const DEFAULT_OFFSETS_TOPIC_PARTITIONS: i32 = crate::group::DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS;
/// `offsets.topic.segment.bytes` (100 MiB).
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";

struct Call {
    req: Request,
    reply: oneshot::Sender<Response>,
}

/// A handle for request handlers to reach the coordinator.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    tx: mpsc::Sender<Call>,
}

impl GroupHandle {
    /// Ask the coordinator; `None` when it could not answer (shutting down, or a failed write to
    /// `__consumer_offsets`), which handlers report as COORDINATOR_NOT_AVAILABLE.
    pub async fn call(&self, req: impl Into<Request>) -> Option<Response> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Call { req: req.into(), reply }).await.ok()?;
        rx.await.ok()
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
pub async fn run(state: Arc<BrokerState>, mut inbox: GroupInbox, config: GroupConfig, partitions: i32) {
    let mut coordinator = match load(&state, &config).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot load {OFFSETS_TOPIC}; group requests will fail");
            GroupCoordinator::new(config.clone())
        }
    };
    let mut pending: HashMap<u64, oneshot::Sender<Response>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let deadline = coordinator.next_deadline();
        let wake = deadline.map(|d| Instant::now() + std::time::Duration::from_millis((d - now_ms()).max(0) as u64));
        let effects = tokio::select! {
            call = inbox.0.recv() => {
                let Some(call) = call else { return };
                if let Err(e) = ensure_offsets_topic(&state, partitions).await {
                    tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
                    continue; // dropping the reply answers COORDINATOR_NOT_AVAILABLE
                }
                next_id += 1;
                pending.insert(next_id, call.reply);
                coordinator.step(now_ms(), RequestId(next_id), call.req)
            }
            _ = sleep_until(wake) => coordinator.tick(now_ms()),
            _ = state.shutdown.cancelled() => return,
        };
        if !apply(&state, partitions, effects, &mut pending).await {
            // What memory holds may not be in the log: start again from the log.
            pending.clear();
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

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Carry out effects in order. Returns false if an append failed (the caller reloads).
async fn apply(
    state: &Arc<BrokerState>,
    partitions: i32,
    effects: Vec<Effect>,
    pending: &mut HashMap<u64, oneshot::Sender<Response>>,
) -> bool {
    for effect in effects {
        match effect {
            Effect::Persist { group_id, records } => {
                if let Err(e) = persist(state, partitions, &group_id, records).await {
                    tracing::error!(group = %group_id, error = %e, "cannot write to {OFFSETS_TOPIC}");
                    return false;
                }
            }
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
    super::handlers::blocking(move || log.append(&batch, now_ms())).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Create `__consumer_offsets` if it does not exist yet.
async fn ensure_offsets_topic(state: &Arc<BrokerState>, partitions: i32) -> Result<(), TopicError> {
    if state.topics.get(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let st = state.clone();
    super::handlers::blocking(move || {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), OFFSETS_TOPIC_SEGMENT_BYTES.to_string()),
        ]);
        match st.topics.create(OFFSETS_TOPIC, partitions, 1, configs) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
}

/// A coordinator rebuilt from every record in `__consumer_offsets`.
async fn load(state: &Arc<BrokerState>, config: &GroupConfig) -> Result<GroupCoordinator, String> {
    let st = state.clone();
    let records = super::handlers::blocking(move || -> Result<Vec<Record>, String> {
        let Some(topic) = st.topics.get(OFFSETS_TOPIC) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for log in &topic.partitions {
            let mut offset = log.log_start_offset();
            let end = log.log_end_offset();
            while offset < end {
                let read = log.read(offset, 1 << 20).map_err(|e| e.to_string())?;
                let Some(slice) = read.slice else { break };
                let data: Bytes = slice.read_bytes().map_err(|e| e.to_string())?;
                let mut next = offset;
                for item in crate::log::batch::batches(&data) {
                    let (at, h) = item.map_err(|e| e.to_string())?;
                    next = next.max(h.next_offset());
                    let set = validate::decode_batch(&data[at..at + h.size])?;
                    for r in set.records.into_iter().filter(|r| !r.control && r.offset >= offset) {
                        let Some(key) = r.key else { continue };
                        match Record::decode(&key, r.value.as_deref()) {
                            Ok(rec) => out.push(rec),
                            Err(e) => tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable record in {OFFSETS_TOPIC}"),
                        }
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
        }
        Ok(out)
    })
    .await?;
    let n = records.len();
    let mut coordinator = GroupCoordinator::new(config.clone());
    coordinator.load(now_ms(), records);
    if n > 0 {
        tracing::info!(records = n, "loaded group state from {OFFSETS_TOPIC}");
    }
    Ok(coordinator)
}
