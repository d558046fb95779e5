use super::*;

/// A data batch header of `count` records at `base` from producer `pid`.
fn data(pid: i64, epoch: i16, seq: i32, count: i32, base: i64, txn: bool) -> BatchHeader {
    BatchHeader {
        base_offset: base,
        size: 61,
        partition_leader_epoch: 0,
        attributes: if txn { crate::log::batch::ATTR_TRANSACTIONAL } else { 0 },
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        record_count: count,
    }
}

fn append(s: &mut ProducerState, h: BatchHeader) -> Result<Check, ProducerError> {
    let mut staged = Staged::default();
    let c = s.check_data(&mut staged, &h, AppendOrigin::Client, 1)?;
    s.apply(staged);
    Ok(c)
}

fn marker(s: &mut ProducerState, pid: i64, epoch: i16, commit: bool, offset: i64) -> Option<CompletedTxn> {
    let mut staged = Staged::default();
    s.check_marker(&mut staged, MarkerAt { producer_id: pid, epoch, coordinator_epoch: 0, commit, offset }, 1).unwrap();
    let done = staged.completed();
    s.apply(staged);
    done
}

#[test]
fn sequences_in_order_are_accepted_and_gaps_refused() {
    let mut s = ProducerState::new();
    assert_eq!(append(&mut s, data(7, 0, 0, 3, 0, false)), Ok(Check::Append));
    assert_eq!(append(&mut s, data(7, 0, 3, 2, 3, false)), Ok(Check::Append));
    assert_eq!(
        append(&mut s, data(7, 0, 6, 1, 5, false)),
        Err(ProducerError::OutOfOrder { producer_id: 7, first_seq: 6, expected: 5 })
    );
    // A refused batch changes nothing: the expected sequence is still 5.
    assert_eq!(append(&mut s, data(7, 0, 5, 1, 5, false)), Ok(Check::Append));
}

