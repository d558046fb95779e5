//! Per-partition producer state: what idempotence and transactions need to know about each
//! producer that wrote to a partition. Plain data, no I/O; the log feeds it batch headers.
//!
//! For every producer id: its epoch, the sequence ranges and offsets of its last five batches
//! (a retried batch is found there and answered with its original offsets), the coordinator
//! epoch of its last marker, and the first offset of its open transaction if it has one. The
//! open transactions give the last stable offset (LSO): the first offset of the earliest one, or
//! the log end offset when none is open.
//!
//! Checks follow Kafka's (`ProducerAppendInfo`):
//! - an epoch older than the producer's is refused (INVALID_PRODUCER_EPOCH);
//! - a new epoch must start at sequence 0, unless the producer was unknown here;
//! - within an epoch, a batch must start right after the last one (sequences wrap at `i32::MAX`);
//!   an unknown producer (never seen, or expired) may start anywhere;
//! - a data batch of a producer with an open transaction must be transactional and vice versa;
//! - coordinator writes (transactional offset commits, markers) and replication skip the
//!   sequence checks.
//!
//! Updates for one append are staged in a [`Staged`] set and applied only once the batches are
//! in the file, so a refused or failed append changes nothing.

use std::collections::{BTreeMap, HashMap};

use super::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection (Kafka: 5, the most a producer may
/// have in flight).
pub const BATCHES_KEPT: usize = 5;

/// Who is appending: sequence numbers are checked only for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer's Produce request.
    Client,
    /// A coordinator on this broker (transactional offset commits, markers).
    Coordinator,
    /// A follower copying batches its leader accepted: no sequence checks, and the log skips
    /// (with a warning) rather than refuses a batch producer state would reject, as a replay of
    /// the log does. It records each producer's sequences and epoch, so that dedup works if
    /// this replica becomes leader.
    Replication,
}

/// Why producer state refused a batch. Each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// The batch's epoch is older than the producer's (INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    InvalidEpoch {
        /// Producer id.
        producer_id: i64,
        /// Epoch in the batch.
        epoch: i16,
        /// Epoch the partition knows.
        current: i16,
    },
    /// A sequence gap or reordering (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("producer {producer_id} sent sequence {first_seq} but the next expected is {expected}")]
    OutOfOrder {
        /// Producer id.
        producer_id: i64,
        /// First sequence in the batch.
        first_seq: i32,
        /// The sequence that would have been in order.
        expected: i32,
    },
    /// A transactional batch where none may be, or the reverse (INVALID_TXN_STATE).
    #[error("producer {producer_id}: {what}")]
    InvalidTxnState {
        /// Producer id.
        producer_id: i64,
        /// What was wrong.
        what: &'static str,
    },
    /// The transaction coordinator does not know this partition to be in the producer's
    /// ongoing transaction (KIP-890 verification); `code` is the coordinator's answer.
    #[error("producer {producer_id} wrote a transactional batch outside an ongoing transaction with this partition (error {code})")]
    Unverified {
        /// Producer id.
        producer_id: i64,
        /// Kafka error code from the coordinator (INVALID_TXN_STATE, PRODUCER_FENCED, ...).
        code: i16,
    },
    /// A marker from an older coordinator (TRANSACTION_COORDINATOR_FENCED).
    #[error("marker for producer {producer_id} from coordinator epoch {got}, older than {current}")]
    CoordinatorFenced {
        /// Producer id.
        producer_id: i64,
        /// Coordinator epoch in the marker.
        got: i32,
        /// Coordinator epoch last seen.
        current: i32,
    },
}

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchMeta {
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// `last_offset - base_offset`.
    pub offset_delta: i32,
    /// Broker time of the append.
    pub append_ms: i64,
}

impl BatchMeta {
    /// Offset of the batch's first record.
    pub fn base_offset(&self) -> i64 {
        self.last_offset - self.offset_delta as i64
    }
}

/// What a partition knows about one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Coordinator epoch of the last marker, -1 before any.
    pub coordinator_epoch: i32,
    /// First offset of the open transaction, if one is open.
    pub txn_first_offset: Option<i64>,
    /// Broker time of the last write.
    pub last_append_ms: i64,
    /// The last batches, oldest first; `len` of them are valid.
    batches: [BatchMeta; BATCHES_KEPT],
    len: u8,
}

