//! The replication side of a partition log: the high watermark, the leader-epoch cache, appends
//! of batches a leader already stamped, and the truncations a follower needs.
//!
//! The replica manager drives these; the log only keeps the numbers consistent with its
//! contents and durable. Nothing here wakes waiting fetches: the caller notifies.

use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{
    checkpoint, segment, txn, validate, AppendInfo, Inner, Log, LogError, Segment, HIGH_WATERMARK_FILE,
    LEADER_EPOCH_FILE, LOG_START_FILE, RECOVERY_POINT_FILE,
};
use crate::log::producer_state::{AppendOrigin, ProducerState};
use crate::log::txn_index::TxnIndex;
use crate::log::{now_ms, snapshot};

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Up to the log end offset: followers, and coordinators replaying their topics.
    LogEnd,
    /// Below the high watermark: read_uncommitted consumers.
    HighWatermark,
    /// Below min(last stable offset, high watermark): read_committed consumers.
    Committed,
}

/// Kafka's OffsetForLeaderEpoch answer (`LeaderEpochFileCache.endOffsetFor`, KIP-101/KIP-279):
/// `(epoch, end offset)` for `requested`, given the cache `epochs` ((epoch, start offset),
/// ascending in both) of a log ending at `log_end`.
///
/// | case                                              | answer                                   |
/// |---------------------------------------------------|------------------------------------------|
/// | `requested` is -1 (undefined), or the cache empty | (-1, -1)                                 |
/// | `requested` == latest cached epoch                | (requested, `log_end`)                   |
/// | `requested` > latest cached epoch                 | (-1, -1)                                 |
/// | a cached epoch <= `requested` exists              | (largest such epoch, start of the next)  |
/// | `requested` < earliest cached epoch               | (requested, start of the earliest)       |
///
/// The last row is Kafka's: the data of older epochs was deleted, and the follower must
/// truncate to no further than where the leader's cache begins.
pub fn end_offset_for(epochs: &[(i32, i64)], requested: i32, log_end: i64) -> (i32, i64) {
    let Some(&(latest, _)) = epochs.last() else { return (-1, -1) };
    if requested < 0 || requested > latest {
        return (-1, -1);
    }
    if requested == latest {
        return (requested, log_end);
    }
    // The first entry of an epoch above `requested` exists, as `requested` < latest.
    let higher = epochs.partition_point(|&(e, _)| e <= requested);
    let next_start = epochs[higher].1;
    match higher.checked_sub(1) {
        Some(floor) => (epochs[floor].0, next_start),
        None => (requested, next_start),
    }
}

/// The epoch cache of a log opening with `[log_start, next_offset)`. A new log starts in epoch 0;
/// a cache emptied by [`Log::truncate_fully_and_start_at`] stays empty; entries past the end (a
/// torn tail) go, from the file too.
pub(super) fn load_epochs(dir: &Path, log_start: i64, next_offset: i64) -> io::Result<Vec<(i32, i64)>> {
    let (epochs, rewrite) = match checkpoint::read_epochs(&dir.join(LEADER_EPOCH_FILE))? {
        None => (vec![(0, log_start)], true),
        Some(mut epochs) => {
            let n = epochs.len();
            epochs.retain(|&(_, start)| start <= next_offset);
            let changed = epochs.len() != n;
            (epochs, changed)
        }
    };
    if rewrite {
        checkpoint::write_epochs(&dir.join(LEADER_EPOCH_FILE), &epochs)?;
    }
    Ok(epochs)
}

/// The checkpointed high watermark (if any) and the one a log opening with
/// `[log_start, next_offset)` starts with: the checkpoint clamped to that range. Without a
/// checkpoint nothing is known to be replicated: the log start, so that a replicated log never
/// exposes records a crash may have left unreplicated.
pub(super) fn load_high_watermark(dir: &Path, log_start: i64, next_offset: i64) -> io::Result<(Option<i64>, i64)> {
    let stored = checkpoint::read_i64(&dir.join(HIGH_WATERMARK_FILE))?;
    Ok((stored, stored.unwrap_or(log_start).clamp(log_start, next_offset)))
}

