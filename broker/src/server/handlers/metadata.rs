//! Metadata: brokers, and topics with their partitions; auto-creates topics when allowed.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{blocking, codes};
use crate::server::BrokerState;
use crate::topics::{validate_topic_name, Topic, TopicError};

/// Kafka's internal topics (`is_internal` in Metadata); other `__` names are ordinary topics.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

pub async fn handle(state: &Arc<BrokerState>, req: MetadataRequest, version: i16) -> MetadataResponse {
    if state.cluster.is_some() {
        return cluster_handle(state, req, version).await;
    }
    let node = state.config.node_id;
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(state.advertised_host.clone()))
            .with_port(state.advertised_port as i32)])
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(state.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 { node } else { -1 }));
    let names = requested(&req, version);
    let auto_create = state.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    match names {
        None => {
            resp.topics = state.topics.all().iter().map(|t| topic_entry(t, node, version)).collect();
        }
        Some(names) => {
            for name in names {
                let mut topic = state.topics.get(&name);
                let mut create_error = None;
                if topic.is_none() && auto_create && validate_topic_name(&name).is_ok() {
                    let st = state.clone();
                    let n = name.clone();
                    let parts = state.config.num_partitions;
                    match blocking(move || st.topics.create(&n, parts, 1, Default::default())).await {
                        // A concurrent creation of the same topic is fine: either way it exists.
                        Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
                        Err(e) => {
                            tracing::error!(topic = %name, error = %e, "auto-creating topic failed");
                            create_error = Some(e.code());
                        }
                    }
                    topic = state.topics.get(&name);
                }
                let entry = match topic {
                    Some(t) => topic_entry(&t, node, version),
                    None => {
                        let code = if validate_topic_name(&name).is_err() {
                            codes::INVALID_TOPIC_EXCEPTION
                        } else {
                            create_error.unwrap_or(codes::UNKNOWN_TOPIC_OR_PARTITION)
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(Some(TopicName(StrBytes::from_string(name))))
                    }
                };
                resp.topics.push(entry);
            }
        }
    }
    resp
}

/// The topic names asked for; `None` for all (v0 asks for all with an empty list).
fn requested(req: &MetadataRequest, version: i16) -> Option<Vec<String>> {
    match &req.topics {
        None => None,
        Some(ts) if ts.is_empty() && version == 0 => None,
        Some(ts) => Some(ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()),
    }
}

/// Metadata in a cluster: from the metadata image. Auto-creation goes through the controller.
async fn cluster_handle(state: &Arc<BrokerState>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = state.cluster.as_ref().expect("checked by the caller");
    let mut image = node.image();
    // A broker whose image has not caught up with the quorum yet (just restarted) may not know
    // topics that exist: it says so with a retriable error, and creates nothing.
    let behind = !node.caught_up();
    let auto_create = !behind && state.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let names = requested(&req, version);
    if let (Some(names), true) = (&names, auto_create) {
        let missing: Vec<&String> =
            names.iter().filter(|n| !image.topics.contains_key(*n) && validate_topic_name(n).is_ok()).collect();
        for name in missing {
            let live = image.brokers.values().filter(|b| !b.fenced).count().max(1);
            let cmd = crate::cluster::command::Command::CreateTopic {
                name: name.clone(),
                partitions: state.config.num_partitions,
                replication_factor: state.config.default_replication_factor.min(live as i16),
                assignments: None,
                configs: Default::default(),
            };
            match crate::server::cluster::propose(state, cmd).await {
                Ok(_) | Err((codes::TOPIC_ALREADY_EXISTS, _)) => {}
                Err((_, e)) => tracing::warn!(topic = %name, error = %e, "auto-creating topic failed"),
            }
        }
        let n = names.clone();
        crate::server::cluster::wait_and_sync(state, move |img| {
            n.iter().all(|t| img.topics.contains_key(t) || validate_topic_name(t).is_err())
        })
        .await;
        image = node.image();
    }
    let mut brokers: Vec<MetadataResponseBroker> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
        })
        .collect();
    if brokers.is_empty() {
        // Not registered yet: clients still need somewhere to send the next request.
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(state.config.node_id))
                .with_host(StrBytes::from_string(state.advertised_host.clone()))
                .with_port(state.advertised_port as i32),
        );
    }
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(
            (version >= 2)
                .then(|| StrBytes::from_string(image.cluster_id.clone().unwrap_or_else(|| state.cluster_id.clone()))),
        )
        .with_controller_id(BrokerId(if version >= 1 { node.controller().unwrap_or(-1) } else { -1 }));
    let entry = |name: &str| -> MetadataResponseTopic {
        let Some(t) = image.topics.get(name) else {
            let code = if validate_topic_name(name).is_err() {
                codes::INVALID_TOPIC_EXCEPTION
            } else if behind {
                codes::LEADER_NOT_AVAILABLE
            } else {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            };
            return MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))));
        };
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_topic_id(if version >= 10 { t.id } else { Default::default() })
            .with_is_internal(version >= 1 && INTERNAL_TOPICS.contains(&name))
            .with_partitions(
                t.partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let offline: Vec<i32> = p.replicas.iter().copied().filter(|r| !image.is_live(*r)).collect();
                        MetadataResponsePartition::default()
                            .with_error_code(if p.leader < 0 { codes::LEADER_NOT_AVAILABLE } else { 0 })
                            .with_partition_index(i as i32)
                            .with_leader_id(BrokerId(p.leader))
                            .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                            .with_replica_nodes(ids(&p.replicas))
                            .with_isr_nodes(ids(&p.isr))
                            .with_offline_replicas(if version >= 5 { ids(&offline) } else { Vec::new() })
                    })
                    .collect(),
            )
    };
    resp.topics = match names {
        None => image.topics.keys().map(|n| entry(n)).collect(),
        Some(names) => names.iter().map(|n| entry(n)).collect(),
    };
    resp
}

/// A topic entry with only the fields `version` has.
fn topic_entry(t: &Topic, node: i32, version: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { t.id } else { Default::default() })
        .with_is_internal(version >= 1 && INTERNAL_TOPICS.contains(&t.name.as_str()))
        .with_partitions(
            t.partitions
                .iter()
                .enumerate()
                .map(|(i, log)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i as i32)
                        .with_leader_id(BrokerId(node))
                        .with_leader_epoch(if version >= 7 { log.leader_epoch() } else { -1 })
                        .with_replica_nodes(vec![BrokerId(node)])
                        .with_isr_nodes(vec![BrokerId(node)])
                })
                .collect(),
        )
}
