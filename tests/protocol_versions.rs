//! Every (API, version) the broker advertises answers a representative valid request at exactly
//! that version, with a response that decodes and carries no error where none is expected.
//!
//! The protocol crate refuses to encode a field set at a version that lacks it; a broker that
//! sets such a field fails to encode its answer and closes the connection. Walking every
//! advertised version catches that, and the requests here set version-dependent fields only at
//! the versions that have them. The list comes from the broker's own ApiVersions answer, so a
//! newly advertised API without a representative request here fails the test.
//!
//! Consumer-group APIs are exercised through single-member cycles (join, sync, heartbeat,
//! commit, fetch, describe, leave, delete) and their error answers, one group per case; the
//! broker runs without `group.initial.rebalance.delay.ms` so that a JoinGroup completes at once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::Compression;
use rill_core::client::{Admin, Client, ClientConfig, Connection, NewTopic};
use rill_core::consumer::assignor::wire::{Assignment, Subscription};
use rill_core::records::{decode_records, encode_batch, ProducerRecord};
use rill_core::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use common::BrokerProc;

/// Topic for Metadata, Produce, Fetch, ListOffsets and configs.
const MAIN: &str = "pv";
/// Topic whose records DeleteRecords removes, one more per version.
const TRIMMED: &str = "pv-trimmed";
/// Records in [`TRIMMED`].
const TRIMMED_RECORDS: usize = 10;
/// Create time of the first record in [`MAIN`]; seed record i has `T0 + TS_STEP * i`.
const T0: i64 = 1_600_000_000_000;
const TS_STEP: i64 = 10;
/// Records in the first batch of [`MAIN`], with timestamps `T0, T0 + TS_STEP, ...`.
const SEED_RECORDS: usize = 5;
/// Versions the broker advertises on purpose but does not serve: a request there closes the
/// connection (broker/src/server/versions.rs). Produce v0-2 are listed because librdkafka only
/// compresses when the Produce range includes v0 (KAFKA-18659); their message sets are not taken.
const ADVERTISED_NOT_SERVED: &[(ApiKey, i16, i16)] = &[(ApiKey::Produce, 0, 2)];
const CLIENT_ID: &str = "protocol-versions";
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const WAIT: Duration = Duration::from_secs(15);

/// Topic the consumer-group cases subscribe to and commit offsets of.
const GROUP_TOPIC: &str = "pv-group";
/// Partitions of [`GROUP_TOPIC`]: partition 1 shows what an offset never committed looks like.
const GROUP_TOPIC_PARTITIONS: i32 = 2;
/// Topic the transaction cases add to their transactions (markers land here, not in [`MAIN`]).
const TXN_TOPIC: &str = "pv-txn";
/// Session and rebalance timeout of the test's members, within the broker's bounds
/// (`group.min.session.timeout.ms` 6 s .. `group.max.session.timeout.ms` 30 min).
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// The members' protocol type and their one assignor.
const CONSUMER: &str = "consumer";
const ASSIGNOR: &str = "range";
/// Leader epoch committed where OffsetCommit has the field (v6+).
const LEADER_EPOCH: i32 = 7;
/// Kafka error codes the group cases expect.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// Transaction error codes; versions before KIP-588 hear INVALID_PRODUCER_EPOCH for PRODUCER_FENCED.
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const PRODUCER_FENCED: i16 = 90;

/// `Err` with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn group(g: &str) -> GroupId {
    GroupId(s(g))
}

/// The members' JoinGroup metadata: a consumer subscription to [`GROUP_TOPIC`].
fn subscription() -> Bytes {
    Subscription::new([GROUP_TOPIC]).encode().expect("encode subscription")
}

/// The leader's assignment to its only member: every partition of [`GROUP_TOPIC`].
fn assignment() -> Bytes {
    Assignment::new((0..GROUP_TOPIC_PARTITIONS).map(|p| (GROUP_TOPIC.to_string(), p)).collect())
        .encode()
        .expect("encode assignment")
}

/// A member of a group the test joined, or (generation -1, no member id) a "simple" consumer
/// that commits offsets without group management.
#[derive(Debug, Clone)]
struct Member {
    group: String,
    id: String,
    /// `group.instance.id` of a static member.
    instance: Option<String>,
    generation: i32,
}

impl Member {
    fn simple(group: &str) -> Self {
        Self { group: group.to_string(), id: String::new(), instance: None, generation: -1 }
    }

    /// The same member under another member id (one the group does not know).
    fn with_id(&self, id: &str) -> Self {
        Self { id: id.to_string(), ..self.clone() }
    }

    fn with_generation(&self, generation: i32) -> Self {
        Self { generation, ..self.clone() }
    }

    /// The same member in another group (with an empty name: an invalid group id).
    fn in_group(&self, group: &str) -> Self {
        Self { group: group.to_string(), ..self.clone() }
    }
}

/// One partition's committed offset as OffsetFetch answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Committed {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

impl Committed {
    fn new(partition: i32, offset: i64, leader_epoch: i32, metadata: &str) -> Self {
        Self { partition, offset, leader_epoch, metadata: metadata.to_string() }
    }

    /// A partition without a committed offset.
    fn none(partition: i32) -> Self {
        Self::new(partition, -1, -1, "")
    }
}

fn records(n: usize, first_ts: Option<i64>, tag: &str) -> Bytes {
    let recs: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord {
            key: Some(Bytes::from(format!("{tag}-{i}"))),
            value: Some(Bytes::from(format!("value-{tag}-{i}"))),
            timestamp: first_ts.map(|t| t + TS_STEP * i as i64),
            ..Default::default()
        })
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    encode_batch(&recs, Compression::None, now).expect("encode batch")
}

/// The test's view of the broker: where it is, what it advertises, and how far [`MAIN`] goes.
struct Pv {
    addr: String,
    node: i32,
    advertised: BTreeMap<i16, (i16, i16)>,
    /// Log end offset of [`MAIN`].
    main_end: i64,
    admin_client: Client,
    /// `host:port` the broker advertises for itself: the group coordinator's address.
    advertised_addr: String,
}

impl Pv {
    /// Send `req` at exactly `version` on a fresh connection (so one failure does not hide the
    /// next) and decode the answer.
    async fn call<R: Request>(&self, req: R, version: i16) -> Result<R::Response, String> {
        let conn = Connection::connect(&self.addr, CLIENT_ID).await.map_err(|e| format!("connect: {e}"))?;
        timeout(WAIT, conn.call_at(req, version))
            .await
            .map_err(|_| format!("no answer within {WAIT:?}"))?
            .map_err(|e| format!("no decodable answer (the broker may have closed the connection): {e}"))
    }

    /// The highest advertised version of `key`.
    fn max_version(&self, key: ApiKey) -> i16 {
        self.advertised.get(&(key as i16)).map(|r| r.1).expect("API advertised")
    }

    async fn create(&self, topic: &str, partitions: i32) -> Result<(), String> {
        let t = NewTopic { name: topic.into(), partitions, replication_factor: 1, configs: Default::default() };
        Admin::new(&self.admin_client).create_topics(&[t], false).await.map_err(|e| format!("creating {topic}: {e}"))
    }

