//! The transaction coordinator's driver: one task owns the [`TxnCoordinator`] state machine,
//! feeds it requests and timer ticks, and carries out its effects in order: records go to
//! `__transaction_state` (appended before any later answer is sent), answers go back to the
//! waiting handlers, and markers are appended to each partition of a transaction that ends
//! (`Log::append_marker`, on a blocking thread). A marker in a `__consumer_offsets` partition is
//! also reported to the group coordinator, which then applies or drops the transaction's offsets.
//!
//! `__transaction_state` is created on first use (compacted, `transaction.state.log.num.partitions`
//! partitions, 50 by default; an id's records go to partition `partition_for(id)`, Java's
//! `String.hashCode` as Kafka). At start the driver replays it; transactions found in
//! PrepareCommit/PrepareAbort get their markers written again (a second marker for a producer
//! without an open transaction changes nothing). A partition that no longer exists is skipped
//! with a warning; a partition that refuses a marker for another reason is retried. If an append
//! to `__transaction_state` fails, the pending answers are dropped (COORDINATOR_NOT_AVAILABLE)
//! and the coordinator is rebuilt from the log, but in a cluster only once the high watermark
//! of every partition it leads has reached the log end: the failed record may be in the log
//! without being in the ISR, and acting on it could contradict a new coordinator. Until then
//! requests are refused. A new leader of a partition waits the same way before loading.
//!
//! [`TxnHandle::verify`] answers the Produce handler's KIP-890 part 1 check without a round trip:
//! it reads the last stored state of each transactional id, which the driver publishes after
//! every append.
//!
//! In a cluster the coordinator holds the transactional ids of the `__transaction_state`
//! partitions this broker leads, rebuilt from their logs whenever that set changes; other ids
//! are refused with NOT_COORDINATOR (clients look the coordinator up again). Markers carry
//! the partition's leader epoch as coordinator epoch, and go to each data partition's leader
//! (WriteTxnMarkers when it is another broker). KIP-890's check is only made where this broker
//! coordinates the transaction; a produce to a partition led elsewhere is not verified (Kafka
//! asks the coordinator over the network; not done yet).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use kafka_protocol::records::Compression;
use rill_core::records::{encode_batch, ProducerRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handlers::codes;
use super::producer_ids::ProducerIds;
use super::BrokerState;
use crate::group::{partition_for, TopicPartition};
use crate::log::{now_ms, validate};
use crate::topics::TopicError;
use crate::txn::{
    self, Effect, Request, RequestId, Response, TxnConfig, TxnCoordinator, TxnRecord, TxnValue, TRANSACTION_STATE_TOPIC,
};

/// `transaction.state.log.segment.bytes` (100 MiB).
pub const TRANSACTION_STATE_SEGMENT_BYTES: &str = "104857600";
/// The coordinator epoch markers carry on a lone broker (in a cluster: the leader epoch of the
/// transaction's `__transaction_state` partition).
const COORDINATOR_EPOCH: i32 = 0;
/// How often a coordinator that could not load its state tries again.
const LOAD_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Producer ids kept ready so that a step never waits for the disk (a step takes at most one).
const IDS_READY: i64 = 2;

struct Call {
    req: Request,
    reply: oneshot::Sender<Response>,
}

/// The last stored state of each transactional id; `None` while the coordinator's state is
/// not loaded.
type View = Arc<RwLock<Option<HashMap<String, TxnValue>>>>;

/// A handle for request handlers to reach the coordinator and the producer id allocator.
#[derive(Debug, Clone)]
pub struct TxnHandle {
    tx: mpsc::Sender<Call>,
    view: View,
    ids: Arc<ProducerIds>,
    /// In a cluster: the `__transaction_state` partitions coordinated here, by leader epoch.
    owned: Owned,
    /// `transaction.state.log.num.partitions`.
    partitions: i32,
}

/// `__transaction_state` partitions coordinated here (`None`: a lone broker, all of them).
type Owned = Arc<RwLock<Option<HashMap<i32, i32>>>>;

/// Whether this broker coordinates `transactional_id`: a lone broker every id, a clustered one
/// the ids of the `__transaction_state` partitions it leads (out of `partitions`); the empty id
/// of an idempotent producer's InitProducerId is served anywhere.
fn holds(owned: &Owned, partitions: i32, transactional_id: &str) -> bool {
    let owned = owned.read().unwrap_or_else(|p| p.into_inner());
    transactional_id.is_empty()
        || owned.as_ref().is_none_or(|o| o.contains_key(&partition_for(transactional_id, partitions)))
}

impl TxnHandle {
    /// Ask the coordinator. Err: the Kafka error code to answer with instead: NOT_COORDINATOR
    /// when another broker coordinates the transactional id (the client looks the coordinator
    /// up again), COORDINATOR_NOT_AVAILABLE when this one could not answer (its state not loaded
    /// yet, a failed write to `__transaction_state`, shutting down).
    pub async fn call(&self, req: impl Into<Request>) -> Result<Response, i16> {
        let req = req.into();
        if !holds(&self.owned, self.partitions, req.transactional_id()) {
            return Err(codes::NOT_COORDINATOR);
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Call { req, reply }).await.map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
        rx.await.map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)
    }

    /// A new producer id for an idempotent producer (InitProducerId without a transactional id).
    pub async fn new_producer_id(&self) -> std::io::Result<i64> {
        let ids = self.ids.clone();
        super::handlers::blocking(move || ids.next()).await
    }

    /// KIP-890 part 1, for the Produce handler: may this producer write transactional records to
    /// `topic`/`partition` now? Ok when the transaction of `transactional_id` is Ongoing with the
    /// partition added and the producer id and epoch are current. Otherwise the Kafka error
    /// code: INVALID_PRODUCER_ID_MAPPING (49, unknown id or another producer id), PRODUCER_FENCED
    /// (90, another epoch), CONCURRENT_TRANSACTIONS (51, the transaction is ending) or
    /// INVALID_TXN_STATE (48, the partition is not in an open transaction).
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        if !holds(&self.owned, self.partitions, transactional_id) {
            // Coordinated by another broker: not verified (see the module docs).
            return Ok(());
        }
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        // Not loaded yet: what Kafka answers a produce whose verification found the coordinator
        // loading, a retriable error every producer knows.
        let Some(view) = view.as_ref() else { return Err(codes::NOT_ENOUGH_REPLICAS) };
        let tp = TopicPartition::new(topic, partition);
        txn::verify(view.get(transactional_id), producer_id, producer_epoch, &tp).map_err(|e| e.code())
    }

    /// The last stored state of every transactional id, ascending by id.
    pub fn snapshot(&self) -> Vec<(String, TxnValue)> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(String, TxnValue)> = view.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The handle, and the receiving end for [`run`].
