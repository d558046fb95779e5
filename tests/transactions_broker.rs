//! The transaction coordinator end to end over real TCP, with raw protocol requests against an
//! embedded broker: FindCoordinator, InitProducerId, AddPartitionsToTxn, Produce of
//! transactional batches, EndTxn, and the control markers and last stable offsets Fetch then
//! shows. Fencing by a second InitProducerId, the abort of a transaction past its timeout, and
//! a restart that completes a commit left half done.
//!
//! The coordinator answers EndTxn once the PrepareCommit/PrepareAbort record is stored and
//! writes the markers right after; the tests wait for them with long-poll fetches (bounded).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rill_broker::txn::{TxnRecord, TxnState, TxnValue, TRANSACTION_STATE_TOPIC};
use rill_broker::{Broker, BrokerConfig};
use rill_core::client::{Admin, Client, ClientConfig, Connection, NewTopic};
use rill_core::records::{encode_batch, ProducerRecord};

const TOPIC: &str = "tx";
const WAIT: Duration = Duration::from_secs(20);
const CONCURRENT_TRANSACTIONS: i16 = 51;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const PRODUCER_FENCED: i16 = 90;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn start(dir: &std::path::Path, settings: &[(&str, &str)]) -> Broker {
    let mut config = BrokerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    for (k, v) in settings {
        config.set(k, v).unwrap();
    }
    Broker::start(config).await.unwrap()
}

async fn create_topic(broker: &Broker, partitions: i32) {
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let t = NewTopic { name: TOPIC.into(), partitions, replication_factor: 1, configs: Default::default() };
    Admin::new(&client).create_topics(&[t], false).await.unwrap();
}

/// One transactional producer speaking raw requests.
struct Producer {
    conn: Connection,
    txn: String,
    pid: i64,
    epoch: i16,
    /// Next sequence per partition of [`TOPIC`].
    seq: [i32; 4],
}

impl Producer {
    async fn connect(broker: &Broker, txn: &str) -> Self {
        let conn = Connection::connect(&broker.bootstrap(), "txn-test").await.unwrap();
        Self { conn, txn: txn.into(), pid: -1, epoch: -1, seq: [0; 4] }
    }

    /// InitProducerId at `version`; returns the error code and keeps the id and epoch on success.
    async fn init(&mut self, timeout_ms: i32, version: i16) -> i16 {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&self.txn))))
            .with_transaction_timeout_ms(timeout_ms);
        let resp = self.conn.call_at(req, version).await.unwrap();
        if resp.error_code == 0 {
            (self.pid, self.epoch, self.seq) = (resp.producer_id.0, resp.producer_epoch, [0; 4]);
        }
        resp.error_code
    }

    /// InitProducerId, retried while the coordinator aborts what an older producer left open.
    async fn init_retrying(&mut self, timeout_ms: i32) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.init(timeout_ms, 4).await {
                0 => return,
                CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                e => panic!("InitProducerId: error {e}"),
            }
        }
    }

    async fn add(&self, partitions: &[i32], version: i16) -> Vec<i16> {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(&self.txn)))
            .with_v3_and_below_producer_id(ProducerId(self.pid))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(partitions.to_vec())]);
        let resp = self.conn.call_at(req, version).await.unwrap();
        resp.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))
            .collect()
    }

    /// Produce `n` transactional records to `partition`; returns the partition's error code.
    async fn produce(&mut self, partition: i32, n: usize) -> i16 {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: true,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: self.pid,
                producer_epoch: self.epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: self.seq[partition as usize] + i as i32,
                timestamp: now_ms(),
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        let req = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&self.txn))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(s(TOPIC))).with_partition_data(
                vec![PartitionProduceData::default().with_index(partition).with_records(Some(buf.freeze()))],
            )]);
        let resp = self.conn.call_at(req, 9).await.unwrap();
        let code = resp.responses[0].partition_responses[0].error_code;
        if code == 0 {
            self.seq[partition as usize] += n as i32;
        }
        code
    }

    /// EndTxn at `version` with the producer's id and epoch; v5+ answers carry a new epoch.
    async fn end(&mut self, commit: bool, version: i16) -> i16 {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&self.txn)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        let resp = self.conn.call_at(req, version).await.unwrap();
        if resp.error_code == 0 && version >= 5 {
            // A new epoch starts its sequences at 0.
            (self.pid, self.epoch, self.seq) = (resp.producer_id.0, resp.producer_epoch, [0; 4]);
        }
        resp.error_code
    }
}