    /// Metadata for one topic at the broker's highest Metadata version, without auto-creation.
    async fn describe(&self, topic: &str) -> Result<MetadataResponseTopic, String> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
            .with_allow_auto_topic_creation(false);
        let resp = self.call(req, self.max_version(ApiKey::Metadata)).await?;
        resp.topics.into_iter().next().ok_or_else(|| format!("no metadata for {topic}"))
    }

    async fn exists(&self, topic: &str) -> Result<bool, String> {
        let t = self.describe(topic).await?;
        match t.error_code {
            0 => Ok(true),
            3 => Ok(false),
            code => Err(format!("metadata for {topic}: error {code}")),
        }
    }

    async fn check(&mut self, api: ApiKey, v: i16) -> Result<(), String> {
        if ADVERTISED_NOT_SERVED.iter().any(|&(k, lo, hi)| k == api && (lo..=hi).contains(&v)) {
            return self.not_served(api, v).await;
        }
        match api {
            ApiKey::ApiVersions => self.api_versions(v).await,
            ApiKey::Metadata => self.metadata(v).await,
            ApiKey::Produce => self.produce(v).await,
            ApiKey::Fetch => self.fetch(v).await,
            ApiKey::ListOffsets => self.list_offsets(v).await,
            ApiKey::CreateTopics => self.create_topics(v).await,
            ApiKey::DeleteTopics => self.delete_topics(v).await,
            ApiKey::CreatePartitions => self.create_partitions(v).await,
            ApiKey::DescribeConfigs => self.describe_configs(v).await,
            ApiKey::IncrementalAlterConfigs => self.alter_configs(v).await,
            ApiKey::DeleteRecords => self.delete_records(v).await,
            ApiKey::ElectLeaders => self.elect_leaders(v).await,
            ApiKey::OffsetForLeaderEpoch => self.offset_for_leader_epoch(v).await,
            ApiKey::WriteTxnMarkers => self.write_txn_markers(v).await,
            ApiKey::AlterPartitionReassignments => self.alter_reassignments(v).await,
            ApiKey::ListPartitionReassignments => self.list_reassignments(v).await,
            ApiKey::FindCoordinator => self.find_coordinator(v).await,
            ApiKey::JoinGroup => self.join_group(v).await,
            ApiKey::SyncGroup => self.sync_group(v).await,
            ApiKey::Heartbeat => self.heartbeat(v).await,
            ApiKey::LeaveGroup => self.leave_group(v).await,
            ApiKey::OffsetCommit => self.offset_commit(v).await,
            ApiKey::OffsetFetch => self.offset_fetch(v).await,
            ApiKey::ListGroups => self.list_groups(v).await,
            ApiKey::DescribeGroups => self.describe_groups(v).await,
            ApiKey::DeleteGroups => self.delete_groups(v).await,
            ApiKey::OffsetDelete => self.offset_delete(v).await,
            ApiKey::TxnOffsetCommit => self.txn_offset_commit(v).await,
            ApiKey::InitProducerId => self.init_producer_id(v).await,
            ApiKey::AddPartitionsToTxn => self.add_partitions_to_txn(v).await,
            ApiKey::AddOffsetsToTxn => self.add_offsets_to_txn(v).await,
            ApiKey::EndTxn => self.end_txn(v).await,
            other => Err(format!("advertised, but this test has no representative {other:?} request: add one")),
        }
    }

    /// An advertised-but-unserved version: a well-formed request there closes the connection.
    async fn not_served(&self, api: ApiKey, v: i16) -> Result<(), String> {
        ensure!(api == ApiKey::Produce && v < 3, "no request to send for {api:?} v{v}");
        // Produce v0-2 is v3 without the leading transactional id (a null string: 2 bytes).
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(name(MAIN)).with_partition_data(vec![PartitionProduceData::default(
            )
            .with_index(0)
            .with_records(Some(records(1, None, &format!("unserved-v{v}"))))]),
        ]);
        let v3 = wire::encode_request(ApiKey::Produce, 3, 1, CLIENT_ID, &req).map_err(|e| e.to_string())?;
        let header_end = 4 + 2 + 2 + 4 + 2 + CLIENT_ID.len();
        ensure!(v3[header_end..header_end + 2] == [0xff, 0xff], "expected a null transactional id");
        let mut frame = Vec::with_capacity(v3.len());
        frame.extend_from_slice(&((v3.len() - 4 - 2) as i32).to_be_bytes());
        frame.extend_from_slice(&v3[4..6]);
        frame.extend_from_slice(&v.to_be_bytes());
        frame.extend_from_slice(&v3[8..header_end]);
        frame.extend_from_slice(&v3[header_end + 2..]);
        let mut sock = TcpStream::connect(&self.addr).await.map_err(|e| format!("connect: {e}"))?;
        sock.write_all(&frame).await.map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 64];
        match timeout(WAIT, sock.read(&mut buf)).await {
            Err(_) => Err(format!("connection still open after {WAIT:?}")),
            Ok(Ok(0)) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Ok(Ok(n)) => Err(format!("answered {n} bytes; advertised-but-unserved versions must close")),
            Ok(Err(e)) => Err(format!("read: {e}")),
        }?;
        ensure!(self.main_end == self.list_end().await?, "an unserved Produce v{v} appended records");
        Ok(())
    }

    /// Log end offset of [`MAIN`], asked at the highest ListOffsets version.
    async fn list_end(&self) -> Result<i64, String> {
        let req =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(MAIN))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
        let resp = self.call(req, self.max_version(ApiKey::ListOffsets)).await?;
        resp.topics
            .first()
            .and_then(|t| t.partitions.first())
            .map(|p| p.offset)
            .ok_or_else(|| "empty ListOffsets".into())
    }

    async fn api_versions(&self, v: i16) -> Result<(), String> {
        let mut req = ApiVersionsRequest::default();
        if v >= 3 {
            req = req.with_client_software_name(s("rill-test")).with_client_software_version(s("1.0"));
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.error_code == 0, "error {}", resp.error_code);
        let got: BTreeMap<i16, (i16, i16)> =
            resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        ensure!(got == self.advertised, "advertised {got:?} here but {:?} at v0", self.advertised);
        Ok(())
    }

    async fn metadata(&self, v: i16) -> Result<(), String> {
        // Before v4 a request always allows auto-creation (the field does not exist).
        let no_auto = |r: MetadataRequest| if v >= 4 { r.with_allow_auto_topic_creation(false) } else { r };
        let topic_list = |names: &[&str]| {
            Some(names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(name(n)))).collect())
        };
        let check_topic = |t: &MetadataResponseTopic, want: &str| -> Result<(), String> {
            let got = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            ensure!(got == want, "topic name {got:?}, expected {want:?}");
            ensure!(t.error_code == 0, "{want}: error {}", t.error_code);
            ensure!(t.partitions.len() == 1, "{want}: {} partitions", t.partitions.len());
            let p = &t.partitions[0];
            ensure!(p.error_code == 0 && p.leader_id.0 == self.node, "{want}: partition {p:?}");
            ensure!(v < 10 || !t.topic_id.is_nil(), "{want}: no topic id at v{v}");
            Ok(())
        };

        // All topics: an empty list at v0, null from v1.
        let all = no_auto(MetadataRequest::default().with_topics(if v == 0 { Some(Vec::new()) } else { None }));
        let resp = self.call(all, v).await?;
        ensure!(resp.brokers.len() == 1 && resp.brokers[0].node_id.0 == self.node, "brokers {:?}", resp.brokers);
        ensure!(v < 1 || resp.controller_id.0 == self.node, "controller {:?}", resp.controller_id);
        ensure!(v < 2 || resp.cluster_id.is_some(), "no cluster id at v{v}");
        let main = resp.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == MAIN));
        check_topic(main.ok_or("all topics: pv missing")?, MAIN)?;

        // A named topic.
        let resp = self.call(no_auto(MetadataRequest::default().with_topics(topic_list(&[MAIN]))), v).await?;
        ensure!(resp.topics.len() == 1, "named: {} topics", resp.topics.len());
        check_topic(&resp.topics[0], MAIN)?;

        // Auto-creation of a missing topic.
        let auto = format!("pv-auto-v{v}");
        let req = MetadataRequest::default().with_topics(topic_list(&[&auto])).with_allow_auto_topic_creation(true);
        let resp = self.call(req, v).await?;
        ensure!(resp.topics.len() == 1, "auto-create: {} topics", resp.topics.len());
        check_topic(&resp.topics[0], &auto)?;
        ensure!(self.exists(&auto).await?, "{auto} was not created");

        // A missing topic without auto-creation (expressible from v4): UNKNOWN_TOPIC_OR_PARTITION.
        if v >= 4 {
            let missing = format!("pv-missing-v{v}");
            let resp = self.call(no_auto(MetadataRequest::default().with_topics(topic_list(&[&missing]))), v).await?;
            ensure!(resp.topics.len() == 1 && resp.topics[0].error_code == 3, "missing topic: {:?}", resp.topics);
            ensure!(!self.exists(&missing).await?, "{missing} was created without auto-creation");
        }
        Ok(())
    }

    async fn produce(&mut self, v: i16) -> Result<(), String> {
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(name(MAIN)).with_partition_data(vec![PartitionProduceData::default(
            )
            .with_index(0)
            .with_records(Some(records(2, None, &format!("produce-v{v}"))))]),
        ]);
        let resp = self.call(req, v).await?;
        let p = resp.responses.first().and_then(|t| t.partition_responses.first()).ok_or("empty answer")?;
        ensure!(p.error_code == 0, "error {} ({:?})", p.error_code, p.error_message);
        ensure!(p.base_offset == self.main_end, "base offset {}, expected {}", p.base_offset, self.main_end);
        ensure!(v < 5 || p.log_start_offset == 0, "log start offset {}", p.log_start_offset);
        self.main_end += 2;
        Ok(())
    }

    fn fetch_request(offset: i64, max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(name(MAIN)).with_partitions(vec![
                FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
            ])])
    }

    async fn fetch(&self, v: i16) -> Result<(), String> {
        let end = self.main_end;
        // From the start: every record, in order.
        let resp = self.call(Self::fetch_request(0, 500), v).await?;
        ensure!(resp.error_code == 0, "error {}", resp.error_code);
        let p = resp.responses.first().and_then(|t| t.partitions.first()).ok_or("empty answer")?;
        ensure!(p.error_code == 0, "partition error {}", p.error_code);
        ensure!(p.high_watermark == end, "high watermark {}, expected {end}", p.high_watermark);
        ensure!(p.last_stable_offset == end, "last stable offset {}, expected {end}", p.last_stable_offset);
        ensure!(v < 5 || p.log_start_offset == 0, "log start offset {}", p.log_start_offset);
        let data = p.records.clone().unwrap_or_default();
        let offsets: Vec<i64> = decode_records(data, 0).map_err(|e| e.to_string())?.iter().map(|r| r.offset).collect();
        ensure!(offsets == (0..end).collect::<Vec<_>>(), "offsets {offsets:?}, expected 0..{end}");

        // At the log end with a short wait: nothing, promptly.
        let started = std::time::Instant::now();
        let resp = self.call(Self::fetch_request(end, 20), v).await?;
        ensure!(resp.error_code == 0, "at end: error {}", resp.error_code);
        let p = resp.responses.first().and_then(|t| t.partitions.first()).ok_or("at end: empty answer")?;
        ensure!(p.error_code == 0, "at end: partition error {}", p.error_code);
        ensure!(p.high_watermark == end, "at end: high watermark {}, expected {end}", p.high_watermark);
        ensure!(
            p.records.as_ref().is_none_or(|r| r.is_empty()),
            "at end: {} bytes of records",
            p.records.as_ref().map_or(0, |r| r.len())
        );
        ensure!(started.elapsed() < Duration::from_secs(5), "at end: answered after {:?}", started.elapsed());
        Ok(())
    }

    async fn list_offsets(&self, v: i16) -> Result<(), String> {
        let end = self.main_end;
        // Between seed records 1 and 2: the answer is record 2, with its own timestamp.
        let query_ts = T0 + TS_STEP + TS_STEP / 2;
        let found_ts = T0 + 2 * TS_STEP;
        for (query, offset) in [(-1, end), (-2, 0), (query_ts, 2)] {
            let req =
                ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                    ListOffsetsTopic::default().with_name(name(MAIN)).with_partitions(vec![
                        ListOffsetsPartition::default().with_partition_index(0).with_timestamp(query),
                    ]),
                ]);
            let resp = self.call(req, v).await?;
            let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("empty answer")?;
            ensure!(p.error_code == 0, "timestamp {query}: error {}", p.error_code);
            ensure!(p.offset == offset, "timestamp {query}: offset {}, expected {offset}", p.offset);
            let ts = if query >= 0 { found_ts } else { -1 };
            ensure!(p.timestamp == ts, "timestamp {query}: answered timestamp {}, expected {ts}", p.timestamp);
        }
        Ok(())
    }

    async fn create_topics(&self, v: i16) -> Result<(), String> {
        let topic = |n: &str| {
            CreatableTopic::default().with_name(name(n)).with_num_partitions(1).with_replication_factor(1).with_configs(
                vec![CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(Some(s("3600000")))],
            )
        };
        let created = format!("pv-create-v{v}");
        let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![topic(&created)]);
        let resp = self.call(req.clone(), v).await?;
        let r = resp.topics.first().ok_or("empty answer")?;
        ensure!(r.error_code == 0, "error {} ({:?})", r.error_code, r.error_message);
        ensure!(v < 5 || (r.num_partitions == 1 && r.replication_factor == 1), "partitions/replicas {r:?}");
        ensure!(v < 7 || !r.topic_id.is_nil(), "no topic id at v{v}");
        ensure!(self.exists(&created).await?, "{created} was not created");

        // Again: TOPIC_ALREADY_EXISTS, with the fields of an error answer.
        let resp = self.call(req, v).await?;
        let r = resp.topics.first().ok_or("again: empty answer")?;
        ensure!(r.error_code == 36, "again: error {}, expected 36", r.error_code);

        // validate_only: accepted, not created.
        let checked = format!("pv-validate-v{v}");
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_validate_only(true)
            .with_topics(vec![topic(&checked)]);
        let resp = self.call(req, v).await?;
        let r = resp.topics.first().ok_or("validate only: empty answer")?;
        ensure!(r.error_code == 0, "validate only: error {} ({:?})", r.error_code, r.error_message);
        ensure!(!self.exists(&checked).await?, "{checked} was created by validate_only");
        Ok(())
    }

    async fn delete_topics(&self, v: i16) -> Result<(), String> {
        // Names are a plain list before v6 and topic states from v6, which may name a topic by id.
        let request = |states: Vec<DeleteTopicState>| {
            let req = DeleteTopicsRequest::default().with_timeout_ms(10_000);
            if v >= 6 {
                req.with_topics(states)
            } else {
                req.with_topic_names(states.into_iter().filter_map(|t| t.name).collect())
            }
        };
        let by_name = |n: &str| DeleteTopicState::default().with_name(Some(name(n)));

        let doomed = format!("pv-delete-v{v}");
        self.create(&doomed, 1).await?;
        let resp = self.call(request(vec![by_name(&doomed)]), v).await?;
        let r = resp.responses.first().ok_or("empty answer")?;
        ensure!(r.error_code == 0, "error {} ({:?})", r.error_code, r.error_message);
        ensure!(!self.exists(&doomed).await?, "{doomed} still exists");

        let missing = format!("pv-never-v{v}");
        let resp = self.call(request(vec![by_name(&missing)]), v).await?;
        let r = resp.responses.first().ok_or("missing: empty answer")?;
        ensure!(r.error_code == 3, "missing: error {}, expected 3", r.error_code);

        if v >= 6 {
            let doomed = format!("pv-delete-by-id-v{v}");
            self.create(&doomed, 1).await?;
            let id = self.describe(&doomed).await?.topic_id;
            ensure!(!id.is_nil(), "{doomed} has no topic id");
            let resp = self.call(request(vec![DeleteTopicState::default().with_topic_id(id)]), v).await?;
            let r = resp.responses.first().ok_or("by id: empty answer")?;
            ensure!(r.error_code == 0, "by id: error {} ({:?})", r.error_code, r.error_message);
            ensure!(!self.exists(&doomed).await?, "by id: {doomed} still exists");
        }
        Ok(())
    }

    async fn create_partitions(&self, v: i16) -> Result<(), String> {
        let grown = format!("pv-grow-v{v}");
        self.create(&grown, 1).await?;
        let request = |count: i32| {
            CreatePartitionsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatePartitionsTopic::default().with_name(name(&grown)).with_count(count)])
        };
        let resp = self.call(request(2), v).await?;
        let r = resp.results.first().ok_or("empty answer")?;
        ensure!(r.error_code == 0, "error {} ({:?})", r.error_code, r.error_message);
        let partitions = self.describe(&grown).await?.partitions.len();
        ensure!(partitions == 2, "{grown} has {partitions} partitions after growing to 2");

        // Shrinking: INVALID_PARTITIONS.
        let resp = self.call(request(1), v).await?;
        let r = resp.results.first().ok_or("shrink: empty answer")?;
        ensure!(r.error_code == 37, "shrink: error {}, expected 37", r.error_code);
        Ok(())
    }

    async fn describe_configs(&self, v: i16) -> Result<(), String> {
        let request = |kind: i8, res: &str, keys: Option<Vec<&str>>| {
            DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(res))
                .with_configuration_keys(keys.map(|ks| ks.into_iter().map(s).collect()))])
        };
        // All of a topic's configs.
        let resp = self.call(request(TOPIC_RESOURCE, MAIN, None), v).await?;
        let r = resp.results.first().ok_or("empty answer")?;
        ensure!(r.error_code == 0, "error {} ({:?})", r.error_code, r.error_message);
        let policy = r.configs.iter().find(|c| c.name.as_str() == "cleanup.policy").ok_or("no cleanup.policy")?;
        ensure!(policy.value.as_deref() == Some("delete"), "cleanup.policy {:?}", policy.value);

        // Named keys only.
        let resp = self.call(request(TOPIC_RESOURCE, MAIN, Some(vec!["retention.ms"])), v).await?;
        let r = resp.results.first().ok_or("keys: empty answer")?;
        ensure!(r.error_code == 0, "keys: error {}", r.error_code);
        ensure!(r.configs.len() == 1 && r.configs[0].name.as_str() == "retention.ms", "keys: {:?}", r.configs);

        // The broker's configs.
        let resp = self.call(request(BROKER_RESOURCE, &self.node.to_string(), None), v).await?;
        let r = resp.results.first().ok_or("broker: empty answer")?;
        ensure!(
            r.error_code == 0 && !r.configs.is_empty(),
            "broker: error {}, {} configs",
            r.error_code,
            r.configs.len()
        );

        // A missing topic.
        let resp = self.call(request(TOPIC_RESOURCE, "pv-nowhere", None), v).await?;
        let r = resp.results.first().ok_or("missing: empty answer")?;
        ensure!(r.error_code == 3, "missing: error {}, expected 3", r.error_code);
        Ok(())
    }

    async fn alter_configs(&self, v: i16) -> Result<(), String> {
        let value = (3_600_000 + v as i64).to_string();
        let request = |topic: &str| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(topic))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s(&value)))])])
        };
        let resp = self.call(request(MAIN), v).await?;
        let r = resp.responses.first().ok_or("empty answer")?;
        ensure!(r.error_code == 0, "error {} ({:?})", r.error_code, r.error_message);
        let configs = Admin::new(&self.admin_client).describe_configs(MAIN).await.map_err(|e| e.to_string())?;
        ensure!(
            configs.get("retention.ms") == Some(&value),
            "retention.ms is {:?}, set {value}",
            configs.get("retention.ms")
        );

        let resp = self.call(request("pv-nowhere"), v).await?;
        let r = resp.responses.first().ok_or("missing: empty answer")?;
        ensure!(r.error_code == 3, "missing: error {}, expected 3", r.error_code);
        Ok(())
    }

    async fn delete_records(&self, v: i16) -> Result<(), String> {
        let request = |topic: &str, offset: i64| {
            DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset)])])
        };
        // Each version moves the start one further (versions start at 0 and stay in range).
        let to = v as i64 + 1;
        ensure!(to < TRIMMED_RECORDS as i64, "too few records in {TRIMMED} for v{v}");
        let resp = self.call(request(TRIMMED, to), v).await?;
        let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("empty answer")?;
        ensure!(p.error_code == 0, "error {}", p.error_code);
        ensure!(p.low_watermark == to, "low watermark {}, expected {to}", p.low_watermark);

        let resp = self.call(request("pv-nowhere", 1), v).await?;
        let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or("missing: empty answer")?;
        ensure!(p.error_code == 3, "missing: error {}, expected 3", p.error_code);
        Ok(())
    }
}

