//! What the cleaner must know of transactions and producers, and the rules that follow from it
//! (Kafka's `CleanedTransactionMetadata` and the producer-retention rule of its `LogCleaner`).
//!
//! The map phase feeds every batch of the sealed segments to a [`TxnScan`], oldest first; the
//! resulting [`TxnPlan`] answers the rewrite phase:
//!
//! - **Aborted data** (batches of a transaction listed in the aborted-transaction index) loses
//!   all its records.
//! - **Producers.** Each producer's last data batch in the sealed segments is kept, emptied if
//!   nothing in it survives (its header carries the producer's last sequence numbers), and so is
//!   its last batch of any kind when that is a marker (it carries the newest producer and
//!   coordinator epochs). Other empty batches of producers (emptied by earlier passes) go.
//! - **Markers.** A marker (COMMIT or ABORT control batch) whose transaction still has a data
//!   batch in the log, empty or not, is kept: the producer-state replay of a log opens a
//!   transaction at such a batch, and only its marker closes it. A pass that finds no data batch
//!   of a marker's transaction (earlier passes removed it all) stamps the marker with a delete
//!   horizon of now + `delete.retention.ms` (KIP-534: a flag in the attributes, the horizon in the
//!   base timestamp, so it survives restarts with the file), and a pass after the horizon removes
//!   it. In between, read_committed consumers that were behind still see it.
//! - **The aborted-transaction index.** An abort whose transaction has no data left needs no
//!   index entry (there is nothing to skip), and an entry whose marker is gone would make a
//!   consumer skip the producer's later, committed, batches. So the entry is dropped when the
//!   marker is stamped (or whenever its segment is rewritten after that), before the cleaned
//!   segment is swapped in: at every moment an entry's marker is in the log.
//!
//! | marker's transaction        | delete horizon   | producer's last batch | fate              |
//! |-----------------------------|------------------|-----------------------|-------------------|
//! | a data batch is in the log  | any              | any                   | keep              |
//! | no data left                | any              | yes                   | keep              |
//! | no data left                | not set          | no                    | stamp now + drm   |
//! | no data left                | later than now   | no                    | keep (wait)       |
//! | no data left                | now or earlier   | no                    | remove            |

use std::collections::{BTreeSet, HashMap, HashSet};

use super::super::batch::BatchHeader;
use super::super::control;
use super::super::producer_state::AbortedTxn;

/// What the map phase learns about transactions and producers.
#[derive(Debug, Default)]
pub(super) struct TxnScan {
    /// Aborted transactions overlapping the sealed segments (from the index).
    aborted_txns: Vec<AbortedTxn>,
    /// Per producer: whether a data batch of its current transaction was seen.
    ongoing: HashMap<i64, bool>,
    plan: TxnPlan,
}

/// The transactional fate of batches, for the rewrite phase.
#[derive(Debug, Default)]
pub(super) struct TxnPlan {
    /// Base offsets of the data batches of aborted transactions.
    aborted: HashSet<i64>,
    /// Offsets of markers whose transaction has no data batch left.
    dataless: HashSet<i64>,
    /// Offsets of ABORT markers whose transaction has no data batch left (their index entries
    /// may go).
    dataless_aborts: BTreeSet<i64>,
    /// Producer id -> base offset of its last batch.
    last_batch: HashMap<i64, i64>,
    /// Producer id -> base offset of its last data batch.
    last_data: HashMap<i64, i64>,
}

/// What to do with a control batch.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum MarkerFate {
    /// Leave it as it is.
    Keep,
    /// Leave it as it is until its delete horizon, this time.
    Wait(i64),
    /// Replace it by this copy, stamped with a delete horizon (the `i64`).
    Stamp(Vec<u8>, i64),
    /// Remove it.
    Remove,
}

impl TxnScan {
    /// A scan knowing the aborted transactions that overlap the sealed segments.
    pub(super) fn new(aborted_txns: Vec<AbortedTxn>) -> Self {
        Self { aborted_txns, ..Self::default() }
    }

    /// Feed the next batch (`raw` is the whole batch). Returns true when it is data of an
    /// aborted transaction, whose records must not count as the latest version of their keys.
    pub(super) fn observe(&mut self, h: &BatchHeader, raw: &[u8]) -> bool {
        let pid = h.producer_id;
        if pid < 0 {
            return false;
        }
        self.plan.last_batch.insert(pid, h.base_offset);
        if !h.is_control() {
            self.plan.last_data.insert(pid, h.base_offset);
            if !h.is_transactional() {
                return false;
            }
            self.ongoing.insert(pid, true);
            let aborted = self
                .aborted_txns
                .iter()
                .any(|a| a.producer_id == pid && a.first_offset <= h.base_offset && h.base_offset < a.last_offset);
            if aborted {
                self.plan.aborted.insert(h.base_offset);
            }
            return aborted;
        }
        let Some(marker) = control::decode(h, raw) else { return false };
        if !self.ongoing.remove(&pid).unwrap_or(false) {
            self.plan.dataless.insert(h.base_offset);
            if !marker.commit {
                self.plan.dataless_aborts.insert(h.base_offset);
            }
        }
        false
    }

