//! Before threads start: which topics each sub-topology reads and writes, their partition
//! counts, and the internal topics (repartition and changelog) created if missing.
//!
//! A sub-topology has as many tasks as the largest partition count of the topics it reads. A
//! repartition topic (written by one sub-topology, read by another) gets the task count of the
//! sub-topology writing it, as in Kafka Streams; a changelog gets its store's task count.

use std::collections::{BTreeMap, HashMap};

use crate::client::{Admin, Client, NewTopic};
use crate::consumer::TopicPattern;
use crate::error::{Error, Result};
use crate::streams::topology::Topology;

/// An internal topic the application needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Topic configs.
    pub configs: BTreeMap<String, String>,
}

/// What a program asks of one internal topic beyond the defaults (the DSL's
/// `Repartitioned::with_number_of_partitions`, topic configs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternalTopicSettings {
    /// A fixed partition count (repartition topics; changelogs always have one per task).
    pub partitions: Option<i32>,
    /// Topic configs, over the defaults.
    pub configs: BTreeMap<String, String>,
}

/// Configs of repartition topics, as Kafka Streams sets them: data is kept until the
/// application purges what it committed (`repartition.purge.interval.ms`).
pub fn repartition_defaults() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("segment.bytes", "52428800"),
        ("message.timestamp.type", "CreateTime"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Configs of changelog topics.
pub fn changelog_defaults() -> BTreeMap<String, String> {
    [("cleanup.policy", "compact"), ("message.timestamp.type", "CreateTime")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the runtime learned about a topology's topics.
#[derive(Debug, Clone, Default)]
pub struct TopicPlan {
    /// Partition count of every topic read or written by name.
    pub partitions: HashMap<String, i32>,
    /// Tasks (partitions) per sub-topology.
    pub tasks: Vec<i32>,
    /// The sub-topology reading each source topic (pattern sources: the topics matching at
    /// start).
    pub subtopology_of: HashMap<String, u32>,
    /// Pattern sources: topics appearing later that match go to the sub-topology.
    pub patterns: Vec<(TopicPattern, u32)>,
    /// Internal topics (created if missing).
    pub internal: Vec<InternalTopic>,
}

impl TopicPlan {
    /// The sub-topology reading `topic`, by name or by pattern.
    pub fn subtopology(&self, topic: &str) -> Option<u32> {
        self.subtopology_of
            .get(topic)
            .copied()
            .or_else(|| self.patterns.iter().find(|(p, _)| p.matches(topic)).map(|(_, s)| *s))
    }

    /// The regex a stream thread subscribes with when the topology has pattern sources: every
    /// named source topic or any pattern (`None` without patterns).
    pub fn subscription_pattern(&self) -> Option<String> {
        if self.patterns.is_empty() {
            return None;
        }
        let mut names: Vec<&String> = self.subtopology_of.keys().collect();
        names.sort();
        let alternatives: Vec<String> = names
            .into_iter()
            .map(|t| regex::escape(t))
            .chain(self.patterns.iter().map(|(p, _)| format!("(?:{})", p.as_str())))
            .collect();
        Some(alternatives.join("|"))
    }
}

/// Work out partition counts and internal topics, reading external topics' metadata;
/// `settings` override internal topics' partition counts and configs by name. A repartition
/// topic in a `copartition` group with external topics (a stream-table join after a key change)
/// gets their partition count unless `settings` fix it, as Kafka Streams does.
pub async fn plan(
    client: &Client,
    topology: &Topology,
    application_id: &str,
    settings: &HashMap<String, InternalTopicSettings>,
    copartition: &[std::collections::BTreeSet<String>],
) -> Result<TopicPlan> {
    let subs = topology.subtopologies().len() as u32;
    let mut plan = TopicPlan { tasks: vec![0; subs as usize], ..Default::default() };
    let mut written_by: HashMap<String, u32> = HashMap::new();
    for s in 0..subs {
        for t in topology.sink_topics(s) {
            written_by.insert(t, s);
        }
        for t in topology.source_topics(s) {
            plan.subtopology_of.insert(t, s);
        }
        for p in topology.source_patterns(s) {
            plan.patterns.push((p, s));
        }
    }
    if !plan.patterns.is_empty() {
        // Every topic matching a pattern now (internal topics and this application's own
        // never match).
        let md = client.metadata(None, false).await?;
        let own = format!("{application_id}-");
        for (p, s) in &plan.patterns {
            let matched = p.resolve(&md, true);
            if matched.is_empty() {
                return Err(Error::Config(format!(
                    "no topic matches the source pattern {}; create one before starting the application",
                    p.as_str()
                )));
            }
            for t in matched.into_keys().filter(|t| !t.starts_with(&own)) {
                if let Some(other) = plan.subtopology_of.insert(t.clone(), *s).filter(|o| o != s) {
                    return Err(Error::Config(format!(
                        "topic {t} is read by sub-topologies {other} and {s} (it matches a source pattern of both)"
                    )));
                }
            }
        }
    }
    let external: Vec<String> = plan.subtopology_of.keys().filter(|t| !written_by.contains_key(*t)).cloned().collect();
    if !external.is_empty() {
        let md = client.metadata(Some(&external), false).await?;
        for t in &external {
            // A retriable error (a broker still catching up with its cluster) is the broker's to
            // report, so that the caller tries again; only an unknown topic is the user's.
            let retriable = md
                .topics
                .iter()
                .filter(|m| &m.name == t && m.error_code != 0 && m.error_code != 3)
                .find_map(|m| Error::from_code(m.error_code, format!("source topic {t}"), None))
                .filter(|e| e.is_retriable());
            if let Some(e) = retriable {
                return Err(e);
            }
            let found = md.topics.iter().find(|m| &m.name == t && m.error_code == 0 && !m.partitions.is_empty());
            let Some(m) = found else {
                return Err(Error::Config(format!(
                    "source topic {t} does not exist; create it before starting the application"
                )));
            };
            plan.partitions.insert(t.clone(), m.partitions.len() as i32);
        }
    }
    for (t, n) in settings.iter().filter_map(|(t, x)| Some((t, x.partitions?))) {
        if written_by.contains_key(t) && plan.subtopology_of.contains_key(t) {
            plan.partitions.insert(t.clone(), n);
        }
    }
    for group in copartition {
        let external =
            group.iter().filter(|t| !written_by.contains_key(*t)).filter_map(|t| plan.partitions.get(t)).max();
        if let Some(&n) = external {
            for t in group.iter().filter(|t| written_by.contains_key(*t) && plan.subtopology_of.contains_key(*t)) {
                plan.partitions.entry(t.clone()).or_insert(n);
            }
        }
    }
    // Repartition topics take the task count of the sub-topology writing them (unless fixed
    // above); iterate until
    // every sub-topology's count is known (chains of repartitions).
    loop {
        let mut progress = false;
        for s in 0..subs {
            let sources: Vec<&String> = plan.subtopology_of.iter().filter(|(_, x)| **x == s).map(|(t, _)| t).collect();
            let known: Vec<i32> = sources.iter().filter_map(|t| plan.partitions.get(*t).copied()).collect();
            if plan.tasks[s as usize] == 0 && known.len() == sources.len() && !sources.is_empty() {
                plan.tasks[s as usize] = known.into_iter().max().unwrap_or(1);
                progress = true;
            }
            if plan.tasks[s as usize] > 0 {
                for t in topology.sink_topics(s) {
                    if plan.subtopology_of.contains_key(&t) && !plan.partitions.contains_key(&t) {
                        plan.partitions.insert(t, plan.tasks[s as usize]);
                        progress = true;
                    }
                }
            }
        }
        if !progress {
            break;
        }
    }
    if let Some(s) = plan.tasks.iter().position(|n| *n == 0) {
        return Err(Error::Config(format!("cannot work out the partition count of sub-topology {s} (a cycle?)")));
    }
    let with = |name: &str, mut configs: BTreeMap<String, String>| {
        if let Some(x) = settings.get(name) {
            configs.extend(x.configs.clone());
        }
        configs
    };
    for t in written_by.keys() {
        if plan.subtopology_of.contains_key(t) {
            plan.internal.push(InternalTopic {
                name: t.clone(),
                partitions: plan.partitions[t],
                configs: with(t, repartition_defaults()),
            });
        }
    }
    for s in 0..subs {
        for (store, logged) in topology.stores_of(s) {
            if logged {
                let name = format!("{application_id}-{store}-changelog");
                plan.partitions.insert(name.clone(), plan.tasks[s as usize]);
                let configs = with(&name, changelog_defaults());
                plan.internal.push(InternalTopic { name, partitions: plan.tasks[s as usize], configs });
            }
        }
    }
    plan.internal.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plan)
}

/// Check that every group of topics that must be co-partitioned (joins, cogroup) has one
/// partition count.
pub fn check_copartitioned(plan: &TopicPlan, groups: &[std::collections::BTreeSet<String>]) -> Result<()> {
    for g in groups {
        let counts: Vec<(String, i32)> =
            g.iter().filter_map(|t| plan.partitions.get(t).map(|n| (t.clone(), *n))).collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            let listed: Vec<String> = counts.iter().map(|(t, n)| format!("{t} ({n})")).collect();
            return Err(Error::Config(format!(
                "topics that must be co-partitioned have different partition counts: {}; give them the same number of partitions",
                listed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Create the internal topics that do not exist; refuse ones that exist with another
/// partition count.
pub async fn create_internal(client: &Client, plan: &TopicPlan, replication_factor: i16) -> Result<()> {
    if plan.internal.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = plan.internal.iter().map(|t| t.name.clone()).collect();
    let md = client.metadata(Some(&names), false).await?;
    let mut missing = Vec::new();
    for t in &plan.internal {
        match md.topics.iter().find(|m| m.name == t.name && m.error_code == 0 && !m.partitions.is_empty()) {
            Some(m) if m.partitions.len() as i32 != t.partitions => {
                return Err(Error::Config(format!(
                    "internal topic {} has {} partitions but the topology needs {}; delete it (or reset the application) and start again",
                    t.name,
                    m.partitions.len(),
                    t.partitions
                )))
            }
            Some(_) => {}
            None => missing.push(NewTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor,
                configs: t.configs.clone(),
            }),
        }
    }
    if !missing.is_empty() {
        match Admin::new(client).create_topics(&missing, false).await {
            Ok(()) => {}
            // Another instance created them first.
            Err(e) if e.code() == Some(36) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn co_partitioned_topics_must_agree_and_the_error_names_them() {
        let plan = TopicPlan {
            partitions: HashMap::from([("orders".into(), 4), ("customers".into(), 8), ("refunds".into(), 4)]),
            ..Default::default()
        };
        let ok = std::collections::BTreeSet::from(["orders".to_string(), "refunds".to_string()]);
        check_copartitioned(&plan, &[ok]).unwrap();
        let bad = std::collections::BTreeSet::from(["orders".to_string(), "customers".to_string()]);
        let e = check_copartitioned(&plan, &[bad]).unwrap_err().to_string();
        assert!(e.contains("customers (8), orders (4)"), "{e}");
    }
}
