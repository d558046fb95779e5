//! Command-line parsing and dispatch.

mod bench;
mod bench_replication;
mod bench_streams;
mod bench_streams_io;
mod bench_txn;
mod broker;
mod consume;
mod groups;
mod produce;
mod timefmt;
mod topics;
mod topics_replicas;

use clap::{Parser, Subcommand};

/// Rill: stream processing with a Kafka-compatible broker.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker in the foreground (SIGTERM or Ctrl-C stops it cleanly).
    Broker(broker::BrokerArgs),
    /// Create, list, describe and delete topics; elect leaders; move replicas.
    Topics(topics::TopicsArgs),
    /// Measure throughput against a broker (embedded unless --bootstrap is given).
    Bench(bench::BenchArgs),
    /// Print the records of a topic (without a consumer group, for now).
    Consume(consume::ConsumeArgs),
    /// Write standard input to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    Groups(groups::GroupsArgs),
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Broker(a) => broker::run(a).await,
        Command::Topics(a) => topics::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Consume(a) => consume::run(a).await,
        Command::Groups(a) => groups::run(a).await,
        Command::Produce(a) => produce::run(a).await,
    }
}

/// Parse `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{s}' is not key=value"))
}