    /// The plan, once every batch was observed.
    pub(super) fn finish(self) -> TxnPlan {
        self.plan
    }
}

impl TxnPlan {
    /// Whether the data batch at `base_offset` belongs to an aborted transaction.
    pub(super) fn is_aborted(&self, base_offset: i64) -> bool {
        self.aborted.contains(&base_offset)
    }

    /// Whether the data batch `h` must stay, emptied if none of its records survive: the last
    /// data batch of its producer.
    pub(super) fn keep_empty(&self, h: &BatchHeader) -> bool {
        h.producer_id >= 0 && self.last_data.get(&h.producer_id) == Some(&h.base_offset)
    }

    /// The fate of the control batch `h` (`raw` is the whole batch), below the clean horizon,
    /// at `now_ms` with `delete.retention.ms` = `retention_ms`. See the module's table.
    pub(super) fn marker_fate(&self, h: &BatchHeader, raw: &[u8], now_ms: i64, retention_ms: i64) -> MarkerFate {
        let protected = self.last_batch.get(&h.producer_id) == Some(&h.base_offset);
        if protected || !self.dataless.contains(&h.base_offset) {
            return MarkerFate::Keep;
        }
        match h.delete_horizon_ms() {
            Some(horizon) if horizon <= now_ms => MarkerFate::Remove,
            Some(horizon) => MarkerFate::Wait(horizon),
            None => {
                let horizon = now_ms.saturating_add(retention_ms.max(0));
                match control::with_delete_horizon(h, raw, horizon) {
                    Some(stamped) => MarkerFate::Stamp(stamped, horizon),
                    None => MarkerFate::Keep,
                }
            }
        }
    }

    /// Offsets of the ABORT markers in `[from, to)` whose transaction has no data left: their
    /// aborted-transaction index entries can go.
    pub(super) fn dataless_aborts(&self, from: i64, to: i64) -> Vec<i64> {
        self.dataless_aborts.range(from..to).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{ATTR_CONTROL, ATTR_TRANSACTIONAL};
    use crate::log::control::Marker;

    /// A batch in a scripted log: offset, producer, and what it is.
    #[derive(Clone, Copy)]
    enum B {
        /// Transactional data of a producer.
        Txn(i64, i64),
        /// Idempotent (non-transactional) data of a producer.
        Idem(i64, i64),
        /// A marker of a producer: commit?
        Marker(i64, i64, bool),
        /// A marker already stamped with this delete horizon.
        Stamped(i64, i64, bool, i64),
    }

    fn bytes(b: B) -> Vec<u8> {
        let header = |offset: i64, pid: i64, attrs: i16| {
            let mut v = control::encode(pid, 0, Marker { commit: true, coordinator_epoch: 0 }, 0);
            v.truncate(61);
            v[0..8].copy_from_slice(&offset.to_be_bytes());
            v[8..12].copy_from_slice(&49i32.to_be_bytes());
            v[21..23].copy_from_slice(&attrs.to_be_bytes());
            v[57..61].copy_from_slice(&0i32.to_be_bytes());
            v
        };
        let marker = |offset: i64, pid: i64, commit: bool| {
            let mut v = control::encode(pid, 0, Marker { commit, coordinator_epoch: 0 }, 0);
            v[0..8].copy_from_slice(&offset.to_be_bytes());
            v
        };
        match b {
            B::Txn(o, pid) => header(o, pid, ATTR_TRANSACTIONAL),
            B::Idem(o, pid) => header(o, pid, 0),
            B::Marker(o, pid, commit) => marker(o, pid, commit),
            B::Stamped(o, pid, commit, horizon) => {
                let m = marker(o, pid, commit);
                let h = BatchHeader::parse(&m).unwrap();
                control::with_delete_horizon(&h, &m, horizon).unwrap()
            }
        }
    }

    fn plan(log: &[B], aborted: &[(i64, i64, i64)]) -> TxnPlan {
        let list = aborted
            .iter()
            .map(|&(producer_id, first_offset, last_offset)| AbortedTxn {
                producer_id,
                first_offset,
                last_offset,
                last_stable_offset: last_offset,
            })
            .collect();
        let mut scan = TxnScan::new(list);
        for &b in log {
            let raw = bytes(b);
            scan.observe(&BatchHeader::parse(&raw).unwrap(), &raw);
        }
        scan.finish()
    }

    /// The fate of the marker at `offset` in `log` at time 1000 with delete.retention.ms 500,
    /// as a short word.
    fn fate(log: &[B], aborted: &[(i64, i64, i64)], offset: i64) -> &'static str {
        let p = plan(log, aborted);
        let b = *log.iter().find(|b| matches!(b, B::Marker(o, ..) | B::Stamped(o, ..) if *o == offset)).unwrap();
        let raw = bytes(b);
        let h = BatchHeader::parse(&raw).unwrap();
        assert_eq!(h.attributes & ATTR_CONTROL, ATTR_CONTROL);
        match p.marker_fate(&h, &raw, 1_000, 500) {
            MarkerFate::Keep => "keep",
            MarkerFate::Wait(1_200) => "wait",
            MarkerFate::Wait(_) => "wait for the wrong horizon",
            MarkerFate::Stamp(_, 1_500) => "stamp",
            MarkerFate::Stamp(..) => "stamp at the wrong horizon",
            MarkerFate::Remove => "remove",
        }
    }

