//! Log compaction: keep only the latest record per key in the sealed segments of a log whose
//! `cleanup.policy` contains `compact`.
//!
//! A pass has two phases, both reading the sealed segment files without the log lock:
//!
//! 1. **Map**: read every sealed segment, oldest first, and record for each key the offset of
//!    its latest version (see [`clean_log`] for which records count).
//! 2. **Rewrite**: read each sealed segment again and write the survivors to
//!    `<base>.log.cleaned` in the partition directory. Fully kept batches are copied byte for
//!    byte; batches that lose some records are re-encoded with the survivors at their original
//!    offsets; batches that lose all of them are dropped. A segment with nothing to remove is not
//!    rewritten at all. The file is fsynced and handed to [`Log::swap_cleaned`], the only step
//!    that takes the log lock; appends and reads go on meanwhile.
//!
//! Segments are rewritten oldest first, each swap on its own, so a crash between two swaps
//! leaves a log in which every removed record still has a newer version (a tombstone is only
//! dropped once every older version of its key sits in an earlier or the same segment, which
//! has then already been swapped).
//!
//! **Key hashing.** The map holds a 128-bit hash of each key (two outputs of std's keyed
//! `RandomState` hasher, with keys drawn at random for each pass), not the key bytes: a 24-byte
//! entry (30 to 60 bytes with table overhead) per distinct key however long keys are, at the
//! price of a collision chance of roughly `n² / 2¹²⁹` for `n` keys (about 10⁻²¹ for a billion
//! keys). A collision would drop the latest value of one of the two keys; as the hash keys are
//! secret and change every pass, producers cannot craft collisions. Kafka makes the same trade
//! with MD5. The map is not bounded: a pass over a log with very many distinct keys needs memory
//! in proportion.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use super::batch::{
    BatchError, BatchHeader, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, HEADER_LEN,
    LOG_OVERHEAD,
};
use super::config::LogConfig;
use super::partition_log::{Log, SealedSegment};
use super::segment;

mod txn;

use txn::{MarkerFate, TxnPlan, TxnScan};

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;
/// Header fields the cleaner patches (see the layout in [`super::batch`]).
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRS_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
/// Base sequence of batches from producers without idempotence.
const NO_SEQUENCE: i32 = -1;

/// Why a cleaning pass over one log failed. The log is left as it was, except for segments
/// already swapped, each of which is a valid cleaned version of its original.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Reading a segment or writing the cleaned file failed.
    #[error("log cleaner I/O error: {0}")]
    Io(#[from] io::Error),
    /// A sealed segment holds a batch that does not validate (length, magic or CRC).
    #[error("corrupt batch in segment {segment} at position {position}: {source}")]
    Corrupt {
        /// Base offset of the segment.
        segment: i64,
        /// Byte position of the batch in the segment file.
        position: u64,
        /// What is wrong with it.
        source: BatchError,
    },
    /// The records of a batch could not be decoded (for example an unknown codec).
    #[error("cannot decode records of the batch at offset {offset}: {reason}")]
    Decode {
        /// Base offset of the batch.
        offset: i64,
        /// The decoder's message.
        reason: String,
    },
    /// The surviving records of a batch could not be encoded into one batch.
    #[error("cannot re-encode the batch at offset {offset}: {reason}")]
    Encode {
        /// Base offset of the original batch.
        offset: i64,
        /// The encoder's message, or what was wrong with its output.
        reason: String,
    },
}

/// What one cleaning pass over one log did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Distinct keys (key hashes) in the offset map.
    pub keys: usize,
    /// Records at or after this offset were not considered for removal (the active segment, or
    /// the first batch younger than `min.compaction.lag.ms`); the next pass is dirty from here.
    pub clean_horizon: i64,
    /// Segments replaced by a cleaned copy.
    pub segments_rewritten: usize,
    /// Segments left alone because nothing in them could be removed.
    pub segments_unchanged: usize,
    /// Cleaned copies discarded because retention, DeleteRecords or truncation changed or
    /// removed the segment during the pass.
    pub segments_skipped: usize,
    /// Records removed, tombstones included.
    pub records_removed: u64,
    /// Tombstones removed because they outlived `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Transaction markers removed (their transaction had no data left and their delete
    /// horizon had passed).
    pub markers_removed: u64,
    /// Transaction markers given a delete horizon because their transaction has no data left.
    pub markers_stamped: u64,
    /// From this time on a further pass would remove transaction markers (or stamp them),
    /// whatever the dirty ratio: the earliest delete horizon of a stamped marker still kept, or
    /// now when this pass removed transactional batches whose marker can be stamped next.
    pub markers_due_ms: Option<i64>,
    /// Batches re-encoded because some, but not all, of their records survived.
    pub batches_reencoded: u64,
    /// Size of the rewritten segments before cleaning.
    pub bytes_before: u64,
    /// Size of the rewritten segments after cleaning.
    pub bytes_after: u64,
}

