//! Admin operations on consumer groups: list, describe, delete, and their committed offsets
//! (list, alter, delete), as `kafka-consumer-groups.sh` and Kafka's `Admin` do them.
//!
//! Every group request goes to the group's coordinator, found with FindCoordinator first.
//! Coordinator errors that say "ask again" (COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR) are retried within `request.timeout.ms`.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Admin, Client, Connection};
use crate::consumer::assignor::wire::Assignment;
use crate::error::{Error, Result};

/// Kafka error codes the group operations look at.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups, empty for groups that only commit).
    pub protocol_type: String,
    /// State (`Empty`, `Stable`, `PreparingRebalance`, ...; empty if the broker is older than v4).
    pub state: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// Host it connected from (`/127.0.0.1`, as Kafka writes it).
    pub host: String,
    /// Assigned partitions, decoded when the protocol type is `consumer` (empty otherwise).
    pub assignment: Vec<(String, i32)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State; `Dead` for a group the coordinator does not know.
    pub state: String,
    /// Protocol type (`consumer`, ...).
    pub protocol_type: String,
    /// Chosen protocol (the assignor's name for consumer groups).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// Committed offsets by `(topic, partition)`.
pub type GroupOffsets = BTreeMap<(String, i32), i64>;

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn broker_error(code: i16, what: String, msg: Option<&StrBytes>) -> Result<()> {
    match Error::from_code(code, what, msg.map(|m| m.to_string())) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn is_coordinator_error(e: &Error) -> bool {
    matches!(e.code(), Some(COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR))
}

/// Partitions grouped by topic, in order.
fn by_topic<T: Clone>(items: &BTreeMap<(String, i32), T>) -> BTreeMap<&str, Vec<(i32, T)>> {
    let mut out: BTreeMap<&str, Vec<(i32, T)>> = BTreeMap::new();
    for ((t, p), v) in items {
        out.entry(t.as_str()).or_default().push((*p, v.clone()));
    }
    out
}

impl Client {
    /// The connection to the coordinator of `group` (FindCoordinator through any broker).
    pub async fn group_coordinator(&self, group: &str) -> Result<Connection> {
        let conn = self.live_broker().await?;
        let v = conn.version::<FindCoordinatorRequest>(4)?;
        let what = format!("coordinator of group '{group}'");
        let mut req = FindCoordinatorRequest::default().with_key_type(0);
        if v >= 4 {
            req.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
        } else {
            req.key = StrBytes::from_string(group.to_string());
        }
        let resp = self.timed("FindCoordinator", conn.call_at(req, v)).await?;
        let (node, host, port) = if v >= 4 {
            let c =
                resp.coordinators.first().ok_or_else(|| Error::Protocol("empty FindCoordinator response".into()))?;
            broker_error(c.error_code, what, c.error_message.as_ref())?;
            (c.node_id.0, c.host.to_string(), c.port)
        } else {
            broker_error(resp.error_code, what, resp.error_message.as_ref())?;
            (resp.node_id.0, resp.host.to_string(), resp.port)
        };
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&node) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr = format!("{host}:{port}");
        let c = self.timed("connect", Connection::connect(&addr, &self.config.client_id)).await?;
        conns.insert(node, c.clone());
        Ok(c)
    }

    /// Run `op` against the coordinator of `group`, finding it again and retrying while the
    /// coordinator answers "not here / not ready", until `request.timeout.ms` runs out.
    async fn with_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let r = match self.group_coordinator(group).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match r {
                Err(e) if is_coordinator_error(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => return r,
            }
        }
    }
}

