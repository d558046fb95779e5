//! Log storage: topic -> partitions -> a directory of segments.
//!
//! A partition directory `<topic>-<partition>/` holds `<base>.log` files of magic-v2 record
//! batches stored as received, each with a sparse `.index` and `.timeindex`, plus
//! `leader-epoch-checkpoint`, `recovery-point`, `log-start-offset` and `high-watermark`. Names for the transaction
//! index (`.txnindex`) and producer-state snapshots (`.snapshot`) are reserved per segment.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod control;
pub mod index;
mod partition_log;
pub mod producer_state;
pub mod segment;
pub mod snapshot;
pub mod time_index;
pub mod txn_index;
pub mod validate;

#[cfg(test)]
mod tests;

pub use cleaner::{clean_log, CleanError, CleanStats, Cleaner, RunStats};
pub use config::{CleanupPolicy, ConfigError, LogConfig};
pub use partition_log::{
    end_offset_for, AppendInfo, Log, LogError, OpenStats, ReadLimit, ReadResult, SealedSegment, HIGH_WATERMARK_FILE,
    LEADER_EPOCH_FILE, LOG_START_FILE, RECOVERY_POINT_FILE,
};
pub use segment::FileSlice;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
