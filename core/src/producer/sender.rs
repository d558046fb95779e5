//! The sender task: drains ready batches, sends them, and settles their outcomes.
//!
//! One task per producer. It owns the requests in flight (produce requests and at most one
//! metadata refresh, polled by the task itself in the order they were made, see
//! [`poll_oldest_first`]) and loops: ask the accumulator what to send, encode those batches and
//! start their requests, then sleep until a `send` opens or fills a batch, a request completes,
//! or the earliest linger, backoff or delivery deadline passes. It stops once the producer is
//! closed (or dropped) and every batch has its outcome.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::accumulator::{retriable, Accumulator, Batch, Job};
use super::config::ProducerConfig;
use super::delivery::duplicate;
use super::sequence::IdAndEpoch;
use super::txn::coordinator_retriable;
use super::txn_requests;
use crate::client::{Client, ClientConfig, Connection, Metadata};
use crate::error::{Error, Result};

/// State shared by the producer handle(s) and the sender task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ProducerConfig,
    pub(crate) acc: Mutex<Accumulator>,
    /// `buffer.memory` in bytes: `send` takes, completed batches give back.
    pub(crate) memory: Arc<tokio::sync::Semaphore>,
    /// Wakes the sender.
    pub(crate) wake: Notify,
    /// Set once the sender has stopped.
    pub(crate) stopped: watch::Sender<bool>,
    /// Replaced when the bootstrap connection is lost (the client does not reconnect it).
    client: Mutex<Arc<Client>>,
    /// One metadata fetch at a time from `send`.
    fetching: tokio::sync::Mutex<()>,
    /// The transaction coordinator's connection, found lazily.
    txn_coordinator: tokio::sync::Mutex<Option<Connection>>,
}

impl Shared {
    pub(crate) async fn connect(config: ProducerConfig) -> Result<Self> {
        let client = Client::connect(client_config(&config)).await?;
        let memory = Arc::new(tokio::sync::Semaphore::new(config.buffer_memory));
        Ok(Self {
            acc: Mutex::new(Accumulator::new(config.clone(), memory.clone())),
            config,
            memory,
            wake: Notify::new(),
            stopped: watch::Sender::new(false),
            client: Mutex::new(Arc::new(client)),
            fetching: tokio::sync::Mutex::new(()),
            txn_coordinator: tokio::sync::Mutex::new(None),
        })
    }

    /// The bootstrap client, reconnected if its connection was lost.
    pub(crate) async fn live_client(&self) -> Result<Arc<Client>> {
        let client = self.client();
        if !client.any_broker().is_closed() {
            return Ok(client);
        }
        let client = Arc::new(Client::connect(client_config(&self.config)).await?);
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = client.clone();
        Ok(client)
    }

