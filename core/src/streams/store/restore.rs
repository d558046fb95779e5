//! Restoration from the changelog: where to start ([`plan_restore`], a pure function with a
//! table of cases) and progress while it runs ([`RestoreProgress`]).
//!
//! Restored records are committed changelog data (read read_committed); the runtime applies
//! them with [`StateStore::restore`](super::StateStore::restore), which writes them straight to
//! the bytes store with the next offset as the checkpoint (bypassing caching and
//! change-logging). A restart with a checkpoint therefore reads only the tail.
//! [`StateStore::restore_plan`](super::StateStore::restore_plan) plans for a given store.

use std::fmt;

/// The changelog partition's offsets when restoration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangelogBounds {
    /// Log start offset.
    pub start: i64,
    /// Last stable offset: the end a read_committed consumer can read to.
    pub stable_end: i64,
    /// High watermark (`>= stable_end`).
    pub end: i64,
}

/// Why the local store must be wiped before restoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeReason {
    /// The store has data but no checkpoint (written by at-least-once without one, or a wipe
    /// was interrupted): its position is unknown.
    NoCheckpoint,
    /// The changelog no longer has the records after the checkpoint (its start moved past it).
    CheckpointBeforeLogStart,
    /// The checkpoint is past the changelog's end: the changelog lost records the store has.
    CheckpointPastLogEnd,
}

impl fmt::Display for WipeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoCheckpoint => "the store has data but no checkpoint",
            Self::CheckpointBeforeLogStart => "the checkpoint is before the changelog's start",
            Self::CheckpointPastLogEnd => "the checkpoint is past the changelog's end",
        })
    }
}

/// What to do to bring a store up to its changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePlan {
    /// The store is at the changelog's stable end.
    UpToDate,
    /// Read and apply the changelog from `from` up to `to` (exclusive).
    Restore {
        /// First offset to read.
        from: i64,
        /// Stable end to read to.
        to: i64,
    },
    /// Clear the store, then restore from `from` to `to`.
    WipeAndRestore {
        /// First offset to read (the log start).
        from: i64,
        /// Stable end to read to.
        to: i64,
        /// Why.
        reason: WipeReason,
    },
    /// The checkpoint is between the stable end and the high watermark: the transaction that
    /// brought the store there committed, but its markers are not all written yet. Look again
    /// shortly (the stable end moves once the coordinator writes them).
    WaitForMarkers,
}

/// Plan restoration of a store with `checkpoint` (`store_is_empty`: it holds no entries) from
/// a changelog with `bounds`.
///
/// | checkpoint                      | store     | plan                                   |
/// |---------------------------------|-----------|----------------------------------------|
/// | none                            | empty     | restore start..stable_end              |
/// | none                            | has data  | wipe (NoCheckpoint), start..stable_end |
/// | c < start                       | any       | wipe (BeforeLogStart)                  |
/// | c > end                         | any       | wipe (PastLogEnd)                      |
/// | stable_end < c <= end           | any       | wait for markers                       |
/// | c == stable_end                 | any       | up to date                             |
/// | start <= c < stable_end         | any       | restore c..stable_end                  |
///
/// Under exactly-once the staging layer writes data and checkpoint atomically, so the last
/// three rows are what a crash leads to: no wipe, at most one commit's tail to read.
pub fn plan_restore(checkpoint: Option<i64>, store_is_empty: bool, bounds: ChangelogBounds) -> RestorePlan {
    let ChangelogBounds { start, stable_end, end } = bounds;
    let from_start = |reason| RestorePlan::WipeAndRestore { from: start, to: stable_end, reason };
    let restore = |from: i64| {
        if from >= stable_end {
            RestorePlan::UpToDate
        } else {
            RestorePlan::Restore { from, to: stable_end }
        }
    };
    match checkpoint {
        None if store_is_empty => restore(start),
        None => from_start(WipeReason::NoCheckpoint),
        Some(c) if c < start => from_start(WipeReason::CheckpointBeforeLogStart),
        Some(c) if c > end => from_start(WipeReason::CheckpointPastLogEnd),
        Some(c) if c > stable_end => RestorePlan::WaitForMarkers,
        Some(c) => restore(c),
    }
}

