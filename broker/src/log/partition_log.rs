//! The log of one partition: an ordered set of segments, the last one active.
//!
//! Appends, reads and retention take one short lock over the segment map. Durability follows the
//! topic's flush policy: by default writes sit in the page cache (Kafka's model); when
//! `flush.messages` asks for it, [`Log::flush_to`] gives group commit, where one fsync covers
//! every batch appended before it started. [`Log::flush_sealed`], called periodically, makes
//! rolled segments durable and checkpoints the recovery point, so an unclean start re-validates
//! little more than the active segment. A failed data write or fsync fails the log: it takes no
//! more appends or flushes until a restart recovers it.
//!
//! Replication (in `partition_replica.rs`): the log keeps a high watermark (HW). Unreplicated, it
//! follows the log end offset; once [`Log::set_replicated`] is on, the replica code sets it and
//! consumers read below it ([`ReadLimit`]), read_committed ones below min(LSO, HW), followers up
//! to the end. It is checkpointed to `high-watermark` with the recovery point. The leader-epoch
//! cache (`leader-epoch-checkpoint`) gets an entry when this replica becomes leader
//! ([`Log::begin_epoch`]) or when a follower appends the first batch of a newer epoch
//! ([`Log::append_replicated`], which stores the leader's batches unchanged); it answers
//! OffsetForLeaderEpoch ([`Log::end_offset_for_epoch`]). A follower that diverged truncates
//! ([`Log::truncate_to`], [`Log::truncate_fully_and_start_at`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::batch::{self, BatchError};
use super::checkpoint;
use super::config::{LogConfig, TimestampType};
use super::producer_state::{AppendOrigin, Check, MarkerAt, ProducerError, ProducerState, Staged};
use super::segment::{self, FileSlice, RecoveryStats, Segment};
use super::txn_index::TxnIndex;
use super::validate;

#[path = "partition_replica.rs"]
mod replica;
#[path = "partition_txn.rs"]
mod txn;

pub use replica::{end_offset_for, ReadLimit};

/// Bytes of a batch the broker stamps: base offset, length (unchanged), partition leader epoch.
const HEAD_LEN: usize = 16;

/// Name of the file holding the offset below which the log was last fsynced.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Name of the file holding the log start offset.
pub const LOG_START_FILE: &str = "log-start-offset";
/// Name of the leader epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Name of the file holding the high watermark.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";

/// Errors from a partition log. Each maps to one Kafka error code in the server.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Disk I/O failed (KAFKA_STORAGE_ERROR).
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    /// A batch failed validation (CORRUPT_MESSAGE / UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A batch larger than `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge {
        /// Batch size.
        size: usize,
        /// The limit.
        max: i64,
    },
    /// A batch that parses but breaks a rule (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// An offset outside `[log start, log end]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// Log end offset.
        end: i64,
    },
    /// The log was closed because its topic was deleted (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("the partition was deleted")]
    Deleted,
    /// Producer state refused a batch (idempotence and transaction checks).
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// Replicated batches that do not continue the log: a batch starting below the log end
    /// offset or below the end of the batch before it (the follower must truncate or refetch).
    #[error("replicated batch starts at offset {got}, below the expected {expected}")]
    NonContiguous {
        /// The lowest base offset that would have been accepted.
        expected: i64,
        /// Base offset of the batch.
        got: i64,
    },
    /// A leader epoch older than the latest this log knows (FENCED_LEADER_EPOCH).
    #[error("leader epoch {epoch} is older than the latest epoch {latest} of this log")]
    StaleEpoch {
        /// The epoch asked for.
        epoch: i32,
        /// The latest cached epoch.
        latest: i32,
    },
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Broker time stamped into the batches under `LogAppendTime`, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// When the flush policy requires it: fsync up to here before acknowledging.
    pub flush_to: Option<i64>,
}

/// What a read found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches starting with the one holding the requested offset; `None` at the end.
    pub slice: Option<FileSlice>,
    /// The high watermark: consumers read below it (the log end offset when unreplicated).
    pub high_watermark: i64,
    /// min(last stable offset, high watermark): read_committed consumers read below it.
    pub last_stable_offset: i64,
    /// First offset still in the log.
    pub log_start_offset: i64,
}

/// A sealed segment as the cleaner sees it.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    /// Base offset.
    pub base_offset: i64,
    /// Offset after its last batch.
    pub next_offset: i64,
    /// Bytes in the `.log` file.
    pub size: u64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// The file, for reading.
    pub file: Arc<fs::File>,
}

struct Inner {
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    next_offset: i64,
    /// (epoch, start offset), ascending.
    epochs: Vec<(i32, i64)>,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Reused buffer for offset-stamped batches before they hit the file.
    scratch: Vec<u8>,
    /// Idempotent and transactional producers that wrote here.
    producers: ProducerState,
    /// Aborted transactions still in the log.
    aborted: TxnIndex,
}

