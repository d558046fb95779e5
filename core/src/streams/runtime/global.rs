//! The global stream thread: keeps an instance's global stores (GlobalKTables) up to date.
//!
//! One per [`KafkaStreams`](super::KafkaStreams) instance whose topology has global stores,
//! started before the stream threads. It assigns itself every partition of every global topic
//! (manual assignment, `read_committed`, no consumer group: every instance reads everything),
//! brings each store up to the topic's last stable offset, and only then lets the stream
//! threads start, so no task ever reads a global store that is still catching up. After that it
//! applies new records as they arrive, until the instance closes.
//!
//! Records go through the global store's processor (for a GlobalKTable: put, or delete on a
//! tombstone), while bootstrapping as while running: one path. A record that does not
//! deserialize follows `deserialization.exception.handler`.
//!
//! Restart: a global store has no changelog of its own (its topic is its changelog), and it
//! reads several partitions, so one offset per store does not say where it stands. The thread
//! keeps a checkpoint file, `<state.dir>/<application.id>/global/.checkpoint`, with the next
//! offset of every partition of every persistent global store's topic (Kafka's `OffsetCheckpoint`
//! format), written after the stores are flushed: every `commit.interval.ms`, after
//! bootstrapping, and at close. A restart seeks each partition to its checkpointed offset and
//! replays only the tail. A store with no checkpoint for all its partitions, or one past a
//! partition's end (the topic was recreated), is cleared and read from the start; in-memory
//! stores are always read from the start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientConfig, IsolationLevel, EARLIEST, LATEST};
use crate::consumer::{Consumer, ConsumerConfig, PolledRecord};
use crate::streams::error::{Result, StreamsError};
use crate::streams::global::{global_dir, GlobalStores};
use crate::streams::record::Headers;
use crate::streams::task::{RecordCollector, Task};
use crate::streams::topology::Topology;

use super::config::{OnError, StreamsConfig};
use super::restore::RestoreStats;
use super::retry::retrying;

type TopicPartition = (String, i32);

/// The checkpoint file's name in the global state directory (as in Kafka Streams).
const CHECKPOINT_FILE: &str = ".checkpoint";
/// Version line of the checkpoint file (Kafka's `OffsetCheckpoint` version 0).
const CHECKPOINT_VERSION: u32 = 0;

/// What bootstrapping one partition of a global topic replayed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRestoration {
    /// The global store.
    pub store: String,
    /// Its topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Records applied, and the offsets read from and to.
    pub stats: RestoreStats,
}

