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

/// File locked by the broker that has the data directory open.
pub const LOCK_FILE: &str = ".lock";

fn lock_data_dir(data_dir: &Path) -> Result<fs::File, TopicError> {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join(LOCK_FILE))?;
    // SAFETY: flock(2) on a descriptor we own; the lock lives as long as the file.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(TopicError::Storage(if e.kind() == std::io::ErrorKind::WouldBlock {
            format!("{} is in use by another broker; stop it or choose another --data-dir", data_dir.display())
        } else {
            format!("cannot lock {}: {e}", data_dir.join(LOCK_FILE).display())
        }));
    }
    Ok(f)
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
    /// An exclusive `flock` on `<data-dir>/.lock`, held while the topics are open, so a second
    /// broker cannot open the same directory.
    _lock: fs::File,
    defaults: LogConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises metadata changes and the `topics.json` write.
    meta_lock: std::sync::Mutex<()>,
    /// Set when `topics.json` was written while lookups were locked out.
    #[cfg(test)]
    persisted_under_lock: std::sync::atomic::AtomicBool,
}

fn partition_dir(data_dir: &Path, topic: &str, p: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{p}"))
}

impl Topics {
    /// Open every topic under `data_dir`, recovering logs unless the last shutdown was clean.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<Self, TopicError> {
        fs::create_dir_all(data_dir)?;
        let lock = lock_data_dir(data_dir)?;
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
        // The removal is fsynced: a marker back after a power loss would skip recovery.
        match fs::remove_file(&marker) {
            Ok(()) => checkpoint::sync_dir(data_dir)?,
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            Err(_) => {}
        }
        Ok(Self {
            _lock: lock,
            data_dir: data_dir.to_path_buf(),
            defaults,
            topics: RwLock::new(topics),
            meta_lock: std::sync::Mutex::new(()),
            #[cfg(test)]
            persisted_under_lock: Default::default(),
        })
    }

    /// The metadata of every topic with `change` applied (`None` removes the topic), as
    /// `topics.json` holds it.
    fn records_with(&self, name: &str, change: Option<&Topic>) -> BTreeMap<String, TopicRecord> {
        let record =
            |t: &Topic| TopicRecord { id: t.id, partitions: t.partitions.len() as i32, configs: t.overrides.clone() };
        let mut records: BTreeMap<String, TopicRecord> =
            self.topics.read().expect("topics lock").iter().map(|(n, t)| (n.clone(), record(t))).collect();
        match change {
            Some(t) => records.insert(name.to_string(), record(t)),
            None => records.remove(name),
        };
        records
    }

    /// Write `topics.json`. Called with `meta_lock` held and the topics lock not held, so that
    /// partition lookups do not wait for its fsyncs.
    fn persist(&self, records: &BTreeMap<String, TopicRecord>) -> io::Result<()> {
        #[cfg(test)]
        if self.topics.try_read().is_err() {
            self.persisted_under_lock.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let json = serde_json::to_vec_pretty(records).map_err(io::Error::other)?;
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
        self.create_locked(name, Uuid::new_v4(), partitions, overrides, config)
    }

    /// Create a topic as the cluster's metadata describes it: with its id, whatever its
    /// replication factor (the controller checked that).
    pub fn create_with_id(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let config = self.validate_new(name, partitions, 1, &overrides)?;
        self.create_locked(name, id, partitions, overrides, config)
    }

    fn create_locked(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        config: LogConfig,
    ) -> Result<Arc<Topic>, TopicError> {
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
        // The partition directories' names must be durable before topics.json names them.
        checkpoint::sync_dir(&self.data_dir)?;
        let topic = Arc::new(Topic { name: name.into(), id, overrides, partitions: logs });
        self.persist(&self.records_with(name, Some(&topic)))?;
        self.topics.write().expect("topics lock").insert(name.into(), topic.clone());
        Ok(topic)
    }

    /// Delete a topic and its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _m = self.meta_lock.lock().expect("meta lock");
        let topic = self.get(name).ok_or_else(|| TopicError::Unknown(name.into()))?;
        self.persist(&self.records_with(name, None))?;
        self.topics.write().expect("topics lock").remove(name);
        // Requests may still hold these logs; once closed they cannot write into a directory
        // that a topic created under the same name would reuse.
        for log in &topic.partitions {
            log.close_for_delete();
        }
        for p in 0..topic.partitions.len() {
            fs::remove_dir_all(partition_dir(&self.data_dir, name, p as i32))?;
        }
        checkpoint::sync_dir(&self.data_dir)?;
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
        checkpoint::sync_dir(&self.data_dir)?;
        let new =
            Arc::new(Topic { name: topic.name.clone(), id: topic.id, overrides: topic.overrides.clone(), partitions });
        self.persist(&self.records_with(name, Some(&new)))?;
        self.topics.write().expect("topics lock").insert(name.into(), new);
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
        let new =
            Arc::new(Topic { name: topic.name.clone(), id: topic.id, overrides, partitions: topic.partitions.clone() });
        self.persist(&self.records_with(name, Some(&new)))?;
        for log in &topic.partitions {
            log.set_config(config.clone());
        }
        self.topics.write().expect("topics lock").insert(name.into(), new);
        Ok(())
    }

    /// Replace a topic's config overrides in full (the cluster's metadata changed them).
    pub fn replace_configs(&self, name: &str, overrides: &BTreeMap<String, String>) -> Result<(), TopicError> {
        let topic = self.get(name).ok_or_else(|| TopicError::Unknown(name.into()))?;
        let mut changes: Vec<(String, Option<String>)> =
            overrides.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        changes.extend(topic.overrides.keys().filter(|k| !overrides.contains_key(*k)).map(|k| (k.clone(), None)));
        self.alter_configs(name, &changes, false)
    }

    /// The defaults new topics get.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Flush every log and write the clean-shutdown marker, unless a log failed to close (a
    /// failed log among them): then the next start recovers.
    pub fn close(&self) -> io::Result<()> {
        let mut first_err = None;
        for log in self.all_logs() {
            if let Err(e) = log.close() {
                tracing::error!(dir = %log.dir().display(), error = %e, "closing log failed; the next start recovers");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => checkpoint::write_atomic(&self.data_dir.join(CLEAN_SHUTDOWN_FILE), b"clean\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Topics::open(dir.path(), LogConfig::default()).unwrap();
        let e = Topics::open(dir.path(), LogConfig::default()).unwrap_err();
        assert!(e.to_string().contains("in use by another broker"), "{e}");
        drop(first);
        Topics::open(dir.path(), LogConfig::default()).expect("free again once the first is closed");
    }

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

    /// Two fsyncs per `topics.json` write: lookups of every partition must not wait for them.
    #[test]
    fn topics_json_is_written_outside_the_topics_lock() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        topics.create("t", 2, 1, BTreeMap::new()).unwrap();
        topics.add_partitions("t", 3, false).unwrap();
        topics.alter_configs("t", &[("retention.ms".into(), Some("1000".into()))], false).unwrap();
        topics.delete("t").unwrap();
        assert!(!topics.persisted_under_lock.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// Once the marker is gone the start counts as unclean; that must survive a power loss.
    #[test]
    fn removing_the_clean_shutdown_marker_is_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        Topics::open(dir.path(), LogConfig::default()).unwrap().close().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        checkpoint::synced_dirs::take();
        let _topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert!(checkpoint::synced_dirs::take().contains(&dir.path().to_path_buf()), "data directory fsynced");
    }

    /// New partition directories are made durable before `topics.json` names them.
    #[test]
    fn create_fsyncs_the_data_directory_before_persisting() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        checkpoint::synced_dirs::take();
        topics.create("t", 2, 1, BTreeMap::new()).unwrap();
        let synced = checkpoint::synced_dirs::take();
        let data = synced.iter().position(|d| d == dir.path()).expect("data directory fsynced");
        for p in 0..2 {
            let pdir = partition_dir(dir.path(), "t", p);
            assert!(synced[..data].contains(&pdir), "partition {p} fsynced before the data directory");
        }
    }

    /// A request still holding a partition of a deleted topic must not write into the directory
    /// of a new topic of the same name.
    #[test]
    fn a_stale_log_of_a_deleted_topic_cannot_touch_its_successor() {
        use crate::log::batch::test_util::batch;
        use kafka_protocol::records::Compression;
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        let cfg = BTreeMap::from([("segment.bytes".to_string(), "100".to_string())]);
        topics.create("t", 1, 1, cfg.clone()).unwrap();
        let stale = topics.partition("t", 0).unwrap();
        stale.append(&batch(3, 0, Compression::None), 0).unwrap();
        topics.delete("t").unwrap();
        topics.create("t", 1, 1, cfg).unwrap();
        let pdir = partition_dir(dir.path(), "t", 0);
        let listing = || {
            let mut names: Vec<String> =
                fs::read_dir(&pdir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };
        let before = listing();
        // This append would roll: a new segment file in the successor's directory.
        let res = stale.append(&batch(3, 1, Compression::None), 0);
        assert!(matches!(res, Err(LogError::Deleted)), "{res:?}");
        stale.flush().unwrap();
        assert!(!stale.flush_sealed().unwrap());
        assert_eq!(listing(), before, "the successor's directory is untouched");
        assert_eq!(topics.partition("t", 0).unwrap().log_end_offset(), 0);
    }
}
