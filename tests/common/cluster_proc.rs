//! A cluster of `rill broker` processes whose inter-broker traffic can be cut.
//!
//! Broker `i` (node id `i + 1`) runs the built `rill` binary in its own data directory on a
//! loopback port picked at start. Brokers reach each other only through the addresses in their
//! `controller.quorum.voters` (the Raft quorum and the replica fetchers both use them), so each
//! broker gets its own list: its own entry is its real listen address, and the entry of every
//! other broker `j` is an in-test TCP proxy for the directed link `i -> j`, forwarding to `j`'s
//! real port. Clients use the real ports (the brokers advertise them in metadata).
//!
//! Faults: [`ProcCluster::kill9`] and [`ProcCluster::restart`] (same directory and port),
//! [`ProcCluster::stop`] / [`ProcCluster::cont`] (SIGSTOP / SIGCONT), and
//! [`ProcCluster::isolate`] / [`ProcCluster::heal`] (every proxy of a link to or from the broker
//! drops its connections and refuses new ones until healed).
//!
//! Ports: a broker binds its own `--listen` address, so the harness binds port 0, reads the
//! port and releases it just before spawning the broker. Another process could take the port in
//! that short window; the broker then fails to bind and the harness picks a new port and points
//! the proxies at it (only at the first start: a restart reuses the port, which a client may
//! hold as its bootstrap).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_core::client::{Client, ClientConfig, Metadata};

/// How long a metadata question to one broker may take before the next broker is asked.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One directed link's proxy: accepts on its own port and forwards to a broker's real port.
struct Proxy {
    addr: String,
    inner: Arc<ProxyInner>,
}

struct ProxyInner {
    target: Mutex<String>,
    cut: AtomicBool,
    closed: AtomicBool,
    next_id: AtomicU64,
    /// Open connections: id -> (client side, broker side).
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

impl Proxy {
    fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let addr = listener.local_addr().unwrap().to_string();
        let inner = Arc::new(ProxyInner {
            target: Mutex::new(target.to_string()),
            cut: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::default(),
        });
        let i = inner.clone();
        std::thread::spawn(move || accept_loop(listener, i));
        Self { addr, inner }
    }

    /// Drop every connection and refuse new ones.
    fn cut(&self) {
        self.inner.cut.store(true, Ordering::SeqCst);
        for (_, (a, b)) in self.inner.conns.lock().unwrap().drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.inner.cut.store(false, Ordering::SeqCst);
    }

    fn retarget(&self, target: &str) {
        *self.inner.target.lock().unwrap() = target.to_string();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn accept_loop(listener: TcpListener, p: Arc<ProxyInner>) {
    for client in listener.incoming() {
        if p.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if p.cut.load(Ordering::SeqCst) {
            continue; // dropped: the connecting broker sees the connection closed at once
        }
        let target = p.target.lock().unwrap().clone();
        let Ok(broker) = target
            .parse()
            .map_err(drop)
            .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).map_err(drop))
        else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        let id = p.next_id.fetch_add(1, Ordering::SeqCst);
        let (Ok(c2), Ok(b2)) = (client.try_clone(), broker.try_clone()) else { continue };
        {
            let mut conns = p.conns.lock().unwrap();
            // Checked under the lock `cut` drains, so a cut never misses a connection.
            if p.cut.load(Ordering::SeqCst) {
                continue;
            }
            conns.insert(id, (c2, b2));
        }
        for (from, to) in [(&client, &broker), (&broker, &client)] {
            let (mut from, mut to, p) = (from.try_clone().unwrap(), to.try_clone().unwrap(), p.clone());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                p.conns.lock().unwrap().remove(&id);
            });
        }
    }
}

/// One broker process of a [`ProcCluster`].
pub struct ProcNode {
    /// `node.id` (index + 1).
    pub id: i32,
    /// Real `host:port` it listens on (what clients use).
    pub addr: String,
    dir: PathBuf,
    voters: String,
    child: Option<Child>,
    stopped: bool,
    isolated: bool,
}

