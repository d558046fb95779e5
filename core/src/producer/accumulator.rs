//! The record accumulator: per-partition queues of batches, and the decisions about them.
//!
//! `send` appends records here (under one mutex, never held across an await); the sender task
//! asks [`Accumulator::drain`] which batches to send now and hands results back through
//! [`Accumulator::on_result`]. All the per-partition bookkeeping lives here, including the one
//! place a batch gets its producer ids and sequence ([`Sequencer`]): idempotence slots in there.
//!
//! Life of a batch: *open* (the tail of its partition's queue, taking records) -> *closed* (full,
//! or drained by the sender; no more records) -> *in flight* (out of the queue, in a request) ->
//! complete (acknowledged, failed for good, or expired), or back to the front of its queue to be
//! retried after a backoff.
//!
//! When a batch is ready (Kafka's rules): it is full, or another batch is queued behind it, or
//! `linger.ms` passed since it was opened, or a `flush`/`close` is in progress; a batch waiting
//! for a retry is ready once its backoff passed. A partition without a known leader waits for
//! metadata. At most one batch per partition goes in a request, and at most
//! `max.in.flight.requests.per.connection` requests go to one broker at a time; with that set to
//! 1 a partition never has two batches in flight (so order survives retries).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;

use super::batch::{max_record_size, restamp, BatchBuilder, ProducerIds, BATCH_HEADER_LEN};
use super::config::ProducerConfig;
use super::delivery::{duplicate, BatchCompletion, DeliveryFuture};
use super::partitioner::{partition_for_key, Rng, Sticky};
use super::sequence::{IdAndEpoch, PartitionSequences, SequenceVerdict, Sequencer};
use super::txn::{codes, Transaction};
use crate::client::Metadata;
use crate::error::{Error, Result};
use crate::records::ProducerRecord;

/// One batch, from its first record to its outcome.
#[derive(Debug)]
pub(crate) struct Batch {
    id: u64,
    pub(crate) completion: Arc<BatchCompletion>,
    /// Some while records are being added and until the sender seals it.
    builder: Option<BatchBuilder>,
    /// The encoded batch, once sealed (kept for retries), and the ids it was sealed with.
    sealed: Option<(Bytes, ProducerIds)>,
    /// No more records (full, or drained).
    closed: bool,
    ids: ProducerIds,
    records: i32,
    /// `buffer.memory` bytes this batch holds.
    reserved: usize,
    created: Instant,
    attempts: u32,
    retry_at: Option<Instant>,
    last_error: Option<Error>,
    /// The outcome was handed out (the batch is being dropped on purpose).
    finished: bool,
}

impl Batch {
    pub(crate) fn partition(&self) -> i32 {
        self.completion.partition
    }

    /// Encode the batch if it is not yet (outside the accumulator's lock: compression is the
    /// expensive part). Returns the bytes to send.
    pub(crate) fn seal(&mut self, compression: kafka_protocol::records::Compression) -> Result<Bytes> {
        if let Some((b, ids)) = &self.sealed {
            if *ids == self.ids {
                return Ok(b.clone());
            }
            // Re-sequenced after an epoch bump.
            let b = restamp(b, self.ids);
            self.sealed = Some((b.clone(), self.ids));
            return Ok(b);
        }
        let builder = self.builder.take().expect("an unsealed batch has its builder");
        let bytes = builder.seal(compression, self.ids)?;
        self.sealed = Some((bytes.clone(), self.ids));
        Ok(bytes)
    }

    /// Bytes this batch adds to a request (before compression, for open batches).
    fn wire_len(&self) -> usize {
        match (&self.sealed, &self.builder) {
            (Some((b, _)), _) => b.len(),
            (None, Some(b)) => BATCH_HEADER_LEN + b.records_len(),
            (None, None) => BATCH_HEADER_LEN,
        }
    }
}

impl Drop for Batch {
    /// A batch dropped without an outcome (the sender stopped) must not leave futures hanging.
    fn drop(&mut self) {
        if !self.finished && !self.completion.is_complete() {
            self.completion.complete(Err(Error::Protocol(format!(
                "the producer stopped before {} record(s) for {}-{} were acknowledged",
                self.records,
                self.completion.topic,
                self.partition()
            ))));
        }
    }
}

#[derive(Debug, Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: usize,
    /// Sequence bookkeeping (idempotent producers).
    seq: PartitionSequences,
    /// Added to the current transaction (AddPartitionsToTxn answered).
    in_txn: bool,
}

#[derive(Debug)]
struct TopicQueues {
    name: Arc<str>,
    /// Leader node per partition (-1: none known).
    leaders: Vec<i32>,
    /// Partitions with a leader, for the sticky partitioner.
    available: Vec<i32>,
    queues: Vec<PartitionQueue>,
    sticky: Sticky,
    /// Where the next drain starts, so no partition always comes last (Kafka's `drainIndex`).
    drain_from: usize,
}

/// A produce request to build: batches of one topic for one broker.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) node: i32,
    pub(crate) topic: Arc<str>,
    pub(crate) batches: Vec<Batch>,
}

/// What the sender should do now.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Requests to send.
    pub(crate) jobs: Vec<Job>,
    /// Batches that expired: complete them (outside the lock).
    pub(crate) expired: Vec<(Arc<BatchCompletion>, Error)>,
    /// When something next becomes ready or expires.
    pub(crate) next_wakeup: Option<Instant>,
    /// A partition with records has no known leader.
    pub(crate) need_metadata: bool,
    /// Batches wait for a producer id (InitProducerId) or an epoch bump.
    pub(crate) need_producer_id: bool,
    /// Partitions with batches to send that are not yet in the transaction (AddPartitionsToTxn).
    pub(crate) add_to_txn: Vec<(Arc<str>, i32)>,
}

/// What `append` did.
#[derive(Debug)]
pub(crate) enum Appended {
    /// Queued; `wake` when the sender should look (a batch was opened or filled up).
    Queued { future: DeliveryFuture, wake: bool },
    /// The topic's partitions are not known yet: fetch metadata and try again.
    NoMetadata,
}

