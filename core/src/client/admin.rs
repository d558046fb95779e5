//! Admin operations on topics: create, delete, list, describe, partitions, configs, records.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Client, TopicInfo};
use crate::error::{Error, Result};

/// Resource type of a topic in config requests.
const TOPIC_RESOURCE: i8 = 2;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count (-1: broker default).
    pub partitions: i32,
    /// Replication factor (-1: broker default).
    pub replication_factor: i16,
    /// Topic config overrides by Kafka name.
    pub configs: BTreeMap<String, String>,
}

/// A topic with its partitions and effective configs.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    /// Metadata (partitions, leaders, replicas).
    pub info: TopicInfo,
    /// Effective configs by name.
    pub configs: BTreeMap<String, String>,
}

/// Admin client over a [`Client`].
#[derive(Debug)]
pub struct Admin<'a> {
    pub(super) client: &'a Client,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn check(code: i16, what: String, msg: Option<&StrBytes>) -> Result<()> {
    match Error::from_code(code, what, msg.map(|m| m.to_string())) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl<'a> Admin<'a> {
    /// Admin operations through `client`.
    pub fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// Create topics; fails with the first topic's error (e.g. TOPIC_ALREADY_EXISTS).
    pub async fn create_topics(&self, topics: &[NewTopic], validate_only: bool) -> Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.client.config().request_timeout.as_millis() as i32)
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = self.client.timed("CreateTopics", self.client.live_broker().await?.call(req, 7)).await?;
        for t in &resp.topics {
            check(t.error_code, format!("topic '{}'", t.name.0), t.error_message.as_ref())?;
        }
        self.client.invalidate().await;
        Ok(())
    }

    /// Delete topics by name.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let conn = self.client.live_broker().await?;
        let v = conn.version::<DeleteTopicsRequest>(6)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        if v >= 6 {
            req.topics = names.iter().map(|n| DeleteTopicState::default().with_name(Some(name(n)))).collect();
        } else {
            req.topic_names = names.iter().map(|n| name(n)).collect();
        }
        let resp = self.client.timed("DeleteTopics", conn.call_at(req, v)).await?;
        for r in &resp.responses {
            let n = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            check(r.error_code, format!("topic '{n}'"), r.error_message.as_ref())?;
        }
        self.client.invalidate().await;
        Ok(())
    }

    /// Names of all topics, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let md = self.client.metadata(None, false).await?;
        Ok(md.topics.into_iter().map(|t| t.name).collect())
    }

    /// Describe topics (all if `names` is empty): partitions and effective configs.
    pub async fn describe_topics(&self, names: &[String]) -> Result<Vec<TopicDescription>> {
        let md = self.client.metadata(if names.is_empty() { None } else { Some(names) }, false).await?;
        let mut out = Vec::new();
        for info in md.topics {
            check(info.error_code, format!("topic '{}'", info.name), None)?;
            let configs = self.describe_configs(&info.name).await?;
            out.push(TopicDescription { info, configs });
        }
        Ok(out)
    }

    /// Effective configs of a topic.
    pub async fn describe_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)]);
        let resp = self.client.timed("DescribeConfigs", self.client.live_broker().await?.call(req, 4)).await?;
        let r = resp.results.first().ok_or_else(|| Error::Protocol("empty DescribeConfigs response".into()))?;
        check(r.error_code, format!("configs of topic '{topic}'"), r.error_message.as_ref())?;
        Ok(r.configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()))
            .collect())
    }

    /// Set (`Some`) or reset to default (`None`) topic configs.
    pub async fn alter_configs(&self, topic: &str, changes: &[(String, Option<String>)]) -> Result<()> {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(
                changes
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_config_operation(if v.is_some() { 0 } else { 1 })
                            .with_value(v.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            )]);
        let resp = self.client.timed("IncrementalAlterConfigs", self.client.live_broker().await?.call(req, 1)).await?;
        for r in &resp.responses {
            check(r.error_code, format!("configs of topic '{topic}'"), r.error_message.as_ref())?;
        }
        Ok(())
    }

    /// Grow a topic to `count` partitions.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatePartitionsTopic::default().with_name(name(topic)).with_count(count)]);
        let resp = self.client.timed("CreatePartitions", self.client.live_broker().await?.call(req, 3)).await?;
        for r in &resp.results {
            check(r.error_code, format!("partitions of topic '{topic}'"), r.error_message.as_ref())?;
        }
        self.client.invalidate().await;
        Ok(())
    }

    /// Move the log start offset of a partition to `offset` (-1: the high watermark).
    /// Returns the new low watermark.
    pub async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let conn = self.client.leader(topic, partition).await?;
        let req =
            DeleteRecordsRequest::default().with_timeout_ms(30_000).with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]);
        let resp = self.client.timed("DeleteRecords", conn.call(req, 2)).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol("empty DeleteRecords response".into()))?;
        check(p.error_code, format!("{topic}-{partition}"), None)?;
        Ok(p.low_watermark)
    }
}
