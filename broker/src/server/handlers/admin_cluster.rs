//! Topic administration in a cluster: each change goes through the controller, and the answer
//! waits until this broker's own image and topics show it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::codes;
use crate::cluster::command::{Command, Reply};
use crate::server::cluster::{propose, wait_and_sync};
use crate::server::BrokerState;
use crate::topics::validate_topic_name;

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// A request left the quorum's answer unknown to this broker for too long.
const REQUEST_TIMED_OUT: i16 = 7;

pub async fn create_topics(state: &Arc<BrokerState>, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let mut created = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let configs: BTreeMap<String, String> =
            t.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect();
        let assignments = (!t.assignments.is_empty()).then(|| {
            let mut a: Vec<_> = t.assignments.iter().collect();
            a.sort_by_key(|a| a.partition_index);
            a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>()).collect::<Vec<_>>()
        });
        let partitions = match &assignments {
            Some(a) => a.len() as i32,
            None if t.num_partitions == -1 => state.config.num_partitions,
            None => t.num_partitions,
        };
        let replication = match &assignments {
            Some(a) => a.first().map(|r| r.len() as i16).unwrap_or(0),
            None if t.replication_factor == -1 => state.config.default_replication_factor,
            None => t.replication_factor,
        };
        let mut r = CreatableTopicResult::default().with_name(t.name.clone());
        if version >= 5 {
            r.num_partitions = partitions;
            r.replication_factor = replication;
        }
        // Name, partition count and configs are checked here; replicas by the controller.
        let checked = state.topics.validate_new(&name, partitions, 1, &configs).map_err(|e| (e.code(), e.to_string()));
        let result = match checked {
            Err(e) => Err(e),
            Ok(_) if !t.assignments.is_empty() && (t.num_partitions != -1 || t.replication_factor != -1) => Err((
                codes::INVALID_REQUEST,
                "give either replica assignments or num_partitions and replication_factor, not both".into(),
            )),
            Ok(_) if req.validate_only => {
                let live = state.cluster.as_ref().map(|n| n.image().brokers.values().filter(|b| !b.fenced).count());
                if replication < 1 || live.is_some_and(|l| replication as usize > l) {
                    Err((
                        codes::INVALID_REPLICATION_FACTOR,
                        format!("replication factor {replication} is more than the {} live brokers", live.unwrap_or(0)),
                    ))
                } else {
                    Ok(None)
                }
            }
            Ok(_) => {
                let cmd = Command::CreateTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor: replication,
                    assignments,
                    configs,
                };
                propose(state, cmd).await.map(|reply| match reply {
                    Reply::TopicId(id) => Some(id),
                    _ => None,
                })
            }
        };
        match result {
            Ok(id) => {
                if let (Some(id), true) = (id, version >= 7) {
                    r.topic_id = id;
                }
                if id.is_some() {
                    created.push(name);
                }
            }
            Err((code, m)) => {
                r.error_code = code;
                r.error_message = msg(m);
                r.num_partitions = -1;
                r.replication_factor = -1;
            }
        }
        resp.topics.push(r);
    }
    if !created.is_empty() && !wait_and_sync(state, move |img| created.iter().all(|n| img.topics.contains_key(n))).await
    {
        for r in resp.topics.iter_mut().filter(|r| r.error_code == 0) {
            r.error_code = REQUEST_TIMED_OUT;
            r.error_message = msg("the topic was created but this broker has not seen it yet; retry describing it");
        }
    }
    resp
}

pub async fn delete_topics(state: &Arc<BrokerState>, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let image = state.cluster.as_ref().expect("cluster mode").image();
    let mut names: Vec<TopicName> = req.topic_names.clone();
    let mut resp = DeleteTopicsResponse::default();
    for t in &req.topics {
        match &t.name {
            Some(n) => names.push(n.clone()),
            None => match image.topics.iter().find(|(_, x)| x.id == t.topic_id) {
                Some((n, _)) => names.push(TopicName(StrBytes::from_string(n.clone()))),
                None => resp.responses.push(
                    DeletableTopicResult::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(100) // UNKNOWN_TOPIC_ID
                        .with_error_message(msg(format!("no topic with id {}", t.topic_id))),
                ),
            },
        }
    }
    let mut deleted = Vec::new();
    for n in names {
        let mut r = DeletableTopicResult::default().with_name(Some(n.clone()));
        if let (true, Some(t)) = (version >= 6, image.topics.get(n.0.as_str())) {
            r.topic_id = t.id;
        }
        match propose(state, Command::DeleteTopic { name: n.0.to_string() }).await {
            Ok(_) => deleted.push(n.0.to_string()),
            Err((code, m)) => {
                r.error_code = code;
                if version >= 5 {
                    r.error_message = msg(m);
                }
            }
        }
        resp.responses.push(r);
    }
    if !deleted.is_empty() {
        wait_and_sync(state, move |img| deleted.iter().all(|n| !img.topics.contains_key(n))).await;
    }
    resp
}