/// A control batch as read back: (producer id, epoch, commit?).
type Marker = (i64, i16, bool);

/// What a fetch found in one partition: data records (producer id, epoch, key) and markers, in order.
#[derive(Debug, Default, PartialEq)]
struct Read {
    data: Vec<(i64, i16, String)>,
    markers: Vec<Marker>,
}

fn decode(records: &Option<Bytes>) -> Read {
    let mut out = Read::default();
    let mut buf = records.clone().unwrap_or_default();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            if r.control {
                let key = r.key.clone().expect("control key");
                assert_eq!(key.len(), 4, "control key {key:?}");
                let kind = i16::from_be_bytes([key[2], key[3]]);
                out.markers.push((r.producer_id, r.producer_epoch, kind == 1));
            } else {
                let key = String::from_utf8(r.key.clone().unwrap_or_default().to_vec()).unwrap();
                out.data.push((r.producer_id, r.producer_epoch, key));
            }
        }
    }
    out
}

/// Fetch `partition` from offset 0 (read_committed when `committed`), long-polling until `done`
/// holds for the answer (bounded by [`WAIT`]).
async fn fetch_until(
    broker: &Broker,
    partition: i32,
    committed: bool,
    done: impl Fn(&PartitionData) -> bool,
) -> PartitionData {
    let conn = Connection::connect(&broker.bootstrap(), "txn-test-fetch").await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(200)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_isolation_level(committed as i8)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(TopicName(s(TOPIC))).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let resp = conn.call_at(req, 12).await.unwrap();
        let p = resp.responses[0].partitions[0].clone();
        assert_eq!(p.error_code, 0, "fetch error");
        if done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "partition {partition} never reached the expected state: {p:?}");
    }
}

