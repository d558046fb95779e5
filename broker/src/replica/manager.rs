//! The replica manager: this broker's role for every partition, following the cluster image;
//! the leader's bookkeeping of its followers (high watermark, ISR changes); the checks Produce,
//! Fetch and the other partition APIs make in a cluster.
//!
//! One mutex guards the roles; every section under it is short and does no I/O except the
//! leader's high-watermark store (an atomic) and, on a role change, the epoch checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::fetcher::Fetchers;
use super::partition::{Leading, Role};
use crate::cluster::command::{Command, Reply};
use crate::cluster::image::ClusterImage;
use crate::log::Log;
use crate::server::BrokerState;

/// Kafka error codes of the partition checks.
pub mod codes {
    /// NOT_LEADER_OR_FOLLOWER.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// REQUEST_TIMED_OUT.
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// NOT_ENOUGH_REPLICAS.
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    /// FENCED_LEADER_EPOCH.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
}

type Key = (String, i32);

/// A follower's fetch of one partition, as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    /// The follower's broker id.
    pub replica: i32,
    /// The leader epoch it believes in (-1: unknown).
    pub current_epoch: i32,
    /// Where it fetches from: its log end.
    pub offset: i64,
}

#[derive(Debug)]
struct Entry {
    role: Role,
    /// Woken whenever this partition's high watermark moves or its leadership changes.
    changed: Arc<Notify>,
}

/// This broker's replicas.
#[derive(Debug)]
pub struct ReplicaManager {
    me: i32,
    parts: Mutex<HashMap<Key, Entry>>,
    /// Bumped whenever this broker starts or stops leading a partition (coordinators follow
    /// the leadership of their internal topics' partitions).
    leadership: tokio::sync::watch::Sender<u64>,
    fetchers: Fetchers,
    started: Instant,
}

impl ReplicaManager {
    /// The replica manager of broker `me`.
    pub fn new(me: i32) -> Self {
        let (leadership, _) = tokio::sync::watch::channel(0);
        Self { me, parts: Mutex::default(), leadership, fetchers: Fetchers::default(), started: Instant::now() }
    }

    /// Watch leadership changes (the value counts them).
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<u64> {
        self.leadership.subscribe()
    }

    /// The leader epoch, if this broker leads the partition.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> Option<i32> {
        match self.lock().get(&(topic.to_string(), partition)).map(|e| &e.role) {
            Some(Role::Leader(l)) => Some(l.epoch),
            _ => None,
        }
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This broker's role for a partition.
    pub fn role(&self, topic: &str, partition: i32) -> Role {
        self.lock().get(&(topic.to_string(), partition)).map(|e| e.role.clone()).unwrap_or(Role::None)
    }