/// Compact the sealed segments of `log` once, now, whatever its dirty ratio.
///
/// Does nothing (and returns empty stats) unless `cleanup.policy` contains `compact`. Reads
/// the config once at the start. Which records go:
///
/// - a keyed record is removed when a record with the same key and a higher offset exists in
///   a sealed segment. The active segment is never read, so a record whose only newer version
///   is in the active segment stays until that segment is sealed: conservative, never wrong;
/// - a tombstone (null value) that is the latest version of its key is removed once its batch's
///   max timestamp is older than `now_ms - delete.retention.ms`;
/// - nothing at or after the first batch whose max timestamp is newer than
///   `now_ms - min.compaction.lag.ms` is removed (when the lag is positive), nor is anything in
///   the active segment. Records there still supersede older ones;
/// - records without a key, control batches, records of aborted transactions and anything at
///   or after the last stable offset (an open transaction may still abort) are never used as a
///   newer version; records of committed transactions are used like any other. Batches of
///   aborted transactions are removed;
/// - a transaction marker stays while a data batch of its transaction is in the log; once none
///   is, it gets a delete horizon of now + `delete.retention.ms` and a pass after that removes
///   it, with its aborted-transaction index entry gone before (see the `txn` module for the
///   rules, with a table);
/// - when every record of a batch goes, the batch is dropped, except that the last data batch
///   of each producer is kept as an empty batch header (61 bytes), as is its last batch when
///   that is a marker: producer sequence numbers and epochs then survive compaction. A segment
///   that would otherwise be empty keeps a header-only batch with no producer (the last batch's
///   offsets and timestamps), so segment end offsets and timestamps survive too. Empty batches
///   of producers left by earlier passes go once they are no longer their producer's last.
///
/// Re-encoded batches keep their compression, producer id and epoch, partition leader epoch,
/// transactional flag and timestamp type (with the original max timestamp under
/// `LogAppendTime`), their last offset and, for idempotent batches, the sequence numbers of every
/// surviving record; their base offset becomes that of the first survivor.
///
/// Offsets are only bounded by the active segment: once followers exist, the horizon must also
/// stay below the high watermark, or a truncation could remove the newer version of a record
/// this pass removed.
///
/// At most one pass may run on a log at a time (both would write the same `.cleaned` files);
/// [`Cleaner`] runs them one after the other.
pub fn clean_log(log: &Log, now_ms: i64) -> Result<CleanStats, CleanError> {
    let config = log.config();
    if !config.cleanup_policy.compacts() {
        return Ok(CleanStats::default());
    }
    clean_segments(log, &config, &log.sealed_segments(), now_ms)
}

fn clean_segments(
    log: &Log,
    config: &LogConfig,
    sealed: &[SealedSegment],
    now_ms: i64,
) -> Result<CleanStats, CleanError> {
    let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else { return Ok(CleanStats::default()) };
    let scan = TxnScan::new(log.aborted_txns(first.base_offset, last.next_offset));
    let plan = Plan::build(sealed, config, scan, log.last_stable_offset(), now_ms)?;
    let mut stats = CleanStats { keys: plan.latest.len(), clean_horizon: plan.horizon, ..CleanStats::default() };
    for seg in sealed {
        let path = cleaned_path(log.dir(), seg.base_offset);
        let o = match write_cleaned(seg, &plan, &path) {
            Ok(o) => o,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        stats.markers_due_ms = earliest(stats.markers_due_ms, o.waiting);
        if !o.rewritten {
            stats.segments_unchanged += 1;
            continue;
        }
        let dropped = plan.txn.dataless_aborts(seg.base_offset, seg.next_offset);
        if log.swap_cleaned(seg.base_offset, seg.size, &path, &dropped, now_ms)? {
            stats.segments_rewritten += 1;
            stats.records_removed += o.records_removed;
            stats.tombstones_removed += o.tombstones_removed;
            stats.markers_removed += o.markers_removed;
            stats.markers_stamped += o.markers_stamped;
            stats.batches_reencoded += o.batches_reencoded;
            stats.bytes_before += seg.size;
            stats.bytes_after += o.bytes_written;
            stats.markers_due_ms = earliest(stats.markers_due_ms, o.due);
        } else {
            stats.segments_skipped += 1;
        }
    }
    Ok(stats)
}

/// The earlier of two optional times.
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `<dir>/<20-digit base>.log.cleaned`, the name [`Log::swap_cleaned`] expects.
fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.cleaned", segment::file_name(base, "log")))
}

/// Sums over one [`Cleaner::run_once`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Logs that were dirty enough and got cleaned.
    pub logs_cleaned: usize,
    /// Logs whose pass failed (each failure is logged).
    pub logs_failed: usize,
    /// Records removed over all logs.
    pub records_removed: u64,
    /// Bytes freed over all logs.
    pub bytes_reclaimed: u64,
}

/// The background cleaner: decides which logs are dirty enough and cleans them.
///
/// It remembers, per partition directory and in memory only, the offset up to which it last
/// cleaned (the first dirty offset) and when a pass would next remove or stamp transaction
/// markers ([`CleanStats::markers_due_ms`]); a log is cleaned once that time comes even if
/// nothing new is dirty. After a restart every log counts as wholly dirty, so each compacted
/// log is cleaned once more than strictly needed.
#[derive(Debug, Default)]
pub struct Cleaner {
    first_dirty: HashMap<PathBuf, i64>,
    markers_due: HashMap<PathBuf, i64>,
}

impl Cleaner {
    /// A cleaner that has cleaned nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clean every log in `logs` whose dirty ratio has reached `min.cleanable.dirty.ratio`.
    ///
    /// Meant to run on a blocking thread every `log.cleaner.backoff.ms`; pass every log each
    /// time: state kept for a directory that is not passed is forgotten. A failure on one log is
    /// logged and counted, and the others are still cleaned.
    pub fn run_once<'a>(&mut self, logs: impl IntoIterator<Item = &'a Log>, now_ms: i64) -> RunStats {
        let mut run = RunStats::default();
        let mut seen = Vec::new();
        for log in logs {
            seen.push(log.dir().to_path_buf());
            match self.clean_if_dirty(log, now_ms) {
                Ok(None) => {}
                Ok(Some(s)) => {
                    tracing::info!(dir = %log.dir().display(), ?s, "compacted log");
                    run.logs_cleaned += 1;
                    run.records_removed += s.records_removed;
                    run.bytes_reclaimed += s.bytes_before.saturating_sub(s.bytes_after);
                }
                Err(e) => {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "log compaction failed");
                    run.logs_failed += 1;
                }
            }
        }
        self.first_dirty.retain(|dir, _| seen.contains(dir));
        self.markers_due.retain(|dir, _| seen.contains(dir));
        run
    }

    /// Clean `log` if it compacts and is dirty enough; `None` when it was left alone.
    pub fn clean_if_dirty(&mut self, log: &Log, now_ms: i64) -> Result<Option<CleanStats>, CleanError> {
        let config = log.config();
        if !config.cleanup_policy.compacts() {
            self.forget(log.dir());
            return Ok(None);
        }
        let sealed = log.sealed_segments();
        let mut first_dirty = self.first_dirty.get(log.dir()).copied().unwrap_or(i64::MIN);
        if first_dirty > log.log_end_offset() {
            // Truncated below what was cleaned: what follows was written since.
            first_dirty = i64::MIN;
        }
        let lag_cutoff = lag_cutoff(&config, now_ms);
        let extents = sealed.iter().map(|s| (s.next_offset, s.size, s.max_timestamp));
        let markers_due = self.markers_due.get(log.dir()).is_some_and(|&due| due <= now_ms);
        if !markers_due
            && dirty_ratio(extents, first_dirty, lag_cutoff) < config.min_cleanable_dirty_ratio.max(f64::MIN_POSITIVE)
        {
            return Ok(None);
        }
        let stats = clean_segments(log, &config, &sealed, now_ms)?;
        self.first_dirty.insert(log.dir().to_path_buf(), stats.clean_horizon);
        match stats.markers_due_ms {
            Some(due) => self.markers_due.insert(log.dir().to_path_buf(), due),
            None => self.markers_due.remove(log.dir()),
        };
        Ok(Some(stats))
    }

    /// The first dirty offset remembered for the log in `dir`, if it was cleaned before.
    pub fn first_dirty(&self, dir: &Path) -> Option<i64> {
        self.first_dirty.get(dir).copied()
    }

    /// Forget the log in `dir`, so that it next counts as wholly dirty. Call it when a partition
    /// is deleted (a topic re-created under the same name reuses the directory) or truncated.
    pub fn forget(&mut self, dir: &Path) {
        self.first_dirty.remove(dir);
        self.markers_due.remove(dir);
    }
}

