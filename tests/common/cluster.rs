//! A cluster of brokers in this process: each on its own pre-bound loopback port and data
//! directory, forming a metadata quorum with short heartbeats, sessions and elections so that
//! tests converge in seconds. Brokers can be killed (dropped, no clean shutdown) and restarted
//! on their directory and port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rill_broker::{Broker, BrokerConfig};
use rill_core::client::{Client, ClientConfig, Metadata};

/// How long the cluster gets to converge on anything a test waits for.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// One broker of a [`Cluster`].
pub struct Node {
    /// `node.id`.
    pub id: i32,
    /// Data directory.
    pub dir: PathBuf,
    /// `host:port` it listens on.
    pub addr: String,
    /// The running broker (`None` while killed).
    pub broker: Option<Broker>,
}

/// Brokers `1..=n` sharing `controller.quorum.voters`.
pub struct Cluster {
    /// The brokers, node id `i + 1` at index `i`.
    pub nodes: Vec<Node>,
    /// `controller.quorum.voters`.
    pub voters: String,
    settings: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

/// A cluster broker's config: the quorum's voters, fast heartbeats and elections, `settings`.
pub fn config(id: i32, dir: &Path, voters: &str, settings: &[(String, String)]) -> BrokerConfig {
    let mut c = BrokerConfig::new(dir);
    c.node_id = id;
    for (k, v) in [
        ("controller.quorum.voters", voters),
        ("broker.heartbeat.interval.ms", "100"),
        ("broker.session.timeout.ms", "1500"),
        ("controller.quorum.election.timeout.ms", "300"),
    ] {
        c.set(k, v).unwrap();
    }
    for (k, v) in settings {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    c
}

/// Start broker `id` on `listener` and wait until the quorum registered it.
pub async fn start(id: i32, dir: &Path, voters: &str, listener: TcpListener, settings: &[(String, String)]) -> Broker {
    let b = Broker::start_on(config(id, dir, voters, settings), listener).await.expect("broker starts");
    tokio::time::timeout(CONVERGE, b.wait_registered()).await.expect("registered within 30 s");
    b
}

impl Cluster {
    /// Start `n` brokers with extra `settings` (Kafka names) and wait until all registered.
    pub async fn start(n: usize, settings: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let addrs: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
        let voters = addrs.iter().enumerate().map(|(i, a)| format!("{}@{a}", i + 1)).collect::<Vec<_>>().join(",");
        let mut nodes = Vec::new();
        let mut starting = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let (id, dir, v, s) =
                (i as i32 + 1, tmp.path().join(format!("b{}", i + 1)), voters.clone(), settings.clone());
            nodes.push(Node { id, dir: dir.clone(), addr: addrs[i].clone(), broker: None });
            starting.push(tokio::spawn(async move { start(id, &dir, &v, l, &s).await }));
        }
        for (node, s) in nodes.iter_mut().zip(starting) {
            node.broker = Some(s.await.unwrap());
        }
        Self { nodes, voters, settings, _tmp: tmp }
    }

    /// Kill broker at index `i` (no clean shutdown).
    pub fn kill(&mut self, i: usize) {
        drop(self.nodes[i].broker.take());
    }

    /// Restart the killed broker at index `i` on its directory and port.
    pub async fn restart(&mut self, i: usize) {
        let listener = TcpListener::bind(&self.nodes[i].addr).expect("rebind the dead broker's port");
        let n = &mut self.nodes[i];
        n.broker = Some(start(n.id, &n.dir, &self.voters, listener, &self.settings).await);
    }

    /// Shut every running broker down cleanly.
    pub async fn shutdown(self) {
        for n in self.nodes {
            if let Some(b) = n.broker {
                b.shutdown().await.unwrap();
            }
        }
    }
}

/// Metadata of every topic, asked of `addr`.
pub async fn metadata(addr: &str) -> Metadata {
    let client = Client::connect(ClientConfig::new(addr)).await.expect("connect");
    client.metadata(None, false).await.expect("metadata")
}

/// Ask `addr` for metadata until `ok` holds, for at most [`CONVERGE`] (the cluster converges on
/// its own schedule: heartbeats, session expiry, elections).
pub async fn until(addr: &str, what: &str, ok: impl Fn(&Metadata) -> bool) -> Metadata {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let md = metadata(addr).await;
        if ok(&md) {
            return md;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {CONVERGE:?}; last metadata {md:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
