//! The classic group protocol's requests as the consumer sends them, one function each: find the
//! coordinator, join, sync, heartbeat, leave, commit and fetch offsets. Errors carry the broker's
//! code ([`Error::code`]) so callers decide whether to rejoin, rediscover or fail.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::assignor::wire::PROTOCOL_TYPE;
use crate::client::Connection;
use crate::error::{Error, Result};

/// Kafka error codes the group protocol reacts to.
pub mod codes {
    /// `OFFSET_OUT_OF_RANGE`.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// `COORDINATOR_LOAD_IN_PROGRESS`.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// `COORDINATOR_NOT_AVAILABLE`.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// `NOT_COORDINATOR`.
    pub const NOT_COORDINATOR: i16 = 16;
    /// `ILLEGAL_GENERATION`.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// `UNKNOWN_MEMBER_ID`.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// `REBALANCE_IN_PROGRESS`.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// `MEMBER_ID_REQUIRED`.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// `FENCED_INSTANCE_ID`.
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// True for errors after which the coordinator must be looked up again.
pub fn is_coordinator_error(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(codes::COORDINATOR_NOT_AVAILABLE | codes::NOT_COORDINATOR | codes::COORDINATOR_LOAD_IN_PROGRESS)
    ) || matches!(e, Error::Io { .. } | Error::Disconnected(_) | Error::Frame(_))
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn timed<T>(timeout: Duration, what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(timeout, f).await.map_err(|_| Error::Timeout(format!("{what} after {timeout:?}")))?
}

/// Look up the coordinator of `group` through `via` and connect to it.
pub async fn find_coordinator(via: &Connection, group: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
    let req = FindCoordinatorRequest::default().with_key(str(group)).with_key_type(0);
    let resp = timed(timeout, "FindCoordinator", via.call(req, 3)).await?;
    if let Some(e) = Error::from_code(
        resp.error_code,
        format!("FindCoordinator for group '{group}'"),
        resp.error_message.map(|m| m.to_string()),
    ) {
        return Err(e);
    }
    let addr = format!("{}:{}", resp.host, resp.port);
    timed(timeout, "connecting to the coordinator", Connection::connect(&addr, client_id)).await
}

/// The member's identity in a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Group id.
    pub group_id: String,
    /// Member id ("" before the first join).
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Generation (-1 when none).
    pub generation: i32,
}

/// What JoinGroup answered.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The new generation.
    pub generation: i32,
    /// Our member id.
    pub member_id: String,
    /// The chosen protocol (assignor) name.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// JoinGroup with one `(assignor name, subscription bytes)` per protocol. MEMBER_ID_REQUIRED is
/// retried once with the member id the coordinator gave.
pub async fn join_group(
    conn: &Connection,
    member: &Member,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: &[(String, Bytes)],
) -> Result<Joined> {
    let mut member_id = member.member_id.clone();
    for _ in 0..2 {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(str(&member.group_id)))
            .with_session_timeout_ms(session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(rebalance_timeout.as_millis() as i32)
            .with_member_id(str(&member_id))
            .with_group_instance_id(member.instance_id.as_deref().map(str))
            .with_protocol_type(str(PROTOCOL_TYPE))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(n, m)| JoinGroupRequestProtocol::default().with_name(str(n)).with_metadata(m.clone()))
                    .collect(),
            );
        // JoinGroup waits for the whole group: up to the rebalance timeout, plus some slack.
        let resp = timed(rebalance_timeout + Duration::from_secs(5), "JoinGroup", conn.call(req, 9)).await?;
        if resp.error_code == codes::MEMBER_ID_REQUIRED {
            member_id = resp.member_id.to_string();
            continue;
        }
        if let Some(e) = Error::from_code(resp.error_code, format!("JoinGroup of group '{}'", member.group_id), None) {
            return Err(e);
        }
        return Ok(Joined {
            generation: resp.generation_id,
            member_id: resp.member_id.to_string(),
            protocol: resp.protocol_name.map(|p| p.to_string()).unwrap_or_default(),
            leader: resp.leader.to_string(),
            members: resp
                .members
                .into_iter()
                .map(|m| (m.member_id.to_string(), m.group_instance_id.map(|i| i.to_string()), m.metadata))
                .collect(),
        });
    }
    Err(Error::Protocol("JoinGroup asked for a member id twice".into()))
}