/// Batches whose max timestamp is above this are too young to compact (`None`: no lag).
fn lag_cutoff(config: &LogConfig, now_ms: i64) -> Option<i64> {
    (config.min_compaction_lag_ms > 0).then(|| now_ms.saturating_sub(config.min_compaction_lag_ms))
}

/// Dirty bytes over cleanable bytes, from `(next_offset, size, max_timestamp)` of the sealed
/// segments, oldest first; 0 when nothing is dirty.
///
/// Cleanable segments are those before the first one holding a record younger than the lag
/// cutoff; among them, a segment is dirty when it ends after `first_dirty` (a segment only
/// partly cleaned counts as wholly dirty, so a log is cleaned a little early rather than late).
///
/// | segments (next, size, ts)  | first dirty | cutoff | ratio |
/// |----------------------------|-------------|--------|-------|
/// | (10,100,5) (20,100,5)      | MIN         | none   | 1.0   |
/// | (10,100,5) (20,300,5)      | 10          | none   | 0.75  |
/// | (10,100,5) (20,100,5)      | 20          | none   | 0.0   |
/// | (10,100,5) (20,100,50)     | 10          | 40     | 0.0   |
fn dirty_ratio(segments: impl IntoIterator<Item = (i64, u64, i64)>, first_dirty: i64, lag_cutoff: Option<i64>) -> f64 {
    let (mut clean, mut dirty) = (0u64, 0u64);
    for (next_offset, size, max_ts) in segments {
        if lag_cutoff.is_some_and(|c| max_ts > c) {
            break;
        }
        if next_offset > first_dirty {
            dirty += size;
        } else {
            clean += size;
        }
    }
    if dirty == 0 {
        0.0
    } else {
        dirty as f64 / (clean + dirty) as f64
    }
}

/// 128-bit key hashes under keys drawn at random for one pass.
struct KeyHasher(RandomState, RandomState);

impl KeyHasher {
    fn new() -> Self {
        Self(RandomState::new(), RandomState::new())
    }
    fn hash(&self, key: &[u8]) -> u128 {
        (u128::from(self.0.hash_one(key)) << 64) | u128::from(self.1.hash_one(key))
    }
}

/// What the map phase learned; decides the fate of each batch in the rewrite phase.
struct Plan {
    hasher: KeyHasher,
    /// Key hash -> offset of the latest version that may supersede others.
    latest: HashMap<u128, i64>,
    /// Batches starting at or after this offset are kept whole.
    horizon: i64,
    /// Tombstones in batches whose max timestamp is below this may go.
    tombstone_cutoff: i64,
    /// Transactions and producers: aborted data, markers, batches kept for producer state.
    txn: TxnPlan,
    /// The pass's clock.
    now_ms: i64,
    /// `delete.retention.ms`.
    delete_retention_ms: i64,
}

/// The fate of one batch.
enum Fate {
    /// Copy the batch as it is; a marker waiting for its delete horizon names it.
    Keep { waiting: Option<i64> },
    /// Write these bytes instead (possibly none).
    Replace { bytes: Vec<u8>, change: Change },
}

/// What replacing a batch changed.
#[derive(Default)]
struct Change {
    removed: u64,
    tombstones: u64,
    reencoded: bool,
    marker_removed: bool,
    /// The delete horizon a marker was stamped with.
    stamped: Option<i64>,
    /// A whole transactional data batch went: its marker may be stamped by the next pass.
    txn_batch_dropped: bool,
}

const KEEP: Fate = Fate::Keep { waiting: None };

impl Plan {
    fn build(
        sealed: &[SealedSegment],
        config: &LogConfig,
        mut txn: TxnScan,
        stable: i64,
        now_ms: i64,
    ) -> Result<Self, CleanError> {
        let hasher = KeyHasher::new();
        let mut latest = HashMap::new();
        let mut horizon = None;
        let cutoff = lag_cutoff(config, now_ms);
        for seg in sealed {
            let mut reader = BatchReader::new(seg);
            while let Some(StoredBatch { header: h, raw, .. }) = reader.next()? {
                if horizon.is_none() && (cutoff.is_some_and(|c| h.max_timestamp > c) || h.base_offset >= stable) {
                    horizon = Some(h.base_offset);
                }
                if txn.observe(&h, raw) {
                    continue;
                }
                if h.is_control() || h.record_count == 0 || h.base_offset >= stable {
                    continue;
                }
                for r in decode(&h, raw)? {
                    if let Some(key) = &r.key {
                        latest.insert(hasher.hash(key), r.offset);
                    }
                }
            }
        }
        let end = sealed.last().map(|s| s.next_offset).unwrap_or(0);
        Ok(Self {
            hasher,
            latest,
            horizon: horizon.unwrap_or(end),
            tombstone_cutoff: now_ms.saturating_sub(config.delete_retention_ms),
            txn: txn.finish(),
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
        })
    }

