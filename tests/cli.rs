//! The `rill` command line: `rill topics` through the Kafka protocol against a real broker, and
//! the one-line errors people see when something is wrong.

mod common;

use std::process::{Command, Output};

use common::{fails, ok};

#[test]
fn topics_create_list_describe_alter_delete() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    let out = ok(&[
        "topics",
        "--bootstrap",
        b,
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "cleanup.policy=compact",
    ]);
    assert_eq!(out.trim(), "Created topic orders.");
    ok(&["topics", "--bootstrap", b, "create", "payments"]);
    assert_eq!(ok(&["topics", "--bootstrap", b, "list"]), "orders\npayments\n");

    let d = ok(&["topics", "--bootstrap", b, "describe", "orders"]);
    assert!(d.contains("Topic: orders\tPartitionCount: 3\tReplicationFactor: 1"), "{d}");
    assert!(d.contains("cleanup.policy=compact"), "{d}");
    assert_eq!(d.matches("\tTopic: orders\tPartition: ").count(), 3, "{d}");

    ok(&["topics", "--bootstrap", b, "alter", "orders", "--set", "retention.ms=3600000", "--partitions", "4"]);
    let d = ok(&["topics", "--bootstrap", b, "describe", "orders"]);
    assert!(d.contains("PartitionCount: 4") && d.contains("retention.ms=3600000"), "{d}");
    ok(&["topics", "--bootstrap", b, "alter", "orders", "--delete", "retention.ms"]);
    let d = ok(&["topics", "--bootstrap", b, "describe", "orders"]);
    assert!(d.contains("retention.ms=604800000"), "reset to the default: {d}");

    assert_eq!(ok(&["topics", "--bootstrap", b, "delete", "orders"]).trim(), "Deleted topic orders.");
    assert_eq!(ok(&["topics", "--bootstrap", b, "list"]), "payments\n");
}

#[test]
fn errors_are_one_line_naming_the_problem() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "dup"]);
    let e = fails(&["topics", "--bootstrap", b, "create", "dup"]);
    assert!(e.contains("TOPIC_ALREADY_EXISTS") && e.contains("'dup'"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "create", "bad/name"]);
    assert!(e.contains("INVALID_TOPIC_EXCEPTION") && e.contains("bad/name"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "create", "c", "--config", "cleanup.policy=shred"]);
    assert!(e.contains("INVALID_CONFIG") && e.contains("shred"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "delete", "missing"]);
    assert!(e.contains("UNKNOWN_TOPIC_OR_PARTITION") && e.contains("missing"), "{e}");

    // Nothing listens on port 1.
    let e = fails(&["topics", "--bootstrap", "127.0.0.1:1", "list"]);
    assert!(e.contains("127.0.0.1:1"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let e = fails(&["broker", "--data-dir", d, "--listen", "127.0.0.1:0", "--set", "log.retention.ms=soon"]);
    assert!(e.contains("retention.ms") && e.contains("soon"), "{e}");
    let e = fails(&["broker", "--data-dir", d, "--listen", "127.0.0.1:0", "--set", "no.such.setting=1"]);
    assert!(e.contains("no.such.setting"), "{e}");
}

#[test]
fn consume_prints_records_from_the_beginning() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "events", "--partitions", "2"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = rill_core::client::Client::connect(rill_core::client::ClientConfig::new(b)).await.unwrap();
        for p in 0..2 {
            let recs: Vec<rill_core::records::ProducerRecord> = (0..3)
                .map(|i| rill_core::records::ProducerRecord {
                    key: Some(bytes::Bytes::from(format!("k{p}{i}"))),
                    value: Some(bytes::Bytes::from(format!("v{p}{i}"))),
                    headers: vec![("h".into(), Some(bytes::Bytes::from_static(b"x")))],
                    timestamp: None,
                })
                .collect();
            let batch = rill_core::records::encode_batch(&recs, kafka_protocol::records::Compression::None, 0).unwrap();
            client.produce("events", p, batch, -1).await.unwrap();
        }
    });
    let out = ok(&[
        "consume",
        "--bootstrap",
        b,
        "--topic",
        "events",
        "--from-beginning",
        "--max-messages",
        "6",
        "--print-offset",
        "--print-key",
        "--print-headers",
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "0:0\tk00\tv00\th=x",
            "0:1\tk01\tv01\th=x",
            "0:2\tk02\tv02\th=x",
            "1:0\tk10\tv10\th=x",
            "1:1\tk11\tv11\th=x",
            "1:2\tk12\tv12\th=x"
        ]
    );
    let out = ok(&[
        "consume",
        "--bootstrap",
        b,
        "--topic",
        "events",
        "--partition",
        "1",
        "--from",
        "2",
        "--format",
        "hex",
        "--idle-timeout",
        "300ms",
    ]);
    assert_eq!(out, "763132\n", "value v12 in hex, then idle exit");
    let e = fails(&["consume", "--bootstrap", b, "--topic", "missing", "--from-beginning", "--idle-timeout", "1s"]);
    assert!(e.contains("'missing'") && e.contains("rill topics create"), "{e}");
}