impl ProcNode {
    /// Whether it runs, is not stopped and is not isolated: a broker worth asking for metadata.
    pub fn healthy(&self) -> bool {
        self.child.is_some() && !self.stopped && !self.isolated
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file its standard error goes to (beside the data directory, across restarts).
    pub fn log(&self) -> PathBuf {
        self.dir.with_extension("log")
    }
}

/// `n` broker processes forming one cluster, with a proxy on every directed link between them.
pub struct ProcCluster {
    /// The brokers, node id `i + 1` at index `i`.
    pub nodes: Vec<ProcNode>,
    /// `links[i][j]`: the proxy broker `i` uses to reach broker `j` (none for `i == j`).
    links: Vec<Vec<Option<Proxy>>>,
    settings: Vec<String>,
    /// Keep the directories and print the logs on drop (a failed check, or `RILL_CLUSTER_KEEP`).
    keep: bool,
    _tmp: tempfile::TempDir,
}

impl ProcCluster {
    /// Start `n` brokers with `--set` `settings` (Kafka names, `k=v`) added to fast heartbeats,
    /// sessions and elections; wait until every broker is registered and unfenced.
    pub fn start(n: usize, settings: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut all = vec![
            "broker.heartbeat.interval.ms=100".to_string(),
            "broker.session.timeout.ms=1500".to_string(),
            "controller.quorum.election.timeout.ms=300".to_string(),
        ];
        all.extend(settings.iter().map(|s| s.to_string()));
        let mut listeners: Vec<Option<TcpListener>> =
            (0..n).map(|_| Some(TcpListener::bind("127.0.0.1:0").expect("bind"))).collect();
        let addrs: Vec<String> =
            listeners.iter().map(|l| l.as_ref().unwrap().local_addr().unwrap().to_string()).collect();
        let links: Vec<Vec<Option<Proxy>>> =
            (0..n).map(|i| (0..n).map(|j| (i != j).then(|| Proxy::start(&addrs[j]))).collect()).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let voters = (0..n)
                .map(|j| {
                    let a = if i == j { &addrs[j] } else { &links[i][j].as_ref().unwrap().addr };
                    format!("{}@{a}", j + 1)
                })
                .collect::<Vec<_>>()
                .join(",");
            let dir = tmp.path().join(format!("b{}", i + 1));
            nodes.push(ProcNode {
                id: i as i32 + 1,
                addr: addrs[i].clone(),
                dir,
                voters,
                child: None,
                stopped: false,
                isolated: false,
            });
        }
        let mut c = Self { nodes, links, settings: all, keep: false, _tmp: tmp };
        #[allow(clippy::needless_range_loop)] // `i` indexes nodes, links and listeners alike
        for i in 0..n {
            let mut tries = 0;
            loop {
                // Release the port just before the broker binds it (see the module docs).
                drop(listeners[i].take());
                match spawn(&c.nodes[i], &c.settings) {
                    Ok(child) => {
                        c.nodes[i].child = Some(child);
                        break;
                    }
                    Err(e) if tries < 3 => {
                        tries += 1;
                        eprintln!("cluster_proc: broker {} could not start ({e}); trying another port", i + 1);
                        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
                        c.nodes[i].addr = l.local_addr().unwrap().to_string();
                        listeners[i] = Some(l);
                        for j in 0..n {
                            if let Some(p) = &c.links[j][i] {
                                p.retarget(&c.nodes[i].addr);
                            }
                        }
                        // Its own voters entry is its real address.
                        let own = format!("{}@", i + 1);
                        c.nodes[i].voters = c.nodes[i]
                            .voters
                            .split(',')
                            .map(|v| if v.starts_with(&own) { format!("{own}{}", c.nodes[i].addr) } else { v.into() })
                            .collect::<Vec<_>>()
                            .join(",");
                    }
                    Err(e) => panic!("broker {} does not start: {e}", i + 1),
                }
            }
        }
        c.wait_until("every broker registered", Duration::from_secs(60), |md| md.brokers.len() == n);
        c
    }