/// Record that `epoch` starts at `start`, as Kafka's `LeaderEpochFileCache.assign` does: entries
/// of the same or a later epoch, or starting at or after `start`, conflict with it and go.
/// Returns whether the cache changed.
fn assign_epoch(epochs: &mut Vec<(i32, i64)>, epoch: i32, start: i64) -> bool {
    if epochs.last().is_some_and(|&(e, s)| e == epoch && s <= start) {
        return false;
    }
    epochs.retain(|&(e, s)| e < epoch && s < start);
    epochs.push((epoch, start));
    true
}

impl Log {
    /// Switch between a high watermark the replica code manages (`true`) and one that follows
    /// the log end offset (`false`, the default: a single-node log, where everything appended
    /// is committed).
    ///
    /// Turned on, the high watermark starts where it is: the end if the log took appends since
    /// it opened, else the value checkpointed in `high-watermark` (the log start if there was
    /// none). Turn it on right after [`Log::open`], before the log serves reads. Turned off, the
    /// high watermark jumps to the end.
    pub fn set_replicated(&self, replicated: bool) {
        let g = self.lock();
        self.replicated.store(replicated, Ordering::Release);
        if !replicated {
            self.high_watermark.store(g.next_offset, Ordering::Release);
        }
    }

    /// Whether the high watermark is managed ([`Log::set_replicated`]).
    pub fn is_replicated(&self) -> bool {
        self.replicated.load(Ordering::Acquire)
    }

    /// The high watermark: consumers read below it. Does not wait for the log lock.
    pub fn high_watermark(&self) -> i64 {
        if self.is_replicated() {
            self.high_watermark.load(Ordering::Acquire)
        } else {
            self.end_offset.load(Ordering::Acquire)
        }
    }

    /// Set the high watermark to `hw` clamped to `[log start, log end]` (a leader: the offset
    /// its in-sync replicas reached; a follower: its leader's, as fetched). Returns whether it
    /// moved. It only moves forward here: a lower value leaves it where it is. Only truncation
    /// ([`Log::truncate_to`], [`Log::truncate_fully_and_start_at`]) lowers it. Does nothing on
    /// an unreplicated log, whose high watermark follows its end. Wakes no waiting fetch.
    pub fn set_high_watermark(&self, hw: i64) -> bool {
        let g = self.lock();
        if !self.is_replicated() {
            return false;
        }
        let hw = hw.clamp(g.log_start_offset, g.next_offset);
        if hw <= self.high_watermark.load(Ordering::Acquire) {
            return false;
        }
        self.high_watermark.store(hw, Ordering::Release);
        true
    }

    /// The high watermark of a locked log.
    pub(super) fn hw_locked(&self, g: &Inner) -> i64 {
        if self.is_replicated() {
            self.high_watermark.load(Ordering::Acquire)
        } else {
            g.next_offset
        }
    }

    /// With the log lock held, after the log end offset moved to `end`: an unreplicated log's
    /// high watermark follows it.
    pub(super) fn follow_end(&self, end: i64) {
        if !self.is_replicated() {
            self.high_watermark.store(end, Ordering::Release);
        }
    }

    /// With the flush lock held: write `high-watermark` if the high watermark changed since the
    /// last time.
    pub(super) fn checkpoint_high_watermark(&self) -> io::Result<()> {
        let hw = self.high_watermark();
        if hw == self.hw_checkpointed.load(Ordering::Acquire) {
            return Ok(());
        }
        checkpoint::write_i64(&self.dir.join(HIGH_WATERMARK_FILE), hw)?;
        self.hw_checkpointed.store(hw, Ordering::Release);
        Ok(())
    }

    /// This replica becomes leader in `epoch`: batches appended from now on are stamped with it,
    /// and the cache records that it starts at the log end offset (Kafka's
    /// `maybeAssignEpochStartOffset`), durably. `epoch` equal to the latest cached epoch
    /// changes nothing; an older one is refused with [`LogError::StaleEpoch`].
    pub fn begin_epoch(&self, epoch: i32) -> Result<(), LogError> {
        let mut g = self.lock();
        self.check_writable()?;
        if let Some(&(latest, _)) = g.epochs.last() {
            if epoch < latest {
                return Err(LogError::StaleEpoch { epoch, latest });
            }
            if epoch == latest {
                return Ok(());
            }
        }
        let end = g.next_offset;
        assign_epoch(&mut g.epochs, epoch, end);
        self.store_epochs(&g)?;
        Ok(())
    }

