//! [`SegmentedRocksDbStore`]: a time-segmented [`BytesStore`] in ONE RocksDB database, one
//! column family per segment (`segment-<start ms>`), so a batch touching several segments and
//! its checkpoint are still one atomic `WriteBatch`, as the [`BytesStore`] contract asks.
//!
//! The `rill-meta` column family holds the checkpoint, stream time (both written in each
//! batch's `WriteBatch`) and the segment interval (written at creation; a reopen with another
//! interval fails, since segments are addressed by it). Expired segments are dropped after the
//! batch that expired them is written; a crash in between leaves them to the next open, which
//! drops every segment stream time has expired. Every segment shares the store's block cache
//! and [`RocksDbOptions`] (memtables are per segment, as in Kafka Streams, where each segment is
//! a RocksDB instance).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, StoreError, StoreResult, WriteOp};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, WriteBatch, DB};

use super::{merge_sorted, SegmentSpec};
use crate::rocks::RocksDbOptions;

/// Column family holding checkpoint, stream time and segment interval.
const META_CF: &str = "rill-meta";
/// The changelog offset, 8 bytes big-endian (as in [`crate::RocksDbStore`]).
const CHECKPOINT_KEY: &[u8] = b"changelog-offset";
/// The largest time written, 8 bytes big-endian; absent before the first write.
const STREAM_TIME_KEY: &[u8] = b"stream-time";
/// The segment interval the store was created with, 8 bytes big-endian.
const INTERVAL_KEY: &[u8] = b"segment-interval";
/// Prefix of segment column families.
const SEGMENT_PREFIX: &str = "segment-";

/// A time-segmented [`BytesStore`] in RocksDB (see the [module docs](self) and the
/// [segmented module's](super)).
pub struct SegmentedRocksDbStore {
    name: String,
    path: PathBuf,
    spec: SegmentSpec,
    db: DB,
    cf_options: Options,
    segments: BTreeSet<i64>,
    stream_time: Option<i64>,
    expired: u64,
}

impl std::fmt::Debug for SegmentedRocksDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedRocksDbStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("segments", &self.segments)
            .field("stream_time", &self.stream_time)
            .finish()
    }
}

fn read_i64(raw: &[u8]) -> Option<i64> {
    raw.try_into().ok().map(i64::from_be_bytes)
}

impl SegmentedRocksDbStore {
    /// Open (creating if absent) the store `name` shaped by `spec` in directory `path`, with
    /// default RocksDB options.
    pub fn open(name: impl Into<String>, path: impl AsRef<Path>, spec: SegmentSpec) -> StoreResult<Self> {
        Self::open_with(name, path, spec, &RocksDbOptions::default())
    }