impl ProducerEntry {
    /// An entry with no batches.
    pub fn new(epoch: i16) -> Self {
        Self {
            epoch,
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_append_ms: -1,
            batches: [BatchMeta::default(); BATCHES_KEPT],
            len: 0,
        }
    }

    /// The remembered batches, oldest first.
    pub fn batches(&self) -> &[BatchMeta] {
        &self.batches[..self.len as usize]
    }

    /// Remember a batch, forgetting the oldest if five are kept.
    pub fn push(&mut self, b: BatchMeta) {
        if self.len as usize == BATCHES_KEPT {
            self.batches.copy_within(1.., 0);
            self.batches[BATCHES_KEPT - 1] = b;
        } else {
            self.batches[self.len as usize] = b;
            self.len += 1;
        }
    }

    fn clear_batches(&mut self) {
        self.len = 0;
    }

    fn last_seq(&self) -> Option<i32> {
        self.batches().last().map(|b| b.last_seq)
    }
}

/// A transaction that ended with an abort: read_committed fetches skip its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// Producer id.
    pub producer_id: i64,
    /// First offset of the transaction in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset once the abort was written.
    pub last_stable_offset: i64,
}

/// A transaction a marker closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// Producer id.
    pub producer_id: i64,
    /// First offset of the transaction.
    pub first_offset: i64,
    /// Offset of the marker.
    pub marker_offset: i64,
    /// Committed (else aborted).
    pub commit: bool,
}

/// A transaction marker about to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerAt {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch in the marker.
    pub epoch: i16,
    /// Epoch of the coordinator writing it.
    pub coordinator_epoch: i32,
    /// Commit (else abort).
    pub commit: bool,
    /// Offset the marker gets.
    pub offset: i64,
}

/// The outcome of checking one data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate(BatchMeta),
}

/// Every producer of one partition, and its open transactions.
#[derive(Debug, Default, Clone)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
}

/// Updates for one append, applied with [`ProducerState::apply`] once the batches are written.
///
/// A request nearly always carries one producer's batch per partition: that entry is kept inline,
/// so the append path allocates nothing for it.
#[derive(Debug, Default)]
pub struct Staged {
    first: Option<(i64, ProducerEntry)>,
    more: Vec<(i64, ProducerEntry)>,
    completed: Option<CompletedTxn>,
}

impl Staged {
    /// Nothing staged.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn get(&self, pid: i64) -> Option<&ProducerEntry> {
        self.first.iter().chain(&self.more).find(|(p, _)| *p == pid).map(|(_, e)| e)
    }

    fn put(&mut self, pid: i64, e: ProducerEntry) {
        if self.first.is_none() {
            self.first = Some((pid, e));
        } else if let Some(slot) = self.first.iter_mut().chain(self.more.iter_mut()).find(|(p, _)| *p == pid) {
            slot.1 = e;
        } else {
            self.more.push((pid, e));
        }
    }

    /// Whether a staged update opens a transaction for `producer_id`.
    pub fn opens_txn(&self, producer_id: i64) -> bool {
        self.get(producer_id).is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// The transaction a staged marker closes.
    pub fn completed(&self) -> Option<CompletedTxn> {
        self.completed
    }
}

