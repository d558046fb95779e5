//! The Rill producer: batching, compression, retries and Kafka-compatible partitioning.
//!
//! ```no_run
//! # async fn demo() -> rill_core::Result<()> {
//! use bytes::Bytes;
//! use rill_core::producer::{Producer, ProducerConfig};
//! use rill_core::records::ProducerRecord;
//!
//! let config = ProducerConfig::from_properties([("bootstrap.servers", "127.0.0.1:9092"), ("linger.ms", "10")])?;
//! let producer = Producer::new(config).await?;
//! let record = ProducerRecord { key: Some(Bytes::from("k")), value: Some(Bytes::from("v")), ..Default::default() };
//! // The first await queues the record (waiting for metadata or buffer memory if need be) and
//! // gives its delivery future; the second waits for the broker's acknowledgement.
//! let delivery = producer.send("orders", None, record).await?;
//! let stored = delivery.await?;
//! println!("{}-{} at offset {}", stored.topic, stored.partition, stored.offset);
//! producer.close().await;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! `send` picks the partition ([`partitioner`]: murmur2 of the key as Kafka does, sticky for
//! records without a key), encodes the record straight into that partition's open batch and
//! returns a [`DeliveryFuture`]. A sender task sends a batch once it is full (`batch.size`), has
//! waited `linger.ms`, or a `flush`/`close` asks; batches for partitions led by the same broker
//! go in one Produce request per topic, with up to `max.in.flight.requests.per.connection`
//! requests per broker in flight. Retriable errors (lost connections, a moved leader, ...) are
//! retried with exponential backoff from `retry.backoff.ms` to `retry.backoff.max.ms`,
//! refreshing metadata when the broker says the partition moved, until `retries` or
//! `delivery.timeout.ms` runs out; other errors fail the batch's records with the broker's code
//! and message ([`Error::Broker`]). Expiry is reported as [`Error::Timeout`] with the last error.
//!
//! # Ordering and delivery guarantees
//!
//! The producer is **idempotent** by default (`enable.idempotence`, as Kafka's Java client 3.x):
//! before its first batch it gets a producer id and epoch (InitProducerId), and each batch gets a
//! sequence number per partition when it is first drained (`sequence.rs`), kept across retries,
//! so the broker stores a retried batch once and answers with its original offset. Up to 5
//! requests per broker are in flight and order holds: when a batch must be retried, later
//! batches of its partition that come back OUT_OF_ORDER_SEQUENCE_NUMBER are re-sent after it, in
//! sequence order, one at a time. A real gap (OUT_OF_ORDER for the first unacknowledged batch,
//! UNKNOWN_PRODUCER_ID, or a sent batch that failed for good) bumps the epoch (KIP-360) and
//! renumbers the partition's waiting batches from 0. Idempotence needs `acks=all`, `retries` > 0
//! and `max.in.flight.requests.per.connection` <= 5: set explicitly with a conflicting setting it
//! is a configuration error; left unset, a conflicting setting turns it off quietly (Java's
//! rule), and so does a broker that does not serve InitProducerId.
//!
//! Without idempotence delivery is *at least once*: a request that timed out may have been
//! stored, and its retry stores the records again, possibly after later records (as with Kafka's
//! Java producer); `max.in.flight.requests.per.connection=1` keeps order then. Each record's
//! future resolves exactly once; records of one batch share one outcome.
//!
//! # Transactions
//!
//! With a `transactional.id`: [`Producer::init_transactions`] once (fences older producers with
//! the same id), then per transaction [`Producer::begin_transaction`], `send`s,
//! [`Producer::send_offsets_to_transaction`] for consume-transform-produce, and
//! [`Producer::commit_transaction`] or [`Producer::abort_transaction`]. A partition joins the
//! transaction (AddPartitionsToTxn) before its first batch is sent; batches are marked
//! transactional. With EndTxn v5 (KIP-890 part 2) the epoch bumped at every commit or abort is
//! taken from the answer. Errors are typed: [`Error::ProducerFenced`] and
//! [`Error::ProducerFatal`] leave only `close`; [`Error::TransactionAbortable`] means abort, then
//! go on; [`Error::IllegalState`] is a call in the wrong state (`txn.rs` has the state machine).
//!
//! # Copies and allocations
//!
//! On the path of one record:
//! 1. `send` encodes the key, value and headers into the partition's open batch buffer: **the one
//!    copy** of record bytes the producer makes. The [`ProducerRecord`] is then dropped. Batch
//!    buffers are allocated once per batch (`batch.size`, or the record's size if larger).
//! 2. With compression, the codec (the protocol crate's) takes that buffer by move and writes a
//!    new, compressed buffer: the compression pass itself (lz4 and zstd stream through an 8 KiB
//!    buffer on the way). No copy without compression: the header is filled in place.
//! 3. The sealed batch is `Bytes`; the Produce request references it in a vectored write
//!    ([`crate::wire::encode_request_chunks`]), so it is not copied into the request frame
//!    (batches under 4 KiB are, being cheaper to copy than to reference). Retries resend the
//!    same `Bytes`.
//!
//! Per record there is no allocation in the producer: the [`DeliveryFuture`] holds a reference to
//! its batch's shared outcome (one allocation per batch), and [`RecordMetadata::topic`] is an
//! `Arc<str>` shared by the batch. Waiting on a future registers its waker in the batch's list.
//! `buffer.memory` is taken per record as an atomic counter (no allocation unless `send` has
//! to wait). The exceptions are rare: errors are copied into every record's result.
//!
//! # Not yet
//!
//! Splitting a batch the broker finds too large
//! (`MESSAGE_TOO_LARGE` fails its records); `LogAppendTime` timestamps in [`RecordMetadata`];
//! interceptors and metrics.

