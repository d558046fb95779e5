//! A three-broker cluster in one process: the brokers form a metadata quorum, topics created on
//! one broker appear on all with replicas spread, the controller fails over when its broker dies,
//! the dead broker is fenced (its leaderships move), and it rejoins when restarted.

mod common;

use std::time::Duration;

use std::collections::BTreeMap;

use common::cluster::{metadata, until, Cluster};
use rill_core::client::{Admin, Client, ClientConfig, NewTopic};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_brokers_share_metadata_and_survive_the_controller() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let mut cluster = Cluster::start(3, &[]).await;

    let client = Client::connect(ClientConfig::new(&cluster.nodes[0].addr)).await.unwrap();
    let topic = NewTopic { name: "t".into(), partitions: 3, replication_factor: 3, configs: BTreeMap::new() };
    Admin::new(&client).create_topics(&[topic], false).await.expect("create t");
    let too_many = NewTopic { name: "u".into(), partitions: 1, replication_factor: 4, configs: BTreeMap::new() };
    let err = Admin::new(&client).create_topics(&[too_many], false).await.expect_err("rf 4 on 3 brokers");
    assert!(err.to_string().contains("replication factor"), "{err}");

    let mut ids = std::collections::BTreeSet::new();
    for n in &cluster.nodes {
        let md = until(&n.addr, "every broker sees t", |md| md.topics.iter().any(|t| t.name == "t")).await;
        ids.insert(md.cluster_id.clone());
        assert_eq!(md.brokers.len(), 3, "{md:?}");
        let t = md.topics.iter().find(|t| t.name == "t").unwrap();
        let mut leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 2, 3], "leaders spread over the brokers");
        for p in &t.partitions {
            assert_eq!((p.replicas.len(), p.isr.len()), (3, 3), "{p:?}");
        }
    }

    assert_eq!(ids.len(), 1, "one cluster id for the whole cluster: {ids:?}");

    // A config change through one broker reaches every broker's copy of the topic.
    let set = [("retention.ms".to_string(), Some("3600000".to_string()))];
    Admin::new(&client).alter_configs("t", &set).await.expect("alter t");
    for n in &cluster.nodes {
        let c = Client::connect(ClientConfig::new(&n.addr)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while Admin::new(&c).describe_configs("t").await.unwrap().get("retention.ms").map(String::as_str)
            != Some("3600000")
        {
            assert!(tokio::time::Instant::now() < deadline, "broker {} never took the new retention.ms", n.id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Kill the controller's broker (no clean shutdown).
    let controller = metadata(&cluster.nodes[0].addr).await.controller;
    let victim = cluster.nodes.iter().position(|n| n.id == controller).expect("a controller among the nodes");
    cluster.kill(victim);
    let survivor = cluster.nodes[(victim + 1) % 3].addr.clone();
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
    cluster.restart(victim).await;
    until(&survivor, "the restarted broker is back", |md| md.brokers.len() == 3).await;

    Admin::new(&client).delete_topics(&["t".to_string()]).await.expect("delete t");
    for n in &cluster.nodes {
        until(&n.addr, "t is gone everywhere", |md| md.topics.iter().all(|t| t.name != "t")).await;
    }
    cluster.shutdown().await;
}
