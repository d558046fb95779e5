//! Transaction coordinator settings, under Kafka's names with Kafka's defaults.

use crate::group::DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS;

/// `transaction.max.timeout.ms` (15 minutes).
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10 s).
pub const DEFAULT_ABORT_CHECK_INTERVAL_MS: i64 = 10_000;
/// How long to wait before writing markers again after a partition refused them (Kafka's marker
/// channel retries after `retry.backoff.ms`, 100 ms).
pub const DEFAULT_MARKER_RETRY_BACKOFF_MS: i64 = 100;

/// Settings of the transaction coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often open
    /// transactions are checked against their timeout.
    pub abort_check_interval_ms: i64,
    /// Wait before retrying markers a partition did not take.
    pub marker_retry_backoff_ms: i64,
    /// `offsets.topic.num.partitions`: picks the `__consumer_offsets` partition AddOffsetsToTxn adds.
    pub offsets_topic_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: DEFAULT_MAX_TIMEOUT_MS,
            abort_check_interval_ms: DEFAULT_ABORT_CHECK_INTERVAL_MS,
            marker_retry_backoff_ms: DEFAULT_MARKER_RETRY_BACKOFF_MS,
            offsets_topic_partitions: DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
        }
    }
}

impl TxnConfig {
    /// Check the settings; the error names the setting and says what it must be.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_timeout_ms <= 0 {
            return Err(format!("transaction.max.timeout.ms must be > 0, not {}", self.max_timeout_ms));
        }
        if self.abort_check_interval_ms <= 0 {
            return Err(format!(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms must be > 0, not {}",
                self.abort_check_interval_ms
            ));
        }
        if self.marker_retry_backoff_ms < 0 {
            return Err(format!("the marker retry backoff must be >= 0, not {}", self.marker_retry_backoff_ms));
        }
        if self.offsets_topic_partitions <= 0 {
            return Err(format!("offsets.topic.num.partitions must be > 0, not {}", self.offsets_topic_partitions));
        }
        Ok(())
    }
}
