//! Transactional offset commits (TxnOffsetCommit): pending until the transaction ends, member
//! and generation checks, RequireStable, and replaying transactions from the log.

use super::*;

/// A TxnOffsetCommit to `group` by producer `pid` (epoch 0) as a v0-2 client sends it: no
/// member id, generation -1.
fn txn(group: &str, pid: i64, offsets: &[(&str, i64)]) -> TxnOffsetCommit {
    let c = commit(group, "", -1, offsets);
    TxnOffsetCommit {
        group_id: c.group_id,
        transactional_id: format!("tx-{pid}"),
        producer_id: pid,
        producer_epoch: 0,
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: c.offsets,
    }
}

impl TxnOffsetCommit {
    /// As a v3 client of member `member` in generation `generation` sends it.
    fn member(mut self, member: &str, generation: i32) -> Self {
        self.member_id = member.into();
        self.generation_id = generation;
        self
    }
    fn instance(mut self, i: &str) -> Self {
        self.group_instance_id = Some(i.into());
        self
    }
}

fn everywhere(_: &str) -> bool {
    true
}

#[test]
fn transactional_offsets_are_pending_until_the_transaction_commits() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (
                1,
                req(1, txn("s", 7, &[("t-0", 5), ("t-1", 6)])),
                &["persist txn s pid=7 epoch=0: offset t-0=5; offset t-1=6", "#1 txn-commit t-0:NONE t-1:NONE"],
            ),
            // Invisible, and unstable for those who ask.
            (2, req(2, fetch("s", Some(&["t-0", "t-1", "t-2"]))), &["#2 fetch s[t-0=-1 t-1=-1 t-2=-1]"]),
            (
                2,
                req(3, fetch("s", Some(&["t-0", "t-1", "t-2"])).stable()),
                &["#3 fetch s[t-0:UNSTABLE_OFFSET_COMMIT=-1 t-1:UNSTABLE_OFFSET_COMMIT=-1 t-2=-1]"],
            ),
            // All partitions: only committed ones are listed.
            (2, req(4, fetch("s", None).stable()), &["#4 fetch s[]"]),
            (2, req(5, ListGroups::default()), &["#5 list s::Empty"]),
        ],
    );
    c.complete_txn(7, true, everywhere);
    run(
        &mut c,
        &[
            (3, req(6, fetch("s", None)), &["#6 fetch s[t-0=5 t-1=6]"]),
            (3, req(7, fetch("s", Some(&["t-0", "t-1"])).stable()), &["#7 fetch s[t-0=5 t-1=6]"]),
        ],
    );
}

#[test]
fn an_abort_drops_the_pending_offsets_and_the_last_committed_offset_stays() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (1, req(1, commit("s", "", -1, &[("t-0", 3)])), &["persist s: offset t-0=3", "#1 commit t-0:NONE"]),
            (
                2,
                req(2, txn("s", 7, &[("t-0", 9)])),
                &["persist txn s pid=7 epoch=0: offset t-0=9", "#2 txn-commit t-0:NONE"],
            ),
            (3, req(3, fetch("s", None)), &["#3 fetch s[t-0=3]"]),
            (3, req(4, fetch("s", None).stable()), &["#4 fetch s[t-0:UNSTABLE_OFFSET_COMMIT=-1]"]),
        ],
    );
    // Another producer's end changes nothing.
    c.complete_txn(8, true, everywhere);
    run(&mut c, &[(4, req(5, fetch("s", None).stable()), &["#5 fetch s[t-0:UNSTABLE_OFFSET_COMMIT=-1]"])]);
    c.complete_txn(7, false, everywhere);
    run(&mut c, &[(5, req(6, fetch("s", None).stable()), &["#6 fetch s[t-0=3]"])]);
}

#[test]
fn the_offset_written_last_wins_when_a_transaction_commits() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (1, req(1, commit("s", "", -1, &[("t-1", 3)])), &["persist s: offset t-1=3", "#1 commit t-1:NONE"]),
            (
                2,
                req(2, txn("s", 7, &[("t-0", 9), ("t-1", 8)])),
                &["persist txn s pid=7 epoch=0: offset t-0=9; offset t-1=8", "#2 txn-commit t-0:NONE t-1:NONE"],
            ),
            // Written after the transaction's offset: it stays when the transaction commits.
            (3, req(3, commit("s", "", -1, &[("t-0", 12)])), &["persist s: offset t-0=12", "#3 commit t-0:NONE"]),
            // Still unstable: the transaction is open.
            (4, req(4, fetch("s", Some(&["t-0"])).stable()), &["#4 fetch s[t-0:UNSTABLE_OFFSET_COMMIT=-1]"]),
        ],
    );
    c.complete_txn(7, true, everywhere);
    run(&mut c, &[(5, req(5, fetch("s", None).stable()), &["#5 fetch s[t-0=12 t-1=8]"])]);
}

