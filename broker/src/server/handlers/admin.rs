//! Topic administration: create, delete, partitions, configs, DeleteRecords.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{blocking, codes, log_error_code};
use crate::log::config::TOPIC_CONFIG_NAMES;
use crate::server::BrokerState;
use crate::topics::TopicError;

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// DescribeConfigs config source: a topic-level override.
const SOURCE_TOPIC: i8 = 1;
/// DescribeConfigs config source: the broker's default.
const SOURCE_DEFAULT: i8 = 5;

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn create_topics(state: &Arc<BrokerState>, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    if state.cluster.is_some() {
        return super::admin_cluster::create_topics(state, req, version).await;
    }
    let state = state.clone();
    blocking(move || {
        let mut resp = CreateTopicsResponse::default();
        for t in req.topics {
            let name = t.name.0.to_string();
            // Explicit assignments (one broker list per partition) stand in for the counts.
            let assigned =
                single_node_assignment(&t.assignments, t.num_partitions, t.replication_factor, state.config.node_id);
            let (partitions, replication) = match assigned {
                Ok(Some(n)) => (n, 1),
                _ => (
                    if t.num_partitions == -1 { state.config.num_partitions } else { t.num_partitions },
                    if t.replication_factor == -1 { 1 } else { t.replication_factor },
                ),
            };
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            let mut r = CreatableTopicResult::default().with_name(t.name.clone());
            if version >= 5 {
                r.num_partitions = partitions;
                r.replication_factor = replication;
            }
            let result = if let Err(e) = assigned {
                Err(e)
            } else if req.validate_only {
                state
                    .topics
                    .validate_new(&name, partitions, replication, &configs)
                    .map(|_| ())
                    .map_err(|e| (e.code(), e.to_string()))
            } else {
                state
                    .topics
                    .create(&name, partitions, replication, configs)
                    .map(|t| {
                        if version >= 7 {
                            r.topic_id = t.id
                        }
                    })
                    .map_err(|e| (e.code(), e.to_string()))
            };
            if let Err((code, m)) = result {
                r.error_code = code;
                r.error_message = msg(m);
                r.num_partitions = -1;
                r.replication_factor = -1;
                r.topic_id = Default::default();
            }
            resp.topics.push(r);
        }
        resp
    })
    .await
}

/// Check CreateTopics' explicit replica assignments on a single broker: `Ok(None)` when there
/// are none, `Ok(Some(partitions))` when every partition 0..n is assigned to this node alone.
fn single_node_assignment(
    assignments: &[CreatableReplicaAssignment],
    num_partitions: i32,
    replication_factor: i16,
    node: i32,
) -> Result<Option<i32>, (i16, String)> {
    if assignments.is_empty() {
        return Ok(None);
    }
    if num_partitions != -1 || replication_factor != -1 {
        return Err((
            codes::INVALID_REQUEST,
            "give either replica assignments or num_partitions and replication_factor, not both".into(),
        ));
    }
    let mut seen: Vec<i32> = assignments.iter().map(|a| a.partition_index).collect();
    seen.sort_unstable();
    if seen != (0..assignments.len() as i32).collect::<Vec<_>>() {
        return Err((codes::INVALID_REPLICA_ASSIGNMENT, "assignments must cover partitions 0..n exactly once".into()));
    }
    if let Some(a) = assignments.iter().find(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>() != [node]) {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "partition {} is assigned to {:?}; this broker (node {node}) runs alone",
                a.partition_index, a.broker_ids
            ),
        ));
    }
    Ok(Some(assignments.len() as i32))
}

pub async fn delete_topics(state: &Arc<BrokerState>, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    if state.cluster.is_some() {
        return super::admin_cluster::delete_topics(state, req, version).await;
    }
    let state = state.clone();
    blocking(move || {
        let mut names: Vec<TopicName> = req.topic_names.clone();
        let mut by_id_missing = Vec::new();
        for t in &req.topics {
            match &t.name {
                Some(n) => names.push(n.clone()),
                None => match state.topics.all().iter().find(|x| x.id == t.topic_id) {
                    Some(x) => names.push(TopicName(StrBytes::from_string(x.name.clone()))),
                    None => by_id_missing.push(t.topic_id),
                },
            }
        }
        let mut resp = DeleteTopicsResponse::default();
        for n in names {
            let mut r = DeletableTopicResult::default().with_name(Some(n.clone()));
            if let (true, Some(t)) = (version >= 6, state.topics.get(&n.0)) {
                r.topic_id = t.id;
            }
            if let Err(e) = state.topics.delete(&n.0) {
                r.error_code = e.code();
                if version >= 5 {
                    r.error_message = msg(e.to_string());
                }
            }
            resp.responses.push(r);
        }
        for id in by_id_missing {
            resp.responses.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(100) // UNKNOWN_TOPIC_ID
                    .with_error_message(msg(format!("no topic with id {id}"))),
            );
        }
        resp
    })
    .await
}

