//! The coordinator task: group membership for `subscribe`.
//!
//! It finds the coordinator, joins (retrying MEMBER_ID_REQUIRED), assigns as leader with the
//! assignor the coordinator chose, syncs, and heartbeats every `heartbeat.interval.ms`. Errors
//! that end the generation send it back to join: REBALANCE_IN_PROGRESS keeps the partitions
//! (they are revoked before the join as the protocol requires), ILLEGAL_GENERATION and
//! UNKNOWN_MEMBER_ID lose them (and the latter resets the member id).
//!
//! Changes to the assignment are handed to the application thread as [`GroupEvent`]s, which
//! `poll` applies (rebalance callbacks, commit on revoke); revocations wait for `poll` to
//! acknowledge them, as Kafka's consumer runs them inside `poll`.
//!
//! Each join resolves the subscription against metadata (a pattern becomes the topics matching
//! it) and remembers each topic's partition count. Every `metadata.max.age.ms` the task resolves
//! it again; a different result (a matching topic created or deleted, a subscribed topic created
//! or grown) sends it back to join, so the leader reassigns. So does a new subscription.
//!
//! | protocol    | before JoinGroup  | after SyncGroup                                            |
//! |-------------|-------------------|------------------------------------------------------------|
//! | eager       | revoke everything | assign everything received                                 |
//! | cooperative | keep everything   | revoke owned-but-not-assigned, assign the new; rejoin if anything was revoked |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::assignor::wire::{cooperative_sticky_user_data, Assignment, Subscription};
use super::assignor::{common_protocol, Assignor, MemberSubscription, RebalanceProtocol};
use super::protocol::{self, codes, Member};
use super::state::{Shared, TopicPartition};
use crate::error::{Error, Result};

/// A change of assignment for `poll` to apply.
#[derive(Debug)]
pub(crate) enum GroupEvent {
    /// Newly assigned partitions.
    Assigned(Vec<TopicPartition>),
    /// Partitions to give up: committed first unless `lost`; `done` once applied. `lost` turns
    /// true if `poll` did not apply it within `max.poll.interval.ms` (the member left meanwhile).
    Revoked { partitions: Vec<TopicPartition>, lost: Arc<AtomicBool>, done: oneshot::Sender<()> },
    /// The member cannot continue (fenced static member, unrecoverable error).
    Fatal(Error),
}

pub(crate) struct Coordinator {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<GroupEvent>,
    assignors: Vec<Box<dyn Assignor>>,
    protocol: RebalanceProtocol,
    owned: BTreeSet<TopicPartition>,
    rejoin: bool,
    /// The subscription as resolved at the last join: topic -> partition count.
    resolved: BTreeMap<String, i32>,
    /// When to resolve the subscription again.
    next_metadata_check: Instant,
}

impl Coordinator {
    pub fn new(shared: Arc<Shared>, events: mpsc::UnboundedSender<GroupEvent>) -> Result<Self> {
        let assignors = shared.config.assignors()?;
        let refs: Vec<&dyn Assignor> = assignors.iter().map(|a| a.as_ref()).collect();
        let protocol = common_protocol(&refs).unwrap_or(RebalanceProtocol::Eager);
        Ok(Self {
            shared,
            events,
            assignors,
            protocol,
            owned: BTreeSet::new(),
            rejoin: true,
            resolved: BTreeMap::new(),
            next_metadata_check: Instant::now(),
        })
    }

