//! The topics a broker holds: their partitions' logs and config overrides.
//!
//! Topic metadata (id, partition count, config overrides) lives in `<data-dir>/topics.json`,
//! replaced atomically on every change; partition data lives in `<data-dir>/<topic>-<n>/`.
//! A `.rill-clean-shutdown` marker in the data directory tells the next start that every log was
//! flushed and closed, so indexes can be trusted without a recovery scan.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::{checkpoint, now_ms, ConfigError, Log, LogConfig, LogError};

/// File holding topic metadata.
pub const TOPICS_FILE: &str = "topics.json";
/// Marker written after a clean shutdown.
pub const CLEAN_SHUTDOWN_FILE: &str = ".rill-clean-shutdown";
/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Errors from topic operations, each with its Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// TOPIC_ALREADY_EXISTS (36).
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION (3).
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    /// INVALID_TOPIC_EXCEPTION (17).
    #[error("invalid topic name '{0}': use 1-249 characters from [a-zA-Z0-9._-], not '.' or '..'")]
    InvalidName(String),
    /// INVALID_PARTITIONS (37).
    #[error("invalid partition count {0}: {1}")]
    InvalidPartitions(i32, &'static str),
    /// INVALID_REPLICATION_FACTOR (38).
    #[error("invalid replication factor {0}: this broker runs alone, use 1")]
    InvalidReplicationFactor(i16),
    /// INVALID_CONFIG (40).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// KAFKA_STORAGE_ERROR (56).
    #[error("storage error: {0}")]
    Storage(String),
}

impl TopicError {
    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        match self {
            Self::AlreadyExists(_) => 36,
            Self::Unknown(_) => 3,
            Self::InvalidName(_) => 17,
            Self::InvalidPartitions(..) => 37,
            Self::InvalidReplicationFactor(_) => 38,
            Self::Config(_) => 40,
            Self::Storage(_) => 56,
        }
    }
}

