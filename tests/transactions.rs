//! The transactional producer and read_committed consumer end to end against an embedded broker
//! over real TCP: interleaved commits and aborts (read_committed sees exactly the committed
//! records, read_uncommitted all of them, and both walk past the markers to the end); a zombie
//! fenced by a second producer with the same transactional.id; consume-transform-produce with
//! `send_offsets_to_transaction`, where an aborted round commits neither its output nor its
//! offsets; and calls in the wrong state.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::client::{Client, ClientConfig, LATEST};
use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;
use rill_core::Error;

async fn broker(dir: &std::path::Path) -> Broker {
    common::embedded_broker(dir).await
}

async fn create(broker: &Broker, name: &str, partitions: i32) {
    common::create_topics(&broker.bootstrap(), &[(name, partitions)]).await
}

async fn producer(broker: &Broker, props: &[(&str, &str)]) -> Producer {
    let bootstrap = broker.bootstrap();
    let mut all = vec![("bootstrap.servers", bootstrap.as_str()), ("linger.ms", "1")];
    all.extend_from_slice(props);
    Producer::new(ProducerConfig::from_properties(all).unwrap()).await.unwrap()
}

async fn consumer(broker: &Broker, props: &[(&str, &str)]) -> Consumer {
    let bootstrap = broker.bootstrap();
    let mut all = vec![("bootstrap.servers", bootstrap.as_str()), ("auto.offset.reset", "earliest")];
    all.extend_from_slice(props);
    Consumer::new(ConsumerConfig::from_properties(all).unwrap()).await.unwrap()
}

fn rec(value: &str) -> ProducerRecord {
    ProducerRecord { value: Some(Bytes::from(value.to_string())), ..Default::default() }
}