/// The application's side of the global thread: the stores (for tasks and interactive
/// queries), what bootstrapping replayed, and the thread to join at close.
#[derive(Default)]
pub(crate) struct GlobalHandle {
    pub(crate) stores: GlobalStores,
    pub(crate) restorations: Vec<GlobalRestoration>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the global thread needs from its application.
pub(crate) struct GlobalContext {
    pub(crate) config: Arc<StreamsConfig>,
    pub(crate) topology: Arc<Topology>,
    /// Set by `close` (or a failed thread): stop.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Where a failure after bootstrapping is reported (the instance then shuts down).
    pub(crate) first_error: Arc<Mutex<Option<StreamsError>>>,
    pub(crate) io: tokio::runtime::Handle,
}

type Ready = tokio::sync::oneshot::Sender<Result<(GlobalStores, Vec<GlobalRestoration>)>>;

/// Start the global thread if the topology has global stores, and wait until every global
/// store has caught up with its topic.
pub(crate) async fn start(cx: GlobalContext) -> Result<GlobalHandle> {
    if cx.topology.global_topics().is_empty() {
        return Ok(GlobalHandle::default());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = format!("{}-GlobalStreamThread", cx.config.application_id);
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || run_thread(cx, tx))
        .map_err(|e| StreamsError::Topology(format!("cannot start {name}: {e}")))?;
    match rx.await {
        Ok(Ok((stores, restorations))) => Ok(GlobalHandle { stores, restorations, thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(StreamsError::Topology(format!("{name} stopped while bootstrapping the global stores")))
        }
    }
}

impl GlobalHandle {
    /// Wait for the thread to stop (the shutdown flag is set), up to `deadline`.
    pub(crate) async fn join(&mut self, deadline: Instant) -> Result<()> {
        let Some(h) = self.thread.take() else { return Ok(()) };
        while !h.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !h.is_finished() {
            return Err(StreamsError::Topology(
                "the global stream thread did not stop within the close timeout".into(),
            ));
        }
        h.join().map_err(|_| StreamsError::Topology("the global stream thread panicked".into()))
    }

    /// Interactive query on a global store: `None` if `store` is not one.
    pub(crate) fn get<K: 'static, V: 'static>(&self, store: &str, key: &K) -> Option<Result<Option<V>>> {
        let r = self.stores.reader::<K, V>(store)?;
        Some(r.map_err(StreamsError::Topology).and_then(|r| Ok(r.get(key)?)))
    }

    /// Interactive query: every entry of a global store; `None` if `store` is not one.
    pub(crate) fn all<K: 'static, V: 'static>(&self, store: &str) -> Option<Result<Vec<(K, V)>>> {
        let r = self.stores.reader::<K, V>(store)?;
        Some(r.map_err(StreamsError::Topology).and_then(|r| Ok(r.all()?)))
    }
}

fn run_thread(cx: GlobalContext, ready: Ready) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StreamsError::Topology(format!("global stream thread: no runtime: {e}"))));
            return;
        }
    };
    let (shutdown, first_error) = (cx.shutdown.clone(), cx.first_error.clone());
    rt.block_on(async move {
        let mut g = match Global::new(cx).await {
            Ok(g) => g,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        match g.bootstrap().await {
            Ok(restored) => {
                let _ = ready.send(Ok((g.stores.clone(), restored)));
            }
            Err(e) => {
                g.close().await;
                let _ = ready.send(Err(e));
                return;
            }
        }
        let r = g.run().await;
        g.close().await;
        if let Err(e) = r {
            tracing::error!(error = %e, "global stream thread failed; shutting this instance down");
            first_error.lock().expect("error lock").get_or_insert(e);
            shutdown.store(true, Ordering::Release);
        }
    });
}

/// A global store's processor only updates its store: it has nowhere to send records.
struct NoSinks;

impl RecordCollector for NoSinks {
    fn send(
        &mut self,
        sink: &str,
        topic: &str,
        _: Option<i32>,
        _: Option<bytes::Bytes>,
        _: Option<bytes::Bytes>,
        _: i64,
        _: Headers,
    ) -> Result<()> {
        Err(StreamsError::Send {
            topic: topic.to_string(),
            cause: format!("{sink}: a global store's processor cannot send records"),
        })
    }
    fn partition_count(&mut self, topic: &str) -> Result<i32> {
        Err(StreamsError::Send { topic: topic.to_string(), cause: "a global store's processor cannot send".into() })
    }
}

struct Global {
    cx: GlobalContext,
    client: Client,
    consumer: Consumer,
    stores: GlobalStores,
    task: Task,
    /// Every partition read, with the store it feeds.
    partitions: Vec<(TopicPartition, String)>,
    dir: PathBuf,
    dirty: bool,
    last_flush: Instant,
}