/// Per-partition batch queues and the rules for draining them.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: ProducerConfig,
    /// `buffer.memory`, given back as batches complete.
    memory: Arc<tokio::sync::Semaphore>,
    topics: IndexMap<Arc<str>, TopicQueues>,
    /// Where the next drain starts among the topics (they compete for in-flight slots).
    drain_from: usize,
    rng: Rng,
    /// Producer id and epoch (idempotence), stamped on batches at their first drain.
    pub(crate) sequencer: Sequencer,
    /// The transaction state, for a producer with a `transactional.id`.
    pub(crate) txn: Option<Transaction>,
    /// The idempotent producer cannot go on (InitProducerId failed for good).
    fatal: Option<Error>,
    next_batch_id: u64,
    /// Every batch created and not yet complete, for `flush` and `close`.
    incomplete: HashMap<u64, Arc<BatchCompletion>>,
    flushing: usize,
    closing: bool,
}

impl Accumulator {
    pub(crate) fn new(config: ProducerConfig, memory: Arc<tokio::sync::Semaphore>) -> Self {
        Self {
            sequencer: Sequencer::new(config.idempotent(), config.transactional_id.is_some()),
            txn: config.transactional_id.as_ref().map(|_| Transaction::default()),
            fatal: None,
            config,
            memory,
            topics: IndexMap::new(),
            drain_from: 0,
            rng: Rng::new(),
            next_batch_id: 0,
            incomplete: HashMap::new(),
            flushing: 0,
            closing: false,
        }
    }

    #[cfg(test)]
    fn seeded(config: ProducerConfig, seed: u64) -> Self {
        let memory = Arc::new(tokio::sync::Semaphore::new(config.buffer_memory));
        Self { rng: Rng::seeded(seed), ..Self::new(config, memory) }
    }