    /// Open (creating if absent) the store `name` shaped by `spec` in directory `path`. Fails if
    /// the store was created with another segment interval.
    pub fn open_with(
        name: impl Into<String>,
        path: impl AsRef<Path>,
        spec: SegmentSpec,
        options: &RocksDbOptions,
    ) -> StoreResult<Self> {
        let name = name.into();
        let path = path.as_ref().to_path_buf();
        let fail = |cause: String| StoreError::Backend { store: name.clone(), cause };
        spec.validate().map_err(|cause| StoreError::IllegalState { store: name.clone(), cause })?;
        std::fs::create_dir_all(&path).map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
        let opts = options.db_options();
        let existing = if path.join("CURRENT").exists() {
            DB::list_cf(&opts, &path).map_err(|e| fail(format!("cannot list segments in {}: {e}", path.display())))?
        } else {
            Vec::new()
        };
        let segment_cfs: Vec<String> = existing.into_iter().filter(|cf| cf.starts_with(SEGMENT_PREFIX)).collect();
        let mut cfs = vec![
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone()),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ];
        cfs.extend(segment_cfs.iter().map(|cf| ColumnFamilyDescriptor::new(cf, opts.clone())));
        let db = DB::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| fail(format!("cannot open RocksDB at {}: {e}", path.display())))?;
        let mut store =
            Self { name, path, spec, db, cf_options: opts, segments: BTreeSet::new(), stream_time: None, expired: 0 };
        store.check_interval()?;
        for cf in &segment_cfs {
            let id = store.parse_segment(cf)?;
            store.segments.insert(id);
        }
        store.stream_time = store.read_meta(STREAM_TIME_KEY, "stream time")?;
        store.drop_expired()?;
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The largest time written (`None` before the first write or after a clear).
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }
    /// The live segments, oldest first.
    pub fn segment_ids(&self) -> Vec<i64> {
        self.segments.iter().copied().collect()
    }

    fn backend(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend { store: self.name.clone(), cause: format!("{what} in {}: {e}", self.path.display()) }
    }

    fn meta(&self) -> &ColumnFamily {
        self.db.cf_handle(META_CF).expect("opened with the meta column family")
    }

    fn segment_name(&self, id: i64) -> String {
        format!("{SEGMENT_PREFIX}{}", id.saturating_mul(self.spec.segment_interval_ms))
    }

    fn segment(&self, id: i64) -> StoreResult<&ColumnFamily> {
        let name = self.segment_name(id);
        self.db.cf_handle(&name).ok_or_else(|| self.backend("segment lookup", format!("no column family {name}")))
    }

    fn parse_segment(&self, cf: &str) -> StoreResult<i64> {
        let start: i64 = cf[SEGMENT_PREFIX.len()..]
            .parse()
            .map_err(|e| self.backend("open", format!("column family {cf} is not a segment: {e}")))?;
        if start.rem_euclid(self.spec.segment_interval_ms) != 0 {
            let why = format!("segment {cf} does not start on a {} ms boundary", self.spec.segment_interval_ms);
            return Err(self.backend("open", why));
        }
        Ok(self.spec.segment_id(start))
    }

    fn read_meta(&self, key: &[u8], what: &str) -> StoreResult<Option<i64>> {
        let raw = self.db.get_pinned_cf(self.meta(), key).map_err(|e| self.backend(what, e))?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                read_i64(&raw).map(Some).ok_or_else(|| self.backend(what, format!("{} bytes, expected 8", raw.len())))
            }
        }
    }

    /// Records the interval in a new store; refuses a store made with another one.
    fn check_interval(&mut self) -> StoreResult<()> {
        let want = self.spec.segment_interval_ms;
        match self.read_meta(INTERVAL_KEY, "segment interval")? {
            Some(have) if have == want => Ok(()),
            Some(have) => Err(StoreError::IllegalState {
                store: self.name.clone(),
                cause: format!(
                    "{} was created with segment interval {have} ms, opened with {want} ms: \
                     delete the directory to rebuild it from the changelog",
                    self.path.display()
                ),
            }),
            None => {
                let mut wb = WriteBatch::default();
                wb.put_cf(self.meta(), INTERVAL_KEY, want.to_be_bytes());
                self.db.write(wb).map_err(|e| self.backend("open", e))
            }
        }
    }

    /// Drops every segment older than the oldest live one.
    fn drop_expired(&mut self) -> StoreResult<()> {
        let Some(min) = self.spec.min_live_segment(self.stream_time) else { return Ok(()) };
        let live = self.segments.split_off(&min);
        let expired = std::mem::replace(&mut self.segments, live);
        for id in expired {
            let name = self.segment_name(id);
            self.db.drop_cf(&name).map_err(|e| self.backend(&format!("dropping expired segment {name}"), e))?;
        }
        Ok(())
    }
}