    fn set_member(&self, f: impl FnOnce(&mut Member)) {
        f(&mut self.shared.member.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Hand a revocation to `poll` and wait until it has been applied (or the consumer closed).
    async fn revoke(&mut self, partitions: Vec<TopicPartition>, lost: bool) {
        if partitions.is_empty() {
            return;
        }
        for tp in &partitions {
            self.owned.remove(tp);
        }
        let (done, wait) = oneshot::channel();
        let lost = Arc::new(AtomicBool::new(lost));
        if self.events.send(GroupEvent::Revoked { partitions, lost: lost.clone(), done }).is_ok() {
            self.shared.poll_wake.notify_one();
            if tokio::time::timeout(self.shared.config.max_poll_interval, wait).await.is_err() {
                // Not applied in time: the member leaves for the poll timeout, so they are lost.
                lost.store(true, Ordering::Release);
            }
        }
    }

    /// Lose everything and forget the generation (and the member id if asked).
    async fn lose_all(&mut self, reset_member_id: bool) {
        self.set_member(|m| {
            m.generation = -1;
            if reset_member_id {
                m.member_id.clear();
            }
        });
        let all: Vec<_> = self.owned.iter().cloned().collect();
        self.revoke(all, true).await;
        self.rejoin = true;
    }

    fn poll_expired(&self) -> bool {
        let last = *self.shared.last_poll.lock().unwrap_or_else(|e| e.into_inner());
        last.elapsed() > self.shared.config.max_poll_interval
    }

    pub async fn run(mut self) {
        let config = self.shared.config.clone();
        let mut next_heartbeat = Instant::now();
        loop {
            if self.shared.is_closed() {
                break;
            }
            if self.poll_expired() {
                if !self.shared.member().member_id.is_empty() {
                    tracing::warn!(
                        "poll was not called within max.poll.interval.ms={}; leaving the group",
                        config.max_poll_interval.as_millis()
                    );
                    self.leave("consumer poll timeout has expired").await;
                    self.lose_all(true).await;
                }
                // Wait for the application to poll again.
                let _ = tokio::time::timeout(config.heartbeat_interval, self.shared.coordinator_wake.notified()).await;
                continue;
            }
            let conn = match self.shared.coordinator().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "finding the group coordinator failed; retrying");
                    tokio::time::sleep(config.retry_backoff).await;
                    continue;
                }
            };
            if self.shared.subscription_changed.load(Ordering::Acquire) {
                self.rejoin = true;
            }
            if self.rejoin {
                match self.join(&conn).await {
                    Ok(()) => next_heartbeat = Instant::now() + config.heartbeat_interval,
                    Err(e) => self.on_error(e).await,
                }
                continue;
            }
            if Instant::now() >= self.next_metadata_check {
                self.next_metadata_check = Instant::now() + metadata_interval(&config);
                match self.resolve().await {
                    Ok(now) if now != self.resolved => {
                        tracing::debug!(before = ?self.resolved, after = ?now, "subscribed topics changed; rejoining");
                        self.rejoin = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "refreshing metadata for the subscription failed"),
                }
            }
            let wait = next_heartbeat.min(self.next_metadata_check).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                let _ = tokio::time::timeout(wait, self.shared.coordinator_wake.notified()).await;
                continue;
            }
            if Instant::now() < next_heartbeat {
                // The metadata check is due, not the heartbeat.
                continue;
            }
            next_heartbeat = Instant::now() + config.heartbeat_interval;
            if let Err(e) = protocol::heartbeat(&conn, &self.shared.member(), config.request_timeout).await {
                self.on_error(e).await;
            }
        }
        if !self.shared.member().member_id.is_empty() {
            self.leave("the consumer is being closed").await;
        }
    }

    async fn leave(&self, reason: &str) {
        let member = self.shared.member();
        if let Ok(conn) = self.shared.coordinator().await {
            if let Err(e) = protocol::leave_group(&conn, &member, reason, self.shared.config.request_timeout).await {
                tracing::warn!(error = %e, "LeaveGroup failed; the group will notice when the session times out");
            }
        }
        self.set_member(|m| {
            m.member_id.clear();
            m.generation = -1;
        });
    }

    async fn on_error(&mut self, e: Error) {
        match e.code() {
            Some(codes::REBALANCE_IN_PROGRESS) => self.rejoin = true,
            Some(codes::ILLEGAL_GENERATION) => self.lose_all(false).await,
            Some(codes::UNKNOWN_MEMBER_ID) => self.lose_all(true).await,
            Some(codes::FENCED_INSTANCE_ID) => {
                let _ = self.events.send(GroupEvent::Fatal(e));
                self.shared.poll_wake.notify_one();
                self.shared.closed.store(true, Ordering::Release);
            }
            _ if protocol::is_coordinator_error(&e) => {
                tracing::debug!(error = %e, "lost the group coordinator; looking it up again");
                self.shared.forget_coordinator().await;
                tokio::time::sleep(self.shared.config.retry_backoff).await;
            }
            _ => {
                tracing::warn!(error = %e, "group request failed; retrying");
                tokio::time::sleep(self.shared.config.retry_backoff).await;
            }
        }
    }

    /// One JoinGroup + SyncGroup round, applying the assignment.
    async fn join(&mut self, conn: &crate::client::Connection) -> Result<()> {
        let config = self.shared.config.clone();
        if self.protocol == RebalanceProtocol::Eager {
            let all: Vec<_> = self.owned.iter().cloned().collect();
            self.revoke(all, false).await;
            if self.poll_expired() {
                // The revocation waited for a poll that never came: leave instead (run loop).
                return Ok(());
            }
        }
        self.shared.subscription_changed.store(false, Ordering::Release);
        let resolved = self.resolve().await?;
        let topics = if self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            resolved.keys().cloned().collect()
        } else {
            self.shared.subscription.lock().unwrap_or_else(|e| e.into_inner()).clone()
        };
        let member = self.shared.member();
        let generation = Some(member.generation).filter(|&g| g >= 0);
        let mut protocols = Vec::new();
        for a in &self.assignors {
            let mut sub = Subscription::new(topics.clone());
            sub.owned_partitions = self.owned.iter().cloned().collect();
            sub.generation_id = generation;
            if a.name() == "cooperative-sticky" {
                sub.user_data = Some(cooperative_sticky_user_data(generation));
            } else {
                sub.user_data = a.subscription_user_data(generation);
            }
            protocols.push((a.name().to_string(), sub.encode()?));
        }
        let joined =
            protocol::join_group(conn, &member, config.session_timeout, config.max_poll_interval, &protocols).await;
        let joined = joined?;
        self.set_member(|m| {
            m.member_id = joined.member_id.clone();
            m.generation = joined.generation;
        });
        let member = self.shared.member();
        let assignments = if joined.leader == joined.member_id { self.assign(&joined).await? } else { Vec::new() };
        let bytes = protocol::sync_group(conn, &member, &joined.protocol, assignments, config.request_timeout).await?;
        self.resolved = resolved;
        self.next_metadata_check = Instant::now() + metadata_interval(&config);
        let assignment = Assignment::decode(bytes)?;
        if let Some(a) = self.assignors.iter().find(|a| a.name() == joined.protocol) {
            a.on_assignment(&assignment, joined.generation);
        }
        let new: BTreeSet<TopicPartition> = assignment.partitions.into_iter().collect();
        let revoked: Vec<_> = self.owned.difference(&new).cloned().collect();
        let added: Vec<_> = new.difference(&self.owned).cloned().collect();
        let had_revocations = !revoked.is_empty();
        self.revoke(revoked, false).await;
        tracing::debug!(generation = joined.generation, ?added, "joined the group");
        self.owned.extend(added.iter().cloned());
        let _ = self.events.send(GroupEvent::Assigned(added));
        self.shared.poll_wake.notify_one();
        // Cooperative: partitions revoked this round go to their new owner in the next one.
        self.rejoin = self.protocol == RebalanceProtocol::Cooperative && had_revocations;
        Ok(())
    }

    /// The subscription against current metadata: the topics it stands for that exist, with
    /// their partition counts (a pattern: every matching topic; a list: those of its topics that
    /// exist).
    async fn resolve(&self) -> Result<BTreeMap<String, i32>> {
        let pattern = self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(pattern) = pattern {
            let md = self.shared.client.metadata(None, false).await?;
            return Ok(pattern.resolve(&md, self.shared.config.exclude_internal_topics));
        }
        let topics = self.shared.subscription.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let md = self.shared.client.metadata(Some(&topics), false).await?;
        Ok(md
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && topics.contains(&t.name))
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect())
    }

    /// The leader's work: run the chosen assignor over every member's subscription.
    async fn assign(&self, joined: &protocol::Joined) -> Result<Vec<(String, Bytes)>> {
        let assignor =
            self.assignors.iter().find(|a| a.name() == joined.protocol).ok_or_else(|| {
                Error::Protocol(format!("the coordinator chose unknown assignor '{}'", joined.protocol))
            })?;
        let mut members = Vec::new();
        for (id, instance, metadata) in &joined.members {
            let sub = Subscription::decode(metadata.clone())?;
            members.push(MemberSubscription::from_subscription(id.clone(), instance.clone(), &sub));
        }
        let topics: Vec<String> =
            members.iter().flat_map(|m| m.topics.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        let md = self.shared.client.metadata(Some(&topics), false).await?;
        let counts: BTreeMap<String, i32> = md
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let out = assignor.assign_with_data(&members, &counts);
        let mut encoded = Vec::new();
        for (member, assignment) in out {
            encoded.push((member, assignment.encode()?));
        }
        Ok(encoded)
    }
}

/// How often the subscription is resolved again: `metadata.max.age.ms`, at least 1 ms.
fn metadata_interval(config: &super::config::ConsumerConfig) -> Duration {
    config.metadata_max_age.max(Duration::from_millis(1))
}

/// How long `close` waits for the coordinator task to leave the group.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
