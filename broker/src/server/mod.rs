//! The network server: a tokio TCP listener speaking the Kafka protocol.

pub mod cluster;
mod conn;
pub mod groups;
pub(crate) mod handlers;
pub mod markers;
pub mod producer_ids;
pub mod response;
pub mod txn;
pub mod versions;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::log::now_ms;
use crate::topics::{TopicError, Topics};

/// State shared by every connection.
#[derive(Debug)]
pub struct BrokerState {
    /// Settings.
    pub config: BrokerConfig,
    /// Topics and their logs.
    pub topics: Topics,
    /// Woken whenever records are appended (fetch long polls wait on it).
    pub data_arrived: Notify,
    /// Cancelled when the broker stops.
    pub shutdown: CancellationToken,
    /// Cluster id reported in Metadata.
    pub cluster_id: String,
    /// Host given to clients.
    pub advertised_host: String,
    /// Port given to clients.
    pub advertised_port: u16,
    /// Request bytes read but not yet handled, across all connections
    /// (`queued.max.request.bytes`): a reader waits for room before reading a body.
    pub request_budget: Arc<tokio::sync::Semaphore>,
    /// Fetches parked waiting for data (the fetch purgatory's size, as a metric).
    pub fetches_waiting: std::sync::atomic::AtomicUsize,
    /// The group coordinator.
    pub groups: groups::GroupHandle,
    /// The transaction coordinator and the producer id allocator.
    pub txns: txn::TxnHandle,
    /// This broker's node of the metadata quorum; `None` for a broker running alone.
    pub cluster: Option<Arc<crate::cluster::ClusterNode>>,
    /// Serialises bringing local topics in step with the cluster metadata.
    pub topic_sync: std::sync::Mutex<()>,
    /// This broker's replicas of partitions (idle on a broker running alone).
    pub replicas: crate::replica::ReplicaManager,
}

/// Errors starting a broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {cause}; choose another --listen address or stop whatever uses it")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why (in the message, not chained, so it is printed once).
        cause: std::io::Error,
    },
    /// The metadata quorum could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::node::ClusterError),
    /// The data directory could not be opened or recovered.
    #[error("cannot open data directory {dir}: {cause}")]
    Storage {
        /// The directory.
        dir: PathBuf,
        /// Why.
        cause: TopicError,
    },
}