impl Inner {
    fn active(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }
    fn leader_epoch(&self) -> i32 {
        self.epochs.last().map(|e| e.0).unwrap_or(0)
    }
}

/// One partition's log.
///
/// Lock order: `flush_lock`, then `inner`.
pub struct Log {
    dir: PathBuf,
    inner: Mutex<Inner>,
    flush_lock: Mutex<()>,
    /// The log end offset, readable without the lock (a hint for waiters; the lock has the truth).
    end_offset: AtomicI64,
    /// The last stable offset, likewise.
    stable_offset: AtomicI64,
    /// Everything below this offset has been fsynced (the recovery point). Moves only under the
    /// flush lock.
    flushed: AtomicI64,
    /// The recovery point last written to `recovery-point` (-1: none); changes under the flush lock.
    checkpointed: AtomicI64,
    /// A segment file was created since the directory was last fsynced.
    dir_dirty: AtomicBool,
    /// A data write or fsync failed. After a failed fsync Linux may drop the dirty pages, so a
    /// later fsync that succeeds proves nothing: appends and flushes fail until a restart, whose
    /// recovery re-validates everything above the recovery point. Reads go on.
    failed: AtomicBool,
    /// The topic was deleted ([`Log::close_for_delete`]): nothing may write into the directory,
    /// which a topic of the same name may be using by now. Set under both locks.
    closed: AtomicBool,
    /// Copies of the config and leader epoch for readers that must not wait for the log lock
    /// (an append holds it across a large write).
    config: RwLock<Arc<LogConfig>>,
    leader_epoch: AtomicI32,
    /// The high watermark the replica code manages; unreplicated, every change of the log end
    /// offset moves it along. Changes under the log lock.
    high_watermark: AtomicI64,
    /// Whether the high watermark is managed ([`Log::set_replicated`]) rather than the end.
    replicated: AtomicBool,
    /// The high watermark last written to `high-watermark` (-1: none); changes under the flush
    /// lock.
    hw_checkpointed: AtomicI64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.dir).finish()
    }
}

/// Outcome of opening a log, for the startup log line.
#[derive(Debug, Default, Clone)]
pub struct OpenStats {
    /// Segments re-validated from the recovery point.
    pub recovered_segments: usize,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
    /// Segments deleted because they followed a truncation.
    pub dropped_segments: usize,
}

