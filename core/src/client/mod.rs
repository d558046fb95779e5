//! The Rill client: connections, cluster metadata, and the requests the CLI and tools need.
//!
//! This is the foundation the producer, consumer and admin client build on: it finds the leader
//! of a partition, refreshes metadata when a broker says it moved, and turns Kafka error codes
//! into typed [`Error`]s.

mod admin;
mod admin_groups;
mod admin_replicas;
mod connection;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

pub use admin::{Admin, NewTopic, TopicDescription};
pub use admin_groups::{GroupDescription, GroupListing, GroupOffsets, MemberDescription};
pub use admin_replicas::{PartitionOutcome, PartitionReassignment};
pub use connection::Connection;

use crate::error::{Error, Result};

/// ListOffsets timestamp for the log end offset.
pub const LATEST: i64 = -1;
/// ListOffsets timestamp for the log start offset.
pub const EARLIEST: i64 = -2;

/// Kafka's DUPLICATE_SEQUENCE_NUMBER: counted as success by [`Client::produce_many`].
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

/// Client settings (Kafka property names in the docs).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// `client.id`.
    pub client_id: String,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Settings for `bootstrap` with defaults for the rest.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self { bootstrap_servers: bootstrap.into(), client_id: "rill".into(), request_timeout: Duration::from_secs(30) }
    }
}

/// One partition in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader node id (-1 if none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Kafka error code for this partition.
    pub error_code: i16,
}

/// One topic in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Kafka error code for this topic (0 if fine).
    pub error_code: i16,
    /// Internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Node id -> `host:port`.
    pub brokers: HashMap<i32, String>,
    /// Controller node id.
    pub controller: i32,
    /// Cluster id.
    pub cluster_id: Option<String>,
    /// Topics, sorted by name.
    pub topics: Vec<TopicInfo>,
}

/// `isolation.level`: which records a fetch (and a ListOffsets for the end) may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactions included.
    ReadUncommitted,
    /// Up to the last stable offset (before the first open transaction), without aborted
    /// transactions.
    ReadCommitted,
}

impl IsolationLevel {
    /// The value of the Fetch and ListOffsets `isolation_level` field.
    pub fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Result of a fetch from one partition.
#[derive(Debug, Clone)]
pub struct FetchedData {
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset (-1 when the broker does not say).
    pub last_stable_offset: i64,
    /// Aborted transactions in the fetched range, `(producer id, first offset)`
    /// (read_committed only).
    pub aborted_transactions: Vec<(i64, i64)>,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Raw record batches.
    pub records: Bytes,
}

/// A connection pool with cluster metadata.
pub struct Client {
    config: ClientConfig,
    /// The connection for metadata and admin requests: a bootstrap server at first, replaced
    /// by another known broker when it dies.
    bootstrap: std::sync::Mutex<Connection>,
    conns: Mutex<HashMap<i32, Connection>>,
    metadata: Mutex<Metadata>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("bootstrap", &self.config.bootstrap_servers).finish()
    }
}

