//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//!
//! Each turns the wire message (at its version) into the coordinator's request, waits for the
//! coordinator's answer, and encodes it with only the fields that version has.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::codes;
use crate::group::{self, ErrorCode, GroupState, TopicPartition};
use crate::server::BrokerState;

/// Why the coordinator did not answer for `group_id`: codes::NOT_COORDINATOR when, in a cluster, this
/// broker does not lead the group's `__consumer_offsets` partition (the client looks the
/// coordinator up again); else codes::COORDINATOR_NOT_AVAILABLE (loading, a failed write, stopping).
pub(crate) fn refusal(state: &BrokerState, group_id: &str) -> i16 {
    let p = group::partition_for(group_id, state.config.offsets_topic_partitions);
    if state.cluster.is_some() && state.replicas.leader_epoch(group::OFFSETS_TOPIC, p).is_none() {
        codes::NOT_COORDINATOR
    } else {
        codes::COORDINATOR_NOT_AVAILABLE
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: Option<String>) -> Option<StrBytes> {
    v.map(StrBytes::from_string)
}

fn code(e: ErrorCode) -> i16 {
    e.code()
}

/// Group per-partition answers under their topics, topics in first-seen order, as responses
/// nest them; `topic` builds one topic's entry from its name and partitions.
pub(super) fn by_topic<P, T>(
    items: impl IntoIterator<Item = (String, P)>,
    topic: impl Fn(String, Vec<P>) -> T,
) -> Vec<T> {
    let mut grouped: Vec<(String, Vec<P>)> = Vec::new();
    for (name, part) in items {
        match grouped.iter_mut().find(|(n, _)| *n == name) {
            Some((_, parts)) => parts.push(part),
            None => grouped.push((name, vec![part])),
        }
    }
    grouped.into_iter().map(|(name, parts)| topic(name, parts)).collect()
}

pub async fn find_coordinator(
    state: &Arc<BrokerState>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if state.cluster.is_some() {
        return find_coordinator_in_cluster(state, req, version).await;
    }
    let node = state.config.node_id;
    let (host, port) = (s(state.advertised_host.clone()), state.advertised_port as i32);
    // Groups (key type 0) and transactions (1) are coordinated here; other types (share groups)
    // are unknown to this broker, as to Kafka without them: INVALID_REQUEST.
    let answer = |key_type: i8| if key_type == 0 || key_type == 1 { 0 } else { codes::INVALID_REQUEST };
    let unknown_type = || s(format!("unknown coordinator key type {}", req.key_type));
    if version < 4 {
        let err = answer(req.key_type);
        let mut r = FindCoordinatorResponse::default().with_error_code(err);
        if err == 0 {
            r = r.with_node_id(BrokerId(node)).with_host(host).with_port(port);
        } else {
            r = r.with_node_id(BrokerId(-1)).with_port(-1);
            if version >= 1 {
                r.error_message = Some(unknown_type());
            }
        }
        return r;
    }
    FindCoordinatorResponse::default().with_coordinators(
        req.coordinator_keys
            .into_iter()
            .map(|key| {
                let err = answer(req.key_type);
                let c = Coordinator::default().with_key(key).with_error_code(err);
                if err == 0 {
                    c.with_node_id(BrokerId(node)).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1).with_error_message(Some(unknown_type()))
                }
            })
            .collect(),
    )
}