impl Log {
    /// Open the log in `dir`, creating it if empty.
    ///
    /// With `clean` (the broker shut down cleanly) indexes are trusted; without it every segment
    /// from the one holding the recovery point onwards is re-validated batch by batch, the first
    /// torn or corrupt batch and everything after it is cut, and indexes are rebuilt.
    pub fn open(dir: &Path, config: LogConfig, clean: bool, now_ms: i64) -> Result<(Self, OpenStats), LogError> {
        fs::create_dir_all(dir)?;
        let swapped = finish_interrupted_swaps(dir)?;
        // Names created or removed here are made durable by one directory fsync at the end.
        let mut dir_changed = !swapped.is_empty();
        let mut bases: Vec<i64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        let checkpointed = checkpoint::read_i64(&dir.join(RECOVERY_POINT_FILE))?;
        let recovery_point = checkpointed.unwrap_or(0);
        let mut stats = OpenStats::default();
        let mut segments = BTreeMap::new();
        let index_interval = config.index_interval_bytes as u64;
        // The segment with a torn or corrupt tail, if any; every segment after it goes.
        let mut torn = None;
        let mut doomed = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            if torn.is_some() {
                doomed.push(base);
                continue;
            }
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let trusted = !swapped.contains(&base) && (clean || next_base <= recovery_point);
            let seg = if trusted {
                match Segment::open(dir, base, now_ms) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), base, error = %e, "index inconsistent; recovering segment");
                        recover_segment(dir, base, now_ms, index_interval, &mut stats, &mut torn)?
                    }
                }
            } else {
                recover_segment(dir, base, now_ms, index_interval, &mut stats, &mut torn)?
            };
            segments.insert(base, seg);
        }
        if let Some(base) = torn {
            // Delete the later segments durably before cutting the tail: a crash in between then
            // leaves the tail to be found again, never a cut segment followed by later ones (an
            // offset hole the next start would accept).
            for &b in &doomed {
                segment::delete_segment_files(dir, b)?;
            }
            stats.dropped_segments = doomed.len();
            if !doomed.is_empty() {
                checkpoint::sync_dir(dir)?;
            }
            segments.get_mut(&base).expect("the torn segment was recovered").cut_tail()?;
        }
        let mut log_start = checkpoint::read_i64(&dir.join(LOG_START_FILE))?.unwrap_or(0);
        if segments.is_empty() {
            let seg = Segment::create(dir, log_start, now_ms)?;
            segments.insert(log_start, seg);
            dir_changed = true;
        }
        // Drop empty non-active segments (a crash between a roll and the first append to the
        // next segment leaves one); seal the rest so each has its final time-index entry.
        let last_base = *segments.keys().next_back().expect("non-empty");
        let empty: Vec<i64> =
            segments.iter().filter(|(b, s)| **b != last_base && s.is_empty()).map(|(b, _)| *b).collect();
        for b in empty {
            if let Some(s) = segments.remove(&b) {
                s.delete()?;
                dir_changed = true;
            }
        }
        for (b, s) in segments.iter_mut() {
            if *b != last_base {
                s.seal();
            }
        }
        let next_offset = segments.values().next_back().map(|s| s.next_offset()).unwrap_or(0);
        let first_base = *segments.keys().next().expect("non-empty");
        log_start = log_start.max(first_base).min(next_offset);
        let epochs = replica::load_epochs(dir, log_start, next_offset)?;
        if dir_changed {
            checkpoint::sync_dir(dir)?;
        }
        let leader_epoch = epochs.last().map(|e| e.0).unwrap_or(0);
        let (stored_hw, high_watermark) = replica::load_high_watermark(dir, log_start, next_offset)?;
        let (producers, aborted) = txn::load(dir, &segments, next_offset, now_ms)?;
        let stable_offset = producers.first_unstable_offset().unwrap_or(next_offset);
        let log = Self {
            dir: dir.to_path_buf(),
            config: RwLock::new(Arc::new(config.clone())),
            leader_epoch: AtomicI32::new(leader_epoch),
            inner: Mutex::new(Inner {
                config,
                segments,
                log_start_offset: log_start,
                next_offset,
                epochs,
                unflushed_messages: 0,
                last_flush_ms: now_ms,
                scratch: Vec::new(),
                producers,
                aborted,
            }),
            flush_lock: Mutex::new(()),
            end_offset: AtomicI64::new(next_offset),
            stable_offset: AtomicI64::new(stable_offset),
            flushed: AtomicI64::new(if clean { next_offset } else { recovery_point.min(next_offset) }),
            checkpointed: AtomicI64::new(checkpointed.unwrap_or(-1)),
            dir_dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            high_watermark: AtomicI64::new(high_watermark),
            replicated: AtomicBool::new(false),
            hw_checkpointed: AtomicI64::new(stored_hw.unwrap_or(-1)),
        };
        if stats.truncated_bytes > 0 || stats.recovered_segments > 0 {
            log.flush()?;
        }
        Ok((log, stats))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves state we cannot trust; crash loudly.
        self.inner.lock().expect("partition log lock poisoned")
    }

    /// Validate, offset-stamp and append the batches in `records` (as sent by a producer).
    ///
    /// All batches are validated before any is written: a request is appended whole or not at all.
    /// Idempotent batches are checked against producer state; a retry of one of a producer's
    /// last five batches is not written again and its original offsets are returned.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.append_checked(records, now_ms, AppendOrigin::Client, false)
    }

    /// [`Log::append`] for a given origin: a coordinator's writes skip sequence checks.
    pub fn append_as(&self, records: &[u8], now_ms: i64, origin: AppendOrigin) -> Result<AppendInfo, LogError> {
        self.append_checked(records, now_ms, origin, false)
    }

    /// [`Log::append`] of a producer's batches, where the first transactional batch of a
    /// transaction in this partition must be vouched for by `verify(producer_id, epoch)`, the
    /// transaction coordinator's word that the partition is in the producer's ongoing
    /// transaction (KIP-890 part 1). It is asked under the log lock, so a marker cannot slip in
    /// between the answer and the write: a late or stray batch cannot open a transaction that
    /// nothing will ever close.
    pub fn append_verified(
        &self,
        records: &[u8],
        now_ms: i64,
        verify: &dyn Fn(i64, i16) -> Result<(), i16>,
    ) -> Result<AppendInfo, LogError> {
        self.append_inner(records, now_ms, AppendOrigin::Client, false, Some(verify))
    }

    /// [`Log::append_verified`] for a given origin (the group coordinator's transactional
    /// offset commits).
    pub fn append_verified_as(
        &self,
        records: &[u8],
        now_ms: i64,
        origin: AppendOrigin,
        verify: &dyn Fn(i64, i16) -> Result<(), i16>,
    ) -> Result<AppendInfo, LogError> {
        self.append_inner(records, now_ms, origin, false, Some(verify))
    }

    fn append_checked(
        &self,
        records: &[u8],
        now_ms: i64,
        origin: AppendOrigin,
        marker: bool,
    ) -> Result<AppendInfo, LogError> {
        self.append_inner(records, now_ms, origin, marker, None)
    }

    /// The append. `marker`: `records` is one control batch this broker built (markers).
    fn append_inner(
        &self,
        records: &[u8],
        now_ms: i64,
        origin: AppendOrigin,
        marker: bool,
        verify: Option<&dyn Fn(i64, i16) -> Result<(), i16>>,
    ) -> Result<AppendInfo, LogError> {
        // Validation reads every byte (CRC, record framing, decompression): do it before taking
        // the lock, so appends to this partition and reads of it are not held up meanwhile.
        let (max, compacts) = {
            let c = self.config.read().expect("log config lock poisoned");
            (c.max_message_bytes, c.cleanup_policy.compacts())
        };
        let mut headers = if marker {
            vec![(0, batch::BatchHeader::parse_checked(records)?)]
        } else {
            let headers = validate::validate_batches(records, max, compacts)?;
            if headers.iter().any(|(_, h)| h.is_control()) {
                return Err(LogError::InvalidRecord("clients may not write control batches".into()));
            }
            headers
        };
        let mut g = self.lock();
        self.check_writable()?;
        let inner = &mut *g;
        let log_append = inner.config.timestamp_type == TimestampType::LogAppendTime;
        let epoch = inner.leader_epoch();
        let base_offset = inner.next_offset;
        let mut next = base_offset;
        let mut messages = 0i64;
        let mut staged = Staged::default();
        for (at, h) in headers.iter_mut() {
            h.base_offset = next;
            h.partition_leader_epoch = epoch;
            if log_append {
                h.max_timestamp = now_ms;
            }
            if marker {
                let m = super::control::decode(h, &records[*at..*at + h.size]).expect("a marker this broker built");
                let at = MarkerAt {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    coordinator_epoch: m.coordinator_epoch,
                    commit: m.commit,
                    offset: next,
                };
                inner.producers.check_marker(&mut staged, at, now_ms)?;
            } else if let Check::Duplicate(d) = {
                if let Some(verify) = verify.filter(|_| h.is_transactional() && h.producer_id >= 0) {
                    if !inner.producers.has_open_txn(h.producer_id) && !staged.opens_txn(h.producer_id) {
                        verify(h.producer_id, h.producer_epoch)
                            .map_err(|code| ProducerError::Unverified { producer_id: h.producer_id, code })?;
                    }
                }
                inner.producers.check_data(&mut staged, h, origin, now_ms)?
            } {
                // Kafka answers a request holding a duplicate with the duplicate's offsets.
                return Ok(AppendInfo {
                    base_offset: d.base_offset(),
                    last_offset: d.last_offset,
                    log_append_time: -1,
                    log_start_offset: inner.log_start_offset,
                    flush_to: (inner.config.flush_messages != i64::MAX).then_some(d.last_offset + 1),
                });
            }
            next = h.next_offset();
            messages += h.record_count as i64;
        }
        self.maybe_roll(inner, records.len() as u64, now_ms)?;
        let interval = inner.config.index_interval_bytes as u64;
        if log_append {
            // Log-append time rewrites CRC-covered bytes: stamp a copy.
            let mut scratch = std::mem::take(&mut inner.scratch);
            scratch.clear();
            scratch.extend_from_slice(records);
            for (at, h) in &headers {
                let b = &mut scratch[*at..*at + h.size];
                batch::patch_offset_and_epoch(b, h.base_offset, epoch);
                batch::set_log_append_time(b, now_ms);
            }
            let res = inner.active().append(&mut [IoSlice::new(&scratch)], &headers, interval);
            inner.scratch = scratch;
            res.map_err(|e| self.fail(e))?;
        } else {
            // No copy of the records: each batch's first 16 bytes (base offset, length, leader
            // epoch) are stamped in a small array; the rest goes to the file from the request.
            let heads: Vec<[u8; HEAD_LEN]> = headers
                .iter()
                .map(|(at, h)| {
                    let mut head = [0u8; HEAD_LEN];
                    head.copy_from_slice(&records[*at..*at + HEAD_LEN]);
                    batch::patch_offset_and_epoch(&mut head, h.base_offset, epoch);
                    head
                })
                .collect();
            let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(2 * headers.len());
            for ((at, h), head) in headers.iter().zip(&heads) {
                iov.push(IoSlice::new(head));
                iov.push(IoSlice::new(&records[*at + HEAD_LEN..*at + h.size]));
            }
            inner.active().append(&mut iov, &headers, interval).map_err(|e| self.fail(e))?;
        }
        inner.next_offset = next;
        if !staged.is_empty() {
            txn::commit_staged(&self.dir, inner, staged).map_err(|e| self.fail(e))?;
        }
        self.stable_offset.store(txn::stable(inner), Ordering::Release);
        self.end_offset.store(next, Ordering::Release);
        self.follow_end(next);
        inner.unflushed_messages += messages;
        let flush_to = (inner.unflushed_messages >= inner.config.flush_messages).then_some(next);
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: inner.log_start_offset,
            flush_to,
        })
    }

    fn maybe_roll(&self, inner: &mut Inner, incoming: u64, now_ms: i64) -> io::Result<()> {
        let cfg = &inner.config;
        let (segment_bytes, segment_ms) = (cfg.segment_bytes as u64, cfg.segment_ms);
        let next_offset = inner.next_offset;
        let active = inner.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() + incoming > segment_bytes;
        let old = now_ms - active.created_ms() >= segment_ms;
        // Index entries hold 32-bit relative offsets and positions.
        let overflow =
            next_offset - active.base_offset() > i32::MAX as i64 || active.size() + incoming > u32::MAX as u64;
        if full || old || overflow {
            self.roll(inner, now_ms)?;
        }
        Ok(())
    }

    fn roll(&self, inner: &mut Inner, now_ms: i64) -> io::Result<()> {
        let next = inner.next_offset;
        inner.active().seal();
        let sealed = inner.active().base_offset();
        // Producer state as of the new segment's base: an unclean open replays from here.
        txn::checkpoint_state(&self.dir, inner, Some(sealed), next)?;
        let seg = Segment::create(&self.dir, next, now_ms)?;
        inner.segments.insert(next, seg);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Make everything below `offset` durable. Concurrent callers share one fsync: whoever gets
    /// the flush lock syncs everything appended so far, and later callers find their offset
    /// already covered.
    pub fn flush_to(&self, offset: i64) -> io::Result<()> {
        if self.flushed.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        if self.flushed.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::NotFound, LogError::Deleted));
        }
        self.sync_appended().map(|_| ())
    }

    /// With the flush lock held: fsync the data of every segment holding unflushed records
    /// (outside the log lock, so appends go on meanwhile), then the directory if a segment was
    /// created, then advance the recovery point to what was appended when this began.
    fn sync_appended(&self) -> io::Result<i64> {
        self.check_not_failed()?;
        let flushed = self.flushed.load(Ordering::Acquire);
        let (target, files) = {
            let mut g = self.lock();
            g.unflushed_messages = 0;
            let files: Vec<Arc<fs::File>> = g
                .segments
                .values()
                .filter(|s| s.next_offset() > flushed || s.is_empty())
                .map(|s| s.file().clone())
                .collect();
            (g.next_offset, files)
        };
        for f in files {
            self.sync_data(&f)?;
        }
        self.sync_dir_if_dirty()?;
        self.flushed.store(target, Ordering::Release);
        Ok(target)
    }

    /// fsync a segment's data; a failure fails the log.
    fn sync_data(&self, file: &fs::File) -> io::Result<()> {
        segment::sync_data(file).map_err(|e| self.fail(e))
    }

    /// fsync the partition directory if a segment was created since the last time, so the new
    /// file's name survives a power loss along with its data. A failure fails the log: the name
    /// of a file holding acknowledged data may be lost.
    fn sync_dir_if_dirty(&self) -> io::Result<()> {
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = checkpoint::sync_dir(&self.dir) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    /// Mark the log failed after a data write or fsync error; returns the error.
    fn fail(&self, e: io::Error) -> io::Error {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(dir = %self.dir.display(), error = %e,
                "log write or fsync failed: appends and flushes refused until a restart recovers the log");
        }
        e
    }

    fn check_not_failed(&self) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "log {} refuses writes after a failed write or fsync; restart the broker to recover it",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// With the log lock held: may this log take writes?
    fn check_writable(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Deleted);
        }
        Ok(self.check_not_failed()?)
    }

    /// With the flush lock held: write the `recovery-point` checkpoint.
    fn write_recovery_point(&self, offset: i64) -> io::Result<()> {
        checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), offset)?;
        self.checkpointed.store(offset, Ordering::Release);
        Ok(())
    }

    /// fsync everything appended so far and checkpoint the recovery point.
    ///
    /// Index files are not synced here: opening a log checks them against the data and rebuilds
    /// any that disagree. Does nothing once the log is closed for deletion.
    pub fn flush(&self) -> io::Result<()> {
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let target = self.sync_appended()?;
        self.write_recovery_point(target)
    }

    /// Make the sealed segments durable and move the recovery point up to the active segment,
    /// as Kafka does after a roll; checkpoint the recovery point if it moved since the last
    /// checkpoint (group commit moves it without writing the file). Meant to be called every
    /// few seconds: an unclean start then re-validates little more than the active segment.
    ///
    /// The fsyncs run outside the log lock, so appends go on meanwhile. Returns whether the
    /// checkpoint was written. Does nothing once the log is closed for deletion; fails once the
    /// log has failed.
    pub fn flush_sealed(&self) -> io::Result<bool> {
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        if self.closed.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.check_not_failed()?;
        let flushed = self.flushed.load(Ordering::Acquire);
        let (active_base, files) = {
            let g = self.lock();
            let active_base = *g.segments.keys().next_back().expect("a log always has an active segment");
            let files: Vec<Arc<fs::File>> = g
                .segments
                .range(..active_base)
                .filter(|(_, s)| s.next_offset() > flushed)
                .map(|(_, s)| s.file().clone())
                .collect();
            (active_base, files)
        };
        if flushed < active_base {
            for f in files {
                self.sync_data(&f)?;
            }
            // The active segment's name too: the recovery point now lies in it.
            self.sync_dir_if_dirty()?;
            self.flushed.store(active_base, Ordering::Release);
        }
        self.checkpoint_high_watermark()?;
        let recovery_point = self.flushed.load(Ordering::Acquire);
        if recovery_point <= self.checkpointed.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.write_recovery_point(recovery_point)?;
        Ok(true)
    }

    /// Close the log because its topic is being deleted: waits for a flush in progress, then
    /// makes appends, rolls, flushes, retention, DeleteRecords and compaction swaps do nothing
    /// or fail with [`LogError::Deleted`], so that a request still holding this log cannot write
    /// into a directory a new topic of the same name may be using. Reads go on.
    pub fn close_for_delete(&self) {
        let _f = self.flush_lock.lock().expect("flush lock poisoned");
        let _g = self.lock();
        self.closed.store(true, Ordering::Release);
    }

    /// Flush everything, indexes included, and checkpoint the high watermark (clean shutdown).
    pub fn close(&self) -> io::Result<()> {
        self.flush()?;
        {
            let _f = self.flush_lock.lock().expect("flush lock poisoned");
            if !self.closed.load(Ordering::Acquire) {
                self.checkpoint_high_watermark()?;
            }
        }
        let g = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        for s in g.segments.values() {
            s.flush().map_err(|e| self.fail(e))?;
        }
        let active = *g.segments.keys().next_back().expect("active segment");
        txn::checkpoint_state(&self.dir, &g, Some(active), g.next_offset).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Flush if `flush.ms` has passed since the last flush and there is something to flush.
    pub fn flush_if_due(&self, now_ms: i64) -> io::Result<()> {
        let due = {
            let mut g = self.lock();
            // A failed log has logged its failure once; a closed one has nothing to flush.
            if self.failed.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            let due = g.unflushed_messages > 0
                && g.config.flush_ms != i64::MAX
                && now_ms - g.last_flush_ms >= g.config.flush_ms;
            if due {
                g.last_flush_ms = now_ms;
            }
            due
        };
        if due {
            self.flush()?;
        }
        Ok(())
    }

    /// Read whole batches from `offset`, at most `max_bytes` (but at least one batch), up to the
    /// log end offset: what followers and the coordinators replaying their topics read
    /// ([`ReadLimit::LogEnd`]).
    pub fn read(&self, offset: i64, max_bytes: u64) -> Result<ReadResult, LogError> {
        self.read_upto(offset, max_bytes, ReadLimit::LogEnd)
    }

    /// [`Log::read`] of the batches whose base offset is below `limit`: the log end offset,
    /// the high watermark (read_uncommitted consumers) or min(LSO, HW) (read_committed).
    /// `offset` may lie anywhere in `[log start, log end]`; above the limit nothing is served.
    pub fn read_upto(&self, offset: i64, max_bytes: u64, limit: ReadLimit) -> Result<ReadResult, LogError> {
        let g = self.lock();
        let (start, end) = (g.log_start_offset, g.next_offset);
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        let hw = self.hw_locked(&g);
        let lso = txn::stable(&g).min(hw);
        let limit = match limit {
            ReadLimit::LogEnd => end,
            ReadLimit::HighWatermark => hw,
            ReadLimit::Committed => lso,
        };
        let mut slice = None;
        if offset < limit {
            let first = g.segments.range(..=offset).next_back().map(|(b, _)| *b).unwrap_or(offset);
            for (_, seg) in g.segments.range(first..) {
                if let Some(s) = seg.read_below(offset, max_bytes, limit)? {
                    slice = Some(s);
                    break;
                }
            }
        }
        Ok(ReadResult { slice, high_watermark: hw, last_stable_offset: lso, log_start_offset: start })
    }

    /// Call `f` with every batch from the log start to the current end, in order, with `from`:
    /// the offset reading was at (records below it in the batch were already passed). For
    /// coordinators replaying their internal topics. Errors (the log's or `f`'s) as text.
    pub fn scan(&self, mut f: impl FnMut(&batch::BatchHeader, &[u8], i64) -> Result<(), String>) -> Result<(), String> {
        let mut offset = self.log_start_offset();
        let end = self.log_end_offset();
        while offset < end {
            let Some(slice) = self.read(offset, 1 << 20).map_err(|e| e.to_string())?.slice else { break };
            let data = slice.read_bytes().map_err(|e| e.to_string())?;
            let mut next = offset;
            for item in batch::batches(&data) {
                let (at, h) = item.map_err(|e| e.to_string())?;
                next = next.max(h.next_offset());
                if h.next_offset() > offset {
                    f(&h, &data[at..at + h.size], offset)?;
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(())
    }

    /// The first offset whose timestamp is `>= ts` (ListOffsets by time); `None` if no record is.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<i64>, LogError> {
        let g = self.lock();
        for seg in g.segments.values() {
            if let Some(o) = seg.offset_for_timestamp(ts, g.log_start_offset)? {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp (ListOffsets -3). As in
    /// Kafka, that record may sit below the log start, in the segment holding it.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let g = self.lock();
        let best = g.segments.values().map(|s| s.max_timestamp()).max().unwrap_or(-1);
        if best < 0 {
            return Ok(None);
        }
        for seg in g.segments.values() {
            if let Some(o) = seg.offset_for_timestamp(best, i64::MIN)? {
                return Ok(Some((o, best)));
            }
        }
        Ok(None)
    }

    /// Move the log start offset forward to `offset` (DeleteRecords) and drop whole segments
    /// below it. Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        let mut g = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Deleted);
        }
        // Records may only be deleted below the high watermark (the end when unreplicated).
        let end = self.hw_locked(&g);
        let offset = if offset == -1 { end } else { offset };
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start: g.log_start_offset, end });
        }
        if offset > g.log_start_offset {
            g.log_start_offset = offset;
            checkpoint::write_i64(&self.dir.join(LOG_START_FILE), offset)?;
        }
        self.delete_segments_below_start(&mut g)?;
        Ok(g.log_start_offset)
    }

    /// Delete sealed segments that lie wholly below the log start offset.
    fn delete_segments_below_start(&self, g: &mut Inner) -> io::Result<usize> {
        let start = g.log_start_offset;
        let doomed: Vec<i64> = g
            .segments
            .iter()
            .zip(g.segments.keys().skip(1))
            .filter(|((_, seg), _)| seg.next_offset() <= start)
            .map(|((b, _), _)| *b)
            .collect();
        for b in &doomed {
            if let Some(seg) = g.segments.remove(b) {
                seg.delete()?;
            }
        }
        let first = *g.segments.keys().next().expect("a log always has an active segment");
        g.aborted.drop_below(first);
        Ok(doomed.len())
    }

    /// Apply `retention.ms` and `retention.bytes` (for `cleanup.policy` with `delete`): delete
    /// whole segments from the oldest, never the active one, and move the log start offset.
    /// Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        let mut g = self.lock();
        if !g.config.cleanup_policy.deletes() || self.closed.load(Ordering::Acquire) {
            return Ok(0);
        }
        let (retention_ms, retention_bytes) = (g.config.retention_ms, g.config.retention_bytes);
        // An expired active segment is rolled first so that it can go too, as in Kafka.
        if retention_ms >= 0 {
            let active = g.segments.values().next_back().expect("active");
            if !active.is_empty() && active.max_timestamp() >= 0 && now_ms - active.max_timestamp() > retention_ms {
                self.roll(&mut g, now_ms)?;
            }
        }
        let mut total: u64 = g.segments.values().map(|s| s.size()).sum();
        let mut deleted = 0;
        // Only segments wholly below the high watermark go (all sealed ones when unreplicated).
        let hw = self.hw_locked(&g);
        loop {
            if g.segments.len() < 2 {
                break;
            }
            let (&base, first) = g.segments.iter().next().expect("non-empty");
            if first.next_offset() > hw {
                break;
            }
            // An empty sealed segment holds nothing to keep and must not stall time retention.
            let expired = first.is_empty()
                || (retention_ms >= 0 && first.max_timestamp() >= 0 && now_ms - first.max_timestamp() > retention_ms);
            let oversized = retention_bytes >= 0 && total - first.size() >= retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            let seg = g.segments.remove(&base).expect("present");
            total -= seg.size();
            seg.delete()?;
            deleted += 1;
        }
        let first_base = *g.segments.keys().next().expect("non-empty");
        g.aborted.drop_below(first_base);
        if first_base > g.log_start_offset {
            g.log_start_offset = first_base;
            checkpoint::write_i64(&self.dir.join(LOG_START_FILE), first_base)?;
        }
        Ok(deleted)
    }

    /// Sealed segments (every one but the active), oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let g = self.lock();
        let n = g.segments.len();
        g.segments
            .values()
            .take(n.saturating_sub(1))
            .map(|s| SealedSegment {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
                file: s.file().clone(),
            })
            .collect()
    }

    /// Replace sealed segment `base` by the cleaned file at `cleaned` (already fsynced), and
    /// drop the aborted-transaction entries whose abort marker in that segment sits at one of
    /// `dropped_aborts` (transactions with no data left).
    ///
    /// Crash-safe: the rename to `<base>.log.swap` is the commit point; a restart finishes any
    /// swap it finds and rebuilds that segment's indexes. The `.txnindex` is rewritten before
    /// that rename, so an entry never outlives its marker; the entries dropped name no data, so
    /// losing them early (a crash before the rename) changes no read. If the segment changed or
    /// went away meanwhile (retention, DeleteRecords), the cleaned file is discarded and `false`
    /// returned.
    pub fn swap_cleaned(
        &self,
        base: i64,
        expected_size: u64,
        cleaned: &Path,
        dropped_aborts: &[i64],
        now_ms: i64,
    ) -> io::Result<bool> {
        let mut g = self.lock();
        let n = g.segments.len();
        let is_sealed = g.segments.keys().take(n.saturating_sub(1)).any(|b| *b == base);
        let unchanged = g.segments.get(&base).map(|s| s.size() == expected_size).unwrap_or(false);
        if !is_sealed || !unchanged || self.closed.load(Ordering::Acquire) {
            let _ = fs::remove_file(cleaned);
            return Ok(false);
        }
        if !dropped_aborts.is_empty() {
            g.aborted.remove_markers(&self.dir, base, dropped_aborts)?;
        }
        let interval = g.config.index_interval_bytes as u64;
        let swap = self.dir.join(format!("{}.swap", segment::file_name(base, "log")));
        fs::rename(cleaned, &swap)?;
        checkpoint::sync_dir(&self.dir)?;
        let seg = complete_swap(&self.dir, base, now_ms, interval)?;
        g.segments.insert(base, seg);
        Ok(true)
    }

    /// Replace the topic config (IncrementalAlterConfigs).
    pub fn set_config(&self, config: LogConfig) {
        let mut g = self.lock();
        *self.config.write().expect("log config lock poisoned") = Arc::new(config.clone());
        g.config = config;
    }

    /// The topic config in force. Does not wait for the log lock.
    pub fn config(&self) -> LogConfig {
        LogConfig::clone(&self.config.read().expect("log config lock poisoned"))
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.lock().next_offset
    }

    /// The log end offset without taking the lock: for waiters deciding whether to look again.
    pub fn end_offset_hint(&self) -> i64 {
        self.end_offset.load(Ordering::Acquire)
    }

    /// Total bytes of all segment `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size()).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Current leader epoch (stamped into every appended batch). Does not wait for the log lock.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Offset below which everything is fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hold the log lock until the returned guard is dropped (tests of what must not wait on it).
    #[cfg(test)]
    pub(crate) fn hold_lock_for_test(&self) -> impl Sized + '_ {
        self.lock()
    }
}

