//! The Rill consumer end to end against an embedded broker over real TCP: manual assignment
//! reads every record in order; commit and committed round-trip; auto.offset.reset earliest,
//! latest and none; two consumers in one group split six partitions and consume every record
//! exactly once, and when one closes the other takes over from the committed offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::Broker;
use rill_core::client::{Admin, Client, ClientConfig};
use rill_core::consumer::{Consumer, ConsumerConfig, PolledRecord};
use rill_core::producer::{Producer, ProducerConfig};
use rill_core::records::ProducerRecord;

async fn broker(dir: &std::path::Path) -> Broker {
    common::embedded_broker(dir).await
}

async fn create(broker: &Broker, name: &str, partitions: i32) {
    common::create_topics(&broker.bootstrap(), &[(name, partitions)]).await
}

/// Produce `n` records `v{i}` to `partition` (or keyed `k{i}` spread by the partitioner).
async fn produce(broker: &Broker, topic: &str, partition: Option<i32>, range: std::ops::Range<usize>) {
    let config = ProducerConfig::from_properties([("bootstrap.servers", broker.bootstrap())]).unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut futures = Vec::new();
    for i in range {
        let record = ProducerRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            ..Default::default()
        };
        futures.push(producer.send(topic, partition, record).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await;
}

async fn consumer(broker: &Broker, props: &[(&str, &str)]) -> Consumer {
    let bootstrap = broker.bootstrap();
    let mut all = vec![("bootstrap.servers", bootstrap.as_str())];
    all.extend_from_slice(props);
    Consumer::new(ConsumerConfig::from_properties(all).unwrap()).await.unwrap()
}

/// Poll until `want` records arrived (or fail after 20 s).
async fn poll_n(c: &mut Consumer, want: usize) -> Vec<PolledRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < want {
        assert!(Instant::now() < deadline, "got {} of {want} records", out.len());
        out.extend(c.poll(Duration::from_millis(100)).await.unwrap());
    }
    out
}