/// In a cluster: the coordinator of a key is the leader of its partition of the internal
/// topic (`__consumer_offsets` for groups, `__transaction_state` for transactional ids), which
/// is created here on first use, as Kafka does.
async fn find_coordinator_in_cluster(
    state: &Arc<BrokerState>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version < 4 { vec![req.key.clone()] } else { req.coordinator_keys.clone() };
    let (topic, partitions, segment) = match req.key_type {
        0 => (
            group::OFFSETS_TOPIC,
            state.config.offsets_topic_partitions,
            crate::server::groups::OFFSETS_TOPIC_SEGMENT_BYTES,
        ),
        1 => (
            crate::txn::TRANSACTION_STATE_TOPIC,
            state.config.transaction_state_partitions,
            crate::server::txn::TRANSACTION_STATE_SEGMENT_BYTES,
        ),
        _ => (group::OFFSETS_TOPIC, 0, ""),
    };
    let created = if partitions > 0 {
        crate::server::ensure_internal_topic(state, topic, partitions, segment).await.map_err(|e| e.to_string())
    } else {
        Err(format!("unknown coordinator key type {}", req.key_type))
    };
    let image = state.cluster.as_ref().expect("checked by the caller").image();
    let answer = |key: &str| -> Result<(i32, String, i32), (i16, String)> {
        if let Err(e) = &created {
            let code = if partitions > 0 { codes::COORDINATOR_NOT_AVAILABLE } else { codes::INVALID_REQUEST };
            return Err((code, e.clone()));
        }
        let p = group::partition_for(key, partitions);
        let leader = image.partition(topic, p).map(|x| x.leader).unwrap_or(-1);
        match image.brokers.get(&leader).filter(|b| !b.fenced) {
            Some(b) => Ok((b.id, b.host.clone(), i32::from(b.port))),
            None => Err((codes::COORDINATOR_NOT_AVAILABLE, format!("{topic}-{p} has no leader right now"))),
        }
    };
    if version < 4 {
        return match answer(&req.key) {
            Ok((id, host, port)) => {
                FindCoordinatorResponse::default().with_node_id(BrokerId(id)).with_host(s(host)).with_port(port)
            }
            Err((code, m)) => {
                let mut r =
                    FindCoordinatorResponse::default().with_error_code(code).with_node_id(BrokerId(-1)).with_port(-1);
                if version >= 1 {
                    r.error_message = Some(s(m));
                }
                r
            }
        };
    }
    FindCoordinatorResponse::default().with_coordinators(
        keys.into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match answer(&key) {
                    Ok((id, host, port)) => c.with_node_id(BrokerId(id)).with_host(s(host)).with_port(port),
                    Err((code, m)) => {
                        c.with_error_code(code).with_node_id(BrokerId(-1)).with_port(-1).with_error_message(Some(s(m)))
                    }
                }
            })
            .collect(),
    )
}

pub async fn join_group(
    state: &Arc<BrokerState>,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let ask = group::JoinGroup {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| group::Protocol { name: p.name.to_string(), metadata: p.metadata })
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let group_id = ask.group_id.clone();
    let Some(group::Response::JoinGroup(r)) = state.groups.call(ask).await else {
        return JoinGroupResponse::default().with_error_code(refusal(state, &group_id)).with_generation_id(-1);
    };
    let mut out = JoinGroupResponse::default()
        .with_error_code(code(r.error))
        .with_generation_id(r.generation_id)
        .with_protocol_name(if version >= 7 {
            opt(r.protocol_name)
        } else {
            Some(s(r.protocol_name.unwrap_or_default()))
        })
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(if version >= 5 { opt(m.group_instance_id) } else { None })
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if version >= 7 {
        out.protocol_type = opt(r.protocol_type);
    }
    if version >= 9 {
        out.skip_assignment = r.skip_assignment;
    }
    out
}

pub async fn sync_group(state: &Arc<BrokerState>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let ask = group::SyncGroup {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| group::MemberAssignment { member_id: a.member_id.to_string(), assignment: a.assignment })
            .collect(),
    };
    let group_id = ask.group_id.clone();
    let Some(group::Response::SyncGroup(r)) = state.groups.call(ask).await else {
        return SyncGroupResponse::default().with_error_code(refusal(state, &group_id));
    };
    let mut out = SyncGroupResponse::default().with_error_code(code(r.error)).with_assignment(r.assignment);
    if version >= 5 {
        out.protocol_type = opt(r.protocol_type);
        out.protocol_name = opt(r.protocol_name);
    }
    out
}

pub async fn heartbeat(state: &Arc<BrokerState>, req: HeartbeatRequest) -> HeartbeatResponse {
    let ask = group::Heartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation_id: req.generation_id,
    };
    let group_id = ask.group_id.clone();
    match state.groups.call(ask).await {
        Some(group::Response::Heartbeat(e)) => HeartbeatResponse::default().with_error_code(code(e)),
        _ => HeartbeatResponse::default().with_error_code(refusal(state, &group_id)),
    }
}