#[test]
fn a_transaction_ends_only_in_the_offsets_partition_of_its_marker() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (
                1,
                req(1, txn("g", 7, &[("t-0", 1)])),
                &["persist txn g pid=7 epoch=0: offset t-0=1", "#1 txn-commit t-0:NONE"],
            ),
            (
                1,
                req(2, txn("h", 7, &[("t-0", 2)])),
                &["persist txn h pid=7 epoch=0: offset t-0=2", "#2 txn-commit t-0:NONE"],
            ),
        ],
    );
    c.complete_txn(7, true, |g| g == "h");
    run(
        &mut c,
        &[
            (2, req(3, fetch("g", None).stable()), &["#3 fetch g[]"]),
            (2, req(4, fetch("g", Some(&["t-0"])).stable()), &["#4 fetch g[t-0:UNSTABLE_OFFSET_COMMIT=-1]"]),
            (2, req(5, fetch("h", None).stable()), &["#5 fetch h[t-0=2]"]),
        ],
    );
    c.complete_txn(7, true, |g| g == "g");
    run(&mut c, &[(3, req(6, fetch("g", None).stable()), &["#6 fetch g[t-0=1]"])]);
}

#[test]
fn members_of_an_older_generation_are_fenced() {
    let mut c = coordinator();
    form_with(&mut c, vec![join("a", "").instance("ia"), join("b", "")]);
    const WRITE: &str = "persist txn g pid=7 epoch=0: offset t-0=1";
    run(
        &mut c,
        &[
            (6100, req(1, txn("g", 7, &[("t-0", 1)]).member("b-2", 1)), &[WRITE, "#1 txn-commit t-0:NONE"]),
            (
                6100,
                req(2, txn("g", 7, &[("t-0", 1)]).member("ia-1", 1).instance("ia")),
                &[WRITE, "#2 txn-commit t-0:NONE"],
            ),
            // v0-2 clients name no member: taken from anyone, as in Kafka.
            (6100, req(3, txn("g", 7, &[("t-0", 1)])), &[WRITE, "#3 txn-commit t-0:NONE"]),
            (6200, req(4, txn("g", 7, &[("t-0", 1)]).member("b-2", 0)), &["#4 txn-commit t-0:ILLEGAL_GENERATION"]),
            (6200, req(5, txn("g", 7, &[("t-0", 1)]).member("zz-9", 1)), &["#5 txn-commit t-0:UNKNOWN_MEMBER_ID"]),
            (6200, req(6, txn("g", 7, &[("t-0", 1)]).member("", 1)), &["#6 txn-commit t-0:UNKNOWN_MEMBER_ID"]),
            (
                6200,
                req(7, txn("g", 7, &[("t-0", 1)]).member("ia-0", 1).instance("ia")),
                &["#7 txn-commit t-0:FENCED_INSTANCE_ID"],
            ),
            (6200, req(8, txn("", 7, &[("t-0", 1)])), &["#8 txn-commit t-0:INVALID_GROUP_ID"]),
            // A member of a group that does not exist: refused, and no group appears.
            (6300, req(9, txn("x", 7, &[("t-0", 1)]).member("m-1", 1)), &["#9 txn-commit t-0:UNKNOWN_MEMBER_ID"]),
            (6300, req(10, ListGroups::default()), &["#10 list g:consumer:Stable"]),
            // A rebalance does not stop transactional commits of the current generation.
            (6400, req(11, join("c", "")), &[]),
            (
                6500,
                req(12, txn("g", 7, &[("t-0", 2)]).member("b-2", 1)),
                &["persist txn g pid=7 epoch=0: offset t-0=2", "#12 txn-commit t-0:NONE"],
            ),
        ],
    );
}

#[test]
fn metadata_too_large_is_refused_per_partition() {
    let mut c = coordinator();
    let mut big = txn("s", 7, &[("t-0", 1), ("t-1", 2)]);
    big.offsets[1].metadata = Some("x".repeat(4097));
    let mut all_big = txn("s", 7, &[("t-1", 2)]);
    all_big.offsets[0].metadata = Some("x".repeat(4097));
    run(
        &mut c,
        &[
            (
                1,
                req(1, big),
                &["persist txn s pid=7 epoch=0: offset t-0=1", "#1 txn-commit t-0:NONE t-1:OFFSET_METADATA_TOO_LARGE"],
            ),
            // Nothing to write: no write.
            (1, req(2, all_big), &["#2 txn-commit t-1:OFFSET_METADATA_TOO_LARGE"]),
        ],
    );
}