/// Records logged between progress lines.
pub const PROGRESS_EVERY_RECORDS: u64 = 100_000;

/// Tracks and logs one store's restoration.
#[derive(Debug)]
pub struct RestoreProgress {
    store: String,
    changelog: String,
    from: i64,
    to: i64,
    restored: u64,
    next_log: u64,
    position: i64,
}

impl RestoreProgress {
    /// Start restoring `store` from `changelog` (`topic-partition`), offsets `from..to`.
    pub fn start(store: impl Into<String>, changelog: impl Into<String>, from: i64, to: i64) -> Self {
        let (store, changelog) = (store.into(), changelog.into());
        tracing::info!(store = %store, changelog = %changelog, from, to, "restoring {} changelog records", to - from);
        Self { store, changelog, from, to, restored: 0, next_log: PROGRESS_EVERY_RECORDS, position: from }
    }

    /// `records` more were applied; the next offset to read is `next_offset`. True when done.
    pub fn applied(&mut self, records: u64, next_offset: i64) -> bool {
        self.restored += records;
        self.position = next_offset;
        if self.is_done() {
            tracing::info!(store = %self.store, changelog = %self.changelog, records = self.restored, "restored");
        } else if self.restored >= self.next_log {
            self.next_log = self.restored + PROGRESS_EVERY_RECORDS;
            tracing::info!(
                store = %self.store,
                changelog = %self.changelog,
                records = self.restored,
                offset = next_offset,
                to = self.to,
                "restoring: {}% of offsets",
                self.percent()
            );
        }
        self.is_done()
    }

    /// Whether the end offset was reached.
    pub fn is_done(&self) -> bool {
        self.position >= self.to
    }

    /// Records applied so far.
    pub fn restored(&self) -> u64 {
        self.restored
    }

    /// Share of the offset range covered, 0-100.
    pub fn percent(&self) -> u64 {
        let span = (self.to - self.from).max(1);
        (((self.position - self.from).clamp(0, span) * 100) / span) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestorePlan::*;
    use WipeReason::*;

    #[test]
    fn plan_table() {
        let b = ChangelogBounds { start: 10, stable_end: 50, end: 55 };
        #[rustfmt::skip]
        let cases = [
            (None,     true,  Restore { from: 10, to: 50 }),
            (None,     false, WipeAndRestore { from: 10, to: 50, reason: NoCheckpoint }),
            (Some(3),  true,  WipeAndRestore { from: 10, to: 50, reason: CheckpointBeforeLogStart }),
            (Some(9),  false, WipeAndRestore { from: 10, to: 50, reason: CheckpointBeforeLogStart }),
            (Some(10), false, Restore { from: 10, to: 50 }),
            (Some(42), false, Restore { from: 42, to: 50 }),
            (Some(50), false, UpToDate),
            (Some(51), false, WaitForMarkers),
            (Some(55), false, WaitForMarkers),
            (Some(56), false, WipeAndRestore { from: 10, to: 50, reason: CheckpointPastLogEnd }),
        ];
        for (checkpoint, empty, want) in cases {
            assert_eq!(plan_restore(checkpoint, empty, b), want, "checkpoint {checkpoint:?}, empty {empty}");
        }
        let empty_log = ChangelogBounds { start: 0, stable_end: 0, end: 0 };
        assert_eq!(plan_restore(None, true, empty_log), UpToDate);
        assert_eq!(plan_restore(Some(0), false, empty_log), UpToDate);
    }

    #[test]
    fn progress_counts_and_finishes_at_the_end_offset() {
        let mut p = RestoreProgress::start("counts", "app-counts-changelog-0", 100, 300);
        assert!(!p.is_done());
        assert!(!p.applied(50, 150));
        assert_eq!(p.percent(), 25);
        assert!(!p.applied(PROGRESS_EVERY_RECORDS, 299));
        assert!(p.applied(1, 300));
        assert_eq!((p.restored(), p.percent()), (PROGRESS_EVERY_RECORDS + 51, 100));
        assert!(RestoreProgress::start("s", "t-0", 5, 5).is_done());
    }
}
