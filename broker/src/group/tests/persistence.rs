//! The `__consumer_offsets` records: their format, and rebuilding state from them.

use super::*;

fn group_value() -> GroupValue {
    GroupValue {
        protocol_type: "consumer".into(),
        generation: 7,
        protocol: Some("range".into()),
        leader: Some("ia-1".into()),
        current_state_timestamp_ms: 1_700_000_000_000,
        members: vec![
            MemberValue {
                member_id: "ia-1".into(),
                group_instance_id: Some("ia".into()),
                client_id: "a".into(),
                client_host: "/10.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: encode_subscription(&["t"]),
                assignment: Bytes::from_static(b"p0"),
            },
            MemberValue {
                member_id: "b-2".into(),
                group_instance_id: None,
                client_id: "b".into(),
                client_host: "/10.0.0.2".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::new(),
                assignment: Bytes::new(),
            },
        ],
    }
}

#[test]
fn records_round_trip() {
    let empty = GroupValue {
        protocol_type: String::new(),
        generation: 3,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: Vec::new(),
    };
    let offset = OffsetValue { offset: 42, leader_epoch: 5, metadata: "héllo".into(), commit_timestamp_ms: 99 };
    let records = [
        Record::Offset { group_id: "g".into(), partition: part("t-1"), value: Some(offset) },
        Record::Offset { group_id: "g".into(), partition: part("t-1"), value: None },
        Record::Group { group_id: "g".into(), value: Some(group_value()) },
        Record::Group { group_id: "g".into(), value: Some(empty) },
        Record::Group { group_id: "".into(), value: None },
    ];
    for r in records {
        let (key, value) = (r.encode_key(), r.encode_value());
        assert_eq!(value.is_none(), r.is_tombstone());
        assert_eq!(Record::decode(&key, value.as_deref()), Ok(r.clone()), "{r:?}");
    }
}