/// A running broker. Dropping it without [`Broker::shutdown`] stops it uncleanly (like a crash
/// of the process would, minus the lost page cache).
#[derive(Debug)]
pub struct Broker {
    state: Arc<BrokerState>,
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Broker {
    /// Open the data directory (recovering it if needed) and start serving.
    pub async fn start(config: BrokerConfig) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen).await.map_err(|cause| StartError::Bind { addr: config.listen, cause })?;
        Self::start_listening(config, listener).await
    }

    /// [`Broker::start`] on a listener bound already (`config.listen` is ignored): a test can
    /// learn every broker's port before any starts, to give them all `controller.quorum.voters`.
    pub async fn start_on(config: BrokerConfig, listener: std::net::TcpListener) -> Result<Self, StartError> {
        let addr = config.listen;
        listener.set_nonblocking(true).map_err(|cause| StartError::Bind { addr, cause })?;
        let listener = TcpListener::from_std(listener).map_err(|cause| StartError::Bind { addr, cause })?;
        Self::start_listening(config, listener).await
    }

    async fn start_listening(config: BrokerConfig, listener: TcpListener) -> Result<Self, StartError> {
        let dir = config.data_dir.clone();
        let defaults = config.log_defaults.clone();
        let d = dir.clone();
        let topics = tokio::task::spawn_blocking(move || Topics::open(&d, defaults))
            .await
            .map_err(|e| StartError::Storage { dir: dir.clone(), cause: TopicError::Storage(e.to_string()) })?
            .map_err(|cause| StartError::Storage { dir: dir.clone(), cause })?;
        let addr = listener.local_addr().map_err(|cause| StartError::Bind { addr: config.listen, cause })?;
        let advertised_host = config.advertised_host.clone().unwrap_or_else(|| addr.ip().to_string());
        let cluster_id = cluster_id(&config.data_dir);
        let budget = config.queued_max_request_bytes.min(u32::MAX as usize);
        let (group_handle, group_inbox) = groups::channel();
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let cluster = if config.cluster.voters.is_empty() {
            None
        } else {
            let endpoint = (advertised_host.clone(), addr.port());
            let node = crate::cluster::ClusterNode::start(
                config.node_id,
                &config.data_dir,
                config.cluster.clone(),
                endpoint,
                shutdown.clone(),
                &mut tasks,
            )
            .await?;
            Some(node)
        };
        let ids = match &cluster {
            Some(node) => producer_ids::ProducerIds::clustered(cluster_ids(node.clone())),
            None => producer_ids::ProducerIds::open(&config.data_dir)
                .map_err(|e| StartError::Storage { dir: dir.clone(), cause: TopicError::Storage(e.to_string()) })?,
        };
        let (txn_handle, txn_inbox) =
            txn::channel(Arc::new(ids), cluster.is_some(), config.transaction_state_partitions);
        let config_node_id = config.node_id;
        let state = Arc::new(BrokerState {
            config,
            topics,
            data_arrived: Notify::new(),
            shutdown,
            cluster_id,
            advertised_host,
            advertised_port: addr.port(),
            request_budget: Arc::new(tokio::sync::Semaphore::new(budget)),
            fetches_waiting: std::sync::atomic::AtomicUsize::new(0),
            groups: group_handle,
            txns: txn_handle,
            cluster,
            topic_sync: std::sync::Mutex::new(()),
            replicas: crate::replica::ReplicaManager::new(config_node_id),
        });
        tasks.spawn(accept_loop(state.clone(), listener));
        if state.cluster.is_some() {
            tasks.spawn(cluster::sync_loop(state.clone()));
            tasks.spawn(crate::replica::ReplicaManager::shrink_isrs(state.clone()));
        }
        tasks.spawn(maintenance(state.clone()));
        tasks.spawn(groups::run(
            state.clone(),
            group_inbox,
            state.config.group.clone(),
            state.config.offsets_topic_partitions,
        ));
        let txn_config = crate::txn::TxnConfig {
            offsets_topic_partitions: state.config.offsets_topic_partitions,
            ..state.config.txn.clone()
        };
        tasks.spawn(txn::run(state.clone(), txn_inbox, txn_config, state.config.transaction_state_partitions));
        tracing::info!(%addr, dir = %state.config.data_dir.display(), "broker started");
        Ok(Self { state, addr, tasks })
    }

    /// Start a broker inside this process on an ephemeral loopback port, storing data in `dir`.
    pub async fn embedded(dir: impl Into<PathBuf>) -> Result<Self, StartError> {
        let mut config = BrokerConfig::new(dir);
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        Self::start(config).await
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Wait until this broker has registered with the cluster's controller and applied its
    /// registration (at once for a broker running alone).
    pub async fn wait_registered(&self) {
        if let Some(node) = &self.state.cluster {
            node.wait_registered().await;
        }
    }

    /// Shared state (topics, config).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stop accepting, close connections, flush every log and write the clean-shutdown marker.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.state.shutdown.cancel();
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!("tasks did not stop within 10 s; aborting them");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.topics.close()).await.map_err(std::io::Error::other)??;
        tracing::info!("broker stopped cleanly");
        Ok(())
    }
}

