//! `rill broker`: one broker in the foreground, alone or as a member of a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use rill_broker::{Broker, BrokerConfig};

/// Arguments of `rill broker`.
// Alone by default. With `--controller-quorum-voters` (or `controller.quorum.voters` through
// `--set` or `--config`) the broker joins a cluster: the voters form the metadata quorum, and
// `--node-id` must be one of them.
#[derive(Debug, Args)]
#[command(after_help = "Cluster: start each broker with its own --node-id, --listen and --data-dir and the same \
--controller-quorum-voters, e.g.\n  rill broker --node-id 1 --listen 127.0.0.1:9092 --data-dir d1 \
--controller-quorum-voters 1@127.0.0.1:9092,2@127.0.0.1:9093,3@127.0.0.1:9094")]
pub struct BrokerArgs {
    /// Directory for the logs (created if missing).
    #[arg(long, default_value = "./rill-data")]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Node id of this broker (in a cluster: one of the --controller-quorum-voters ids).
    #[arg(long, default_value_t = 0)]
    node_id: i32,
    /// Join a cluster whose metadata quorum runs on these brokers: `ID@HOST:PORT` of each
    /// voter's broker port, separated by commas (`controller.quorum.voters`).
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controller_quorum_voters: Option<String>,
    /// Host name to give clients in metadata (default: the listen IP).
    #[arg(long)]
    advertised_host: Option<String>,
    /// TOML file of settings with Kafka names, e.g. `"log.segment.bytes" = 1048576`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// One setting with its Kafka name, e.g. `--set num.partitions=3` (repeatable; wins over --config).
    #[arg(long = "set", value_parser = super::parse_kv)]
    settings: Vec<(String, String)>,
}

pub async fn run(a: BrokerArgs) -> anyhow::Result<()> {
    let mut config = BrokerConfig::new(&a.data_dir);
    config.listen = a.listen;
    config.node_id = a.node_id;
    config.advertised_host = a.advertised_host;
    if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("config file {} is not valid TOML", path.display()))?;
        let mut settings = BTreeMap::new();
        for (k, v) in table {
            let v = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            settings.insert(k, v);
        }
        config.set_all(&settings).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(voters) = &a.controller_quorum_voters {
        rill_broker::cluster::node::parse_voters(voters).map_err(|e| {
            anyhow!(
                "--controller-quorum-voters '{voters}': {e}; give ID@HOST:PORT entries separated by commas, \
                 e.g. 1@127.0.0.1:9092,2@127.0.0.1:9093,3@127.0.0.1:9094"
            )
        })?;
        config.set("controller.quorum.voters", voters).map_err(|e| anyhow!("--controller-quorum-voters: {e}"))?;
    }
    for (k, v) in &a.settings {
        config.set(k, v).map_err(|e| anyhow!("--set {k}={v}: {e}"))?;
    }
    let broker = Broker::start(config).await?;
    // The first line on stdout is the contract scripts and tests rely on.
    println!("rill broker listening on {}", broker.addr());
    wait_for_signal().await?;
    broker.shutdown().await.context("clean shutdown failed")
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}