fn value(r: &PolledRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

/// Poll until every assigned partition's position reached its end offset (the high watermark,
/// past the last marker) and return the values read, sorted. Fails after 20 s.
async fn read_to_end(c: &mut Consumer, topic: &str, partitions: i32, client: &Client) -> Vec<String> {
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        ends.insert((topic.to_string(), p), client.list_offset(topic, p, LATEST).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    loop {
        out.extend(c.poll(Duration::from_millis(50)).await.unwrap().iter().map(value));
        let mut done = true;
        for (tp, end) in &ends {
            done &= c.position(tp).await.unwrap() >= *end;
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "not at the end after 20 s; read {out:?}");
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_exactly_the_committed_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "txn", 2).await;
    let p = producer(&broker, &[("transactional.id", "interleaved")]).await;
    p.init_transactions().await.unwrap();
    let mut committed = Vec::new();
    let mut all = Vec::new();
    for t in 0..6 {
        p.begin_transaction().unwrap();
        let mut reports = Vec::new();
        for i in 0..10 {
            let v = format!("t{t}-{i:02}");
            reports.push(p.send("txn", Some(i % 2), rec(&v)).await.unwrap());
            all.push(v.clone());
            if t % 2 == 0 {
                committed.push(v);
            }
        }
        if t % 2 == 0 {
            p.commit_transaction().await.unwrap();
            for r in reports {
                r.await.unwrap();
            }
        } else {
            // Flushed first, so the aborted records are in the log, between committed ones.
            p.flush().await;
            p.abort_transaction().await.unwrap();
        }
    }
    p.close().await;
    committed.sort();
    all.sort();
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let tps = [("txn".to_string(), 0), ("txn".to_string(), 1)];
    let mut rc = consumer(&broker, &[]).await;
    rc.assign(tps.clone()).unwrap();
    assert_eq!(read_to_end(&mut rc, "txn", 2, &client).await, committed, "read_committed (the default)");
    let mut ru = consumer(&broker, &[("isolation.level", "read_uncommitted")]).await;
    ru.assign(tps.clone()).unwrap();
    assert_eq!(read_to_end(&mut ru, "txn", 2, &client).await, all, "read_uncommitted");
    // With nothing open, the last stable offset is the end: seek_to_end lands on it.
    rc.seek_to(&tps, false).await.unwrap();
    for tp in &tps {
        assert_eq!(rc.position(tp).await.unwrap(), client.list_offset("txn", tp.1, LATEST).await.unwrap());
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_read_committed_back_until_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "open", 1).await;
    let plain = producer(&broker, &[]).await;
    plain.send("open", Some(0), rec("before")).await.unwrap().await.unwrap();
    let p = producer(&broker, &[("transactional.id", "slow")]).await;
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    let inside = p.send("open", Some(0), rec("inside")).await.unwrap();
    p.flush().await;
    plain.send("open", Some(0), rec("after")).await.unwrap().await.unwrap();
    let tp = ("open".to_string(), 0);
    let mut c = consumer(&broker, &[]).await;
    c.assign([tp.clone()]).unwrap();
    // Only "before" is stable: the open transaction starts at offset 1.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline);
        got.extend(c.poll(Duration::from_millis(50)).await.unwrap().iter().map(value));
    }
    assert_eq!(got, ["before"]);
    assert_eq!(c.position(&tp).await.unwrap(), 1);
    c.seek_to(std::slice::from_ref(&tp), false).await.unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 1, "seek_to_end stops at the last stable offset");
    c.seek(&tp, 1).unwrap();
    p.commit_transaction().await.unwrap();
    assert_eq!(inside.await.unwrap().offset, 1);
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    assert_eq!(read_to_end(&mut c, "open", 1, &client).await, ["after", "inside"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_with_the_same_transactional_id_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "zombie", 1).await;
    let old = producer(&broker, &[("transactional.id", "worker-1")]).await;
    old.init_transactions().await.unwrap();
    old.begin_transaction().unwrap();
    old.send("zombie", Some(0), rec("from the zombie")).await.unwrap().await.unwrap();
    // A new instance takes over: its init aborts the zombie's transaction and fences it.
    let new = producer(&broker, &[("transactional.id", "worker-1")]).await;
    new.init_transactions().await.unwrap();
    let e = old.commit_transaction().await.unwrap_err();
    assert!(matches!(e, Error::ProducerFenced(_)), "{e}");
    assert!(e.is_fatal());
    let e = old.send("zombie", Some(0), rec("again")).await.unwrap_err();
    assert!(matches!(e, Error::ProducerFenced(_)), "after fencing only close is left: {e}");
    assert!(matches!(old.abort_transaction().await.unwrap_err(), Error::ProducerFenced(_)));
    old.close().await;
    new.begin_transaction().unwrap();
    let report = new.send("zombie", Some(0), rec("from the new instance")).await.unwrap();
    new.commit_transaction().await.unwrap();
    report.await.unwrap();
    new.close().await;
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let mut c = consumer(&broker, &[]).await;
    c.assign([("zombie".to_string(), 0)]).unwrap();
    assert_eq!(read_to_end(&mut c, "zombie", 1, &client).await, ["from the new instance"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_only_with_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "in", 2).await;
    create(&broker, "out", 2).await;
    let plain = producer(&broker, &[]).await;
    for i in 0..40 {
        drop(plain.send("in", Some(i % 2), rec(&format!("x{i:02}"))).await.unwrap());
    }
    plain.flush().await;
    let group = [("group.id", "ctp"), ("enable.auto.commit", "false")];
    let mut c = consumer(&broker, &group).await;
    c.subscribe(["in"]).unwrap();
    let p = producer(&broker, &[("transactional.id", "ctp-1")]).await;
    p.init_transactions().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = 0;
    let mut round = 0;
    while done < 40 {
        assert!(Instant::now() < deadline, "transformed {done} of 40");
        let polled = c.poll(Duration::from_millis(100)).await.unwrap();
        if polled.is_empty() {
            continue;
        }
        p.begin_transaction().unwrap();
        for r in &polled {
            // Outcomes show in commit_transaction (TransactionAbortable if a record failed).
            drop(p.send("out", Some(r.partition), rec(&value(r).to_uppercase())).await.unwrap());
        }
        let mut offsets = BTreeMap::new();
        for r in &polled {
            offsets.insert((r.topic.to_string(), r.partition), r.offset + 1);
        }
        p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap()).await.unwrap();
        round += 1;
        if round == 1 {
            // The first round is aborted: its output and offsets vanish, and it is redone.
            p.abort_transaction().await.unwrap();
            for tp in offsets.keys() {
                let committed = c.committed(std::slice::from_ref(tp)).await.unwrap();
                assert_eq!(committed[tp], None, "aborted offsets are not committed");
                let first = polled.iter().filter(|r| (&*r.topic, r.partition) == (tp.0.as_str(), tp.1));
                c.seek(tp, first.map(|r| r.offset).min().unwrap()).unwrap();
            }
            continue;
        }
        p.commit_transaction().await.unwrap();
        done += polled.len();
    }
    let tps = [("in".to_string(), 0), ("in".to_string(), 1)];
    let committed = c.committed(&tps).await.unwrap();
    assert_eq!(committed.values().copied().collect::<Vec<_>>(), [Some(20), Some(20)]);
    c.close().await.unwrap();
    p.close().await;
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    let mut check = consumer(&broker, &[]).await;
    check.assign([("out".to_string(), 0), ("out".to_string(), 1)]).unwrap();
    let want: Vec<String> = (0..40).map(|i| format!("X{i:02}")).collect();
    assert_eq!(read_to_end(&mut check, "out", 2, &client).await, want, "each input once, aborted round excluded");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_the_wrong_state_are_illegal() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let p = producer(&broker, &[("transactional.id", "states")]).await;
    let illegal = |e: Error| assert!(matches!(e, Error::IllegalState(_)), "{e}");
    illegal(p.begin_transaction().unwrap_err());
    illegal(p.send("t", None, rec("x")).await.unwrap_err());
    p.init_transactions().await.unwrap();
    illegal(p.send("t", None, rec("x")).await.unwrap_err());
    illegal(p.commit_transaction().await.unwrap_err());
    illegal(p.abort_transaction().await.unwrap_err());
    p.begin_transaction().unwrap();
    illegal(p.begin_transaction().unwrap_err());
    // Nothing sent: commit ends the transaction without asking the coordinator.
    p.commit_transaction().await.unwrap();
    let plain = producer(&broker, &[]).await;
    illegal(plain.begin_transaction().unwrap_err());
    p.close().await;
    plain.close().await;
    broker.shutdown().await.unwrap();
}