    /// Add `rec` to its partition's open batch (opening one if needed, created at `now()`: the
    /// clock is read only then). `reserved` bytes of `buffer.memory` were taken for it and travel
    /// with the batch.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        rec: &ProducerRecord,
        timestamp: i64,
        reserved: usize,
        now: impl FnOnce() -> Instant,
    ) -> Result<Appended> {
        if self.closing {
            return Err(Error::Config("send after close: the producer is closed".into()));
        }
        if let Some(e) = &self.fatal {
            return Err(duplicate(e));
        }
        if let Some(txn) = &self.txn {
            txn.check_send()?;
        }
        let Some(t) = self.topics.get_mut(topic) else { return Ok(Appended::NoMetadata) };
        let n = t.queues.len() as i32;
        if n == 0 {
            return Ok(Appended::NoMetadata);
        }
        let batch_size = self.config.batch_size;
        let has_room = |q: &PartitionQueue| {
            q.batches.back().is_some_and(|b| {
                !b.closed
                    && b.builder.as_ref().is_some_and(|bb| {
                        bb.count() == 0 || bb.records_len() + bb.size_of_next(rec, timestamp) <= batch_size
                    })
            })
        };
        let mut sticky = false;
        let p = match (partition, rec.key.as_deref()) {
            (Some(p), _) if (0..n).contains(&p) => p,
            (Some(p), _) => {
                return Err(Error::from_code(
                    3,
                    format!("{topic}-{p}"),
                    Some(format!("topic '{topic}' has partitions 0..{n}")),
                )
                .expect("nonzero"))
            }
            (None, Some(key)) if !self.config.partitioner_ignore_keys => partition_for_key(key, n),
            (None, _) => {
                sticky = true;
                let p = t.sticky.partition(&t.available, n, &mut self.rng);
                if t.sticky.should_move() && !has_room(&t.queues[p as usize]) {
                    t.sticky.choose(&t.available, n, &mut self.rng)
                } else {
                    p
                }
            }
        };
        let q = &mut t.queues[p as usize];
        let mut wake = false;
        if !has_room(q) {
            if let Some(tail) = q.batches.back_mut() {
                tail.closed = true;
            }
            let id = self.next_batch_id;
            self.next_batch_id += 1;
            let completion = BatchCompletion::new(t.name.clone(), p);
            self.incomplete.insert(id, completion.clone());
            let size = max_record_size(rec);
            q.batches.push_back(Batch {
                id,
                completion,
                builder: Some(BatchBuilder::new(batch_size.max(size))),
                sealed: None,
                closed: false,
                ids: ProducerIds::NONE,
                records: 0,
                reserved: 0,
                created: now(),
                attempts: 0,
                retry_at: None,
                last_error: None,
                finished: false,
            });
            if sticky {
                t.sticky.opened_batch();
            }
            wake = true;
        }
        let batch = q.batches.back_mut().expect("just ensured");
        let builder = batch.builder.as_mut().expect("open batch");
        let index = builder.append(rec, timestamp);
        batch.records += 1;
        batch.reserved += reserved;
        if builder.records_len() >= batch_size {
            batch.closed = true;
            wake = true;
        }
        Ok(Appended::Queued { future: DeliveryFuture::new(batch.completion.clone(), index, timestamp), wake })
    }

    /// Take the batches to send now, at most one per partition per request, respecting the
    /// in-flight limit per broker (`in_flight` counts requests per node and is updated here).
    /// Expired batches are taken out too.
    pub(crate) fn drain(&mut self, now: Instant, in_flight: &mut HashMap<i32, usize>) -> Drained {
        let mut out = Drained::default();
        // A transaction that can no longer commit sends nothing more (Kafka's sender aborts
        // undrained batches then): fail what is queued so flushes and commits do not wait.
        if let Some(e) = self.fatal.as_ref().map(duplicate).or_else(|| self.txn.as_ref().and_then(Transaction::doomed))
        {
            out.expired = self.fail_queued(&e);
        }
        let cfg = &self.config;
        let all_ready = self.flushing > 0 || self.closing;
        let order_matters = cfg.max_in_flight == 1;
        let wake_at = |t: Instant, out: &mut Drained| {
            out.next_wakeup = Some(out.next_wakeup.map_or(t, |w| w.min(t)));
        };
        let topics = self.topics.len();
        let first_topic = self.drain_from % topics.max(1);
        self.drain_from = first_topic + 1;
        for ti in (first_topic..topics).chain(0..first_topic) {
            let t = &mut self.topics[ti];
            let first_job = out.jobs.len();
            let n = t.queues.len();
            let first = t.drain_from % n.max(1);
            t.drain_from = first + 1;
            for p in (first..n).chain(0..first) {
                let q = &mut t.queues[p];
                // Expiry: batches are queued oldest first (retries go back in creation order).
                while let Some(b) = q.batches.front() {
                    let deadline = b.created + cfg.delivery_timeout;
                    if deadline > now {
                        wake_at(deadline, &mut out);
                        break;
                    }
                    let mut b = q.batches.pop_front().expect("front exists");
                    self.incomplete.remove(&b.id);
                    self.memory.add_permits(b.reserved);
                    b.finished = true;
                    q.seq.done(b.id, false);
                    let e = expired_error(&b, now, cfg.delivery_timeout);
                    if let Some(txn) = &mut self.txn {
                        txn.batch_failed(&e);
                    }
                    out.expired.push((b.completion.clone(), e));
                }
                let Some(head) = q.batches.front() else { continue };
                let leader = t.leaders.get(p).copied().unwrap_or(-1);
                if leader < 0 {
                    out.need_metadata = true;
                    continue;
                }
                if order_matters && q.in_flight > 0 {
                    continue;
                }
                let ready_at = match head.retry_at {
                    Some(at) => at,
                    None if head.closed || q.batches.len() > 1 || all_ready => now,
                    None => head.created + cfg.linger,
                };
                if ready_at > now {
                    wake_at(ready_at, &mut out);
                    continue;
                }
                // Idempotence: the ids and sequence this batch goes out with, if it may go now.
                let resend = if self.sequencer.idempotent {
                    let Some(ids) = self.sequencer.ids else {
                        out.need_producer_id = true;
                        continue;
                    };
                    if self.sequencer.transactional && !q.in_txn {
                        out.add_to_txn.push((t.name.clone(), p as i32));
                        continue;
                    }
                    if q.seq.reset_wanted() {
                        out.need_producer_id |= q.in_flight == 0;
                        continue;
                    }
                    if head.attempts == 0 {
                        if !q.seq.may_stamp(ids) {
                            continue; // batches under the old ids are still out
                        }
                        None
                    } else {
                        match q.seq.resend(head.id) {
                            Some(stamp) => Some(stamp),
                            None => continue, // an earlier batch goes first
                        }
                    }
                } else {
                    None
                };
                let job = match out.jobs[first_job..].iter().position(|j| j.node == leader) {
                    Some(i) => first_job + i,
                    None => {
                        let n = in_flight.entry(leader).or_default();
                        if *n >= cfg.max_in_flight {
                            continue; // the sender looks again when a request completes
                        }
                        *n += 1;
                        out.jobs.push(Job { node: leader, topic: t.name.clone(), batches: Vec::new() });
                        out.jobs.len() - 1
                    }
                };
                let job = &mut out.jobs[job];
                let used: usize = job.batches.iter().map(Batch::wire_len).sum();
                if !job.batches.is_empty() && used + head.wire_len() > cfg.max_request_size {
                    continue;
                }
                let mut b = q.batches.pop_front().expect("head exists");
                if b.attempts == 0 {
                    b.closed = true;
                    if let Some(ids) = self.sequencer.ids.filter(|_| self.sequencer.idempotent) {
                        let sequence = q.seq.stamp(b.id, b.records);
                        b.ids = self.sequencer.stamp(ids, sequence);
                    }
                } else if let Some((ids, sequence)) = resend {
                    b.ids = self.sequencer.stamp(ids, sequence);
                }
                b.retry_at = None;
                b.attempts += 1;
                q.in_flight += 1;
                job.batches.push(b);
            }
        }
        out
    }

    /// Take the outcome of a sent batch. Returns the completion to signal (outside the lock), or
    /// `None` when the batch went back to its queue for another attempt.
    pub(crate) fn on_result(
        &mut self,
        mut batch: Batch,
        result: Result<i64>,
        now: Instant,
    ) -> Option<(Arc<BatchCompletion>, Result<i64>)> {
        let cfg = &self.config;
        let Some(t) = self.topics.get_mut(&*batch.completion.topic) else {
            return Some(self.finish(batch, result));
        };
        let p = batch.partition() as usize;
        let Some(q) = t.queues.get_mut(p) else { return Some(self.finish(batch, result)) };
        q.in_flight = q.in_flight.saturating_sub(1);
        let err = match result {
            Ok(offset) => {
                q.seq.done(batch.id, true);
                return Some(self.finish(batch, Ok(offset)));
            }
            Err(e) => e,
        };
        // Sequence errors of an idempotent producer (Kafka's `canRetry`): retried in sequence
        // order, after an epoch bump when the gap is real. A transaction cannot be repaired that
        // way: its batch fails (and the transaction must abort).
        let stamped = batch.ids.base_sequence >= 0;
        let verdict = match err.code() {
            Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER) if stamped => Some(q.seq.out_of_order(batch.id)),
            Some(codes::UNKNOWN_PRODUCER_ID) if stamped => Some(q.seq.unknown_producer(batch.id)),
            _ => None,
        };
        let sequence_retry = match verdict {
            Some(SequenceVerdict::RetryAfterEarlier) => true,
            Some(SequenceVerdict::RetryAfterBump) => !self.sequencer.transactional,
            None => false,
        };
        let expired = batch.created + cfg.delivery_timeout <= now;
        if !sequence_retry && (!retriable(&err) || batch.attempts > cfg.retries) || expired {
            let err = if (retriable(&err) || sequence_retry) && expired {
                batch.last_error = Some(err);
                expired_error(&batch, now, cfg.delivery_timeout)
            } else {
                err
            };
            q.seq.done(batch.id, false);
            if let Some(txn) = &mut self.txn {
                txn.batch_failed(&err);
            }
            return Some(self.finish(batch, Err(err)));
        }
        batch.retry_at = if sequence_retry {
            Some(now) // held back by its sequence, not by a backoff
        } else {
            let jitter = 0.8 + (self.rng.below(401) as f64) / 1000.0;
            Some(now + cfg.backoff(batch.attempts).mul_f64(jitter))
        };
        batch.last_error = Some(err);
        // Back in creation order among the batches waiting to be retried, before new ones.
        let at = q.batches.iter().position(|b| b.id > batch.id).unwrap_or(q.batches.len());
        q.batches.insert(at, batch);
        None
    }

    fn finish(&mut self, mut batch: Batch, result: Result<i64>) -> (Arc<BatchCompletion>, Result<i64>) {
        self.incomplete.remove(&batch.id);
        self.memory.add_permits(batch.reserved);
        batch.finished = true;
        (batch.completion.clone(), result)
    }

    /// Take a new producer id and epoch (InitProducerId, an epoch bump, or EndTxn v5's bumped
    /// epoch): partitions that asked for a bump renumber their unacknowledged batches under it,
    /// the others move to it once their batches under the old ids are done.
    pub(crate) fn set_producer_ids(&mut self, ids: IdAndEpoch) {
        self.sequencer.ids = Some(ids);
        for t in self.topics.values_mut() {
            for q in &mut t.queues {
                q.seq.reset(ids);
            }
        }
    }

    /// The ids to bump from, when an epoch bump is wanted and every partition that wants it has
    /// nothing in flight (its unacknowledged batches wait in its queue). Transactional producers
    /// bump when they abort, not here.
    pub(crate) fn bump_ready(&self) -> Option<IdAndEpoch> {
        if self.sequencer.transactional {
            return None;
        }
        let ids = self.sequencer.ids?;
        let mut wanted = false;
        for q in self.topics.values().flat_map(|t| t.queues.iter()) {
            if q.seq.reset_wanted() {
                if q.in_flight > 0 {
                    return None;
                }
                wanted = true;
            }
        }
        wanted.then_some(ids)
    }

    /// True when a partition wants an epoch bump (a stamped batch failed or met a gap).
    pub(crate) fn bump_wanted(&self) -> bool {
        self.topics.values().flat_map(|t| t.queues.iter()).any(|q| q.seq.reset_wanted())
    }

    /// AddPartitionsToTxn answered for these partitions: their batches may go.
    pub(crate) fn added_to_txn(&mut self, partitions: &[(Arc<str>, i32)]) {
        for (topic, p) in partitions {
            if let Some(q) = self.topics.get_mut(&**topic).and_then(|t| t.queues.get_mut(*p as usize)) {
                q.in_txn = true;
            }
        }
        if let Some(txn) = &mut self.txn {
            txn.started = true;
        }
    }

    /// The transaction ended: every partition must be added again in the next one.
    pub(crate) fn end_txn(&mut self) {
        for q in self.topics.values_mut().flat_map(|t| t.queues.iter_mut()) {
            q.in_txn = false;
        }
    }

    /// The producer cannot go on: fail what is queued and every later send with `e`.
    pub(crate) fn fail_for_good(&mut self, e: Error) -> Vec<(Arc<BatchCompletion>, Error)> {
        let out = self.fail_queued(&e);
        self.fatal = Some(e);
        out
    }

    /// Fail every batch not in flight (unsent, or waiting for a retry) with a copy of `e`: an
    /// aborted transaction, or one that can no longer commit. Returns the completions to signal.
    pub(crate) fn fail_queued(&mut self, e: &Error) -> Vec<(Arc<BatchCompletion>, Error)> {
        let mut out = Vec::new();
        for t in self.topics.values_mut() {
            for q in &mut t.queues {
                for mut b in q.batches.drain(..) {
                    self.incomplete.remove(&b.id);
                    self.memory.add_permits(b.reserved);
                    b.finished = true;
                    q.seq.done(b.id, false);
                    out.push((b.completion.clone(), duplicate(e)));
                }
            }
        }
        out
    }

    /// Take in new metadata: leaders and partition counts of every topic it has without error.
    pub(crate) fn update_metadata(&mut self, md: &Metadata) {
        for info in md.topics.iter().filter(|t| t.error_code == 0 && !t.partitions.is_empty()) {
            let t = match self.topics.get_mut(info.name.as_str()) {
                Some(t) => t,
                None => {
                    let name: Arc<str> = info.name.as_str().into();
                    self.topics.entry(name.clone()).or_insert(TopicQueues {
                        name,
                        leaders: Vec::new(),
                        available: Vec::new(),
                        queues: Vec::new(),
                        sticky: Sticky::default(),
                        drain_from: 0,
                    })
                }
            };
            let n = info.partitions.iter().map(|p| p.partition + 1).max().unwrap_or(0).max(t.queues.len() as i32);
            t.leaders = vec![-1; n as usize];
            for p in info.partitions.iter().filter(|p| p.partition >= 0) {
                t.leaders[p.partition as usize] = p.leader;
            }
            t.available = (0..n).filter(|p| t.leaders[*p as usize] >= 0).collect();
            t.queues.resize_with(n as usize, PartitionQueue::default);
        }
    }

    /// The topics with metadata, for a metadata request that keeps them all current.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.keys().map(|t| t.to_string()).collect()
    }

    /// True when `topic`'s partitions are known.
    pub(crate) fn knows(&self, topic: &str) -> bool {
        self.topics.get(topic).is_some_and(|t| !t.queues.is_empty())
    }

    /// Start a flush: every batch is ready until [`Accumulator::end_flush`]. Returns the batches
    /// to wait for.
    pub(crate) fn begin_flush(&mut self) -> Vec<Arc<BatchCompletion>> {
        self.flushing += 1;
        self.incomplete.values().cloned().collect()
    }

    pub(crate) fn end_flush(&mut self) {
        self.flushing -= 1;
    }

    /// Refuse further sends and treat every batch as ready.
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// Closed and nothing left to deliver: the sender may stop.
    pub(crate) fn finished(&mut self) -> bool {
        if self.closing {
            self.incomplete.retain(|_, c| !c.is_complete());
        }
        self.closing && self.incomplete.is_empty()
    }
}

