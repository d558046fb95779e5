//! `rill topics create|list|describe|delete|alter|elect-leaders|reassign|reassignments`, through
//! the Kafka protocol.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};

/// Arguments of `rill topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (broker default if omitted).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor (broker default if omitted).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config, e.g. `--config cleanup.policy=compact` (repeatable).
        #[arg(long = "config", value_parser = super::parse_kv)]
        configs: Vec<(String, String)>,
    },
    /// List topic names.
    List,
    /// Show partitions, leaders and configs (all topics if none named).
    Describe {
        /// Topics to describe.
        names: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// Topics to delete.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or reset topic configs: `--set k=v`, `--delete k`.
    Alter {
        /// Topic name.
        name: String,
        /// Config to set (repeatable).
        #[arg(long = "set", value_parser = super::parse_kv)]
        set: Vec<(String, String)>,
        /// Config to reset to the default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
        /// Grow to this many partitions.
        #[arg(long)]
        partitions: Option<i32>,
    },
    /// Elect partition leaders: the preferred (first) replica, or any for leaderless partitions.
    ElectLeaders {
        /// Only this topic (all topics if omitted).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// `preferred`, or `unclean` (elect partitions without a leader; from outside the ISR only
        /// where the topic sets unclean.leader.election.enable=true).
        #[arg(long, default_value = "preferred", value_name = "preferred|unclean")]
        election_type: String,
    },
    /// Move a partition to other brokers (`--replicas 3,1,2`, preferred leader first), or cancel
    /// a move in progress (`--cancel`).
    Reassign {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// Target broker ids, preferred leader first, e.g. `3,1,2`.
        #[arg(long, required_unless_present = "cancel", conflicts_with = "cancel")]
        replicas: Option<String>,
        /// Cancel the move in progress (drops the replicas it added).
        #[arg(long)]
        cancel: bool,
    },
    /// List partition reassignments in progress.
    Reassignments,
}

pub async fn run(a: TopicsArgs) -> anyhow::Result<()> {
    let client = Client::connect(ClientConfig::new(&a.bootstrap)).await?;
    let admin = Admin::new(&client);
    match a.command {
        TopicsCommand::Create { name, partitions, replication_factor, configs } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                configs: configs.into_iter().collect::<BTreeMap<_, _>>(),
            };
            admin.create_topics(&[topic], false).await?;
            println!("Created topic {name}.");
        }
        TopicsCommand::List => {
            for t in admin.list_topics().await? {
                println!("{t}");
            }
        }
        TopicsCommand::Describe { names } => {
            for d in admin.describe_topics(&names).await? {
                let overrides: Vec<String> = d.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                    d.info.name,
                    d.info.partitions.len(),
                    d.info.partitions.first().map(|p| p.replicas.len()).unwrap_or(0),
                    overrides.join(",")
                );
                for p in &d.info.partitions {
                    let list = |v: &[i32]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
                    println!(
                        "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                        d.info.name,
                        p.partition,
                        p.leader,
                        list(&p.replicas),
                        list(&p.isr)
                    );
                }
            }
        }
        TopicsCommand::Delete { names } => {
            admin.delete_topics(&names).await?;
            for n in names {
                println!("Deleted topic {n}.");
            }
        }
        TopicsCommand::Alter { name, set, delete, partitions } => {
            if let Some(n) = partitions {
                admin.create_partitions(&name, n).await?;
                println!("Topic {name} now has {n} partitions.");
            }
            let changes: Vec<(String, Option<String>)> =
                set.into_iter().map(|(k, v)| (k, Some(v))).chain(delete.into_iter().map(|k| (k, None))).collect();
            if !changes.is_empty() {
                admin.alter_configs(&name, &changes).await?;
                println!("Updated configs of topic {name}.");
            }
        }
        TopicsCommand::ElectLeaders { topic, partition, election_type } => {
            super::topics_replicas::elect_leaders(&admin, topic, partition, &election_type).await?;
        }
        TopicsCommand::Reassign { topic, partition, replicas, cancel: _ } => {
            let replicas = replicas.as_deref().map(super::topics_replicas::parse_replicas).transpose()?;
            super::topics_replicas::reassign(&admin, topic, partition, replicas).await?;
        }
        TopicsCommand::Reassignments => super::topics_replicas::reassignments(&admin).await?,
    }
    Ok(())
}
