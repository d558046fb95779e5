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
use crate::client::{Client, ClientConfig, Metadata};
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
        })
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
        let mut client = self.client();
        if client.any_broker().is_closed() {
            client = Arc::new(Client::connect(client_config(&self.config)).await?);
            *self.client.lock().unwrap_or_else(|p| p.into_inner()) = client.clone();
        }
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
    Produce { batches: Vec<Batch>, result: Result<Vec<(i32, Result<i64>)>> },
    Metadata(Result<Metadata>),
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
    loop {
        let now = Instant::now();
        let (drained, finished) = {
            let mut acc = shared.acc();
            let d = acc.drain(now, &mut per_node);
            (d, acc.finished())
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
        for job in drained.jobs {
            requests.push(InFlight { node: Some(job.node), request: Box::pin(produce(&shared, job)) });
        }
        let sleep_until = next.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            biased;
            (node, done) = std::future::poll_fn(|cx| poll_oldest_first(&mut requests, cx)) => {
                match node {
                    Some(node) => {
                        if let Some(n) = per_node.get_mut(&node) {
                            *n = n.saturating_sub(1);
                        }
                    }
                    None => metadata_running = false,
                }
                match done {
                    Done::Produce { batches, result } => metadata_wanted |= settle(&shared, batches, result),
                    Done::Metadata(Err(e)) => {
                        tracing::debug!(error = %e, "producer metadata refresh failed; retrying after backoff");
                        metadata_wanted = true;
                    }
                    Done::Metadata(Ok(_)) => {}
                }
            }
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => {}
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
    async move {
        let result = if payload.is_empty() { Ok(Vec::new()) } else { client.produce_many(&topic, payload, acks).await };
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