#[test]
fn a_failed_write_leaves_nothing_pending() {
    let mut c = coordinator();
    let effects = c.step(1, RequestId(1), txn("s", 7, &[("t-0", 5)]).into());
    assert!(matches!(effects[0], Effect::PersistTxn(_)), "{effects:?}");
    // The driver did not call txn_written: the write failed.
    run(
        &mut c,
        &[
            (2, req(2, fetch("s", Some(&["t-0"])).stable()), &["#2 fetch s[t-0=-1]"]),
            (2, req(3, ListGroups::default()), &["#3 list"]),
        ],
    );
    c.complete_txn(7, true, everywhere);
    run(&mut c, &[(3, req(4, fetch("s", None)), &["#4 fetch s[]"])]);
}

#[test]
fn deleting_offsets_or_the_group_drops_pending_ones_with_tombstones() {
    let mut c = coordinator();
    run(
        &mut c,
        &[
            (
                1,
                req(1, txn("s", 7, &[("t-0", 1), ("t-1", 2)])),
                &["persist txn s pid=7 epoch=0: offset t-0=1; offset t-1=2", "#1 txn-commit t-0:NONE t-1:NONE"],
            ),
            (
                2,
                req(2, OffsetDelete { group_id: "s".into(), partitions: vec![part("t-0")] }),
                &["persist s: offset t-0=tombstone", "#2 offset-delete NONE t-0:NONE"],
            ),
            (
                3,
                req(3, fetch("s", Some(&["t-0", "t-1"])).stable()),
                &["#3 fetch s[t-0=-1 t-1:UNSTABLE_OFFSET_COMMIT=-1]"],
            ),
            (
                4,
                req(4, DeleteGroups { group_ids: vec!["s".into()] }),
                &["persist s: offset t-1=tombstone", "#4 delete s:NONE"],
            ),
            (5, req(5, ListGroups::default()), &["#5 list"]),
        ],
    );
    // The transaction's commit finds nothing left.
    c.complete_txn(7, true, everywhere);
    run(&mut c, &[(6, req(6, fetch("s", None)), &["#6 fetch s[]"])]);
}

/// A log of what the driver writes: records, transactional batches and markers.
#[derive(Default)]
struct Log(Vec<LogEntry>);

impl Log {
    /// Carry out a row's effects as the driver does (every write succeeds) and check them.
    fn step(&mut self, c: &mut GroupCoordinator, at: i64, input: Input, want: &[&str]) {
        let effects = match input {
            Input::Req(id, r) => c.step(at, RequestId(id), r),
            Input::Tick => c.tick(at),
        };
        let got: Vec<String> = effects.iter().map(summary).collect();
        assert_eq!(got, want, "t={at}");
        for e in effects {
            let position = self.0.len() as i64;
            match e {
                Effect::Persist { records, .. } => self.push(position, None, records),
                Effect::PersistTxn(w) => {
                    c.txn_written(&w);
                    self.push(position, Some(w.producer_id), w.records);
                }
                Effect::Respond { .. } => {}
            }
        }
    }

    fn push(&mut self, position: i64, producer_id: Option<i64>, records: Vec<Record>) {
        for record in records {
            self.0.push(LogEntry::Record { position, producer_id, record });
        }
    }

    fn end_txn(&mut self, c: &mut GroupCoordinator, producer_id: i64, commit: bool) {
        self.0.push(LogEntry::Marker { producer_id, commit });
        c.complete_txn(producer_id, commit, everywhere);
    }
}