/// `clustered`: the broker is part of a cluster (it then coordinates only some ids);
/// `partitions`: `transaction.state.log.num.partitions`.
pub fn channel(ids: Arc<ProducerIds>, clustered: bool, partitions: i32) -> (TxnHandle, TxnInbox) {
    let (tx, rx) = mpsc::channel(1024);
    let view = View::default();
    let owned: Owned = Arc::new(RwLock::new(clustered.then(HashMap::new)));
    let handle = TxnHandle { tx, view: view.clone(), ids: ids.clone(), owned: owned.clone(), partitions };
    (handle, TxnInbox { rx, view, ids, owned })
}

/// Requests waiting for the driver, and what it shares with the handles.
#[derive(Debug)]
pub struct TxnInbox {
    rx: mpsc::Receiver<Call>,
    view: View,
    ids: Arc<ProducerIds>,
    owned: Owned,
}

/// Drive the coordinator until the broker stops. `partitions` is
/// `transaction.state.log.num.partitions`.
pub async fn run(state: Arc<BrokerState>, mut inbox: TxnInbox, config: TxnConfig, partitions: i32) {
    let clustered = state.cluster.is_some();
    let mut leadership = state.replicas.leadership();
    let d = Driver {
        state,
        view: inbox.view.clone(),
        ids: inbox.ids.clone(),
        owned: inbox.owned.clone(),
        config,
        partitions,
        markers: tokio::sync::Mutex::new(super::markers::MarkerWriter::new()),
    };
    if clustered {
        d.follow_leadership();
    }
    // `None` until the state is loaded: requests are refused (COORDINATOR_NOT_AVAILABLE) and
    // nothing is acted on meanwhile.
    let mut coordinator = d.try_load().await;
    // When to try loading again while unloaded: a deadline, not a fresh sleep per turn of the
    // loop, so that requests arriving meanwhile cannot put it off.
    let mut retry_load = Instant::now() + LOAD_RETRY;
    let mut pending: HashMap<u64, oneshot::Sender<Response>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        let deadline = coordinator.as_ref().and_then(|c| c.next_deadline());
        let wake = deadline.map(|t| Instant::now() + std::time::Duration::from_millis((t - now_ms()).max(0) as u64));
        let effects = tokio::select! {
            call = inbox.rx.recv() => {
                let Some(call) = call else { return };
                let Some(c) = coordinator.as_mut().filter(|_| d.coordinates(&call.req)) else {
                    continue; // not loaded, or coordinated elsewhere: dropping the reply answers COORDINATOR_NOT_AVAILABLE
                };
                if let Err(e) = d.ensure_state_topic().await {
                    tracing::error!(error = %e, "cannot create {TRANSACTION_STATE_TOPIC}");
                    continue; // dropping the reply answers COORDINATOR_NOT_AVAILABLE
                }
                if let Err(e) = d.ids_ready().await {
                    tracing::error!(error = %e, "cannot store a new block of producer ids");
                }
                next_id += 1;
                pending.insert(next_id, call.reply);
                c.step(now_ms(), RequestId(next_id), call.req)
            }
            changed = leadership.changed(), if clustered => {
                if changed.is_err() {
                    return;
                }
                if d.follow_leadership() {
                    // Which ids are held here changed: rebuild from the partitions led now.
                    pending.clear();
                    coordinator = d.try_load().await;
                }
                continue;
            }
            _ = sleep_until(wake) => match coordinator.as_mut() {
                Some(c) => c.tick(now_ms()),
                None => continue,
            },
            _ = tokio::time::sleep_until(retry_load), if coordinator.is_none() => {
                coordinator = d.try_load().await;
                retry_load = Instant::now() + LOAD_RETRY;
                continue;
            }
            _ = d.state.shutdown.cancelled() => return,
        };
        let Some(c) = coordinator.as_mut() else { continue };
        if !d.apply(c, effects, &mut pending).await {
            // What memory holds may not be in the log, and the log may hold a record that never
            // reached the in-sync replicas: start again from the log once all of it has.
            pending.clear();
            coordinator = d.try_load().await;
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

struct Driver {
    state: Arc<BrokerState>,
    view: View,
    ids: Arc<ProducerIds>,
    owned: Owned,
    config: TxnConfig,
    partitions: i32,
    markers: tokio::sync::Mutex<super::markers::MarkerWriter>,
}

impl Driver {
    /// In a cluster: take the set of `__transaction_state` partitions this broker leads now
    /// (with their epochs); true if it changed.
    fn follow_leadership(&self) -> bool {
        let now: HashMap<i32, i32> = (0..self.partitions)
            .filter_map(|p| self.state.replicas.leader_epoch(TRANSACTION_STATE_TOPIC, p).map(|e| (p, e)))
            .collect();
        let mut owned = self.owned.write().unwrap_or_else(|p| p.into_inner());
        if owned.as_ref() == Some(&now) {
            return false;
        }
        tracing::info!(partitions = ?now.keys().collect::<Vec<_>>(), "coordinating the transactions of these {TRANSACTION_STATE_TOPIC} partitions");
        *owned = Some(now);
        true
    }

    /// The coordinator epoch for `transactional_id`: the leader epoch of its partition here.
    fn coordinator_epoch(&self, transactional_id: &str) -> Option<i32> {
        match &*self.owned.read().unwrap_or_else(|p| p.into_inner()) {
            None => Some(COORDINATOR_EPOCH),
            Some(owned) => owned.get(&partition_for(transactional_id, self.partitions)).copied(),
        }
    }

    /// Whether this broker coordinates the transactional id of `req` (checked again here: the
    /// set may have changed since the handle let the request through).
    fn coordinates(&self, req: &Request) -> bool {
        holds(&self.owned, self.partitions, req.transactional_id())
    }

    /// Carry out effects in order, and those that reported markers bring. Returns false if an
    /// append to `__transaction_state` failed (the caller reloads).
    async fn apply(
        &self,
        coordinator: &mut TxnCoordinator,
        effects: Vec<Effect>,
        pending: &mut HashMap<u64, oneshot::Sender<Response>>,
    ) -> bool {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Persist(record) => {
                    let id = record.transactional_id.clone();
                    if let Err(e) = self.persist(&record).await {
                        tracing::error!(transactional_id = %id, error = %e, "cannot write to {TRANSACTION_STATE_TOPIC}");
                        return false;
                    }
                    let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                    if let Some(view) = view.as_mut() {
                        match record.value {
                            Some(v) => view.insert(id, v),
                            None => view.remove(&id),
                        };
                    }
                }
                Effect::Respond { request, response } => {
                    if let Some(reply) = pending.remove(&request.0) {
                        // The handler may have gone (client hung up): nothing to do.
                        let _ = reply.send(response);
                    }
                }
                Effect::WriteMarkers { transactional_id, producer_id, producer_epoch, commit, partitions } => {
                    let Some(epoch) = self.coordinator_epoch(&transactional_id) else {
                        // No longer coordinated here: the new coordinator writes them.
                        continue;
                    };
                    let failed = self.write_markers(producer_id, producer_epoch, commit, epoch, partitions).await;
                    let more =
                        coordinator.markers_written(now_ms(), &transactional_id, producer_id, producer_epoch, failed);
                    queue.extend(more);
                }
            }
        }
        true
    }

    /// Write one marker per partition (here, or through its leader); returns the partitions
    /// to try again.
    async fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<TopicPartition>,
    ) -> Vec<TopicPartition> {
        let mut writer = self.markers.lock().await;
        let outcomes =
            writer.write(&self.state, producer_id, producer_epoch, commit, coordinator_epoch, partitions).await;
        outcomes
            .into_iter()
            .filter_map(|(tp, outcome)| match outcome {
                super::markers::Outcome::Retry => Some(tp),
                super::markers::Outcome::Skipped => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, producer_id, "marker skipped");
                    None
                }
                super::markers::Outcome::Written => None,
            })
            .collect()
    }

    async fn persist(&self, record: &TxnRecord) -> Result<(), String> {
        let p = partition_for(&record.transactional_id, self.partitions);
        let log = self
            .state
            .topics
            .partition(TRANSACTION_STATE_TOPIC, p)
            .ok_or_else(|| format!("{TRANSACTION_STATE_TOPIC}-{p} is missing"))?;
        let rec = ProducerRecord {
            key: Some(record.encode_key()),
            value: record.encode_value(),
            headers: Vec::new(),
            timestamp: None,
        };
        let batch = encode_batch(&[rec], Compression::None, now_ms()).map_err(|e| e.to_string())?;
        let epoch = match self.state.cluster {
            Some(_) => Some(
                self.state
                    .replicas
                    .leader_epoch(TRANSACTION_STATE_TOPIC, p)
                    .ok_or_else(|| format!("no longer leading {TRANSACTION_STATE_TOPIC}-{p}"))?,
            ),
            None => None,
        };
        let l = log.clone();
        let info = super::handlers::blocking(move || l.append(&batch, now_ms())).await.map_err(|e| e.to_string())?;
        if let Some(epoch) = epoch {
            // Kafka's coordinator writes with acks=all.
            let timeout = std::time::Duration::from_secs(5);
            self.state
                .replicas
                .replicate(&self.state, TRANSACTION_STATE_TOPIC, p, &log, info.last_offset + 1, epoch, timeout)
                .await
                .map_err(|code| format!("{TRANSACTION_STATE_TOPIC}-{p} not replicated (error {code})"))?;
        }
        Ok(())
    }

    /// Keep [`IDS_READY`] producer ids available without disk I/O for the next step.
    async fn ids_ready(&self) -> std::io::Result<()> {
        if self.ids.available() >= IDS_READY {
            return Ok(());
        }
        let ids = self.ids.clone();
        super::handlers::blocking(move || ids.reserve(IDS_READY)).await
    }

    /// Create `__transaction_state` if it does not exist yet.
    async fn ensure_state_topic(&self) -> Result<(), TopicError> {
        super::ensure_internal_topic(
            &self.state,
            TRANSACTION_STATE_TOPIC,
            self.partitions,
            TRANSACTION_STATE_SEGMENT_BYTES,
        )
        .await
    }

    /// A coordinator rebuilt from `__transaction_state`, with the shared view reset to match;
    /// `None` (and no view: KIP-890 checks answer NOT_ENOUGH_REPLICAS, which producers retry)
    /// while a partition coordinated here holds records its in-sync
    /// replicas do not all have yet, or the log cannot be read.
    ///
    /// Acting only on records below the high watermark is what keeps a coordinator that lost
    /// its followers from writing the markers of a PrepareCommit no other broker holds: its
    /// append failed, and a new coordinator may abort that transaction meanwhile.
    async fn try_load(&self) -> Option<TxnCoordinator> {
        let loaded = match self.unreplicated() {
            Some(p) => {
                tracing::debug!(partition = p, "{TRANSACTION_STATE_TOPIC} not all replicated yet; loading later");
                None
            }
            None => match self.read_records().await {
                Ok(records) => {
                    let ids = self.ids.clone();
                    let mut coordinator = TxnCoordinator::new(self.config.clone(), move || ids.try_next());
                    let n = records.len();
                    coordinator.load(now_ms(), records);
                    if n > 0 {
                        tracing::info!(records = n, "loaded transaction state from {TRANSACTION_STATE_TOPIC}");
                    }
                    Some(coordinator)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load {TRANSACTION_STATE_TOPIC}; trying again");
                    None
                }
            },
        };
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        *view = loaded.as_ref().map(|c| c.list().map(|(id, v)| (id.to_owned(), v.clone())).collect());
        loaded
    }

    /// In a cluster: a `__transaction_state` partition led here whose high watermark is below
    /// its log end (a lone broker's log is all committed).
    fn unreplicated(&self) -> Option<i32> {
        let owned = self.owned.read().unwrap_or_else(|p| p.into_inner());
        let owned = owned.as_ref()?;
        let topic = self.state.topics.get(TRANSACTION_STATE_TOPIC)?;
        owned
            .keys()
            .copied()
            .find(|&p| topic.partitions.get(p as usize).is_some_and(|log| log.high_watermark() < log.log_end_offset()))
    }

    /// Every record of `__transaction_state`, partition by partition, oldest first.
    async fn read_records(&self) -> Result<Vec<TxnRecord>, String> {
        let (st, owned) = (self.state.clone(), self.owned.clone());
        super::handlers::blocking(move || -> Result<Vec<TxnRecord>, String> {
            let Some(topic) = st.topics.get(TRANSACTION_STATE_TOPIC) else { return Ok(Vec::new()) };
            let mut out = Vec::new();
            let owned = owned.read().unwrap_or_else(|p| p.into_inner()).clone();
            let held = |p: usize| owned.as_ref().is_none_or(|o| o.contains_key(&(p as i32)));
            for (_, log) in topic.partitions.iter().enumerate().filter(|(p, _)| held(*p)) {
                log.scan(|_, batch, from| {
                    let set = validate::decode_batch(batch)?;
                    for r in set.records.into_iter().filter(|r| !r.control && r.offset >= from) {
                        let Some(key) = r.key else { continue };
                        match TxnRecord::decode(&key, r.value.as_deref()) {
                            Ok(rec) => out.push(rec),
                            Err(e) => tracing::warn!(offset = r.offset, error = %e,
                                "skipping an unreadable record in {TRANSACTION_STATE_TOPIC}"),
                        }
                    }
                    Ok(())
                })?;
            }
            Ok(out)
        })
        .await
    }
}
