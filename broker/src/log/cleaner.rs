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
/// The horizon never passes the high watermark: the last stable offset the log reports is
/// capped by it, so a truncation of a replicated log can never remove the newer version of a
/// record this pass removed.
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
mod tests;