impl BytesStore for SegmentedRocksDbStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        let t = self.spec.time_of(&self.name, key)?;
        let id = self.spec.segment_id(t);
        if self.spec.is_expired(t, self.stream_time) || !self.segments.contains(&id) {
            return Ok(None);
        }
        let value = self.db.get_pinned_cf(self.segment(id)?, key).map_err(|e| self.backend("get", e))?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        if crate::merge::bounds(from, to).is_none() {
            return Ok(Box::new(std::iter::empty()));
        }
        let mut heads = Vec::with_capacity(self.segments.len());
        for id in &self.segments {
            let mut read = ReadOptions::default();
            if let Some(from) = from {
                read.set_iterate_lower_bound(from);
            }
            if let Some(to) = to {
                read.set_iterate_upper_bound(to);
            }
            let iter = self.db.iterator_cf_opt(self.segment(*id)?, read, IteratorMode::Start);
            let head: BytesIter<'a> = Box::new(iter.map(move |item| match item {
                Ok((k, v)) => Ok((Bytes::from(k), Bytes::from(v))),
                Err(e) => Err(self.backend("range", e)),
            }));
            heads.push(head);
        }
        let (spec, stream_time) = (self.spec, self.stream_time);
        Ok(Box::new(merge_sorted(heads).filter(move |item| match item {
            Ok((key, _)) => spec.time.of(key).is_none_or(|t| !spec.is_expired(t, stream_time)),
            Err(_) => true,
        })))
    }

    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
        let routed = self.spec.route(&self.name, batch, self.stream_time)?;
        let new: BTreeSet<i64> = routed
            .ops
            .iter()
            .filter(|(id, _, value)| value.is_some() && !self.segments.contains(id))
            .map(|(id, _, _)| *id)
            .collect();
        for id in new {
            let name = self.segment_name(id);
            self.db.create_cf(&name, &self.cf_options).map_err(|e| self.backend(&format!("creating {name}"), e))?;
            self.segments.insert(id);
        }
        let mut wb = WriteBatch::default();
        let mut handles: BTreeMap<i64, &ColumnFamily> = BTreeMap::new();
        for (id, key, value) in &routed.ops {
            if !self.segments.contains(id) {
                continue; // a delete in a segment never written: nothing to delete
            }
            let cf = match handles.get(id) {
                Some(cf) => *cf,
                None => *handles.entry(*id).or_insert(self.segment(*id)?),
            };
            match value {
                Some(value) => wb.put_cf(cf, key, value),
                None => wb.delete_cf(cf, key),
            }
        }
        if routed.stream_time != self.stream_time {
            if let Some(st) = routed.stream_time {
                wb.put_cf(self.meta(), STREAM_TIME_KEY, st.to_be_bytes());
            }
        }
        if let Some(offset) = checkpoint {
            wb.put_cf(self.meta(), CHECKPOINT_KEY, offset.to_be_bytes());
        }
        self.db.write(wb).map_err(|e| self.backend("write", e))?;
        self.stream_time = routed.stream_time;
        self.expired += routed.dropped;
        self.drop_expired()
    }

    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        self.read_meta(CHECKPOINT_KEY, "checkpoint")
    }

    fn approximate_len(&self) -> u64 {
        // An estimate by definition; a failed property read only loses the estimate.
        let per_segment = |id: &i64| {
            let cf = self.segment(*id).ok()?;
            self.db.property_int_value_cf(cf, "rocksdb.estimate-num-keys").ok().flatten()
        };
        self.segments.iter().filter_map(per_segment).sum()
    }

    fn flush(&mut self) -> StoreResult<()> {
        self.db.flush_wal(true).map_err(|e| self.backend("flush (WAL sync)", e))
    }

    fn clear(&mut self) -> StoreResult<()> {
        // Checkpoint and stream time go first: a crash part way leaves no checkpoint, hence
        // another wipe.
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.meta(), CHECKPOINT_KEY);
        wb.delete_cf(self.meta(), STREAM_TIME_KEY);
        self.db.write(wb).map_err(|e| self.backend("clear", e))?;
        self.stream_time = None;
        for id in std::mem::take(&mut self.segments) {
            let name = self.segment_name(id);
            self.db.drop_cf(&name).map_err(|e| self.backend(&format!("clear: dropping {name}"), e))?;
        }
        Ok(())
    }

    fn expired_records(&self) -> u64 {
        self.expired
    }
}