#[test]
fn a_retry_of_one_of_the_last_five_batches_is_a_duplicate_with_its_offsets() {
    let mut s = ProducerState::new();
    for i in 0..7 {
        append(&mut s, data(1, 0, i * 2, 2, 100 + i as i64 * 2, false)).unwrap();
    }
    // Batches 2..6 are remembered; batch 1 (seq 2..3) is not.
    match append(&mut s, data(1, 0, 4, 2, 999, false)).unwrap() {
        Check::Duplicate(b) => {
            assert_eq!((b.base_offset(), b.last_offset), (104, 105));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert!(matches!(append(&mut s, data(1, 0, 2, 2, 999, false)), Err(ProducerError::OutOfOrder { .. })));
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence_but_a_new_epoch_starts_at_zero() {
    let mut s = ProducerState::new();
    assert_eq!(append(&mut s, data(3, 2, 41, 1, 0, false)), Ok(Check::Append));
    assert_eq!(
        append(&mut s, data(3, 3, 42, 1, 1, false)),
        Err(ProducerError::OutOfOrder { producer_id: 3, first_seq: 42, expected: 0 })
    );
    assert_eq!(append(&mut s, data(3, 3, 0, 1, 1, false)), Ok(Check::Append));
    assert_eq!(
        append(&mut s, data(3, 2, 42, 1, 2, false)),
        Err(ProducerError::InvalidEpoch { producer_id: 3, epoch: 2, current: 3 })
    );
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(increment_sequence(i32::MAX, 0), i32::MAX);
    assert_eq!(increment_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(increment_sequence(i32::MAX, 3), 2);
    let mut s = ProducerState::new();
    append(&mut s, data(9, 0, i32::MAX - 1, 2, 0, false)).unwrap();
    assert_eq!(append(&mut s, data(9, 0, 0, 1, 2, false)), Ok(Check::Append));
}

#[test]
fn coordinator_writes_skip_sequence_checks_but_not_epochs() {
    let mut s = ProducerState::new();
    let mut st = Staged::default();
    let h = data(5, 1, -1, 1, 0, true);
    assert_eq!(s.check_data(&mut st, &h, AppendOrigin::Coordinator, 1), Ok(Check::Append));
    s.apply(st);
    let mut st = Staged::default();
    assert_eq!(s.check_data(&mut st, &data(5, 1, -1, 1, 1, true), AppendOrigin::Coordinator, 1), Ok(Check::Append));
    let mut st = Staged::default();
    assert!(matches!(
        s.check_data(&mut st, &data(5, 0, -1, 1, 2, true), AppendOrigin::Coordinator, 1),
        Err(ProducerError::InvalidEpoch { .. })
    ));
}

#[test]
fn open_transactions_hold_back_the_last_stable_offset_until_their_marker() {
    let mut s = ProducerState::new();
    append(&mut s, data(1, 0, 0, 2, 10, true)).unwrap();
    append(&mut s, data(2, 0, 0, 1, 12, true)).unwrap();
    append(&mut s, data(1, 0, 2, 1, 13, true)).unwrap();
    assert_eq!(s.first_unstable_offset(), Some(10));
    assert_eq!(
        marker(&mut s, 1, 0, false, 14),
        Some(CompletedTxn { producer_id: 1, first_offset: 10, marker_offset: 14, commit: false })
    );
    assert_eq!(s.first_unstable_offset(), Some(12));
    assert_eq!(marker(&mut s, 2, 0, true, 15).map(|c| c.commit), Some(true));
    assert_eq!(s.first_unstable_offset(), None);
    // A marker for a producer with nothing open completes nothing.
    assert_eq!(marker(&mut s, 2, 0, true, 16), None);
}

#[test]
fn writes_must_match_the_transaction_state() {
    let mut s = ProducerState::new();
    append(&mut s, data(1, 0, 0, 1, 0, true)).unwrap();
    assert!(matches!(append(&mut s, data(1, 0, 1, 1, 1, false)), Err(ProducerError::InvalidTxnState { .. })));
}

#[test]
fn a_marker_with_a_bumped_epoch_fences_the_old_epoch_and_resets_sequences() {
    let mut s = ProducerState::new();
    append(&mut s, data(1, 4, 0, 3, 0, true)).unwrap();
    marker(&mut s, 1, 5, true, 3);
    assert!(matches!(append(&mut s, data(1, 4, 3, 1, 4, true)), Err(ProducerError::InvalidEpoch { .. })));
    assert!(matches!(append(&mut s, data(1, 5, 3, 1, 4, true)), Err(ProducerError::OutOfOrder { .. })));
    assert_eq!(append(&mut s, data(1, 5, 0, 1, 4, true)), Ok(Check::Append));
    // An older epoch's marker is refused.
    let mut st = Staged::default();
    let stale = MarkerAt { producer_id: 1, epoch: 4, coordinator_epoch: 0, commit: false, offset: 5 };
    assert!(s.check_marker(&mut st, stale, 1).is_err());
}

#[test]
fn idle_producers_expire_but_not_with_an_open_transaction() {
    let mut s = ProducerState::new();
    let mut st = Staged::default();
    s.check_data(&mut st, &data(1, 0, 0, 1, 0, false), AppendOrigin::Client, 100).unwrap();
    s.check_data(&mut st, &data(2, 0, 0, 1, 1, true), AppendOrigin::Client, 100).unwrap();
    s.apply(st);
    assert_eq!(s.expire(200), 1);
    assert!(s.get(1).is_none() && s.get(2).is_some());
}

#[test]
fn staged_updates_of_one_request_see_each_other() {
    let s = ProducerState::new();
    let mut st = Staged::default();
    s.check_data(&mut st, &data(1, 0, 0, 2, 0, false), AppendOrigin::Client, 1).unwrap();
    assert_eq!(s.check_data(&mut st, &data(1, 0, 2, 2, 2, false), AppendOrigin::Client, 1), Ok(Check::Append));
    assert!(s.check_data(&mut st, &data(1, 0, 5, 1, 4, false), AppendOrigin::Client, 1).is_err());
    assert!(s.is_empty(), "nothing applied yet");
}