    /// Every broker's real address, comma-separated: a bootstrap list for clients.
    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// Index of node id `id`.
    pub fn index(&self, id: i32) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Process id of broker `i` (while it runs).
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().expect("broker is not running").id()
    }

    /// SIGKILL broker `i` (stopped or not) and reap it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
        self.nodes[i].stopped = false;
    }

    /// Start killed broker `i` again on its directory and port.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "kill broker {} before restarting it", i + 1);
        let child = spawn(&self.nodes[i], &self.settings).unwrap_or_else(|e| panic!("restart broker {}: {e}", i + 1));
        self.nodes[i].child = Some(child);
    }

    /// SIGSTOP broker `i`: it keeps its sockets but does nothing.
    pub fn stop(&mut self, i: usize) {
        signal(self.pid(i), libc::SIGSTOP);
        self.nodes[i].stopped = true;
    }

    /// SIGCONT broker `i`.
    pub fn cont(&mut self, i: usize) {
        signal(self.pid(i), libc::SIGCONT);
        self.nodes[i].stopped = false;
    }

    /// Cut every link to and from broker `i`: open connections drop, new ones are refused.
    /// (Clients still reach it on its real port, as in a partition between brokers only.)
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            for p in [&self.links[i][j], &self.links[j][i]].into_iter().flatten() {
                p.cut();
            }
        }
        self.nodes[i].isolated = true;
    }

    /// Restore the links of broker `i`.
    pub fn heal(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            for p in [&self.links[i][j], &self.links[j][i]].into_iter().flatten() {
                p.heal();
            }
        }
        self.nodes[i].isolated = false;
    }

    /// Metadata from the first healthy broker that answers within a short timeout.
    pub fn metadata(&self) -> Option<Metadata> {
        let addrs: Vec<String> = self.nodes.iter().filter(|n| n.healthy()).map(|n| n.addr.clone()).collect();
        block_on(async move {
            for a in addrs {
                let ask = async {
                    let mut config = ClientConfig::new(a.clone());
                    config.request_timeout = ASK_TIMEOUT;
                    let client = Client::connect(config).await.ok()?;
                    client.metadata(None, false).await.ok()
                };
                if let Ok(Some(md)) = tokio::time::timeout(ASK_TIMEOUT, ask).await {
                    return Some(md);
                }
            }
            None
        })
    }

    /// The leader of `topic`-`partition` as a healthy broker sees it (`None`: no leader known).
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let md = self.metadata()?;
        let t = md.topics.iter().find(|t| t.name == topic)?;
        let p = t.partitions.iter().find(|p| p.partition == partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// Every data record of `topic`-`0..partitions` as (partition, offset, value), read
    /// uncommitted from each partition's leader up to its high watermark.
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<(i32, i64, String)> {
        let (bootstrap, topic) = (self.bootstrap(), topic.to_string());
        block_on(async move {
            let client = Client::connect(ClientConfig::new(bootstrap)).await.expect("connect");
            let mut out = Vec::new();
            for p in 0..partitions {
                let end = client.list_offset(&topic, p, rill_core::client::LATEST).await.expect("the end offset");
                let (mut offset, deadline) = (0, Instant::now() + Duration::from_secs(60));
                while offset < end {
                    assert!(Instant::now() < deadline, "{topic}-{p}: read {offset} of {end}");
                    let got = client.fetch(&topic, p, offset, 1 << 20, 100).await.expect("fetch");
                    let fetched = rill_core::records::decode_fetched(got.records, offset, &[]).expect("decode");
                    offset = offset.max(fetched.next_offset.unwrap_or(offset));
                    for r in fetched.records {
                        let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                        out.push((p, r.offset, value));
                    }
                }
            }
            out
        })
    }

    /// Poll metadata from healthy brokers until `ok` holds; panic after `within` with the last
    /// metadata seen. (The cluster converges on its own schedule: heartbeats, sessions,
    /// elections, ISR changes; this waits for the outcome, not for a time.)
    pub fn wait_until(&self, what: &str, within: Duration, ok: impl Fn(&Metadata) -> bool) -> Metadata {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(md) = self.metadata() {
                if ok(&md) {
                    return md;
                }
                last = Some(md);
            }
            assert!(Instant::now() < deadline, "{what}: not within {within:?}; last metadata {last:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl ProcCluster {
    /// On drop, keep the brokers' directories and print the tail of their logs (for a check
    /// that failed after the workload, when nothing panics while the cluster lives).
    pub fn keep_evidence(&mut self) {
        self.keep = true;
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if self.keep || std::thread::panicking() || std::env::var_os("RILL_CLUSTER_LOGS").is_some() {
            // The brokers' own account of a failure (RILL_LOG picks the level, default warn).
            for n in &self.nodes {
                let text = std::fs::read_to_string(n.log()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("---- broker {} log, last {} lines of {}:", n.id, lines.len().min(40), lines.len());
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
        if self.keep || std::env::var_os("RILL_CLUSTER_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._tmp, tempfile::tempdir().expect("tempdir"));
            eprintln!("cluster_proc: kept the brokers' directories and logs in {}", dir.keep().display());
        }
    }
}

/// Run `f` to completion on a runtime of its own, from sync or async code alike.
fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
    })
    .join()
    .expect("metadata thread")
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}

/// Spawn broker `n` and read its banner; an error if it exits first (e.g. its port was taken).
fn spawn(n: &ProcNode, settings: &[String]) -> Result<Child, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    cmd.arg("broker")
        .arg("--data-dir")
        .arg(&n.dir)
        .arg("--listen")
        .arg(&n.addr)
        .arg("--node-id")
        .arg(n.id.to_string())
        .arg("--controller-quorum-voters")
        .arg(&n.voters);
    for s in settings {
        cmd.arg("--set").arg(s);
    }
    cmd.env("RILL_LOG", std::env::var("RILL_LOG").unwrap_or_else(|_| "warn,openraft=off".into()));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(n.log()).expect("the broker's log file");
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn rill broker");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let read = reader.read_line(&mut line);
    if read.is_err() || !line.starts_with("rill broker listening on ") {
        let _ = child.kill();
        let status = child.wait().map_err(|e| e.to_string())?;
        return Err(format!("broker {} exited with {status} before listening (banner {line:?})", n.id));
    }
    // Keep draining stdout so the broker never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    Ok(child)
}
