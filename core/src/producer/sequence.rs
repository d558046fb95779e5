//! Idempotence bookkeeping, without I/O: the producer id and epoch, and per partition the
//! sequence numbers of batches not yet acknowledged.
//!
//! A batch gets its sequence when it is first drained ([`PartitionSequences::stamp`]) and keeps
//! it across retries, so the broker can tell a retry (deduplicated) from a new batch. Per
//! partition (Kafka's `TxnPartitionEntry`):
//!
//! - `unacked` lists the stamped batches without an outcome, in sequence order, whether in flight
//!   or waiting for a retry.
//! - A retried batch is sent again only when it is the first unacked one
//!   ([`PartitionSequences::resend`]): a batch ahead in sequence waits until the earlier one is
//!   re-sent and acknowledged, as the Java producer does. While a retry is pending the partition
//!   therefore has at most one batch in flight.
//! - New batches are stamped only under the current ids. After the ids change (epoch bump,
//!   new producer id, a committed transaction with KIP-890's bump) a partition restarts at
//!   sequence 0 once nothing stamped under the old ids is left.
//! - A real sequence gap (`OUT_OF_ORDER_SEQUENCE_NUMBER` for the first unacked batch, or
//!   `UNKNOWN_PRODUCER_ID`) or a stamped batch that failed for good asks for an epoch bump
//!   ([`PartitionSequences::reset_wanted`]): once the partition has nothing in flight, the
//!   producer gets a new epoch (KIP-360) and [`PartitionSequences::reset`] renumbers the
//!   unacked batches from 0 under it.

use std::collections::VecDeque;

use super::batch::ProducerIds;

/// A producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdAndEpoch {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
}

/// The one place batches get their producer ids: the producer-wide part (ids, transactional or
/// not). `ids` is `None` until InitProducerId answered (and for a non-idempotent producer).
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    pub(crate) idempotent: bool,
    pub(crate) transactional: bool,
    pub(crate) ids: Option<IdAndEpoch>,
}

impl Sequencer {
    /// A sequencer for a producer with these settings.
    pub(crate) fn new(idempotent: bool, transactional: bool) -> Self {
        Self { idempotent, transactional, ids: None }
    }

    /// The ids stamped on a batch with `base_sequence` under `ids`.
    pub(crate) fn stamp(&self, ids: IdAndEpoch, base_sequence: i32) -> ProducerIds {
        ProducerIds { producer_id: ids.producer_id, epoch: ids.epoch, base_sequence, transactional: self.transactional }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unacked {
    batch: u64,
    sequence: i32,
    records: i32,
}

/// What to do with a batch the broker refused with a sequence error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceVerdict {
    /// An earlier batch is being retried: send this one again after it.
    RetryAfterEarlier,
    /// A real gap or lost producer state: retry after an epoch bump (asked for).
    RetryAfterBump,
}

/// One partition's sequences.
#[derive(Debug, Default)]
pub(crate) struct PartitionSequences {
    /// The ids the sequences below belong to (`None` before the first batch).
    ids: Option<IdAndEpoch>,
    next: i32,
    unacked: VecDeque<Unacked>,
    reset_wanted: bool,
}

/// `sequence + n`, wrapping past `i32::MAX` to 0 as Kafka's `incrementSequence` does.
pub(crate) fn add_sequence(sequence: i32, n: i32) -> i32 {
    if sequence > i32::MAX - n {
        n - (i32::MAX - sequence) - 1
    } else {
        sequence + n
    }
}

impl PartitionSequences {
    /// True when a new batch may be stamped under `ids` now: no epoch bump pending and nothing
    /// stamped under other ids still unacknowledged. Moves the partition to `ids` (sequence 0)
    /// when they changed.
    pub(crate) fn may_stamp(&mut self, ids: IdAndEpoch) -> bool {
        if self.reset_wanted {
            return false;
        }
        if self.ids != Some(ids) {
            if !self.unacked.is_empty() {
                return false;
            }
            self.ids = Some(ids);
            self.next = 0;
        }
        true
    }

    /// Give batch `batch` of `records` records the next sequence (after [`Self::may_stamp`]).
    pub(crate) fn stamp(&mut self, batch: u64, records: i32) -> i32 {
        let sequence = self.next;
        self.next = add_sequence(sequence, records.max(1));
        self.unacked.push_back(Unacked { batch, sequence, records: records.max(1) });
        sequence
    }

    /// The ids and sequence a retried batch goes out with, or `None` while it must wait: it is
    /// not the first unacknowledged batch, or an epoch bump is pending.
    pub(crate) fn resend(&self, batch: u64) -> Option<(IdAndEpoch, i32)> {
        if self.reset_wanted {
            return None;
        }
        let first = self.unacked.front()?;
        (first.batch == batch).then(|| (self.ids.expect("stamped batches have ids"), first.sequence))
    }

    /// The batch has its outcome (acknowledged, or failed for good).
    pub(crate) fn done(&mut self, batch: u64, acknowledged: bool) {
        if let Some(i) = self.unacked.iter().position(|u| u.batch == batch) {
            self.unacked.remove(i);
            if !acknowledged {
                // Whether the broker stored it is unknown: later sequences may meet a gap.
                // A new epoch makes the question moot (Kafka's "unresolved sequence" case).
                self.reset_wanted = true;
            }
        }
    }

