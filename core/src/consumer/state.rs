//! What the consumer, its fetcher and its coordinator task share: the assigned partitions with
//! their positions, prefetched data not yet polled, and errors for `poll` to report.
//!
//! Every partition carries an `epoch` bumped whenever its position is set from outside the fetch
//! path (assign, seek, reset); a fetch or offset lookup started under an older epoch is dropped
//! when it completes, so a `seek` never races with data fetched for the old position.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::config::ConsumerConfig;
use super::pattern::TopicPattern;
use super::protocol::Member;
use crate::client::{Client, Connection};
use crate::error::Error;
use crate::records::ConsumerRecord;

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// One assigned partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartState {
    /// The next offset `poll` returns; `None` until looked up (committed offset or reset).
    pub position: Option<i64>,
    /// Bumped when the position is set from outside the fetch path.
    pub epoch: u64,
    /// Paused by the application.
    pub paused: bool,
    /// A fetch or an offset lookup is in flight.
    pub busy: bool,
    /// Skip the committed offset and apply `auto.offset.reset` (after OFFSET_OUT_OF_RANGE).
    pub needs_reset: bool,
    /// Lookup failed for good (`auto.offset.reset=none`); waits for a `seek`.
    pub failed: bool,
}

/// Records fetched for one partition, not yet polled.
#[derive(Debug)]
pub(crate) struct Completed {
    pub tp: TopicPartition,
    pub topic: Arc<str>,
    pub epoch: u64,
    pub records: VecDeque<ConsumerRecord>,
    pub bytes: usize,
    /// Where the position goes once every record is taken: past the last batch fetched, even
    /// if it was skipped (a control batch, an aborted transaction).
    pub next_offset: i64,
}

/// State behind the shared lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub parts: BTreeMap<TopicPartition, PartState>,
    pub buffered: VecDeque<Completed>,
    pub buffered_bytes: usize,
    pub errors: VecDeque<Error>,
}

impl State {
    /// Drop buffered data of partitions that match `f`.
    pub fn drop_buffered(&mut self, f: impl Fn(&TopicPartition) -> bool) {
        let mut freed = 0;
        self.buffered.retain(|c| {
            let keep = !f(&c.tp);
            if !keep {
                freed += c.bytes;
            }
            keep
        });
        self.buffered_bytes -= freed;
    }

    /// Set a partition's position from outside the fetch path.
    pub fn set_position(&mut self, tp: &TopicPartition, offset: Option<i64>) -> bool {
        let Some(p) = self.parts.get_mut(tp) else { return false };
        p.position = offset;
        p.epoch += 1;
        // A fetch or lookup in flight finishes under the old epoch and is dropped.
        p.busy = false;
        p.needs_reset = false;
        p.failed = false;
        let tp = tp.clone();
        self.drop_buffered(|t| *t == tp);
        true
    }

    /// Take up to `max` records in offset order per partition, advancing positions. Data that no
    /// longer matches a partition (revoked, seeked, paused) is dropped or left in place.
    pub fn take(&mut self, max: usize) -> Vec<(Arc<str>, i32, ConsumerRecord)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.buffered.len() && out.len() < max {
            let c = &mut self.buffered[i];
            let Some(p) = self.parts.get_mut(&c.tp) else {
                let c = self.buffered.remove(i).expect("index checked");
                self.buffered_bytes -= c.bytes;
                continue;
            };
            if p.paused {
                i += 1;
                continue;
            }
            if p.epoch != c.epoch || c.records.front().map(|r| r.offset) < p.position {
                // Skip records before the position (a fetch starts at a batch boundary).
                while c.records.front().is_some_and(|r| Some(r.offset) < p.position) && p.epoch == c.epoch {
                    c.records.pop_front();
                }
            }
            if p.epoch == c.epoch {
                while out.len() < max {
                    let Some(r) = c.records.pop_front() else { break };
                    p.position = Some(r.offset + 1);
                    out.push((c.topic.clone(), c.tp.1, r));
                }
                if c.records.is_empty() && p.position.is_some_and(|o| o < c.next_offset) {
                    p.position = Some(c.next_offset);
                }
            } else {
                c.records.clear();
            }
            if c.records.is_empty() {
                let c = self.buffered.remove(i).expect("index checked");
                self.buffered_bytes -= c.bytes;
            }
        }
        out
    }
}

