//! The `__transaction_state` format, replay after a restart, and KIP-890 part 1 verification.

use super::*;

fn value(state: TxnState, parts: &[(&str, i32)]) -> TxnValue {
    TxnValue {
        producer_id: 1000,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: 3,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state,
        partitions: parts.iter().map(|(t, p)| tp(t, *p)).collect(),
        last_update_ms: 1_700_000_000_123,
        start_ms: 1_700_000_000_000,
        client_txn_version: 0,
    }
}

#[test]
fn records_round_trip_in_kafkas_layout() {
    let v = value(TxnState::Ongoing, &[("a", 0), ("a", 2), ("b", 1)]);
    let r = TxnRecord { transactional_id: "app-0".into(), value: Some(v.clone()) };
    let key = r.encode_key();
    assert_eq!(&key[..], b"\x00\x00\x00\x05app-0");
    let val = r.encode_value().unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &[0, 1][..],                                   // value version 1
        &1000i64.to_be_bytes(), &3i16.to_be_bytes(), &60_000i32.to_be_bytes(), &[1], // Ongoing
        &[3],                                          // two topics (compact: n + 1)
        &[2, b'a', 3], &0i32.to_be_bytes(), &2i32.to_be_bytes(), &[0],
        &[2, b'b', 2], &1i32.to_be_bytes(), &[0],
        &1_700_000_000_123i64.to_be_bytes(), &1_700_000_000_000i64.to_be_bytes(),
        &[0],                                          // no tagged fields: all at their defaults
    ].concat();
    assert_eq!(&val[..], &want[..]);
    assert_eq!(TxnRecord::decode(&key, Some(&val)), Ok(r));

    // Fields away from their defaults travel as tagged fields.
    let mut v2 = v;
    v2.previous_producer_id = 7;
    v2.next_producer_id = 1001;
    v2.client_txn_version = 2;
    v2.last_producer_epoch = 2;
    v2.partitions.clear();
    v2.state = TxnState::PrepareCommit;
    let r2 = TxnRecord { transactional_id: "é".into(), value: Some(v2) };
    let val2 = r2.encode_value().unwrap();
    assert_eq!(TxnRecord::decode(&r2.encode_key(), Some(&val2)), Ok(r2));
    let tomb = TxnRecord { transactional_id: "x".into(), value: None };
    assert_eq!(tomb.encode_value(), None);
    assert_eq!(TxnRecord::decode(&tomb.encode_key(), None), Ok(tomb));
}

#[test]
fn kafka_version_0_values_decode() {
    // Version 0: classic (non-flexible) strings and arrays, no tagged fields.
    #[rustfmt::skip]
    let v0: Vec<u8> = [
        &[0, 0][..], &5i64.to_be_bytes(), &1i16.to_be_bytes(), &1000i32.to_be_bytes(), &[4],
        &1i32.to_be_bytes(), &1i16.to_be_bytes(), b"t", &1i32.to_be_bytes(), &9i32.to_be_bytes(),
        &10i64.to_be_bytes(), &(-1i64).to_be_bytes(),
    ].concat();
    let r = TxnRecord::decode(b"\x00\x00\x00\x01x", Some(&v0)).unwrap();
    let v = r.value.unwrap();
    assert_eq!((v.producer_id, v.producer_epoch, v.timeout_ms, v.state), (5, 1, 1000, TxnState::CompleteCommit));
    assert_eq!(v.partitions.into_iter().collect::<Vec<_>>(), vec![tp("t", 9)]);
}