    fn fate(&self, h: &BatchHeader, raw: &[u8]) -> Result<Fate, CleanError> {
        if h.base_offset >= self.horizon {
            return Ok(KEEP);
        }
        if h.is_control() {
            let change = match self.txn.marker_fate(h, raw, self.now_ms, self.delete_retention_ms) {
                MarkerFate::Keep => return Ok(KEEP),
                MarkerFate::Wait(horizon) => return Ok(Fate::Keep { waiting: Some(horizon) }),
                MarkerFate::Stamp(bytes, horizon) => {
                    return Ok(Fate::Replace { bytes, change: Change { stamped: Some(horizon), ..Change::default() } })
                }
                MarkerFate::Remove => Change { marker_removed: true, ..Change::default() },
            };
            return Ok(Fate::Replace { bytes: Vec::new(), change });
        }
        if h.record_count == 0 {
            // Emptied by an earlier pass, or a placeholder keeping a segment's offsets.
            if h.producer_id < 0 || self.txn.keep_empty(h) {
                return Ok(KEEP);
            }
            let change = Change { txn_batch_dropped: h.is_transactional(), ..Change::default() };
            return Ok(Fate::Replace { bytes: Vec::new(), change });
        }
        let records = decode(h, raw)?;
        let tombstones_expired = h.max_timestamp < self.tombstone_cutoff;
        let (mut removed, mut tombstones) = (0u64, 0u64);
        let mut survivors = Vec::with_capacity(records.len());
        let aborted = self.txn.is_aborted(h.base_offset);
        for r in records {
            if aborted {
                removed += 1;
                continue;
            }
            let latest = r.key.as_ref().and_then(|k| self.latest.get(&self.hasher.hash(k)));
            let keep = match latest {
                Some(&l) if l > r.offset => false,
                Some(&l) if l == r.offset && r.value.is_none() && tombstones_expired => {
                    tombstones += 1;
                    false
                }
                _ => true,
            };
            if keep {
                survivors.push(r);
            } else {
                removed += 1;
            }
        }
        if removed == 0 {
            return Ok(KEEP);
        }
        let (bytes, reencoded) = if !survivors.is_empty() {
            (reencode(h, survivors)?, true)
        } else if self.txn.keep_empty(h) {
            (empty_batch(raw), false)
        } else {
            (Vec::new(), false)
        };
        let txn_batch_dropped = bytes.is_empty() && h.is_transactional();
        Ok(Fate::Replace {
            bytes,
            change: Change { removed, tombstones, reencoded, txn_batch_dropped, ..Change::default() },
        })
    }
}

/// Per-segment result of the rewrite phase.
#[derive(Default)]
struct SegmentOutcome {
    /// A cleaned copy was written (else nothing in the segment could change).
    rewritten: bool,
    records_removed: u64,
    tombstones_removed: u64,
    markers_removed: u64,
    markers_stamped: u64,
    batches_reencoded: u64,
    bytes_written: u64,
    /// The earliest delete horizon of a marker left waiting for it.
    waiting: Option<i64>,
    /// When a later pass can do more once this copy is swapped in (see
    /// [`CleanStats::markers_due_ms`]).
    due: Option<i64>,
}

/// Write the cleaned copy of `seg` to `path` and fsync it; no file when nothing in the segment
/// can change.
fn write_cleaned(seg: &SealedSegment, plan: &Plan, path: &Path) -> Result<SegmentOutcome, CleanError> {
    let mut reader = BatchReader::new(seg);
    let mut out: Option<BufWriter<File>> = None;
    let mut o = SegmentOutcome::default();
    let mut last_header = [0u8; HEADER_LEN];
    while let Some(StoredBatch { position: pos, header: h, raw }) = reader.next()? {
        last_header.copy_from_slice(&raw[..HEADER_LEN]);
        match plan.fate(&h, raw)? {
            Fate::Keep { waiting } => {
                if let Some(w) = out.as_mut() {
                    w.write_all(raw)?;
                }
                o.bytes_written += raw.len() as u64;
                o.waiting = earliest(o.waiting, waiting);
            }
            Fate::Replace { bytes, change: c } => {
                if out.is_none() {
                    // Everything before the first change is kept as it is.
                    out = Some(open_with_prefix(path, &seg.file, pos)?);
                }
                let w = out.as_mut().expect("opened above");
                w.write_all(&bytes)?;
                o.bytes_written += bytes.len() as u64;
                o.records_removed += c.removed;
                o.tombstones_removed += c.tombstones;
                o.batches_reencoded += u64::from(c.reencoded);
                o.markers_removed += u64::from(c.marker_removed);
                o.markers_stamped += u64::from(c.stamped.is_some());
                o.due = earliest(o.due, c.stamped);
                if c.txn_batch_dropped {
                    o.due = earliest(o.due, Some(plan.now_ms));
                }
            }
        }
    }
    let Some(mut w) = out else { return Ok(o) };
    if o.bytes_written == 0 {
        // Keep the segment's end offset and timestamp: a header of its last batch, with no
        // records and no producer.
        let empty = placeholder_batch(&last_header);
        w.write_all(&empty)?;
        o.bytes_written = empty.len() as u64;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    o.rewritten = true;
    Ok(o)
}

/// Create `path` and copy the first `len` bytes of `src` into it.
fn open_with_prefix(path: &Path, src: &File, len: u64) -> io::Result<BufWriter<File>> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    let mut w = BufWriter::with_capacity(READ_CHUNK, file);
    let mut buf = vec![0u8; READ_CHUNK.min(len as usize)];
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], pos)?;
        w.write_all(&buf[..n])?;
        pos += n as u64;
    }
    Ok(w)
}

/// Decode the records of one batch.
fn decode(h: &BatchHeader, raw: &[u8]) -> Result<Vec<Record>, CleanError> {
    super::validate::decode_batch(raw)
        .map(|set| set.records)
        .map_err(|reason| CleanError::Decode { offset: h.base_offset, reason })
}

