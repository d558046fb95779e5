//! Interop with confluent-kafka for Python (librdkafka): 100,000 keyed records with headers and
//! timestamps over 5 topics x 6 partitions, one producer per compression codec, read back with
//! assign() (no group) identically and in order; offsets by time and watermarks; AdminClient
//! (create_topics with configs, describe_configs, incremental_alter_configs, create_partitions,
//! delete_records, delete_topics, list_offsets). Then the broker restarts and the script checks,
//! without producing, that all of it is still there.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::{seed, BrokerProc};

const SCRIPT: &str = "confluent_roundtrip.py";
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PARTITIONS: i32 = 6;

#[test]
fn confluent_kafka_round_trip_admin_and_restart() {
    let started = Instant::now();
    let seed = seed("interop_confluent").to_string();
    // Record timestamps start an hour ago: recent enough for any retention, and fixed for both runs.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let base_ts = (now_ms - 3_600_000).to_string();
    let mut broker = BrokerProc::start(&[]);
    let addr = broker.addr.clone();

    let out = support::python(SCRIPT, &[&addr, "produce", &seed, &base_ts]);
    let lz4 = out
        .lines()
        .find_map(|l| l.strip_prefix("librdkafka lz4 feature: "))
        .unwrap_or_else(|| panic!("the script did not report librdkafka's lz4 decision:\n{out}"))
        == "enabled";

    broker.stop();
    for codec in CODECS {
        let stored = if codec == "lz4" && !lz4 { "none" } else { codec };
        for p in 0..PARTITIONS {
            support::assert_codec(broker.dir(), &format!("cf-{codec}"), p, stored);
        }
    }
    if !lz4 {
        eprintln!("note: librdkafka sends lz4 batches uncompressed until the broker serves FindCoordinator");
    }

    broker.restart();
    support::python(SCRIPT, &[&addr, "verify", &seed, &base_ts]);
    broker.stop();
    eprintln!("interop_confluent: done in {:?}", started.elapsed());
}
