//! `rill groups list|describe|reset-offsets` against a real broker: the describe columns and
//! lag, every reset strategy with --dry-run (nothing changes) and --execute, the refusal to
//! reset an active group, and one-line errors for bad arguments.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, JoinGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;
use rill_core::client::{Admin, Client, ClientConfig, Connection, GroupOffsets};
use rill_core::consumer::assignor::wire::{Assignment, Subscription};
use rill_core::error::Error;

use common::{fails, ok};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// `n` records (values 1..=n) into one partition with `rill produce`.
fn produce(b: &str, topic: &str, partition: i32, n: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["produce", "--bootstrap", b, "--topic", topic, "--partition", &partition.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines: String = (1..=n).map(|i| format!("{i}\n")).collect();
    child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "rill produce to {topic}-{partition}");
}

fn offsets(pairs: &[(&str, i32, i64)]) -> GroupOffsets {
    pairs.iter().map(|(t, p, o)| ((t.to_string(), *p), *o)).collect()
}

/// Commit as an outsider with the admin client (the group must have no members).
fn commit(b: &str, group: &str, pairs: &[(&str, i32, i64)]) -> Result<(), Error> {
    rt().block_on(async {
        let client = Client::connect(ClientConfig::new(b)).await?;
        Admin::new(&client).alter_consumer_group_offsets(group, &offsets(pairs)).await
    })
}

fn committed(b: &str, group: &str) -> GroupOffsets {
    rt().block_on(async {
        let client = Client::connect(ClientConfig::new(b)).await.unwrap();
        Admin::new(&client).list_consumer_group_offsets(group).await.unwrap()
    })
}

const DESCRIBE_HEADER: [&str; 9] =
    ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"];

/// The rows of a table, split on whitespace, after checking the header and that every cell
/// starts where its header does (the cells themselves have no spaces here).
fn table(out: &str, header: &[&str]) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let head = lines.next().expect("a header line");
    assert_eq!(head.split_whitespace().collect::<Vec<_>>(), header, "{out}");
    let starts: Vec<usize> = header.iter().map(|h| head.find(h).unwrap()).collect();
    lines
        .map(|l| {
            let cells: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            assert_eq!(cells.len(), header.len(), "row {l:?} in\n{out}");
            let mut at = 0;
            for (cell, start) in cells.iter().zip(&starts) {
                let pos = at + l[at..].find(cell.as_str()).unwrap();
                assert_eq!(pos, *start, "cell {cell:?} of {l:?} is not under its header in\n{out}");
                at = pos + cell.len();
            }
            cells
        })
        .collect()
}

/// `describe` rows keyed by (topic, partition) -> (current, log end, lag, consumer, host, client).
fn describe(b: &str, group: &str) -> BTreeMap<(String, String), Vec<String>> {
    let out = ok(&["groups", "--bootstrap", b, "describe", "--group", group]);
    table(&out, &DESCRIBE_HEADER)
        .into_iter()
        .map(|r| {
            assert_eq!(r[0], group);
            ((r[1].clone(), r[2].clone()), r[3..].to_vec())
        })
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

#[test]
fn describe_shows_offsets_and_lag_as_it_grows_and_shrinks() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "events", "--partitions", "2"]);
    produce(b, "events", 0, 10);
    produce(b, "events", 1, 4);

    let e = fails(&["groups", "--bootstrap", b, "describe", "--group", "nobody"]);
    assert!(e.contains("'nobody'") && e.contains("does not exist"), "{e}");

    commit(b, "lagging", &[("events", 0, 3), ("events", 1, 4)]).unwrap();
    assert!(ok(&["groups", "--bootstrap", b, "list"]).lines().any(|l| l == "lagging"));
    let d = describe(b, "lagging");
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[&("events".into(), "0".into())], row(&["3", "10", "7", "-", "-", "-"]));
    assert_eq!(d[&("events".into(), "1".into())], row(&["4", "4", "0", "-", "-", "-"]));

    // The consumer stalls while records keep coming: lag grows.
    produce(b, "events", 0, 5);
    produce(b, "events", 1, 2);
    let d = describe(b, "lagging");
    assert_eq!(d[&("events".into(), "0".into())], row(&["3", "15", "12", "-", "-", "-"]));
    assert_eq!(d[&("events".into(), "1".into())], row(&["4", "6", "2", "-", "-", "-"]));

    // It resumes and commits: lag shrinks.
    commit(b, "lagging", &[("events", 0, 13), ("events", 1, 6)]).unwrap();
    let d = describe(b, "lagging");
    assert_eq!(d[&("events".into(), "0".into())], row(&["13", "15", "2", "-", "-", "-"]));
    assert_eq!(d[&("events".into(), "1".into())], row(&["6", "6", "0", "-", "-", "-"]));

    // Offsets deleted for one partition disappear from describe.
    rt().block_on(async {
        let client = Client::connect(ClientConfig::new(b)).await.unwrap();
        let admin = Admin::new(&client);
        admin.delete_consumer_group_offsets("lagging", &[("events".into(), 1)]).await.unwrap();
    });
    let d = describe(b, "lagging");
    assert_eq!(d.keys().cloned().collect::<Vec<_>>(), vec![("events".to_string(), "0".to_string())]);
}

