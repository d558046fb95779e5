//! Records as processors see them: typed key and value, timestamp and headers, and where the
//! record being processed came from.

use std::sync::Arc;

use bytes::Bytes;

/// Record headers, in order.
pub type Headers = Vec<(String, Option<Bytes>)>;

/// A record flowing through a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp in ms (event time: the record's, or what an extractor chose).
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Self { key, value, timestamp, headers: Vec::new() }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record { key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Where the record being processed came from: its input topic, partition and offset. A record
/// produced by a punctuation has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Input topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}
