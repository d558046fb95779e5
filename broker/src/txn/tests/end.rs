//! AddPartitionsToTxn, AddOffsetsToTxn and EndTxn (before and from v5), markers and their retries.

use super::*;

/// A coordinator where [`TXN`] has producer id 1000 at epoch 0.
fn initialised() -> TxnCoordinator {
    let mut c = coordinator();
    run(&mut c, &[(0, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"])]);
    c
}

#[test]
fn commit_writes_markers_then_completes_and_a_retry_is_answered_alike() {
    let mut c = initialised();
    run(
        &mut c,
        &[
            (1, add(2, 1000, 0, &[("b", 1)]), &["persist t1: Ongoing pid=1000 epoch=0 [b-1]", "#2 add NONE"]),
            // Adding more partitions extends the transaction; partitions already in it need no write.
            (
                2,
                add(3, 1000, 0, &[("a", 0), ("b", 1)]),
                &["persist t1: Ongoing pid=1000 epoch=0 [a-0,b-1]", "#3 add NONE"],
            ),
            (3, add(4, 1000, 0, &[("a", 0)]), &["#4 add NONE"]),
            (
                4,
                end(5, 1000, 0, true, false),
                &[
                    "persist t1: PrepareCommit pid=1000 epoch=0 [a-0,b-1]",
                    "#5 end pid=1000 epoch=0",
                    "markers t1 commit pid=1000 epoch=0 [a-0,b-1]",
                ],
            ),
            (5, end(6, 1000, 0, true, false), &["#6 end CONCURRENT_TRANSACTIONS"]),
            (5, end(7, 1000, 0, false, false), &["#7 end INVALID_TXN_STATE"]),
            (5, add(8, 1000, 0, &[("a", 0)]), &["#8 add CONCURRENT_TRANSACTIONS"]),
            (6, written(1000, 0), &["persist t1: CompleteCommit pid=1000 epoch=0 []"]),
            // A report that no longer matches changes nothing.
            (7, written(1000, 0), &[]),
            (8, end(9, 1000, 0, true, false), &["#9 end pid=1000 epoch=0"]),
            (8, end(10, 1000, 0, false, false), &["#10 end INVALID_TXN_STATE"]),
            // The next transaction starts from CompleteCommit.
            (9, add(11, 1000, 0, &[("c", 2)]), &["persist t1: Ongoing pid=1000 epoch=0 [c-2]", "#11 add NONE"]),
            (
                10,
                end(12, 1000, 0, false, false),
                &[
                    "persist t1: PrepareAbort pid=1000 epoch=0 [c-2]",
                    "#12 end pid=1000 epoch=0",
                    "markers t1 abort pid=1000 epoch=0 [c-2]",
                ],
            ),
            (11, written(1000, 0), &["persist t1: CompleteAbort pid=1000 epoch=0 []"]),
            (12, end(13, 1000, 0, false, false), &["#13 end pid=1000 epoch=0"]),
            (12, end(14, 1000, 0, true, false), &["#14 end INVALID_TXN_STATE"]),
        ],
    );
}

#[test]
fn requests_of_other_producers_are_refused() {
    let mut c = initialised();
    let other_id = |id| {
        Input::Req(
            id,
            AddPartitions {
                transactional_id: "nobody".into(),
                producer_id: 1000,
                producer_epoch: 0,
                partitions: vec![tp("a", 0)],
            }
            .into(),
        )
    };
    run(
        &mut c,
        &[
            (1, other_id(2), &["#2 add INVALID_PRODUCER_ID_MAPPING"]),
            (1, add(3, 999, 0, &[("a", 0)]), &["#3 add INVALID_PRODUCER_ID_MAPPING"]),
            (1, add(4, 1000, 1, &[("a", 0)]), &["#4 add PRODUCER_FENCED"]),
            (1, end(5, 1000, 0, true, false), &["#5 end INVALID_TXN_STATE"]),
            (1, end(6, 999, 0, true, false), &["#6 end INVALID_PRODUCER_ID_MAPPING"]),
            (1, end(7, 1000, 1, true, false), &["#7 end PRODUCER_FENCED"]),
        ],
    );
    assert_eq!(ErrorCode::ProducerFenced.for_old_client(), ErrorCode::InvalidProducerEpoch);
    assert_eq!(ErrorCode::InvalidTxnState.for_old_client(), ErrorCode::InvalidTxnState);
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut c = initialised();
    let p = crate::group::partition_for("g", 50);
    let want = format!("persist t1: Ongoing pid=1000 epoch=0 [__consumer_offsets-{p}]");
    let r = AddOffsets { transactional_id: TXN.into(), producer_id: 1000, producer_epoch: 0, group_id: "g".into() };
    run(&mut c, &[(1, Input::Req(2, r.into()), &[want.as_str(), "#2 add-offsets NONE"])]);
}

#[test]
fn v5_bumps_the_epoch_at_every_end_and_markers_carry_it() {
    let mut c = initialised();
    run(
        &mut c,
        &[
            (1, add(2, 1000, 0, &[("a", 0)]), &["persist t1: Ongoing pid=1000 epoch=0 [a-0]", "#2 add NONE"]),
            (
                2,
                end(3, 1000, 0, true, true),
                &[
                    "persist t1: PrepareCommit pid=1000 epoch=1 [a-0]",
                    "#3 end pid=1000 epoch=1",
                    "markers t1 commit pid=1000 epoch=1 [a-0]",
                ],
            ),
            (3, written(1000, 1), &["persist t1: CompleteCommit pid=1000 epoch=1 []"]),
            // A retry with the old epoch gets the current answer; a commit at the new epoch has no
            // transaction to commit.
            (4, end(4, 1000, 0, true, true), &["#4 end pid=1000 epoch=1"]),
            (4, end(5, 1000, 0, false, true), &["#5 end INVALID_TXN_STATE"]),
            (4, end(6, 1000, 1, true, true), &["#6 end PRODUCER_FENCED"]),
            (5, add(7, 1000, 1, &[("a", 0)]), &["persist t1: Ongoing pid=1000 epoch=1 [a-0]", "#7 add NONE"]),
            (
                6,
                end(8, 1000, 1, false, true),
                &[
                    "persist t1: PrepareAbort pid=1000 epoch=2 [a-0]",
                    "#8 end pid=1000 epoch=2",
                    "markers t1 abort pid=1000 epoch=2 [a-0]",
                ],
            ),
            (7, written(1000, 2), &["persist t1: CompleteAbort pid=1000 epoch=2 []"]),
            (8, end(9, 1000, 1, false, true), &["#9 end pid=1000 epoch=2"]),
        ],
    );
}

#[test]
fn v5_abort_without_partitions_completes_at_once() {
    let mut c = initialised();
    run(
        &mut c,
        &[(
            1,
            end(2, 1000, 0, false, true),
            &[
                "persist t1: PrepareAbort pid=1000 epoch=1 []",
                "#2 end pid=1000 epoch=1",
                "persist t1: CompleteAbort pid=1000 epoch=1 []",
            ],
        )],
    );
}

#[test]
fn v5_at_an_exhausted_epoch_moves_to_a_new_producer_id_on_completion() {
    let mut c = coordinator();
    let max = i16::MAX - 1;
    let v = TxnValue {
        producer_id: 7,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: max,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::Ongoing,
        partitions: [tp("a", 0)].into_iter().collect(),
        last_update_ms: 0,
        start_ms: 0,
        client_txn_version: 2,
    };
    c.load(0, [TxnRecord { transactional_id: TXN.into(), value: Some(v) }]);
    let stored = run(
        &mut c,
        &[
            (
                1,
                end(1, 7, max, true, true),
                &[
                    "persist t1: PrepareCommit pid=7 epoch=32767 [a-0]",
                    "#1 end pid=1000 epoch=0",
                    "markers t1 commit pid=7 epoch=32767 [a-0]",
                ],
            ),
            (2, written(7, i16::MAX), &["persist t1: CompleteCommit pid=1000 epoch=0 []"]),
            // The retry with the old id and epoch is recognised.
            (3, end(2, 7, max, true, true), &["#2 end pid=1000 epoch=0"]),
        ],
    );
    assert_eq!(stored[0].value.as_ref().map(|v| v.next_producer_id), Some(1000));
    assert_eq!(stored[1].value.as_ref().map(|v| (v.previous_producer_id, v.next_producer_id)), Some((7, -1)));
}

#[test]
fn markers_a_partition_refused_are_sent_again_after_the_backoff() {
    let mut c = initialised();
    run(
        &mut c,
        &[
            (
                1,
                add(2, 1000, 0, &[("a", 0), ("b", 0)]),
                &["persist t1: Ongoing pid=1000 epoch=0 [a-0,b-0]", "#2 add NONE"],
            ),
            (
                2,
                end(3, 1000, 0, true, false),
                &[
                    "persist t1: PrepareCommit pid=1000 epoch=0 [a-0,b-0]",
                    "#3 end pid=1000 epoch=0",
                    "markers t1 commit pid=1000 epoch=0 [a-0,b-0]",
                ],
            ),
            (10, Input::Written { id: TXN, pid: 1000, epoch: 0, failed: vec![tp("b", 0)] }, &[]),
        ],
    );
    assert_eq!(c.next_deadline(), Some(10 + DEFAULT_MARKER_RETRY_BACKOFF_MS));
    run(
        &mut c,
        &[
            (109, Input::Tick, &[]),
            (110, Input::Tick, &["markers t1 commit pid=1000 epoch=0 [b-0]"]),
            // Nothing more is due until the driver reports.
            (500, Input::Tick, &[]),
            (501, written(1000, 0), &["persist t1: CompleteCommit pid=1000 epoch=0 []"]),
        ],
    );
}