pub async fn create_partitions(state: &Arc<BrokerState>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    if state.cluster.is_some() {
        return super::admin_cluster::create_partitions(state, req).await;
    }
    let state = state.clone();
    blocking(move || {
        let mut resp = CreatePartitionsResponse::default();
        for t in req.topics {
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let res = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                Err((codes::INVALID_REQUEST, "manual replica assignment is not supported on a single broker".into()))
            } else {
                state
                    .topics
                    .add_partitions(&t.name.0, t.count, req.validate_only)
                    .map_err(|e| (e.code(), e.to_string()))
            };
            if let Err((code, m)) = res {
                r.error_code = code;
                r.error_message = msg(m);
            }
            resp.results.push(r);
        }
        resp
    })
    .await
}

pub fn describe_configs(state: &Arc<BrokerState>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let wanted =
            |name: &str| res.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
        match res.resource_type {
            TOPIC_RESOURCE => match state.topics.get(res.resource_name.as_str()) {
                None => {
                    r.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
                    r.error_message = msg(format!("topic '{}' does not exist", res.resource_name.as_str()));
                }
                Some(t) => {
                    let config = t.partitions[0].config();
                    for name in TOPIC_CONFIG_NAMES.iter().filter(|n| wanted(n)) {
                        let overridden = t.overrides.contains_key(*name);
                        r.configs.push(
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(name))
                                .with_value(config.get(name).map(StrBytes::from_string))
                                .with_config_source(if overridden { SOURCE_TOPIC } else { SOURCE_DEFAULT }),
                        );
                    }
                }
            },
            BROKER_RESOURCE => {
                let d = state.topics.defaults();
                let entries = [
                    ("log.segment.bytes", d.segment_bytes.to_string()),
                    ("log.retention.ms", d.retention_ms.to_string()),
                    ("log.retention.bytes", d.retention_bytes.to_string()),
                    ("log.cleanup.policy", d.cleanup_policy.as_str().to_string()),
                    ("message.max.bytes", d.max_message_bytes.to_string()),
                    ("num.partitions", state.config.num_partitions.to_string()),
                    ("auto.create.topics.enable", state.config.auto_create_topics.to_string()),
                    ("socket.request.max.bytes", state.config.socket_request_max_bytes.to_string()),
                ];
                for (name, value) in entries.into_iter().filter(|(n, _)| wanted(n)) {
                    r.configs.push(
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str(name))
                            .with_value(msg(value))
                            .with_read_only(true)
                            .with_config_source(SOURCE_DEFAULT),
                    );
                }
            }
            other => {
                r.error_code = codes::INVALID_REQUEST;
                r.error_message = msg(format!("resource type {other} is not supported; use 2 (topic) or 4 (broker)"));
            }
        }
        resp.results.push(r);
    }
    resp
}

pub async fn alter_configs(
    state: &Arc<BrokerState>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    if state.cluster.is_some() {
        return super::admin_cluster::alter_configs(state, req).await;
    }
    let state = state.clone();
    blocking(move || {
        let mut resp = IncrementalAlterConfigsResponse::default();
        for res in req.resources {
            let mut r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let result: Result<(), (i16, String)> = if res.resource_type != TOPIC_RESOURCE {
                Err((codes::INVALID_REQUEST, "only topic configs (resource type 2) can be altered".into()))
            } else {
                config_changes(&res.configs).and_then(|changes| {
                    state
                        .topics
                        .alter_configs(res.resource_name.as_str(), &changes, req.validate_only)
                        .map_err(|e: TopicError| (e.code(), e.to_string()))
                })
            };
            if let Err((code, m)) = result {
                r.error_code = code;
                r.error_message = msg(m);
            }
            resp.responses.push(r);
        }
        resp
    })
    .await
}

/// A config change by name: `Some` sets, `None` resets to the default.
pub(super) type ConfigChange = (String, Option<String>);

/// IncrementalAlterConfigs' operations on one resource as changes: `Some` sets (SET, 0),
/// `None` resets to the default (DELETE, 1); APPEND and SUBTRACT are refused.
pub(super) fn config_changes(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<ConfigChange>, (i16, String)> {
    configs
        .iter()
        .map(|c| match c.config_operation {
            0 => Ok((c.name.to_string(), Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()))),
            1 => Ok((c.name.to_string(), None)),
            op => Err((
                codes::INVALID_CONFIG,
                format!("operation {op} on '{}' is not supported; use SET (0) or DELETE (1)", c.name.as_str()),
            )),
        })
        .collect()
}

pub async fn delete_records(state: &Arc<BrokerState>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let state = state.clone();
    blocking(move || {
        let mut resp = DeleteRecordsResponse::default();
        for t in req.topics {
            let mut tr = DeleteRecordsTopicResult::default().with_name(t.name.clone());
            for p in t.partitions {
                let mut pr = DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(-1);
                match state.topics.partition(&t.name.0, p.partition_index) {
                    None => pr.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                    // Records of a compact-only topic go by compaction alone, as in Kafka.
                    Some(log) if !log.config().cleanup_policy.deletes() => pr.error_code = codes::POLICY_VIOLATION,
                    Some(log) => match log.delete_records(p.offset) {
                        Ok(lw) => pr.low_watermark = lw,
                        Err(e) => pr.error_code = log_error_code(&e),
                    },
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    })
    .await
}
