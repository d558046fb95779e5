//! Transactions open longer than their timeout are aborted with the epoch bumped.

use super::*;

#[test]
fn an_expired_transaction_is_aborted_at_the_next_check_and_its_producer_fenced() {
    let mut c = coordinator();
    let r = InitProducerId { transactional_id: TXN.into(), timeout_ms: 15_000, expected: None };
    run(
        &mut c,
        &[
            (0, Input::Req(1, r.into()), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
            (1_000, add(2, 1000, 0, &[("a", 0)]), &["persist t1: Ongoing pid=1000 epoch=0 [a-0]", "#2 add NONE"]),
        ],
    );
    // Checks run every 10 s from the first request: at 10 s the transaction is 9 s old.
    assert_eq!(c.next_deadline(), Some(DEFAULT_ABORT_CHECK_INTERVAL_MS));
    run(
        &mut c,
        &[
            (10_000, Input::Tick, &[]),
            // At 16 s it is past its 15 s, but nothing is checked before 20 s.
            (16_001, Input::Tick, &[]),
            (
                20_000,
                Input::Tick,
                &["persist t1: PrepareAbort pid=1000 epoch=1 [a-0]", "markers t1 abort pid=1000 epoch=1 [a-0]"],
            ),
            (20_001, add(3, 1000, 0, &[("a", 0)]), &["#3 add PRODUCER_FENCED"]),
            (20_002, written(1000, 1), &["persist t1: CompleteAbort pid=1000 epoch=1 []"]),
            (20_003, end(4, 1000, 0, true, false), &["#4 end PRODUCER_FENCED"]),
            (30_000, Input::Tick, &[]),
        ],
    );
}

#[test]
fn transactions_within_their_timeout_and_idle_ids_are_left_alone() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (0, init(1, None), &["persist t1: Empty pid=1000 epoch=0 []", "#1 init pid=1000 epoch=0"]),
            (5_000, add(2, 1000, 0, &[("a", 0)]), &["persist t1: Ongoing pid=1000 epoch=0 [a-0]", "#2 add NONE"]),
            (10_000, Input::Tick, &[]),
            (60_000, Input::Tick, &[]),
            // 60 s timeout from 5 s: expired at the check at 70 s.
            (
                70_000,
                Input::Tick,
                &["persist t1: PrepareAbort pid=1000 epoch=1 [a-0]", "markers t1 abort pid=1000 epoch=1 [a-0]"],
            ),
            (70_001, written(1000, 1), &["persist t1: CompleteAbort pid=1000 epoch=1 []"]),
            (100_000, Input::Tick, &[]),
        ],
    );
}
