//! Timestamp extractors: which time a record carries for stream time, windows and punctuation
//! (Kafka Streams' `TimestampExtractor`).
//!
//! The runtime asks a record's source for its extractor (or the application's
//! `default.timestamp.extractor`) before the record is queued in its task, so the task can take
//! records in timestamp order across its partitions. A negative result means "no valid time":
//! the record is skipped and counted, as Kafka Streams drops it.
//!
//! ```
//! use rill_core::streams::timestamp::{RecordView, TimestampExtractor};
//!
//! // Event time from the first 8 bytes of the value (big-endian milliseconds).
//! let from_value = |r: &RecordView<'_>, _partition_time: i64| -> i64 {
//!     r.value.and_then(|v| v.first_chunk::<8>()).map(|b| i64::from_be_bytes(*b)).unwrap_or(-1)
//! };
//! let value = 1_700_000_000_000i64.to_be_bytes();
//! let r = RecordView { topic: "t", partition: 0, offset: 0, key: None, value: Some(&value), timestamp: 5 };
//! assert_eq!(from_value.extract(&r, -1).unwrap(), 1_700_000_000_000);
//! ```

use std::sync::Arc;

use super::error::{Result, StreamsError};

/// A record as an extractor sees it (before deserialization).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// The record's own timestamp (create or log-append time).
    pub timestamp: i64,
}

/// Picks a record's timestamp.
pub trait TimestampExtractor: Send + Sync {
    /// The record's timestamp; `partition_time` is the largest timestamp extracted from its
    /// partition so far (`-1` before the first). A negative answer skips the record; an error
    /// stops the stream thread unless `processing.exception.handler` continues.
    fn extract(&self, record: &RecordView<'_>, partition_time: i64) -> Result<i64>;
}

impl<F: Fn(&RecordView<'_>, i64) -> i64 + Send + Sync> TimestampExtractor for F {
    fn extract(&self, record: &RecordView<'_>, partition_time: i64) -> Result<i64> {
        Ok(self(record, partition_time))
    }
}

/// The record's timestamp; a negative one is an error (Kafka Streams' default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOnInvalidTimestamp;

impl TimestampExtractor for FailOnInvalidTimestamp {
    fn extract(&self, r: &RecordView<'_>, _: i64) -> Result<i64> {
        if r.timestamp < 0 {
            return Err(StreamsError::processing(
                "timestamp extractor",
                format_args!(
                    "record {}-{}@{} has the invalid timestamp {}; set default.timestamp.extractor to \
                     LogAndSkipOnInvalidTimestamp or UsePartitionTimeOnInvalidTimestamp to go on",
                    r.topic, r.partition, r.offset, r.timestamp
                ),
            ));
        }
        Ok(r.timestamp)
    }
}

/// The record's timestamp; a record with a negative one is skipped (with a warning).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndSkipOnInvalidTimestamp;

impl TimestampExtractor for LogAndSkipOnInvalidTimestamp {
    fn extract(&self, r: &RecordView<'_>, _: i64) -> Result<i64> {
        if r.timestamp < 0 {
            tracing::warn!(
                topic = r.topic,
                partition = r.partition,
                offset = r.offset,
                timestamp = r.timestamp,
                "invalid timestamp; record skipped"
            );
        }
        Ok(r.timestamp)
    }
}

/// The record's timestamp; a negative one is replaced by the partition's time so far (an
/// error before the partition has one).
#[derive(Debug, Clone, Copy, Default)]
pub struct UsePartitionTimeOnInvalidTimestamp;

impl TimestampExtractor for UsePartitionTimeOnInvalidTimestamp {
    fn extract(&self, r: &RecordView<'_>, partition_time: i64) -> Result<i64> {
        match (r.timestamp, partition_time) {
            (t, _) if t >= 0 => Ok(t),
            (_, p) if p >= 0 => Ok(p),
            _ => FailOnInvalidTimestamp.extract(r, partition_time),
        }
    }
}

/// The wall-clock time when the record is processed (processing-time semantics).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallclockTimestampExtractor;

impl TimestampExtractor for WallclockTimestampExtractor {
    fn extract(&self, _: &RecordView<'_>, _: i64) -> Result<i64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0))
    }
}

/// A built-in extractor by its Kafka Streams name (with or without the Java package).
pub fn extractor_by_name(name: &str) -> Option<Arc<dyn TimestampExtractor>> {
    let short = name.trim().rsplit('.').next().unwrap_or("");
    Some(match short {
        "FailOnInvalidTimestamp" => Arc::new(FailOnInvalidTimestamp),
        "LogAndSkipOnInvalidTimestamp" => Arc::new(LogAndSkipOnInvalidTimestamp),
        "UsePartitionTimeOnInvalidTimestamp" => Arc::new(UsePartitionTimeOnInvalidTimestamp),
        "WallclockTimestampExtractor" => Arc::new(WallclockTimestampExtractor),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64) -> RecordView<'static> {
        RecordView { topic: "t", partition: 1, offset: 7, key: None, value: None, timestamp: ts }
    }

    #[test]
    fn built_ins_treat_invalid_timestamps_as_kafka_does() {
        assert_eq!(FailOnInvalidTimestamp.extract(&rec(5), -1).unwrap(), 5);
        let e = FailOnInvalidTimestamp.extract(&rec(-1), 3).unwrap_err().to_string();
        assert!(e.contains("t-1@7") && e.contains("-1"), "{e}");
        assert_eq!(LogAndSkipOnInvalidTimestamp.extract(&rec(-1), 3).unwrap(), -1);
        assert_eq!(UsePartitionTimeOnInvalidTimestamp.extract(&rec(-1), 3).unwrap(), 3);
        assert!(UsePartitionTimeOnInvalidTimestamp.extract(&rec(-1), -1).is_err());
        assert!(WallclockTimestampExtractor.extract(&rec(-1), -1).unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn built_ins_by_name() {
        for n in [
            "FailOnInvalidTimestamp",
            "org.apache.kafka.streams.processor.LogAndSkipOnInvalidTimestamp",
            "UsePartitionTimeOnInvalidTimestamp",
            "WallclockTimestampExtractor",
        ] {
            assert!(extractor_by_name(n).is_some(), "{n}");
        }
        assert!(extractor_by_name("Nope").is_none());
    }
}
