//! Consumer groups with clients we did not write: three confluent-kafka consumers share a
//! topic, one is killed with SIGKILL and the others take over from committed offsets; after a
//! broker restart the committed offsets are still there.

mod common;
#[path = "interop/support.rs"]
mod support;

use common::BrokerProc;

#[test]
fn confluent_consumers_share_take_over_and_keep_offsets_across_restart() {
    let mut broker = BrokerProc::start(&["group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=5"]);
    let addr = broker.addr.clone();
    let out = support::python("confluent_group.py", &[&addr, "grouped", "g1", "run"]);
    assert!(out.contains("none lost"), "{out}");
    broker.stop();
    broker.restart();
    let out = support::python("confluent_group.py", &[&addr, "grouped", "g1", "verify"]);
    assert!(out.contains("survive"), "{out}");
    broker.stop();
}
