//! One log segment: `<base>.log` plus its `.index` and `.timeindex`.
//!
//! The segment owns the arithmetic of positions; the [`super::Log`] above it decides when to roll,
//! flush and delete. File names carry the base offset as 20 digits, as in Kafka, so sorting names
//! sorts segments. `<base>.txnindex` and `<base>.snapshot` are reserved for the transaction index
//! and producer-state snapshots and are deleted with the segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::OffsetIndex;
use super::time_index::TimeIndex;

/// Kafka's default `index.interval.bytes`.
pub const DEFAULT_INDEX_INTERVAL: u64 = 4096;

/// Extensions of the files that make up a segment.
pub const SEGMENT_FILE_EXTS: [&str; 5] = ["log", "index", "timeindex", "txnindex", "snapshot"];

/// `00000000000000000042.log` for base offset 42 and extension `log`.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// What a recovery scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Valid batches kept.
    pub batches: usize,
    /// Bytes cut from the end of the segment (torn or corrupt tail).
    pub truncated_bytes: u64,
}

/// A contiguous byte range of a segment file, shared so it can be sent after the lock is gone.
#[derive(Debug, Clone)]
pub struct FileSlice {
    /// The segment file; keeps the inode alive even if the segment is deleted meanwhile.
    pub file: Arc<File>,
    /// Start position in the file.
    pub position: u64,
    /// Length in bytes (whole batches).
    pub len: u64,
    /// Offset after the last batch in the slice.
    pub end_offset: i64,
}

impl FileSlice {
    /// Copy the bytes into memory (for in-process readers and tests; the server uses sendfile).
    pub fn read_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    file: Arc<File>,
    size: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Wall-clock ms when the segment was created or opened; drives `segment.ms`.
    created_ms: i64,
    /// `index.interval.bytes`: log bytes between two index entries.
    index_interval: u64,
    /// An index write failed (warned about once per segment).
    index_write_failed: bool,
}

impl Segment {
    /// Create an empty segment at `base_offset`, replacing any files of that name.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        for ext in ["log", "index", "timeindex"] {
            match fs::remove_file(dir.join(file_name(base_offset, ext))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Self::open_files(dir, base_offset, now_ms)
    }

    /// Open an existing segment, trusting its indexes (after a clean shutdown).
    ///
    /// The tail after the last index entry is scanned for the next offset and max timestamp.
    /// Index files that are missing, torn, or whose last entries do not match the log are an
    /// error (`NotFound` or `InvalidData`): the caller recovers the segment instead.
    pub fn open(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        let index_lens = || -> io::Result<[u64; 2]> {
            let len = |ext| fs::metadata(dir.join(file_name(base_offset, ext))).map(|m| m.len());
            Ok([len("index")?, len("timeindex")?])
        };
        // Opening an index cuts a torn or unordered tail; a trusted index needs no such repair.
        let lens = index_lens()?;
        let mut seg = Self::open_files(dir, base_offset, now_ms)?;
        if index_lens()? != lens {
            return Err(corrupt_index("torn or unordered entries"));
        }
        seg.check_offset_index()?;
        seg.load_tail()?;
        seg.check_time_index()?;
        seg.age_from_first_batch();
        Ok(seg)
    }

    /// The last offset-index entry must point at the start of the batch it names.
    fn check_offset_index(&self) -> io::Result<()> {
        if self.index.is_empty() {
            return Ok(());
        }
        let (offset, pos) = self.index.lookup(i64::MAX);
        if pos as u64 >= self.size || self.header_at(pos as u64)?.base_offset != offset {
            return Err(corrupt_index("offset index entry is not at its batch"));
        }
        Ok(())
    }

    /// Entries go into both indexes together, and the last time-index entry names the batch that
    /// first reached its timestamp, so that batch must have that max timestamp.
    fn check_time_index(&self) -> io::Result<()> {
        let Some((ts, offset)) = self.time_index.last_entry() else {
            return match self.index.is_empty() {
                true => Ok(()),
                false => Err(corrupt_index("time index is empty, offset index is not")),
            };
        };
        let matches = match self.position_of(offset)? {
            // `observe` starts from -1, so batches without timestamps are recorded as -1.
            Some(pos) => self.header_at(pos)?.max_timestamp.max(-1) == ts,
            None => false,
        };
        if !matches {
            return Err(corrupt_index("time index entry does not match its batch"));
        }
        Ok(())
    }

    /// Open the files without reading them; [`Segment::recover`] must run next.
    pub fn open_unchecked(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        Self::open_files(dir, base_offset, now_ms)
    }