#[test]
fn damaged_records_are_errors_not_panics() {
    let r = TxnRecord { transactional_id: "x".into(), value: Some(value(TxnState::Ongoing, &[("a", 0)])) };
    let key = r.encode_key();
    let val = r.encode_value().unwrap();
    for cut in 0..val.len() {
        assert!(TxnRecord::decode(&key, Some(&val[..cut])).is_err(), "cut at {cut}");
    }
    let mut long = val.to_vec();
    long.push(0);
    assert_eq!(TxnRecord::decode(&key, Some(&long)), Err(DecodeError::Malformed("trailing bytes")));
    assert_eq!(TxnRecord::decode(b"\x00\x01\x00\x01x", None), Err(DecodeError::UnknownKeyVersion(1)));
    let mut bad_state = val.to_vec();
    bad_state[16] = 9;
    assert_eq!(TxnRecord::decode(&key, Some(&bad_state)), Err(DecodeError::Malformed("unknown state")));
    assert_eq!(TxnRecord::decode(&key, Some(b"\x00\x02")), Err(DecodeError::UnknownValueVersion(2)));
}

#[test]
fn load_keeps_the_latest_record_and_rewrites_markers_of_prepared_transactions() {
    let mut c = coordinator();
    let rec = |id: &str, v: Option<TxnValue>| TxnRecord { transactional_id: id.into(), value: v };
    c.load(
        500,
        [
            rec("a", Some(value(TxnState::Ongoing, &[("x", 0)]))),
            rec("a", Some(value(TxnState::PrepareCommit, &[("x", 0), ("y", 1)]))),
            rec("b", Some(value(TxnState::Ongoing, &[("x", 0)]))),
            rec("c", Some(value(TxnState::Empty, &[]))),
            rec("c", None),
            rec("d", Some(value(TxnState::Dead, &[]))),
        ],
    );
    assert_eq!(c.list().map(|(id, _)| id).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(c.next_deadline(), Some(500));
    let rows: &[(i64, Input, &[&str])] = &[
        (500, Input::Tick, &["markers a commit pid=1000 epoch=3 [x-0,y-1]"]),
        (
            501,
            Input::Written { id: "a", pid: 1000, epoch: 3, failed: vec![] },
            &["persist a: CompleteCommit pid=1000 epoch=3 []"],
        ),
    ];
    run(&mut c, rows);
    // The state survives a write and a reload of what was written.
    let stored: Vec<TxnRecord> =
        c.list().map(|(id, v)| TxnRecord { transactional_id: id.into(), value: Some(v.clone()) }).collect();
    let mut again = coordinator();
    again.load(600, stored.clone());
    let reloaded: Vec<TxnRecord> =
        again.list().map(|(id, v)| TxnRecord { transactional_id: id.into(), value: Some(v.clone()) }).collect();
    assert_eq!(reloaded, stored);
}

#[test]
fn verify_allows_only_the_current_producer_in_an_open_transaction_with_the_partition() {
    let ongoing = value(TxnState::Ongoing, &[("a", 0)]);
    let a0 = tp("a", 0);
    type Case<'a> = (Option<&'a TxnValue>, i64, i16, &'a TopicPartition, Result<(), ErrorCode>);
    let cases: &[Case<'_>] = &[
        (Some(&ongoing), 1000, 3, &a0, Ok(())),
        (None, 1000, 3, &a0, Err(ErrorCode::InvalidProducerIdMapping)),
        (Some(&ongoing), 999, 3, &a0, Err(ErrorCode::InvalidProducerIdMapping)),
        (Some(&ongoing), 1000, 2, &a0, Err(ErrorCode::ProducerFenced)),
        (Some(&ongoing), 1000, 3, &tp("a", 1), Err(ErrorCode::InvalidTxnState)),
    ];
    for (i, (v, pid, epoch, p, want)) in cases.iter().enumerate() {
        assert_eq!(verify(*v, *pid, *epoch, p), *want, "case {i}");
    }
    let prepare = value(TxnState::PrepareCommit, &[("a", 0)]);
    assert_eq!(verify(Some(&prepare), 1000, 3, &a0), Err(ErrorCode::ConcurrentTransactions));
    let complete = value(TxnState::CompleteCommit, &[]);
    assert_eq!(verify(Some(&complete), 1000, 3, &a0), Err(ErrorCode::InvalidTxnState));
}