    /// The transaction coordinator's connection, looked up if unknown or closed.
    async fn txn_coordinator(&self) -> Result<Connection> {
        let id = self.config.transactional_id.as_deref().expect("a transactional producer");
        let mut slot = self.txn_coordinator.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = self.live_client().await?;
        let c = &self.config;
        let conn =
            txn_requests::find_txn_coordinator(&client.live_broker().await?, id, &c.client_id, c.request_timeout)
                .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Run `call` against the transaction coordinator, retrying the errors Kafka retries
    /// (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, lost
    /// connections; the coordinator is looked up again after the last two) with backoff, for up
    /// to `max.block.ms`. Other errors are returned as the broker gave them.
    pub(crate) async fn with_txn_coordinator<T, F, Fut>(&self, what: &str, also_retry: &[i16], mut call: F) -> Result<T>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.config.max_block;
        let mut attempt = 0;
        loop {
            let result = match self.txn_coordinator().await {
                Ok(conn) => call(conn).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) if coordinator_retriable(&e) || matches!(e, Error::Timeout(_)) => e,
                Err(e) if e.code().is_some_and(|c| also_retry.contains(&c)) => e,
                Err(e) => return Err(e),
            };
            let concurrent = e.code() == Some(super::txn::codes::CONCURRENT_TRANSACTIONS);
            if coordinator_retriable(&e) && !concurrent {
                *self.txn_coordinator.lock().await = None;
            }
            attempt += 1;
            // CONCURRENT_TRANSACTIONS clears within milliseconds (the previous transaction's
            // markers being written): Java retries AddPartitionsToTxn after 20 ms.
            let backoff = self.config.backoff(attempt);
            let backoff = if concurrent { backoff.min(Duration::from_millis(20)) } else { backoff };
            let pause = Instant::now() + backoff;
            if pause >= deadline {
                return Err(Error::Timeout(format!(
                    "{what} not done after max.block.ms ({} ms); last error: {e}",
                    self.config.max_block.as_millis()
                )));
            }
            tracing::debug!(error = %e, "{what}: retrying");
            tokio::time::sleep_until(tokio::time::Instant::from_std(pause)).await;
        }
    }

    pub(crate) fn acc(&self) -> MutexGuard<'_, Accumulator> {
        self.acc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> Arc<Client> {
        self.client.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetch metadata for every topic the producer knows plus `extra` (creating topics the
    /// broker auto-creates, as Kafka producers do) and take it in. Reconnects when the
    /// bootstrap connection was lost.
    async fn refresh_metadata(&self, extra: Option<&str>) -> Result<Metadata> {
        let mut topics = self.acc().topic_names();
        if let Some(t) = extra {
            if !topics.iter().any(|k| k == t) {
                topics.push(t.to_string());
            }
        }
        let client = self.live_client().await?;
        let md = client.metadata(Some(&topics), true).await?;
        self.acc().update_metadata(&md);
        Ok(md)
    }

    /// Wait (until `deadline`) for `topic`'s partitions to be known, fetching metadata.
    pub(crate) async fn wait_for_topic(&self, topic: &str, deadline: Instant) -> Result<()> {
        let timed_out = |last: Option<Error>| {
            Error::Timeout(format!(
                "topic '{topic}' not present in metadata after max.block.ms ({} ms){}",
                self.config.max_block.as_millis(),
                last.map(|e| format!("; last error: {e}")).unwrap_or_default()
            ))
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let _one_at_a_time =
            tokio::time::timeout_at(deadline, self.fetching.lock()).await.map_err(|_| timed_out(None))?;
        let mut attempt = 0;
        loop {
            if self.acc().knows(topic) {
                return Ok(());
            }
            let last = match tokio::time::timeout_at(deadline, self.refresh_metadata(Some(topic))).await {
                Err(_) => return Err(timed_out(None)),
                Ok(Ok(md)) => match md.topics.iter().find(|t| t.name == topic) {
                    Some(t) if t.error_code == 0 && !t.partitions.is_empty() => continue,
                    Some(t) if t.error_code != 0 => {
                        let e = Error::from_code(t.error_code, format!("topic '{topic}'"), None).expect("nonzero");
                        if !retriable(&e) {
                            return Err(e);
                        }
                        Some(e)
                    }
                    _ => None,
                },
                Ok(Err(e)) if !retriable(&e) => return Err(e),
                Ok(Err(e)) => Some(e),
            };
            attempt += 1;
            let pause = tokio::time::Instant::now() + self.config.backoff(attempt);
            if pause >= deadline {
                return Err(timed_out(last));
            }
            tokio::time::sleep_until(pause).await;
        }
    }
}

fn client_config(c: &ProducerConfig) -> ClientConfig {
    ClientConfig {
        bootstrap_servers: c.bootstrap_servers.clone(),
        client_id: c.client_id.clone(),
        request_timeout: c.request_timeout,
    }
}

/// Kafka's "invalid metadata" errors: the partition moved or is unknown; refresh, then retry.
fn stale_metadata(e: &Error) -> bool {
    match e.code() {
        // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
        // KAFKA_STORAGE_ERROR, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH
        Some(code) => matches!(code, 3 | 5 | 6 | 56 | 74 | 75),
        None => retriable(e),
    }
}

enum Done {
    Produce {
        batches: Vec<Batch>,
        result: Result<Vec<(i32, Result<i64>)>>,
    },
    Metadata(Result<Metadata>),
    /// InitProducerId of an idempotent producer (first id or an epoch bump).
    ProducerId(Result<IdAndEpoch>),
    /// AddPartitionsToTxn for these partitions.
    AddPartitions(Vec<(Arc<str>, i32)>, Result<()>),
}

/// Stops the producer's record of the sender running, however the task ends.
struct StoppedOnDrop(Arc<Shared>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.send_replace(true);
    }
}

/// A request in flight, owned and polled by the sender task itself.
struct InFlight {
    /// The broker a produce request went to; `None` for the metadata refresh.
    node: Option<i32>,
    request: Pin<Box<dyn Future<Output = Done> + Send>>,
}

/// Poll every request in flight, oldest first, and return the first that completed.
///
/// Order matters: a request is queued on its connection during its first poll (the client's
/// locks and queues are first come, first served), so polling in creation order puts requests
/// on the wire in the order their batches were drained. Spawning them as tasks instead would let
/// a later batch of a partition overtake an earlier one on another worker thread.
fn poll_oldest_first(in_flight: &mut Vec<InFlight>, cx: &mut Context<'_>) -> Poll<(Option<i32>, Done)> {
    for i in 0..in_flight.len() {
        if let Poll::Ready(done) = in_flight[i].request.as_mut().poll(cx) {
            let r = in_flight.remove(i);
            return Poll::Ready((r.node, done));
        }
    }
    Poll::Pending
}

/// The sender loop (see the module docs).
pub(crate) async fn run(shared: Arc<Shared>) {
    let _stopped = StoppedOnDrop(shared.clone());
    let mut requests: Vec<InFlight> = Vec::new();
    let mut per_node: HashMap<i32, usize> = HashMap::new();
    let mut metadata_wanted = false;
    let mut metadata_running = false;
    let mut last_metadata: Option<Instant> = None;
    let mut ids_running = false;
    let mut ids_retry_at: Option<Instant> = None;
    let mut adding = false;
    loop {
        let now = Instant::now();
        let (drained, finished, bump) = {
            let mut acc = shared.acc();
            let d = acc.drain(now, &mut per_node);
            let bump = if d.need_producer_id { acc.bump_ready() } else { None };
            (d, acc.finished(), bump)
        };
        if finished {
            break;
        }
        for (completion, e) in drained.expired {
            completion.complete(Err(e));
        }
        let mut next = drained.next_wakeup;
        metadata_wanted |= drained.need_metadata;
        if metadata_wanted && !metadata_running {
            let earliest = last_metadata.map_or(now, |t| t + shared.config.retry_backoff);
            if earliest <= now {
                metadata_wanted = false;
                metadata_running = true;
                last_metadata = Some(now);
                let s = shared.clone();
                let request = Box::pin(async move { Done::Metadata(s.refresh_metadata(None).await) });
                requests.push(InFlight { node: None, request });
            } else {
                next = Some(next.map_or(earliest, |n| n.min(earliest)));
            }
        }
        if drained.need_producer_id && !ids_running && shared.config.transactional_id.is_none() {
            let at = ids_retry_at.unwrap_or(now);
            let first = shared.acc().sequencer.ids.is_none();
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            } else if first || bump.is_some() {
                ids_running = true;
                let s = shared.clone();
                requests.push(InFlight { node: None, request: Box::pin(producer_id(s, bump)) });
            }
        }
        if !drained.add_to_txn.is_empty() && !adding {
            adding = true;
            let s = shared.clone();
            let mut parts = drained.add_to_txn;
            parts.dedup();
            requests.push(InFlight { node: None, request: Box::pin(add_partitions(s, parts)) });
        }
        for job in drained.jobs {
            requests.push(InFlight { node: Some(job.node), request: Box::pin(produce(&shared, job)) });
        }
        let sleep_until = next.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            biased;
            (node, done) = std::future::poll_fn(|cx| poll_oldest_first(&mut requests, cx)) => {
                if let Some(n) = node.and_then(|node| per_node.get_mut(&node)) {
                    *n = n.saturating_sub(1);
                }
                match done {
                    Done::Produce { batches, result } => metadata_wanted |= settle(&shared, batches, result),
                    Done::Metadata(r) => {
                        metadata_running = false;
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "producer metadata refresh failed; retrying after backoff");
                            metadata_wanted = true;
                        }
                    }
                    Done::ProducerId(r) => {
                        ids_running = false;
                        ids_retry_at = producer_id_done(&shared, r);
                    }
                    Done::AddPartitions(parts, r) => {
                        adding = false;
                        added(&shared, &parts, r);
                    }
                }
            }
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => {}
        }
    }
}