pub async fn leave_group(state: &Arc<BrokerState>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members = if version >= 3 {
        req.members
            .into_iter()
            .map(|m| group::LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![group::LeavingMember { member_id: req.member_id.to_string(), group_instance_id: None }]
    };
    let ask = group::LeaveGroup { group_id: req.group_id.0.to_string(), members };
    let group_id = ask.group_id.clone();
    let Some(group::Response::LeaveGroup(r)) = state.groups.call(ask).await else {
        return LeaveGroupResponse::default().with_error_code(refusal(state, &group_id));
    };
    if version < 3 {
        // One member, no per-member list: its error is the answer's.
        let e =
            if r.error != ErrorCode::None { r.error } else { r.members.first().map(|m| m.error).unwrap_or(r.error) };
        return LeaveGroupResponse::default().with_error_code(code(e));
    }
    LeaveGroupResponse::default().with_error_code(code(r.error)).with_members(
        r.members
            .into_iter()
            .map(|m| {
                MemberResponse::default()
                    .with_member_id(s(m.member_id))
                    .with_group_instance_id(opt(m.group_instance_id))
                    .with_error_code(code(m.error))
            })
            .collect(),
    )
}

pub async fn offset_commit(state: &Arc<BrokerState>, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    // Partitions of topics that do not exist are answered here, as Kafka's request handler does.
    let mut unknown = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        let exists = state.topics.get(&t.name.0).map(|x| x.partitions.len() as i32);
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.name.0.to_string(), partition: p.partition_index };
            if exists.is_none_or(|n| p.partition_index < 0 || p.partition_index >= n) {
                unknown.push(tp);
                continue;
            }
            offsets.push(group::CommitOffset {
                partition: tp,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let results: Vec<(TopicPartition, i16)> = if offsets.is_empty() {
        Vec::new()
    } else {
        let ask = group::OffsetCommit {
            group_id: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|i| i.to_string()),
            generation_id: req.generation_id_or_member_epoch,
            offsets: offsets.clone(),
        };
        let refused = refusal(state, &ask.group_id);
        match state.groups.call(ask).await {
            Some(group::Response::OffsetCommit(rs)) => rs.into_iter().map(|r| (r.partition, code(r.error))).collect(),
            _ => offsets.into_iter().map(|o| (o.partition, refused)).collect(),
        }
    };
    let all = results.into_iter().chain(unknown.into_iter().map(|tp| (tp, codes::UNKNOWN_TOPIC_OR_PARTITION)));
    let parts = all.map(|(tp, err)| {
        (tp.topic, OffsetCommitResponsePartition::default().with_partition_index(tp.partition).with_error_code(err))
    });
    OffsetCommitResponse::default().with_topics(by_topic(parts, |name, partitions| {
        OffsetCommitResponseTopic::default().with_name(TopicName(s(name))).with_partitions(partitions)
    }))
}

pub async fn offset_fetch(state: &Arc<BrokerState>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let groups: Vec<group::OffsetFetchGroup> = if version >= 8 {
        req.groups
            .iter()
            .map(|g| group::OffsetFetchGroup {
                group_id: g.group_id.0.to_string(),
                partitions: g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .flat_map(|t| {
                            t.partition_indexes
                                .iter()
                                .map(|p| TopicPartition { topic: t.name.0.to_string(), partition: *p })
                        })
                        .collect()
                }),
            })
            .collect()
    } else {
        vec![group::OffsetFetchGroup {
            group_id: req.group_id.0.to_string(),
            partitions: req.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(|p| TopicPartition { topic: t.name.0.to_string(), partition: *p })
                    })
                    .collect()
            }),
        }]
    };
    // RequireStable (v7+, KIP-447): pending transactional offsets answer UNSTABLE_OFFSET_COMMIT.
    let require_stable = version >= 7 && req.require_stable;
    let Some(group::Response::OffsetFetch(fetched)) =
        state.groups.call(group::OffsetFetch { groups: groups.clone(), require_stable }).await
    else {
        return if version >= 8 {
            OffsetFetchResponse::default().with_groups(
                groups
                    .into_iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_error_code(refusal(state, &g.group_id))
                            .with_group_id(GroupId(s(g.group_id)))
                    })
                    .collect(),
            )
        } else {
            // v1 has no top-level error: Kafka answers v1 with the error on every partition
            // asked for; with none listed, the empty answer is all it can say.
            let mut out = OffsetFetchResponse::default();
            if version >= 2 {
                out.error_code =
                    groups.first().map_or(codes::COORDINATOR_NOT_AVAILABLE, |g| refusal(state, &g.group_id));
            }
            out
        };
    };
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(
            fetched
                .into_iter()
                .map(|g| {
                    let parts = g.partitions.into_iter().map(|p| {
                        let part = OffsetFetchResponsePartitions::default()
                            .with_partition_index(p.partition.partition)
                            .with_committed_offset(p.offset)
                            .with_committed_leader_epoch(p.leader_epoch)
                            .with_metadata(Some(s(p.metadata)))
                            .with_error_code(code(p.error));
                        (p.partition.topic, part)
                    });
                    let topics = by_topic(parts, |name, partitions| {
                        OffsetFetchResponseTopics::default().with_name(TopicName(s(name))).with_partitions(partitions)
                    });
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(s(g.group_id)))
                        .with_error_code(code(g.error))
                        .with_topics(topics)
                })
                .collect(),
        );
    }
    let g = fetched.into_iter().next();
    let mut out = OffsetFetchResponse::default();
    if let Some(g) = g {
        if version >= 2 {
            out.error_code = code(g.error);
        }
        let parts = g.partitions.into_iter().map(|p| {
            let mut part = OffsetFetchResponsePartition::default()
                .with_partition_index(p.partition.partition)
                .with_committed_offset(p.offset)
                .with_metadata(Some(s(p.metadata)))
                .with_error_code(code(p.error));
            if version >= 5 {
                part.committed_leader_epoch = p.leader_epoch;
            }
            (p.partition.topic, part)
        });
        out.topics = by_topic(parts, |name, partitions| {
            OffsetFetchResponseTopic::default().with_name(TopicName(s(name))).with_partitions(partitions)
        });
    }
    out
}