/// True when sending the batch again may work: Kafka's retriable errors, lost connections
/// (including a connection that closed while a response was awaited, which the client reports
/// as a frame error), and a leader the client has no address for yet.
pub(crate) fn retriable(e: &Error) -> bool {
    use crate::wire::FrameError;
    e.is_retriable() || matches!(e, Error::NoBroker(_) | Error::Frame(FrameError::Closed | FrameError::Io(_)))
}

fn expired_error(b: &Batch, now: Instant, timeout: Duration) -> Error {
    let last = b.last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default();
    Error::Timeout(format!(
        "delivery.timeout.ms ({} ms): {} record(s) for {}-{} not acknowledged {} ms after the batch was created \
         ({} attempt(s){last})",
        timeout.as_millis(),
        b.records,
        b.completion.topic,
        b.partition(),
        now.saturating_duration_since(b.created).as_millis(),
        b.attempts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{PartitionInfo, TopicInfo};
    use bytes::Bytes;
    use kafka_protocol::records::Compression;

    const MS: Duration = Duration::from_millis(1);

    fn metadata(topic: &str, leaders: &[i32]) -> Metadata {
        Metadata {
            brokers: [(0, "127.0.0.1:1".to_string()), (1, "127.0.0.1:2".to_string())].into(),
            topics: vec![TopicInfo {
                name: topic.into(),
                error_code: 0,
                internal: false,
                partitions: leaders
                    .iter()
                    .enumerate()
                    .map(|(p, l)| PartitionInfo {
                        partition: p as i32,
                        leader: *l,
                        leader_epoch: 0,
                        replicas: vec![*l],
                        isr: vec![*l],
                        error_code: if *l < 0 { 5 } else { 0 },
                    })
                    .collect(),
            }],
            ..Default::default()
        }
    }

    fn accumulator(tweak: impl FnOnce(&mut ProducerConfig)) -> Accumulator {
        let mut c = ProducerConfig::new("h:1");
        c.linger = 10 * MS;
        c.batch_size = 1000;
        tweak(&mut c);
        let mut acc = Accumulator::seeded(c, 42);
        acc.update_metadata(&metadata("t", &[0, 0, 1, 1]));
        // Idempotent by default: as if InitProducerId had answered.
        acc.set_producer_ids(IDS);
        acc
    }

    const IDS: IdAndEpoch = IdAndEpoch { producer_id: 1, epoch: 0 };

    fn rec(key: Option<&str>, value_len: usize) -> ProducerRecord {
        ProducerRecord {
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(vec![b'v'; value_len].into()),
            ..Default::default()
        }
    }

    fn append(acc: &mut Accumulator, p: Option<i32>, r: &ProducerRecord, now: Instant) -> (DeliveryFuture, bool) {
        let size = max_record_size(r);
        acc.memory.try_acquire_many(size as u32).unwrap().forget();
        match acc.append("t", p, r, 0, size, || now).unwrap() {
            Appended::Queued { future, wake } => (future, wake),
            Appended::NoMetadata => panic!("metadata is known"),
        }
    }

    /// Append, dropping the delivery future (the batch still completes).
    fn put(acc: &mut Accumulator, p: Option<i32>, r: &ProducerRecord, now: Instant) {
        drop(append(acc, p, r, now));
    }

    /// (node, [(partition, records)]) per job.
    fn summary(d: &Drained) -> Vec<(i32, Vec<(i32, i32)>)> {
        let mut out: Vec<_> = d
            .jobs
            .iter()
            .map(|j| (j.node, j.batches.iter().map(|b| (b.partition(), b.records)).collect::<Vec<_>>()))
            .collect();
        for (_, bs) in &mut out {
            bs.sort();
        }
        out.sort();
        out
    }

    #[test]
    fn a_batch_waits_for_linger_then_goes_whole() {
        let mut acc = accumulator(|_| {});
        let t0 = Instant::now();
        let mut inf = HashMap::new();
        let (_, wake) = append(&mut acc, Some(0), &rec(None, 10), t0);
        assert!(wake, "a new batch wakes the sender");
        let (_, wake) = append(&mut acc, Some(0), &rec(None, 10), t0 + MS);
        assert!(!wake, "a record joining an open batch does not");
        put(&mut acc, Some(2), &rec(None, 10), t0 + 2 * MS);
        let d = acc.drain(t0 + 5 * MS, &mut inf);
        assert!(d.jobs.is_empty());
        assert_eq!(d.next_wakeup, Some(t0 + 10 * MS));
        let d = acc.drain(t0 + 10 * MS, &mut inf);
        assert_eq!(summary(&d), [(0, vec![(0, 2)])], "partition 2's batch is 2 ms younger");
        assert_eq!(d.next_wakeup, Some(t0 + 12 * MS));
        let d = acc.drain(t0 + 12 * MS, &mut inf);
        assert_eq!(summary(&d), [(1, vec![(2, 1)])]);
        assert_eq!(inf, HashMap::from([(0, 1), (1, 1)]));
    }

    #[test]
    fn a_full_batch_goes_at_once_and_the_next_record_opens_another() {
        let mut acc = accumulator(|c| c.batch_size = 300);
        let t0 = Instant::now();
        let mut wakes = 0;
        for _ in 0..7 {
            wakes += append(&mut acc, Some(1), &rec(None, 90), t0).1 as usize;
        }
        // ~97 bytes per record: 3 fit in 300, so batches of 3, 3 and an open 1. A batch that is
        // not filled exactly is closed by the record that opens the next: one wake each.
        assert_eq!(wakes, 3, "3 batches opened");
        let d = acc.drain(t0, &mut HashMap::new());
        assert_eq!(summary(&d), [(0, vec![(1, 3)])], "one batch per partition per request");
        let d = acc.drain(t0, &mut HashMap::new());
        assert_eq!(summary(&d), [(0, vec![(1, 3)])], "the second full one");
        let d = acc.drain(t0, &mut HashMap::new());
        assert!(d.jobs.is_empty(), "the open batch lingers");
        // A record larger than batch.size gets a batch of its own.
        let mut acc = accumulator(|c| c.batch_size = 100);
        put(&mut acc, Some(0), &rec(None, 10), t0);
        put(&mut acc, Some(0), &rec(None, 500), t0);
        put(&mut acc, Some(0), &rec(None, 10), t0);
        let mut inf = HashMap::new();
        let sizes: Vec<_> = (0..3).flat_map(|_| summary(&acc.drain(t0 + 10 * MS, &mut inf))).collect();
        assert_eq!(sizes, [(0, vec![(0, 1)]), (0, vec![(0, 1)]), (0, vec![(0, 1)])]);
    }

    #[test]
    fn keyed_records_follow_murmur2_and_unkeyed_ones_stick_until_their_batch_is_sent() {
        let mut acc = accumulator(|c| c.max_in_flight = 100);
        let t0 = Instant::now();
        for k in ["a", "b", "c", "d", "e"] {
            let (f, _) = append(&mut acc, None, &rec(Some(k), 1), t0);
            assert_eq!(f.partition(), partition_for_key(k.as_bytes(), 4), "key {k}");
        }
        let mut inf = HashMap::new();
        acc.drain(t0 + 10 * MS, &mut inf);
        let mut previous = None;
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..20 {
            let parts: Vec<i32> = (0..5).map(|_| append(&mut acc, None, &rec(None, 1), t0).0.partition()).collect();
            assert!(parts.iter().all(|p| *p == parts[0]), "round {round}: one sticky partition: {parts:?}");
            assert_ne!(Some(parts[0]), previous, "round {round}: after a batch is sent, another partition");
            previous = Some(parts[0]);
            seen.insert(parts[0]);
            let d = acc.drain(t0 + 10 * MS, &mut inf);
            assert_eq!(d.jobs.iter().map(|j| j.batches.len()).sum::<usize>(), 1);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        // partitioner.ignore.keys: keys are sticky too.
        let mut acc = accumulator(|c| c.partitioner_ignore_keys = true);
        let parts: Vec<i32> =
            ["a", "b", "c", "d"].iter().map(|k| append(&mut acc, None, &rec(Some(k), 1), t0).0.partition()).collect();
        assert!(parts.iter().all(|p| *p == parts[0]), "{parts:?}");
    }

    #[test]
    fn in_flight_requests_per_broker_are_bounded() {
        let mut acc = accumulator(|c| c.max_in_flight = 2);
        let t0 = Instant::now();
        let mut inf = HashMap::new();
        for round in 0..3 {
            for p in 0..4 {
                put(&mut acc, Some(p), &rec(None, 1), t0);
            }
            let d = acc.drain(t0 + 10 * MS, &mut inf);
            if round < 2 {
                assert_eq!(summary(&d), [(0, vec![(0, 1), (1, 1)]), (1, vec![(2, 1), (3, 1)])], "round {round}");
            } else {
                assert!(d.jobs.is_empty(), "two requests in flight to each broker already");
            }
        }
        assert_eq!(inf, HashMap::from([(0, 2), (1, 2)]));
    }

    #[test]
    fn drains_rotate_so_no_partition_always_comes_last() {
        // Room for one batch per request: without rotation partition 0 would win every time.
        let mut acc = accumulator(|c| c.max_request_size = 1);
        acc.update_metadata(&metadata("t", &[0, 0, 0, 0]));
        let t0 = Instant::now();
        let mut taken = Vec::new();
        for _ in 0..4 {
            for p in 0..4 {
                put(&mut acc, Some(p), &rec(None, 1), t0);
            }
            let d = acc.drain(t0 + 10 * MS, &mut HashMap::new());
            let s = summary(&d);
            assert_eq!(s.len(), 1);
            taken.push(s[0].1[0].0);
        }
        taken.sort();
        assert_eq!(taken, [0, 1, 2, 3]);
    }

    #[test]
    fn one_in_flight_keeps_each_partition_to_one_batch_in_flight() {
        let mut acc = accumulator(|c| c.max_in_flight = 1);
        let t0 = Instant::now();
        let mut inf = HashMap::new();
        put(&mut acc, Some(0), &rec(None, 1), t0);
        let d = acc.drain(t0 + 10 * MS, &mut inf);
        assert_eq!(summary(&d), [(0, vec![(0, 1)])]);
        put(&mut acc, Some(0), &rec(None, 1), t0);
        inf.clear(); // even with the connection free, the partition is muted
        assert!(acc.drain(t0 + 10 * MS, &mut inf).jobs.is_empty());
        let b = d.jobs.into_iter().next().unwrap().batches.into_iter().next().unwrap();
        let (c, r) = acc.on_result(b, Ok(7), t0).unwrap();
        c.complete(r);
        assert_eq!(summary(&acc.drain(t0 + 10 * MS, &mut inf)), [(0, vec![(0, 1)])]);
    }

    #[tokio::test]
    async fn retriable_errors_retry_after_backoff_and_fatal_ones_complete() {
        let mut acc = accumulator(|c| c.retries = 1);
        let t0 = Instant::now();
        let mut inf = HashMap::new();
        let (f0, _) = append(&mut acc, Some(0), &rec(None, 1), t0);
        put(&mut acc, Some(0), &rec(None, 1), t0 + MS); // joins the same batch
        let b = acc.drain(t0 + 10 * MS, &mut inf).jobs.remove(0).batches.remove(0);
        let (f1, _) = append(&mut acc, Some(0), &rec(None, 1), t0 + 11 * MS);
        let not_leader = Error::from_code(6, "t-0", None).unwrap();
        assert!(acc.on_result(b, Err(not_leader), t0 + 20 * MS).is_none(), "retried");
        let d = acc.drain(t0 + 21 * MS, &mut inf);
        assert!(d.jobs.is_empty(), "the retry waits for its backoff and the newer batch behind it");
        let wake = d.next_wakeup.unwrap();
        assert!(wake >= t0 + 100 * MS && wake <= t0 + 145 * MS, "backoff 100 ms +- 20%: {:?}", wake - t0);
        let d = acc.drain(wake, &mut inf);
        assert_eq!(summary(&d), [(0, vec![(0, 2)])], "the retried batch goes first");
        let b = d.jobs.into_iter().next().unwrap().batches.into_iter().next().unwrap();
        let (c, r) = acc.on_result(b, Err(Error::from_code(6, "t-0", None).unwrap()), wake).unwrap();
        assert_eq!(r.as_ref().unwrap_err().code(), Some(6), "retries=1 used up: the last error is reported");
        c.complete(r);
        assert_eq!(f0.await.unwrap_err().code(), Some(6));
        // Whether the failed batch was stored is unknown: the partition waits for a new epoch.
        let d = acc.drain(wake, &mut inf);
        assert!(d.jobs.is_empty() && d.need_producer_id);
        assert_eq!(acc.bump_ready(), Some(IDS));
        acc.set_producer_ids(IdAndEpoch { producer_id: 1, epoch: 1 });
        let d = acc.drain(wake, &mut inf);
        let b = d.jobs.into_iter().next().unwrap().batches.into_iter().next().unwrap();
        assert_eq!((b.ids.epoch, b.ids.base_sequence), (1, 0), "the next batch starts the new epoch at 0");
        let too_large = Error::from_code(10, "t-0", Some("no".into())).unwrap();
        let (c, r) = acc.on_result(b, Err(too_large), wake).unwrap();
        c.complete(r);
        assert_eq!(f1.await.unwrap_err().code(), Some(10), "not retriable: fails at once");
    }

    /// The batches one drain sends.
    fn sent(acc: &mut Accumulator, now: Instant) -> Vec<Batch> {
        let d = acc.drain(now, &mut HashMap::new());
        d.jobs.into_iter().flat_map(|j| j.batches).collect()
    }

    #[test]
    fn idempotent_batches_get_sequences_at_first_drain_and_keep_them_across_retries() {
        let mut acc = accumulator(|c| c.batch_size = 1);
        let t0 = Instant::now();
        for _ in 0..3 {
            put(&mut acc, Some(0), &rec(None, 1), t0); // one record per batch
        }
        put(&mut acc, Some(1), &rec(None, 1), t0);
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend(sent(&mut acc, t0 + 10 * MS));
        }
        let seqs: Vec<(i32, i32)> = out.iter().map(|b| (b.partition(), b.ids.base_sequence)).collect();
        assert_eq!(seqs, [(0, 0), (1, 0), (0, 1), (0, 2)], "per partition, counting records");
        assert!(out.iter().all(|b| b.ids.producer_id == 1 && b.ids.epoch == 0 && !b.ids.transactional));
        let mut out = out.into_iter();
        let (b0, _, b1, b2) = (out.next().unwrap(), out.next(), out.next().unwrap(), out.next().unwrap());
        // Batch 0 is lost (retriable); 1 and 2 arrive out of order: they wait for 0, then go in
        // sequence order, one at a time, with their sequences.
        assert!(acc.on_result(b1, Err(Error::from_code(45, "t-0", None).unwrap()), t0).is_none());
        assert!(acc.on_result(b0, Err(Error::Disconnected("x".into())), t0).is_none());
        assert!(acc.on_result(b2, Err(Error::from_code(45, "t-0", None).unwrap()), t0).is_none());
        assert!(sent(&mut acc, t0 + MS).is_empty(), "1 and 2 may not overtake 0, which waits for its backoff");
        let later = t0 + Duration::from_secs(1);
        for want in 0..3 {
            let mut got = sent(&mut acc, later);
            assert_eq!(got.len(), 1, "one batch of the partition in flight while retrying");
            assert!(sent(&mut acc, later).is_empty(), "the next waits for this one's answer");
            let b = got.pop().unwrap();
            assert_eq!((b.ids.base_sequence, b.attempts), (want, 2));
            let (c, r) = acc.on_result(b, Ok(100 + want as i64), later).unwrap();
            c.complete(r);
        }
        // DUPLICATE_SEQUENCE_NUMBER is success (the client maps it), so nothing is left over.
        assert_eq!(sent(&mut acc, later).len(), 0);
        put(&mut acc, Some(0), &rec(None, 1), later);
        let b = sent(&mut acc, later + 10 * MS);
        assert_eq!(b[0].ids.base_sequence, 3, "new batches continue the sequence");
    }

    #[test]
    fn a_real_gap_bumps_the_epoch_and_renumbers_the_waiting_batches() {
        let mut acc = accumulator(|c| c.batch_size = 1);
        let t0 = Instant::now();
        for _ in 0..2 {
            put(&mut acc, Some(0), &rec(None, 1), t0);
        }
        let b0 = sent(&mut acc, t0 + 10 * MS).pop().unwrap();
        let b1 = sent(&mut acc, t0 + 10 * MS).pop().unwrap();
        // The first unacked batch meets OUT_OF_ORDER: nothing before it can fill the gap.
        assert!(acc.on_result(b0, Err(Error::from_code(45, "t-0", None).unwrap()), t0).is_none());
        assert_eq!(acc.bump_ready(), None, "batch 1 is still in flight");
        assert!(acc.on_result(b1, Err(Error::from_code(45, "t-0", None).unwrap()), t0).is_none());
        let d = acc.drain(t0 + 20 * MS, &mut HashMap::new());
        assert!(d.jobs.is_empty() && d.need_producer_id);
        assert_eq!(acc.bump_ready(), Some(IDS));
        acc.set_producer_ids(IdAndEpoch { producer_id: 1, epoch: 1 });
        let mut b0 = sent(&mut acc, t0 + 20 * MS).pop().unwrap();
        assert_eq!((b0.ids.epoch, b0.ids.base_sequence), (1, 0));
        let bytes = b0.seal(Compression::None).unwrap();
        assert_eq!(i16::from_be_bytes([bytes[51], bytes[52]]), 1, "the sealed bytes carry the new epoch");
        let (c, r) = acc.on_result(b0, Ok(5), t0).unwrap();
        c.complete(r);
        let b1 = sent(&mut acc, t0 + 20 * MS).pop().unwrap();
        assert_eq!((b1.ids.epoch, b1.ids.base_sequence), (1, 1));
    }

    #[tokio::test]
    async fn transactional_batches_wait_for_their_partition_to_join_the_transaction() {
        let mut acc = accumulator(|c| c.transactional_id = Some("tx".into()));
        let t0 = Instant::now();
        let e = acc.append("t", Some(0), &rec(None, 1), 0, 10, || t0).unwrap_err();
        assert!(matches!(e, Error::IllegalState(_)), "{e}");
        let txn = acc.txn.as_mut().unwrap();
        txn.start_init().unwrap();
        txn.init_done(Ok(())).unwrap();
        txn.begin().unwrap();
        put(&mut acc, Some(0), &rec(None, 1), t0);
        let d = acc.drain(t0 + 10 * MS, &mut HashMap::new());
        assert!(d.jobs.is_empty());
        assert_eq!(d.add_to_txn, [("t".into(), 0)]);
        acc.added_to_txn(&d.add_to_txn);
        let b = sent(&mut acc, t0 + 10 * MS).pop().unwrap();
        assert!(b.ids.transactional);
        // The batch fails: the transaction can only abort, and queued batches fail at once.
        let (c, r) = acc.on_result(b, Err(Error::from_code(10, "t-0", None).unwrap()), t0).unwrap();
        c.complete(r);
        assert!(acc.txn.as_ref().unwrap().doomed().is_some());
        let e = acc.append("t", Some(0), &rec(None, 1), 0, 10, || t0).unwrap_err();
        assert!(matches!(e, Error::TransactionAbortable(_)), "{e}");
        acc.end_txn();
        let d = acc.drain(t0 + 10 * MS, &mut HashMap::new());
        assert!(d.jobs.is_empty() && d.add_to_txn.is_empty(), "nothing queued");
    }

    #[tokio::test]
    async fn batches_expire_after_delivery_timeout_with_the_last_error() {
        let mut acc = accumulator(|c| c.delivery_timeout = Duration::from_secs(40));
        let t0 = Instant::now();
        let mut inf = HashMap::new();
        let (f, _) = append(&mut acc, Some(0), &rec(None, 1), t0);
        let b = acc.drain(t0 + 10 * MS, &mut inf).jobs.remove(0).batches.remove(0);
        let gone = Error::Disconnected("127.0.0.1:1".into());
        assert!(acc.on_result(b, Err(gone), t0 + 30 * MS).is_none());
        let d = acc.drain(t0 + Duration::from_secs(40), &mut inf);
        assert!(d.jobs.is_empty());
        let (c, e) = d.expired.into_iter().next().expect("expired");
        c.complete(Err(e));
        let msg = f.await.unwrap_err().to_string();
        assert!(msg.contains("delivery.timeout.ms (40000 ms): 1 record(s) for t-0"), "{msg}");
        assert!(msg.contains("1 attempt(s); last error: connection to 127.0.0.1:1 closed"), "{msg}");
        assert!(acc.incomplete.is_empty());
        assert_eq!(acc.memory.available_permits(), acc.config.buffer_memory, "memory given back");
    }

    #[test]
    fn flush_makes_lingering_batches_ready_and_unknown_leaders_ask_for_metadata() {
        let mut acc = accumulator(|c| c.linger = Duration::from_secs(60));
        acc.update_metadata(&metadata("t", &[0, -1, 1, 1]));
        let t0 = Instant::now();
        put(&mut acc, Some(0), &rec(None, 1), t0);
        put(&mut acc, Some(1), &rec(None, 1), t0);
        let mut inf = HashMap::new();
        assert!(acc.drain(t0, &mut inf).jobs.is_empty());
        let pending = acc.begin_flush();
        assert_eq!(pending.len(), 2);
        let d = acc.drain(t0, &mut inf);
        assert_eq!(summary(&d), [(0, vec![(0, 1)])]);
        assert!(d.need_metadata, "partition 1 has no leader");
        acc.end_flush();
        acc.update_metadata(&metadata("t", &[0, 1, 1, 1]));
        acc.close();
        assert!(!acc.finished());
        assert_eq!(summary(&acc.drain(t0, &mut inf)), [(1, vec![(1, 1)])], "closing sends everything");
    }

    #[test]
    fn partitions_out_of_range_and_closed_producers_are_refused() {
        let mut acc = accumulator(|_| {});
        let e = acc.append("t", Some(4), &rec(None, 1), 0, 10, Instant::now).unwrap_err();
        assert_eq!(e.code(), Some(3));
        assert!(e.to_string().contains("topic 't' has partitions 0..4"), "{e}");
        assert!(matches!(acc.append("u", None, &rec(None, 1), 0, 10, Instant::now), Ok(Appended::NoMetadata)));
        acc.close();
        assert!(acc.finished());
        assert!(acc.append("t", None, &rec(None, 1), 0, 10, Instant::now).is_err());
    }
}
