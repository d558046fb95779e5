//! [`SegmentedInMemoryStore`]: the in-memory twin of [`super::SegmentedRocksDbStore`], a
//! `BTreeMap` per segment.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, StoreError, StoreResult, WriteOp};

use super::{merge_sorted, SegmentSpec};
use crate::merge::map_range;

/// A time-segmented [`BytesStore`] in memory (see the [module docs](super)).
#[derive(Debug)]
pub struct SegmentedInMemoryStore {
    name: String,
    spec: SegmentSpec,
    segments: BTreeMap<i64, BTreeMap<Bytes, Bytes>>,
    stream_time: Option<i64>,
    checkpoint: Option<i64>,
    expired: u64,
}

impl SegmentedInMemoryStore {
    /// An empty store called `name` shaped by `spec`.
    pub fn new(name: impl Into<String>, spec: SegmentSpec) -> StoreResult<Self> {
        let name = name.into();
        spec.validate().map_err(|cause| StoreError::IllegalState { store: name.clone(), cause })?;
        Ok(Self { name, spec, segments: BTreeMap::new(), stream_time: None, checkpoint: None, expired: 0 })
    }
    /// The largest time written (`None` before the first write).
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }
    /// The live segments, oldest first.
    pub fn segment_ids(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
}

impl BytesStore for SegmentedInMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        let t = self.spec.time_of(&self.name, key)?;
        if self.spec.is_expired(t, self.stream_time) {
            return Ok(None);
        }
        Ok(self.segments.get(&self.spec.segment_id(t)).and_then(|s| s.get(key)).cloned())
    }

    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        let heads = self
            .segments
            .values()
            .map(|seg| -> BytesIter<'a> { Box::new(map_range(seg, from, to).map(|(k, v)| Ok((k.clone(), v.clone())))) })
            .collect();
        let (spec, stream_time) = (self.spec, self.stream_time);
        Ok(Box::new(merge_sorted(heads).filter(move |item| match item {
            Ok((key, _)) => spec.time.of(key).is_none_or(|t| !spec.is_expired(t, stream_time)),
            Err(_) => true,
        })))
    }

    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
        let routed = self.spec.route(&self.name, batch, self.stream_time)?;
        for (id, key, value) in routed.ops {
            match value {
                Some(value) => {
                    self.segments.entry(id).or_default().insert(key, value);
                }
                None => {
                    if let Some(seg) = self.segments.get_mut(&id) {
                        seg.remove(&key);
                    }
                }
            }
        }
        self.stream_time = routed.stream_time;
        self.expired += routed.dropped;
        if let Some(min) = self.spec.min_live_segment(self.stream_time) {
            self.segments = self.segments.split_off(&min);
        }
        if checkpoint.is_some() {
            self.checkpoint = checkpoint;
        }
        Ok(())
    }

    fn checkpoint(&self) -> StoreResult<Option<i64>> {
        Ok(self.checkpoint)
    }

    fn approximate_len(&self) -> u64 {
        self.segments.values().map(|s| s.len() as u64).sum()
    }

    fn flush(&mut self) -> StoreResult<()> {
        Ok(())
    }

    fn clear(&mut self) -> StoreResult<()> {
        self.segments.clear();
        self.stream_time = None;
        self.checkpoint = None;
        Ok(())
    }

    fn expired_records(&self) -> u64 {
        self.expired
    }
}
