//! Streams settings, by their Kafka Streams names.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// `at_least_once`: offsets committed after outputs are flushed; a crash may repeat work.
    AtLeastOnce,
    /// `exactly_once_v2`: one transactional producer per stream thread; outputs, changelog
    /// records and input offsets commit in one transaction.
    ExactlyOnceV2,
}

/// What a handler does with a record that failed (`*.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Log it and stop the stream thread (the default, as Kafka Streams' `LogAndFail`).
    LogAndFail,
    /// Log it, skip the record (to the dead-letter topic if one is set) and go on.
    LogAndContinue,
}

impl OnError {
    fn parse(v: &str) -> Option<Self> {
        match v {
            "log_and_fail"
            | "LogAndFailExceptionHandler"
            | "LogAndFailProcessingExceptionHandler"
            | "DefaultProductionExceptionHandler" => Some(Self::LogAndFail),
            "log_and_continue"
            | "LogAndContinueExceptionHandler"
            | "LogAndContinueProcessingExceptionHandler"
            | "LogAndContinueProductionExceptionHandler" => Some(Self::LogAndContinue),
            _ => None,
        }
    }
}

/// `commit.interval.ms` under at-least-once (30 s, Kafka Streams' default).
pub const DEFAULT_COMMIT_INTERVAL_ALOS: Duration = Duration::from_secs(30);
/// `commit.interval.ms` under exactly-once (100 ms, Kafka Streams' default).
pub const DEFAULT_COMMIT_INTERVAL_EOS: Duration = Duration::from_millis(100);
/// `num.stream.threads`.
pub const DEFAULT_NUM_STREAM_THREADS: usize = 1;

/// Settings of one streams application instance.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of internal topics (required).
    pub application_id: String,
    /// `bootstrap.servers` (required).
    pub bootstrap_servers: String,
    /// `num.stream.threads`.
    pub num_stream_threads: usize,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `commit.interval.ms`; `None`: the guarantee's default.
    pub commit_interval: Option<Duration>,
    /// `state.dir`.
    pub state_dir: PathBuf,
    /// `replication.factor` of internal topics (-1: the broker's default).
    pub replication_factor: i16,
    /// `poll.ms`: how long a stream thread's poll waits for records.
    pub poll: Duration,
    /// `deserialization.exception.handler`.
    pub on_deserialization_error: OnError,
    /// `processing.exception.handler`.
    pub on_processing_error: OnError,
    /// `production.exception.handler`: what to do when an output record cannot be sent
    /// (too large, rejected by the broker); log_and_fail by default.
    pub on_production_error: OnError,
    /// `default.timestamp.extractor`: a built-in by its Kafka Streams name
    /// (`FailOnInvalidTimestamp`, `LogAndSkipOnInvalidTimestamp`,
    /// `UsePartitionTimeOnInvalidTimestamp`, `WallclockTimestampExtractor`); sources may set
    /// their own (`Topology::set_timestamp_extractor`, the DSL's `Consumed`).
    pub default_timestamp_extractor: String,
    /// `max.task.idle.ms`: how long a task with data on some of its partitions waits for the
    /// others before processing (0: never waits).
    pub max_task_idle: Duration,
    /// `task.timeout.ms`: how long a task keeps retrying calls a broker failure interrupted
    /// (a dead leader or coordinator, a connection lost mid-call) before its thread fails
    /// (KIP-572; 5 minutes as Kafka's).
    pub task_timeout: Duration,
    /// `repartition.purge.interval.ms`: how often a stream thread deletes the records of
    /// repartition topics it has committed past (they are read once, by this application).
    pub repartition_purge_interval: Duration,
    /// `num.standby.replicas`: standby copies of each task's
    /// state kept by other instances, ready to take the task over.
    pub num_standby_replicas: usize,
    /// `application.server`: this instance's `host:port` for interactive queries, shared with
    /// the group so any instance can tell which one hosts a key.
    pub application_server: Option<String>,
    /// `errors.dead.letter.queue.topic.name`: records skipped by a handler go here, with the
    /// reason in `__streams.errors.*` headers (KIP-1034).
    pub dead_letter_topic: Option<String>,
    /// Consumer properties passed through (`consumer.` prefix stripped).
    pub consumer: Vec<(String, String)>,
    /// Producer properties passed through (`producer.` prefix stripped).
    pub producer: Vec<(String, String)>,
}

impl StreamsConfig {
    /// Settings for `application_id` against `bootstrap_servers`, defaults elsewhere.
    pub fn new(application_id: impl Into<String>, bootstrap_servers: impl Into<String>) -> Self {
        Self {
            application_id: application_id.into(),
            bootstrap_servers: bootstrap_servers.into(),
            num_stream_threads: DEFAULT_NUM_STREAM_THREADS,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: None,
            state_dir: std::env::temp_dir().join("rill-streams"),
            replication_factor: -1,
            poll: Duration::from_millis(100),
            on_deserialization_error: OnError::LogAndFail,
            on_processing_error: OnError::LogAndFail,
            dead_letter_topic: None,
            on_production_error: OnError::LogAndFail,
            num_standby_replicas: 0,
            repartition_purge_interval: Duration::from_secs(30),
            default_timestamp_extractor: "FailOnInvalidTimestamp".to_string(),
            max_task_idle: Duration::ZERO,
            task_timeout: Duration::from_secs(300),
            application_server: None,
            consumer: Vec::new(),
            producer: Vec::new(),
        }
    }