/// Shared between the [`super::Consumer`], the fetcher task and the coordinator task.
pub(crate) struct Shared {
    pub config: ConsumerConfig,
    pub client: Client,
    pub state: Mutex<State>,
    /// Wakes the fetcher (new partitions, positions, freed memory).
    pub fetcher_wake: Notify,
    /// Wakes `poll` (data, errors, group events).
    pub poll_wake: Notify,
    /// Wakes the coordinator task (subscription change, poll after expiry, close).
    pub coordinator_wake: Notify,
    /// Set on close.
    pub closed: AtomicBool,
    /// When `poll` was last called.
    pub last_poll: Mutex<Instant>,
    /// Our identity in the group (generation -1 without one).
    pub member: Mutex<Member>,
    /// The coordinator connection, found lazily.
    pub coordinator: tokio::sync::Mutex<Option<Connection>>,
    /// Topics subscribed to (empty with manual assignment or a pattern).
    pub subscription: Mutex<Vec<String>>,
    /// The pattern subscribed to, instead of `subscription`.
    pub pattern: Mutex<Option<TopicPattern>>,
    /// Set when the subscription changes; the coordinator task rejoins.
    pub subscription_changed: AtomicBool,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn member(&self) -> Member {
        self.member.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The group coordinator's connection, looked up if not known or closed.
    pub async fn coordinator(&self) -> crate::Result<Connection> {
        let group =
            self.config.group_id.as_deref().ok_or_else(|| Error::Config("this operation needs a group.id".into()))?;
        let mut slot = self.coordinator.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let conn = super::protocol::find_coordinator(
            &self.client.live_broker().await?,
            group,
            &self.config.client_id,
            self.config.request_timeout,
        )
        .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forget the coordinator after an error saying it moved.
    pub async fn forget_coordinator(&self) {
        *self.coordinator.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64) -> ConsumerRecord {
        ConsumerRecord { offset, timestamp: 0, key: None, value: None, headers: vec![] }
    }

    fn completed(tp: &TopicPartition, epoch: u64, offsets: std::ops::Range<i64>) -> Completed {
        let next_offset = offsets.end;
        Completed {
            tp: tp.clone(),
            topic: tp.0.as_str().into(),
            epoch,
            records: offsets.map(rec).collect(),
            bytes: 10,
            next_offset,
        }
    }

    #[test]
    fn take_advances_positions_and_respects_pause_seek_and_revocation() {
        let a = ("t".to_string(), 0);
        let b = ("t".to_string(), 1);
        let mut s = State::default();
        s.parts.insert(a.clone(), PartState { position: Some(2), ..Default::default() });
        s.parts.insert(b.clone(), PartState { position: Some(0), paused: true, ..Default::default() });
        s.buffered.push_back(completed(&a, 0, 0..5));
        s.buffered.push_back(completed(&b, 0, 0..3));
        s.buffered_bytes = 20;
        // Records before the position are skipped; max bounds the batch.
        let got: Vec<i64> = s.take(2).iter().map(|r| r.2.offset).collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(s.parts[&a].position, Some(4));
        // Paused partitions keep their data.
        let got: Vec<i64> = s.take(10).iter().map(|r| r.2.offset).collect();
        assert_eq!(got, [4]);
        // Skipped batches after the last record (a commit marker at 5, aborted 6..8): the
        // position moves past them once the records are taken.
        s.buffered.push_front(Completed { next_offset: 9, ..completed(&a, 0, 5..5) });
        s.buffered.front_mut().unwrap().records.push_back(rec(4));
        s.parts.get_mut(&a).unwrap().position = Some(4);
        s.buffered_bytes += 10;
        assert_eq!(s.take(10).iter().map(|r| r.2.offset).collect::<Vec<_>>(), [4]);
        assert_eq!(s.parts[&a].position, Some(9));
        assert_eq!(s.buffered.len(), 1);
        s.parts.get_mut(&b).unwrap().paused = false;
        // A seek drops buffered data of the partition.
        assert!(s.set_position(&b, Some(1)));
        assert!(s.buffered.is_empty());
        assert_eq!(s.buffered_bytes, 0);
        // Data fetched under an older epoch is discarded.
        s.buffered.push_back(completed(&b, 0, 1..3));
        s.buffered_bytes = 10;
        assert!(s.take(10).is_empty());
        assert_eq!(s.buffered_bytes, 0);
        // Data of a revoked partition is dropped.
        s.buffered.push_back(completed(&a, 0, 5..7));
        s.buffered_bytes = 10;
        s.parts.remove(&a);
        assert!(s.take(10).is_empty());
        assert_eq!(s.buffered_bytes, 0);
    }
}
