//! Offsets committed in transactions, end to end over real TCP against an embedded broker:
//! InitProducerId, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, and what OffsetFetch shows with and
//! without RequireStable before and after the transaction ends, across a restart, and for a
//! late request of an epoch that EndTxn v5 bumped (KIP-890 part 2).
//!
//! EndTxn is answered once the transaction is prepared; the markers (and with them the offsets)
//! follow. The tests wait for that as clients do: RequireStable fetches are retried while they
//! answer UNSTABLE_OFFSET_COMMIT (bounded by [`WAIT`]).

use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_broker::{Broker, BrokerConfig};
use rill_core::client::{Admin, Client, ClientConfig, Connection, NewTopic};

const TOPIC: &str = "in";
const GROUP: &str = "g";
const WAIT: Duration = Duration::from_secs(20);
const INVALID_PRODUCER_EPOCH: i16 = 47;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn start(dir: &std::path::Path) -> Broker {
    let mut config = BrokerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    Broker::start(config).await.unwrap()
}

/// A transactional producer speaking raw requests, committing offsets of group [`GROUP`].
struct Producer {
    conn: Connection,
    txn: String,
    pid: i64,
    epoch: i16,
}

impl Producer {
    async fn init(broker: &Broker, txn: &str) -> Self {
        let conn = Connection::connect(&broker.bootstrap(), "txn-offsets-test").await.unwrap();
        let mut p = Self { conn, txn: txn.into(), pid: -1, epoch: -1 };
        let deadline = Instant::now() + WAIT;
        loop {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(txn))))
                .with_transaction_timeout_ms(60_000);
            let resp = p.conn.call_at(req, 4).await.unwrap();
            match resp.error_code {
                0 => {
                    (p.pid, p.epoch) = (resp.producer_id.0, resp.producer_epoch);
                    return p;
                }
                CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                e => panic!("InitProducerId: error {e}"),
            }
        }
    }

    async fn add_offsets(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&self.txn)))
                .with_producer_id(ProducerId(self.pid))
                .with_producer_epoch(self.epoch)
                .with_group_id(GroupId(s(GROUP)));
            match self.conn.call_at(req, 3).await.unwrap().error_code {
                0 => return,
                // The previous transaction's markers are still being written.
                CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                e => panic!("AddOffsetsToTxn: error {e}"),
            }
        }
    }

    /// TxnOffsetCommit v3 of `offset` for partition 0 (no group membership); the error code.
    async fn commit_offset(&self, offset: i64, epoch: i16) -> i16 {
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(&self.txn)))
            .with_group_id(GroupId(s(GROUP)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(
                vec![TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)],
            )]);
        let resp = self.conn.call_at(req, 3).await.unwrap();
        resp.topics[0].partitions[0].error_code
    }

    /// EndTxn at `version` (v5+ bumps the epoch, KIP-890 part 2).
    async fn end(&mut self, commit: bool, version: i16) {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&self.txn)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        let resp = self.conn.call_at(req, version).await.unwrap();
        assert_eq!(resp.error_code, 0, "EndTxn");
        if version >= 5 {
            (self.pid, self.epoch) = (resp.producer_id.0, resp.producer_epoch);
        }
    }
}

/// (offset, error) of partition 0 of [`GROUP`] from OffsetFetch v8.
async fn fetch(broker: &Broker, require_stable: bool) -> (i64, i16) {
    let conn = Connection::connect(&broker.bootstrap(), "txn-offsets-test").await.unwrap();
    let req = OffsetFetchRequest::default()
        .with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(s(GROUP))).with_topics(Some(vec![
            OffsetFetchRequestTopics::default().with_name(TopicName(s(TOPIC))).with_partition_indexes(vec![0]),
        ]))])
        .with_require_stable(require_stable);
    let resp = conn.call_at(req, 8).await.unwrap();
    let g = &resp.groups[0];
    assert_eq!(g.error_code, 0, "group error");
    let p = &g.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

/// The stable offset once no transaction holds one (as a client retries UNSTABLE_OFFSET_COMMIT).
async fn stable_offset(broker: &Broker) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        match fetch(broker, true).await {
            (offset, 0) => return offset,
            (_, UNSTABLE_OFFSET_COMMIT) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            (_, e) => panic!("OffsetFetch: error {e}"),
        }
    }
}

async fn create_topic(broker: &Broker) {
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let t = NewTopic { name: TOPIC.into(), partitions: 1, replication_factor: 1, configs: Default::default() };
    Admin::new(&client).create_topics(&[t], false).await.unwrap();
}

#[tokio::test]
async fn offsets_of_a_transaction_show_when_it_commits_and_never_when_it_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    create_topic(&broker).await;
    let mut p = Producer::init(&broker, "t-offsets").await;

    p.add_offsets().await;
    assert_eq!(p.commit_offset(42, p.epoch).await, 0);
    assert_eq!(fetch(&broker, false).await, (-1, 0), "pending offsets are invisible");
    assert_eq!(fetch(&broker, true).await, (-1, UNSTABLE_OFFSET_COMMIT));
    p.end(true, 4).await;
    assert_eq!(stable_offset(&broker).await, 42);

    p.add_offsets().await;
    assert_eq!(p.commit_offset(50, p.epoch).await, 0);
    assert_eq!(fetch(&broker, false).await, (42, 0), "the last committed offset while pending");
    p.end(false, 4).await;
    assert_eq!(stable_offset(&broker).await, 42);

    // EndTxn v5 bumps the epoch and writes the markers with it: a late TxnOffsetCommit of the
    // old epoch is refused, and the commit holds.
    p.add_offsets().await;
    assert_eq!(p.commit_offset(60, p.epoch).await, 0);
    let old = p.epoch;
    p.end(true, 5).await;
    assert_eq!(stable_offset(&broker).await, 60);
    assert_eq!(p.commit_offset(61, old).await, INVALID_PRODUCER_EPOCH);
    assert_eq!(fetch(&broker, true).await, (60, 0));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_transaction_open_across_a_restart_keeps_its_offsets_pending_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    create_topic(&broker).await;
    let mut p = Producer::init(&broker, "t-restart").await;
    p.add_offsets().await;
    assert_eq!(p.commit_offset(7, p.epoch).await, 0);
    p.end(true, 4).await;
    assert_eq!(stable_offset(&broker).await, 7);
    p.add_offsets().await;
    assert_eq!(p.commit_offset(9, p.epoch).await, 0);
    broker.shutdown().await.unwrap();

    // Replayed from __consumer_offsets: 7 committed, 9 pending.
    let broker = start(dir.path()).await;
    assert_eq!(fetch(&broker, false).await, (7, 0));
    assert_eq!(fetch(&broker, true).await, (-1, UNSTABLE_OFFSET_COMMIT));
    p.conn = Connection::connect(&broker.bootstrap(), "txn-offsets-test").await.unwrap();
    p.end(true, 4).await;
    assert_eq!(stable_offset(&broker).await, 9);
    broker.shutdown().await.unwrap();

    // And the commit is in the log.
    let broker = start(dir.path()).await;
    assert_eq!(fetch(&broker, true).await, (9, 0));
    broker.shutdown().await.unwrap();
}