    /// Settings from Kafka Streams property names.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut c = Self::new("", "");
        for (k, v) in props {
            c.set(k.as_ref(), v.as_ref())?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Apply one property.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let bad = |why: &str| Error::Config(format!("{name}={value}: {why}"));
        let v = value.trim();
        match name {
            "application.id" => self.application_id = v.to_string(),
            "bootstrap.servers" => self.bootstrap_servers = v.to_string(),
            "num.stream.threads" => {
                self.num_stream_threads = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a count >= 1"))?
            }
            "processing.guarantee" => {
                self.processing_guarantee = match v {
                    "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                    "exactly_once_v2" | "exactly_once" => ProcessingGuarantee::ExactlyOnceV2,
                    _ => return Err(bad("at_least_once or exactly_once_v2")),
                }
            }
            "commit.interval.ms" => {
                self.commit_interval = Some(Duration::from_millis(v.parse().map_err(|_| bad("milliseconds"))?))
            }
            "state.dir" => self.state_dir = PathBuf::from(v),
            "replication.factor" => self.replication_factor = v.parse().map_err(|_| bad("an integer"))?,
            "poll.ms" => self.poll = Duration::from_millis(v.parse().map_err(|_| bad("milliseconds"))?),
            "deserialization.exception.handler" => {
                self.on_deserialization_error =
                    OnError::parse(v).ok_or_else(|| bad("log_and_fail or log_and_continue"))?
            }
            "processing.exception.handler" => {
                self.on_processing_error = OnError::parse(v).ok_or_else(|| bad("log_and_fail or log_and_continue"))?
            }
            "production.exception.handler" => {
                self.on_production_error = OnError::parse(v).ok_or_else(|| bad("log_and_fail or log_and_continue"))?
            }
            "default.timestamp.extractor" => {
                if crate::streams::timestamp::extractor_by_name(v).is_none() {
                    return Err(bad("FailOnInvalidTimestamp, LogAndSkipOnInvalidTimestamp, UsePartitionTimeOnInvalidTimestamp or WallclockTimestampExtractor (a custom extractor is set on its source)"));
                }
                self.default_timestamp_extractor = v.to_string()
            }
            "max.task.idle.ms" => {
                // -1 (never wait, Kafka's opt-out) behaves as 0 here.
                let ms: i64 = v.parse().map_err(|_| bad("milliseconds, or -1"))?;
                self.max_task_idle = Duration::from_millis(ms.max(0) as u64)
            }
            "task.timeout.ms" => self.task_timeout = Duration::from_millis(v.parse().map_err(|_| bad("milliseconds"))?),
            "repartition.purge.interval.ms" => {
                self.repartition_purge_interval = Duration::from_millis(v.parse().map_err(|_| bad("milliseconds"))?)
            }
            "num.standby.replicas" => self.num_standby_replicas = v.parse().map_err(|_| bad("a count (0 or more)"))?,
            "application.server" => {
                if !v.is_empty() && !v.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                {
                    return Err(bad("host:port, the address this instance answers interactive queries on"));
                }
                self.application_server = (!v.is_empty()).then(|| v.to_string())
            }
            "errors.dead.letter.queue.topic.name" => self.dead_letter_topic = (!v.is_empty()).then(|| v.to_string()),
            other => {
                if let Some(k) = other.strip_prefix("consumer.") {
                    self.consumer.push((k.to_string(), v.to_string()));
                } else if let Some(k) = other.strip_prefix("producer.") {
                    self.producer.push((k.to_string(), v.to_string()));
                } else {
                    return Err(Error::Config(format!(
                        "unknown streams property {other}; pass client settings as consumer.<name> or producer.<name>"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Check required settings.
    pub fn validate(&self) -> Result<()> {
        if self.application_id.is_empty() {
            return Err(Error::Config("application.id is required".into()));
        }
        if !self.application_id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(Error::Config(format!(
                "application.id={}: use letters, digits, '.', '_' and '-' only (it prefixes topic names)",
                self.application_id
            )));
        }
        if self.bootstrap_servers.is_empty() {
            return Err(Error::Config("bootstrap.servers is required".into()));
        }
        Ok(())
    }

    /// The commit interval in force.
    pub fn commit_interval(&self) -> Duration {
        self.commit_interval.unwrap_or(match self.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => DEFAULT_COMMIT_INTERVAL_ALOS,
            ProcessingGuarantee::ExactlyOnceV2 => DEFAULT_COMMIT_INTERVAL_EOS,
        })
    }

    /// Exactly-once?
    pub fn exactly_once(&self) -> bool {
        self.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_by_kafka_name() {
        let c = StreamsConfig::from_properties([
            ("application.id", "wordcount"),
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("processing.guarantee", "exactly_once_v2"),
            ("num.stream.threads", "2"),
            ("consumer.max.poll.records", "100"),
        ])
        .unwrap();
        assert_eq!(c.commit_interval(), DEFAULT_COMMIT_INTERVAL_EOS);
        assert_eq!(c.num_stream_threads, 2);
        assert_eq!(c.consumer, vec![("max.poll.records".to_string(), "100".to_string())]);
        let e = StreamsConfig::from_properties([("application.id", "a b"), ("bootstrap.servers", "x")]).unwrap_err();
        assert!(e.to_string().contains("letters, digits"), "{e}");
        assert!(StreamsConfig::from_properties([("bogus", "1")]).unwrap_err().to_string().contains("unknown"));
        let mut c = StreamsConfig::new("a", "b");
        c.set("num.standby.replicas", "1").unwrap();
        c.set("application.server", "localhost:7070").unwrap();
        c.set("production.exception.handler", "log_and_continue").unwrap();
        assert_eq!((c.num_standby_replicas, c.application_server.as_deref()), (1, Some("localhost:7070")));
        assert_eq!(c.on_production_error, OnError::LogAndContinue);
        let e = c.set("application.server", "localhost").unwrap_err().to_string();
        assert!(e.contains("host:port"), "{e}");
    }
}
