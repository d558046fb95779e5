//! Interop with kafka-python: 1,000 keyed records with headers (gzip, idempotence off, api_version
//! auto-detected) to an auto-created 3-partition topic, read back with a group-less consumer
//! (assign + seek_to_beginning) identically, per partition, at the acknowledged offsets.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::time::Instant;

use common::BrokerProc;

#[test]
fn kafka_python_produce_and_consume_without_group() {
    let started = Instant::now();
    let mut broker = BrokerProc::start(&["num.partitions=3"]);
    let out = support::python("kafka_python_smoke.py", &[&broker.addr, "kp-smoke"]);
    assert!(out.contains("over 3 partitions"), "expected the auto-created topic to have 3 partitions:\n{out}");
    broker.stop();
    eprintln!("interop_kafka_python: done in {:?}", started.elapsed());
}