/// Producer id blocks from the cluster's controller, for a blocking thread.
fn cluster_ids(node: Arc<crate::cluster::ClusterNode>) -> producer_ids::BlockSource {
    let handle = tokio::runtime::Handle::current();
    Box::new(move |count| {
        let cmd = crate::cluster::command::Command::AllocateProducerIds { count: count as u32 };
        match handle.block_on(node.propose(cmd, cluster::PROPOSE_TIMEOUT)) {
            Ok(crate::cluster::command::Reply::ProducerIds { start, .. }) => Ok(start),
            Ok(other) => {
                Err(std::io::Error::other(format!("the controller answered {other:?} to a producer id request")))
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    })
}

impl Drop for Broker {
    /// Dropped without [`Broker::shutdown`]: stop everything at once, like a killed process
    /// (nothing is flushed; the next start recovers).
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// How often sealed segments are flushed and recovery points checkpointed (Kafka checkpoints
/// every `log.flush.offset.checkpoint.interval.ms`, 60 s; sealed segments flush on roll).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// A stable cluster id per data directory.
fn cluster_id(dir: &std::path::Path) -> String {
    let path = dir.join("cluster-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Err(e) = crate::log::checkpoint::write_atomic(&path, id.as_bytes()) {
        tracing::warn!(error = %e, "cannot persist cluster id");
    }
    id
}

async fn accept_loop(state: Arc<BrokerState>, listener: TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(conn::serve(state.clone(), stream, peer));
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = state.shutdown.cancelled() => break,
        }
    }
    while conns.join_next().await.is_some() {}
}

/// Periodic log maintenance: `flush.ms`, flushing sealed segments and checkpointing the recovery
/// point, retention, compaction. Disk work runs on blocking threads; appends only ever wait for
/// the short swaps. On shutdown a running compaction pass is waited for, not abandoned.
async fn maintenance(state: Arc<BrokerState>) {
    let tick = Duration::from_millis(100);
    let mut last_retention = tokio::time::Instant::now();
    let mut last_clean = tokio::time::Instant::now();
    let mut last_checkpoint = tokio::time::Instant::now();
    let mut last_expiry = tokio::time::Instant::now();
    let cleaner = Arc::new(std::sync::Mutex::new(crate::log::cleaner::Cleaner::new()));
    // Logs already reported as failed: report each once, not every tick.
    let failed: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>> = Arc::default();
    let mut compaction = JoinSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            Some(_) = compaction.join_next(), if !compaction.is_empty() => continue,
            _ = state.shutdown.cancelled() => {
                while compaction.join_next().await.is_some() {}
                return;
            }
        }
        let retention_due = last_retention.elapsed() >= state.config.retention_check_interval;
        if retention_due {
            last_retention = tokio::time::Instant::now();
        }
        let checkpoint_due = last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if checkpoint_due {
            last_checkpoint = tokio::time::Instant::now();
        }
        let expiry_due = last_expiry.elapsed() >= state.config.producer_id_expiration_check;
        if expiry_due {
            last_expiry = tokio::time::Instant::now();
        }
        if last_clean.elapsed() >= state.config.cleaner_backoff && compaction.is_empty() {
            last_clean = tokio::time::Instant::now();
            let (st, c) = (state.clone(), cleaner.clone());
            // Compaction runs beside the loop so a long pass never delays flush.ms or retention.
            compaction.spawn_blocking(move || {
                let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                let logs = st.topics.all_logs();
                let stats = c.run_once(logs.iter().map(|l| l.as_ref()), now_ms());
                if stats.logs_cleaned > 0 || stats.logs_failed > 0 {
                    tracing::info!(?stats, "compaction pass");
                }
            });
        }
        let (st, failed) = (state.clone(), failed.clone());
        let res = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
            for log in st.topics.all_logs() {
                if let Err(e) = log.flush_if_due(now) {
                    tracing::error!(dir = %log.dir().display(), error = %e, "scheduled flush failed");
                }
                if checkpoint_due {
                    // Sealed segments get flushed and the recovery point checkpointed, so an
                    // unclean restart re-validates about one segment per partition.
                    match log.flush_sealed() {
                        Ok(_) => {}
                        Err(e) if failed.insert(log.dir().to_path_buf()) => {
                            tracing::error!(dir = %log.dir().display(), error = %e, "log failed; it refuses writes until a restart")
                        }
                        Err(_) => {}
                    }
                }
                if expiry_due {
                    let ms = st.config.producer_id_expiration.as_millis().min(i64::MAX as u128) as i64;
                    let n = log.expire_producers(now, ms);
                    if n > 0 {
                        tracing::debug!(dir = %log.dir().display(), producers = n, "expired idle producers");
                    }
                }
                if retention_due {
                    match log.apply_retention(now) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(dir = %log.dir().display(), segments = n, "retention deleted segments"),
                        Err(e) => tracing::error!(dir = %log.dir().display(), error = %e, "retention failed"),
                    }
                }
            }
        })
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "maintenance task failed");
        }
    }
}

/// Create the compacted internal topic `name` (`__consumer_offsets`, `__transaction_state`) on
/// first use, as Kafka does; another creator winning the race is fine.
pub(crate) async fn ensure_internal_topic(
    state: &Arc<BrokerState>,
    name: &'static str,
    partitions: i32,
    segment_bytes: &'static str,
) -> Result<(), TopicError> {
    if state.topics.get(name).is_some() {
        return Ok(());
    }
    if let Some(node) = &state.cluster {
        // In a cluster the controller creates it, replicated like Kafka's
        // (`offsets.topic.replication.factor`, at most the live brokers).
        let image = node.image();
        if !image.topics.contains_key(name) {
            let live = image.brokers.values().filter(|b| !b.fenced).count().max(1) as i16;
            let configs = std::collections::BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), segment_bytes.to_string()),
            ]);
            let cmd = crate::cluster::command::Command::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor: state.config.internal_topic_replication_factor.min(live),
                assignments: None,
                configs,
            };
            match cluster::propose(state, cmd).await {
                Ok(_) | Err((handlers::codes::TOPIC_ALREADY_EXISTS, _)) => {}
                Err((_, e)) => return Err(TopicError::Storage(format!("cannot create {name}: {e}"))),
            }
        }
        if !cluster::wait_and_sync(state, |img| img.topics.contains_key(name)).await {
            return Err(TopicError::Storage(format!("{name} is not here yet")));
        }
        return Ok(());
    }
    let st = state.clone();
    handlers::blocking(move || {
        let configs = std::collections::BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes.to_string()),
        ]);
        match st.topics.create(name, partitions, 1, configs) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
}