/// Run reset-offsets with `args`; returns NEW-OFFSET per partition listed (in partition order).
fn reset(b: &str, group: &str, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["groups", "--bootstrap", b, "reset-offsets", "--group", group];
    all.extend_from_slice(args);
    let out = ok(&all);
    let rows = table(&out, &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    let partitions: Vec<i32> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(partitions.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(rows.iter().all(|r| r[0] == group), "{out}");
    rows.iter().map(|r| r[3].parse().unwrap()).collect()
}

fn current(b: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c = committed(b, group);
    (0..partitions).map(|p| c.get(&(topic.to_string(), p)).copied().unwrap_or(-1)).collect()
}

/// UTC `YYYY-MM-DDTHH:mm:SS.sssZ` for ms since the epoch.
fn utc_string(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn every_reset_strategy_dry_run_then_execute() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    let g = "resetting";
    ok(&["topics", "--bootstrap", b, "create", "r", "--partitions", "2"]);
    // Partition 0: 5 old records, then (after `middle`) 5 new ones; partition 1: 6 old ones.
    produce(b, "r", 0, 5);
    produce(b, "r", 1, 6);
    std::thread::sleep(Duration::from_millis(1500));
    let middle = now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    produce(b, "r", 0, 5);
    // Partition 0 starts at 2 after DeleteRecords, so earliest is not 0.
    rt().block_on(async {
        let client = Client::connect(ClientConfig::new(b)).await.unwrap();
        assert_eq!(Admin::new(&client).delete_records("r", 0, 2).await.unwrap(), 2);
    });
    commit(b, g, &[("r", 0, 5), ("r", 1, 2)]).unwrap();

    let middle_s = utc_string(middle);
    let cases: Vec<(Vec<&str>, Vec<i64>)> = vec![
        (vec!["--to-earliest"], vec![2, 0]),
        (vec!["--to-latest"], vec![10, 6]),
        (vec!["--to-offset", "4"], vec![4, 4]),
        (vec!["--to-current"], vec![4, 4]),
        (vec!["--to-offset", "8"], vec![8, 6]),
        (vec!["--shift-by", "-3"], vec![5, 3]),
        (vec!["--shift-by", "-100"], vec![2, 0]),
        (vec!["--shift-by", "5"], vec![7, 5]),
        (vec!["--to-offset", "0"], vec![2, 0]),
        (vec!["--shift-by", "100"], vec![10, 6]),
        // The first record at or after `middle` on 0; none on 1, so its log end.
        (vec!["--to-datetime", middle_s.as_str()], vec![5, 6]),
        (vec!["--to-datetime", "2000-01-01T00:00:00.000"], vec![2, 0]),
        (vec!["--to-datetime", "2999-01-01T00:00:00.000"], vec![10, 6]),
        (vec!["--by-duration", "P1D"], vec![2, 0]),
        (vec!["--by-duration", "PT0S"], vec![10, 6]),
    ];
    for (strategy, want) in cases {
        let before = current(b, g, "r", 2);
        let mut args = vec!["--topic", "r"];
        args.extend_from_slice(&strategy);
        let dry = reset(b, g, &[args.as_slice(), &["--dry-run"]].concat());
        assert_eq!(dry, want, "{strategy:?} --dry-run");
        assert_eq!(current(b, g, "r", 2), before, "{strategy:?} --dry-run changed offsets");
        let done = reset(b, g, &[args.as_slice(), &["--execute"]].concat());
        assert_eq!(done, want, "{strategy:?} --execute");
        assert_eq!(current(b, g, "r", 2), want, "{strategy:?} --execute committed");
    }

    // The partitions named; --all-topics means every partition with a committed offset.
    commit(b, g, &[("r", 0, 6), ("r", 1, 1)]).unwrap();
    assert_eq!(reset(b, g, &["--topic", "r:1", "--to-latest", "--execute"]), vec![6]);
    assert_eq!(current(b, g, "r", 2), vec![6, 6]);
    assert_eq!(reset(b, g, &["--all-topics", "--to-earliest", "--execute"]), vec![2, 0]);
    assert_eq!(current(b, g, "r", 2), vec![2, 0]);

    // Java's spelling of a duration, as in the kafka-consumer-groups.sh docs.
    assert_eq!(reset(b, g, &["--topic", "r", "--by-duration", "PT0H30M0S", "--dry-run"]), vec![2, 0]);
}

/// A member joined and synced by hand (JoinGroup v3, SyncGroup v3), owning `owned`.
async fn join_member(b: &str, group: &str, owned: Vec<(String, i32)>) -> (Connection, String) {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let mut config = ClientConfig::new(b);
    config.client_id = "groups-test-client".into();
    let client = Client::connect(config).await.unwrap();
    let coord = client.group_coordinator(group).await.unwrap();
    let topics: Vec<String> = owned.iter().map(|(t, _)| t.clone()).collect();
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(60_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Subscription::new(topics).encode().unwrap())]);
    let resp = coord.call(join, 3).await.unwrap();
    assert_eq!(resp.error_code, 0, "join");
    let me = resp.member_id.to_string();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(resp.generation_id)
        .with_member_id(s(&me))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&me))
            .with_assignment(Assignment::new(owned).encode().unwrap())]);
    let resp = coord.call(sync, 3).await.unwrap();
    assert_eq!(resp.error_code, 0, "sync");
    (coord, me)
}

