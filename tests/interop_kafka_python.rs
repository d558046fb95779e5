//! Interop with kafka-python: 1,000 keyed records with headers (idempotence off, api_version
//! auto-detected) to an auto-created 3-partition topic, read back with a group-less consumer
//! (assign + seek_to_beginning) identically, per partition, at the acknowledged offsets. Once with
//! gzip and once with lz4: librdkafka sends lz4 only to brokers with FindCoordinator, so
//! kafka-python is the client we did not write that stores real lz4 batches here for now.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::time::Instant;

use common::BrokerProc;

#[test]
fn kafka_python_produce_and_consume_without_group() {
    let started = Instant::now();
    let mut broker = BrokerProc::start(&["num.partitions=3"]);
    for codec in ["gzip", "lz4"] {
        let topic = format!("kp-smoke-{codec}");
        let out = support::python("kafka_python_smoke.py", &[&broker.addr, &topic, codec]);
        assert!(out.contains("over 3 partitions"), "expected the auto-created topic to have 3 partitions:\n{out}");
    }
    broker.stop();
    for codec in ["gzip", "lz4"] {
        for p in 0..3 {
            support::assert_codec(broker.dir(), &format!("kp-smoke-{codec}"), p, codec);
        }
    }
    eprintln!("interop_kafka_python: done in {:?}", started.elapsed());
}

#[test]
fn kafka_python_consumer_group_shares_a_topic() {
    let mut broker = BrokerProc::start(&["group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=3"]);
    let out = support::python("kafka_python_group.py", &[&broker.addr, "kp-grouped", "kpg"]);
    assert!(out.contains("consumed once each") && out.contains("equal end offsets"), "{out}");
    broker.stop();
}