/// SyncGroup: the leader sends every member's assignment; everyone gets its own back.
pub async fn sync_group(
    conn: &Connection,
    member: &Member,
    protocol: &str,
    assignments: Vec<(String, Bytes)>,
    timeout: Duration,
) -> Result<Bytes> {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(str(&member.group_id)))
        .with_generation_id(member.generation)
        .with_member_id(str(&member.member_id))
        .with_group_instance_id(member.instance_id.as_deref().map(str))
        .with_protocol_type(Some(str(PROTOCOL_TYPE)))
        .with_protocol_name(Some(str(protocol)))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(str(&m)).with_assignment(a))
                .collect(),
        );
    let resp = timed(timeout, "SyncGroup", conn.call(req, 5)).await?;
    match Error::from_code(resp.error_code, format!("SyncGroup of group '{}'", member.group_id), None) {
        Some(e) => Err(e),
        None => Ok(resp.assignment),
    }
}

/// Heartbeat.
pub async fn heartbeat(conn: &Connection, member: &Member, timeout: Duration) -> Result<()> {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(str(&member.group_id)))
        .with_generation_id(member.generation)
        .with_member_id(str(&member.member_id))
        .with_group_instance_id(member.instance_id.as_deref().map(str));
    let resp = timed(timeout, "Heartbeat", conn.call(req, 4)).await?;
    match Error::from_code(resp.error_code, format!("Heartbeat of group '{}'", member.group_id), None) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// LeaveGroup for this member.
pub async fn leave_group(conn: &Connection, member: &Member, reason: &str, timeout: Duration) -> Result<()> {
    // v0-2 name the member at the top level; v3+ list members (v5 with a reason). A field of the
    // other shape set at the wrong version cannot be encoded.
    let version = conn.version::<LeaveGroupRequest>(5)?;
    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str(&member.group_id)));
    if version >= 3 {
        req.members = vec![MemberIdentity::default()
            .with_member_id(str(&member.member_id))
            .with_group_instance_id(member.instance_id.as_deref().map(str))
            .with_reason(if version >= 5 { Some(str(reason)) } else { None })];
    } else {
        req.member_id = str(&member.member_id);
    }
    let resp = timed(timeout, "LeaveGroup", conn.call_at(req, version)).await?;
    let code = if resp.error_code != 0 { resp.error_code } else { resp.members.first().map_or(0, |m| m.error_code) };
    match Error::from_code(code, format!("LeaveGroup of group '{}'", member.group_id), None) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// OffsetCommit of `offsets` (the next offset to read per partition). The first partition error
/// fails the whole commit.
pub async fn commit_offsets(
    conn: &Connection,
    member: &Member,
    offsets: &BTreeMap<(String, i32), i64>,
    timeout: Duration,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(str(&member.group_id)))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(str(&member.member_id))
        .with_group_instance_id(member.instance_id.as_deref().map(str))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(str(t))).with_partitions(ps))
                .collect(),
        );
    let resp = timed(timeout, "OffsetCommit", conn.call(req, 8)).await?;
    for t in &resp.topics {
        for p in &t.partitions {
            let what = format!("OffsetCommit of {}-{} in group '{}'", t.name.0, p.partition_index, member.group_id);
            if let Some(e) = Error::from_code(p.error_code, what, None) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// OffsetFetch of `partitions` in `group`: each one's committed offset (`None`: none yet).
///
/// With `require_stable` (read_committed consumers, KIP-447; OffsetFetch v7+) the coordinator
/// answers UNSTABLE_OFFSET_COMMIT for a partition whose offsets are still part of an open or
/// committing transaction; the fetch is retried every 50 ms until they are stable or `timeout`
/// passed, so a new owner never starts from an offset a transaction is about to replace.
pub async fn fetch_offsets(
    conn: &Connection,
    group: &str,
    partitions: &[(String, i32)],
    timeout: Duration,
    require_stable: bool,
) -> Result<BTreeMap<(String, i32), Option<i64>>> {
    let version = conn.version::<OffsetFetchRequest>(7)?;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t).or_default().push(*p);
    }
    let mut req = OffsetFetchRequest::default().with_group_id(GroupId(str(group))).with_topics(Some(
        topics
            .into_iter()
            .map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(TopicName(str(t))).with_partition_indexes(ps))
            .collect(),
    ));
    if version >= 7 {
        req.require_stable = require_stable;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    'retry: loop {
        let resp = timed(timeout, "OffsetFetch", conn.call_at(req.clone(), version)).await?;
        if let Some(e) = Error::from_code(resp.error_code, format!("OffsetFetch of group '{group}'"), None) {
            return Err(e);
        }
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                let what = format!("OffsetFetch of {}-{} in group '{group}'", t.name.0, p.partition_index);
                if p.error_code == UNSTABLE_OFFSET_COMMIT && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'retry;
                }
                if let Some(e) = Error::from_code(p.error_code, what, None) {
                    return Err(e);
                }
                out.insert((t.name.0.to_string(), p.partition_index), Some(p.committed_offset).filter(|&o| o >= 0));
            }
        }
        return Ok(out);
    }
}

/// Kafka's UNSTABLE_OFFSET_COMMIT: offsets pending in a transaction.
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