/// Consumer groups: every case uses groups of its own (named after the API and version), set up
/// with the other group APIs at their highest versions, so cases do not interfere.
impl Pv {
    /// A marker for a partition that does not exist answers UNKNOWN_TOPIC_OR_PARTITION (a real
    /// one would end a transaction in the main topic).
    async fn write_txn_markers(&self, v: i16) -> Result<(), String> {
        use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
        let marker = WritableTxnMarker::default()
            .with_producer_id(kafka_protocol::messages::ProducerId(4242))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name("pv-nowhere"))
                .with_partition_indexes(vec![0])]);
        let req = kafka_protocol::messages::WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let resp = self.call(req, v).await?;
        let codes: Vec<i16> = resp
            .markers
            .iter()
            .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .collect();
        ensure!(codes == vec![3], "codes {codes:?}");
        Ok(())
    }

    /// The end of the broker's only leader epoch is its log end; an unknown partition answers
    /// UNKNOWN_TOPIC_OR_PARTITION.
    async fn offset_for_leader_epoch(&self, v: i16) -> Result<(), String> {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{
            OffsetForLeaderPartition, OffsetForLeaderTopic,
        };
        let ask = |topic: &str| {
            OffsetForLeaderTopic::default().with_topic(name(topic)).with_partitions(vec![
                OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(0),
            ])
        };
        let req = kafka_protocol::messages::OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ask(MAIN), ask("pv-nowhere")]);
        let resp = self.call(req, v).await?;
        let got: Vec<(String, i16, i32, i64)> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| (t.topic.0.to_string(), p.error_code, p.leader_epoch, p.end_offset))
            })
            .collect();
        let end = self.list_end().await?;
        let want = vec![(MAIN.to_string(), 0, 0, end), ("pv-nowhere".to_string(), 3, -1, -1)];
        ensure!(got == want, "answered {got:?}, want {want:?}");
        Ok(())
    }

    /// A single broker has nothing to elect: ELECTION_NOT_NEEDED per partition, and an empty
    /// answer when asked for every partition.
    async fn elect_leaders(&self, v: i16) -> Result<(), String> {
        let request = |tps: Option<Vec<TopicPartitions>>| {
            ElectLeadersRequest::default().with_election_type(0).with_timeout_ms(10_000).with_topic_partitions(tps)
        };
        let named = vec![
            TopicPartitions::default().with_topic(name(MAIN)).with_partitions(vec![0]),
            TopicPartitions::default().with_topic(name("pv-nowhere")).with_partitions(vec![0]),
        ];
        let resp = self.call(request(Some(named)), v).await?;
        ensure!(resp.error_code == 0, "error {}", resp.error_code);
        let codes: Vec<(String, i16)> = resp
            .replica_election_results
            .iter()
            .flat_map(|t| t.partition_result.iter().map(|p| (t.topic.0.to_string(), p.error_code)))
            .collect();
        ensure!(codes == vec![(MAIN.to_string(), 84), ("pv-nowhere".to_string(), 3)], "results {codes:?}");
        let resp = self.call(request(None), v).await?;
        ensure!(resp.replica_election_results.is_empty(), "all: {:?}", resp.replica_election_results);
        Ok(())
    }

    /// A single broker keeps its replicas: moving onto itself is a no-op, elsewhere refused,
    /// and there is nothing to cancel.
    async fn alter_reassignments(&self, v: i16) -> Result<(), String> {
        let request = |replicas: Option<Vec<i32>>| {
            AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![
                ReassignableTopic::default().with_name(name(MAIN)).with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                ]),
            ])
        };
        for (replicas, want) in [(Some(vec![self.node]), 0), (Some(vec![self.node + 100]), 39), (None, 85)] {
            let resp = self.call(request(replicas.clone()), v).await?;
            ensure!(resp.error_code == 0, "{replicas:?}: error {}", resp.error_code);
            let code = resp.responses.first().and_then(|t| t.partitions.first()).map(|p| p.error_code);
            ensure!(code == Some(want), "{replicas:?}: partition error {code:?}, expected {want}");
        }
        Ok(())
    }

    async fn list_reassignments(&self, v: i16) -> Result<(), String> {
        let resp = self.call(ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000), v).await?;
        ensure!(resp.error_code == 0 && resp.topics.is_empty(), "error {}, topics {:?}", resp.error_code, resp.topics);
        Ok(())
    }

    fn join_request(group_id: &str, member_id: &str, instance: Option<&str>, v: i16) -> JoinGroupRequest {
        let mut req = JoinGroupRequest::default()
            .with_group_id(group(group_id))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_member_id(s(member_id))
            .with_protocol_type(s(CONSUMER))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s(ASSIGNOR))
                .with_metadata(subscription())]);
        if v >= 1 {
            req = req.with_rebalance_timeout_ms(SESSION_TIMEOUT_MS);
        }
        if v >= 5 {
            req = req.with_group_instance_id(instance.map(s));
        }
        if v >= 8 {
            req = req.with_reason(Some(s("protocol-versions test")));
        }
        req
    }

    /// Join `group_id` as its only member at JoinGroup `v`: first with no member id (from v4 a
    /// dynamic member gets MEMBER_ID_REQUIRED and its id), then with it. The member leads the new
    /// generation and sees itself with its subscription.
    async fn join(&self, group_id: &str, instance: Option<&str>, v: i16) -> Result<Member, String> {
        let mut member_id = String::new();
        if v >= 4 && instance.is_none() {
            let resp = self.call(Self::join_request(group_id, "", None, v), v).await?;
            ensure!(
                resp.error_code == MEMBER_ID_REQUIRED,
                "first join: error {}, expected {MEMBER_ID_REQUIRED}",
                resp.error_code
            );
            ensure!(!resp.member_id.is_empty(), "first join: no member id with MEMBER_ID_REQUIRED");
            ensure!(resp.generation_id == -1, "first join: generation {}", resp.generation_id);
            member_id = resp.member_id.to_string();
        }
        let resp = self.call(Self::join_request(group_id, &member_id, instance, v), v).await?;
        ensure!(resp.error_code == 0, "join: error {}", resp.error_code);
        ensure!(!resp.member_id.is_empty(), "join: no member id");
        ensure!(
            member_id.is_empty() || resp.member_id.as_str() == member_id,
            "join: member id {:?}, joined as {member_id:?}",
            resp.member_id
        );
        ensure!(resp.generation_id >= 1, "join: generation {}", resp.generation_id);
        ensure!(resp.leader == resp.member_id, "join: leader {:?}, member {:?}", resp.leader, resp.member_id);
        ensure!(resp.protocol_name.as_deref() == Some(ASSIGNOR), "join: protocol {:?}", resp.protocol_name);
        ensure!(
            v < 7 || resp.protocol_type.as_deref() == Some(CONSUMER),
            "join: protocol type {:?}",
            resp.protocol_type
        );
        ensure!(!resp.skip_assignment, "join: the only member is told to skip assignment");
        ensure!(resp.members.len() == 1, "join: the leader sees {} members", resp.members.len());
        let me = &resp.members[0];
        ensure!(me.member_id == resp.member_id, "join: the leader sees member {:?}", me.member_id);
        ensure!(me.metadata == subscription(), "join: member metadata {:?}", me.metadata);
        ensure!(
            v < 5 || me.group_instance_id.as_deref() == instance,
            "join: member instance id {:?}, expected {instance:?}",
            me.group_instance_id
        );
        Ok(Member {
            group: group_id.to_string(),
            id: resp.member_id.to_string(),
            instance: instance.map(str::to_string),
            generation: resp.generation_id,
        })
    }

    fn sync_request(m: &Member, v: i16) -> SyncGroupRequest {
        let mut req = SyncGroupRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id(m.generation)
            .with_member_id(s(&m.id))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&m.id))
                .with_assignment(assignment())]);
        if v >= 3 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        if v >= 5 {
            req = req.with_protocol_type(Some(s(CONSUMER))).with_protocol_name(Some(s(ASSIGNOR)));
        }
        req
    }

    /// SyncGroup at `v` as the leader: the member gets back the assignment it gave itself.
    async fn sync(&self, m: &Member, v: i16) -> Result<(), String> {
        let resp = self.call(Self::sync_request(m, v), v).await?;
        ensure!(resp.error_code == 0, "sync: error {}", resp.error_code);
        ensure!(resp.assignment == assignment(), "sync: assignment {:?}", resp.assignment);
        ensure!(
            v < 5
                || (resp.protocol_type.as_deref() == Some(CONSUMER) && resp.protocol_name.as_deref() == Some(ASSIGNOR)),
            "sync: protocol {:?}/{:?}",
            resp.protocol_type,
            resp.protocol_name
        );
        Ok(())
    }

    /// A member of a new Stable group `group_id`: joined and synced at the highest versions.
    async fn stable(&self, group_id: &str, instance: Option<&str>) -> Result<Member, String> {
        let m = self.join(group_id, instance, self.max_version(ApiKey::JoinGroup)).await?;
        self.sync(&m, self.max_version(ApiKey::SyncGroup)).await?;
        Ok(m)
    }

    /// The error of a Heartbeat from `m` at `v`.
    async fn heartbeat_error(&self, m: &Member, v: i16) -> Result<i16, String> {
        let mut req = HeartbeatRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id(m.generation)
            .with_member_id(s(&m.id));
        if v >= 3 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        Ok(self.call(req, v).await?.error_code)
    }

    /// The error of `m` leaving at LeaveGroup `v`: by member id before v3, as the only entry of
    /// the members list from v3 (by instance id alone when `m.id` is empty).
    async fn leave_error(&self, m: &Member, v: i16) -> Result<i16, String> {
        let req = LeaveGroupRequest::default().with_group_id(group(&m.group));
        if v < 3 {
            return Ok(self.call(req.with_member_id(s(&m.id)), v).await?.error_code);
        }
        let mut who =
            MemberIdentity::default().with_member_id(s(&m.id)).with_group_instance_id(m.instance.as_deref().map(s));
        if v >= 5 {
            who = who.with_reason(Some(s("protocol-versions test")));
        }
        let resp = self.call(req.with_members(vec![who]), v).await?;
        if resp.error_code != 0 {
            ensure!(resp.members.is_empty(), "leave: error {} with members {:?}", resp.error_code, resp.members);
            return Ok(resp.error_code);
        }
        ensure!(resp.members.len() == 1, "leave: {} member answers", resp.members.len());
        let r = &resp.members[0];
        ensure!(r.member_id.as_str() == m.id, "leave: member {:?}, expected {:?}", r.member_id, m.id);
        ensure!(
            r.group_instance_id.as_deref() == m.instance.as_deref(),
            "leave: instance {:?}, expected {:?}",
            r.group_instance_id,
            m.instance
        );
        Ok(r.error_code)
    }

    /// Commit `offset` (with metadata `meta`) for one partition as `m`, at OffsetCommit `v`.
    /// Returns the partition's error.
    async fn commit(
        &self,
        m: &Member,
        topic: &str,
        partition: i32,
        offset: i64,
        meta: &str,
        v: i16,
    ) -> Result<i16, String> {
        let mut p = OffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s(meta)));
        if v >= 6 {
            p = p.with_committed_leader_epoch(LEADER_EPOCH);
        }
        let mut req = OffsetCommitRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id_or_member_epoch(m.generation)
            .with_member_id(s(&m.id))
            .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![p])]);
        if v >= 7 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.topics.len() == 1 && resp.topics[0].name.0.as_str() == topic, "commit: topics {:?}", resp.topics);
        let parts = &resp.topics[0].partitions;
        ensure!(parts.len() == 1 && parts[0].partition_index == partition, "commit: partitions {parts:?}");
        Ok(parts[0].error_code)
    }

    /// Commit at the highest version, expecting success.
    async fn commit_ok(&self, m: &Member, partition: i32, offset: i64, meta: &str) -> Result<(), String> {
        let e = self.commit(m, GROUP_TOPIC, partition, offset, meta, self.max_version(ApiKey::OffsetCommit)).await?;
        ensure!(e == 0, "committing {GROUP_TOPIC}-{partition} to {}: error {e}", m.group);
        Ok(())
    }

    fn offset_fetch_request(group_ids: &[&str], partitions: Option<&[i32]>, v: i16) -> OffsetFetchRequest {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            req = req.with_groups(
                group_ids
                    .iter()
                    .map(|g| {
                        OffsetFetchRequestGroup::default().with_group_id(group(g)).with_topics(partitions.map(|ps| {
                            vec![OffsetFetchRequestTopics::default()
                                .with_name(name(GROUP_TOPIC))
                                .with_partition_indexes(ps.to_vec())]
                        }))
                    })
                    .collect(),
            );
        } else {
            assert_eq!(group_ids.len(), 1, "OffsetFetch v{v} asks about one group");
            req = req.with_group_id(group(group_ids[0])).with_topics(partitions.map(|ps| {
                vec![OffsetFetchRequestTopic::default()
                    .with_name(name(GROUP_TOPIC))
                    .with_partition_indexes(ps.to_vec())]
            }));
        }
        // What a read_committed consumer asks (there are no transactions to wait for).
        if v >= 7 {
            req = req.with_require_stable(true);
        }
        req
    }

    /// The committed offsets of `group_id` in [`GROUP_TOPIC`] (`partitions`, or all with a
    /// committed offset if `None`, v2+) at OffsetFetch `v`; any error fails.
    async fn committed(&self, group_id: &str, partitions: Option<&[i32]>, v: i16) -> Result<Vec<Committed>, String> {
        let resp = self.call(Self::offset_fetch_request(&[group_id], partitions, v), v).await?;
        let read = |name: &TopicName, p: i32, offset: i64, epoch: i32, meta: &Option<StrBytes>, e: i16| {
            ensure!(name.0.as_str() == GROUP_TOPIC, "fetched topic {:?}", name.0);
            ensure!(e == 0, "partition {p}: error {e}");
            Ok(Committed::new(p, offset, epoch, meta.as_deref().unwrap_or("<null>")))
        };
        let mut out = Vec::new();
        if v >= 8 {
            ensure!(resp.groups.len() == 1, "{} groups in the answer", resp.groups.len());
            let g = &resp.groups[0];
            ensure!(g.group_id.0.as_str() == group_id, "group {:?}, expected {group_id:?}", g.group_id.0);
            ensure!(g.error_code == 0, "group error {}", g.error_code);
            for t in &g.topics {
                for p in &t.partitions {
                    let (i, o, ep, m, e) =
                        (p.partition_index, p.committed_offset, p.committed_leader_epoch, &p.metadata, p.error_code);
                    out.push(read(&t.name, i, o, ep, m, e)?);
                }
            }
        } else {
            ensure!(resp.error_code == 0, "error {}", resp.error_code);
            for t in &resp.topics {
                for p in &t.partitions {
                    let (i, o, ep, m, e) =
                        (p.partition_index, p.committed_offset, p.committed_leader_epoch, &p.metadata, p.error_code);
                    out.push(read(&t.name, i, o, ep, m, e)?);
                }
            }
        }
        Ok(out)
    }

    /// Committed offsets read at the highest OffsetFetch version.
    async fn committed_now(&self, group_id: &str, partitions: &[i32]) -> Result<Vec<Committed>, String> {
        self.committed(group_id, Some(partitions), self.max_version(ApiKey::OffsetFetch)).await
    }

    /// One group described at the highest DescribeGroups version.
    async fn describe_group(&self, group_id: &str) -> Result<DescribedGroup, String> {
        let req = DescribeGroupsRequest::default().with_groups(vec![group(group_id)]);
        let resp = self.call(req, self.max_version(ApiKey::DescribeGroups)).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| format!("{group_id} not described"))?;
        ensure!(g.error_code == 0, "describing {group_id}: error {}", g.error_code);
        Ok(g)
    }

    /// Every group at ListGroups `v` (only those in `states` from v4 if any are given).
    async fn list(&self, states: &[&str], v: i16) -> Result<Vec<ListedGroup>, String> {
        let mut req = ListGroupsRequest::default();
        if v >= 4 {
            req = req.with_states_filter(states.iter().copied().map(s).collect());
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.error_code == 0, "list: error {}", resp.error_code);
        Ok(resp.groups)
    }

    async fn find_coordinator(&self, v: i16) -> Result<(), String> {
        let (host, port) = self.advertised_addr.rsplit_once(':').ok_or("advertised address without a port")?;
        let port: i32 = port.parse().map_err(|e| format!("advertised port {port:?}: {e}"))?;
        let is_here = |node: BrokerId, h: &StrBytes, p: i32| node.0 == self.node && h.as_str() == host && p == port;
        let keys = [format!("pv-coordinator-v{v}"), format!("pv-coordinator-other-v{v}")];
        let txn = format!("pv-transaction-v{v}");
        if v < 4 {
            // A group (key type 0; v0 has no key type and means a group).
            let resp = self.call(FindCoordinatorRequest::default().with_key(s(&keys[0])), v).await?;
            ensure!(resp.error_code == 0, "group: error {} ({:?})", resp.error_code, resp.error_message);
            ensure!(is_here(resp.node_id, &resp.host, resp.port), "group: coordinator {resp:?}");
            if v >= 1 {
                let req = FindCoordinatorRequest::default().with_key(s(&txn)).with_key_type(1);
                let resp = self.call(req, v).await?;
                ensure!(resp.error_code == 0, "transaction: error {} ({:?})", resp.error_code, resp.error_message);
                ensure!(is_here(resp.node_id, &resp.host, resp.port), "transaction: coordinator {resp:?}");
                let req = FindCoordinatorRequest::default().with_key(s(&txn)).with_key_type(2);
                let resp = self.call(req, v).await?;
                ensure!(resp.error_code == INVALID_REQUEST, "key type 2: error {}", resp.error_code);
            }
            return Ok(());
        }
        // v4+: keys in a batch, answered in order.
        let req = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(keys.iter().map(|k| s(k)).collect());
        let resp = self.call(req, v).await?;
        ensure!(
            resp.coordinators.len() == keys.len(),
            "group: {} coordinators for {} keys",
            resp.coordinators.len(),
            keys.len()
        );
        for (c, key) in resp.coordinators.iter().zip(&keys) {
            ensure!(c.key.as_str() == key, "group: key {:?}, expected {key:?}", c.key);
            ensure!(c.error_code == 0, "group {key}: error {} ({:?})", c.error_code, c.error_message);
            ensure!(is_here(c.node_id, &c.host, c.port), "group {key}: coordinator {c:?}");
        }
        let req = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s(&txn)]);
        let resp = self.call(req, v).await?;
        let c = resp.coordinators.first().ok_or("transaction: no coordinator")?;
        ensure!(c.key.as_str() == txn, "transaction: key {:?}", c.key);
        ensure!(c.error_code == 0, "transaction: error {} ({:?})", c.error_code, c.error_message);
        ensure!(is_here(c.node_id, &c.host, c.port), "transaction: coordinator {c:?}");
        Ok(())
    }

    async fn join_group(&self, v: i16) -> Result<(), String> {
        // A dynamic member through a whole cycle: join here, then sync, heartbeat and leave.
        let group_id = format!("pv-join-v{v}");
        let m = self.join(&group_id, None, v).await?;
        ensure!(m.generation == 1, "first generation {}", m.generation);
        self.sync(&m, self.max_version(ApiKey::SyncGroup)).await?;
        let e = self.heartbeat_error(&m, self.max_version(ApiKey::Heartbeat)).await?;
        ensure!(e == 0, "heartbeat after joining: error {e}");

        // A member id the group does not know: UNKNOWN_MEMBER_ID.
        let resp = self.call(Self::join_request(&group_id, "pv-stranger", None, v), v).await?;
        ensure!(
            resp.error_code == UNKNOWN_MEMBER_ID,
            "stranger: error {}, expected {UNKNOWN_MEMBER_ID}",
            resp.error_code
        );

        let e = self.leave_error(&m, self.max_version(ApiKey::LeaveGroup)).await?;
        ensure!(e == 0, "leaving: error {e}");
        let g = self.describe_group(&group_id).await?;
        ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after leaving: {g:?}");

        // An empty group id: INVALID_GROUP_ID; a session timeout below the minimum: INVALID_SESSION_TIMEOUT.
        let resp = self.call(Self::join_request("", "", None, v), v).await?;
        ensure!(
            resp.error_code == INVALID_GROUP_ID,
            "empty group id: error {}, expected {INVALID_GROUP_ID}",
            resp.error_code
        );
        let short = Self::join_request(&format!("pv-join-short-v{v}"), "", None, v).with_session_timeout_ms(1_000);
        let resp = self.call(short, v).await?;
        ensure!(
            resp.error_code == INVALID_SESSION_TIMEOUT,
            "short session: error {}, expected {INVALID_SESSION_TIMEOUT}",
            resp.error_code
        );

        // v5+: a static member joins at once (no MEMBER_ID_REQUIRED) and is listed with its instance id.
        if v >= 5 {
            let instance = format!("pv-join-instance-v{v}");
            let m = self.join(&format!("pv-join-static-v{v}"), Some(&instance), v).await?;
            let e = self.leave_error(&m, self.max_version(ApiKey::LeaveGroup)).await?;
            ensure!(e == 0, "static member leaving: error {e}");
        }
        Ok(())
    }

    async fn sync_group(&self, v: i16) -> Result<(), String> {
        let m = self.join(&format!("pv-sync-v{v}"), None, self.max_version(ApiKey::JoinGroup)).await?;
        // While the group waits for its leader's assignment, wrong requests are turned away.
        let cases = [
            ("stale generation", m.with_generation(m.generation - 1), ILLEGAL_GENERATION),
            ("unknown member", m.with_id("pv-stranger"), UNKNOWN_MEMBER_ID),
            ("empty group id", m.in_group(""), INVALID_GROUP_ID),
        ];
        for (what, bad, want) in cases {
            let resp = self.call(Self::sync_request(&bad, v), v).await?;
            ensure!(resp.error_code == want, "{what}: error {}, expected {want}", resp.error_code);
        }
        if v >= 5 {
            let req = Self::sync_request(&m, v).with_protocol_name(Some(s("roundrobin")));
            let resp = self.call(req, v).await?;
            ensure!(
                resp.error_code == INCONSISTENT_GROUP_PROTOCOL,
                "other protocol: error {}, expected {INCONSISTENT_GROUP_PROTOCOL}",
                resp.error_code
            );
        }
        self.sync(&m, v).await?;
        // Again once Stable: the member gets its assignment back.
        self.sync(&m, v).await?;
        let g = self.describe_group(&m.group).await?;
        ensure!(g.group_state.as_str() == "Stable", "after sync: state {}", g.group_state.as_str());
        let e = self.heartbeat_error(&m, self.max_version(ApiKey::Heartbeat)).await?;
        ensure!(e == 0, "heartbeat after sync: error {e}");
        Ok(())
    }

    async fn heartbeat(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-heartbeat-v{v}"), None).await?;
        let cases = [
            ("member", m.clone(), 0),
            ("unknown member", m.with_id("pv-stranger"), UNKNOWN_MEMBER_ID),
            ("stale generation", m.with_generation(m.generation - 1), ILLEGAL_GENERATION),
            ("empty group id", m.in_group(""), INVALID_GROUP_ID),
        ];
        for (what, who, want) in cases {
            let e = self.heartbeat_error(&who, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        Ok(())
    }

    async fn leave_group(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-leave-v{v}"), None).await?;
        let e = self.leave_error(&m, v).await?;
        ensure!(e == 0, "leaving: error {e}");
        let g = self.describe_group(&m.group).await?;
        ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after leaving: {g:?}");
        // Gone already: UNKNOWN_MEMBER_ID (the member's error from v3, the answer's before).
        let e = self.leave_error(&m, v).await?;
        ensure!(e == UNKNOWN_MEMBER_ID, "leaving again: error {e}, expected {UNKNOWN_MEMBER_ID}");
        let e = self.leave_error(&m.in_group(""), v).await?;
        ensure!(e == INVALID_GROUP_ID, "empty group id: error {e}, expected {INVALID_GROUP_ID}");

        // v3+: an administrator removes a static member by its instance id alone (KIP-345).
        if v >= 3 {
            let instance = format!("pv-leave-instance-v{v}");
            let m = self.stable(&format!("pv-leave-static-v{v}"), Some(&instance)).await?;
            let e = self.leave_error(&m.with_id(""), v).await?;
            ensure!(e == 0, "removing the static member: error {e}");
            let g = self.describe_group(&m.group).await?;
            ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after removing: {g:?}");
        }
        Ok(())
    }

    async fn offset_commit(&self, v: i16) -> Result<(), String> {
        let epoch = if v >= 6 { LEADER_EPOCH } else { -1 };
        let m = self.stable(&format!("pv-commit-v{v}"), None).await?;
        let (offset, meta) = (100 + v as i64, format!("commit-v{v}"));
        let e = self.commit(&m, GROUP_TOPIC, 0, offset, &meta, v).await?;
        ensure!(e == 0, "member: error {e}");
        let got = self.committed_now(&m.group, &[0]).await?;
        ensure!(got == [Committed::new(0, offset, epoch, &meta)], "member: committed {got:?}");

        let cases = [
            ("stale generation", m.with_generation(m.generation - 1), GROUP_TOPIC, 0, ILLEGAL_GENERATION),
            ("unknown member", m.with_id("pv-stranger"), GROUP_TOPIC, 0, UNKNOWN_MEMBER_ID),
            ("unknown topic", m.clone(), "pv-nowhere", 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("unknown partition", m.clone(), GROUP_TOPIC, GROUP_TOPIC_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION),
            // A group-managed commit to a group that does not exist (Kafka's answer too).
            ("no such group", m.in_group(&format!("pv-commit-none-v{v}")), GROUP_TOPIC, 0, ILLEGAL_GENERATION),
        ];
        for (what, who, topic, partition, want) in cases {
            let e = self.commit(&who, topic, partition, offset + 1, "rejected", v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        let got = self.committed_now(&m.group, &[0]).await?;
        ensure!(got == [Committed::new(0, offset, epoch, &meta)], "after rejected commits: {got:?}");

        // A simple consumer (no member id, generation -1) commits to a group without members.
        let simple = Member::simple(&format!("pv-commit-simple-v{v}"));
        let e = self.commit(&simple, GROUP_TOPIC, 1, offset, &meta, v).await?;
        ensure!(e == 0, "simple consumer: error {e}");
        let got = self.committed_now(&simple.group, &[1]).await?;
        ensure!(got == [Committed::new(1, offset, epoch, &meta)], "simple consumer: committed {got:?}");
        Ok(())
    }

    async fn offset_fetch(&self, v: i16) -> Result<(), String> {
        let group_id = format!("pv-fetch-v{v}");
        let (offset, meta) = (200 + v as i64, format!("fetch-v{v}"));
        self.commit_ok(&Member::simple(&group_id), 0, offset, &meta).await?;
        // The leader epoch is in the answer from v5.
        let epoch = if v >= 5 { LEADER_EPOCH } else { -1 };
        let committed = Committed::new(0, offset, epoch, &meta);

        // Named partitions, one never committed.
        let got = self.committed(&group_id, Some(&[0, 1]), v).await?;
        ensure!(got == [committed.clone(), Committed::none(1)], "named partitions: {got:?}");
        // Every committed partition (null topics, v2+).
        if v >= 2 {
            let got = self.committed(&group_id, None, v).await?;
            ensure!(got == [committed.clone()], "all partitions: {got:?}");
        }
        // A group that does not exist: no offsets, no error.
        let got = self.committed(&format!("pv-fetch-none-v{v}"), Some(&[0]), v).await?;
        ensure!(got == [Committed::none(0)], "unknown group: {got:?}");

        // v8+: several groups at once, answered in order.
        if v >= 8 {
            let none = format!("pv-fetch-none-v{v}");
            let resp = self.call(Self::offset_fetch_request(&[&group_id, &none], Some(&[0]), v), v).await?;
            let answered: Vec<(&str, i16, Vec<i64>)> = resp
                .groups
                .iter()
                .map(|g| {
                    let offsets =
                        g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.committed_offset)).collect();
                    (g.group_id.0.as_str(), g.error_code, offsets)
                })
                .collect();
            let want = vec![(group_id.as_str(), 0, vec![offset]), (none.as_str(), 0, vec![-1])];
            ensure!(answered == want, "two groups: {answered:?}, expected {want:?}");
        }
        Ok(())
    }

    async fn list_groups(&self, v: i16) -> Result<(), String> {
        let stable = self.stable(&format!("pv-list-v{v}"), None).await?;
        let empty = format!("pv-list-empty-v{v}");
        self.commit_ok(&Member::simple(&empty), 0, 1, "").await?;
        let find = |gs: &[ListedGroup], id: &str| gs.iter().find(|g| g.group_id.0.as_str() == id).cloned();

        let all = self.list(&[], v).await?;
        let g = find(&all, &stable.group).ok_or_else(|| format!("{} not listed", stable.group))?;
        ensure!(g.protocol_type.as_str() == CONSUMER, "{}: protocol type {:?}", stable.group, g.protocol_type);
        ensure!(v < 4 || g.group_state.as_str() == "Stable", "{}: state {:?}", stable.group, g.group_state);
        // A group that only stores offsets: listed, without protocol type.
        let g = find(&all, &empty).ok_or_else(|| format!("{empty} not listed"))?;
        ensure!(g.protocol_type.is_empty(), "{empty}: protocol type {:?}", g.protocol_type);
        ensure!(v < 4 || g.group_state.as_str() == "Empty", "{empty}: state {:?}", g.group_state);

        // v4+: filtered by state.
        if v >= 4 {
            let listed = self.list(&["Stable"], v).await?;
            ensure!(find(&listed, &stable.group).is_some(), "Stable: {} not listed", stable.group);
            ensure!(find(&listed, &empty).is_none(), "Stable: {empty} listed");
            ensure!(listed.iter().all(|g| g.group_state.as_str() == "Stable"), "Stable: {listed:?}");
            let listed = self.list(&["Empty", "Dead"], v).await?;
            ensure!(find(&listed, &stable.group).is_none(), "Empty: {} listed", stable.group);
            ensure!(find(&listed, &empty).is_some(), "Empty: {empty} not listed");
        }
        Ok(())
    }

    async fn describe_groups(&self, v: i16) -> Result<(), String> {
        // From v4 members show their instance id: make this one static.
        let instance = (v >= 4).then(|| format!("pv-describe-instance-v{v}"));
        let m = self.stable(&format!("pv-describe-v{v}"), instance.as_deref()).await?;
        let none = format!("pv-describe-none-v{v}");
        let resp =
            self.call(DescribeGroupsRequest::default().with_groups(vec![group(&m.group), group(&none)]), v).await?;
        ensure!(resp.groups.len() == 2, "{} groups described", resp.groups.len());

        let g = &resp.groups[0];
        ensure!(g.group_id.0.as_str() == m.group, "first group {:?}", g.group_id.0);
        ensure!(g.error_code == 0, "error {}", g.error_code);
        ensure!(g.group_state.as_str() == "Stable", "state {:?}", g.group_state);
        ensure!(g.protocol_type.as_str() == CONSUMER, "protocol type {:?}", g.protocol_type);
        ensure!(g.protocol_data.as_str() == ASSIGNOR, "protocol {:?}", g.protocol_data);
        // Not asked for (and not computed): Kafka's "not requested" marker.
        ensure!(v < 3 || g.authorized_operations == i32::MIN, "authorized operations {}", g.authorized_operations);
        ensure!(g.members.len() == 1, "{} members", g.members.len());
        let member = &g.members[0];
        ensure!(member.member_id.as_str() == m.id, "member {:?}, expected {:?}", member.member_id, m.id);
        ensure!(
            member.group_instance_id.as_deref() == instance.as_deref(),
            "instance id {:?}",
            member.group_instance_id
        );
        ensure!(member.client_id.as_str() == CLIENT_ID, "client id {:?}", member.client_id);
        ensure!(member.client_host.as_str() == "/127.0.0.1", "client host {:?}", member.client_host);
        ensure!(member.member_metadata == subscription(), "metadata {:?}", member.member_metadata);
        ensure!(member.member_assignment == assignment(), "assignment {:?}", member.member_assignment);

        // A group that does not exist: Dead, without error (as Kafka answers before v6).
        let g = &resp.groups[1];
        ensure!(g.group_id.0.as_str() == none, "second group {:?}", g.group_id.0);
        ensure!(g.error_code == 0 && g.group_state.as_str() == "Dead" && g.members.is_empty(), "unknown group: {g:?}");
        Ok(())
    }

    async fn delete_groups(&self, v: i16) -> Result<(), String> {
        // Empty groups: one that only stores offsets, one whose member left.
        let offsets_only = format!("pv-delete-offsets-v{v}");
        self.commit_ok(&Member::simple(&offsets_only), 0, 5, "").await?;
        let left = self.stable(&format!("pv-delete-left-v{v}"), None).await?;
        self.commit_ok(&left, 1, 6, "").await?;
        let e = self.leave_error(&left, self.max_version(ApiKey::LeaveGroup)).await?;
        ensure!(e == 0, "leaving {}: error {e}", left.group);
        let busy = self.stable(&format!("pv-delete-busy-v{v}"), None).await?;
        let none = format!("pv-delete-none-v{v}");

        let ids = [&offsets_only, &left.group, &busy.group, &none];
        let resp = self
            .call(DeleteGroupsRequest::default().with_groups_names(ids.iter().map(|g| group(g)).collect()), v)
            .await?;
        let got: Vec<(&str, i16)> = resp.results.iter().map(|r| (r.group_id.0.as_str(), r.error_code)).collect();
        let want = vec![
            (ids[0].as_str(), 0),
            (ids[1].as_str(), 0),
            (ids[2].as_str(), NON_EMPTY_GROUP),
            (ids[3].as_str(), GROUP_ID_NOT_FOUND),
        ];
        ensure!(got == want, "results {got:?}, expected {want:?}");

        // The deleted groups are gone with their offsets; the busy one is untouched.
        let listed = self.list(&[], self.max_version(ApiKey::ListGroups)).await?;
        for id in [&offsets_only, &left.group] {
            ensure!(!listed.iter().any(|g| g.group_id.0.as_str() == id.as_str()), "{id} still listed");
        }
        let got = self.committed_now(&offsets_only, &[0]).await?;
        ensure!(got == [Committed::none(0)], "{offsets_only}: offsets left {got:?}");
        let got = self.committed_now(&left.group, &[1]).await?;
        ensure!(got == [Committed::none(1)], "{}: offsets left {got:?}", left.group);
        let g = self.describe_group(&busy.group).await?;
        ensure!(g.group_state.as_str() == "Stable" && g.members.len() == 1, "{}: {g:?}", busy.group);
        Ok(())
    }

    /// The error of a TxnOffsetCommit of `offset` for `topic`-`partition` by `m` in the
    /// transaction `txn` of producer `producer_id` at `v`.
    #[allow(clippy::too_many_arguments)]
    async fn txn_commit(
        &self,
        m: &Member,
        txn: &str,
        (producer_id, epoch): (i64, i16),
        topic: &str,
        partition: i32,
        offset: i64,
        v: i16,
    ) -> Result<i16, String> {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let mut p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s("txn")));
        if v >= 2 {
            p = p.with_committed_leader_epoch(LEADER_EPOCH);
        }
        let mut req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_group_id(group(&m.group))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![p])]);
        if v >= 3 {
            req = req
                .with_generation_id(m.generation)
                .with_member_id(s(&m.id))
                .with_group_instance_id(m.instance.as_deref().map(s));
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.topics.len() == 1 && resp.topics[0].name.0.as_str() == topic, "txn commit: {:?}", resp.topics);
        let parts = &resp.topics[0].partitions;
        ensure!(parts.len() == 1 && parts[0].partition_index == partition, "txn commit: partitions {parts:?}");
        Ok(parts[0].error_code)
    }

    /// TxnOffsetCommit: the offset stays pending (a RequireStable OffsetFetch answers
    /// UNSTABLE_OFFSET_COMMIT, an older one the last committed offset) while its transaction is
    /// open; ending transactions is tests/txn_offsets.rs's business. From v3 the member and its
    /// generation are checked; before, a group with members takes commits from anyone.
    async fn txn_offset_commit(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-txn-commit-v{v}"), None).await?;
        let who = if v >= 3 { m.clone() } else { Member::simple(&m.group) };
        // A real transaction that holds the group's offsets partition: the broker verifies a
        // transaction's first write to a partition with the transaction coordinator.
        let txn = format!("pv-txn-commit-v{v}");
        let ids = self.txn_init(&txn).await?;
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(ProducerId(ids.0))
            .with_producer_epoch(ids.1)
            .with_group_id(group(&m.group));
        let resp = self.call(add, self.max_version(ApiKey::AddOffsetsToTxn)).await?;
        ensure!(resp.error_code == 0, "add offsets: error {}", resp.error_code);
        let e = self.txn_commit(&who, &txn, ids, GROUP_TOPIC, 0, 300 + v as i64, v).await?;
        ensure!(e == 0, "member: error {e}");

        let fv = self.max_version(ApiKey::OffsetFetch);
        let resp = self.call(Self::offset_fetch_request(&[&m.group], Some(&[0]), fv), fv).await?;
        let parts: Vec<(i64, i16)> = resp
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.committed_offset, p.error_code))))
            .collect();
        ensure!(parts == [(-1, UNSTABLE_OFFSET_COMMIT)], "RequireStable while pending: {parts:?}");
        let got = self.committed(&m.group, Some(&[0]), 6).await?;
        ensure!(got == [Committed::none(0)], "without RequireStable while pending: {got:?}");

        let mut cases = vec![
            ("unknown topic", who.clone(), "pv-nowhere", UNKNOWN_TOPIC_OR_PARTITION),
            ("empty group id", who.in_group(""), GROUP_TOPIC, INVALID_GROUP_ID),
        ];
        if v >= 3 {
            cases.push(("stale generation", m.with_generation(m.generation - 1), GROUP_TOPIC, ILLEGAL_GENERATION));
            cases.push(("unknown member", m.with_id("pv-stranger"), GROUP_TOPIC, UNKNOWN_MEMBER_ID));
        }
        for (what, who, topic, want) in cases {
            let e = self.txn_commit(&who, &txn, ids, topic, 1, 1, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        Ok(())
    }

    /// InitProducerId with a transactional id at the highest version: (producer id, epoch).
    async fn txn_init(&self, txn: &str) -> Result<(i64, i16), String> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(txn))))
            .with_transaction_timeout_ms(60_000);
        let resp = self.call(req, self.max_version(ApiKey::InitProducerId)).await?;
        ensure!(resp.error_code == 0, "init {txn}: error {}", resp.error_code);
        Ok((resp.producer_id.0, resp.producer_epoch))
    }

    /// AddPartitionsToTxn of [`TXN_TOPIC`]-0 (or `topic`) at `v`: the partition's error code.
    async fn txn_add(&self, txn: &str, pid: i64, epoch: i16, topic: &str, v: i16) -> Result<i16, String> {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(txn)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0])]);
        let resp = self.call(req, v).await?;
        let codes: Vec<(String, i32, i16)> = resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_error_code))
            })
            .collect();
        ensure!(codes.len() == 1 && codes[0].0 == topic && codes[0].1 == 0, "add: results {codes:?}");
        Ok(codes[0].2)
    }

    /// EndTxn at `v`: (error, producer id, epoch) with the id and epoch -1 before v5.
    async fn txn_end(&self, txn: &str, pid: i64, epoch: i16, commit: bool, v: i16) -> Result<(i16, i64, i16), String> {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let resp = self.call(req, v).await?;
        Ok((resp.error_code, resp.producer_id.0, resp.producer_epoch))
    }

    /// PRODUCER_FENCED as a client at `v` hears it: INVALID_PRODUCER_EPOCH before `fenced_from`.
    fn fenced(v: i16, fenced_from: i16) -> i16 {
        if v < fenced_from {
            INVALID_PRODUCER_EPOCH
        } else {
            PRODUCER_FENCED
        }
    }

    async fn init_producer_id(&self, v: i16) -> Result<(), String> {
        // Without a transactional id (an idempotent producer): a new id each time, epoch 0.
        let idempotent = || InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(1);
        let a = self.call(idempotent(), v).await?;
        let b = self.call(idempotent(), v).await?;
        ensure!(a.error_code == 0 && b.error_code == 0, "idempotent: errors {} {}", a.error_code, b.error_code);
        ensure!(a.producer_epoch == 0 && a.producer_id.0 >= 0, "idempotent: {a:?}");
        ensure!(b.producer_id.0 != a.producer_id.0, "idempotent: the same id twice ({})", a.producer_id.0);

        let txn = format!("pv-init-v{v}");
        let init = |expected: Option<(i64, i16)>| {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&txn))))
                .with_transaction_timeout_ms(60_000);
            if let Some((pid, epoch)) = expected {
                req = req.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch);
            }
            req
        };
        let first = self.call(init(None), v).await?;
        ensure!(first.error_code == 0 && first.producer_epoch == 0, "first init: {first:?}");
        let second = self.call(init(None), v).await?;
        ensure!(second.error_code == 0, "second init: error {}", second.error_code);
        ensure!(
            (second.producer_id.0, second.producer_epoch) == (first.producer_id.0, 1),
            "second init: {second:?} after {first:?}"
        );
        if v >= 3 {
            // KIP-360: the current producer bumps its own epoch; a stale one is fenced.
            let pid = first.producer_id.0;
            let bumped = self.call(init(Some((pid, 1))), v).await?;
            ensure!((bumped.error_code, bumped.producer_epoch) == (0, 2), "bump: {bumped:?}");
            let stale = self.call(init(Some((pid, 0))), v).await?;
            ensure!(stale.error_code == Self::fenced(v, 4), "stale epoch: error {}", stale.error_code);
        }
        let bad = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&txn))))
            .with_transaction_timeout_ms(i32::MAX);
        let resp = self.call(bad, v).await?;
        ensure!(resp.error_code == 50, "timeout above transaction.max.timeout.ms: error {}", resp.error_code);
        Ok(())
    }

    async fn add_partitions_to_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-add-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let e = self.txn_add(&txn, pid, epoch, TXN_TOPIC, v).await?;
        ensure!(e == 0, "add: error {e}");
        for (what, id, pid, epoch, topic, want) in [
            ("unknown topic", txn.as_str(), pid, epoch, "pv-txn-nowhere", UNKNOWN_TOPIC_OR_PARTITION),
            ("other producer id", txn.as_str(), pid + 1, epoch, TXN_TOPIC, INVALID_PRODUCER_ID_MAPPING),
            ("stale epoch", txn.as_str(), pid, epoch - 1, TXN_TOPIC, Self::fenced(v, 2)),
            ("unknown transactional id", "pv-add-nobody", pid, epoch, TXN_TOPIC, INVALID_PRODUCER_ID_MAPPING),
        ] {
            let e = self.txn_add(id, pid, epoch, topic, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, 3).await?;
        ensure!(e == 0, "abort: error {e}");
        Ok(())
    }

    async fn add_offsets_to_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-add-offsets-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let add = |epoch: i16| {
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&txn)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(group(&format!("pv-add-offsets-group-v{v}")))
        };
        let resp = self.call(add(epoch), v).await?;
        ensure!(resp.error_code == 0, "add offsets: error {}", resp.error_code);
        let resp = self.call(add(epoch - 1), v).await?;
        ensure!(resp.error_code == Self::fenced(v, 2), "stale epoch: error {}", resp.error_code);
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, 3).await?;
        ensure!(e == 0, "abort: error {e}");
        Ok(())
    }

    async fn end_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-end-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let e = self.txn_add(&txn, pid, epoch, TXN_TOPIC, 3).await?;
        ensure!(e == 0, "add: error {e}");
        let (e, got_pid, got_epoch) = self.txn_end(&txn, pid, epoch, true, v).await?;
        ensure!(e == 0, "commit: error {e}");
        // v5 (KIP-890 part 2) answers with the epoch bumped; older versions carry no producer.
        let want = if v >= 5 { (pid, epoch + 1) } else { (-1, -1) };
        ensure!((got_pid, got_epoch) == want, "commit answered {:?}, expected {want:?}", (got_pid, got_epoch));
        // A retry of the commit is answered alike, an abort of it is refused.
        let (e, ..) = self.txn_end(&txn, pid, epoch, true, v).await?;
        ensure!(e == 0, "retried commit: error {e}");
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, v).await?;
        ensure!(e == INVALID_TXN_STATE, "abort after commit: error {e}");
        let (e, ..) = self.txn_end(&txn, pid, epoch - 1, true, v).await?;
        ensure!(e == Self::fenced(v, 2), "stale epoch: error {e}");
        Ok(())
    }

    async fn offset_delete(&self, v: i16) -> Result<(), String> {
        let request = |group_id: &str, topics: &[(&str, i32)]| {
            OffsetDeleteRequest::default().with_group_id(group(group_id)).with_topics(
                topics
                    .iter()
                    .map(|(t, p)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(name(t))
                            .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(*p)])
                    })
                    .collect(),
            )
        };
        let results = |resp: &OffsetDeleteResponse| -> Vec<(String, i32, i16)> {
            resp.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.error_code)))
                .collect()
        };

        // An empty group: the named offset goes, the other stays; an unknown topic is answered as such.
        let group_id = format!("pv-offset-delete-v{v}");
        let simple = Member::simple(&group_id);
        self.commit_ok(&simple, 0, 10, "zero").await?;
        self.commit_ok(&simple, 1, 11, "one").await?;
        let resp = self.call(request(&group_id, &[(GROUP_TOPIC, 0), ("pv-nowhere", 0)]), v).await?;
        ensure!(resp.error_code == 0, "error {}", resp.error_code);
        let got = results(&resp);
        let want = vec![(GROUP_TOPIC.to_string(), 0, 0), ("pv-nowhere".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)];
        ensure!(got == want, "results {got:?}, expected {want:?}");
        let epoch = if self.max_version(ApiKey::OffsetCommit) >= 6 { LEADER_EPOCH } else { -1 };
        let got = self.committed_now(&group_id, &[0, 1]).await?;
        ensure!(got == [Committed::none(0), Committed::new(1, 11, epoch, "one")], "offsets after delete: {got:?}");

        // A consumer group subscribed to the topic keeps its offsets.
        let m = self.stable(&format!("pv-offset-delete-busy-v{v}"), None).await?;
        self.commit_ok(&m, 0, 12, "").await?;
        let resp = self.call(request(&m.group, &[(GROUP_TOPIC, 0)]), v).await?;
        ensure!(resp.error_code == 0, "subscribed: error {}", resp.error_code);
        let got = results(&resp);
        ensure!(got == [(GROUP_TOPIC.to_string(), 0, GROUP_SUBSCRIBED_TO_TOPIC)], "subscribed: results {got:?}");

        for (what, id, want) in [
            ("no such group", format!("pv-offset-delete-none-v{v}"), GROUP_ID_NOT_FOUND),
            ("empty group id", String::new(), INVALID_GROUP_ID),
        ] {
            let resp = self.call(request(&id, &[(GROUP_TOPIC, 0)]), v).await?;
            ensure!(resp.error_code == want, "{what}: error {}, expected {want}", resp.error_code);
            ensure!(resp.topics.is_empty(), "{what}: topics {:?}", resp.topics);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_advertised_version_answers() {
    // No initial rebalance delay: a group's first JoinGroup completes at once instead of after 3 s.
    let broker = BrokerProc::start(&[
        "num.partitions=1",
        "auto.create.topics.enable=true",
        "group.initial.rebalance.delay.ms=0",
    ]);
    let admin_client = Client::connect(ClientConfig::new(broker.addr.clone())).await.expect("connect");
    let conn = Connection::connect(&broker.addr, CLIENT_ID).await.expect("connect");
    let resp = conn.call_at(ApiVersionsRequest::default(), 0).await.expect("ApiVersions v0");
    assert_eq!(resp.error_code, 0);
    let advertised: BTreeMap<i16, (i16, i16)> =
        resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
    let md = admin_client.metadata(None, false).await.expect("metadata");
    let (&node, advertised_addr) = md.brokers.iter().next().expect("one broker");
    let advertised_addr = advertised_addr.clone();

    let mut pv = Pv {
        addr: broker.addr.clone(),
        node,
        advertised: advertised.clone(),
        main_end: 0,
        admin_client,
        advertised_addr,
    };
    pv.create(MAIN, 1).await.expect("create main topic");
    pv.create(TRIMMED, 1).await.expect("create trimmed topic");
    pv.create(GROUP_TOPIC, GROUP_TOPIC_PARTITIONS).await.expect("create group topic");
    pv.create(TXN_TOPIC, 1).await.expect("create transaction topic");
    let base = pv.admin_client.produce(MAIN, 0, records(SEED_RECORDS, Some(T0), "seed"), -1).await.expect("seed");
    assert_eq!(base, 0);
    pv.main_end = SEED_RECORDS as i64;
    pv.admin_client.produce(TRIMMED, 0, records(TRIMMED_RECORDS, None, "trim"), -1).await.expect("seed trimmed");

    let mut failures = Vec::new();
    let mut checked = 0;
    for (&key, &(min, max)) in &advertised {
        let Ok(api) = ApiKey::try_from(key) else {
            failures.push(format!("advertised API key {key} is unknown to the protocol crate"));
            continue;
        };
        assert!(min <= max, "{api:?}: advertised range {min}..={max}");
        for v in min..=max {
            checked += 1;
            if let Err(e) = pv.check(api, v).await {
                failures.push(format!("{api:?} v{v}: {e}"));
            }
        }
    }
    eprintln!("checked {checked} (API, version) pairs across {} APIs", advertised.len());
    assert!(
        failures.is_empty(),
        "{} of {checked} (API, version) pairs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