    /// Persist the epoch cache of a locked log and publish its latest epoch.
    fn store_epochs(&self, g: &Inner) -> io::Result<()> {
        checkpoint::write_epochs(&self.dir.join(LEADER_EPOCH_FILE), &g.epochs)?;
        self.leader_epoch.store(g.leader_epoch(), Ordering::Release);
        Ok(())
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` for `epoch`; see [`end_offset_for`] for the
    /// cases.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let g = self.lock();
        end_offset_for(&g.epochs, epoch, g.next_offset)
    }

    /// The latest epoch in the cache (the epoch this replica leads in, after
    /// [`Log::begin_epoch`]); `None` once truncation emptied the cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().epochs.last().map(|e| e.0)
    }

    /// The epoch of the batch that ends at the log end offset (what a follower sends as
    /// `LastFetchedEpoch`): the latest cache entry starting below the end. Differs from
    /// [`Log::latest_epoch`] only on a leader that has written nothing in its epoch yet.
    pub fn last_fetched_epoch(&self) -> Option<i32> {
        let g = self.lock();
        g.epochs.iter().rev().find(|&&(_, start)| start < g.next_offset).map(|e| e.0)
    }

    /// The leader-epoch cache: (epoch, start offset), ascending.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.lock().epochs.clone()
    }

    /// Append batches fetched from the leader, stored byte for byte: their offsets, leader
    /// epochs and timestamps are the leader's. `records` holds whole batches.
    ///
    /// Checked as [`validate::validate_replicated`] says; the first batch may not start below
    /// the log end offset, nor a batch below the end of the one before it
    /// ([`LogError::NonContiguous`]). A first batch above the end is taken (compaction on the
    /// leader leaves offset gaps), as Kafka does. A batch of a new leader epoch adds an entry
    /// to the epoch cache, durably, before the data is written. Producer state follows the
    /// batches without refusing any (see [`AppendOrigin::Replication`]); markers close
    /// transactions and index aborts as on the leader. Segments roll as for appends; the flush
    /// policy applies the same way (`flush_to`).
    pub fn append_replicated(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        // CRCs are checked before taking the lock, as for producer appends.
        let headers = validate::validate_replicated(records)?;
        let mut g = self.lock();
        self.check_writable()?;
        let inner = &mut *g;
        let base_offset = headers[0].1.base_offset;
        if base_offset < inner.next_offset {
            return Err(LogError::NonContiguous { expected: inner.next_offset, got: base_offset });
        }
        let mut epochs_changed = false;
        for (_, h) in &headers {
            if h.partition_leader_epoch >= 0 && inner.epochs.last().map(|e| e.0) != Some(h.partition_leader_epoch) {
                epochs_changed |= assign_epoch(&mut inner.epochs, h.partition_leader_epoch, h.base_offset);
            }
        }
        if epochs_changed {
            self.store_epochs(inner)?;
        }
        self.maybe_roll(inner, records.len() as u64, now_ms)?;
        let interval = inner.config.index_interval_bytes as u64;
        inner.active().append(&mut [IoSlice::new(records)], &headers, interval).map_err(|e| self.fail(e))?;
        let next = headers.last().expect("at least one batch").1.next_offset();
        inner.next_offset = next;
        let active_base = inner.active().base_offset();
        let mut messages = 0i64;
        for (at, h) in &headers {
            messages += h.record_count as i64;
            if h.producer_id >= 0 {
                let raw = &records[*at..*at + h.size];
                txn::apply_batch(
                    &self.dir,
                    active_base,
                    h,
                    raw,
                    &mut inner.producers,
                    &mut inner.aborted,
                    AppendOrigin::Replication,
                    now_ms,
                )
                .map_err(|e| self.fail(e))?;
            }
        }
        self.stable_offset.store(txn::stable(inner), Ordering::Release);
        self.end_offset.store(next, Ordering::Release);
        self.follow_end(next);
        inner.unflushed_messages += messages;
        let flush_to = (inner.unflushed_messages >= inner.config.flush_messages).then_some(next);
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: inner.log_start_offset,
            flush_to,
        })
    }

    /// Remove the batch holding `offset` and everything after it (recovery, a follower whose
    /// log diverged from its leader's). Epoch-cache entries starting at or after the new end go
    /// (durably), the high watermark and log start offset come down to the new end if above
    /// it, and producer state is rebuilt. An `offset` below the first segment's base offset
    /// empties the log as [`Log::truncate_fully_and_start_at`] does. Nothing happens at or
    /// after the end.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        // Held so that no flush in progress records a recovery point above the new end.
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        let mut g = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Deleted);
        }
        if offset >= g.next_offset {
            return Ok(());
        }
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange { offset, start: g.log_start_offset, end: g.next_offset });
        }
        let first_base = *g.segments.keys().next().expect("a log always has an active segment");
        if offset < first_base {
            return self.start_fresh(&mut g, offset).map_err(|e| LogError::Io(self.fail(e)));
        }
        let later: Vec<i64> = g.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for b in later {
            if g.segments.len() > 1 {
                if let Some(s) = g.segments.remove(&b) {
                    s.delete()?;
                }
            }
        }
        let active = g.active();
        active.truncate_to(offset)?;
        g.next_offset = g.active().next_offset();
        let next = g.next_offset;
        let n = g.epochs.len();
        g.epochs.retain(|&(_, start)| start < next);
        if g.epochs.len() != n {
            self.store_epochs(&g)?;
        }
        if g.log_start_offset > next {
            g.log_start_offset = next;
            checkpoint::write_i64(&self.dir.join(LOG_START_FILE), next)?;
        }
        txn::rebuild_after_truncate(&self.dir, &mut g, now_ms())?;
        self.stable_offset.store(txn::stable(&g), Ordering::Release);
        self.end_offset.store(next, Ordering::Release);
        self.high_watermark.fetch_min(next, Ordering::AcqRel);
        self.follow_end(next);
        self.flushed.fetch_min(next, Ordering::AcqRel);
        // What is appended from here on is not durable yet: an unclean open must re-check it.
        let recovery_point = self.dir.join(RECOVERY_POINT_FILE);
        if checkpoint::read_i64(&recovery_point)?.is_some_and(|rp| rp > next) {
            self.write_recovery_point(next)?;
        }
        Ok(())
    }

    /// Delete every segment and start an empty log at `offset`: log start = log end = high
    /// watermark = `offset` (a follower whose log end is below its leader's log start, or whose
    /// log lies wholly above where it must truncate; Kafka's `truncateFullyAndStartAt`). The
    /// epoch cache, producer state and aborted-transaction index are emptied.
    ///
    /// Crash-safe: the new log start and the emptied epoch cache are written first, then the
    /// snapshots and the segments go, oldest first, then the new segment is created. Whatever
    /// step a crash interrupts, the next open finds a consistent log: the old one with its start
    /// moved (clamped to what remains), a suffix of it, or the new empty one.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        let mut g = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Deleted);
        }
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange { offset, start: g.log_start_offset, end: g.next_offset });
        }
        self.start_fresh(&mut g, offset).map_err(|e| LogError::Io(self.fail(e)))
    }

    /// [`Log::truncate_fully_and_start_at`] with both locks held. A failure leaves memory and
    /// files apart: the caller fails the log, and the next open finds a consistent one.
    fn start_fresh(&self, g: &mut Inner, offset: i64) -> io::Result<()> {
        checkpoint::write_i64(&self.dir.join(LOG_START_FILE), offset)?;
        g.epochs.clear();
        self.store_epochs(g)?;
        for off in snapshot::list(&self.dir)? {
            snapshot::remove(&self.dir, off)?;
        }
        let bases: Vec<i64> = g.segments.keys().copied().collect();
        for b in bases {
            let seg = g.segments.remove(&b).expect("listed");
            seg.delete()?;
        }
        // Files of a segment the map no longer knew (none expected) would follow the new one.
        segment::delete_segment_files(&self.dir, offset)?;
        let seg = Segment::create(&self.dir, offset, now_ms())?;
        checkpoint::sync_dir(&self.dir)?;
        g.segments.insert(offset, seg);
        g.log_start_offset = offset;
        g.next_offset = offset;
        g.unflushed_messages = 0;
        g.producers = ProducerState::new();
        g.aborted = TxnIndex::new();
        self.stable_offset.store(offset, Ordering::Release);
        self.end_offset.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        self.flushed.store(offset, Ordering::Release);
        self.write_recovery_point(offset)?;
        self.checkpoint_high_watermark()?;
        Ok(())
    }
}