/// `base + delta`, wrapping past `i32::MAX` to 0 as producers do.
pub fn increment_sequence(base: i32, delta: i32) -> i32 {
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

/// `true` if `next` follows `last` (sequences wrap from `i32::MAX` to 0).
fn in_sequence(last: i32, next: i32) -> bool {
    (last < i32::MAX && next == last + 1) || (last == i32::MAX && next == 0)
}

impl ProducerState {
    /// No producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `producer_id`.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer, in no order.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(p, e)| (*p, e))
    }

    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// No producer known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Put an entry back (snapshot load).
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(first) = entry.txn_first_offset {
            self.ongoing.insert(first, producer_id);
        }
        self.producers.insert(producer_id, entry);
    }

    /// The first offset of the earliest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers.get(&producer_id).is_some_and(|e| e.txn_first_offset.is_some())
    }

    fn current(&self, staged: &Staged, pid: i64) -> Option<ProducerEntry> {
        staged.get(pid).copied().or_else(|| self.producers.get(&pid).copied())
    }

    /// Check a data batch (not a control batch) whose offsets are already assigned, staging the
    /// update. Batches without a producer id are not tracked.
    pub fn check_data(
        &self,
        staged: &mut Staged,
        h: &BatchHeader,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<Check, ProducerError> {
        let pid = h.producer_id;
        if pid < 0 {
            return Ok(Check::Append);
        }
        let transactional = h.is_transactional();
        let current = self.current(staged, pid);
        let mut entry = match current {
            Some(e) => {
                if h.producer_epoch < e.epoch {
                    return Err(ProducerError::InvalidEpoch {
                        producer_id: pid,
                        epoch: h.producer_epoch,
                        current: e.epoch,
                    });
                }
                e
            }
            None => ProducerEntry::new(h.producer_epoch),
        };
        let first_seq = h.base_sequence;
        let last_seq = if first_seq < 0 { first_seq } else { increment_sequence(first_seq, h.last_offset_delta) };
        if origin == AppendOrigin::Client {
            if h.producer_epoch == entry.epoch {
                if let Some(d) = entry.batches().iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
                    return Ok(Check::Duplicate(*d));
                }
            }
            match current {
                // Unknown here (new, or expired): any sequence starts it.
                None => {}
                Some(e) if h.producer_epoch != e.epoch && first_seq != 0 => {
                    return Err(ProducerError::OutOfOrder { producer_id: pid, first_seq, expected: 0 });
                }
                Some(e) if h.producer_epoch != e.epoch => {}
                Some(e) => {
                    let last = e.last_seq().unwrap_or(-1);
                    if !in_sequence(last, first_seq) {
                        let expected = if last == i32::MAX { 0 } else { last + 1 };
                        return Err(ProducerError::OutOfOrder { producer_id: pid, first_seq, expected });
                    }
                }
            }
        }
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.clear_batches();
        }
        match (transactional, entry.txn_first_offset) {
            (true, None) => entry.txn_first_offset = Some(h.base_offset),
            (false, Some(_)) => {
                return Err(ProducerError::InvalidTxnState {
                    producer_id: pid,
                    what: "non-transactional write while its transaction is open",
                })
            }
            _ => {}
        }
        entry.push(BatchMeta {
            first_seq,
            last_seq,
            last_offset: h.last_offset(),
            offset_delta: h.last_offset_delta,
            append_ms: now_ms,
        });
        entry.last_append_ms = now_ms;
        staged.put(pid, entry);
        Ok(Check::Append)
    }

    /// Check a transaction marker at `offset`, staging the update (the producer's open
    /// transaction closes; an epoch newer than the producer's becomes its epoch, KIP-890).
    pub fn check_marker(&self, staged: &mut Staged, m: MarkerAt, now_ms: i64) -> Result<(), ProducerError> {
        let MarkerAt { producer_id, epoch, coordinator_epoch, commit, offset } = m;
        let mut entry = self.current(staged, producer_id).unwrap_or_else(|| ProducerEntry::new(epoch));
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch { producer_id, epoch, current: entry.epoch });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced {
                producer_id,
                got: coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.clear_batches();
        }
        if let Some(first) = entry.txn_first_offset.take() {
            staged.completed = Some(CompletedTxn { producer_id, first_offset: first, marker_offset: offset, commit });
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_append_ms = now_ms;
        staged.put(producer_id, entry);
        Ok(())
    }

    /// Apply what an append staged, once its batches are written.
    pub fn apply(&mut self, staged: Staged) {
        for (pid, entry) in staged.first.into_iter().chain(staged.more) {
            if let Some(old) = self.producers.get(&pid).and_then(|e| e.txn_first_offset) {
                if entry.txn_first_offset != Some(old) {
                    self.ongoing.remove(&old);
                }
            }
            if let Some(first) = entry.txn_first_offset {
                self.ongoing.insert(first, pid);
            }
            self.producers.insert(pid, entry);
        }
    }

    /// Forget producers idle since before `cutoff_ms` with no open transaction
    /// (`producer.id.expiration.ms`). Returns how many went.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.txn_first_offset.is_some() || e.last_append_ms >= cutoff_ms);
        before - self.producers.len()
    }
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