    /// A scripted log, its aborted transactions (pid, first, marker), a marker offset in it,
    /// and that marker's fate.
    type Case = (&'static [B], &'static [(i64, i64, i64)], i64, &'static str);

    #[test]
    fn marker_fates() {
        use B::*;
        let cases: &[Case] = &[
            // Data of the transaction is still there: kept.
            (&[Txn(0, 7), Marker(1, 7, true), Idem(2, 7)], &[], 1, "keep"),
            (&[Txn(0, 7), Marker(1, 7, false), Idem(2, 7)], &[(7, 0, 1)], 1, "keep"),
            // Data spread over batches, one of them left.
            (&[Txn(0, 7), Txn(1, 8), Marker(2, 8, true), Marker(3, 7, true), Idem(4, 7), Idem(5, 8)], &[], 3, "keep"),
            // No data left: stamped, then removed once the horizon passed.
            (&[Marker(1, 7, true), Idem(2, 7)], &[], 1, "stamp"),
            (&[Marker(1, 7, false), Idem(2, 7)], &[], 1, "stamp"),
            (&[Stamped(1, 7, true, 1_200), Idem(2, 7)], &[], 1, "wait"),
            (&[Stamped(1, 7, true, 1_000), Idem(2, 7)], &[], 1, "remove"),
            (&[Stamped(1, 7, false, 900), Idem(2, 7)], &[], 1, "remove"),
            // Another producer's data between does not count.
            (&[Txn(0, 8), Marker(1, 7, true), Marker(2, 8, true), Idem(3, 7), Idem(4, 8)], &[], 1, "stamp"),
            // The data of the previous transaction does not count either.
            (&[Txn(0, 7), Marker(1, 7, true), Marker(2, 7, true), Idem(3, 7)], &[], 2, "stamp"),
            // The producer's last batch is kept (newest epochs), data or not.
            (&[Idem(0, 7), Marker(1, 7, true)], &[], 1, "keep"),
            (&[Stamped(1, 7, true, 0)], &[], 1, "keep"),
        ];
        for (i, (log, aborted, offset, want)) in cases.iter().enumerate() {
            assert_eq!(fate(log, aborted, *offset), *want, "case {i}");
        }
    }

    #[test]
    fn aborted_data_last_batches_and_index_entries() {
        use B::*;
        let log = [
            Txn(0, 7),
            Idem(1, 9),
            Marker(2, 7, false),
            Marker(3, 7, false),
            Txn(4, 7),
            Marker(5, 7, true),
            Idem(6, 9),
        ];
        let p = plan(&log, &[(7, 0, 2), (7, 3, 3)]);
        assert!(p.is_aborted(0) && !p.is_aborted(4) && !p.is_aborted(1));
        assert_eq!(p.dataless_aborts(0, 10), vec![3]);
        assert_eq!(p.dataless_aborts(0, 3), Vec::<i64>::new());
        let header = |b: B| BatchHeader::parse(&bytes(b)).unwrap();
        assert!(p.keep_empty(&header(Txn(4, 7))) && p.keep_empty(&header(Idem(6, 9))));
        assert!(!p.keep_empty(&header(Txn(0, 7))) && !p.keep_empty(&header(Idem(1, 9))));
    }
}