impl Admin<'_> {
    /// Every group the cluster knows (ListGroups on each broker), sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let md = self.client.metadata(Some(&[]), false).await?;
        let mut nodes: Vec<i32> = md.brokers.keys().copied().collect();
        nodes.sort_unstable();
        let mut out = Vec::new();
        let mut conns = Vec::new();
        if nodes.is_empty() {
            conns.push(self.client.live_broker().await?);
        }
        for n in nodes {
            conns.push(self.client.connection_to(n).await?);
        }
        for conn in conns {
            let v = conn.version::<ListGroupsRequest>(4)?;
            let resp = self.client.timed("ListGroups", conn.call_at(ListGroupsRequest::default(), v)).await?;
            broker_error(resp.error_code, format!("listing groups on {}", conn.addr()), None)?;
            out.extend(resp.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describe groups: state, protocol and members with their assignments. A group the
    /// coordinator does not know comes back in state `Dead` with no members, as in Kafka.
    pub async fn describe_groups(&self, ids: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let g =
                self.client
                    .with_coordinator(id, |conn| async move {
                        let req = DescribeGroupsRequest::default().with_groups(vec![group_id(id)]);
                        let resp = self.client.timed("DescribeGroups", conn.call(req, 5)).await?;
                        let g = resp.groups.into_iter().next().ok_or_else(|| {
                            Error::Protocol(format!("empty DescribeGroups response for group '{id}'"))
                        })?;
                        broker_error(g.error_code, format!("group '{id}'"), g.error_message.as_ref())?;
                        Ok(g)
                    })
                    .await?;
            let consumer = g.protocol_type.as_str() == "consumer";
            let mut members = Vec::with_capacity(g.members.len());
            for m in &g.members {
                let assignment = if consumer {
                    Assignment::decode(m.member_assignment.clone())
                        .map_err(|e| {
                            Error::Protocol(format!("assignment of member {} in group '{id}': {e}", m.member_id))
                        })?
                        .partitions
                } else {
                    Vec::new()
                };
                members.push(MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment,
                });
            }
            out.push(GroupDescription {
                group_id: id.clone(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: g.protocol_data.to_string(),
                members,
            });
        }
        Ok(out)
    }

    /// Delete groups and their committed offsets; fails with the first group's error
    /// (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND, ...).
    pub async fn delete_groups(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.client
                .with_coordinator(id, |conn| async move {
                    let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(id)]);
                    let resp = self.client.timed("DeleteGroups", conn.call(req, 2)).await?;
                    for r in &resp.results {
                        broker_error(r.error_code, format!("group '{}'", r.group_id.0), None)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// Every committed offset of `group` (OffsetFetch with null topics). Partitions without a
    /// committed offset are left out; an unknown group has none.
    pub async fn list_consumer_group_offsets(&self, group: &str) -> Result<GroupOffsets> {
        self.client
            .with_coordinator(group, |conn| async move {
                // v7 is the last version with one group per request; every broker since 2.5 has it.
                let v = conn.version::<OffsetFetchRequest>(7)?;
                let mut req = OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(None);
                if v >= 7 {
                    req = req.with_require_stable(true);
                }
                let resp = self.client.timed("OffsetFetch", conn.call_at(req, v)).await?;
                broker_error(resp.error_code, format!("offsets of group '{group}'"), None)?;
                let mut out = GroupOffsets::new();
                for t in &resp.topics {
                    for p in &t.partitions {
                        let what = format!("offset of group '{group}' for {}-{}", t.name.0, p.partition_index);
                        broker_error(p.error_code, what, None)?;
                        if p.committed_offset >= 0 {
                            out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                        }
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Commit `offsets` for `group` as an outsider (generation -1, no member id), as Kafka's
    /// `alterConsumerGroupOffsets` does. The group must have no members: the coordinator refuses
    /// a commit from a non-member into an active group, reported here as an error saying so.
    pub async fn alter_consumer_group_offsets(&self, group: &str, offsets: &GroupOffsets) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let topics: Vec<OffsetCommitRequestTopic> = by_topic(offsets)
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(
                    ps.into_iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(o)
                        })
                        .collect(),
                )
            })
            .collect();
        self.client
            .with_coordinator(group, |conn| {
                let topics = topics.clone();
                async move {
                    let req = OffsetCommitRequest::default()
                        .with_group_id(group_id(group))
                        .with_generation_id_or_member_epoch(-1)
                        .with_member_id(StrBytes::default())
                        .with_topics(topics);
                    let resp = self.client.timed("OffsetCommit", conn.call(req, 8)).await?;
                    for t in &resp.topics {
                        for p in &t.partitions {
                            if matches!(p.error_code, UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION | REBALANCE_IN_PROGRESS) {
                                return Err(Error::GroupActive(group.to_string()));
                            }
                            let what = format!(
                                "committing an offset of group '{group}' for {}-{}",
                                t.name.0, p.partition_index
                            );
                            broker_error(p.error_code, what, None)?;
                        }
                    }
                    Ok(())
                }
            })
            .await
    }

    /// Forget the committed offsets of `group` for `partitions` (OffsetDelete). The coordinator
    /// refuses (GROUP_SUBSCRIBED_TO_TOPIC) for topics an active member is subscribed to.
    pub async fn delete_consumer_group_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<()> {
        let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            grouped.entry(t.as_str()).or_default().push(*p);
        }
        let topics: Vec<OffsetDeleteRequestTopic> = grouped
            .into_iter()
            .map(|(t, ps)| {
                OffsetDeleteRequestTopic::default().with_name(topic_name(t)).with_partitions(
                    ps.into_iter().map(|p| OffsetDeleteRequestPartition::default().with_partition_index(p)).collect(),
                )
            })
            .collect();
        self.client
            .with_coordinator(group, |conn| {
                let topics = topics.clone();
                async move {
                    let req = OffsetDeleteRequest::default().with_group_id(group_id(group)).with_topics(topics);
                    let resp = self.client.timed("OffsetDelete", conn.call(req, 0)).await?;
                    broker_error(resp.error_code, format!("deleting offsets of group '{group}'"), None)?;
                    for t in &resp.topics {
                        for p in &t.partitions {
                            let what = format!(
                                "deleting the offset of group '{group}' for {}-{}",
                                t.name.0, p.partition_index
                            );
                            broker_error(p.error_code, what, None)?;
                        }
                    }
                    Ok(())
                }
            })
            .await
    }
}