/// Encode the surviving records of the batch `h` as one batch at their original offsets.
fn reencode(h: &BatchHeader, mut records: Vec<Record>) -> Result<Vec<u8>, CleanError> {
    let err = |reason: String| CleanError::Encode { offset: h.base_offset, reason };
    let compression = match h.compression() {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        c => return Err(err(format!("unknown compression codec {c}"))),
    };
    // The encoder starts a new batch whenever `offset - sequence` changes, so give every record
    // the sequence its offset implies; for idempotent batches these are the real sequences.
    for r in &mut records {
        r.sequence = h.base_sequence.wrapping_add((r.offset - h.base_offset) as i32);
    }
    let mut buf = Vec::new();
    let options = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| err(e.to_string()))?;
    let new = BatchHeader::parse(&buf).map_err(|e| err(e.to_string()))?;
    if new.size != buf.len() || new.record_count as usize != records.len() {
        return Err(err("encoder did not produce exactly one batch".into()));
    }
    // Keep the original last offset, so the batch (and segment) still ends where it did, and
    // the last sequence number of an idempotent batch stays base sequence + last offset delta.
    put_i32(&mut buf, LAST_OFFSET_DELTA_AT, (h.last_offset() - new.base_offset) as i32);
    if h.base_sequence == NO_SEQUENCE {
        put_i32(&mut buf, BASE_SEQUENCE_AT, NO_SEQUENCE);
    }
    if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
        // The encoder knows only create time: restore the type and the broker's timestamp.
        let attrs = new.attributes | ATTR_LOG_APPEND_TIME;
        buf[ATTRS_AT..ATTRS_AT + 2].copy_from_slice(&attrs.to_be_bytes());
        buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&h.max_timestamp.to_be_bytes());
    }
    seal_crc(&mut buf);
    Ok(buf)
}

/// The header of the batch `raw` with no records (and so no compression).
fn empty_batch(raw: &[u8]) -> Vec<u8> {
    let mut b = raw[..HEADER_LEN].to_vec();
    put_i32(&mut b, LENGTH_AT, (HEADER_LEN - LOG_OVERHEAD) as i32);
    let attrs = i16::from_be_bytes([b[ATTRS_AT], b[ATTRS_AT + 1]]) & !0x7;
    b[ATTRS_AT..ATTRS_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    put_i32(&mut b, RECORD_COUNT_AT, 0);
    seal_crc(&mut b);
    b
}

/// A batch with the offsets and max timestamp of the batch `raw`, but no records, no producer
/// and no flags: it keeps a segment's end offset and timestamps without meaning anything to
/// producer state or transactions.
fn placeholder_batch(raw: &[u8]) -> Vec<u8> {
    let mut b = empty_batch(raw);
    let attrs = i16::from_be_bytes([b[ATTRS_AT], b[ATTRS_AT + 1]]);
    if attrs & ATTR_DELETE_HORIZON != 0 {
        let max_ts: [u8; 8] = b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].try_into().expect("8 bytes");
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&max_ts);
    }
    let attrs = attrs & !(ATTR_CONTROL | ATTR_TRANSACTIONAL | ATTR_DELETE_HORIZON);
    b[ATTRS_AT..ATTRS_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
    b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
    put_i32(&mut b, BASE_SEQUENCE_AT, NO_SEQUENCE);
    seal_crc(&mut b);
    b
}

fn put_i32(buf: &mut [u8], at: usize, v: i32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Recompute the CRC-32C of a batch after its header changed.
fn seal_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRS_AT..]);
    batch[CRC_AT..ATTRS_AT].copy_from_slice(&crc.to_be_bytes());
}

/// One batch as [`BatchReader`] found it.
struct StoredBatch<'a> {
    /// Byte position in the segment file.
    position: u64,
    /// Its parsed, CRC-checked header.
    header: BatchHeader,
    /// The whole batch.
    raw: &'a [u8],
}

/// Reads the batches of a sealed segment in order, a chunk at a time, verifying each CRC.
struct BatchReader<'a> {
    seg: &'a SealedSegment,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_at: u64,
    /// File position of the next batch.
    pos: u64,
}

impl<'a> BatchReader<'a> {
    fn new(seg: &'a SealedSegment) -> Self {
        Self { seg, buf: Vec::new(), buf_at: 0, pos: 0 }
    }