    fn open_files(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(file_name(base_offset, "log")))?;
        let size = file.metadata()?.len();
        let index = OffsetIndex::open(&dir.join(file_name(base_offset, "index")), base_offset)?;
        let time_index = TimeIndex::open(&dir.join(file_name(base_offset, "timeindex")), base_offset)?;
        Ok(Self {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            size,
            index,
            time_index,
            bytes_since_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            created_ms: now_ms,
            index_interval: DEFAULT_INDEX_INTERVAL,
            index_write_failed: false,
        })
    }

    /// Recompute next offset and max timestamp from the last index entry to the end.
    fn load_tail(&mut self) -> io::Result<()> {
        let (_, last_index_pos) = self.index.lookup(i64::MAX);
        self.max_timestamp = self.time_index.last_timestamp().unwrap_or(-1);
        self.next_offset = self.base_offset;
        let mut pos = last_index_pos as u64;
        while pos < self.size {
            let h = self.header_at(pos)?;
            self.observe(&h);
            self.next_offset = h.next_offset();
            pos += h.size as u64;
        }
        // Bytes since the last index entry decide when the next entry goes in.
        self.bytes_since_index = self.size - last_index_pos as u64;
        Ok(())
    }

    fn observe(&mut self, h: &BatchHeader) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
    }

    /// Read and parse the batch header at `pos` (no CRC check).
    fn header_at(&self, pos: u64) -> io::Result<BatchHeader> {
        let mut h = [0u8; HEADER_LEN];
        let n = (self.size - pos).min(HEADER_LEN as u64) as usize;
        self.file.read_exact_at(&mut h[..n], pos)?;
        let header = BatchHeader::parse_prefix(&h[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if pos + header.size as u64 > self.size {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "batch runs past segment end"));
        }
        Ok(header)
    }

    /// Re-validate every batch (length, magic, CRC, offsets) and rebuild both indexes. The
    /// segment ends at the first invalid batch, but the file keeps its tail until
    /// [`Segment::cut_tail`]: the caller first deletes the segments that follow.
    pub fn recover(&mut self, expected_start: i64, index_interval: u64) -> io::Result<RecoveryStats> {
        self.index_interval = index_interval;
        self.index.clear()?;
        self.time_index.truncate_to(self.base_offset)?;
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.next_offset = self.base_offset.max(expected_start);
        let mut stats = RecoveryStats::default();
        let mut pos = 0u64;
        let mut buf = Vec::new();
        let mut first = true;
        while pos < self.size {
            let remaining = self.size - pos;
            if remaining < HEADER_LEN as u64 {
                break;
            }
            let mut prefix = [0u8; LOG_OVERHEAD];
            self.file.read_exact_at(&mut prefix, pos)?;
            let len = i32::from_be_bytes(prefix[8..12].try_into().expect("4"));
            if len < (HEADER_LEN - LOG_OVERHEAD) as i32 || LOG_OVERHEAD as u64 + len as u64 > remaining {
                break;
            }
            let size = LOG_OVERHEAD + len as usize;
            buf.resize(size, 0);
            self.file.read_exact_at(&mut buf, pos)?;
            let Ok(h) = BatchHeader::parse_checked(&buf) else { break };
            let in_order = if first { h.base_offset >= self.base_offset } else { h.base_offset >= self.next_offset };
            // The base offset is outside the CRC. Indexes hold offsets relative to the segment
            // base in 32 bits, so no batch appended here lies further out than that.
            if !in_order || h.base_offset - self.base_offset > u32::MAX as i64 - h.last_offset_delta as i64 {
                break;
            }
            self.index_batch(&h, pos);
            self.next_offset = h.next_offset();
            first = false;
            stats.batches += 1;
            pos += size as u64;
        }
        if pos < self.size {
            stats.truncated_bytes = self.size - pos;
            self.size = pos;
        }
        self.age_from_first_batch();
        Ok(stats)
    }

    /// Cut the file to the batches [`Segment::recover`] kept.
    pub fn cut_tail(&mut self) -> io::Result<()> {
        failpoint(CUT_TAIL)?;
        if self.file.metadata()?.len() > self.size {
            self.file.set_len(self.size)?;
        }
        Ok(())
    }

    /// Observe a batch and give it index entries when one is due. An index write that fails
    /// costs only an entry: indexes are sparse, lookups scan on from the entry before, and opening
    /// the segment checks both indexes and rebuilds one that disagrees with the data.
    fn index_batch(&mut self, h: &BatchHeader, pos: u64) {
        self.observe(h);
        if self.bytes_since_index >= self.index_interval {
            let res = self.index.append(h.base_offset, pos as u32);
            self.index_write_done(res);
            let res = self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.index_write_done(res);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size as u64;
    }

    fn index_write_done(&mut self, res: io::Result<()>) {
        if let Err(e) = res {
            if !std::mem::replace(&mut self.index_write_failed, true) {
                tracing::warn!(dir = %self.dir.display(), base = self.base_offset, error = %e,
                    "index write failed; lookups scan past the missing entries");
            }
        }
    }

    /// Rebuild both indexes from batch headers alone, without CRC checks: for files whose batches
    /// were validated when they were written (the cleaner's output). Fails if the headers do
    /// not tile the file.
    pub fn rebuild_indexes(&mut self, index_interval: u64) -> io::Result<()> {
        self.index_interval = index_interval;
        self.index.clear()?;
        self.time_index.truncate_to(self.base_offset)?;
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.next_offset = self.base_offset;
        let mut pos = 0u64;
        while pos < self.size {
            let h = self.header_at(pos)?;
            if h.base_offset < self.next_offset {
                return Err(corrupt_index("batch offsets go backwards"));
            }
            self.index_batch(&h, pos);
            self.next_offset = h.next_offset();
            pos += h.size as u64;
        }
        self.age_from_first_batch();
        Ok(())
    }

    /// A segment reopened after a restart keeps its age for `segment.ms`: the first batch's
    /// max timestamp (Kafka's rolling base), never later than the clock.
    fn age_from_first_batch(&mut self) {
        if self.size == 0 {
            return;
        }
        if let Ok(h) = self.header_at(0) {
            if h.max_timestamp >= 0 {
                self.created_ms = self.created_ms.min(h.max_timestamp);
            }
        }
    }

    /// fsync the `.log` file only (indexes are rebuilt or checked on open).
    pub fn flush_data(&self) -> io::Result<()> {
        sync_data(&self.file)
    }

    /// Append already-validated, offset-stamped batches, written with one `pwritev` from the
    /// given slices (no copy into a buffer first).
    ///
    /// `headers` gives each batch's position relative to the start of the appended bytes. Only a
    /// failed data write is an error (and then nothing was appended); index writes that fail are
    /// logged and skipped, so the data and the offsets handed out always agree.
    pub fn append(
        &mut self,
        bufs: &mut [IoSlice<'_>],
        headers: &[(usize, BatchHeader)],
        index_interval: u64,
    ) -> io::Result<()> {
        let start = self.size;
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if let Err(e) = failpoint(WRITE_DATA).and_then(|_| pwritev_all(&self.file, bufs, start)) {
            // Leave nothing half-written behind; if even that fails, recovery cuts the tail.
            if let Err(t) = self.file.set_len(start) {
                tracing::error!(error = %t, "cannot cut a failed append; recovery will");
            }
            return Err(e);
        }
        self.size += len;
        self.index_interval = index_interval;
        for (at, h) in headers {
            self.index_batch(h, start + *at as u64);
            self.next_offset = h.next_offset();
        }
        Ok(())
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (at least one
    /// batch, so a batch larger than `max_bytes` still makes progress). `None` past the end.
    pub fn read(&self, offset: i64, max_bytes: u64) -> io::Result<Option<FileSlice>> {
        self.read_below(offset, max_bytes, i64::MAX)
    }

    /// [`Segment::read`] of batches whose base offset is below `limit` only.
    pub fn read_below(&self, offset: i64, max_bytes: u64, limit: i64) -> io::Result<Option<FileSlice>> {
        let Some(start) = self.position_of(offset)? else { return Ok(None) };
        let first = self.header_at(start)?;
        if first.base_offset >= limit {
            return Ok(None);
        }
        let mut end = start + first.size as u64;
        let mut end_offset = first.next_offset();
        while end < self.size {
            let h = self.header_at(end)?;
            if end + h.size as u64 - start > max_bytes || h.base_offset >= limit {
                break;
            }
            end += h.size as u64;
            end_offset = h.next_offset();
        }
        Ok(Some(FileSlice { file: self.file.clone(), position: start, len: end - start, end_offset }))
    }

    /// Position of the batch holding `offset` (or the first batch after it).
    pub fn position_of(&self, offset: i64) -> io::Result<Option<u64>> {
        let (_, pos) = self.index.lookup(offset);
        let mut pos = pos as u64;
        while pos < self.size {
            let h = self.header_at(pos)?;
            if h.last_offset() >= offset {
                return Ok(Some(pos));
            }
            pos += h.size as u64;
        }
        Ok(None)
    }

    /// First offset at or after `min_offset` whose record timestamp is `>= ts`, if this segment
    /// has one.
    pub fn offset_for_timestamp(&self, ts: i64, min_offset: i64) -> io::Result<Option<i64>> {
        if self.max_timestamp < ts {
            return Ok(None);
        }
        let from = self.time_index.lookup(ts).max(min_offset);
        let Some(mut pos) = self.position_of(from)? else { return Ok(None) };
        while pos < self.size {
            let h = self.header_at(pos)?;
            if h.max_timestamp >= ts {
                if h.attributes & super::batch::ATTR_LOG_APPEND_TIME != 0 {
                    return Ok(Some(h.base_offset.max(min_offset)));
                }
                let mut raw = vec![0u8; h.size];
                self.file.read_exact_at(&mut raw, pos)?;
                let set =
                    super::validate::decode_batch(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let mut found = set.records.iter().filter(|r| r.offset >= min_offset);
                if let Some(r) = found.find(|r| r.timestamp >= ts) {
                    return Ok(Some(r.offset));
                }
            }
            pos += h.size as u64;
        }
        Ok(None)
    }

    /// Remove the batch holding `offset` and everything after it.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let Some(pos) = self.position_of(offset)? else { return Ok(()) };
        let cut = self.header_at(pos)?.base_offset;
        self.file.set_len(pos)?;
        self.size = pos;
        self.index.truncate_to_position(pos as u32)?;
        self.time_index.truncate_to(cut)?;
        self.load_tail()
    }

    /// fsync the log and both indexes.
    pub fn flush(&self) -> io::Result<()> {
        sync_data(&self.file)?;
        self.index.flush()?;
        self.time_index.flush()
    }

    /// Write the final time-index entry, as a sealed segment keeps it (if that write fails, the
    /// segment just lacks it, as after a failed index write in [`Segment::append`]).
    pub fn seal(&mut self) {
        if self.max_timestamp >= 0 {
            let res = self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.index_write_done(res);
        }
    }

    /// Delete every file of the segment. Open [`FileSlice`]s stay readable.
    pub fn delete(self) -> io::Result<()> {
        delete_segment_files(&self.dir, self.base_offset)
    }

    /// First offset of the segment.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Offset after the last batch (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Bytes in the `.log` file.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Largest record timestamp, or -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Wall-clock ms at creation or open.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// True when no batch has been written.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// The segment's `.log` file (for the cleaner's reads).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
}

fn corrupt_index(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("segment index inconsistent: {what}"))
}

/// Write every slice at `offset`, continuing after short writes.
fn pwritev_all(file: &File, mut bufs: &mut [IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Linux takes at most IOV_MAX (1024) slices per call.
    const IOV_MAX: usize = 1024;
    while !bufs.is_empty() {
        let cnt = bufs.len().min(IOV_MAX);
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix; the slices outlive the call and
        // the descriptor is owned by `file`.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr() as *const libc::iovec,
                cnt as libc::c_int,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut bufs, n as usize);
    }
    Ok(())
}

/// Delete every file that belongs to the segment at `base_offset` in `dir`.
pub fn delete_segment_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    failpoint(DELETE_SEGMENT)?;
    for ext in SEGMENT_FILE_EXTS {
        match fs::remove_file(dir.join(file_name(base_offset, ext))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// fsync the data of a segment file.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    failpoint(SYNC_DATA)?;
    file.sync_data()
}

/// Failpoint: fsync of segment data.
pub(crate) const SYNC_DATA: &str = "segment.sync_data";
/// Failpoint: write of appended batches.
pub(crate) const WRITE_DATA: &str = "segment.write";
/// Failpoint: deletion of a segment's files.
pub(crate) const DELETE_SEGMENT: &str = "segment.delete";
/// Failpoint: cutting a torn or corrupt tail during recovery.
pub(crate) const CUT_TAIL: &str = "segment.cut_tail";

/// Fails when a test armed `name` on this thread (see `failpoints`); does nothing otherwise.
#[inline]
pub(crate) fn failpoint(name: &'static str) -> io::Result<()> {
    #[cfg(test)]
    if failpoints::armed(name) {
        return Err(io::Error::other(format!("injected failure: {name}")));
    }
    let _ = name;
    Ok(())
}

/// Test-only fault injection: an armed failpoint fails every check of it on the arming thread
/// until it is disarmed.
#[cfg(test)]
pub(crate) mod failpoints {
    use std::cell::RefCell;

    thread_local! {
        static ARMED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    /// Make checks of `name` fail.
    pub(crate) fn arm(name: &'static str) {
        ARMED.with(|a| a.borrow_mut().push(name));
    }

    /// Let checks of `name` pass again.
    pub(crate) fn disarm(name: &'static str) {
        ARMED.with(|a| a.borrow_mut().retain(|n| *n != name));
    }

    pub(super) fn armed(name: &str) -> bool {
        ARMED.with(|a| a.borrow().contains(&name))
    }
}
