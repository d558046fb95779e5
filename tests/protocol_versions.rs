//! Every (API, version) the broker advertises answers a representative valid request at exactly
//! that version, with a response that decodes and carries no error where none is expected.
//!
//! The protocol crate refuses to encode a field set at a version that lacks it; a broker that
//! sets such a field fails to encode its answer and closes the connection. Walking every
//! advertised version catches that, and the requests here set version-dependent fields only at
//! the versions that have them. The list comes from the broker's own ApiVersions answer, so a
//! newly advertised API without a representative request here fails the test.
//!
//! Consumer-group cases live in `protocol_versions/groups.rs`, transaction cases in
//! `protocol_versions/txn.rs`. Consumer-group APIs are exercised through single-member cycles (join, sync, heartbeat,
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

/// Consumer-group cases.
#[path = "protocol_versions/groups.rs"]
mod groups;
/// Transaction cases.
#[path = "protocol_versions/txn.rs"]
mod txn;

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

/// Replication and partition admin: OffsetForLeaderEpoch, ElectLeaders, reassignments.
impl Pv {
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