mod accumulator;
mod batch;
pub mod config;
mod delivery;
pub mod partitioner;
mod sender;
mod sequence;
mod transactions;
mod txn;
mod txn_requests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use config::{Acks, ProducerConfig};
pub use delivery::{DeliveryFuture, RecordMetadata};

use accumulator::Appended;
use batch::{max_record_size, BATCH_HEADER_LEN};
use sender::Shared;

use crate::error::{Error, Result};
use crate::records::ProducerRecord;

/// A Kafka producer. Cheap to clone: clones share one accumulator and sender, and may be used
/// from many tasks at once.
///
/// Dropping the last clone without [`Producer::close`] stops new sends; the sender still
/// delivers what was queued (within `delivery.timeout.ms`) if the runtime keeps running.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    _sender: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.acc().close();
        self.shared.wake.notify_one();
    }
}

impl Producer {
    /// Validate `config`, connect to a bootstrap server and start the sender task.
    pub async fn new(config: ProducerConfig) -> Result<Self> {
        config.validate()?;
        let shared = Arc::new(Shared::connect(config).await?);
        let sender = tokio::spawn(sender::run(shared.clone()));
        Ok(Self { inner: Arc::new(Handle { shared, _sender: Mutex::new(Some(sender)) }) })
    }

    /// The settings in force.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.shared.config
    }

    /// Queue `record` for `topic`, in `partition` or where the partitioner puts it.
    ///
    /// Returns once the record is in a batch, with the [`DeliveryFuture`] that resolves to its
    /// [`RecordMetadata`] when the broker acknowledges it (or to the error that failed it).
    /// Waits, up to `max.block.ms`, for the topic's metadata (auto-creating the topic where the
    /// broker allows) and for `buffer.memory`. Fails at once for a record larger than
    /// `max.request.size` or `buffer.memory` (`MESSAGE_TOO_LARGE`), a partition the topic does
    /// not have (`UNKNOWN_TOPIC_OR_PARTITION`), or a closed producer.
    pub async fn send(&self, topic: &str, partition: Option<i32>, record: ProducerRecord) -> Result<DeliveryFuture> {
        let s = &self.inner.shared;
        let cfg = &s.config;
        let size = max_record_size(&record);
        if size + BATCH_HEADER_LEN > cfg.max_request_size || size > cfg.buffer_memory {
            return Err(Error::from_code(
                10,
                format!("a record for {topic}"),
                Some(format!(
                    "the record takes up to {size} bytes encoded, over max.request.size ({}) or buffer.memory ({}); \
                     checked by the producer",
                    cfg.max_request_size, cfg.buffer_memory
                )),
            )
            .expect("nonzero"));
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        // max.block.ms counts from the first wait (the clock is not read on the fast path).
        let mut started = None;
        let mut deadline = || *started.get_or_insert_with(|| Instant::now() + cfg.max_block);
        // Fast path: room in buffer.memory, and the topic known (append says if not).
        if let Ok(permit) = s.memory.try_acquire_many(size as u32) {
            permit.forget();
        } else {
            let deadline = deadline();
            if !s.acc().knows(topic) {
                s.wait_for_topic(topic, deadline).await?;
            }
            let wait = s.memory.acquire_many(size as u32);
            match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), wait).await {
                Ok(Ok(permit)) => permit.forget(),
                Ok(Err(_)) => return Err(Error::Config("send after close: the producer is closed".into())),
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no room for a record of {size} bytes in buffer.memory ({} bytes) after max.block.ms \
                         ({} ms): the brokers do not keep up",
                        cfg.buffer_memory,
                        cfg.max_block.as_millis()
                    )))
                }
            }
        }
        loop {
            let appended = s.acc().append(topic, partition, &record, timestamp, size, Instant::now);
            match appended {
                Ok(Appended::Queued { future, wake }) => {
                    if wake {
                        s.wake.notify_one();
                    }
                    return Ok(future);
                }
                Ok(Appended::NoMetadata) => {
                    if let Err(e) = s.wait_for_topic(topic, deadline()).await {
                        s.memory.add_permits(size);
                        return Err(e);
                    }
                }
                Err(e) => {
                    s.memory.add_permits(size);
                    return Err(e);
                }
            }
        }
    }

    /// Send every queued record now (ignoring `linger.ms`) and wait until each record queued
    /// before the call has its outcome. Outcomes are reported by the records' futures.
    pub async fn flush(&self) {
        let s = &self.inner.shared;
        let pending = s.acc().begin_flush();
        struct EndFlush<'a>(&'a Shared);
        impl Drop for EndFlush<'_> {
            fn drop(&mut self) {
                self.0.acc().end_flush();
            }
        }
        let _end = EndFlush(s);
        s.wake.notify_one();
        for batch in &pending {
            batch.wait().await;
        }
    }

    /// Refuse new sends, deliver everything queued, and stop the sender. Returns once every
    /// record has its outcome (at most `delivery.timeout.ms` after the last send).
    pub async fn close(&self) {
        let s = &self.inner.shared;
        s.acc().close();
        s.wake.notify_one();
        let mut stopped = s.stopped.subscribe();
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