/// Re-validate segment `base`; if its tail is torn or corrupt, set `torn` to `base` (the caller
/// cuts the tail once the segments after it are gone).
fn recover_segment(
    dir: &Path,
    base: i64,
    now_ms: i64,
    index_interval: u64,
    stats: &mut OpenStats,
    torn: &mut Option<i64>,
) -> io::Result<Segment> {
    let mut seg = Segment::open_unchecked(dir, base, now_ms)?;
    let RecoveryStats { truncated_bytes, .. } = seg.recover(base, index_interval)?;
    stats.recovered_segments += 1;
    if truncated_bytes > 0 {
        tracing::warn!(dir = %dir.display(), base, truncated_bytes, "cutting torn or corrupt tail");
        stats.truncated_bytes += truncated_bytes;
        *torn = Some(base);
    }
    Ok(seg)
}

/// Finish swaps a crash interrupted; drop half-written cleaner output. Returns swapped bases.
fn finish_interrupted_swaps(dir: &Path) -> io::Result<Vec<i64>> {
    let mut swapped = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().into_string().unwrap_or_default();
        if name.ends_with(".cleaned") || name.ends_with(".tmp") {
            fs::remove_file(dir.join(&name))?;
        } else if let Some(base) = name.strip_suffix(".log.swap").and_then(|b| b.parse::<i64>().ok()) {
            for ext in ["index", "timeindex"] {
                let _ = fs::remove_file(dir.join(segment::file_name(base, ext)));
            }
            fs::rename(dir.join(&name), dir.join(segment::file_name(base, "log")))?;
            swapped.push(base);
        }
    }
    Ok(swapped)
}

/// Second half of a swap: drop the old indexes, move the `.swap` file in, rebuild indexes.
fn complete_swap(dir: &Path, base: i64, now_ms: i64, interval: u64) -> io::Result<Segment> {
    for ext in ["index", "timeindex"] {
        match fs::remove_file(dir.join(segment::file_name(base, ext))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let swap = dir.join(format!("{}.swap", segment::file_name(base, "log")));
    fs::rename(&swap, dir.join(segment::file_name(base, "log")))?;
    let mut seg = Segment::open_unchecked(dir, base, now_ms)?;
    // The cleaner validated and fsynced every batch it wrote: headers suffice to index them,
    // which keeps this short stretch under the log lock to a header scan.
    seg.rebuild_indexes(interval)?;
    seg.seal();
    Ok(seg)
}
