//! Interop on a three-broker process cluster through a leader's SIGKILL: librdkafka producers
//! with acks=all and idempotence (confluent-kafka for Python, and kcat) write while the leader
//! of a partition is killed with SIGKILL and restarted. Every record the client saw
//! acknowledged is stored afterwards, exactly once (and for confluent-kafka, at the offset its
//! delivery report gave).
//!
//! The kill moment is drawn from the printed seed (`RILL_TEST_SEED` replays it).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster_proc::ProcCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_core::client::{Admin, Client, ClientConfig, Metadata, NewTopic};

const CONVERGE: Duration = Duration::from_secs(30);

fn start(topic: &str, partitions: i32) -> ProcCluster {
    let cluster = ProcCluster::start(3, &["replica.lag.time.max.ms=2000"]);
    let (bootstrap, name) = (cluster.bootstrap(), topic.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = Client::connect(ClientConfig::new(bootstrap)).await.expect("connect");
            let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
            let t = NewTopic { name, partitions, replication_factor: 3, configs };
            Admin::new(&client).create_topics(&[t], false).await.expect("create the topic");
        })
    })
    .join()
    .unwrap();
    cluster.wait_until("full ISRs", CONVERGE, |md| in_sync(md, topic, partitions));
    cluster
}

fn in_sync(md: &Metadata, topic: &str, partitions: i32) -> bool {
    md.brokers.len() == 3
        && md.topics.iter().find(|t| t.name == topic).is_some_and(|t| {
            t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0 && p.isr.len() == 3)
        })
}

/// SIGKILL the leader of `topic`-0, wait for another leader, restart the old one.
fn kill_leader(cluster: &mut ProcCluster, topic: &str) -> i32 {
    let leader = cluster.leader_of(topic, 0).expect("a leader");
    let i = cluster.index(leader);
    cluster.kill9(i);
    cluster.wait_until("a new leader", CONVERGE, |md| {
        md.topics.iter().any(|t| t.name == topic && t.partitions[0].leader >= 0 && t.partitions[0].leader != leader)
    });
    cluster.restart(i);
    leader
}

/// Each value read once; returns value -> (partition, offset).
fn stored_once(cluster: &ProcCluster, topic: &str, partitions: i32) -> HashMap<String, (i32, i64)> {
    let mut stored = HashMap::new();
    for (p, o, v) in cluster.read_all(topic, partitions) {
        if let Some(first) = stored.insert(v.clone(), (p, o)) {
            panic!("duplicate: {v:?} stored at {first:?} and at {p}@{o}");
        }
    }
    stored
}

#[test]
fn confluent_kafka_acks_all_idempotent_survives_a_leader_kill() {
    let mut rng = StdRng::seed_from_u64(common::seed("interop_cluster confluent"));
    let (topic, partitions, count) = ("ic-confluent", 2, 20_000);
    let mut cluster = start(topic, partitions);
    let script = common::interop_script("confluent_cluster.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([&cluster.bootstrap(), topic, &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let kill_after = rng.gen_range(500..count / 2);
    let mut acked: HashMap<String, (i32, i64)> = HashMap::new();
    let mut failed = 0;
    let mut killed = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("the script's output");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["acked", value, p, o] => {
                acked.insert(value.to_string(), (p.parse().unwrap(), o.parse().unwrap()));
            }
            ["failed", ..] => failed += 1,
            _ => eprintln!("confluent_cluster.py: {line}"),
        }
        if killed.is_none() && acked.len() >= kill_after {
            killed = Some(kill_leader(&mut cluster, topic));
        }
    }
    let status = child.wait().unwrap();
    eprintln!(
        "interop_cluster: {} acknowledged, {failed} failed; leader {killed:?} killed after {kill_after} acks",
        acked.len()
    );
    assert!(killed.is_some(), "the leader was never killed: only {} acks", acked.len());
    assert!(status.success(), "confluent_cluster.py exited with {status}");
    cluster.wait_until("full ISRs after the kill", CONVERGE, |md| in_sync(md, topic, partitions));
    let stored = stored_once(&cluster, topic, partitions);
    for (value, at) in &acked {
        match stored.get(value) {
            Some(s) if s == at => {}
            other => panic!("{value:?} acknowledged at {at:?}, stored at {other:?}"),
        }
    }
}

#[test]
fn kcat_acks_all_idempotent_survives_a_leader_kill() {
    let mut rng = StdRng::seed_from_u64(common::seed("interop_cluster kcat"));
    let (topic, count) = ("ic-kcat", 20_000);
    let mut cluster = start(topic, 1);
    let mut child = Command::new("kcat")
        .args(["-P", "-b", &cluster.bootstrap(), "-t", topic, "-p", "0"])
        .args(["-X", "acks=all", "-X", "enable.idempotence=true", "-X", "message.timeout.ms=120000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kcat: {e} (.ci/run installs it)"));
    let kill_at = rng.gen_range(1_000..count - 1_000);
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..count {
        writeln!(stdin, "k-{i:06}").expect("write to kcat");
        if i == kill_at {
            stdin.flush().unwrap();
            kill_leader(&mut cluster, topic);
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // kcat reports each failed delivery on stderr ("Delivery failed for message: ..."); its
    // connection errors while the leader is down are only logs.
    let undelivered = stderr.to_lowercase().contains("delivery failed");
    assert!(out.status.success() && !undelivered, "kcat: {}\n{stderr}", out.status);
    // Every line was acknowledged.
    cluster.wait_until("full ISRs after the kill", CONVERGE, |md| in_sync(md, topic, 1));
    let stored = stored_once(&cluster, topic, 1);
    let missing: Vec<String> = (0..count).map(|i| format!("k-{i:06}")).filter(|v| !stored.contains_key(v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged lines missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(stored.len(), count, "stored records that were never sent");
}