pub async fn create_partitions(state: &Arc<BrokerState>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let mut grown = Vec::new();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let name = t.name.0.to_string();
        let res = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((codes::INVALID_REQUEST, "manual replica assignment of new partitions is not supported".into()))
        } else if t.count > 10_000 {
            Err((codes::INVALID_PARTITIONS, format!("{} partitions: at most 10000 per topic", t.count)))
        } else if req.validate_only {
            match state.cluster.as_ref().and_then(|n| n.image().topics.get(&name).map(|x| x.partitions.len() as i32)) {
                None => Err((codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist"))),
                Some(have) if t.count <= have => {
                    Err((codes::INVALID_PARTITIONS, format!("topic '{name}' has {have} partitions; ask for more")))
                }
                Some(_) => Ok(()),
            }
        } else {
            let out = propose(state, Command::CreatePartitions { name: name.clone(), count: t.count }).await;
            if out.is_ok() {
                grown.push((name, t.count));
            }
            out.map(|_| ())
        };
        if let Err((code, m)) = res {
            r.error_code = code;
            r.error_message = msg(m);
        }
        resp.results.push(r);
    }
    if !grown.is_empty() {
        wait_and_sync(state, move |img| {
            grown.iter().all(|(n, c)| img.topics.get(n).is_some_and(|t| t.partitions.len() as i32 >= *c))
        })
        .await;
    }
    resp
}

/// IncrementalAlterConfigs of topics: the new overrides are computed from this broker's image
/// and replace the old ones in full.
pub async fn alter_configs(
    state: &Arc<BrokerState>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    const TOPIC_RESOURCE: i8 = 2;
    let image = state.cluster.as_ref().expect("cluster mode").image();
    let mut resp = IncrementalAlterConfigsResponse::default();
    let mut changed = Vec::new();
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let name = res.resource_name.to_string();
        let result: Result<(), (i16, String)> = if res.resource_type != TOPIC_RESOURCE {
            Err((codes::INVALID_REQUEST, "only topic configs (resource type 2) can be altered".into()))
        } else if let Some(t) = image.topics.get(&name) {
            let changes = super::admin::config_changes(&res.configs);
            let mut overrides = t.configs.clone();
            for (name, value) in changes.iter().flatten() {
                match value {
                    Some(v) => overrides.insert(name.clone(), v.clone()),
                    None => overrides.remove(name),
                };
            }
            let valid = state
                .topics
                .defaults()
                .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| (codes::INVALID_CONFIG, e.to_string()));
            match (changes.err(), valid) {
                (Some(b), _) => Err(b),
                (None, Err(e)) => Err(e),
                (None, Ok(_)) if req.validate_only => Ok(()),
                (None, Ok(_)) => {
                    let out =
                        propose(state, Command::AlterConfigs { name: name.clone(), configs: overrides.clone() }).await;
                    if out.is_ok() {
                        changed.push((name, overrides));
                    }
                    out.map(|_| ())
                }
            }
        } else if validate_topic_name(&name).is_err() {
            Err((codes::INVALID_TOPIC_EXCEPTION, format!("invalid topic name '{name}'")))
        } else {
            Err((codes::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")))
        };
        if let Err((code, m)) = result {
            r.error_code = code;
            r.error_message = msg(m);
        }
        resp.responses.push(r);
    }
    if !changed.is_empty() {
        wait_and_sync(state, move |img| {
            changed.iter().all(|(n, c)| img.topics.get(n).is_some_and(|t| &t.configs == c))
        })
        .await;
    }
    resp
}
