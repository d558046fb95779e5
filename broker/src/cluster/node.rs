//! A broker's part in the metadata quorum: its Raft node, its registration and heartbeats, and,
//! while it is the Raft leader, the active controller.
//!
//! Every broker of the cluster is a voter (Kafka's combined `process.roles=broker,controller`).
//! Each applies the committed commands to its own image and publishes it; proposals made on a
//! broker that is not the leader are forwarded to the leader.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::command::{Command, Reply};
use super::controller::Liveness;
use super::image::ClusterImage;
use super::raft::log_store::LogStore;
use super::raft::network::Network;
use super::raft::state_machine::{Applied, StateMachine};
use super::raft::Raft;
use super::rpc::{HeartbeatReply, PeerClient, ProposeError, Request, Response};

/// Directory of the metadata quorum's files inside the data directory (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata";

/// `broker.heartbeat.interval.ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(2000);
/// `broker.session.timeout.ms`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(9000);
/// `controller.quorum.election.timeout.ms`.
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// `leader.imbalance.check.interval.seconds` (300 s).
pub const DEFAULT_LEADER_IMBALANCE_CHECK: Duration = Duration::from_secs(300);

/// Settings of the metadata quorum.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `controller.quorum.voters`: node id -> `host:port` of its broker port, as the other
    /// brokers reach it. Empty: a single broker without a quorum.
    pub voters: BTreeMap<i32, String>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout: Duration,
    /// `controller.quorum.election.timeout.ms`: the Raft election timeout (randomised up to
    /// twice this).
    pub election_timeout: Duration,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            voters: BTreeMap::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            election_timeout: DEFAULT_ELECTION_TIMEOUT,
            auto_leader_rebalance: true,
            leader_imbalance_check: DEFAULT_LEADER_IMBALANCE_CHECK,
        }
    }
}

/// Parse `controller.quorum.voters`: `1@host:port,2@host:port,...`.
pub fn parse_voters(s: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item.split_once('@').ok_or_else(|| format!("'{item}' is not ID@HOST:PORT"))?;
        let id: i32 = id.trim().parse().map_err(|_| format!("'{id}' in '{item}' is not a node id"))?;
        if id < 0 {
            return Err(format!("node id {id} in '{item}' is negative"));
        }
        if !addr.contains(':') {
            return Err(format!("'{addr}' in '{item}' is not HOST:PORT"));
        }
        if out.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    Ok(out)
}

/// Errors starting the quorum.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The metadata files could not be opened.
    #[error("cannot open the metadata quorum's files in {dir}: {cause}")]
    Storage {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// This node is not among the voters.
    #[error("node.id {0} is not in controller.quorum.voters; add it or fix --node-id")]
    NotAVoter(i32),
    /// openraft refused to start.
    #[error("cannot start the Raft node: {0}")]
    Raft(String),
}

/// This broker's node of the metadata quorum.
pub struct ClusterNode {
    id: i32,
    raft: Raft,
    config: ClusterConfig,
    applied: watch::Receiver<Applied>,
    /// Forwarding and heartbeat connections, by node.
    clients: Mutex<BTreeMap<u64, Arc<PeerClient>>>,
    liveness: Mutex<Liveness>,
    /// This broker's current registration (0: not registered yet).
    broker_epoch: AtomicU64,
    /// Woken when this broker registers.
    registered: tokio::sync::Notify,
    started: Instant,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("id", &self.id).finish()
    }
}

