//! rill-broker: Rill's Kafka-compatible broker.
//!
//! - [`log`]: segmented log storage (segments, indexes, recovery, retention, compaction).

pub mod log;