#[test]
fn offset_records_have_kafkas_layout() {
    let r = Record::Offset {
        group_id: "g".into(),
        partition: part("t-1"),
        value: Some(OffsetValue { offset: 2, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 3 }),
    };
    assert_eq!(&r.encode_key()[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
    let value: &[u8] = &[0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    assert_eq!(r.encode_value().as_deref(), Some(value));
    // Key version 0 has the same layout.
    assert_eq!(Record::decode(&[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1], Some(value)), Ok(r));
    let g = Record::Group { group_id: "g".into(), value: None };
    assert_eq!(&g.encode_key()[..], &[0, 2, 0, 1, b'g']);
}

#[test]
fn malformed_records_are_refused() {
    let good = Record::Group { group_id: "g".into(), value: Some(group_value()) };
    let (key, value) = (good.encode_key(), good.encode_value().unwrap());
    let mut trailing = value.to_vec();
    trailing.push(0);
    let mut huge_count = value[..].to_vec();
    // protocol type (2+8), generation (4), protocol (2+5), leader (2+4), timestamp (8): the count follows.
    let count_at = 2 + 10 + 4 + 7 + 6 + 8;
    huge_count[count_at..count_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut bad_utf8 = key.to_vec();
    bad_utf8[4] = 0xff;
    type Case<'a> = (&'a [u8], Option<&'a [u8]>, DecodeError);
    let cases: Vec<Case> = vec![
        (&[0, 7, 0, 0], None, DecodeError::UnknownKeyVersion(7)),
        (&[0, 2, 0, 5, b'g'], None, DecodeError::Malformed("record ends early")),
        (&[0], None, DecodeError::Malformed("record ends early")),
        (&[0, 2, 0xff, 0xff], None, DecodeError::Malformed("null where a string is required")),
        (&bad_utf8, None, DecodeError::Malformed("string is not UTF-8")),
        (&[0, 2, 0, 1, b'g', 9], None, DecodeError::Malformed("trailing bytes")),
        (&key, Some(&[0, 9]), DecodeError::UnknownValueVersion(9)),
        (&key, Some(&value[..value.len() - 1]), DecodeError::Malformed("record ends early")),
        (&key, Some(&trailing), DecodeError::Malformed("trailing bytes")),
        (&key, Some(&huge_count), DecodeError::Malformed("member count exceeds the record")),
    ];
    for (key, value, want) in cases {
        assert_eq!(Record::decode(key, value), Err(want.clone()), "{key:?} {value:?}");
    }
}

#[test]
fn partitions_follow_kafkas_hash() {
    let cases = [("", 50, 0), ("a", 50, 47), ("hello", 50, 22), ("polygenelubricants", 50, 0), ("g", 1, 0)];
    for (group, partitions, want) in cases {
        assert_eq!(partition_for(group, partitions), want, "{group}");
    }
}

/// Records as they come back from the log: encoded and decoded again.
fn through_the_log(records: &[Record]) -> Vec<LogEntry> {
    entries(records.iter().map(|r| Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap()).collect())
}

#[test]
fn load_rebuilds_groups_and_offsets_from_the_records() {
    let mut c = coordinator();
    let (_, mut log) = form_with(&mut c, vec![join("a", "").instance("ia"), join("b", "")]);
    log.extend(run(
        &mut c,
        &[
            (
                6100,
                req(1, commit("g", "ia-1", 1, &[("t-0", 5), ("t-1", 6), ("u-0", 1)])),
                &["persist g: offset t-0=5; offset t-1=6; offset u-0=1", "#1 commit t-0:NONE t-1:NONE u-0:NONE"],
            ),
            (6200, req(2, commit("g", "b-2", 1, &[("t-0", 8)])), &["persist g: offset t-0=8", "#2 commit t-0:NONE"]),
            (
                6300,
                req(3, OffsetDelete { group_id: "g".into(), partitions: vec![part("u-0")] }),
                &["persist g: offset u-0=tombstone", "#3 offset-delete NONE u-0:NONE"],
            ),
            (6400, req(4, commit("s", "", -1, &[("t-0", 7)])), &["persist s: offset t-0=7", "#4 commit t-0:NONE"]),
            // A static member restart rewrites the group record with the new member id.
            (
                6500,
                req(5, join("a", "").instance("ia")),
                &[
                    "persist g: group gen=1 range leader=ia-3 [b-2=p1,ia-3=p0]",
                    "#5 join gen=1 range leader=ia-1 member=ia-3",
                ],
            ),
            // Group e comes and goes; group f stays, empty, with an offset.
            (6600, req(6, join("e", "").group("e")), &[]),
            (9600, tick(), &["#6 join gen=1 range leader=e-4 member=e-4 members=e-4"]),
            (
                9700,
                req(7, leave(&["e-4"]).group("e")),
                &["persist e: group gen=2 - leader=- []", "#7 leave NONE e-4:NONE"],
            ),
            (
                9800,
                req(8, DeleteGroups { group_ids: vec!["e".into()] }),
                &["persist e: group tombstone", "#8 delete e:NONE"],
            ),
            (9900, req(9, join("f", "").group("f")), &[]),
            (12900, tick(), &["#9 join gen=1 range leader=f-5 member=f-5 members=f-5"]),
            (
                13000,
                req(10, leave(&["f-5"]).group("f")),
                &["persist f: group gen=2 - leader=- []", "#10 leave NONE f-5:NONE"],
            ),
            (13100, req(11, commit("f", "", -1, &[("t-0", 3)])), &["persist f: offset t-0=3", "#11 commit t-0:NONE"]),
        ],
    ));

    let mut loaded = coordinator();
    loaded.load(20_000, through_the_log(&log));
    assert_eq!(loaded.snapshot(), c.snapshot());

    // Both answer alike.
    let queries: Vec<Request> = vec![
        ListGroups::default().into(),
        describe(&["g", "s", "e", "f"]).into(),
        fetch("g", None).into(),
        fetch("s", Some(&["t-0", "t-1"])).into(),
        fetch("f", None).into(),
        heartbeat("ia-3", 1).instance("ia").into(),
        heartbeat("ia-1", 1).instance("ia").into(),
    ];
    for (i, q) in queries.into_iter().enumerate() {
        let (a, b) = (c.step(20_000, RequestId(i as u64), q.clone()), loaded.step(20_000, RequestId(i as u64), q));
        assert_eq!(a, b, "{:?}", a.iter().map(summary).collect::<Vec<_>>());
    }

    // Loaded members must heartbeat within their session from the load: nobody does here.
    run(
        &mut loaded,
        &[
            (29_999, tick(), &[]),
            (30_000, tick(), &["persist g: group gen=2 - leader=- []"]),
            (30_001, req(20, describe(&["g"])), &["#20 describe g Empty consumer/ []"]),
        ],
    );
}

#[test]
fn later_records_win_and_loading_replaces_the_groups_named() {
    let offset = |o| Some(OffsetValue { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 });
    let mut c = coordinator();
    run(&mut c, &[(0, req(1, commit("x", "", -1, &[("t-0", 1)])), &["persist x: offset t-0=1", "#1 commit t-0:NONE"])]);
    c.load(
        0,
        entries(vec![
            Record::Offset { group_id: "g".into(), partition: part("t-0"), value: offset(1) },
            Record::Offset { group_id: "g".into(), partition: part("t-0"), value: offset(2) },
            Record::Offset { group_id: "g".into(), partition: part("t-1"), value: offset(3) },
            Record::Offset { group_id: "g".into(), partition: part("t-1"), value: None },
            Record::Group { group_id: "h".into(), value: Some(group_value()) },
            Record::Group { group_id: "h".into(), value: None },
            Record::Offset { group_id: "x".into(), partition: part("t-5"), value: offset(9) },
        ]),
    );
    run(
        &mut c,
        &[
            (1, req(2, ListGroups::default()), &["#2 list g::Empty x::Empty"]),
            (1, req(3, fetch("g", None)), &["#3 fetch g[t-0=2]"]),
            (1, req(4, fetch("x", None)), &["#4 fetch x[t-5=9]"]),
        ],
    );
    c.load(2, entries(vec![Record::Group { group_id: "h".into(), value: Some(group_value()) }]));
    run(&mut c, &[(3, req(5, describe(&["h"])), &["#5 describe h Stable consumer/range [ia-1=p0,b-2=]"])]);
}