impl Client {
    /// Connect to the first reachable bootstrap server.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        let mut last = None;
        for addr in config.bootstrap_servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match tokio::time::timeout(config.request_timeout, Connection::connect(addr, &config.client_id)).await {
                Ok(Ok(conn)) => {
                    return Ok(Self {
                        config,
                        bootstrap: std::sync::Mutex::new(conn),
                        conns: Mutex::new(HashMap::new()),
                        metadata: Mutex::new(Metadata::default()),
                    })
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(Error::Timeout(format!("connecting to {addr}"))),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::Config(format!("bootstrap.servers '{}' names no server", config.bootstrap_servers))
        }))
    }

    /// The connection for metadata and admin requests (any broker will do). It may have died:
    /// [`Client::live_broker`] replaces a dead one.
    pub fn any_broker(&self) -> Connection {
        self.bootstrap.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A live connection for metadata and admin requests: the current one, or (when it died,
    /// e.g. its broker was killed) the first reachable of the bootstrap servers and the brokers
    /// the last metadata named.
    pub async fn live_broker(&self) -> Result<Connection> {
        let current = self.any_broker();
        if !current.is_closed() {
            return Ok(current);
        }
        let known: Vec<String> = self.metadata.lock().await.brokers.values().cloned().collect();
        let candidates = self
            .config
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != current.addr())
            .map(str::to_string)
            .chain(known.into_iter().filter(|a| a != current.addr()));
        let mut last = None;
        for addr in candidates {
            match tokio::time::timeout(self.config.request_timeout, Connection::connect(&addr, &self.config.client_id))
                .await
            {
                Ok(Ok(conn)) => {
                    *self.bootstrap.lock().unwrap_or_else(|p| p.into_inner()) = conn.clone();
                    return Ok(conn);
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(Error::Timeout(format!("connecting to {addr}"))),
            }
        }
        Err(last.unwrap_or_else(|| Error::NoBroker(format!("no broker is reachable (last: {})", current.addr()))))
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Run a request with `request.timeout.ms`.
    pub(crate) async fn timed<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.config.request_timeout, f)
            .await
            .map_err(|_| Error::Timeout(format!("{what} after {:?}", self.config.request_timeout)))?
    }

    /// Fetch metadata for `topics` (all topics if `None`), creating missing ones when the broker
    /// allows and `auto_create` is set. Updates the cache.
    pub async fn metadata(&self, topics: Option<&[String]>, auto_create: bool) -> Result<Metadata> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let conn = self.live_broker().await?;
        let resp = match self.timed("Metadata", conn.call(req.clone(), 12)).await {
            Ok(r) => r,
            // The broker died under the request: once more through another one.
            Err(_) if conn.is_closed() => self.timed("Metadata", self.live_broker().await?.call(req, 12)).await?,
            Err(e) => return Err(e),
        };
        let mut md = Metadata {
            brokers: resp.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect(),
            controller: resp.controller_id.0,
            cluster_id: resp.cluster_id.as_ref().map(|s| s.to_string()),
            topics: resp
                .topics
                .iter()
                .map(|t| {
                    let mut partitions: Vec<PartitionInfo> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                            isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                            error_code: p.error_code,
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicInfo {
                        name: t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                        error_code: t.error_code,
                        internal: t.is_internal,
                        partitions,
                    }
                })
                .collect(),
        };
        md.topics.sort_by(|a, b| a.name.cmp(&b.name));
        *self.metadata.lock().await = md.clone();
        Ok(md)
    }

    /// The connection to the leader of `topic`/`partition`, refreshing metadata if needed.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<Connection> {
        let cached = self.lookup_leader(topic, partition).await;
        let leader = match cached {
            Some(l) => l,
            None => {
                let md = self.metadata(Some(&[topic.to_string()]), false).await?;
                let t = md.topics.iter().find(|t| t.name == topic);
                match t {
                    Some(t) if t.error_code != 0 => {
                        return Err(Error::from_code(t.error_code, format!("topic '{topic}'"), None).expect("nonzero"))
                    }
                    _ => {}
                }
                self.lookup_leader(topic, partition)
                    .await
                    .ok_or_else(|| Error::from_code(3, format!("{topic}-{partition}"), None).expect("nonzero"))?
            }
        };
        self.connection_to(leader).await
    }

    /// The node id of the leader of `topic`/`partition` as cached, refreshing metadata once if
    /// unknown; `None` when there is none.
    pub(crate) async fn leader_id(&self, topic: &str, partition: i32) -> Option<i32> {
        if let Some(l) = self.lookup_leader(topic, partition).await {
            return Some(l);
        }
        self.metadata(Some(&[topic.to_string()]), false).await.ok()?;
        self.lookup_leader(topic, partition).await
    }

    async fn lookup_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let md = self.metadata.lock().await;
        let t = md.topics.iter().find(|t| t.name == topic)?;
        let p = t.partitions.iter().find(|p| p.partition == partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    async fn connection_to(&self, node: i32) -> Result<Connection> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&node) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr = self.metadata.lock().await.brokers.get(&node).cloned();
        let addr = addr.ok_or_else(|| Error::NoBroker(format!("node {node}")))?;
        let conn = self.timed("connect", Connection::connect(&addr, &self.config.client_id)).await?;
        conns.insert(node, conn.clone());
        Ok(conn)
    }

    /// Forget cached leaders so the next call refreshes metadata.
    pub async fn invalidate(&self) {
        self.metadata.lock().await.topics.clear();
    }

    /// Produce raw record batches to one partition. Returns the base offset (-1 for acks=0).
    pub async fn produce(&self, topic: &str, partition: i32, records: Bytes, acks: i16) -> Result<i64> {
        let mut got = self.produce_many(topic, vec![(partition, records)], acks).await?;
        got.pop().map(|(_, r)| r).unwrap_or_else(|| Err(Error::Protocol("empty produce response".into())))
    }

    /// Produce record batches to several partitions of `topic` (all led by one broker) in one
    /// request, as Kafka producers do. Returns each partition's base offset or error, in request
    /// order; with acks=0 there is no answer and every base offset is -1. A batch the broker
    /// reports as DUPLICATE_SEQUENCE_NUMBER (already stored) counts as success, with the offset
    /// it reports (-1 if none).
    pub async fn produce_many(
        &self,
        topic: &str,
        batches: Vec<(i32, Bytes)>,
        acks: i16,
    ) -> Result<Vec<(i32, Result<i64>)>> {
        self.produce_many_as(topic, batches, acks, None).await
    }

    /// [`Client::produce_many`] on behalf of a transactional producer: the request names its
    /// `transactional.id`, which the broker needs to verify a transaction's first batch in a
    /// partition with the coordinator.
    pub async fn produce_many_as(
        &self,
        topic: &str,
        batches: Vec<(i32, Bytes)>,
        acks: i16,
        transactional_id: Option<&str>,
    ) -> Result<Vec<(i32, Result<i64>)>> {
        if batches.is_empty() {
            return Err(Error::Config("produce to no partition".into()));
        }
        let groups = self.split_by_leader(topic, batches).await?;
        let sends =
            groups.into_iter().map(|(conn, batches)| self.produce_to(conn, topic, batches, acks, transactional_id));
        let mut out = Vec::new();
        for r in futures::future::join_all(sends).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Partition-keyed items grouped by the partitions' current leaders (metadata is refreshed
    /// for partitions whose leader is not known), with a connection to each leader.
    async fn split_by_leader<T>(&self, topic: &str, items: Vec<(i32, T)>) -> Result<Vec<(Connection, Vec<(i32, T)>)>> {
        let mut groups: Vec<(i32, Vec<(i32, T)>)> = Vec::new();
        for (p, item) in items {
            let leader = match self.lookup_leader(topic, p).await {
                Some(l) => l,
                None => {
                    self.leader(topic, p).await?;
                    self.lookup_leader(topic, p)
                        .await
                        .ok_or_else(|| Error::from_code(5, format!("{topic}-{p}"), None).expect("nonzero"))?
                }
            };
            match groups.iter_mut().find(|(l, _)| *l == leader) {
                Some((_, g)) => g.push((p, item)),
                None => groups.push((leader, vec![(p, item)])),
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (leader, items) in groups {
            out.push((self.connection_to(leader).await?, items));
        }
        Ok(out)
    }

    /// One Produce request to one leader.
    async fn produce_to(
        &self,
        conn: Connection,
        topic: &str,
        batches: Vec<(i32, Bytes)>,
        acks: i16,
        transactional_id: Option<&str>,
    ) -> Result<Vec<(i32, Result<i64>)>> {
        let req = ProduceRequest::default()
            .with_transactional_id(transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))))
            .with_acks(acks)
            .with_timeout_ms(self.config.request_timeout.as_millis() as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(
                    batches
                        .iter()
                        .map(|(p, r)| PartitionProduceData::default().with_index(*p).with_records(Some(r.clone())))
                        .collect(),
                )]);
        // The records go to the socket by reference, not copied into the request frame.
        let payloads: Vec<Bytes> = batches.iter().map(|(_, r)| r.clone()).collect();
        if acks == 0 {
            conn.send_oneway(req, 9, &payloads).await?;
            return Ok(batches.iter().map(|(p, _)| (*p, Ok(-1))).collect());
        }
        let version = conn.version::<ProduceRequest>(9)?;
        let resp = self.timed("Produce", conn.call_at_with(req, version, &payloads)).await?;
        let mut out = Vec::with_capacity(batches.len());
        let mut stale = false;
        for p in resp.responses.iter().flat_map(|t| t.partition_responses.iter()) {
            let what = format!("{topic}-{}", p.index);
            // DUPLICATE_SEQUENCE_NUMBER: an idempotent producer's retry of a batch already stored.
            let code = if p.error_code == DUPLICATE_SEQUENCE_NUMBER { 0 } else { p.error_code };
            let r = match Error::from_code(code, what, p.error_message.as_ref().map(|m| m.to_string())) {
                Some(e) => {
                    stale |= e.is_retriable();
                    Err(e)
                }
                None => Ok(p.base_offset),
            };
            out.push((p.index, r));
        }
        if stale {
            self.invalidate().await;
        }
        Ok(out)
    }

    /// Fetch from one partition starting at `offset`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<FetchedData> {
        let mut got = self.fetch_many(topic, &[(partition, offset)], max_bytes, max_bytes, max_wait_ms).await?;
        got.pop().map(|(_, r)| r).unwrap_or_else(|| Err(Error::Protocol("empty fetch response".into())))
    }

    /// Fetch several partitions of `topic` (all led by one broker) in one request, as Kafka
    /// consumers do: `(partition, offset)` pairs, at most `partition_max_bytes` each and
    /// `max_bytes` in all. Returns each partition's data or error, in request order.
    /// Reads uncommitted data; see [`Client::fetch_many_isolated`].
    pub async fn fetch_many(
        &self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_bytes: i32,
        partition_max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<Vec<(i32, Result<FetchedData>)>> {
        let isolation = IsolationLevel::ReadUncommitted;
        self.fetch_many_isolated(topic, partitions, max_bytes, partition_max_bytes, max_wait_ms, isolation).await
    }

    /// [`Client::fetch_many`] at an isolation level: with `ReadCommitted` the broker returns data
    /// up to the last stable offset and the aborted transactions in it
    /// ([`crate::records::decode_fetched`] filters them).
    pub async fn fetch_many_isolated(
        &self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_bytes: i32,
        partition_max_bytes: i32,
        max_wait_ms: i32,
        isolation: IsolationLevel,
    ) -> Result<Vec<(i32, Result<FetchedData>)>> {
        if partitions.is_empty() {
            return Err(Error::Config("fetch of no partition".into()));
        }
        let groups = self.split_by_leader(topic, partitions.iter().map(|&(p, o)| (p, o)).collect()).await?;
        let fetches = groups.into_iter().map(|(conn, parts)| {
            self.fetch_from(conn, topic, parts, max_bytes, partition_max_bytes, max_wait_ms, isolation)
        });
        let mut out = Vec::new();
        for r in futures::future::join_all(fetches).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// One Fetch request to one leader.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_from(
        &self,
        conn: Connection,
        topic: &str,
        partitions: Vec<(i32, i64)>,
        max_bytes: i32,
        partition_max_bytes: i32,
        max_wait_ms: i32,
        isolation: IsolationLevel,
    ) -> Result<Vec<(i32, Result<FetchedData>)>> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(isolation.as_i8())
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, o)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*o)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                )]);
        let resp = self.timed("Fetch", conn.call(req, 12)).await?;
        if let Some(e) = Error::from_code(resp.error_code, "Fetch", None) {
            return Err(e);
        }
        let mut out = Vec::with_capacity(partitions.len());
        let mut stale = false;
        for p in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            let offset = partitions.iter().find(|(q, _)| *q == p.partition_index).map(|(_, o)| *o).unwrap_or(-1);
            let what = format!("{topic}-{} at offset {offset}", p.partition_index);
            let r = match Error::from_code(p.error_code, what, None) {
                Some(e) => {
                    stale |= e.is_retriable();
                    Err(e)
                }
                None => Ok(FetchedData {
                    high_watermark: p.high_watermark,
                    last_stable_offset: p.last_stable_offset,
                    aborted_transactions: p
                        .aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect(),
                    log_start_offset: p.log_start_offset,
                    records: p.records.clone().unwrap_or_default(),
                }),
            };
            out.push((p.partition_index, r));
        }
        if stale {
            self.invalidate().await;
        }
        Ok(out)
    }

    /// ListOffsets for one partition: [`EARLIEST`], [`LATEST`] or a timestamp in ms.
    /// Returns -1 when no record has a timestamp at or after the one asked for. [`LATEST`] is the
    /// high watermark; see [`Client::list_offset_isolated`] for the last stable offset.
    pub async fn list_offset(&self, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
        self.list_offset_isolated(topic, partition, timestamp, IsolationLevel::ReadUncommitted).await
    }

    /// [`Client::list_offset`] at an isolation level: with `ReadCommitted`, [`LATEST`] is the
    /// last stable offset.
    pub async fn list_offset_isolated(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        isolation: IsolationLevel,
    ) -> Result<i64> {
        let conn = self.leader(topic, partition).await?;
        let version = conn.version::<ListOffsetsRequest>(7)?;
        let isolation = if version >= 2 { isolation.as_i8() } else { 0 };
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let resp = self.timed("ListOffsets", conn.call_at(req, version)).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol("empty list offsets response".into()))?;
        if let Some(e) = Error::from_code(p.error_code, format!("{topic}-{partition}"), None) {
            return Err(e);
        }
        Ok(p.offset)
    }
}
