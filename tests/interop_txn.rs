//! Transactions with confluent-kafka (librdkafka) against a broker process: interleaved commits
//! and aborts seen exactly by read_committed consumers (confluent-kafka's and Rill's) and wholly by
//! read_uncommitted ones; a consume-transform-produce loop with send_offsets_to_transaction; a
//! zombie producer fenced by a newer instance. The scenario is in `interop/confluent_txn.py`; this
//! test then reads the same topic with Rill's consumer.

mod common;
#[path = "interop/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{seed, BrokerProc};
use rill_core::client::{Client, ClientConfig};
use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};

const SCRIPT: &str = "confluent_txn.py";
const PARTITIONS: i32 = 3;
/// Must match ROUNDS and RECORDS in the script.
const ROUNDS: usize = 12;
const RECORDS: usize = 40;

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
}

/// Read `topic` from the start until `want` records arrived and every partition's position
/// reached its log end offset (markers included).
async fn read_all(bootstrap: &str, topic: &str, isolation: &str, want: usize) -> Vec<PolledRecord> {
    let props = [
        ("bootstrap.servers", bootstrap),
        ("isolation.level", isolation),
        ("auto.offset.reset", "earliest"),
        ("group.id", "rill-reader"),
    ];
    let mut c = Consumer::new(ConsumerConfig::from_properties(props).unwrap()).await.unwrap();
    let tps: Vec<_> = (0..PARTITIONS).map(|p| (topic.to_string(), p)).collect();
    c.assign(tps.clone()).unwrap();
    let client = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        ends.push(client.list_offset(topic, p, -1).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "{isolation}: {} of {want} records after 60 s", got.len());
        got.extend(c.poll(Duration::from_millis(200)).await.unwrap());
        if got.len() < want {
            continue;
        }
        let mut done = true;
        for (tp, end) in tps.iter().zip(&ends) {
            done &= c.position(tp).await.unwrap() >= *end;
        }
        if done {
            break;
        }
    }
    assert_eq!(got.len(), want, "{isolation}: record count");
    got
}

fn key(r: &PolledRecord) -> String {
    String::from_utf8(r.key.clone().expect("keyed").to_vec()).unwrap()
}

#[test]
fn confluent_kafka_transactions_and_rill_read_committed() {
    let seed = seed("interop_txn");
    let mut broker = BrokerProc::start(&[]);
    let out = support::python(SCRIPT, &[&broker.addr, &seed.to_string()]);
    let committed: BTreeSet<usize> =
        line(&out, "committed-rounds: ").split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let plain: usize = line(&out, "plain-records: ").parse().unwrap();
    let topic = format!("txn-{seed}");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let rc = read_all(&broker.addr, &topic, "read_committed", committed.len() * RECORDS + plain).await;
        let keys: Vec<String> = rc.iter().map(key).collect();
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "Rill read_committed saw a record twice");
        let want: BTreeSet<String> = committed
            .iter()
            .flat_map(|r| (0..RECORDS).map(move |i| format!("t{r}-{i}")))
            .chain((0..plain).map(|i| format!("p{i}")))
            .collect();
        assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), want, "Rill read_committed: exactly the committed");
        let ru = read_all(&broker.addr, &topic, "read_uncommitted", ROUNDS * RECORDS + plain).await;
        assert_eq!(ru.iter().filter(|r| key(r).starts_with('t')).count(), ROUNDS * RECORDS);
    });
    broker.stop();
}
