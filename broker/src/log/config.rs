//! Per-topic log settings under their Kafka names, with Kafka's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `segment.bytes`: roll the active segment past this size (1 GiB).
pub const DEFAULT_SEGMENT_BYTES: i64 = 1 << 30;
/// `segment.ms`: roll the active segment after this age (7 days).
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 3600 * 1000;
/// `retention.ms`: delete segments older than this (7 days); -1 keeps forever.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// `retention.bytes`: delete oldest segments past this partition size; -1 means no limit.
pub const DEFAULT_RETENTION_BYTES: i64 = -1;
/// `delete.retention.ms`: how long tombstones survive compaction (1 day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// `max.message.bytes`: largest record batch accepted (1 MiB + 12 bytes of overhead).
pub const DEFAULT_MAX_MESSAGE_BYTES: i64 = 1_048_588;
/// `index.interval.bytes`.
pub const DEFAULT_INDEX_INTERVAL_BYTES: i64 = 4096;
/// `flush.messages`: fsync after this many messages (never, by default: rely on the page cache).
pub const DEFAULT_FLUSH_MESSAGES: i64 = i64::MAX;
/// `flush.ms`: fsync after this long (never, by default).
pub const DEFAULT_FLUSH_MS: i64 = i64::MAX;
/// `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// `min.compaction.lag.ms`.
pub const DEFAULT_MIN_COMPACTION_LAG_MS: i64 = 0;
/// `min.insync.replicas`: acks=all writes need this many in-sync replicas.
pub const DEFAULT_MIN_INSYNC_REPLICAS: i64 = 1;

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CleanupPolicy {
    /// `delete`: retention by time and size.
    #[default]
    Delete,
    /// `compact`: keep the latest record per key.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Parse Kafka's spelling (`delete`, `compact`, `compact,delete` in any order).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts: Vec<&str> = s.split(',').map(str::trim).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Some(Self::Delete),
            ["compact"] => Some(Self::Compact),
            ["compact", "delete"] => Some(Self::CompactDelete),
            _ => None,
        }
    }
    /// Kafka's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        }
    }
    /// True when segments are deleted by retention.
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
    /// True when the cleaner compacts the log.
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimestampType {
    /// `CreateTime`: keep the producer's timestamps.
    #[default]
    CreateTime,
    /// `LogAppendTime`: the broker stamps its clock.
    LogAppendTime,
}

/// Settings of one topic's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `retention.ms` (-1: forever).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: no limit).
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i64,
    /// `unclean.leader.election.enable`: a replica out of the ISR may lead (losing data) when
    /// no ISR member is alive.
    pub unclean_leader_election_enable: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: DEFAULT_SEGMENT_MS,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: DEFAULT_RETENTION_BYTES,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            flush_messages: DEFAULT_FLUSH_MESSAGES,
            flush_ms: DEFAULT_FLUSH_MS,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            min_compaction_lag_ms: DEFAULT_MIN_COMPACTION_LAG_MS,
            timestamp_type: TimestampType::CreateTime,
            min_insync_replicas: DEFAULT_MIN_INSYNC_REPLICAS,
            unclean_leader_election_enable: false,
        }
    }
}

/// A topic config name or value that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a topic config this broker knows.
    #[error("unknown topic config '{0}'; known: {names}", names = TOPIC_CONFIG_NAMES.join(", "))]
    Unknown(String),
    /// The value does not parse or is out of range.
    #[error("invalid value '{value}' for topic config '{name}': {why}")]
    Invalid {
        /// Config name.
        name: String,
        /// Offending value.
        value: String,
        /// What is expected instead.
        why: &'static str,
    },
}

/// Every topic config name this broker accepts.
pub const TOPIC_CONFIG_NAMES: [&str; 15] = [
    "cleanup.policy",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

impl LogConfig {
    /// Set one config by its Kafka name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |why| ConfigError::Invalid { name: name.into(), value: value.into(), why };
        let int = |min: i64| -> Result<i64, ConfigError> {
            value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= min)
                .ok_or_else(|| invalid(if min < 0 { "an integer >= -1" } else { "a non-negative integer" }))
        };
        match name {
            "segment.bytes" => {
                let v = int(14)?;
                if v > i32::MAX as i64 {
                    return Err(invalid("an integer between 14 and 2147483647"));
                }
                self.segment_bytes = v;
            }
            "segment.ms" => self.segment_ms = int(1)?,
            "retention.ms" => self.retention_ms = int(-1)?,
            "retention.bytes" => self.retention_bytes = int(-1)?,
            "cleanup.policy" => {
                self.cleanup_policy =
                    CleanupPolicy::parse(value).ok_or_else(|| invalid("delete, compact or compact,delete"))?
            }
            "delete.retention.ms" => self.delete_retention_ms = int(0)?,
            "max.message.bytes" => self.max_message_bytes = int(0)?,
            "index.interval.bytes" => self.index_interval_bytes = int(0)?,
            "flush.messages" => self.flush_messages = int(1)?,
            "flush.ms" => self.flush_ms = int(0)?,
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| invalid("a number between 0 and 1"))?
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int(0)?,
            "message.timestamp.type" => {
                self.timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("CreateTime or LogAppendTime")),
                }
            }
            "min.insync.replicas" => self.min_insync_replicas = int(1)?,
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = match value.trim() {
                    v if v.eq_ignore_ascii_case("true") => true,
                    v if v.eq_ignore_ascii_case("false") => false,
                    _ => return Err(invalid("true or false")),
                }
            }
            _ => return Err(ConfigError::Unknown(name.into())),
        }
        Ok(())
    }

    /// Apply a list of (name, value) overrides on top of `self`, all or nothing.
    pub fn with_overrides<'a>(
        &self,
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut c = self.clone();
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        Ok(c)
    }

    /// The value of one config by its Kafka name, as Kafka prints it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.as_str().to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            _ => return None,
        })
    }

    /// All configs as (name, value), sorted by name.
    pub fn entries(&self) -> BTreeMap<&'static str, String> {
        TOPIC_CONFIG_NAMES.iter().map(|n| (*n, self.get(n).expect("known name"))).collect()
    }

    /// True when every write must be fsynced before it is acknowledged.
    pub fn flush_per_write(&self) -> bool {
        self.flush_messages <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_roundtrip_for_every_name() {
        let c = LogConfig::default();
        for name in TOPIC_CONFIG_NAMES {
            let v = c.get(name).unwrap();
            let mut d = LogConfig::default();
            d.set(name, &v).unwrap_or_else(|e| panic!("{name}={v}: {e}"));
            assert_eq!(d, c, "{name}");
        }
    }

    #[test]
    fn rejects_bad_values_and_names() {
        let c = LogConfig::default();
        let cases = [
            ("cleanup.policy", "shred"),
            ("retention.ms", "-5"),
            ("segment.bytes", "10"),
            ("segment.bytes", "abc"),
            ("min.cleanable.dirty.ratio", "2"),
            ("message.timestamp.type", "Now"),
        ];
        for (k, v) in cases {
            assert!(matches!(c.with_overrides([(k, v)]), Err(ConfigError::Invalid { .. })), "{k}={v}");
        }
        assert_eq!(c.with_overrides([("no.such", "1")]), Err(ConfigError::Unknown("no.such".into())));
        assert_eq!(CleanupPolicy::parse("delete,compact"), Some(CleanupPolicy::CompactDelete));
    }
}
