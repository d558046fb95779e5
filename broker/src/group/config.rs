//! Group coordinator settings under Kafka's names, with Kafka's defaults.

/// `group.min.session.timeout.ms` (6 s).
pub const DEFAULT_MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
/// `group.max.session.timeout.ms` (30 min).
pub const DEFAULT_MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// `group.initial.rebalance.delay.ms` (3 s).
pub const DEFAULT_INITIAL_REBALANCE_DELAY_MS: i32 = 3_000;
/// `group.max.size` (unbounded, as in Kafka).
pub const DEFAULT_GROUP_MAX_SIZE: usize = i32::MAX as usize;
/// `offsets.retention.minutes` (7 days), in milliseconds.
pub const DEFAULT_OFFSETS_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `offsets.retention.check.interval.ms` (10 min).
pub const DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS: i64 = 600_000;
/// `offset.metadata.max.bytes` (4 KiB).
pub const DEFAULT_OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// How long a member that joined but never completed a rebalance may wait before it is dropped
/// (Kafka's fixed 5 minutes; the session timeout does not apply before the first join completes).
pub const DEFAULT_NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// Settings of the group coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits this long
    /// for more members, and again while new ones keep arriving (bounded by the rebalance timeout).
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds: offsets of a group empty for this long expire.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// Deadline for a new member's first JoinGroup to complete.
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: DEFAULT_MIN_SESSION_TIMEOUT_MS,
            max_session_timeout_ms: DEFAULT_MAX_SESSION_TIMEOUT_MS,
            initial_rebalance_delay_ms: DEFAULT_INITIAL_REBALANCE_DELAY_MS,
            max_size: DEFAULT_GROUP_MAX_SIZE,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
            offsets_retention_check_interval_ms: DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS,
            offset_metadata_max_bytes: DEFAULT_OFFSET_METADATA_MAX_BYTES,
            new_member_join_timeout_ms: DEFAULT_NEW_MEMBER_JOIN_TIMEOUT_MS,
        }
    }
}

/// A group setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid group setting {name}={value}: {why}")]
pub struct GroupConfigError {
    /// Kafka's name of the setting.
    pub name: &'static str,
    /// The rejected value.
    pub value: String,
    /// What the value must be.
    pub why: &'static str,
}

impl GroupConfig {
    /// Check that the settings can work together.
    pub fn validate(&self) -> Result<(), GroupConfigError> {
        let bad = |name, value: &dyn ToString, why| Err(GroupConfigError { name, value: value.to_string(), why });
        if self.min_session_timeout_ms < 0 {
            return bad("group.min.session.timeout.ms", &self.min_session_timeout_ms, "not negative");
        }
        if self.max_session_timeout_ms < self.min_session_timeout_ms {
            return bad("group.max.session.timeout.ms", &self.max_session_timeout_ms, "at least the minimum");
        }
        if self.initial_rebalance_delay_ms < 0 {
            return bad("group.initial.rebalance.delay.ms", &self.initial_rebalance_delay_ms, "not negative");
        }
        if self.max_size == 0 {
            return bad("group.max.size", &self.max_size, "at least 1");
        }
        if self.offsets_retention_ms <= 0 {
            return bad("offsets.retention.minutes", &self.offsets_retention_ms, "positive");
        }
        if self.offsets_retention_check_interval_ms <= 0 {
            return bad("offsets.retention.check.interval.ms", &self.offsets_retention_check_interval_ms, "positive");
        }
        if self.offset_metadata_max_bytes > i16::MAX as usize {
            return bad("offset.metadata.max.bytes", &self.offset_metadata_max_bytes, "at most 32767 (a Kafka string)");
        }
        if self.new_member_join_timeout_ms <= 0 {
            return bad("new member join timeout", &self.new_member_join_timeout_ms, "positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Change = fn(&mut GroupConfig);

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert_eq!(GroupConfig::default().validate(), Ok(()));
        let cases: &[(Change, &str)] = &[
            (|c| c.max_session_timeout_ms = 10, "group.max.session.timeout.ms"),
            (|c| c.initial_rebalance_delay_ms = -1, "group.initial.rebalance.delay.ms"),
            (|c| c.max_size = 0, "group.max.size"),
            (|c| c.offsets_retention_ms = 0, "offsets.retention.minutes"),
        ];
        for (change, name) in cases {
            let mut c = GroupConfig::default();
            change(&mut c);
            assert_eq!(c.validate().unwrap_err().name, *name);
        }
    }
}
