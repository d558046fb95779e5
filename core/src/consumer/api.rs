//! [`Consumer`]: the application's handle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::config::ConsumerConfig;
use super::fetcher;
use super::group::{Coordinator, GroupEvent, CLOSE_TIMEOUT};
use super::pattern::TopicPattern;
use super::protocol::{self, Member};
use super::state::{PartState, Shared, State, TopicPartition};
use crate::client::{Client, ClientConfig, EARLIEST, LATEST};
use crate::error::{Error, Result};
use crate::records::ConsumerRecord;

/// A record returned by [`Consumer::poll`], with the partition it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The record (offset, key, value, headers, timestamp).
    pub record: ConsumerRecord,
}

impl std::ops::Deref for PolledRecord {
    type Target = ConsumerRecord;
    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}

/// A consumer's place in its group, for a transactional producer's
/// `send_offsets_to_transaction` (Kafka's `ConsumerGroupMetadata`): the group coordinator fences
/// offsets sent for an old generation, so a zombie consumer cannot commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation joined (-1 outside one, e.g. with `assign`).
    pub generation_id: i32,
    /// The member id (empty outside a generation).
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

/// Rebalance callbacks, called from [`Consumer::poll`] (and `close`) on the application's task.
pub trait RebalanceListener: Send {
    /// Partitions newly assigned to this member.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions taken away in an orderly rebalance; their positions were committed just before
    /// when `enable.auto.commit` is on.
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions lost without a rebalance (the generation ended: session or poll timeout);
    /// another member may already own them, so nothing is committed.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions)
    }
}

/// A Kafka consumer: manual assignment or group membership, background prefetch, commits.
pub struct Consumer {
    shared: Arc<Shared>,
    fetcher: JoinHandle<()>,
    coordinator: Option<JoinHandle<()>>,
    events: Option<mpsc::UnboundedReceiver<GroupEvent>>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_auto_commit: Instant,
    /// Whether the application confirms revocations itself ([`Consumer::defer_revocations`]).
    defer_revocations: bool,
    /// Revocations applied by `poll` that the application has not confirmed yet.
    unconfirmed: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("group", &self.shared.config.group_id).finish()
    }
}

impl Consumer {
    /// Validate `config`, connect to a bootstrap server and start the fetcher.
    pub async fn new(config: ConsumerConfig) -> Result<Self> {
        config.validate()?;
        let client = Client::connect(ClientConfig {
            bootstrap_servers: config.bootstrap_servers.clone(),
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout,
        })
        .await?;
        let member = Member {
            group_id: config.group_id.clone().unwrap_or_default(),
            member_id: String::new(),
            instance_id: config.group_instance_id.clone(),
            generation: -1,
        };
        let shared = Arc::new(Shared {
            config,
            client,
            state: Mutex::new(State::default()),
            fetcher_wake: Notify::new(),
            poll_wake: Notify::new(),
            coordinator_wake: Notify::new(),
            closed: AtomicBool::new(false),
            last_poll: Mutex::new(Instant::now()),
            member: Mutex::new(member),
            coordinator: tokio::sync::Mutex::new(None),
            subscription: Mutex::new(Vec::new()),
            pattern: Mutex::new(None),
            subscription_changed: AtomicBool::new(false),
        });
        let fetcher = tokio::spawn(fetcher::run(shared.clone()));
        Ok(Self {
            shared,
            fetcher,
            coordinator: None,
            events: None,
            listener: None,
            last_auto_commit: Instant::now(),
            defer_revocations: false,
            unconfirmed: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// Read exactly these partitions, without a group (replaces any earlier assignment).
    /// Positions start at the committed offset (with a `group.id`) or `auto.offset.reset`.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        if self.coordinator.is_some() {
            return Err(Error::Config("assign after subscribe: a consumer either subscribes or assigns".into()));
        }
        let wanted: BTreeMap<TopicPartition, PartState> =
            partitions.into_iter().map(|tp| (tp, PartState::default())).collect();
        let mut state = self.shared.lock();
        state.parts.retain(|tp, _| wanted.contains_key(tp));
        for (tp, p) in wanted {
            state.parts.entry(tp).or_insert(p);
        }
        let parts = state.parts.clone();
        state.drop_buffered(|tp| !parts.contains_key(tp));
        drop(state);
        self.shared.fetcher_wake.notify_one();
        Ok(())
    }

    /// Join the group (`group.id` required) and read the partitions it assigns from `topics`.
    pub fn subscribe<T: Into<String>>(&mut self, topics: impl IntoIterator<Item = T>) -> Result<()> {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        self.set_subscription(topics, None)
    }

    /// Join the group (`group.id` required) and read the partitions it assigns from every topic
    /// whose whole name matches the regex `pattern` (as Java's `Pattern.matcher(topic).matches()`;
    /// internal topics are left out unless `exclude.internal.topics=false`). Metadata is checked
    /// again every `metadata.max.age.ms`: when matching topics appear or go away the member
    /// rejoins with the new set. A pattern that does not compile is an [`Error::Config`].
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let pattern = TopicPattern::new(pattern)?;
        self.set_subscription(Vec::new(), Some(pattern))
    }

