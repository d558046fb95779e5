//! `rill topics create|list|describe|delete`, through the Kafka protocol.

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
    }
    Ok(())
}