/// Run `rill ARGS` with `input` on standard input.
fn rill_with_input(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rill");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for rill")
}

#[test]
fn produce_reads_lines_and_consume_prints_them_back() {
    let broker = common::BrokerProc::start(&["num.partitions=3"]);
    let b = broker.addr.as_str();
    let input: String = (0..300).map(|i| format!("user-{}:click-{i}\n", i % 7)).collect();
    let out = rill_with_input(
        &["produce", "--bootstrap", b, "--topic", "clicks", "--key-separator", ":", "--header", "src=cli"],
        &input,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 300 records to clicks"));
    let got = ok(&[
        "consume",
        "--bootstrap",
        b,
        "--topic",
        "clicks",
        "--from-beginning",
        "--max-messages",
        "300",
        "--print-key",
        "--print-headers",
    ]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 300);
    // Every record came back, with its header; a key's records keep their order (one partition).
    for k in 0..7 {
        let of_key: Vec<&str> = lines.iter().filter(|l| l.starts_with(&format!("user-{k}\t"))).copied().collect();
        let want: Vec<String> =
            (0..300).filter(|i| i % 7 == k).map(|i| format!("user-{k}\tclick-{i}\tsrc=cli")).collect();
        assert_eq!(of_key, want, "records of user-{k}");
    }
    // Hex input, and one-line errors for bad lines.
    let out = rill_with_input(
        &["produce", "--bootstrap", b, "--topic", "raw", "--partition", "0", "--format", "hex"],
        "00ff\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        ok(&[
            "consume",
            "--bootstrap",
            b,
            "--topic",
            "raw",
            "--from-beginning",
            "--max-messages",
            "1",
            "--format",
            "hex"
        ]),
        "00ff\n"
    );
    let out = rill_with_input(
        &["produce", "--bootstrap", b, "--topic", "raw", "--key-separator", ":"],
        "no separator here\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 1 has no key separator ':'"), "{err}");
    let out = rill_with_input(&["produce", "--bootstrap", b, "--topic", "raw", "--format", "hex"], "xyz1\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not hex"), "{err}");
}

#[test]
fn bad_quorum_voters_are_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let e = fails(&["broker", "--data-dir", d, "--listen", "127.0.0.1:0", "--controller-quorum-voters", "nonsense"]);
    assert!(e.contains("--controller-quorum-voters") && e.contains("'nonsense'") && e.contains("ID@HOST:PORT"), "{e}");
    let e =
        fails(&["broker", "--data-dir", d, "--listen", "127.0.0.1:0", "--set", "controller.quorum.voters=1@x,1@y:1"]);
    assert!(e.contains("controller.quorum.voters") && e.contains("ID@HOST:PORT"), "{e}");
}

#[test]
fn replica_commands_on_a_single_broker() {
    let broker = common::BrokerProc::start(&[]);
    let b = broker.addr.as_str();
    ok(&["topics", "--bootstrap", b, "create", "solo", "--partitions", "2"]);
    let out = ok(&["topics", "--bootstrap", b, "elect-leaders"]);
    assert_eq!(out, "No partition needed a leader election.\n");
    let out = ok(&["topics", "--bootstrap", b, "elect-leaders", "--topic", "solo", "--election-type", "unclean"]);
    assert_eq!(out, "Valid replica already elected for partitions solo-0, solo-1\n");
    assert_eq!(ok(&["topics", "--bootstrap", b, "reassignments"]), "No partition reassignments found.\n");

    let e = fails(&["topics", "--bootstrap", b, "elect-leaders", "--topic", "solo", "--partition", "7"]);
    assert!(e.contains("UNKNOWN_TOPIC_OR_PARTITION") && e.contains("solo-7"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "reassign", "--topic", "solo", "--partition", "0", "--replicas", "5"]);
    assert!(e.contains("INVALID_REPLICA_ASSIGNMENT") && e.contains("solo-0") && e.contains("alone"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "reassign", "--topic", "solo", "--partition", "0", "--cancel"]);
    assert!(e.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{e}");
    let e =
        fails(&["topics", "--bootstrap", b, "reassign", "--topic", "solo", "--partition", "0", "--replicas", "a,b"]);
    assert!(e.contains("--replicas 'a,b'"), "{e}");
    let e = fails(&["topics", "--bootstrap", b, "elect-leaders", "--election-type", "dirty"]);
    assert!(e.contains("'dirty'") && e.contains("preferred or unclean"), "{e}");
}
