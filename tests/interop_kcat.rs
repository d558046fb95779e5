//! Interop with kcat (librdkafka): 100,000 keyed records with headers over 4 partitions, split
//! across the five compression codecs, read back partition by partition identically and in
//! order; then again after a clean restart and after a kill -9.
//!
//! kcat cannot create topics, so each topic is created by the producer's metadata request
//! (auto-creation with `num.partitions=4`). Every partition gets its own producer run (`-p N`),
//! which makes the expected contents of each partition exact.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{run_ok, seed, BrokerProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PARTITIONS: i32 = 4;
const TOTAL_RECORDS: usize = 100_000;
const PER_PARTITION: usize = TOTAL_RECORDS / (CODECS.len() * PARTITIONS as usize);
const FORMAT: &str = "%k\t%s\t%o\t%h\n";

/// What one partition must read back: one `key\tvalue\toffset\theaders` line per record.
struct Expected {
    topic: String,
    partition: i32,
    lines: Vec<String>,
}

/// Characters of keys and values. Keys never contain the `:` key delimiter; values may (only
/// the first `:` splits). Neither contains a tab or a newline, which the line formats use.
const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :,=-_./";

/// Random text to cut values from (cheap even in debug builds).
fn text_pool(rng: &mut StdRng) -> String {
    (0..64 * 1024).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// A value: mostly short, sometimes empty, sometimes a few kilobytes.
fn random_value<'a>(rng: &mut StdRng, pool: &'a str) -> &'a str {
    let len = match rng.gen_range(0..100) {
        0 => 0,
        1..=2 => rng.gen_range(2_000..20_000),
        _ => rng.gen_range(1..200),
    };
    let start = rng.gen_range(0..pool.len() - len);
    &pool[start..start + len]
}

fn kcat() -> Command {
    Command::new("kcat")
}

/// Start a command with captured output; panic with a hint if the program is missing.
fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (kcat is required; .ci/run installs it)"))
}