fn value(r: &PolledRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_reads_everything_in_order_with_seek_pause_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "t", 3).await;
    for p in 0..3 {
        produce(&broker, "t", Some(p), 0..300).await;
    }
    let mut c = consumer(&broker, &[("auto.offset.reset", "earliest"), ("max.poll.records", "50")]).await;
    let tps: Vec<_> = (0..3).map(|p| ("t".to_string(), p)).collect();
    c.assign(tps.clone()).unwrap();
    let got = poll_n(&mut c, 900).await;
    assert_eq!(got.len(), 900);
    for p in 0..3 {
        let values: Vec<String> = got.iter().filter(|r| r.partition == p).map(value).collect();
        let want: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        assert_eq!(values, want, "partition {p}");
        let offsets: Vec<i64> = got.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert_eq!(offsets, (0..300).collect::<Vec<i64>>());
    }
    assert_eq!(c.position(&tps[0]).await.unwrap(), 300);
    assert!(c.poll(Duration::from_millis(50)).await.unwrap().is_empty());

    // Seek back; pause one partition.
    c.seek(&tps[1], 290).unwrap();
    c.seek(&tps[2], 295).unwrap();
    c.pause(&tps[2..]);
    assert_eq!(c.paused(), tps[2..]);
    let got = poll_n(&mut c, 10).await;
    assert!(got.iter().all(|r| r.partition == 1));
    assert_eq!(got.first().unwrap().offset, 290);
    c.resume(&tps[2..]);
    let got = poll_n(&mut c, 5).await;
    assert_eq!(
        got.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(),
        (295..300).map(|o| (2, o)).collect::<Vec<_>>()
    );
    // New records arrive on a live consumer.
    produce(&broker, "t", Some(0), 300..310).await;
    let got = poll_n(&mut c, 10).await;
    assert_eq!(value(&got[0]), "v300");
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_committed_and_auto_offset_reset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "r", 1).await;
    produce(&broker, "r", Some(0), 0..20).await;
    let tp = ("r".to_string(), 0);

    // latest: only what arrives afterwards.
    let mut c = consumer(&broker, &[("group.id", "g-latest")]).await;
    c.assign([tp.clone()]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 20);
    produce(&broker, "r", Some(0), 20..25).await;
    let got = poll_n(&mut c, 5).await;
    assert_eq!(got[0].offset, 20);
    c.close().await.unwrap();

    // none: an error naming the partition until a seek.
    let mut c = consumer(&broker, &[("group.id", "g-none"), ("auto.offset.reset", "none")]).await;
    c.assign([tp.clone()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match c.poll(Duration::from_millis(100)).await {
            Err(e) => break e,
            Ok(got) => assert!(got.is_empty() && Instant::now() < deadline),
        }
    };
    assert!(err.to_string().contains("r-0") && err.to_string().contains("auto.offset.reset=none"), "{err}");
    c.seek(&tp, 3).unwrap();
    assert_eq!(poll_n(&mut c, 1).await[0].offset, 3);

    // commit and committed round trip; a new consumer of the group starts there.
    assert_eq!(c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp], None);
    c.commit_offsets(&BTreeMap::from([(tp.clone(), 7)])).await.unwrap();
    assert_eq!(c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp], Some(7));
    c.seek(&tp, 12).unwrap();
    c.commit_async().await.unwrap().unwrap();
    assert_eq!(c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp], Some(12));
    c.close().await.unwrap();
    let mut c = consumer(&broker, &[("group.id", "g-none"), ("auto.offset.reset", "none")]).await;
    c.assign([tp.clone()]).unwrap();
    assert_eq!(poll_n(&mut c, 1).await[0].offset, 12);
    c.close().await.unwrap();

    // earliest, after an out-of-range seek as well.
    let mut c = consumer(&broker, &[("group.id", "g-early"), ("auto.offset.reset", "earliest")]).await;
    c.assign([tp.clone()]).unwrap();
    assert_eq!(poll_n(&mut c, 1).await[0].offset, 0);
    c.seek(&tp, 1_000).unwrap();
    let got = poll_n(&mut c, 25).await;
    assert_eq!(got[0].offset, 0);
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