    fn set_subscription(&mut self, topics: Vec<String>, pattern: Option<TopicPattern>) -> Result<()> {
        if self.shared.config.group_id.is_none() {
            return Err(Error::Config("subscribe needs a group.id; without one, use assign".into()));
        }
        if self.coordinator.is_none() && !self.shared.lock().parts.is_empty() {
            return Err(Error::Config("subscribe after assign: a consumer either subscribes or assigns".into()));
        }
        *self.shared.subscription.lock().unwrap_or_else(|e| e.into_inner()) = topics;
        *self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()) = pattern;
        self.shared.subscription_changed.store(true, Ordering::Release);
        if self.coordinator.is_none() {
            let (tx, rx) = mpsc::unbounded_channel();
            let coordinator = Coordinator::new(self.shared.clone(), tx)?;
            self.events = Some(rx);
            self.coordinator = Some(tokio::spawn(coordinator.run()));
        }
        // A new subscription takes effect at the next join; nudge the coordinator task.
        self.shared.coordinator_wake.notify_one();
        Ok(())
    }

    /// The pattern given to [`Consumer::subscribe_pattern`], while it is the subscription.
    pub fn subscription_pattern(&self) -> Option<String> {
        self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|p| p.as_str().to_string())
    }

    /// Set the rebalance callbacks.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// Hold the group back after a revocation until [`Consumer::confirm_revocations`]: `poll`
    /// still stops fetching revoked partitions and tells the listener, but the member rejoins
    /// (and the partitions reach their next owner) only once the application confirms, so it can
    /// first commit what it did with them, for instance in a transaction. Kafka runs the
    /// listener inside `poll` for the same reason; this suits applications that commit
    /// asynchronously. Unconfirmed revocations count against `max.poll.interval.ms`.
    pub fn defer_revocations(&mut self) {
        self.defer_revocations = true;
    }

    /// Let the group go on after the revocations `poll` reported (see
    /// [`Consumer::defer_revocations`]).
    pub fn confirm_revocations(&mut self) {
        for done in self.unconfirmed.drain(..) {
            let _ = done.send(());
        }
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.lock().parts.keys().cloned().collect()
    }

    /// Our generation and member id in the group (`-1` and empty outside one).
    pub fn group_generation(&self) -> (i32, String) {
        let m = self.shared.member();
        (m.generation, m.member_id)
    }

    /// The group metadata to hand to a transactional producer's `send_offsets_to_transaction`.
    /// Fails without a `group.id`.
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        let group_id = self
            .shared
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("group_metadata needs a group.id".into()))?;
        let m = self.shared.member();
        Ok(ConsumerGroupMetadata {
            group_id,
            generation_id: m.generation,
            member_id: m.member_id,
            group_instance_id: self.shared.config.group_instance_id.clone(),
        })
    }

    /// Read `tp` from `offset` at the next poll.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if !self.shared.lock().set_position(tp, Some(offset)) {
            return Err(not_assigned(tp));
        }
        self.shared.fetcher_wake.notify_one();
        Ok(())
    }

    /// Seek to the log start (`EARLIEST`) or end (`LATEST`) of each partition. The end is the
    /// last stable offset with `isolation.level=read_committed`.
    pub async fn seek_to(&mut self, partitions: &[TopicPartition], beginning: bool) -> Result<()> {
        for tp in partitions {
            let ts = if beginning { EARLIEST } else { LATEST };
            let o =
                self.shared.client.list_offset_isolated(&tp.0, tp.1, ts, self.shared.config.isolation_level).await?;
            self.seek(tp, o)?;
        }
        Ok(())
    }

    /// The offset of the next record `poll` returns for `tp`, looking it up if need be (waits
    /// up to `request.timeout.ms`).
    pub async fn position(&self, tp: &TopicPartition) -> Result<i64> {
        let deadline = Instant::now() + self.shared.config.request_timeout;
        loop {
            {
                let mut state = self.shared.lock();
                let p = state.parts.get(tp).ok_or_else(|| not_assigned(tp))?;
                if let Some(o) = p.position {
                    return Ok(o);
                }
                if p.failed {
                    return Err(state.errors.pop_front().unwrap_or_else(|| not_assigned(tp)));
                }
            }
            self.shared.fetcher_wake.notify_one();
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!("looking up the position of {}-{}", tp.0, tp.1)));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop returning records of these partitions until [`Consumer::resume`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        self.set_paused(partitions, true);
    }

    /// Resume paused partitions.
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        self.set_paused(partitions, false);
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.shared.lock().parts.iter().filter(|(_, p)| p.paused).map(|(tp, _)| tp.clone()).collect()
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) {
        let mut state = self.shared.lock();
        for tp in partitions {
            if let Some(p) = state.parts.get_mut(tp) {
                p.paused = paused;
            }
        }
        drop(state);
        self.shared.fetcher_wake.notify_one();
    }

    /// Up to `max.poll.records` records, waiting up to `timeout` for some. Applies rebalances
    /// (callbacks run here), auto-commits when due, and reports errors such as a partition
    /// without an offset under `auto.offset.reset=none`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<PolledRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            self.note_poll();
            self.apply_group_events().await?;
            self.maybe_auto_commit().await;
            let got = {
                let mut state = self.shared.lock();
                if let Some(e) = state.errors.pop_front() {
                    return Err(e);
                }
                state.take(self.shared.config.max_poll_records)
            };
            if !got.is_empty() {
                self.shared.fetcher_wake.notify_one();
                return Ok(got
                    .into_iter()
                    .map(|(topic, partition, record)| PolledRecord { topic, partition, record })
                    .collect());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, self.shared.poll_wake.notified()).await;
        }
    }

    fn note_poll(&self) {
        let mut last = self.shared.last_poll.lock().unwrap_or_else(|e| e.into_inner());
        let expired = last.elapsed() > self.shared.config.max_poll_interval;
        *last = Instant::now();
        drop(last);
        if expired {
            self.shared.coordinator_wake.notify_one();
        }
    }

    async fn apply_group_events(&mut self) -> Result<()> {
        loop {
            let event = match self.events.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(e)) => e,
                _ => return Ok(()),
            };
            match event {
                GroupEvent::Assigned(partitions) => {
                    {
                        let mut state = self.shared.lock();
                        for tp in &partitions {
                            state.parts.entry(tp.clone()).or_default();
                        }
                    }
                    self.shared.fetcher_wake.notify_one();
                    if let Some(l) = self.listener.as_mut() {
                        l.on_partitions_assigned(&partitions);
                    }
                }
                GroupEvent::Revoked { partitions, lost, done } => {
                    self.revoke(&partitions, lost.load(Ordering::Acquire)).await;
                    if self.defer_revocations {
                        self.unconfirmed.push(done);
                    } else {
                        let _ = done.send(());
                    }
                }
                GroupEvent::Fatal(e) => return Err(e),
            }
        }
    }

    /// Commit (unless lost), call the listener, and forget the partitions.
    async fn revoke(&mut self, partitions: &[TopicPartition], lost: bool) {
        if !lost && self.shared.config.enable_auto_commit {
            let offsets = self.positions(Some(partitions));
            if let Err(e) = self.commit_offsets(&offsets).await {
                tracing::warn!(error = %e, "committing revoked partitions failed");
            }
        }
        if let Some(l) = self.listener.as_mut() {
            if lost {
                l.on_partitions_lost(partitions);
            } else {
                l.on_partitions_revoked(partitions);
            }
        }
        let mut state = self.shared.lock();
        for tp in partitions {
            state.parts.remove(tp);
        }
        state.drop_buffered(|tp| partitions.contains(tp));
    }

    async fn maybe_auto_commit(&mut self) {
        let c = &self.shared.config;
        if !c.enable_auto_commit || c.group_id.is_none() || self.last_auto_commit.elapsed() < c.auto_commit_interval {
            return;
        }
        self.last_auto_commit = Instant::now();
        let offsets = self.positions(None);
        if let Err(e) = self.commit_offsets(&offsets).await {
            tracing::debug!(error = %e, "auto commit failed");
        }
    }

    /// Known positions of `only` (or of every assigned partition).
    fn positions(&self, only: Option<&[TopicPartition]>) -> BTreeMap<TopicPartition, i64> {
        let state = self.shared.lock();
        state
            .parts
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter_map(|(tp, p)| p.position.map(|o| (tp.clone(), o)))
            .collect()
    }

    /// Commit the current positions of every assigned partition and wait for the answer.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.positions(None);
        self.commit_offsets(&offsets).await
    }

    /// Commit these offsets (the next offset to read, per partition) and wait for the answer.
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        commit(&self.shared, offsets).await
    }

    /// Commit the current positions in the background; the handle gives the outcome.
    pub fn commit_async(&mut self) -> JoinHandle<Result<()>> {
        let offsets = self.positions(None);
        let shared = self.shared.clone();
        tokio::spawn(async move { commit(&shared, &offsets).await })
    }

    /// The committed offsets of `partitions` (`None` where nothing is committed). A
    /// read_committed consumer waits (up to `request.timeout.ms`) for offsets still pending in a
    /// transaction to be committed or aborted (KIP-447), as Kafka's does. A coordinator that
    /// died or moved is looked up again until `default.api.timeout.ms` ([`Error::Timeout`]).
    pub async fn committed(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let group =
            self.shared.config.group_id.clone().ok_or_else(|| Error::Config("committed needs a group.id".into()))?;
        let config = &self.shared.config;
        let stable = config.isolation_level == crate::client::IsolationLevel::ReadCommitted;
        let deadline = tokio::time::Instant::now() + config.default_api_timeout;
        loop {
            let r = match self.shared.coordinator().await {
                Ok(conn) => protocol::fetch_offsets(&conn, &group, partitions, config.request_timeout, stable).await,
                Err(e) => Err(e),
            };
            match r {
                // The coordinator died or moved: look it up again, as Java's consumer does until
                // `default.api.timeout.ms`.
                Err(e) if protocol::is_coordinator_error(&e) || matches!(e, Error::Timeout(_)) => {
                    self.shared.forget_coordinator().await;
                    let pause = config.retry_backoff.max(MIN_RETRY_PAUSE);
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(Error::Timeout(format!(
                            "committed offsets not fetched within default.api.timeout.ms; last error: {e}"
                        )));
                    }
                    tracing::debug!(error = %e, "fetching committed offsets failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                r => return r,
            }
        }
    }

    /// Commit positions (with auto commit on), give up the partitions, leave the group and stop
    /// the background tasks.
    pub async fn close(mut self) -> Result<()> {
        self.apply_group_events().await.ok();
        let all = self.assignment();
        if self.coordinator.is_some() || self.shared.config.group_id.is_some() {
            self.revoke(&all, false).await;
        }
        // Dropping the event receiver releases a coordinator waiting for a revocation.
        self.confirm_revocations();
        self.events = None;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.coordinator_wake.notify_one();
        self.shared.fetcher_wake.notify_one();
        if let Some(task) = self.coordinator.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, task).await;
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.fetcher.abort();
        if let Some(task) = self.coordinator.take() {
            task.abort();
        }
    }
}

/// The shortest pause between retries of a lost coordinator, whatever `retry.backoff.ms` says.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

fn not_assigned(tp: &TopicPartition) -> Error {
    Error::Config(format!("{}-{} is not assigned to this consumer", tp.0, tp.1))
}

async fn commit(shared: &Shared, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let conn = shared.coordinator().await?;
    let member = shared.member();
    let r = protocol::commit_offsets(&conn, &member, offsets, shared.config.request_timeout).await;
    if let Err(e) = &r {
        if protocol::is_coordinator_error(e) {
            shared.forget_coordinator().await;
        }
    }
    r
}
