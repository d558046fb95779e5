//! Admin operations on replicas: leader elections and partition reassignments, as Kafka's
//! `Admin.electLeaders`, `alterPartitionReassignments` and `listPartitionReassignments` do them.
//!
//! Any broker takes these requests: in a cluster it forwards the change to the controller and
//! answers once it sees the change itself.

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::error::{Error, Result};

/// A partition and the outcome of an operation on it.
pub type PartitionOutcome = ((String, i32), Result<()>);

/// A partition reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// All replicas while moving: the target ones first, then those being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (not yet in sync).
    pub adding_replicas: Vec<i32>,
    /// Replicas leaving once the added ones are in sync.
    pub removing_replicas: Vec<i32>,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn outcome(topic: &str, partition: i32, code: i16, message: Option<&StrBytes>) -> PartitionOutcome {
    let err = Error::from_code(code, format!("partition {topic}-{partition}"), message.map(|m| m.to_string()));
    ((topic.to_string(), partition), err.map_or(Ok(()), Err))
}

/// Group `(topic, partition)` pairs by topic, keeping the first-seen order of topics.
fn by_topic<T: Clone>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, x) in items {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, xs)) => xs.push(x),
            None => out.push((topic, vec![x])),
        }
    }
    out
}

impl Admin<'_> {
    /// Elect leaders of `partitions` (every partition if `None`). A preferred election makes
    /// each partition's first replica its leader when that replica is alive and in sync; an
    /// unclean one (`preferred: false`) elects a leader for partitions that have none (from
    /// outside the ISR only where the topic allows `unclean.leader.election.enable`).
    ///
    /// Returns one outcome per partition; a partition that needed no election fails with
    /// ELECTION_NOT_NEEDED (84). With `None`, as in Kafka, those partitions are left out.
    pub async fn elect_leaders(
        &self,
        partitions: Option<&[(String, i32)]>,
        preferred: bool,
    ) -> Result<Vec<PartitionOutcome>> {
        let conn = self.client.live_broker().await?;
        let v = conn.version::<ElectLeadersRequest>(2)?;
        if v == 0 && !preferred {
            return Err(Error::Config(format!(
                "the broker at {} only runs preferred elections (ElectLeaders v0)",
                conn.addr()
            )));
        }
        let topic_partitions = partitions.map(|ps| {
            by_topic(ps.iter().map(|(t, p)| (t.clone(), *p)))
                .into_iter()
                .map(|(t, ps)| TopicPartitions::default().with_topic(name(&t)).with_partitions(ps))
                .collect()
        });
        let req = ElectLeadersRequest::default()
            .with_election_type(if preferred { 0 } else { 1 })
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.client.config().request_timeout.as_millis() as i32);
        let resp = self.client.timed("ElectLeaders", conn.call_at(req, v)).await?;
        if let Some(e) = Error::from_code(resp.error_code, "leader election", None) {
            return Err(e);
        }
        self.client.invalidate().await;
        Ok(resp
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| outcome(t.topic.0.as_str(), p.partition_id, p.error_code, p.error_message.as_ref()))
            })
            .collect())
    }

    /// Move partitions to new replicas, preferred leader first (`Some`), or cancel a move in
    /// progress (`None`). A move adds the new replicas, and completes once they are in sync by
    /// dropping the ones not in the target; [`Admin::list_partition_reassignments`] shows the moves
    /// in progress. Returns one outcome per partition.
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<PartitionOutcome>> {
        let topics = by_topic(moves.iter().map(|(t, p, r)| (t.clone(), (*p, r.clone()))))
            .into_iter()
            .map(|(t, ps)| {
                ReassignableTopic::default().with_name(name(&t)).with_partitions(
                    ps.into_iter()
                        .map(|(p, r)| {
                            ReassignablePartition::default()
                                .with_partition_index(p)
                                .with_replicas(r.map(|r| r.into_iter().map(BrokerId).collect()))
                        })
                        .collect(),
                )
            })
            .collect();
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.client.config().request_timeout.as_millis() as i32)
            .with_topics(topics);
        let resp =
            self.client.timed("AlterPartitionReassignments", self.client.live_broker().await?.call(req, 0)).await?;
        if let Some(e) = Error::from_code(
            resp.error_code,
            "partition reassignment",
            resp.error_message.as_ref().map(|m| m.to_string()),
        ) {
            return Err(e);
        }
        self.client.invalidate().await;
        Ok(resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| outcome(t.name.0.as_str(), p.partition_index, p.error_code, p.error_message.as_ref()))
            })
            .collect())
    }

    /// The partition reassignments in progress, sorted by topic and partition.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<PartitionReassignment>> {
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.client.config().request_timeout.as_millis() as i32)
            .with_topics(None);
        let resp =
            self.client.timed("ListPartitionReassignments", self.client.live_broker().await?.call(req, 0)).await?;
        if let Some(e) = Error::from_code(
            resp.error_code,
            "listing partition reassignments",
            resp.error_message.as_ref().map(|m| m.to_string()),
        ) {
            return Err(e);
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out: Vec<PartitionReassignment> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding_replicas: ids(&p.adding_replicas),
                    removing_replicas: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_group_by_topic_in_order() {
        let g = by_topic([("b".to_string(), 1), ("a".to_string(), 0), ("b".to_string(), 0)]);
        assert_eq!(g, vec![("b".to_string(), vec![1, 0]), ("a".to_string(), vec![0])]);
    }

    #[test]
    fn outcomes_carry_the_kafka_error() {
        assert!(outcome("t", 0, 0, None).1.is_ok());
        let (tp, r) = outcome("t", 1, 84, Some(&StrBytes::from_static_str("the preferred replica already leads")));
        assert_eq!(tp, ("t".to_string(), 1));
        let e = r.unwrap_err();
        assert_eq!(e.code(), Some(84));
        let text = e.to_string();
        assert!(
            text.contains("ELECTION_NOT_NEEDED") && text.contains("t-1") && text.contains("already leads"),
            "{text}"
        );
    }
}