async fn group_test(strategy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "g", 6).await;
    produce(&broker, "g", None, 0..3000).await;
    let props = [
        ("group.id", "shared"),
        ("auto.offset.reset", "earliest"),
        ("heartbeat.interval.ms", "100"),
        ("session.timeout.ms", "6000"),
        ("max.poll.records", "100"),
        ("partition.assignment.strategy", strategy),
    ];
    let mut a = consumer(&broker, &props).await;
    let mut b = consumer(&broker, &props).await;
    a.subscribe(["g"]).unwrap();
    b.subscribe(["g"]).unwrap();

    // Poll both until every record is seen and both own partitions.
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ra, rb) = tokio::join!(a.poll(Duration::from_millis(50)), b.poll(Duration::from_millis(50)));
        seen.extend(ra.unwrap().iter().map(value));
        seen.extend(rb.unwrap().iter().map(value));
        let (sa, sb) = (a.assignment(), b.assignment());
        if seen.len() >= 3000 && sa.len() + sb.len() == 6 && !sa.is_empty() && !sb.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{} records, assignments {sa:?} {sb:?}", seen.len());
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 3000, "every record consumed");
    assert_eq!(seen.len(), 3000, "every record consumed exactly once");
    let sa: BTreeSet<_> = a.assignment().into_iter().collect();
    let sb: BTreeSet<_> = b.assignment().into_iter().collect();
    assert!(sa.is_disjoint(&sb));
    assert_eq!(sa.len(), 3, "balanced: {sa:?} {sb:?}");

    // A closes (committing its positions); B takes everything over from the committed offsets.
    a.close().await.unwrap();
    produce(&broker, "g", None, 3000..3600).await;
    let mut more = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while more.len() < 600 || b.assignment().len() < 6 {
        more.extend(b.poll(Duration::from_millis(50)).await.unwrap().iter().map(value));
        assert!(Instant::now() < deadline, "{} new records, assignment {:?}", more.len(), b.assignment());
    }
    let want: BTreeSet<String> = (3000..3600).map(|i| format!("v{i}")).collect();
    assert_eq!(more.iter().cloned().collect::<BTreeSet<_>>(), want, "nothing lost, nothing old re-read");
    assert_eq!(more.len(), 600);
    b.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_six_partitions_exactly_once_eager() {
    group_test("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_six_partitions_exactly_once_cooperative() {
    group_test("cooperative-sticky").await;
}

#[derive(Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl rill_core::consumer::RebalanceListener for Recorder {
    fn on_partitions_assigned(&mut self, partitions: &[(String, i32)]) {
        self.0.lock().unwrap().push(format!("assigned {}", partitions.len()));
    }
    fn on_partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.0.lock().unwrap().push(format!("revoked {}", partitions.len()));
    }
    fn on_partitions_lost(&mut self, partitions: &[(String, i32)]) {
        self.0.lock().unwrap().push(format!("lost {}", partitions.len()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_and_max_poll_interval_enforcement() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "cb", 2).await;
    let props = [
        ("group.id", "cb"),
        ("heartbeat.interval.ms", "50"),
        ("session.timeout.ms", "6000"),
        ("max.poll.interval.ms", "1000"),
    ];
    let mut a = consumer(&broker, &props).await;
    let events = Recorder::default();
    a.set_rebalance_listener(events.clone());
    a.subscribe(["cb"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.assignment().len() < 2 {
        a.poll(Duration::from_millis(50)).await.unwrap();
        assert!(Instant::now() < deadline);
    }
    assert_eq!(*events.0.lock().unwrap(), ["assigned 2"]);

    // A stops polling: once max.poll.interval.ms passes it leaves, and B gets everything.
    let mut b = consumer(&broker, &props).await;
    b.subscribe(["cb"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        b.poll(Duration::from_millis(50)).await.unwrap();
        if b.assignment().len() == 2 && a.group_generation().1.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "b owns {:?}", b.assignment());
    }
    // A's next poll reports the loss, then it rejoins and the two share the partitions.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ra, rb) = tokio::join!(a.poll(Duration::from_millis(50)), b.poll(Duration::from_millis(50)));
        ra.unwrap();
        rb.unwrap();
        if a.assignment().len() == 1 && b.assignment().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "a {:?} b {:?}", a.assignment(), b.assignment());
    }
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen[..2], ["assigned 2", "lost 2"], "{seen:?}");
    assert_eq!(seen.last().unwrap(), "assigned 1", "{seen:?}");
    a.close().await.unwrap();
    assert_eq!(events.0.lock().unwrap().last().unwrap(), "revoked 1");
    b.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

/// Poll until `done` holds for the records seen so far and the assignment (or fail after 20 s).
async fn poll_until(
    c: &mut Consumer,
    seen: &mut Vec<PolledRecord>,
    what: &str,
    done: impl Fn(&[PolledRecord], &[(String, i32)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        seen.extend(c.poll(Duration::from_millis(50)).await.unwrap());
        if done(seen, &c.assignment()) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {} records, assignment {:?}", seen.len(), c.assignment());
    }
}

fn from_topic(seen: &[PolledRecord], topic: &str) -> BTreeSet<String> {
    seen.iter().filter(|r| &*r.topic == topic).map(value).collect()
}

fn values(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("v{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_pattern_follows_topics_as_they_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "orders-eu", 1).await;
    create(&broker, "orders-us", 2).await;
    create(&broker, "payments", 1).await;
    create(&broker, "old-orders-eu", 1).await;
    for t in ["orders-eu", "orders-us", "payments", "old-orders-eu"] {
        produce(&broker, t, None, 0..10).await;
    }
    let props = [
        ("group.id", "pattern"),
        ("auto.offset.reset", "earliest"),
        ("heartbeat.interval.ms", "50"),
        ("session.timeout.ms", "6000"),
        ("metadata.max.age.ms", "200"),
    ];
    let mut c = consumer(&broker, &props).await;

    // A bad regex is a config error naming the pattern; the consumer stays usable.
    match c.subscribe_pattern("orders-[") {
        Err(rill_core::Error::Config(msg)) => assert!(msg.contains("orders-["), "{msg}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert_eq!(c.subscription_pattern(), None);

    c.subscribe_pattern("orders-.*").unwrap();
    assert_eq!(c.subscription_pattern().as_deref(), Some("orders-.*"));
    let mut seen = Vec::new();
    poll_until(&mut c, &mut seen, "initial topics", |seen, _| {
        from_topic(seen, "orders-eu").len() == 10 && from_topic(seen, "orders-us").len() == 10
    })
    .await;
    let topics: BTreeSet<String> = c.assignment().into_iter().map(|tp| tp.0).collect();
    assert_eq!(topics, BTreeSet::from(["orders-eu".to_string(), "orders-us".to_string()]));

    // A new matching topic is picked up without restarting the consumer.
    create(&broker, "orders-asia", 2).await;
    produce(&broker, "orders-asia", None, 0..10).await;
    poll_until(&mut c, &mut seen, "orders-asia", |seen, _| from_topic(seen, "orders-asia").len() == 10).await;
    assert_eq!(from_topic(&seen, "orders-asia"), values(0..10));

    // A subscribed topic gaining partitions is reassigned too.
    let client = Client::connect(ClientConfig::new(broker.bootstrap())).await.unwrap();
    Admin::new(&client).create_partitions("orders-eu", 2).await.unwrap();
    produce(&broker, "orders-eu", Some(1), 10..15).await;
    poll_until(&mut c, &mut seen, "orders-eu grown", |seen, a| {
        from_topic(seen, "orders-eu") == values(0..15) && a.contains(&("orders-eu".to_string(), 1))
    })
    .await;

    // A deleted topic leaves the assignment.
    Admin::new(&client).delete_topics(&["orders-us".to_string()]).await.unwrap();
    // (An eager rebalance empties the assignment for a moment: wait for the whole new one.)
    let want: BTreeSet<(String, i32)> =
        [("orders-asia", 0), ("orders-asia", 1), ("orders-eu", 0), ("orders-eu", 1)].map(|(t, p)| (t.into(), p)).into();
    poll_until(&mut c, &mut seen, "orders-us deleted", |_, a| a.iter().cloned().collect::<BTreeSet<_>>() == want).await;

    // Nothing from topics that do not match as a whole; everything exactly once.
    assert!(from_topic(&seen, "payments").is_empty());
    assert!(from_topic(&seen, "old-orders-eu").is_empty());
    assert_eq!(seen.len(), 10 + 10 + 10 + 5, "every record exactly once");
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

/// `close` leaves the group at once: the group is empty right after, with no session timeout to
/// wait out (a LeaveGroup that cannot be encoded would leave the member there for 45 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_leaves_the_group_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    create(&broker, "leaving", 2).await;
    produce(&broker, "leaving", None, 0..10).await;
    let mut c = consumer(&broker, &[("group.id", "leavers"), ("auto.offset.reset", "earliest")]).await;
    c.subscribe(["leaving"]).unwrap();
    poll_n(&mut c, 10).await;
    let client =
        rill_core::client::Client::connect(rill_core::client::ClientConfig::new(broker.bootstrap())).await.unwrap();
    let admin = rill_core::client::Admin::new(&client);
    let before = admin.describe_groups(&["leavers".to_string()]).await.unwrap().remove(0);
    assert_eq!(before.members.len(), 1, "{before:?}");
    c.close().await.unwrap();
    let after = admin.describe_groups(&["leavers".to_string()]).await.unwrap().remove(0);
    assert!(after.members.is_empty(), "still a member after close: {after:?}");
    assert_eq!(after.state, "Empty");
}