    /// The broker answered `OUT_OF_ORDER_SEQUENCE_NUMBER` for `batch`.
    pub(crate) fn out_of_order(&mut self, batch: u64) -> SequenceVerdict {
        if self.unacked.front().is_some_and(|u| u.batch != batch) {
            SequenceVerdict::RetryAfterEarlier
        } else {
            self.reset_wanted = true;
            SequenceVerdict::RetryAfterBump
        }
    }

    /// The broker answered `UNKNOWN_PRODUCER_ID`: it lost this producer's state.
    pub(crate) fn unknown_producer(&mut self, batch: u64) -> SequenceVerdict {
        if self.ids.is_some() && self.unacked.iter().any(|u| u.batch == batch) {
            self.reset_wanted = true;
        }
        SequenceVerdict::RetryAfterBump
    }

    /// An epoch bump is wanted before this partition sends again.
    pub(crate) fn reset_wanted(&self) -> bool {
        self.reset_wanted
    }

    /// New ids: if a bump was wanted, renumber the unacked batches from 0 under them.
    /// Partitions that did not ask move to the new ids lazily ([`Self::may_stamp`]).
    pub(crate) fn reset(&mut self, ids: IdAndEpoch) {
        if !self.reset_wanted && !self.unacked.is_empty() {
            return;
        }
        self.reset_wanted = false;
        self.ids = Some(ids);
        let mut next = 0;
        for u in &mut self.unacked {
            u.sequence = next;
            next = add_sequence(next, u.records);
        }
        self.next = next;
    }

    /// Stamped batches without an outcome.
    #[cfg(test)]
    pub(crate) fn unacked(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IdAndEpoch = IdAndEpoch { producer_id: 7, epoch: 0 };
    const B: IdAndEpoch = IdAndEpoch { producer_id: 7, epoch: 1 };

    fn stamped(s: &mut PartitionSequences, ids: IdAndEpoch, batches: &[(u64, i32)]) -> Vec<i32> {
        batches
            .iter()
            .map(|&(b, n)| {
                assert!(s.may_stamp(ids));
                s.stamp(b, n)
            })
            .collect()
    }

    #[test]
    fn sequences_advance_by_record_count_and_wrap_like_kafka() {
        let mut s = PartitionSequences::default();
        assert_eq!(stamped(&mut s, A, &[(1, 3), (2, 1), (3, 10)]), [0, 3, 4]);
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(add_sequence(5, 2), 7);
    }

    #[test]
    fn a_retry_goes_only_when_it_is_the_first_unacked_batch() {
        let mut s = PartitionSequences::default();
        stamped(&mut s, A, &[(1, 2), (2, 2), (3, 2)]);
        // Batch 1 failed retriably, 2 and 3 came back OUT_OF_ORDER: they wait for 1.
        assert_eq!(s.out_of_order(2), SequenceVerdict::RetryAfterEarlier);
        assert_eq!(s.out_of_order(3), SequenceVerdict::RetryAfterEarlier);
        assert_eq!(s.resend(2), None);
        assert_eq!(s.resend(1), Some((A, 0)));
        s.done(1, true);
        assert_eq!(s.resend(2), Some((A, 2)), "now 2 is first, with its own sequence");
        assert_eq!(s.resend(3), None);
        s.done(2, true);
        s.done(3, true);
        assert_eq!(s.unacked(), 0);
        assert!(!s.reset_wanted());
    }

    #[test]
    fn a_gap_at_the_first_unacked_batch_bumps_the_epoch_and_renumbers_from_zero() {
        let mut s = PartitionSequences::default();
        stamped(&mut s, A, &[(1, 2), (2, 3), (3, 1)]);
        s.done(1, true);
        assert_eq!(s.out_of_order(2), SequenceVerdict::RetryAfterBump);
        assert!(s.reset_wanted());
        assert!(!s.may_stamp(A), "nothing new while the bump is pending");
        assert_eq!(s.resend(2), None, "no retry either");
        s.reset(B);
        assert_eq!(s.resend(2), Some((B, 0)));
        s.done(2, true);
        assert_eq!(s.resend(3), Some((B, 3)));
        s.done(3, true);
        assert_eq!(stamped(&mut s, B, &[(4, 1)]), [4]);
    }

    #[test]
    fn unknown_producer_and_failed_batches_ask_for_a_bump() {
        let mut s = PartitionSequences::default();
        stamped(&mut s, A, &[(1, 1), (2, 1)]);
        assert_eq!(s.unknown_producer(1), SequenceVerdict::RetryAfterBump);
        assert!(s.reset_wanted());
        s.reset(B);
        assert_eq!((s.resend(1), s.resend(2)), (Some((B, 0)), None));
        s.done(1, false); // failed for good after being sent: its fate is unknown
        assert!(s.reset_wanted());
        s.reset(IdAndEpoch { producer_id: 7, epoch: 2 });
        assert_eq!(s.resend(2), Some((IdAndEpoch { producer_id: 7, epoch: 2 }, 0)));
    }

    #[test]
    fn new_ids_move_a_partition_to_sequence_zero_once_old_batches_are_done() {
        let mut s = PartitionSequences::default();
        stamped(&mut s, A, &[(1, 5)]);
        // Another partition's bump (or a committed transaction) changed the ids.
        s.reset(B);
        assert!(!s.may_stamp(B), "batch 1 under the old epoch is still out");
        assert_eq!(s.resend(1), Some((A, 0)), "a retry keeps its old ids");
        s.done(1, true);
        assert_eq!(stamped(&mut s, B, &[(2, 1)]), [0]);
    }
}
