//! Producer state through the log: duplicates, sequence checks, transactions, the last stable
//! offset, aborted transactions, and all of it rebuilt after clean and unclean restarts.

use super::*;
use crate::log::producer_state::{AbortedTxn, ProducerError};
use crate::log::ReadLimit;

/// `batch` re-stamped as producer `pid`'s batch at `seq`, transactional or not.
pub(super) fn idem(b: &Bytes, pid: i64, epoch: i16, seq: i32, txn: bool) -> Bytes {
    let mut v = b.to_vec();
    let attrs = i16::from_be_bytes([v[21], v[22]]) | if txn { batch::ATTR_TRANSACTIONAL } else { 0 };
    v[21..23].copy_from_slice(&attrs.to_be_bytes());
    v[43..51].copy_from_slice(&pid.to_be_bytes());
    v[51..53].copy_from_slice(&epoch.to_be_bytes());
    v[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

pub(super) fn recs(n: usize) -> Bytes {
    batch(n, 1_000, Compression::None)
}

/// Base offsets of the batches a read returns.
fn bases(log: &Log, from: i64, committed: bool) -> Vec<i64> {
    let limit = if committed { ReadLimit::Committed } else { ReadLimit::HighWatermark };
    let r = log.read_upto(from, u64::MAX, limit).unwrap();
    let Some(slice) = r.slice else { return Vec::new() };
    let data = slice.read_bytes().unwrap();
    batch::batches(&data).map(|b| b.unwrap().1.base_offset).collect()
}

#[test]
fn a_retried_batch_is_answered_with_its_original_offsets_and_not_written_again() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    log.append(&recs(1), 0).unwrap();
    let first = log.append(&idem(&recs(3), 9, 0, 0, false), 0).unwrap();
    let second = log.append(&idem(&recs(2), 9, 0, 3, false), 0).unwrap();
    let again = log.append(&idem(&recs(3), 9, 0, 0, false), 0).unwrap();
    assert_eq!((again.base_offset, again.last_offset), (first.base_offset, first.last_offset));
    assert_eq!((first.base_offset, second.base_offset), (1, 4));
    assert_eq!(log.log_end_offset(), 6, "the duplicate was not written");
    let gap = log.append(&idem(&recs(1), 9, 0, 7, false), 0).unwrap_err();
    assert!(matches!(gap, LogError::Producer(ProducerError::OutOfOrder { expected: 5, .. })), "{gap}");
}

#[test]
fn dedupe_holds_across_clean_and_unclean_restarts() {
    for (clean, keep_snapshots) in [(true, true), (false, true), (false, false)] {
        let dir = tempdir();
        // Small segments: rolls write snapshots, and the replay after them crosses segments.
        let cfg = config(&[("segment.bytes", "250")]);
        let mut infos = Vec::new();
        {
            let (log, _) = open(dir.path(), &cfg, true);
            for i in 0..12 {
                infos.push(log.append(&idem(&recs(2), 5, 0, i * 2, false), 0).unwrap());
            }
            assert!(log.segment_count() > 3);
            if clean {
                log.close().unwrap();
            }
        }
        if !keep_snapshots {
            for e in fs::read_dir(dir.path()).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "snapshot") {
                    fs::remove_file(p).unwrap();
                }
            }
        }
        let (log, _) = open(dir.path(), &cfg, clean);
        for i in 7..12 {
            let again = log.append(&idem(&recs(2), 5, 0, i * 2, false), 0).unwrap();
            assert_eq!(again.base_offset, infos[i as usize].base_offset, "clean={clean} batch {i}");
        }
        assert_eq!(log.log_end_offset(), 24);
        assert!(log.append(&idem(&recs(2), 5, 0, 30, false), 0).is_err(), "clean={clean}: sequence gap");
        log.append(&idem(&recs(2), 5, 0, 24, false), 0).unwrap();
    }
}

