//! State store settings under Kafka Streams' names, with its defaults.

use std::path::{Path, PathBuf};

use crate::rocks::RocksDbOptions;

/// `statestore.cache.max.bytes` (10 MiB; Kafka Streams' default, shared by an instance's
/// threads: the runtime divides it among its stores).
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 * 1024 * 1024;

/// `state.dir` default: `<temp dir>/rill-streams` (Kafka Streams: `${java.io.tmpdir}/kafka-streams`).
pub fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("rill-streams")
}

/// Settings of an application's state stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// `state.dir`: stores live in `<state.dir>/<application.id>/<task>/<store>`.
    pub state_dir: PathBuf,
    /// `statestore.cache.max.bytes`: write cache over all stores of the instance (0: no caching).
    pub cache_max_bytes: usize,
    /// RocksDB tuning per store (Kafka Streams' `rocksdb.config.setter` defaults).
    pub rocksdb: RocksDbOptions,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            rocksdb: RocksDbOptions::default(),
        }
    }
}

/// A state setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state setting {name}={value}: {why}")]
pub struct StateConfigError {
    /// The setting's name.
    pub name: &'static str,
    /// The rejected value.
    pub value: String,
    /// What the value must be.
    pub why: &'static str,
}

impl StateConfig {
    /// Check that the settings can work.
    pub fn validate(&self) -> Result<(), StateConfigError> {
        let bad = |name, value: &dyn ToString, why| Err(StateConfigError { name, value: value.to_string(), why });
        if self.state_dir.as_os_str().is_empty() {
            return bad("state.dir", &"", "a directory path");
        }
        if self.rocksdb.write_buffer_bytes < 64 * 1024 {
            return bad("rocksdb.write.buffer.bytes", &self.rocksdb.write_buffer_bytes, "at least 64 KiB");
        }
        if self.rocksdb.max_write_buffers < 1 {
            return bad("rocksdb.max.write.buffers", &self.rocksdb.max_write_buffers, "at least 1");
        }
        Ok(())
    }

    /// The directory of `store` of task `task` (`<state.dir>/<application.id>/<task>/<store>`).
    pub fn store_dir(&self, application_id: &str, task: &str, store: &str) -> PathBuf {
        store_dir(&self.state_dir, application_id, task, store)
    }
}

/// `<state_dir>/<application_id>/<task>/<store>`, Kafka Streams' layout (task as `0_3`:
/// sub-topology 0, partition 3).
pub fn store_dir(state_dir: &Path, application_id: &str, task: &str, store: &str) -> PathBuf {
    state_dir.join(application_id).join(task).join(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafka_streams_and_valid() {
        let c = StateConfig::default();
        assert_eq!(c.cache_max_bytes, 10 * 1024 * 1024);
        assert!(c.state_dir.ends_with("rill-streams"));
        c.validate().unwrap();
        assert_eq!(c.store_dir("app", "0_3", "counts"), c.state_dir.join("app/0_3/counts"));
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let c = StateConfig { state_dir: PathBuf::new(), ..StateConfig::default() };
        assert_eq!(c.validate().unwrap_err().name, "state.dir");
        let mut c = StateConfig::default();
        c.rocksdb.max_write_buffers = 0;
        let e = c.validate().unwrap_err();
        assert_eq!(e.to_string(), "invalid state setting rocksdb.max.write.buffers=0: at least 1");
    }

    #[test]
    fn partial_settings_fill_in_defaults() {
        let c: StateConfig = serde_json::from_str(r#"{"cache_max_bytes": 0}"#).unwrap();
        assert_eq!(c, StateConfig { cache_max_bytes: 0, ..StateConfig::default() });
    }
}
