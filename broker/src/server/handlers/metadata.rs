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
    let node = state.config.node_id;
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(state.advertised_host.clone()))
            .with_port(state.advertised_port as i32)])
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(state.cluster_id.clone())))
        .with_controller_id(BrokerId(if version >= 1 { node } else { -1 }));
    // v0 has no way to ask for "all topics" except an empty list; later versions use null.
    let names: Option<Vec<String>> = match &req.topics {
        None => None,
        Some(ts) if ts.is_empty() && version == 0 => None,
        Some(ts) => Some(ts.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()),
    };
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