/// InitProducerId for an idempotent producer: its first id, or a bump from `current`.
async fn producer_id(shared: Arc<Shared>, current: Option<IdAndEpoch>) -> Done {
    let c = &shared.config;
    let r = match shared.live_client().await {
        Ok(client) => match client.live_broker().await {
            Ok(conn) => {
                txn_requests::init_producer_id(&conn, None, c.transaction_timeout, current, c.request_timeout).await
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    Done::ProducerId(r)
}

/// Take InitProducerId's answer. Returns when to try again after a retriable error.
fn producer_id_done(shared: &Shared, r: Result<IdAndEpoch>) -> Option<Instant> {
    let mut acc = shared.acc();
    match r {
        Ok(ids) => {
            tracing::debug!(producer_id = ids.producer_id, epoch = ids.epoch, "idempotent producer ids");
            acc.set_producer_ids(ids);
            None
        }
        Err(e) if retriable(&e) => {
            tracing::debug!(error = %e, "InitProducerId failed; retrying after backoff");
            Some(Instant::now() + shared.config.retry_backoff)
        }
        Err(e) if shared.config.enable_idempotence.is_none() && unsupported(&e) && acc.sequencer.ids.is_none() => {
            // Idempotence was only the default: go on without it, as against a broker without
            // producer ids any client must.
            tracing::warn!(error = %e, "the broker does not hand out producer ids; producing without idempotence");
            acc.sequencer.idempotent = false;
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "InitProducerId failed; the idempotent producer cannot go on");
            let failed = acc.fail_for_good(Error::ProducerFatal(Box::new(e)));
            drop(acc);
            for (completion, e) in failed {
                completion.complete(Err(e));
            }
            None
        }
    }
}

fn unsupported(e: &Error) -> bool {
    matches!(e, Error::UnsupportedVersion { .. }) || e.code() == Some(super::txn::codes::UNSUPPORTED_VERSION)
}

/// AddPartitionsToTxn for `parts` (retried inside while the coordinator says so).
async fn add_partitions(shared: Arc<Shared>, parts: Vec<(Arc<str>, i32)>) -> Done {
    let Some(ids) = shared.acc().sequencer.ids else {
        let e = Error::IllegalState("AddPartitionsToTxn before init_transactions".into());
        return Done::AddPartitions(parts, Err(e));
    };
    let id = shared.config.transactional_id.clone().expect("a transactional producer");
    let timeout = shared.config.request_timeout;
    let r = shared
        // A partition the coordinator does not know yet (UNKNOWN_TOPIC_OR_PARTITION), or one not
        // attempted because a sibling failed: try again.
        .with_txn_coordinator("AddPartitionsToTxn", &[3, super::txn::codes::OPERATION_NOT_ATTEMPTED], |conn| {
            let (id, parts) = (&id, &parts);
            async move { txn_requests::add_partitions(&conn, id, ids, parts, timeout).await }
        })
        .await;
    Done::AddPartitions(parts, r)
}

/// Take AddPartitionsToTxn's answer: the partitions may send, or the transaction fails.
fn added(shared: &Shared, parts: &[(Arc<str>, i32)], r: Result<()>) {
    let mut acc = shared.acc();
    match r {
        Ok(()) => acc.added_to_txn(parts),
        Err(e) => {
            tracing::debug!(error = %e, "AddPartitionsToTxn failed; the transaction must be aborted");
            if let Some(txn) = &mut acc.txn {
                txn.failed(e);
            }
        }
    }
}

/// Encode the job's batches (here, in the sender, so they are encoded in drain order) and
/// return the request that sends them in one Produce request.
fn produce(shared: &Arc<Shared>, job: Job) -> impl Future<Output = Done> + Send + 'static {
    let Job { topic, mut batches, .. } = job;
    let mut payload = Vec::with_capacity(batches.len());
    let mut unsendable = Vec::new();
    for b in &mut batches {
        match b.seal(shared.config.compression) {
            Ok(bytes) => payload.push((b.partition(), bytes)),
            Err(e) => unsendable.push((b.partition(), Err(e))),
        }
    }
    let client = shared.client();
    let acks = shared.config.acks.as_i16();
    let txn_id = shared.config.transactional_id.clone();
    async move {
        let result = if payload.is_empty() {
            Ok(Vec::new())
        } else {
            client.produce_many_as(&topic, payload, acks, txn_id.as_deref()).await
        };
        let result = result.map(|mut parts| {
            parts.extend(unsendable);
            parts
        });
        Done::Produce { batches, result }
    }
}

/// Hand each batch's outcome to the accumulator and complete the finished ones. Returns true
/// when the errors call for fresh metadata.
fn settle(shared: &Shared, batches: Vec<Batch>, result: Result<Vec<(i32, Result<i64>)>>) -> bool {
    let now = Instant::now();
    let mut refresh = false;
    let done: Vec<_> = {
        let mut acc = shared.acc();
        match result {
            Ok(mut parts) => batches
                .into_iter()
                .filter_map(|b| {
                    let r = match parts.iter_mut().find(|(p, _)| *p == b.partition()) {
                        Some((_, r)) => std::mem::replace(r, Err(Error::Protocol("partition answered twice".into()))),
                        None => Err(Error::Protocol(format!(
                            "the Produce response has no answer for {}-{}",
                            b.completion.topic,
                            b.partition()
                        ))),
                    };
                    if let Err(e) = &r {
                        refresh |= stale_metadata(e);
                    }
                    acc.on_result(b, r, now)
                })
                .collect(),
            Err(e) => {
                refresh |= stale_metadata(&e);
                batches.into_iter().filter_map(|b| acc.on_result(b, Err(duplicate(&e)), now)).collect()
            }
        }
    };
    for (completion, outcome) in done {
        completion.complete(outcome);
    }
    refresh
}