#[test]
fn read_committed_stops_at_the_first_open_transaction_and_aborts_are_indexed() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    log.append(&recs(1), 0).unwrap(); // 0
    log.append(&idem(&recs(2), 1, 0, 0, true), 0).unwrap(); // 1-2, txn of producer 1
    log.append(&idem(&recs(1), 2, 0, 0, true), 0).unwrap(); // 3, txn of producer 2
    log.append(&recs(1), 0).unwrap(); // 4
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(bases(&log, 0, true), vec![0]);
    assert_eq!(bases(&log, 0, false), vec![0, 1, 3, 4]);
    assert!(log.read_upto(1, u64::MAX, ReadLimit::Committed).unwrap().slice.is_none());
    log.append_marker(1, 0, false, 0, 0).unwrap(); // 5: abort producer 1
    assert_eq!(log.last_stable_offset(), 3);
    log.append_marker(2, 0, true, 0, 0).unwrap(); // 6: commit producer 2
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(bases(&log, 0, true), vec![0, 1, 3, 4, 5, 6]);
    let aborted = log.aborted_txns(0, 7);
    assert_eq!(aborted, vec![AbortedTxn { producer_id: 1, first_offset: 1, last_offset: 5, last_stable_offset: 3 }]);
    assert!(log.aborted_txns(6, 7).is_empty());
    // A non-transactional write while the producer's transaction is open is refused.
    log.append(&idem(&recs(1), 3, 0, 0, true), 0).unwrap();
    assert!(matches!(
        log.append(&idem(&recs(1), 3, 0, 1, false), 0),
        Err(LogError::Producer(ProducerError::InvalidTxnState { .. }))
    ));
}

#[test]
fn transactions_and_aborts_survive_unclean_restarts_and_truncation() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "300")]);
    {
        let (log, _) = open(dir.path(), &cfg, true);
        for round in 0..6i64 {
            let pid = 100 + round % 2;
            log.append(&idem(&recs(2), pid, 0, (round / 2 * 2) as i32, true), 0).unwrap();
            log.append(&recs(1), 0).unwrap();
            log.append_marker(pid, 0, round % 3 == 0, 0, 0).unwrap();
        }
        log.append(&idem(&recs(1), 7, 0, 0, true), 0).unwrap(); // left open
        assert!(log.segment_count() > 3);
    }
    let (log, _) = open(dir.path(), &cfg, false);
    let end = log.log_end_offset();
    assert_eq!(log.last_stable_offset(), end - 1, "producer 7's transaction is still open");
    let aborted: Vec<(i64, i64)> = log.aborted_txns(0, end).iter().map(|a| (a.producer_id, a.first_offset)).collect();
    assert_eq!(aborted, vec![(101, 4), (100, 8), (100, 16), (101, 20)]);
    // Cut the open transaction and the last marker: producer 101's last transaction is open again.
    log.truncate_to(end - 2).unwrap();
    assert_eq!(log.last_stable_offset(), 20);
    assert_eq!(log.aborted_txns(0, end).len(), 3);
    log.append_marker(101, 0, true, 0, 0).unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

#[test]
fn markers_from_an_older_epoch_are_refused_and_a_bumped_epoch_fences_late_writes() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    log.append(&idem(&recs(1), 4, 2, 0, true), 0).unwrap();
    // KIP-890: the coordinator ends the transaction with the epoch bumped.
    log.append_marker(4, 3, true, 0, 0).unwrap();
    let late = log.append(&idem(&recs(1), 4, 2, 1, true), 0).unwrap_err();
    assert!(matches!(late, LogError::Producer(ProducerError::InvalidEpoch { current: 3, .. })), "{late}");
    assert!(log.append_marker(4, 2, false, 0, 0).is_err());
    assert_eq!(log.last_stable_offset(), log.log_end_offset(), "no transaction was opened by the late write");
}

#[test]
fn clients_cannot_write_control_batches() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    let marker = Bytes::from(crate::log::control::encode(
        1,
        0,
        crate::log::control::Marker { commit: true, coordinator_epoch: 0 },
        0,
    ));
    assert!(matches!(log.append(&marker, 0), Err(LogError::InvalidRecord(_))));
}

#[test]
fn the_first_batch_of_a_transaction_needs_the_coordinators_word() {
    use std::cell::Cell;
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    let asked = Cell::new(0);
    let yes = |_: i64, _: i16| {
        asked.set(asked.get() + 1);
        Ok(())
    };
    let no = |_: i64, _: i16| Err(48);
    let refused = log.append_verified(&idem(&recs(1), 1, 0, 0, true), 0, &no).unwrap_err();
    assert!(matches!(refused, LogError::Producer(ProducerError::Unverified { code: 48, .. })), "{refused}");
    assert_eq!(log.log_end_offset(), 0);
    log.append_verified(&idem(&recs(1), 1, 0, 0, true), 0, &yes).unwrap();
    log.append_verified(&idem(&recs(1), 1, 0, 1, true), 0, &yes).unwrap();
    assert_eq!(asked.get(), 1, "only the batch opening the transaction is verified");
    log.append_verified(&idem(&recs(1), 2, 0, 0, false), 0, &no).unwrap();
    log.append_marker(1, 0, true, 0, 0).unwrap();
    assert!(log.append_verified(&idem(&recs(1), 1, 0, 2, true), 0, &no).is_err(), "a late batch opens nothing");
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}