#[test]
fn an_active_group_is_described_with_its_members_and_not_reset() {
    let broker = common::BrokerProc::start(&["group.initial.rebalance.delay.ms=0"]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "a", "--partitions", "3"]);
    produce(b, "a", 0, 4);
    produce(b, "a", 2, 3);
    commit(b, "busy", &[("a", 2, 1)]).unwrap();

    let runtime = rt();
    let (_conn, member) = runtime.block_on(join_member(b, "busy", vec![("a".into(), 0), ("a".into(), 1)]));

    let d = describe(b, "busy");
    assert_eq!(d.len(), 3, "{d:?}");
    let p0 = &d[&("a".into(), "0".into())];
    assert_eq!(p0[..3], row(&["-", "4", "-"]), "no committed offset: no lag");
    assert_eq!(p0[3], member);
    assert!(p0[4].contains("127.0.0.1"), "host {:?}", p0[4]);
    assert_eq!(p0[5], "groups-test-client");
    assert_eq!(d[&("a".into(), "1".into())][..4], row(&["-", "0", "-", member.as_str()]));
    assert_eq!(d[&("a".into(), "2".into())], row(&["1", "3", "2", "-", "-", "-"]), "unowned");

    let described = runtime.block_on(async {
        let client = Client::connect(ClientConfig::new(b)).await.unwrap();
        let admin = Admin::new(&client);
        let err = admin.alter_consumer_group_offsets("busy", &offsets(&[("a", 2, 0)])).await.unwrap_err();
        assert!(matches!(err, Error::GroupActive(_)), "{err}");
        assert_eq!(err.to_string(), "group 'busy' is active; stop its consumers first");
        let listed = admin.list_groups().await.unwrap();
        assert!(listed.iter().any(|g| g.group_id == "busy" && g.protocol_type == "consumer" && g.state == "Stable"));
        admin.describe_groups(&["busy".into()]).await.unwrap().remove(0)
    });
    assert_eq!((described.state.as_str(), described.protocol.as_str()), ("Stable", "range"));
    assert_eq!(described.members[0].assignment, vec![("a".to_string(), 0), ("a".to_string(), 1)]);

    let e = fails(&[
        "groups",
        "--bootstrap",
        b,
        "reset-offsets",
        "--group",
        "busy",
        "--all-topics",
        "--to-earliest",
        "--execute",
    ]);
    assert!(e.contains("'busy'") && e.contains("stop its consumers first"), "{e}");
    assert_eq!(current(b, "busy", "a", 3), vec![-1, -1, 1]);
    // A dry run still shows what would happen.
    assert_eq!(reset(b, "busy", &["--all-topics", "--to-latest", "--dry-run"]), vec![3]);
    let e = fails(&["groups", "--bootstrap", b, "delete", "--group", "busy"]);
    assert!(e.contains("NON_EMPTY_GROUP"), "{e}");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "x", "--partitions", "2"]);
    commit(b, "g", &[("x", 0, 0)]).unwrap();
    let base = ["groups", "--bootstrap", b, "reset-offsets", "--group", "g"];
    let run = |extra: &[&str]| fails(&[base.as_slice(), extra].concat());

    let e = run(&["--topic", "x", "--dry-run"]);
    assert!(e.contains("needs a strategy"), "{e}");
    let e = run(&["--topic", "x", "--to-earliest", "--to-latest", "--dry-run"]);
    assert!(e.contains("one strategy"), "{e}");
    let e = run(&["--topic", "x", "--to-earliest"]);
    assert!(e.contains("--dry-run") && e.contains("--execute"), "{e}");
    let e = run(&["--topic", "x", "--to-earliest", "--dry-run", "--execute"]);
    assert!(e.contains("not both"), "{e}");
    let e = run(&["--to-earliest", "--dry-run"]);
    assert!(e.contains("--all-topics"), "{e}");
    let e = run(&["--topic", "x", "--all-topics", "--to-earliest", "--dry-run"]);
    assert!(e.contains("--all-topics"), "{e}");
    let e = run(&["--topic", "x", "--to-datetime", "yesterday", "--dry-run"]);
    assert!(e.contains("'yesterday'") && e.contains("2024-05-01T12:30:00.000"), "{e}");
    let e = run(&["--topic", "x", "--by-duration", "30m", "--dry-run"]);
    assert!(e.contains("'30m'") && e.contains("PT30M"), "{e}");
    let e = run(&["--topic", "x", "--shift-by", "ten", "--dry-run"]);
    assert!(e.contains("'ten'"), "{e}");
    let e = run(&["--topic", "x", "--to-offset", "-1", "--dry-run"]);
    assert!(e.contains("negative"), "{e}");
    let e = run(&["--topic", "x:0,z", "--to-earliest", "--dry-run"]);
    assert!(e.contains("'z'"), "{e}");
    let e = run(&["--topic", "x:5", "--to-earliest", "--dry-run"]);
    assert!(e.contains("no partition 5"), "{e}");
    let e = run(&["--topic", "missing", "--to-earliest", "--dry-run"]);
    assert!(e.contains("'missing'") && e.contains("does not exist"), "{e}");
    let e = fails(&[
        "groups",
        "--bootstrap",
        b,
        "reset-offsets",
        "--group",
        "none",
        "--all-topics",
        "--to-earliest",
        "--dry-run",
    ]);
    assert!(e.contains("no committed offsets"), "{e}");
    let e = fails(&["groups", "--bootstrap", "127.0.0.1:1", "list"]);
    assert!(e.contains("127.0.0.1:1"), "{e}");
}

