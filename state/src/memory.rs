//! [`InMemoryStore`]: the in-memory twin of the RocksDB store (a `BTreeMap`), passing the same
//! test suite. Nothing survives the process; restoration rebuilds it from the changelog.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_core::streams::store::{BytesIter, BytesStore, StoreResult, WriteOp};

use crate::merge::map_range;

/// A [`BytesStore`] in a `BTreeMap`.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    name: String,
    map: BTreeMap<Bytes, Bytes>,
    checkpoint: Option<i64>,
}

impl InMemoryStore {
    /// An empty store called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), map: BTreeMap::new(), checkpoint: None }
    }
}

impl BytesStore for InMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn get(&self, key: &[u8]) -> StoreResult<Option<Bytes>> {
        Ok(self.map.get(key).cloned())
    }
    fn range<'a>(&'a self, from: Option<&[u8]>, to: Option<&[u8]>) -> StoreResult<BytesIter<'a>> {
        Ok(Box::new(map_range(&self.map, from, to).map(|(k, v)| Ok((k.clone(), v.clone())))))
    }
    fn write(&mut self, batch: Vec<WriteOp>, checkpoint: Option<i64>) -> StoreResult<()> {
        for (key, value) in batch {
            match value {
                Some(value) => self.map.insert(key, value),
                None => self.map.remove(&key),
            };
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
        self.map.len() as u64
    }
    fn flush(&mut self) -> StoreResult<()> {
        Ok(())
    }
    fn clear(&mut self) -> StoreResult<()> {
        self.map.clear();
        self.checkpoint = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite;

    #[test]
    fn passes_the_bytes_store_suite() {
        suite::bytes_store_suite(|| InMemoryStore::new("mem"));
    }
}