    /// The next batch: its position, header and bytes; `None` at the end of the segment.
    fn next(&mut self) -> Result<Option<StoredBatch<'_>>, CleanError> {
        let (pos, segment) = (self.pos, self.seg.base_offset);
        if pos >= self.seg.size {
            return Ok(None);
        }
        let corrupt = |source| CleanError::Corrupt { segment, position: pos, source };
        let have = (self.seg.size - pos) as usize;
        if !self.fill(HEADER_LEN)? {
            return Err(corrupt(BatchError::Truncated { need: HEADER_LEN, have }));
        }
        let size = BatchHeader::parse_prefix(self.window()).map_err(corrupt)?.size;
        if !self.fill(size)? {
            return Err(corrupt(BatchError::Truncated { need: size, have }));
        }
        let start = (pos - self.buf_at) as usize;
        let raw = &self.buf[start..start + size];
        let h = BatchHeader::parse_checked(raw).map_err(corrupt)?;
        self.pos += size as u64;
        Ok(Some(StoredBatch { position: pos, header: h, raw }))
    }

    /// Buffered bytes from the next batch on.
    fn window(&self) -> &[u8] {
        &self.buf[(self.pos - self.buf_at) as usize..]
    }

    /// Make sure `need` bytes from the next batch on are buffered; false if the segment ends
    /// sooner.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.window().len() >= need {
            return Ok(true);
        }
        let left = self.seg.size - self.pos;
        if left < need as u64 {
            return Ok(false);
        }
        let len = (need.max(READ_CHUNK) as u64).min(left) as usize;
        self.buf.resize(len, 0);
        self.seg.file.read_exact_at(&mut self.buf, self.pos)?;
        self.buf_at = self.pos;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::log::batch::{self, test_util::keyed_batch};

    type Kv = (String, Option<String>);
    /// (offset, key, value) as a consumer reads it.
    type Row = (i64, String, Option<String>);

    fn kv(k: &str, v: Option<&str>) -> Kv {
        (k.to_string(), v.map(str::to_string))
    }

    fn config(overrides: &[(&str, &str)]) -> LogConfig {
        let base = [("cleanup.policy", "compact"), ("segment.bytes", "1024")];
        LogConfig::default().with_overrides(base.iter().chain(overrides).copied()).unwrap()
    }

    fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
        Log::open(dir, config, clean, 0).unwrap().0
    }

    /// Append one batch; returns the rows it wrote.
    fn append(log: &Log, kvs: Vec<Kv>, ts: i64, c: Compression) -> Vec<Row> {
        let info = log.append(&keyed_batch(kvs.clone(), ts, c), ts).unwrap();
        kvs.into_iter().enumerate().map(|(i, (k, v))| (info.base_offset + i as i64, k, v)).collect()
    }

    /// Append single-record batches with unique keys until the log has `segments` segments.
    fn fill(log: &Log, segments: usize, ts: i64) -> Vec<Row> {
        let mut rows = Vec::new();
        while log.segment_count() < segments {
            let key = format!("filler-{}", log.log_end_offset());
            rows.extend(append(log, vec![(key, Some("x".repeat(100)))], ts, Compression::None));
        }
        rows
    }

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// Every record from the log start on, in offset order.
    fn read_all(log: &Log) -> Vec<Row> {
        let (mut rows, mut offset) = (Vec::new(), log.log_start_offset());
        while offset < log.log_end_offset() {
            let Some(slice) = log.read(offset, u64::MAX).unwrap().slice else {
                break;
            };
            let mut bytes = slice.read_bytes().unwrap();
            for item in batch::batches(&bytes) {
                offset = item.unwrap().1.next_offset();
            }
            for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
                rows.extend(set.records.into_iter().map(|r| (r.offset, text(r.key.unwrap()), r.value.map(text))));
            }
        }
        rows
    }

    /// The stored bytes of the batch holding `offset`.
    fn raw_batch(log: &Log, offset: i64) -> Bytes {
        log.read(offset, 1).unwrap().slice.unwrap().read_bytes().unwrap()
    }

    fn active_base(log: &Log) -> i64 {
        log.sealed_segments().last().unwrap().next_offset
    }

    /// What compaction must leave: the latest version per key among sealed segments, and the
    /// whole active segment.
    fn expected(rows: &[Row], active_base: i64) -> Vec<Row> {
        let latest: HashMap<&str, i64> =
            rows.iter().filter(|r| r.0 < active_base).map(|r| (r.1.as_str(), r.0)).collect();
        rows.iter().filter(|r| r.0 >= active_base || latest[r.1.as_str()] == r.0).cloned().collect()
    }

    #[test]
    fn keeps_latest_version_per_key_for_every_codec() {
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        for c in codecs {
            let dir = tempfile::tempdir().unwrap();
            let log = open(dir.path(), config(&[]), true);
            let mut rows = Vec::new();
            for round in 0..40 {
                let kvs = (0..4).map(|i| {
                    let v = format!("value-{round}-{i}-{}", "y".repeat(20));
                    let k = format!("key-{}", (round * 3 + i) % 7);
                    (k, if round == 20 && i == 0 { None } else { Some(v) })
                });
                rows.extend(append(&log, kvs.collect(), 1_000 + round, c));
            }
            assert!(log.sealed_segments().len() >= 2, "{c:?}: need several segments");
            let (end, active) = (log.log_end_offset(), active_base(&log));
            let want = expected(&rows, active);
            let stats = clean_log(&log, 2_000).unwrap();
            assert_eq!(read_all(&log), want, "{c:?}");
            assert_eq!(stats.records_removed as usize, rows.len() - want.len(), "{c:?}");
            assert!(stats.bytes_after < stats.bytes_before, "{c:?}");
            assert_eq!((stats.keys, stats.clean_horizon, stats.tombstones_removed), (7, active, 0), "{c:?}");
            assert_eq!(log.log_end_offset(), end);
            // A second pass finds nothing more to remove.
            let again = clean_log(&log, 2_000).unwrap();
            assert_eq!((again.records_removed, again.segments_rewritten), (0, 0), "{c:?}");
            assert_eq!(read_all(&log), want, "{c:?}");
        }
    }

    #[test]
    fn tombstones_live_for_delete_retention_ms() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[("delete.retention.ms", "1000")]), true);
        append(&log, vec![kv("a", Some("1")), kv("b", Some("1"))], 0, Compression::None);
        let tombstone = append(&log, vec![kv("a", None)], 100, Compression::None);
        let filler = fill(&log, 3, 100);
        let stats = clean_log(&log, 500).unwrap();
        assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 0));
        let mut want = vec![(1, "b".to_string(), Some("1".to_string())), tombstone[0].clone()];
        want.extend(filler.iter().cloned());
        assert_eq!(read_all(&log), want);
        let stats = clean_log(&log, 5_000).unwrap();
        assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 1));
        want.remove(1);
        assert_eq!(read_all(&log), want);
    }

    #[test]
    fn fully_kept_batches_are_byte_identical_and_partial_ones_reencoded() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let unique = append(&log, (0..5).map(|i| kv(&format!("u{i}"), Some("u"))).collect(), 10, Compression::Gzip);
        let partial = append(&log, (0..4).map(|i| kv(&format!("k{i}"), Some("old"))).collect(), 20, Compression::Lz4);
        append(&log, vec![kv("k0", Some("new")), kv("k1", Some("new"))], 30, Compression::None);
        fill(&log, 2, 40);
        let unique_before = raw_batch(&log, unique[0].0);
        let stats = clean_log(&log, 50).unwrap();
        assert_eq!((stats.records_removed, stats.batches_reencoded), (2, 1));
        assert_eq!(raw_batch(&log, unique[0].0), unique_before);
        let raw = raw_batch(&log, partial[0].0);
        let h = BatchHeader::parse_checked(&raw).unwrap();
        assert_eq!(h.size, raw.len());
        assert_eq!((h.base_offset, h.last_offset(), h.record_count), (partial[2].0, partial[3].0, 2));
        assert_eq!((h.compression(), h.base_sequence, h.producer_id), (3, -1, -1));
        assert_eq!((h.base_timestamp, h.max_timestamp), (22, 23));
        let rows: Vec<i64> = read_all(&log).iter().map(|r| r.0).take(7).collect();
        assert_eq!(rows, [0, 1, 2, 3, 4, partial[2].0, partial[3].0]);
    }

    #[test]
    fn appends_and_reopen_after_swap() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let mut rows = Vec::new();
        for round in 0..30 {
            let kvs = (0..3).map(|i| kv(&format!("k{i}"), Some(&format!("v{round}")))).collect();
            rows.extend(append(&log, kvs, round, Compression::Zstd));
        }
        let want = expected(&rows, active_base(&log));
        assert!(clean_log(&log, 100).unwrap().segments_rewritten > 0);
        let mut more = want.clone();
        for round in 30..40 {
            more.extend(append(&log, vec![kv("k9", Some(&format!("v{round}")))], round, Compression::None));
        }
        assert_eq!(read_all(&log), more);
        let (end, start) = (log.log_end_offset(), log.log_start_offset());
        drop(log);
        for clean in [false, true] {
            let log = open(dir.path(), config(&[]), clean);
            assert_eq!((log.log_end_offset(), log.log_start_offset()), (end, start));
            assert_eq!(read_all(&log), more, "clean={clean}");
        }
    }

    #[test]
    fn leftover_cleaned_file_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let rows = append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
        drop(log);
        let leftover = cleaned_path(dir.path(), 0);
        fs::write(&leftover, b"half-written cleaner output").unwrap();
        let log = open(dir.path(), config(&[]), false);
        assert!(!leftover.exists());
        assert_eq!(read_all(&log), rows);
    }

    #[test]
    fn min_compaction_lag_protects_young_batches_and_those_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[("min.compaction.lag.ms", "1000")]), true);
        let old = append(&log, vec![kv("a", Some("old"))], 0, Compression::None);
        let young = append(&log, vec![kv("b", Some("young"))], 5_000, Compression::None);
        let after = append(&log, vec![kv("c", Some("1"))], 0, Compression::None);
        let latest =
            append(&log, vec![kv("a", Some("new")), kv("b", Some("new")), kv("c", Some("2"))], 0, Compression::None);
        let filler = fill(&log, 2, 0);
        let stats = clean_log(&log, 5_500).unwrap();
        assert_eq!((stats.clean_horizon, stats.records_removed), (young[0].0, 1));
        let mut want: Vec<Row> = [young.clone(), after.clone(), latest.clone(), filler.clone()].concat();
        assert_eq!(read_all(&log), want);
        let stats = clean_log(&log, 10_000).unwrap();
        assert_eq!((stats.clean_horizon, stats.records_removed), (active_base(&log), 2));
        want.drain(..2);
        assert_eq!(read_all(&log), want);
        assert_eq!(old[0].0, 0);
    }

    #[test]
    fn log_append_time_survives_reencoding() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[("message.timestamp.type", "LogAppendTime")]), true);
        let first =
            append(&log, vec![kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))], 777, Compression::Snappy);
        append(&log, vec![kv("a", Some("2"))], 800, Compression::None);
        fill(&log, 2, 900);
        assert_eq!(clean_log(&log, 1_000).unwrap().batches_reencoded, 1);
        let h = BatchHeader::parse_checked(&raw_batch(&log, first[1].0)).unwrap();
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
        assert_eq!((h.max_timestamp, h.record_count, h.compression()), (777, 2, 2));
    }

    /// One batch from producer `pid` with sequences from `base_seq`, maybe transactional.
    fn producer_batch(pid: i64, base_seq: i32, transactional: bool, kvs: &[Kv]) -> Bytes {
        let records: Vec<Record> = kvs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base_seq + i as i32,
                timestamp: 0,
                key: Some(Bytes::from(k.clone())),
                value: v.clone().map(Bytes::from),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = Vec::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::Gzip };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        Bytes::from(buf)
    }

    #[test]
    fn idempotent_batches_keep_sequences_and_the_last_batch_per_producer() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let x = log
            .append(&producer_batch(7, 0, false, &[kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))]), 0)
            .unwrap();
        log.append(&producer_batch(7, 3, false, &[kv("a", Some("2")), kv("b", Some("2"))]), 0).unwrap();
        let z = log.append(&producer_batch(9, 0, false, &[kv("d", Some("1"))]), 0).unwrap();
        append(&log, vec![kv("d", Some("2"))], 0, Compression::None);
        fill(&log, 2, 0);
        assert_eq!(clean_log(&log, 10).unwrap().records_removed, 3);
        let h = BatchHeader::parse_checked(&raw_batch(&log, x.base_offset)).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.base_sequence), (x.base_offset + 2, x.last_offset, 2));
        assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (7, 3, 1));
        let mut raw = raw_batch(&log, x.base_offset);
        let rec = &RecordBatchDecoder::decode(&mut raw).unwrap().records[0];
        assert_eq!((rec.offset, rec.sequence), (x.base_offset + 2, 2));
        let empty = raw_batch(&log, z.base_offset);
        let h = BatchHeader::parse_checked(&empty).unwrap();
        assert_eq!((h.base_offset, h.record_count, h.producer_id, h.size), (z.base_offset, 0, 9, HEADER_LEN));
    }

    #[test]
    fn open_transactions_are_left_alone_and_aborted_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let committed = append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
        let txn = log.append(&producer_batch(11, 0, true, &[kv("a", Some("maybe-aborted"))]), 0).unwrap();
        fill(&log, 2, 0);
        // Open: the transaction's record may still abort, so it supersedes nothing, and nothing
        // from the first open transaction on is touched.
        clean_log(&log, 10).unwrap();
        let rows = read_all(&log);
        assert_eq!((rows[0].0, rows[1].0), (committed[0].0, txn.base_offset));
        log.append_marker(11, 3, false, 0, 0).unwrap();
        fill(&log, 3, 0);
        clean_log(&log, 10).unwrap();
        let a: Vec<_> = read_all(&log).into_iter().filter(|r| r.1 == "a").map(|r| r.2).collect();
        assert_eq!(a, vec![Some("1".to_string())], "the aborted record is gone, the committed one stays");
    }

    #[test]
    fn committed_transactional_records_supersede_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
        log.append(&producer_batch(11, 0, true, &[kv("a", Some("2"))]), 0).unwrap();
        log.append_marker(11, 3, true, 0, 0).unwrap();
        fill(&log, 3, 0);
        assert!(clean_log(&log, 10).unwrap().records_removed >= 1);
        let a: Vec<_> = read_all(&log).into_iter().filter(|r| r.1 == "a").map(|r| r.2).collect();
        assert_eq!(a, vec![Some("2".to_string())]);
    }

    #[test]
    fn only_compacted_logs_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[("cleanup.policy", "delete")]), true);
        for _ in 0..20 {
            append(&log, vec![kv("a", Some(&"z".repeat(100)))], 0, Compression::None);
        }
        let before = read_all(&log);
        assert_eq!(clean_log(&log, 10).unwrap(), CleanStats::default());
        assert_eq!(Cleaner::new().clean_if_dirty(&log, 10).unwrap(), None);
        assert_eq!(read_all(&log), before);
    }

    #[test]
    fn corrupt_segment_fails_the_pass_and_leaves_no_cleaned_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        for _ in 0..20 {
            append(&log, vec![kv("a", Some(&"z".repeat(100)))], 0, Compression::None);
        }
        let seg = &log.sealed_segments()[0];
        let mut byte = [0u8; 1];
        seg.file.read_exact_at(&mut byte, 70).unwrap();
        seg.file.write_all_at(&[byte[0] ^ 0xff], 70).unwrap();
        let err = clean_log(&log, 10).unwrap_err();
        assert!(
            matches!(err, CleanError::Corrupt { segment: 0, position: 0, source: BatchError::Crc { .. } }),
            "{err}"
        );
        assert!(!cleaned_path(dir.path(), 0).exists());
    }

    #[test]
    fn cleaner_follows_the_dirty_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let write = |rounds: usize| {
            for _ in 0..rounds {
                append(&log, vec![kv("a", Some(&"z".repeat(100))), kv("b", Some("1"))], 0, Compression::None);
            }
        };
        write(30);
        let mut cleaner = Cleaner::new();
        let run = cleaner.run_once([&log], 10);
        assert_eq!((run.logs_cleaned, run.logs_failed), (1, 0));
        assert!(run.records_removed > 0 && run.bytes_reclaimed > 0);
        assert_eq!(cleaner.first_dirty(log.dir()), Some(active_base(&log)));
        assert_eq!(cleaner.run_once([&log], 10).logs_cleaned, 0, "nothing new is dirty");
        write(30);
        assert_eq!(cleaner.run_once([&log], 10).logs_cleaned, 1);
        assert_eq!(cleaner.run_once(std::iter::empty(), 10), RunStats::default());
        assert_eq!(cleaner.first_dirty(log.dir()), None, "forgotten when not passed");
    }

    #[test]
    fn segment_that_loses_everything_keeps_an_empty_header() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        for ts in 0..30 {
            append(&log, vec![kv("a", Some(&"z".repeat(100)))], ts, Compression::None);
        }
        let sealed = log.sealed_segments();
        assert!(sealed.len() >= 3);
        let (end, count) = (log.log_end_offset(), log.segment_count());
        clean_log(&log, 100).unwrap();
        let after = log.sealed_segments();
        assert_eq!((log.segment_count(), log.log_end_offset()), (count, end));
        for (old, new) in sealed.iter().zip(&after).take(sealed.len() - 1) {
            assert_eq!(
                (new.base_offset, new.next_offset, new.size),
                (old.base_offset, old.next_offset, HEADER_LEN as u64)
            );
            assert_eq!(new.max_timestamp, old.max_timestamp);
        }
        let rows = read_all(&log);
        assert_eq!(rows.iter().filter(|r| r.0 < active_base(&log)).count(), 1);
    }

    #[test]
    fn segments_removed_during_a_pass_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        for _ in 0..30 {
            append(&log, vec![kv("a", Some(&"z".repeat(100))), kv("b", Some("1"))], 0, Compression::None);
        }
        let sealed = log.sealed_segments();
        // DeleteRecords drops the first segment after the pass listed it.
        log.delete_records(sealed[0].next_offset).unwrap();
        let stats = clean_segments(&log, &log.config(), &sealed, 10).unwrap();
        assert_eq!(stats.segments_skipped, 1);
        assert_eq!(stats.segments_rewritten, sealed.len() - 1);
        assert!(!cleaned_path(dir.path(), 0).exists());
        let rows = read_all(&log);
        assert_eq!(rows.iter().filter(|r| r.0 < active_base(&log)).count(), 2);
    }

    /// Segments as (next offset, size, max timestamp), first dirty, lag cutoff, ratio.
    type Case = (&'static [(i64, u64, i64)], i64, Option<i64>, f64);

    #[test]
    fn dirty_ratio_table() {
        let cases: [Case; 6] = [
            (&[(10, 100, 5), (20, 100, 5)], i64::MIN, None, 1.0),
            (&[(10, 100, 5), (20, 300, 5)], 10, None, 0.75),
            (&[(10, 100, 5), (20, 100, 5)], 20, None, 0.0),
            (&[(10, 100, 5), (20, 100, 50)], 10, Some(40), 0.0),
            (&[(10, 100, 5), (20, 100, 50)], i64::MIN, Some(40), 1.0),
            (&[], i64::MIN, None, 0.0),
        ];
        for (segments, first_dirty, cutoff, want) in cases {
            assert_eq!(dirty_ratio(segments.iter().copied(), first_dirty, cutoff), want, "{segments:?} {first_dirty}");
        }
    }
}