impl Global {
    async fn new(cx: GlobalContext) -> Result<Self> {
        let io = cx.io.clone();
        let _io = io.enter();
        let c = &cx.config;
        let client = Client::connect(ClientConfig::new(c.bootstrap_servers.clone())).await?;
        let topics = cx.topology.global_topics();
        let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
        let md = client.metadata(Some(&names), false).await?;
        let mut partitions = Vec::new();
        for (topic, store) in &topics {
            let found = md.topics.iter().find(|m| &m.name == topic && m.error_code == 0 && !m.partitions.is_empty());
            let Some(m) = found else {
                return Err(StreamsError::Topology(format!(
                    "topic {topic} of global store {store} does not exist; create it before starting the application"
                )));
            };
            for p in 0..m.partitions.len() as i32 {
                partitions.push(((topic.clone(), p), store.clone()));
            }
        }
        let stores = cx.topology.build_global_stores(&c.application_id, &c.state_dir)?;
        let mut task = cx.topology.build_global_task(&stores, Box::new(NoSinks))?;
        task.init()?;
        let mut props: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), c.bootstrap_servers.clone()),
            ("client.id".into(), format!("{}-GlobalStreamThread-consumer", c.application_id)),
            ("enable.auto.commit".into(), "false".into()),
            ("auto.offset.reset".into(), "earliest".into()),
        ];
        // The application's consumer settings, except those of its group: this one has none.
        props.extend(c.consumer.iter().filter(|(k, _)| !k.starts_with("group.")).cloned());
        props.push(("isolation.level".into(), "read_committed".into()));
        let mut consumer = Consumer::new(ConsumerConfig::from_properties(props)?).await?;
        consumer.assign(partitions.iter().map(|(tp, _)| tp.clone()))?;
        let dir = global_dir(&c.state_dir, &c.application_id);
        Ok(Self { cx, client, consumer, stores, task, partitions, dir, dirty: false, last_flush: Instant::now() })
    }

    /// Bring every store up to its topic's last stable offset (see the module docs).
    async fn bootstrap(&mut self) -> Result<Vec<GlobalRestoration>> {
        let started = Instant::now();
        let checkpoint = read_checkpoint(&self.dir.join(CHECKPOINT_FILE)).map_err(|e| {
            StreamsError::Topology(format!("reading the global checkpoint in {}: {e}", self.dir.display()))
        })?;
        let mut bounds: BTreeMap<TopicPartition, (i64, i64)> = BTreeMap::new();
        for (tp, _) in &self.partitions {
            let client = &self.client;
            let (earliest, end) = retrying(client, self.cx.config.task_timeout, "a global topic's offsets", || async {
                let earliest = client.list_offset(&tp.0, tp.1, EARLIEST).await?;
                let end = client.list_offset_isolated(&tp.0, tp.1, LATEST, IsolationLevel::ReadCommitted).await?;
                Ok::<_, crate::error::Error>((earliest, end))
            })
            .await?;
            bounds.insert(tp.clone(), (earliest, end));
        }
        // Where each store starts: its checkpoint if it covers every partition and fits, else
        // the start of the topic, with the store cleared.
        let mut from: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for store in self.stores.names().map(str::to_string).collect::<Vec<_>>() {
            let parts: Vec<&TopicPartition> =
                self.partitions.iter().filter(|(_, s)| *s == store).map(|(tp, _)| tp).collect();
            let usable = self.stores.is_persistent(&store)
                && parts.iter().all(|tp| checkpoint.get(*tp).is_some_and(|c| *c <= bounds[*tp].1));
            if usable {
                for tp in parts {
                    from.insert(tp.clone(), checkpoint[tp].max(bounds[tp].0));
                }
            } else {
                if parts.iter().any(|tp| checkpoint.contains_key(*tp)) {
                    tracing::warn!(
                        store,
                        "global checkpoint incomplete or past the topic's end; reading the topic from the start"
                    );
                }
                if let Some(r) = self.stores.with_state(&store, |s| s.clear()) {
                    r?;
                }
                for tp in parts {
                    from.insert(tp.clone(), bounds[tp].0);
                }
            }
        }
        for (tp, offset) in &from {
            self.consumer.seek(tp, *offset)?;
        }
        let mut applied: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        loop {
            let mut behind = false;
            for (tp, (_, end)) in &bounds {
                if self.consumer.position(tp).await? < *end {
                    behind = true;
                    break;
                }
            }
            if !behind {
                break;
            }
            if self.cx.shutdown.load(Ordering::Acquire) {
                return Err(StreamsError::Topology("closed while bootstrapping the global stores".into()));
            }
            let records = self.consumer.poll(self.cx.config.poll).await?;
            for r in &records {
                *applied.entry((r.topic.to_string(), r.partition)).or_default() += 1;
            }
            self.apply(records)?;
        }
        self.flush().await?;
        let mut out = Vec::new();
        for (tp, store) in &self.partitions {
            let to = self.consumer.position(tp).await?;
            let records = applied.get(tp).copied().unwrap_or(0);
            out.push(GlobalRestoration {
                store: store.clone(),
                topic: tp.0.clone(),
                partition: tp.1,
                stats: RestoreStats { records, from: from[tp], to },
            });
        }
        let total: u64 = out.iter().map(|r| r.stats.records).sum();
        tracing::info!(records = total, elapsed = ?started.elapsed(), "global stores bootstrapped");
        Ok(out)
    }

    async fn run(&mut self) -> Result<()> {
        let interval = self.cx.config.commit_interval();
        while !self.cx.shutdown.load(Ordering::Acquire) {
            let records = self.consumer.poll(self.cx.config.poll).await?;
            self.apply(records)?;
            if self.dirty && self.last_flush.elapsed() >= interval {
                self.flush().await?;
            }
        }
        if self.dirty {
            self.flush().await?;
        }
        Ok(())
    }

    /// Run records through the global stores' processors.
    fn apply(&mut self, records: Vec<PolledRecord>) -> Result<()> {
        for r in records {
            self.dirty = true;
            let rec = &r.record;
            let result = self.task.process(
                &r.topic,
                r.partition,
                rec.offset,
                rec.key.as_deref(),
                rec.value.as_deref(),
                rec.timestamp,
                rec.headers.clone(),
            );
            match result {
                Ok(()) => {}
                Err(e @ StreamsError::Deserialization { .. })
                    if self.cx.config.on_deserialization_error == OnError::LogAndContinue =>
                {
                    tracing::warn!(topic = %r.topic, partition = r.partition, offset = rec.offset, error = %e, "deserialization error in a global topic; record skipped");
                }
                Err(e) => {
                    tracing::error!(topic = %r.topic, partition = r.partition, offset = rec.offset, error = %e, "a global store's processor failed on a record");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Make the stores durable, then record where they stand.
    async fn flush(&mut self) -> Result<()> {
        for store in self.stores.names() {
            if let Some(r) = self.stores.with_state(store, |s| s.flush()) {
                r?;
            }
        }
        let mut offsets = BTreeMap::new();
        for (tp, store) in &self.partitions {
            if self.stores.is_persistent(store) {
                offsets.insert(tp.clone(), self.consumer.position(tp).await?);
            }
        }
        write_checkpoint(&self.dir, &offsets).map_err(|e| {
            StreamsError::Topology(format!("writing the global checkpoint in {}: {e}", self.dir.display()))
        })?;
        self.dirty = false;
        self.last_flush = Instant::now();
        Ok(())
    }

    async fn close(mut self) {
        self.task.close();
        if let Err(e) = self.consumer.close().await {
            tracing::debug!(error = %e, "global consumer close");
        }
        drop(self.stores);
    }
}

/// Read a checkpoint file (Kafka's `OffsetCheckpoint`: a version line, a count line, then
/// `topic partition offset` lines). A missing file is an empty checkpoint.
fn read_checkpoint(path: &Path) -> std::io::Result<BTreeMap<TopicPartition, i64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some(v) if v == CHECKPOINT_VERSION.to_string() => {}
        v => return Err(bad(format!("unknown checkpoint version {v:?}"))),
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("no entry count".into()))?;
    let mut out = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let (Some(topic), Some(p), Some(o), None) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(bad(format!("malformed line {line:?}")));
        };
        let p: i32 = p.parse().map_err(|_| bad(format!("bad partition in {line:?}")))?;
        let o: i64 = o.parse().map_err(|_| bad(format!("bad offset in {line:?}")))?;
        out.insert((topic.to_string(), p), o);
    }
    if out.len() != count {
        return Err(bad(format!("{} entries where the header says {count}", out.len())));
    }
    Ok(out)
}