impl ClusterNode {
    /// Open the quorum's files under `data_dir` and start the Raft node. Registration and the
    /// controller run in tasks spawned into `tasks`, stopping with `shutdown`.
    pub async fn start(
        id: i32,
        data_dir: &std::path::Path,
        config: ClusterConfig,
        client_endpoint: (String, u16),
        shutdown: CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Result<Arc<Self>, ClusterError> {
        if !config.voters.contains_key(&id) {
            return Err(ClusterError::NotAVoter(id));
        }
        let dir = data_dir.join(METADATA_DIR);
        let storage = |cause| ClusterError::Storage { dir: dir.clone(), cause };
        let log = LogStore::open(&dir).map_err(storage)?;
        let (sm, applied) = StateMachine::open(&dir).map_err(storage)?;
        let election = config.election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "rill".into(),
            election_timeout_min: election,
            election_timeout_max: election * 2,
            heartbeat_interval: (election / 5).max(10),
            install_snapshot_timeout: election.max(500),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let raft = Raft::new(id as u64, Arc::new(raft_config), Network, log, sm)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let members: BTreeMap<u64, BasicNode> =
            config.voters.iter().map(|(id, addr)| (*id as u64, BasicNode::new(addr))).collect();
        // Every voter initialises with the same membership, which is safe; a node that already
        // holds a log refuses, which is fine too.
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "metadata quorum already initialised");
        }
        let session = config.session_timeout.as_millis() as i64;
        let rebalance = config.auto_leader_rebalance.then_some(config.leader_imbalance_check.as_millis() as i64);
        let node = Arc::new(Self {
            id,
            raft,
            config,
            applied,
            clients: Mutex::default(),
            liveness: Mutex::new(Liveness::new(session, rebalance)),
            broker_epoch: AtomicU64::new(0),
            registered: tokio::sync::Notify::new(),
            started: Instant::now(),
        });
        tasks.spawn(node.clone().heartbeats(client_endpoint, shutdown.clone()));
        tasks.spawn(node.clone().control(shutdown.clone()));
        let n = node.clone();
        // Detached, not in `tasks`: a broker dropped without a clean shutdown aborts its tasks,
        // and the Raft node (openraft's own task) must still stop with it.
        tokio::spawn(async move {
            shutdown.cancelled().await;
            if let Err(e) = n.raft.shutdown().await {
                tracing::warn!(error = %e, "raft node did not stop cleanly");
            }
        });
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The current image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.applied.borrow().image.clone()
    }

    /// Watch the image as commands are applied.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// The active controller (the Raft leader), if known.
    pub fn controller(&self) -> Option<i32> {
        self.leader().map(|l| l as i32)
    }

    /// This broker's registration epoch, once registered.
    pub fn broker_epoch(&self) -> Option<u64> {
        Some(self.broker_epoch.load(Ordering::Acquire)).filter(|e| *e > 0)
    }

    /// Whether this broker's image has caught up with the quorum: it holds this broker's own
    /// registration, and so every change committed before it. Until then the image may be
    /// empty or old (a restarted broker replays the log only once the leader tells it how far
    /// it is committed), and nothing local may be changed to match it.
    pub fn caught_up(&self) -> bool {
        self.broker_epoch().is_some_and(|e| self.applied.borrow().index >= e)
    }

    /// Wait until this broker is registered and its image holds the registration.
    pub async fn wait_registered(&self) {
        let epoch = loop {
            let registered = self.registered.notified();
            let epoch = self.broker_epoch.load(Ordering::Acquire);
            if epoch > 0 {
                break epoch;
            }
            registered.await;
        };
        let mut rx = self.applied.clone();
        // Woken by every apply, so it sees the one that reaches the registration.
        while rx.borrow_and_update().index < epoch {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Wait until the local image satisfies `ready`, at most `timeout`; returns the image.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&ClusterImage) -> bool,
    ) -> Option<Arc<ClusterImage>> {
        let mut rx = self.applied.clone();
        let wait = async {
            loop {
                let image = rx.borrow_and_update().image.clone();
                if ready(&image) {
                    return Some(image);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn client(&self, node: u64) -> Option<Arc<PeerClient>> {
        let addr = self.config.voters.get(&(node as i32))?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        Some(clients.entry(node).or_insert_with(|| Arc::new(PeerClient::new(addr.clone()))).clone())
    }

    fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    fn is_leader(&self) -> bool {
        self.leader() == Some(self.id as u64)
    }

    /// Apply `cmd` on this node if it is the leader.
    async fn propose_local(&self, cmd: Command) -> Result<Reply, ProposeError> {
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotController { leader: f.leader_id })
            }
            Err(e) => Err(ProposeError::Failed(e.to_string())),
        }
    }

    /// Apply `cmd` through the controller, forwarding it if needed and retrying while the
    /// quorum elects a leader, for at most `timeout`.
    pub async fn propose(&self, cmd: Command, timeout: Duration) -> Result<Reply, ProposeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let leader = self.leader();
            let attempt = match leader {
                Some(l) if l == self.id as u64 => self.propose_local(cmd.clone()).await,
                Some(l) => match self.client(l) {
                    Some(c) => match c.call(&Request::Propose(cmd.clone()), timeout).await {
                        Ok(Response::Propose(r)) => r,
                        Ok(_) => Err(ProposeError::Failed(format!("node {l} answered a proposal oddly"))),
                        Err(e) => Err(ProposeError::Failed(format!("node {l}: {e}"))),
                    },
                    None => Err(ProposeError::Failed(format!("node {l} is not a voter"))),
                },
                None => Err(ProposeError::NotController { leader: None }),
            };
            match attempt {
                Ok(r) => return Ok(r),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            // Backing off while an election runs (not a test synchronisation).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Serve a call from another broker.
    pub async fn handle(&self, req: Request) -> Response {
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => Response::InstallSnapshot(self.raft.install_snapshot(r).await),
            Request::Propose(cmd) => Response::Propose(self.propose_local(cmd).await),
            Request::Heartbeat { id, epoch } => Response::Heartbeat(self.on_heartbeat(id, epoch).await),
        }
    }

    async fn on_heartbeat(&self, id: i32, epoch: u64) -> HeartbeatReply {
        if !self.is_leader() {
            return HeartbeatReply::NotController { leader: self.leader() };
        }
        let image = self.image();
        let (reply, cmd) = {
            let mut l = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
            if !l.is_active() {
                l.activate(self.now_ms());
            }
            l.heartbeat(&image, id, epoch, self.now_ms())
        };
        if let Some(cmd) = cmd {
            if let Err(e) = self.propose_local(cmd).await {
                tracing::warn!(broker = id, error = %e, "cannot unfence broker");
            }
        }
        reply
    }

    /// Register, then heartbeat the controller; register again when told the registration is
    /// stale.
    async fn heartbeats(self: Arc<Self>, (host, port): (String, u16), shutdown: CancellationToken) {
        let mut registered = false;
        loop {
            if !registered {
                let cmd = Command::RegisterBroker { id: self.id, host: host.clone(), port };
                match self.propose(cmd, self.config.session_timeout).await {
                    Ok(Reply::BrokerEpoch(e)) => {
                        self.broker_epoch.store(e, Ordering::Release);
                        self.registered.notify_waiters();
                        registered = true;
                        tracing::info!(node = self.id, epoch = e, "broker registered");
                    }
                    Ok(other) => tracing::error!(?other, "unexpected answer to a registration"),
                    Err(e) => tracing::debug!(error = %e, "registration not committed yet; retrying"),
                }
            } else {
                let epoch = self.broker_epoch.load(Ordering::Acquire);
                let reply = match self.leader() {
                    Some(l) if l == self.id as u64 => Some(self.on_heartbeat(self.id, epoch).await),
                    Some(l) => match self.client(l) {
                        Some(c) => match c
                            .call(&Request::Heartbeat { id: self.id, epoch }, self.config.heartbeat_interval)
                            .await
                        {
                            Ok(Response::Heartbeat(r)) => Some(r),
                            _ => None,
                        },
                        None => None,
                    },
                    None => None,
                };
                if reply == Some(HeartbeatReply::Stale) {
                    tracing::warn!(node = self.id, epoch, "registration is stale; registering again");
                    registered = false;
                    continue;
                }
            }
            let pause = if registered { self.config.heartbeat_interval } else { Duration::from_millis(100) };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// While this node leads the quorum: fence silent brokers and rebalance leaders.
    async fn control(self: Arc<Self>, shutdown: CancellationToken) {
        let tick = (self.config.heartbeat_interval / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.cancelled() => return,
            }
            let leader = self.is_leader();
            let cmds = {
                let mut l = self.liveness.lock().unwrap_or_else(|p| p.into_inner());
                match (leader, l.is_active()) {
                    (true, false) => {
                        l.activate(self.now_ms());
                        tracing::info!(node = self.id, "became the active controller");
                        match self.image().cluster_id {
                            Some(_) => Vec::new(),
                            None => vec![Command::SetClusterId { id: uuid::Uuid::new_v4().simple().to_string() }],
                        }
                    }
                    (false, true) => {
                        l.deactivate();
                        Vec::new()
                    }
                    (true, true) => l.tick(&self.image(), self.now_ms()),
                    (false, false) => Vec::new(),
                }
            };
            for cmd in cmds {
                tracing::info!(?cmd, "controller decision");
                if let Err(e) = self.propose_local(cmd).await {
                    tracing::warn!(error = %e, "controller decision not committed");
                    break;
                }
            }
        }
    }
}