#[test]
fn replaying_the_log_restores_committed_and_pending_transactional_offsets() {
    let mut c = coordinator();
    let mut log = Log::default();
    log.step(
        &mut c,
        1,
        req(1, commit("s", "", -1, &[("t-0", 1), ("t-1", 1)])),
        &["persist s: offset t-0=1; offset t-1=1", "#1 commit t-0:NONE t-1:NONE"],
    );
    // Producer 7 commits t-0 (but t-1 is committed again after it), producer 8 aborts,
    // producer 9 stays open, and t-3 of producer 7 is deleted before its commit.
    log.step(
        &mut c,
        2,
        req(2, txn("s", 7, &[("t-0", 7), ("t-1", 7), ("t-3", 7)])),
        &[
            "persist txn s pid=7 epoch=0: offset t-0=7; offset t-1=7; offset t-3=7",
            "#2 txn-commit t-0:NONE t-1:NONE t-3:NONE",
        ],
    );
    log.step(
        &mut c,
        3,
        req(3, txn("s", 8, &[("t-2", 8)])),
        &["persist txn s pid=8 epoch=0: offset t-2=8", "#3 txn-commit t-2:NONE"],
    );
    log.step(&mut c, 4, req(4, commit("s", "", -1, &[("t-1", 2)])), &["persist s: offset t-1=2", "#4 commit t-1:NONE"]);
    log.step(
        &mut c,
        5,
        req(5, OffsetDelete { group_id: "s".into(), partitions: vec![part("t-3")] }),
        &["persist s: offset t-3=tombstone", "#5 offset-delete NONE t-3:NONE"],
    );
    log.end_txn(&mut c, 7, true);
    log.end_txn(&mut c, 8, false);
    log.step(
        &mut c,
        6,
        req(6, txn("s", 9, &[("t-1", 9)])),
        &["persist txn s pid=9 epoch=0: offset t-1=9", "#6 txn-commit t-1:NONE"],
    );
    // A group with nothing but an open transaction's offsets.
    log.step(
        &mut c,
        7,
        req(7, txn("p", 9, &[("t-0", 9)])),
        &["persist txn p pid=9 epoch=0: offset t-0=9", "#7 txn-commit t-0:NONE"],
    );

    let mut loaded = coordinator();
    loaded.load(10, log.0.clone());
    let queries: Vec<Request> = vec![
        fetch("s", Some(&["t-0", "t-1", "t-2", "t-3"])).into(),
        fetch("s", Some(&["t-0", "t-1", "t-2", "t-3"])).stable().into(),
        fetch("p", Some(&["t-0"])).stable().into(),
        ListGroups::default().into(),
    ];
    let want = [
        "#0 fetch s[t-0=7 t-1=2 t-2=-1 t-3=-1]",
        "#1 fetch s[t-0=7 t-1:UNSTABLE_OFFSET_COMMIT=-1 t-2=-1 t-3=-1]",
        "#2 fetch p[t-0:UNSTABLE_OFFSET_COMMIT=-1]",
        "#3 list p::Empty s::Empty",
    ];
    for ((i, q), want) in queries.into_iter().enumerate().zip(want) {
        let (a, b) = (c.step(10, RequestId(i as u64), q.clone()), loaded.step(10, RequestId(i as u64), q));
        assert_eq!(a.iter().map(summary).collect::<Vec<_>>(), [want]);
        assert_eq!(a, b);
    }

    // The open transaction completes after the load; a commit after the load is written later
    // than every loaded offset, so it wins over them.
    loaded.complete_txn(9, true, everywhere);
    run(
        &mut loaded,
        &[
            (11, req(10, fetch("s", None).stable()), &["#10 fetch s[t-0=7 t-1=9]"]),
            (11, req(11, fetch("p", None).stable()), &["#11 fetch p[t-0=9]"]),
            (
                12,
                req(12, txn("s", 10, &[("t-0", 10)])),
                &["persist txn s pid=10 epoch=0: offset t-0=10", "#12 txn-commit t-0:NONE"],
            ),
        ],
    );
    loaded.complete_txn(10, true, everywhere);
    run(&mut loaded, &[(13, req(13, fetch("s", Some(&["t-0"]))), &["#13 fetch s[t-0=10]"])]);
}

#[test]
fn replay_follows_markers_tombstones_and_positions() {
    let offset = |o| OffsetValue { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 };
    let rec = |position, producer_id, group: &str, p: &str, o: Option<i64>| LogEntry::Record {
        position,
        producer_id,
        record: Record::Offset { group_id: group.into(), partition: part(p), value: o.map(offset) },
    };
    let marker = |producer_id, commit| LogEntry::Marker { producer_id, commit };
    let mut c = coordinator();
    c.load(
        0,
        vec![
            // Two records of one transactional batch share its position.
            rec(0, Some(1), "g", "t-0", Some(10)),
            rec(0, Some(1), "g", "t-1", Some(11)),
            rec(2, None, "g", "t-1", Some(5)),
            // A tombstone inside a transaction undoes its earlier offset.
            rec(3, Some(2), "g", "t-2", Some(20)),
            rec(4, Some(2), "g", "t-2", None),
            marker(1, true),
            marker(2, true),
            // The group is deleted: its open transaction's offsets go with it.
            rec(6, Some(3), "h", "t-0", Some(30)),
            LogEntry::Record {
                position: 7,
                producer_id: None,
                record: Record::Group { group_id: "h".into(), value: None },
            },
            marker(3, true),
            // Aborted, then open.
            rec(9, Some(4), "k", "t-0", Some(40)),
            marker(4, false),
            rec(11, Some(4), "k", "t-0", Some(41)),
        ],
    );
    run(
        &mut c,
        &[
            (1, req(1, fetch("g", None)), &["#1 fetch g[t-0=10 t-1=5]"]),
            (1, req(2, fetch("h", None)), &["#2 fetch h[]"]),
            (1, req(3, fetch("k", Some(&["t-0"])).stable()), &["#3 fetch k[t-0:UNSTABLE_OFFSET_COMMIT=-1]"]),
            (1, req(4, ListGroups::default()), &["#4 list g::Empty k::Empty"]),
        ],
    );
    c.complete_txn(4, true, everywhere);
    run(&mut c, &[(2, req(5, fetch("k", None)), &["#5 fetch k[t-0=41]"])]);
}