/// Wait for a child started by [`spawn`]; panic with its output unless it succeeded.
fn finish(what: &str, child: Child) -> String {
    let out = child.wait_with_output().expect("wait for kcat");
    assert!(
        out.status.success(),
        "{what} failed with {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
}

/// Write one input file per (codec, partition) and produce them all, one kcat per file.
fn produce_all(addr: &str, dir: &Path, rng: &mut StdRng) -> Vec<Expected> {
    let pool = text_pool(rng);
    let mut expected = Vec::new();
    let mut children = Vec::new();
    for codec in CODECS {
        let topic = format!("kcat-{codec}");
        // The metadata request auto-creates the topic with num.partitions partitions.
        let listing = run_ok(kcat().args(["-b", addr, "-L", "-t", &topic]));
        assert!(
            listing.contains(&format!("topic \"{topic}\" with {PARTITIONS} partitions")),
            "auto-created {topic} should have {PARTITIONS} partitions:\n{listing}"
        );
        for partition in 0..PARTITIONS {
            let headers = [
                ("codec", codec.to_string()),
                ("partition", partition.to_string()),
                ("dup", "first".to_string()),
                ("dup", "second".to_string()),
            ];
            let header_text: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut input = String::new();
            let mut lines = Vec::with_capacity(PER_PARTITION);
            for i in 0..PER_PARTITION {
                let key = format!("{codec}-{partition}-{i}-{:x}", rng.gen::<u32>());
                let value = random_value(rng, &pool);
                input.push_str(&format!("{key}:{value}\n"));
                lines.push(format!("{key}\t{value}\t{i}\t{}", header_text.join(",")));
            }
            let file = dir.join(format!("{topic}-{partition}.txt"));
            std::fs::write(&file, input).expect("write kcat input");
            let mut cmd = kcat();
            cmd.args(["-b", addr, "-P", "-t", &topic, "-p", &partition.to_string(), "-K:", "-l", "-z", codec]);
            cmd.args(["-X", "acks=all"]);
            for h in &header_text {
                cmd.args(["-H", h]);
            }
            cmd.arg(&file);
            children.push((format!("kcat producing {topic} [{partition}]"), spawn(&mut cmd)));
            expected.push(Expected { topic: topic.clone(), partition, lines });
        }
    }
    for (what, child) in children {
        finish(&what, child);
    }
    expected
}

/// Consume every partition from the beginning to its end and compare with what was produced.
fn verify_all(addr: &str, expected: &[Expected], phase: &str) {
    let started = Instant::now();
    let children: Vec<_> = expected
        .iter()
        .map(|e| {
            let mut cmd = kcat();
            cmd.args(["-b", addr, "-C", "-t", &e.topic, "-p", &e.partition.to_string()]);
            cmd.args(["-o", "beginning", "-e", "-q", "-f", FORMAT]);
            spawn(&mut cmd)
        })
        .collect();
    let mut per_topic: BTreeMap<&str, usize> = BTreeMap::new();
    for (e, child) in expected.iter().zip(children) {
        let what = format!("{phase}: kcat consuming {} [{}]", e.topic, e.partition);
        let out = finish(&what, child);
        let got: Vec<&str> = out.lines().collect();
        if let Some(i) = (0..got.len().min(e.lines.len())).find(|&i| got[i] != e.lines[i]) {
            panic!("{what}: record {i} differs\n expected: {:?}\n      got: {:?}", e.lines[i], got[i]);
        }
        assert_eq!(got.len(), e.lines.len(), "{what}: wrong number of records");
        *per_topic.entry(&e.topic).or_default() += got.len();
    }
    let total: usize = per_topic.values().sum();
    assert_eq!(total, TOTAL_RECORDS, "{phase}: total records read back");
    eprintln!("{phase}: read back {total} records {per_topic:?} in {:?}", started.elapsed());
}

/// Whether kcat's librdkafka enables lz4 against this broker. librdkafka 2.0.2 gates lz4 on the
/// broker advertising FindCoordinator v0 (a Kafka 0.10 marker) and otherwise sends uncompressed.
fn librdkafka_enables_lz4(addr: &str) -> bool {
    let out = kcat().args(["-b", addr, "-L", "-d", "feature"]).output().expect("run kcat -L");
    let log = String::from_utf8_lossy(&out.stderr);
    if log.contains("Enabling feature LZ4") {
        return true;
    }
    assert!(log.contains("Disabling feature LZ4"), "kcat -d feature did not report the LZ4 feature:\n{log}");
    false
}

/// Every partition's batches carry the codec its producer was asked for.
fn check_codecs(addr: &str, data_dir: &Path, expected: &[Expected]) {
    let lz4 = librdkafka_enables_lz4(addr);
    for e in expected {
        let codec = e.topic.strip_prefix("kcat-").expect("topic name");
        let codec = if codec == "lz4" && !lz4 { "none" } else { codec };
        support::assert_codec(data_dir, &e.topic, e.partition, codec);
    }
    if !lz4 {
        eprintln!("note: kcat's librdkafka sends lz4 batches uncompressed until the broker serves FindCoordinator");
    }
}

#[test]
fn kcat_round_trip_all_codecs_survives_restart_and_kill9() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed("interop_kcat"));
    let inputs = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProc::start(&[&format!("num.partitions={PARTITIONS}")]);
    let addr = broker.addr.clone();

    let expected = produce_all(&addr, inputs.path(), &mut rng);
    eprintln!("produced {TOTAL_RECORDS} records in {:?}", started.elapsed());
    verify_all(&addr, &expected, "after produce");

    check_codecs(&addr, broker.dir(), &expected);

    broker.stop();
    broker.restart();
    verify_all(&addr, &expected, "after clean restart");

    broker.kill9();
    broker.restart();
    verify_all(&addr, &expected, "after kill -9 and restart");

    broker.stop();
    eprintln!("interop_kcat: done in {:?}", started.elapsed());
}