impl From<io::Error> for TopicError {
    fn from(e: io::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<LogError> for TopicError {
    fn from(e: LogError) -> Self {
        Self::Storage(e.to_string())
    }
}

/// Check a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// A topic and its partitions' logs.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id (Metadata v10+).
    pub id: Uuid,
    /// Config overrides by Kafka name.
    pub overrides: BTreeMap<String, String>,
    /// One log per partition.
    pub partitions: Vec<Arc<Log>>,
}

/// Every topic of the broker.
#[derive(Debug)]
pub struct Topics {
    data_dir: PathBuf,
    defaults: LogConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises metadata changes and the `topics.json` write.
    meta_lock: std::sync::Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, p: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{p}"))
}

impl Topics {
    /// Open every topic under `data_dir`, recovering logs unless the last shutdown was clean.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<Self, TopicError> {
        fs::create_dir_all(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let records: BTreeMap<String, TopicRecord> = match fs::read(data_dir.join(TOPICS_FILE)) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| TopicError::Storage(format!("{} is corrupt: {e}", TOPICS_FILE)))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let now = now_ms();
        let mut topics = HashMap::new();
        for (name, rec) in records {
            let config = defaults.with_overrides(rec.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let mut partitions = Vec::new();
            for p in 0..rec.partitions {
                let (log, stats) = Log::open(&partition_dir(data_dir, &name, p), config.clone(), clean, now)?;
                if stats.recovered_segments > 0 {
                    tracing::info!(topic = %name, partition = p, recovered = stats.recovered_segments,
                        truncated_bytes = stats.truncated_bytes, dropped = stats.dropped_segments, "recovered log");
                }
                partitions.push(Arc::new(log));
            }
            topics.insert(name.clone(), Arc::new(Topic { name, id: rec.id, overrides: rec.configs, partitions }));
        }
        // From here on, a crash is unclean until the next clean shutdown writes the marker again.
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            defaults,
            topics: RwLock::new(topics),
            meta_lock: std::sync::Mutex::new(()),
        })
    }

    fn persist(&self, topics: &HashMap<String, Arc<Topic>>) -> io::Result<()> {
        let records: BTreeMap<&String, TopicRecord> = topics
            .iter()
            .map(|(n, t)| {
                (n, TopicRecord { id: t.id, partitions: t.partitions.len() as i32, configs: t.overrides.clone() })
            })
            .collect();
        let json = serde_json::to_vec_pretty(&records).map_err(io::Error::other)?;
        checkpoint::write_atomic(&self.data_dir.join(TOPICS_FILE), &json)
    }

    /// Look a topic up.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().expect("topics lock").get(name).cloned()
    }

    /// The log of one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Log>> {
        let t = self.get(topic)?;
        usize::try_from(partition).ok().and_then(|p| t.partitions.get(p).cloned())
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().expect("topics lock").values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every partition log.
    pub fn all_logs(&self) -> Vec<Arc<Log>> {
        self.all().iter().flat_map(|t| t.partitions.clone()).collect()
    }

    /// Check a topic creation without doing it; returns the effective config.
    pub fn validate_new(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, TopicError> {
        validate_topic_name(name)?;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.into()));
        }
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(partitions, "must be at least 1"));
        }
        if partitions > 10_000 {
            return Err(TopicError::InvalidPartitions(partitions, "at most 10000 per topic"));
        }
        if replication != 1 {
            return Err(TopicError::InvalidReplicationFactor(replication));
        }
        Ok(self.defaults.with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))?)
    }

    /// Create a topic.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let config = self.validate_new(name, partitions, replication, &overrides)?;
        let now = now_ms();
        let mut logs = Vec::new();
        for p in 0..partitions {
            let dir = partition_dir(&self.data_dir, name, p);
            // Leftovers of an earlier topic of that name (deleted while we were down) go first.
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
            logs.push(Arc::new(Log::open(&dir, config.clone(), true, now)?.0));
        }
        let topic = Arc::new(Topic { name: name.into(), id: Uuid::new_v4(), overrides, partitions: logs });
        let mut all = self.topics.write().expect("topics lock");
        all.insert(name.into(), topic.clone());
        self.persist(&all)?;
        Ok(topic)
    }

    /// Delete a topic and its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let topic = {
            let mut all = self.topics.write().expect("topics lock");
            let t = all.remove(name).ok_or_else(|| TopicError::Unknown(name.into()))?;
            self.persist(&all)?;
            t
        };
        for p in 0..topic.partitions.len() {
            fs::remove_dir_all(partition_dir(&self.data_dir, name, p as i32))?;
        }
        Ok(())
    }

    /// Grow a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let topic = self.get(name).ok_or_else(|| TopicError::Unknown(name.into()))?;
        let have = topic.partitions.len() as i32;
        if count <= have {
            return Err(TopicError::InvalidPartitions(count, "must be more than the current count"));
        }
        if count > 10_000 {
            return Err(TopicError::InvalidPartitions(count, "at most 10000 per topic"));
        }
        if validate_only {
            return Ok(());
        }
        let config = topic.partitions[0].config();
        let mut partitions = topic.partitions.clone();
        for p in have..count {
            let dir = partition_dir(&self.data_dir, name, p);
            if dir.exists() {
                fs::remove_dir_all(&dir)?;
            }
            partitions.push(Arc::new(Log::open(&dir, config.clone(), true, now_ms())?.0));
        }
        let new =
            Arc::new(Topic { name: topic.name.clone(), id: topic.id, overrides: topic.overrides.clone(), partitions });
        let mut all = self.topics.write().expect("topics lock");
        all.insert(name.into(), new);
        self.persist(&all)?;
        Ok(())
    }

    /// Apply config changes (`Some` sets, `None` resets to the default), all or nothing.
    pub fn alter_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let topic = self.get(name).ok_or_else(|| TopicError::Unknown(name.into()))?;
        let mut overrides = topic.overrides.clone();
        for (k, v) in changes {
            match v {
                Some(v) => overrides.insert(k.clone(), v.clone()),
                None => {
                    if LogConfig::default().get(k).is_none() {
                        return Err(ConfigError::Unknown(k.clone()).into());
                    }
                    overrides.remove(k)
                }
            };
        }
        let config = self.defaults.with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        if validate_only {
            return Ok(());
        }
        for log in &topic.partitions {
            log.set_config(config.clone());
        }
        let new =
            Arc::new(Topic { name: topic.name.clone(), id: topic.id, overrides, partitions: topic.partitions.clone() });
        let mut all = self.topics.write().expect("topics lock");
        all.insert(name.into(), new);
        self.persist(&all)?;
        Ok(())
    }

    /// The defaults new topics get.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Flush every log and write the clean-shutdown marker.
    pub fn close(&self) -> io::Result<()> {
        for log in self.all_logs() {
            log.close()?;
        }
        checkpoint::write_atomic(&self.data_dir.join(CLEAN_SHUTDOWN_FILE), b"clean\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders.v1", "A_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topics_survive_reopen_with_configs() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        let cfg = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        topics.create("t", 3, 1, cfg).unwrap();
        assert!(matches!(topics.create("t", 1, 1, BTreeMap::new()), Err(TopicError::AlreadyExists(_))));
        topics.add_partitions("t", 4, false).unwrap();
        topics.alter_configs("t", &[("retention.ms".into(), Some("1000".into()))], false).unwrap();
        topics.close().unwrap();
        drop(topics);
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        let t = topics.get("t").unwrap();
        assert_eq!(t.partitions.len(), 4);
        assert!(t.partitions[3].config().cleanup_policy.compacts());
        assert_eq!(t.partitions[0].config().retention_ms, 1000);
        topics.delete("t").unwrap();
        assert!(!dir.path().join("t-0").exists());
    }
}
