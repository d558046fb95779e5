//! Consumer groups: three confluent-kafka consumers and one Rill consumer (`rill consume
//! --group`) share a topic; one confluent member is killed with SIGKILL and the others take over
//! from committed offsets; after a broker restart the committed offsets are still there.

mod common;
#[path = "interop/support.rs"]
mod support;

use common::BrokerProc;

#[test]
fn confluent_consumers_share_take_over_and_keep_offsets_across_restart() {
    let mut broker = BrokerProc::start(&["group.initial.rebalance.delay.ms=0", "offsets.topic.num.partitions=5"]);
    let addr = broker.addr.clone();
    // Where the script finds the Rill consumer it starts (this is the file's only test).
    std::env::set_var("RILL_BIN", env!("CARGO_BIN_EXE_rill"));
    let out = support::python("confluent_group.py", &[&addr, "grouped", "g1", "run"]);
    assert!(out.contains("none lost"), "{out}");
    broker.stop();
    broker.restart();
    let out = support::python("confluent_group.py", &[&addr, "grouped", "g1", "verify"]);
    assert!(out.contains("survive"), "{out}");
    broker.stop();
}