pub async fn list_groups(state: &Arc<BrokerState>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<GroupState> = req.states_filter.iter().filter_map(|f| GroupState::from_name(f.as_str())).collect();
    match state.groups.call(group::ListGroups { states }).await {
        Some(group::Response::ListGroups(gs)) => ListGroupsResponse::default().with_groups(
            gs.into_iter()
                .map(|g| {
                    let mut l = ListedGroup::default()
                        .with_group_id(GroupId(s(g.group_id)))
                        .with_protocol_type(s(g.protocol_type));
                    if version >= 4 {
                        l.group_state = s(g.state.name());
                    }
                    l
                })
                .collect(),
        ),
        _ => ListGroupsResponse::default().with_error_code(codes::COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn describe_groups(
    state: &Arc<BrokerState>,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let ids: Vec<String> = req.groups.iter().map(|g| g.0.to_string()).collect();
    let described = match state.groups.call(group::DescribeGroups { group_ids: ids.clone() }).await {
        Some(group::Response::DescribeGroups(d)) => d,
        _ => {
            return DescribeGroupsResponse::default().with_groups(
                ids.into_iter()
                    .map(|id| {
                        DescribedGroup::default().with_error_code(refusal(state, &id)).with_group_id(GroupId(s(id)))
                    })
                    .collect(),
            )
        }
    };
    DescribeGroupsResponse::default().with_groups(
        described
            .into_iter()
            .map(|g| {
                let mut d = DescribedGroup::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_error_code(code(g.error))
                    .with_group_state(s(g.state.name()))
                    .with_protocol_type(s(g.protocol_type))
                    .with_protocol_data(s(g.protocol_data))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(if version >= 4 { opt(m.group_instance_id) } else { None })
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    );
                if version >= 3 {
                    // Not computed: Kafka's "not requested" marker.
                    d.authorized_operations = i32::MIN;
                }
                d
            })
            .collect(),
    )
}

pub async fn delete_groups(state: &Arc<BrokerState>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let results = match state.groups.call(group::DeleteGroups { group_ids: ids.clone() }).await {
        Some(group::Response::DeleteGroups(r)) => r.into_iter().map(|(g, e)| (g, code(e))).collect(),
        _ => ids
            .into_iter()
            .map(|g| {
                let e = refusal(state, &g);
                (g, e)
            })
            .collect::<Vec<_>>(),
    };
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|(g, e)| DeletableGroupResult::default().with_group_id(GroupId(s(g))).with_error_code(e))
            .collect(),
    )
}

pub async fn offset_delete(state: &Arc<BrokerState>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    // Partitions of topics that do not exist are answered here, as Kafka's request handler does.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for t in &req.topics {
        let n = state.topics.get(&t.name.0).map(|x| x.partitions.len() as i32);
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.name.0.to_string(), partition: p.partition_index };
            if n.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                known.push(tp);
            } else {
                unknown.push(tp);
            }
        }
    }
    let ask = group::OffsetDelete { group_id: req.group_id.0.to_string(), partitions: known.clone() };
    let refused = refusal(state, &ask.group_id);
    let (error, results): (i16, Vec<(TopicPartition, i16)>) = match state.groups.call(ask).await {
        Some(group::Response::OffsetDelete(r)) => {
            (code(r.error), r.partitions.into_iter().map(|p| (p.partition, code(p.error))).collect())
        }
        _ => (refused, Vec::new()),
    };
    if error != 0 {
        return OffsetDeleteResponse::default().with_error_code(error);
    }
    let all = results.into_iter().chain(unknown.into_iter().map(|tp| (tp, codes::UNKNOWN_TOPIC_OR_PARTITION)));
    let parts = all.map(|(tp, err)| {
        (tp.topic, OffsetDeleteResponsePartition::default().with_partition_index(tp.partition).with_error_code(err))
    });
    OffsetDeleteResponse::default().with_topics(by_topic(parts, |name, partitions| {
        OffsetDeleteResponseTopic::default().with_name(TopicName(s(name))).with_partitions(partitions)
    }))
}