    /// Follow the image: become leader or follower of each partition this broker holds.
    /// Blocking (writes epoch checkpoints, truncates logs); the local topics must already
    /// match the image.
    pub fn apply_image(&self, state: &Arc<BrokerState>, image: &ClusterImage) {
        let now = self.now_ms();
        let mut seen = std::collections::HashSet::new();
        let mut changed = false;
        for (name, t) in &image.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let key = (name.clone(), i as i32);
                let Some(log) = state.topics.partition(name, i as i32) else { continue };
                if !p.replicas.contains(&self.me) {
                    continue;
                }
                seen.insert(key.clone());
                log.set_replicated(true);
                let mut parts = self.lock();
                let entry = parts
                    .entry(key.clone())
                    .or_insert_with(|| Entry { role: Role::None, changed: Arc::new(Notify::new()) });
                if p.leader == self.me {
                    match &mut entry.role {
                        Role::Leader(l) if l.epoch == p.leader_epoch => l.update(self.me, p, now),
                        _ => {
                            if let Err(e) = log.begin_epoch(p.leader_epoch) {
                                tracing::error!(topic = %name, partition = i, error = %e, "cannot become leader");
                                continue;
                            }
                            tracing::info!(topic = %name, partition = i, epoch = p.leader_epoch, "leader");
                            entry.role = Role::Leader(Leading::new(self.me, p, log.log_end_offset(), now));
                            entry.changed.notify_waiters();
                            changed = true;
                            drop(parts);
                            self.fetchers.remove(&key);
                            parts = self.lock();
                        }
                    }
                    if let Some(entry) = parts.get_mut(&key) {
                        self.recompute(state, entry, &log);
                    }
                } else {
                    let role = Role::Follower { leader: p.leader, epoch: p.leader_epoch };
                    if entry.role != role {
                        tracing::info!(topic = %name, partition = i, leader = p.leader, epoch = p.leader_epoch, "follower");
                        changed |= matches!(entry.role, Role::Leader(_));
                        entry.role = role;
                        entry.changed.notify_waiters();
                        drop(parts);
                        match state.config.cluster.voters.get(&p.leader) {
                            Some(addr) if p.leader >= 0 => {
                                self.fetchers.assign(state, p.leader, addr, key.clone(), p.leader_epoch)
                            }
                            _ => self.fetchers.remove(&key),
                        }
                    }
                }
            }
        }
        let gone: Vec<Key> = self.lock().keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            if let Some(e) = self.lock().remove(&key) {
                changed |= matches!(e.role, Role::Leader(_));
                e.changed.notify_waiters();
            }
            self.fetchers.remove(&key);
        }
        if changed {
            self.leadership.send_modify(|n| *n += 1);
        }
    }

    /// Recompute a leader's high watermark; wake waiters if it moved.
    fn recompute(&self, state: &BrokerState, entry: &mut Entry, log: &Log) {
        let Role::Leader(l) = &entry.role else { return };
        let hw = l.high_watermark(self.me, log.end_offset_hint(), log.high_watermark());
        if log.set_high_watermark(hw) {
            entry.changed.notify_waiters();
            state.data_arrived.notify_waiters();
        }
    }

    /// Check that this broker leads the partition, at `current_epoch` if the client gave one
    /// (-1: any). Returns the leader epoch.
    pub fn check_leader(&self, topic: &str, partition: i32, current_epoch: i32) -> Result<i32, i16> {
        let parts = self.lock();
        match parts.get(&(topic.to_string(), partition)).map(|e| &e.role) {
            Some(Role::Leader(l)) => epoch_check(l.epoch, current_epoch).map(|_| l.epoch),
            Some(Role::Follower { epoch, .. }) if current_epoch >= 0 && current_epoch > *epoch => {
                Err(codes::UNKNOWN_LEADER_EPOCH)
            }
            Some(Role::Follower { epoch, .. }) if current_epoch >= 0 && current_epoch < *epoch => {
                Err(codes::FENCED_LEADER_EPOCH)
            }
            _ => Err(codes::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// Before a produce: this broker must lead, and with acks=all the ISR must hold
    /// `min.insync.replicas`.
    pub fn check_produce(&self, topic: &str, partition: i32, acks: i16, log: &Log) -> Result<(), i16> {
        let parts = self.lock();
        match parts.get(&(topic.to_string(), partition)).map(|e| &e.role) {
            Some(Role::Leader(l)) => {
                if acks == -1 && (l.isr.len() as i64) < log.config().min_insync_replicas {
                    return Err(codes::NOT_ENOUGH_REPLICAS);
                }
                Ok(())
            }
            _ => Err(codes::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// After this leader appended: its own log end may move the high watermark (alone in the
    /// ISR, it does).
    pub fn after_append(&self, state: &BrokerState, topic: &str, partition: i32, log: &Log) {
        let mut parts = self.lock();
        if let Some(entry) = parts.get_mut(&(topic.to_string(), partition)) {
            self.recompute(state, entry, log);
        }
    }

    /// An acks=all write made here under leader `epoch` and ending at `end` (a coordinator's
    /// record, a transaction marker): move the high watermark for it, then wait until the ISR
    /// has it, at most `timeout`. Err: the Kafka error code (not leader any more, timed out,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    #[allow(clippy::too_many_arguments)]
    pub async fn replicate(
        &self,
        state: &BrokerState,
        topic: &str,
        partition: i32,
        log: &Log,
        end: i64,
        epoch: i32,
        timeout: Duration,
    ) -> Result<(), i16> {
        self.after_append(state, topic, partition, log);
        self.wait_replicated(topic, partition, log, end, epoch, timeout).await
    }

    /// Wait until the high watermark reaches `offset` (acks=all), at most `timeout`.
    pub async fn wait_replicated(
        &self,
        topic: &str,
        partition: i32,
        log: &Log,
        offset: i64,
        epoch: i32,
        timeout: Duration,
    ) -> Result<(), i16> {
        let key = (topic.to_string(), partition);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = {
                let parts = self.lock();
                let Some(entry) = parts.get(&key) else { return Err(codes::NOT_LEADER_OR_FOLLOWER) };
                match &entry.role {
                    Role::Leader(l) if l.epoch == epoch => {
                        if log.high_watermark() >= offset {
                            let min = log.config().min_insync_replicas;
                            return if (l.isr.len() as i64) < min {
                                Err(codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
                            } else {
                                Ok(())
                            };
                        }
                    }
                    _ => return Err(codes::NOT_LEADER_OR_FOLLOWER),
                }
                entry.changed.clone()
            };
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Checked again after registering, so a change in between is not missed.
            if log.high_watermark() >= offset {
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return Err(codes::REQUEST_TIMED_OUT),
            }
        }
    }

    /// A follower fetched `offset` of a partition this broker leads: record its progress,
    /// move the high watermark, and ask the controller to add it to the ISR if it caught up.
    pub fn on_follower_fetch(
        &self,
        state: &Arc<BrokerState>,
        topic: &str,
        partition: i32,
        fetch: FollowerFetch,
        log: &Log,
    ) -> Result<(), i16> {
        let FollowerFetch { replica, current_epoch, offset } = fetch;
        let now = self.now_ms();
        let lag = state.config.replica_lag_time_max.as_millis() as i64;
        let mut parts = self.lock();
        let Some(entry) = parts.get_mut(&(topic.to_string(), partition)) else {
            return Err(codes::NOT_LEADER_OR_FOLLOWER);
        };
        let Role::Leader(l) = &mut entry.role else { return Err(codes::NOT_LEADER_OR_FOLLOWER) };
        epoch_check(l.epoch, current_epoch)?;
        let Some(progress) = l.followers.get_mut(&replica) else { return Err(codes::NOT_LEADER_OR_FOLLOWER) };
        progress.fetched(offset, now, log.end_offset_hint());
        self.recompute(state, entry, log);
        let Role::Leader(l) = &mut entry.role else { unreachable!("checked above") };
        let joining = l.followers.get(&replica).is_some_and(|_| !l.isr.contains(&replica));
        if joining {
            if let Some(isr) = l.isr_change(self.me, now, lag, log.high_watermark()) {
                let (epoch, pe) = (l.epoch, l.partition_epoch);
                drop(parts);
                spawn_alter(state, topic, partition, epoch, pe, isr);
            }
        }
        Ok(())
    }

    /// Periodically: drop followers that stopped catching up from the ISRs this broker leads.
    pub async fn shrink_isrs(state: Arc<BrokerState>) {
        let lag = state.config.replica_lag_time_max;
        let every = (lag / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = state.shutdown.cancelled() => return,
            }
            let rm = &state.replicas;
            let now = rm.now_ms();
            let mut changes = Vec::new();
            {
                let mut parts = rm.lock();
                for ((topic, p), entry) in parts.iter_mut() {
                    let Role::Leader(l) = &mut entry.role else { continue };
                    let Some(log) = state.topics.partition(topic, *p) else { continue };
                    if let Some(isr) = l.isr_change(rm.me, now, lag.as_millis() as i64, log.high_watermark()) {
                        changes.push((topic.clone(), *p, l.epoch, l.partition_epoch, isr));
                    }
                }
            }
            for (topic, p, epoch, pe, isr) in changes {
                spawn_alter(&state, &topic, p, epoch, pe, isr);
            }
        }
    }

    /// Apply an ISR change the controller committed (before this broker's image shows it).
    fn committed(&self, state: &BrokerState, topic: &str, partition: i32, info: &crate::cluster::image::PartitionInfo) {
        let now = self.now_ms();
        let mut parts = self.lock();
        let Some(entry) = parts.get_mut(&(topic.to_string(), partition)) else { return };
        if let Role::Leader(l) = &mut entry.role {
            if l.epoch == info.leader_epoch {
                l.update(self.me, info, now);
            }
        }
        if let Some(log) = state.topics.partition(topic, partition) {
            self.recompute(state, entry, &log);
        }
    }

    /// A proposal failed: let the next check propose again.
    fn clear_pending(&self, topic: &str, partition: i32, epoch: i32) {
        let mut parts = self.lock();
        if let Some(Role::Leader(l)) = parts.get_mut(&(topic.to_string(), partition)).map(|e| &mut e.role) {
            if l.epoch == epoch {
                l.pending_isr = None;
            }
        }
    }
}

/// Compare a request's leader epoch with the partition's.
fn epoch_check(ours: i32, theirs: i32) -> Result<(), i16> {
    match theirs {
        t if t < 0 || t == ours => Ok(()),
        t if t < ours => Err(codes::FENCED_LEADER_EPOCH),
        _ => Err(codes::UNKNOWN_LEADER_EPOCH),
    }
}

/// Send an ISR change to the controller in the background.
fn spawn_alter(state: &Arc<BrokerState>, topic: &str, partition: i32, epoch: i32, partition_epoch: i32, isr: Vec<i32>) {
    let (st, topic) = (state.clone(), topic.to_string());
    tracing::info!(topic = %topic, partition, ?isr, "asking the controller to change the ISR");
    tokio::spawn(async move {
        let cmd = Command::AlterPartition {
            topic: topic.clone(),
            partition,
            leader: st.replicas.me,
            leader_epoch: epoch,
            partition_epoch,
            isr,
        };
        match crate::server::cluster::propose(&st, cmd).await {
            Ok(Reply::Partition(info)) => st.replicas.committed(&st, &topic, partition, &info),
            Ok(_) => st.replicas.clear_pending(&topic, partition, epoch),
            Err((code, e)) => {
                tracing::info!(topic = %topic, partition, code, error = %e, "ISR change refused");
                st.replicas.clear_pending(&topic, partition, epoch);
            }
        }
    });
}
