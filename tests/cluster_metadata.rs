//! A three-broker cluster in one process: the brokers form a metadata quorum, topics created on
//! one broker appear on all with replicas spread, the controller fails over when its broker dies,
//! the dead broker is fenced (its leaderships move), and it rejoins when restarted.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use rill_broker::{Broker, BrokerConfig};
use rill_core::client::{Admin, Client, ClientConfig, Metadata, NewTopic};

struct Node {
    id: i32,
    dir: PathBuf,
    addr: String,
    broker: Option<Broker>,
}

fn config(id: i32, dir: &std::path::Path, voters: &str) -> BrokerConfig {
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
    c
}

async fn start(id: i32, dir: &std::path::Path, voters: &str, listener: TcpListener) -> Broker {
    let b = Broker::start_on(config(id, dir, voters), listener).await.expect("broker starts");
    tokio::time::timeout(Duration::from_secs(30), b.wait_registered()).await.expect("registered within 30 s");
    b
}

async fn metadata(addr: &str) -> Metadata {
    let client = Client::connect(ClientConfig::new(addr)).await.expect("connect");
    client.metadata(None, false).await.expect("metadata")
}

/// Ask `addr` for metadata until `ok` holds, for at most 30 s (the cluster converges on its own
/// schedule: heartbeats, session expiry, elections).
async fn until(addr: &str, what: &str, ok: impl Fn(&Metadata) -> bool) -> Metadata {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let md = metadata(addr).await;
        if ok(&md) {
            return md;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 30 s; last metadata {md:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_brokers_share_metadata_and_survive_the_controller() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let tmp = tempfile::tempdir().unwrap();
    let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addrs: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
    let voters = addrs.iter().enumerate().map(|(i, a)| format!("{}@{a}", i + 1)).collect::<Vec<_>>().join(",");
    let mut nodes = Vec::new();
    let mut starting = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (id, dir, v) = (i as i32 + 1, tmp.path().join(format!("b{}", i + 1)), voters.clone());
        nodes.push(Node { id, dir: dir.clone(), addr: addrs[i].clone(), broker: None });
        starting.push(tokio::spawn(async move { start(id, &dir, &v, l).await }));
    }
    for (n, s) in nodes.iter_mut().zip(starting) {
        n.broker = Some(s.await.unwrap());
    }

    let client = Client::connect(ClientConfig::new(&nodes[0].addr)).await.unwrap();
    let topic = NewTopic { name: "t".into(), partitions: 3, replication_factor: 3, configs: BTreeMap::new() };
    Admin::new(&client).create_topics(&[topic], false).await.expect("create t");
    let too_many = NewTopic { name: "u".into(), partitions: 1, replication_factor: 4, configs: BTreeMap::new() };
    let err = Admin::new(&client).create_topics(&[too_many], false).await.expect_err("rf 4 on 3 brokers");
    assert!(err.to_string().contains("replication factor"), "{err}");

    for n in &nodes {
        let md = until(&n.addr, "every broker sees t", |md| md.topics.iter().any(|t| t.name == "t")).await;
        assert_eq!(md.brokers.len(), 3, "{md:?}");
        let t = md.topics.iter().find(|t| t.name == "t").unwrap();
        let mut leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 2, 3], "leaders spread over the brokers");
        for p in &t.partitions {
            assert_eq!((p.replicas.len(), p.isr.len()), (3, 3), "{p:?}");
        }
    }

    // Kill the controller's broker (no clean shutdown).
    let controller = metadata(&nodes[0].addr).await.controller;
    let victim = nodes.iter().position(|n| n.id == controller).expect("a controller among the nodes");
    drop(nodes[victim].broker.take());
    let survivor = nodes[(victim + 1) % 3].addr.clone();
    let md = until(&survivor, "a new controller fences the dead broker", |md| {
        md.controller != controller
            && md.controller > 0
            && !md.brokers.contains_key(&controller)
            && md.topics.iter().filter(|t| t.name == "t").all(|t| {
                t.partitions.iter().all(|p| p.leader != controller && p.leader > 0 && !p.isr.contains(&controller))
            })
    })
    .await;
    assert_eq!(md.brokers.len(), 2);

    // Restart it on its directory and port: it registers again and is listed.
    let listener = TcpListener::bind(&nodes[victim].addr).expect("rebind the dead broker's port");
    let n = &mut nodes[victim];
    n.broker = Some(start(n.id, &n.dir, &voters, listener).await);
    until(&survivor, "the restarted broker is back", |md| md.brokers.len() == 3).await;

    Admin::new(&client).delete_topics(&["t".to_string()]).await.expect("delete t");
    for n in &nodes {
        until(&n.addr, "t is gone everywhere", |md| md.topics.iter().all(|t| t.name != "t")).await;
    }
    for n in nodes {
        n.broker.unwrap().shutdown().await.unwrap();
    }
}