/// A real consumer that stalls (stays in the group but stops polling) shows its lag growing in
/// `rill groups describe`, and shrinking to zero when it resumes and commits.
#[test]
fn a_stalled_consumer_shows_growing_lag_that_shrinks_when_it_resumes() {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;
    use rill_core::consumer::{Consumer, ConsumerConfig};
    use rill_core::records::{encode_batch, ProducerRecord};
    let broker = common::BrokerProc::start(&["group.initial.rebalance.delay.ms=0"]);
    let b = broker.addr.clone();
    ok(&["topics", "--bootstrap", &b, "create", "lagged", "--partitions", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The consumer spawns its group task from `subscribe`: run inside the runtime.
    let _in_runtime = rt.enter();
    let client = rt.block_on(Client::connect(ClientConfig::new(b.as_str()))).unwrap();
    let produce = |n: usize| {
        let recs: Vec<ProducerRecord> = (0..n)
            .map(|i| ProducerRecord { value: Some(Bytes::from(format!("v{i}"))), ..Default::default() })
            .collect();
        rt.block_on(client.produce("lagged", 0, encode_batch(&recs, Compression::None, 0).unwrap(), -1)).unwrap();
    };
    let lag = |expected_end: &str| -> (String, String, String) {
        let rows = describe(&b, "lg");
        let r = rows.get(&("lagged".to_string(), "0".to_string())).expect("a row for lagged-0");
        assert_eq!(r[1], expected_end, "LOG-END-OFFSET");
        assert!(r[3].starts_with("rill-lag"), "the stalled member is still listed as the owner: {r:?}");
        (r[0].clone(), r[1].clone(), r[2].clone())
    };
    let mut consumer = rt
        .block_on(Consumer::new(
            ConsumerConfig::from_properties([
                ("bootstrap.servers", b.as_str()),
                ("group.id", "lg"),
                ("client.id", "rill-lag"),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
            ])
            .unwrap(),
        ))
        .unwrap();
    consumer.subscribe(["lagged"]).unwrap();
    let read_to = |consumer: &mut Consumer, n: usize| {
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while got < n {
            assert!(std::time::Instant::now() < deadline, "read {got} of {n}");
            got += rt.block_on(consumer.poll(std::time::Duration::from_millis(200))).unwrap().len();
        }
        rt.block_on(consumer.commit_sync()).unwrap();
    };
    produce(100);
    read_to(&mut consumer, 100);
    assert_eq!(lag("100"), ("100".into(), "100".into(), "0".into()));
    // Stalled: no polls, but the member's heartbeats keep it in the group.
    produce(50);
    assert_eq!(lag("150"), ("100".into(), "150".into(), "50".into()));
    produce(30);
    assert_eq!(lag("180"), ("100".into(), "180".into(), "80".into()), "lag grows while it is stalled");
    read_to(&mut consumer, 80);
    assert_eq!(lag("180"), ("180".into(), "180".into(), "0".into()), "lag gone once it resumes and commits");
    rt.block_on(consumer.close()).unwrap();
}
