//! InitProducerId: new ids, epoch bumps and fencing, KIP-360 retries, epoch overflow, bad input.

use super::*;

#[test]
fn a_new_id_gets_a_producer_id_and_each_init_bumps_the_epoch() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
            (1, init(2, None), &["persist t1: Empty pid=1000 epoch=1 []", "#2 init pid=1000 epoch=1"]),
            // The old producer is fenced.
            (2, add(3, 1000, 0, &[("a", 0)]), &["#3 add PRODUCER_FENCED"]),
            (3, add(4, 1000, 1, &[("a", 0)]), &["persist t1: Ongoing pid=1000 epoch=1 [a-0]", "#4 add NONE"]),
        ],
    );
}

#[test]
fn init_over_an_open_transaction_aborts_it_with_a_bumped_epoch_first() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
            (
                1,
                add(2, 1000, 0, &[("a", 0), ("b", 1)]),
                &["persist t1: Ongoing pid=1000 epoch=0 [a-0,b-1]", "#2 add NONE"],
            ),
            (
                2,
                init(3, None),
                &[
                    "persist t1: PrepareAbort pid=1000 epoch=1 [a-0,b-1]",
                    "#3 init CONCURRENT_TRANSACTIONS",
                    "markers t1 abort pid=1000 epoch=1 [a-0,b-1]",
                ],
            ),
            // While the markers are written, the retry waits.
            (3, init(4, None), &["#4 init CONCURRENT_TRANSACTIONS"]),
            // The old producer's commit is fenced.
            (4, end(5, 1000, 0, true, false), &["#5 end PRODUCER_FENCED"]),
            (5, written(1000, 1), &["persist t1: CompleteAbort pid=1000 epoch=1 []"]),
            (6, init(6, None), &["persist t1: Empty pid=1000 epoch=2 []", "#6 init pid=1000 epoch=2"]),
        ],
    );
}

#[test]
fn kip_360_a_producer_bumps_its_own_epoch_and_a_retry_gets_the_same_answer() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
            (1, init(2, Some((1000, 0))), &["persist t1: Empty pid=1000 epoch=1 []", "#2 init pid=1000 epoch=1"]),
            // The answer was lost: the retry still carries epoch 0, the remembered last epoch.
            (2, init(3, Some((1000, 0))), &["persist t1: Empty pid=1000 epoch=1 []", "#3 init pid=1000 epoch=1"]),
            // An epoch older than both is fenced, and so is another producer id.
            (3, init(4, Some((999, 0))), &["#4 init PRODUCER_FENCED"]),
            (4, init(5, Some((1000, 1))), &["persist t1: Empty pid=1000 epoch=2 []", "#5 init pid=1000 epoch=2"]),
            (5, init(6, Some((1000, 0))), &["#6 init PRODUCER_FENCED"]),
            // A producer without an id (a new instance) fences and forgets the last epoch.
            (6, init(7, None), &["persist t1: Empty pid=1000 epoch=3 []", "#7 init pid=1000 epoch=3"]),
            (7, init(8, Some((1000, 2))), &["#8 init PRODUCER_FENCED"]),
        ],
    );
}

#[test]
fn an_exhausted_epoch_moves_to_a_new_producer_id_and_a_retry_is_recognised() {
    let mut c = coordinator();
    let max = i16::MAX - 1;
    let mut v = TxnValue {
        producer_id: 7,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: max,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::CompleteCommit,
        partitions: Default::default(),
        last_update_ms: 0,
        start_ms: -1,
        client_txn_version: 0,
    };
    c.load(0, [TxnRecord { transactional_id: TXN.into(), value: Some(v.clone()) }]);
    let rows: &[(i64, Input, &[&str])] = &[
        (1, init(1, Some((7, max))), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
        (2, init(2, Some((7, max))), &["persist t1: Empty pid=1000 epoch=0 []", "#2 init pid=1000 epoch=0"]),
    ];
    let stored = run(&mut c, rows);
    assert_eq!(stored[0].value.as_ref().map(|v| (v.previous_producer_id, v.last_producer_epoch)), Some((7, max)));

    // Without an expected id the new producer id comes with no remembered epoch.
    let mut c = coordinator();
    v.state = TxnState::Empty;
    c.load(0, [TxnRecord { transactional_id: TXN.into(), value: Some(v) }]);
    let stored =
        run(&mut c, &[(1, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"])]);
    assert_eq!(stored[0].value.as_ref().map(|v| (v.previous_producer_id, v.last_producer_epoch)), Some((7, -1)));
}

#[test]
fn bad_requests_are_refused_without_state() {
    let mut c = coordinator();
    let req = |id: &str, timeout_ms| {
        Input::Req(1, InitProducerId { transactional_id: id.into(), timeout_ms, expected: None }.into())
    };
    run(
        &mut c,
        &[
            (0, req("", 1000), &["#1 init INVALID_REQUEST"]),
            (0, req("x", 0), &["#1 init INVALID_TRANSACTION_TIMEOUT"]),
            (0, req("x", 900_001), &["#1 init INVALID_TRANSACTION_TIMEOUT"]),
            (0, req("x", 900_000), &["persist x: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
        ],
    );
    assert!(c.get("").is_none());
}

#[test]
fn no_producer_id_available_is_retriable() {
    let mut c = TxnCoordinator::new(TxnConfig::default(), || None);
    run(&mut c, &[(0, init(1, None), &["#1 init COORDINATOR_NOT_AVAILABLE"])]);
    assert!(c.get(TXN).is_none());
}
