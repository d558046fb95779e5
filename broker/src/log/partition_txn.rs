//! The transactional side of a partition log: producer state rebuilt at open (newest snapshot
//! plus a replay of the log after it), markers, the last stable offset and aborted transactions.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{AppendInfo, Inner, Log, LogError};
use crate::log::batch::BatchHeader;
use crate::log::control::{self, Marker};
use crate::log::producer_state::{AbortedTxn, AppendOrigin, CompletedTxn, MarkerAt, ProducerState, Staged};
use crate::log::segment::Segment;
use crate::log::txn_index::TxnIndex;
use crate::log::{snapshot, txn_index};

/// Bytes read at a time while replaying the log into producer state.
const REPLAY_CHUNK: u64 = 1 << 20;

/// Producer state and aborted transactions for a log whose segments are `segments`, ending at
/// `next_offset`: the newest snapshot at or below the end, then every batch after it.
pub(super) fn load(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    next_offset: i64,
    now_ms: i64,
) -> io::Result<(ProducerState, TxnIndex)> {
    let first_base = *segments.keys().next().expect("a log always has a segment");
    let (from, mut state) = match snapshot::load_latest(dir, next_offset)? {
        Some((off, s)) if off >= first_base => (off, s),
        _ => (first_base, ProducerState::new()),
    };
    let bases: Vec<i64> = segments.keys().copied().collect();
    let mut aborted = TxnIndex::load(dir, &bases, from)?;
    let replayed = replay(dir, segments, from, next_offset, &mut state, &mut aborted, now_ms)?;
    if replayed > 0 {
        tracing::info!(dir = %dir.display(), from, batches = replayed, "rebuilt producer state from the log");
        snapshot::write(dir, next_offset, &state)?;
    }
    Ok((state, aborted))
}

/// Feed every batch in `[from, to)` to `state`. Returns how many batches were read.
fn replay(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    from: i64,
    to: i64,
    state: &mut ProducerState,
    aborted: &mut TxnIndex,
    now_ms: i64,
) -> io::Result<usize> {
    let mut n = 0;
    let first = segments.range(..=from).next_back().map(|(b, _)| *b).unwrap_or(from);
    for (&base, seg) in segments.range(first..) {
        let mut offset = from.max(base);
        while offset < to.min(seg.next_offset()) {
            let Some(slice) = seg.read(offset, REPLAY_CHUNK)? else { break };
            let data = slice.read_bytes()?;
            let mut next = offset;
            for item in super::batch::batches(&data) {
                let (at, h) = item.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                next = h.next_offset();
                if h.base_offset < offset || h.producer_id < 0 {
                    continue;
                }
                n += 1;
                apply_batch(dir, base, &h, &data[at..at + h.size], state, aborted, AppendOrigin::Coordinator, now_ms)?;
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
    }
    Ok(n)
}

/// Feed one stored batch with a producer id to `state` (a replay, or a follower's append): no
/// sequence checks; a batch producer state refuses is skipped with a warning, as it was accepted
/// where it was first written. The abort a marker completes goes to the aborted-transaction
/// index of segment `base`, with the last stable offset as the leader computed it.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_batch(
    dir: &Path,
    base: i64,
    h: &BatchHeader,
    raw: &[u8],
    state: &mut ProducerState,
    aborted: &mut TxnIndex,
    origin: AppendOrigin,
    now_ms: i64,
) -> io::Result<()> {
    let mut staged = Staged::default();
    let res = match control::decode(h, raw) {
        Some(m) => {
            let at = MarkerAt {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
                commit: m.commit,
                offset: h.base_offset,
            };
            state.check_marker(&mut staged, at, now_ms)
        }
        None if h.is_control() => return Ok(()),
        None => state.check_data(&mut staged, h, origin, now_ms).map(|_| ()),
    };
    if let Err(e) = res {
        tracing::warn!(dir = %dir.display(), offset = h.base_offset, error = %e, "producer state skipped a stored batch");
        return Ok(());
    }
    let done = staged.completed();
    state.apply(staged);
    if let Some(c) = done.filter(|c| !c.commit) {
        let lso = state.first_unstable_offset().unwrap_or(c.marker_offset + 1);
        aborted.append(dir, base, aborted_entry(c, lso))?;
    }
    Ok(())
}

fn aborted_entry(c: CompletedTxn, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: c.producer_id,
        first_offset: c.first_offset,
        last_offset: c.marker_offset,
        last_stable_offset: lso,
    }
}

impl Log {
    /// Write a commit or abort marker for `producer_id`, closing its open transaction here.
    ///
    /// Refused with [`LogError::Producer`] if `producer_epoch` is older than the epoch this
    /// partition knows for the producer (a fenced coordinator request). A marker for a producer
    /// with no open transaction is written and changes nothing else.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let batch = control::encode(producer_id, producer_epoch, Marker { commit, coordinator_epoch }, now_ms);
        self.append_checked(&batch, now_ms, AppendOrigin::Coordinator, true)
    }

    /// The last stable offset: the first offset of the earliest open transaction, else the log
    /// end offset, but never above the high watermark. read_committed consumers read below it;
    /// the cleaner does not clean at or after it.
    pub fn last_stable_offset(&self) -> i64 {
        let g = self.lock();
        stable(&g).min(self.hw_locked(&g))
    }

    /// The last stable offset (capped by the high watermark) without taking the lock (a hint
    /// for waiters).
    pub fn stable_offset_hint(&self) -> i64 {
        self.stable_offset.load(Ordering::Acquire).min(self.high_watermark())
    }

    /// Aborted transactions overlapping `[from, upto)`, for a read_committed fetch.
    pub fn aborted_txns(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.lock().aborted.collect(from, upto)
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.lock().producers.has_open_txn(producer_id)
    }

    /// Forget producers with no open transaction that wrote nothing for `expiration_ms`
    /// (`producer.id.expiration.ms`). Returns how many went.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producers.expire(now_ms.saturating_sub(expiration_ms))
    }

    /// Number of producers this partition knows.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }
}

/// The last stable offset of a locked log.
pub(super) fn stable(g: &Inner) -> i64 {
    g.producers.first_unstable_offset().unwrap_or(g.next_offset)
}

/// After batches are written: apply the staged producer updates and record a completed abort.
pub(super) fn commit_staged(dir: &Path, g: &mut Inner, staged: Staged) -> io::Result<()> {
    let done = staged.completed();
    g.producers.apply(staged);
    if let Some(c) = done.filter(|c| !c.commit) {
        let base = *g.segments.keys().next_back().expect("active segment");
        let lso = stable(g);
        g.aborted.append(dir, base, aborted_entry(c, lso))?;
    }
    Ok(())
}

/// Make a sealed segment's aborted transactions durable and snapshot producer state at
/// `offset` (a roll or a clean close).
pub(super) fn checkpoint_state(dir: &Path, g: &Inner, sealed_base: Option<i64>, offset: i64) -> io::Result<()> {
    if let Some(b) = sealed_base {
        txn_index::sync_segment(dir, b)?;
    }
    snapshot::write(dir, offset, &g.producers)
}

/// Rebuild producer state after a truncation to `offset`.
pub(super) fn rebuild_after_truncate(dir: &Path, g: &mut Inner, now_ms: i64) -> io::Result<()> {
    let (state, aborted) = load(dir, &g.segments, g.next_offset, now_ms)?;
    g.producers = state;
    g.aborted = aborted;
    Ok(())
}