/// Write `offsets` as the checkpoint file in `dir`: to a temporary file, synced, then renamed
/// over the old one, so a crash leaves the old checkpoint or the new, never a torn one.
fn write_checkpoint(dir: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", offsets.len());
        for ((topic, p), o) in offsets {
            text.push_str(&format!("{topic} {p} {o}\n"));
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("app").join("global");
        assert!(read_checkpoint(&g.join(CHECKPOINT_FILE)).unwrap().is_empty(), "no file: empty");
        let offsets = BTreeMap::from([(("rates".to_string(), 0), 17), (("rates".to_string(), 2), 0)]);
        write_checkpoint(&g, &offsets).unwrap();
        assert_eq!(read_checkpoint(&g.join(CHECKPOINT_FILE)).unwrap(), offsets);
        let text = std::fs::read_to_string(g.join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\nrates 0 17\nrates 2 0\n", "Kafka's OffsetCheckpoint layout");
        write_checkpoint(&g, &BTreeMap::new()).unwrap();
        assert!(read_checkpoint(&g.join(CHECKPOINT_FILE)).unwrap().is_empty());
        assert!(!g.join(".checkpoint.tmp").exists());
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        for text in ["1\n0\n", "0\n", "0\n2\nt 0 1\n", "0\n1\nt x 1\n", "0\n1\nt 0 1 9\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(read_checkpoint(&path).is_err(), "{text:?}");
        }
    }
}