/// The partition once every transaction in it has ended: the last stable offset is the end.
async fn settled(broker: &Broker, partition: i32, end: i64) -> PartitionData {
    fetch_until(broker, partition, true, |p| p.high_watermark == end && p.last_stable_offset == end).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_end_with_markers_in_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    create_topic(&broker, 2).await;

    // The transaction coordinator is this broker.
    let conn = Connection::connect(&broker.bootstrap(), "txn-test").await.unwrap();
    for v in [1, 3] {
        let req = FindCoordinatorRequest::default().with_key(s("t-commit")).with_key_type(1);
        let resp = conn.call_at(req, v).await.unwrap();
        assert_eq!((resp.error_code, resp.node_id.0, resp.port), (0, 0, broker.addr().port() as i32), "v{v}");
    }

    let mut p = Producer::connect(&broker, "t-commit").await;
    assert_eq!(p.init(900_001, 4).await, INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(p.init(60_000, 4).await, 0);
    assert_eq!(p.epoch, 0);
    assert_eq!(p.add(&[0, 1], 0).await, [0, 0], "AddPartitionsToTxn v0, as librdkafka sends it");
    let txns = &broker.state().txns;
    assert_eq!(txns.verify("t-commit", p.pid, 0, TOPIC, 0), Ok(()));
    assert_eq!(txns.verify("t-commit", p.pid, 0, TOPIC, 2), Err(INVALID_TXN_STATE));
    assert_eq!(p.produce(0, 2).await, 0);
    assert_eq!(p.produce(1, 1).await, 0);
    // Open: read_committed sees nothing yet.
    let open = fetch_until(&broker, 0, true, |_| true).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (2, 0));
    assert_eq!(p.end(true, 3).await, 0);

    let p0 = settled(&broker, 0, 3).await;
    let want0 = Read { data: vec![(p.pid, 0, "k0".into()), (p.pid, 0, "k1".into())], markers: vec![(p.pid, 0, true)] };
    assert_eq!(decode(&p0.records), want0);
    let p1 = settled(&broker, 1, 2).await;
    assert_eq!(decode(&p1.records), Read { data: vec![(p.pid, 0, "k0".into())], markers: vec![(p.pid, 0, true)] });
    assert_eq!(txns.verify("t-commit", p.pid, 0, TOPIC, 0), Err(INVALID_TXN_STATE));
    // A retried commit is answered alike; an abort of it is refused.
    assert_eq!(p.end(true, 3).await, 0);
    assert_eq!(p.end(false, 3).await, INVALID_TXN_STATE);

    // The next transaction aborts (EndTxn v0): its records are listed as aborted.
    assert_eq!(p.add(&[0], 3).await, [0]);
    assert_eq!(p.produce(0, 1).await, 0);
    assert_eq!(p.end(false, 0).await, 0);
    let p0 = settled(&broker, 0, 5).await;
    let read = decode(&p0.records);
    assert_eq!(read.markers, [(p.pid, 0, true), (p.pid, 0, false)]);
    let aborted: Vec<(i64, i64)> =
        p0.aborted_transactions.unwrap_or_default().iter().map(|a| (a.producer_id.0, a.first_offset)).collect();
    assert_eq!(aborted, [(p.pid, 3)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_v5_bumps_the_epoch_and_marks_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    create_topic(&broker, 1).await;
    let mut p = Producer::connect(&broker, "t-v5").await;
    assert_eq!(p.init(60_000, 5).await, 0);
    let pid = p.pid;
    assert_eq!(p.add(&[0], 3).await, [0]);
    assert_eq!(p.produce(0, 1).await, 0);
    assert_eq!(p.end(true, 5).await, 0);
    assert_eq!((p.pid, p.epoch), (pid, 1), "the answer carries the bumped epoch");
    let p0 = settled(&broker, 0, 2).await;
    assert_eq!(decode(&p0.records).markers, [(pid, 1, true)]);
    // The next transaction runs at the new epoch; a write at the old one is refused.
    assert_eq!(p.add(&[0], 3).await, [0]);
    let mut stale = Producer { conn: Connection::connect(&broker.bootstrap(), "stale").await.unwrap(), ..p };
    stale.epoch = 0;
    assert_ne!(stale.produce(0, 1).await, 0, "a write at the epoch before the bump");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_init_fences_the_first_producer_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    create_topic(&broker, 1).await;
    let mut old = Producer::connect(&broker, "t-fence").await;
    assert_eq!(old.init(60_000, 4).await, 0);
    assert_eq!(old.add(&[0], 3).await, [0]);
    assert_eq!(old.produce(0, 2).await, 0);

    let mut new = Producer::connect(&broker, "t-fence").await;
    // The open transaction is aborted first (CONCURRENT_TRANSACTIONS meanwhile), then the new
    // producer gets epoch 2: 1 went to the abort markers.
    assert_eq!(new.init(60_000, 4).await, CONCURRENT_TRANSACTIONS);
    new.init_retrying(60_000).await;
    assert_eq!((new.pid, new.epoch), (old.pid, 2));
    let p0 = settled(&broker, 0, 3).await;
    assert_eq!(decode(&p0.records).markers, [(old.pid, 1, false)]);

    // The old producer is fenced everywhere: at the coordinator (old versions hear
    // INVALID_PRODUCER_EPOCH) and at the partition.
    assert_eq!(old.end(true, 3).await, PRODUCER_FENCED);
    assert_eq!(old.end(true, 1).await, INVALID_PRODUCER_EPOCH);
    assert_eq!(old.add(&[0], 2).await, [PRODUCER_FENCED]);
    assert_eq!(old.add(&[0], 1).await, [INVALID_PRODUCER_EPOCH]);
    assert_ne!(old.produce(0, 1).await, 0);
    // The new one works.
    assert_eq!(new.add(&[0], 3).await, [0]);
    assert_eq!(new.produce(0, 1).await, 0);
    assert_eq!(new.end(true, 3).await, 0);
    let p0 = settled(&broker, 0, 5).await;
    assert_eq!(decode(&p0.records).markers, [(old.pid, 1, false), (new.pid, 2, true)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100")]).await;
    create_topic(&broker, 1).await;
    let mut p = Producer::connect(&broker, "t-timeout").await;
    assert_eq!(p.init(500, 4).await, 0);
    assert_eq!(p.add(&[0], 3).await, [0]);
    assert_eq!(p.produce(0, 1).await, 0);
    // Nobody ends it: the coordinator aborts it after 500 ms, with the epoch bumped.
    let p0 = settled(&broker, 0, 2).await;
    assert_eq!(decode(&p0.records).markers, [(p.pid, 1, false)]);
    assert_eq!(p.end(true, 3).await, PRODUCER_FENCED);
    assert_eq!(p.add(&[0], 3).await, [PRODUCER_FENCED]);
    // A new InitProducerId (the producer restarting) goes on from there.
    assert_eq!(p.init(500, 4).await, 0);
    assert_eq!(p.epoch, 2);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_completes_a_commit_whose_markers_were_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("transaction.state.log.num.partitions", "3")]).await;
    create_topic(&broker, 1).await;
    let conn = Connection::connect(&broker.bootstrap(), "idempotent").await.unwrap();
    let idempotent = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
    let first = conn.call_at(idempotent.clone(), 4).await.unwrap();
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));

    let mut p = Producer::connect(&broker, "t-restart").await;
    assert_eq!(p.init(60_000, 4).await, 0);
    assert_ne!(p.pid, first.producer_id.0);
    assert_eq!(p.add(&[0], 3).await, [0]);
    assert_eq!(p.produce(0, 2).await, 0);
    // The coordinator stored PrepareCommit and stopped before any marker: written here by hand,
    // as the record the coordinator itself writes.
    let value = TxnValue {
        producer_id: p.pid,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: 0,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::PrepareCommit,
        partitions: [rill_broker::group::TopicPartition::new(TOPIC, 0)].into_iter().collect(),
        last_update_ms: now_ms(),
        start_ms: now_ms(),
        client_txn_version: 0,
    };
    let record = TxnRecord { transactional_id: "t-restart".into(), value: Some(value) };
    let part = rill_broker::group::partition_for("t-restart", 3);
    let log = broker.state().topics.partition(TRANSACTION_STATE_TOPIC, part).expect("state partition");
    let rec = ProducerRecord { key: Some(record.encode_key()), value: record.encode_value(), ..Default::default() };
    log.append(&encode_batch(&[rec], Compression::None, now_ms()).unwrap(), now_ms()).unwrap();
    let open = fetch_until(&broker, 0, true, |_| true).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (2, 0));
    broker.shutdown().await.unwrap();

    let broker = start(dir.path(), &[("transaction.state.log.num.partitions", "3")]).await;
    let p0 = settled(&broker, 0, 3).await;
    assert_eq!(decode(&p0.records).markers, [(p.pid, 0, true)]);
    // The coordinator stores CompleteCommit right after the markers, before its next request.
    let mut again = Producer::connect(&broker, "t-restart").await;
    assert_eq!(again.init(60_000, 4).await, 0);
    assert_eq!((again.pid, again.epoch), (p.pid, 1));
    let states: Vec<(String, TxnState)> =
        broker.state().txns.snapshot().into_iter().map(|(id, v)| (id, v.state)).collect();
    assert_eq!(states, [("t-restart".to_string(), TxnState::Empty)]);
    // Producer ids handed out before the restart are never handed out again.
    let conn = Connection::connect(&broker.bootstrap(), "idempotent").await.unwrap();
    let next = conn.call_at(idempotent, 4).await.unwrap();
    assert_eq!(next.error_code, 0);
    assert!(next.producer_id.0 > p.pid.max(first.producer_id.0), "{} after a restart", next.producer_id.0);
    broker.shutdown().await.unwrap();
}
