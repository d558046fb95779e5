//! Consumer settings under Kafka's property names, with Kafka 4.0's defaults.
//!
//! [`ConsumerConfig`] is a plain struct: build it in code (`ConsumerConfig::new(bootstrap)` and
//! set fields) or from string properties ([`ConsumerConfig::from_properties`]). Either way
//! [`ConsumerConfig::validate`] runs before a consumer starts; an unknown property or a bad value
//! is an [`Error::Config`] naming it.

use std::time::Duration;

use crate::client::IsolationLevel;
use crate::consumer::assignor::{assignor_by_name, common_protocol, Assignor, CustomAssignor};
use crate::error::{Error, Result};

/// `client.id`.
pub const DEFAULT_CLIENT_ID: &str = "rill-consumer";
/// `auto.offset.reset`.
pub const DEFAULT_AUTO_OFFSET_RESET: OffsetReset = OffsetReset::Latest;
/// `enable.auto.commit`.
pub const DEFAULT_ENABLE_AUTO_COMMIT: bool = true;
/// `auto.commit.interval.ms`.
pub const DEFAULT_AUTO_COMMIT_INTERVAL_MS: u64 = 5_000;
/// `session.timeout.ms` (45 s since Kafka 3.0).
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;
/// `heartbeat.interval.ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 3_000;
/// `max.poll.interval.ms` (5 minutes).
pub const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;
/// `max.poll.records`.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// `fetch.min.bytes`.
pub const DEFAULT_FETCH_MIN_BYTES: i32 = 1;
/// `fetch.max.bytes` (50 MiB).
pub const DEFAULT_FETCH_MAX_BYTES: i32 = 52_428_800;
/// `max.partition.fetch.bytes` (1 MiB).
pub const DEFAULT_MAX_PARTITION_FETCH_BYTES: i32 = 1_048_576;
/// `fetch.max.wait.ms`.
pub const DEFAULT_FETCH_MAX_WAIT_MS: u64 = 500;
/// `partition.assignment.strategy`, as Java's consumer defaults it.
pub const DEFAULT_ASSIGNMENT_STRATEGY: &str = "range,cooperative-sticky";
/// `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// `retry.backoff.ms`.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;
/// `default.api.timeout.ms` (1 minute).
pub const DEFAULT_API_TIMEOUT_MS: u64 = 60_000;
/// `metadata.max.age.ms` (5 minutes).
pub const DEFAULT_METADATA_MAX_AGE_MS: u64 = 300_000;
/// `exclude.internal.topics`.
pub const DEFAULT_EXCLUDE_INTERNAL_TOPICS: bool = true;
/// `isolation.level`: read_committed, as librdkafka defaults it (Java's default is
/// read_uncommitted): applications never see aborted or still-open transactions.
pub const DEFAULT_ISOLATION_LEVEL: IsolationLevel = IsolationLevel::ReadCommitted;

/// `auto.offset.reset`: where to start when a partition has no committed offset or its position
/// is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// Fail `poll` with an error naming the partition instead.
    None,
}

/// Consumer settings. Field docs give the Kafka property each one stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list (required).
    pub bootstrap_servers: String,
    /// `group.id`: without it the consumer can only `assign` and cannot commit.
    pub group_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// `group.instance.id`: makes the member static.
    pub group_instance_id: Option<String>,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit`: commit positions every `auto.commit.interval.ms`, on revocation and
    /// on close.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the member leaves the group when `poll` is not called this long;
    /// also the rebalance timeout sent in JoinGroup.
    pub max_poll_interval: Duration,
    /// `max.poll.records`.
    pub max_poll_records: usize,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`: bytes per fetch response, and the bound on prefetched, unpolled data.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `partition.assignment.strategy`: assignor names in order of preference.
    pub assignment_strategy: Vec<String>,
    /// Assignors the application supplies ([`ConsumerConfig::with_assignor`]); when any is set
    /// they replace `partition.assignment.strategy`.
    pub custom_assignors: Vec<CustomAssignor>,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `default.api.timeout.ms`: how long a blocking call such as
    /// [`Consumer::committed`](super::Consumer::committed) keeps retrying a lost or moved
    /// coordinator before it fails.
    pub default_api_timeout: Duration,
    /// `metadata.max.age.ms`: how often a subscribed member re-reads metadata to notice topics
    /// matching its pattern appearing or disappearing and partition counts growing (then it
    /// rejoins the group).
    pub metadata_max_age: Duration,
    /// `exclude.internal.topics`: internal topics (`__consumer_offsets`, `__transaction_state`)
    /// never match a pattern subscription.
    pub exclude_internal_topics: bool,
    /// `isolation.level`: `read_committed` reads up to the last stable offset and skips aborted
    /// transactions; `read_uncommitted` reads everything up to the high watermark.
    pub isolation_level: IsolationLevel,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            group_id: None,
            client_id: DEFAULT_CLIENT_ID.into(),
            group_instance_id: None,
            auto_offset_reset: DEFAULT_AUTO_OFFSET_RESET,
            enable_auto_commit: DEFAULT_ENABLE_AUTO_COMMIT,
            auto_commit_interval: Duration::from_millis(DEFAULT_AUTO_COMMIT_INTERVAL_MS),
            session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
            heartbeat_interval: Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS),
            max_poll_interval: Duration::from_millis(DEFAULT_MAX_POLL_INTERVAL_MS),
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            fetch_min_bytes: DEFAULT_FETCH_MIN_BYTES,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            max_partition_fetch_bytes: DEFAULT_MAX_PARTITION_FETCH_BYTES,
            fetch_max_wait: Duration::from_millis(DEFAULT_FETCH_MAX_WAIT_MS),
            assignment_strategy: split_list(DEFAULT_ASSIGNMENT_STRATEGY),
            custom_assignors: Vec::new(),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            retry_backoff: Duration::from_millis(DEFAULT_RETRY_BACKOFF_MS),
            default_api_timeout: Duration::from_millis(DEFAULT_API_TIMEOUT_MS),
            metadata_max_age: Duration::from_millis(DEFAULT_METADATA_MAX_AGE_MS),
            exclude_internal_topics: DEFAULT_EXCLUDE_INTERNAL_TOPICS,
            isolation_level: DEFAULT_ISOLATION_LEVEL,
        }
    }
}

/// Every property [`ConsumerConfig::set`] knows.
pub const PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "client.id",
    "group.instance.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "max.poll.records",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.wait.ms",
    "partition.assignment.strategy",
    "request.timeout.ms",
    "retry.backoff.ms",
    "default.api.timeout.ms",
    "metadata.max.age.ms",
    "exclude.internal.topics",
    "isolation.level",
];

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

impl ConsumerConfig {
    /// Defaults, talking to `bootstrap`, without a group.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self { bootstrap_servers: bootstrap.into(), ..Self::default() }
    }

    /// Settings from Kafka properties, applied over the defaults in order, then validated.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Self::default();
        for (k, v) in props {
            config.set(k.as_ref(), v.as_ref())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Apply one property by its Kafka name. Checks the value alone; [`ConsumerConfig::validate`]
    /// checks how values fit together.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let v = value.trim();
        let invalid = |expected: &str| Error::Config(format!("{name}={value:?} is invalid: expected {expected}"));
        let int = |min: i64| -> Result<i64> {
            v.parse::<i64>()
                .ok()
                .filter(|n| (min..=i32::MAX as i64).contains(n))
                .ok_or_else(|| invalid(&format!("an integer in {min}..={}", i32::MAX)))
        };
        let ms = |min: i64| int(min).map(|n| Duration::from_millis(n as u64));
        let boolean = || match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("true or false")),
        };
        let optional = || (!v.is_empty()).then(|| v.to_string());
        match name {
            "bootstrap.servers" => self.bootstrap_servers = v.to_string(),
            "group.id" => self.group_id = optional(),
            "client.id" => self.client_id = v.to_string(),
            "group.instance.id" => self.group_instance_id = optional(),
            "auto.offset.reset" => {
                self.auto_offset_reset = match v.to_ascii_lowercase().as_str() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(invalid("earliest, latest or none")),
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = boolean()?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms(0)?,
            "session.timeout.ms" => self.session_timeout = ms(1)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms(1)?,
            "max.poll.interval.ms" => self.max_poll_interval = ms(1)?,
            "max.poll.records" => self.max_poll_records = int(1)? as usize,
            "fetch.min.bytes" => self.fetch_min_bytes = int(0)? as i32,
            "fetch.max.bytes" => self.fetch_max_bytes = int(0)? as i32,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int(1)? as i32,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms(0)?,
            "partition.assignment.strategy" => {
                let names = split_list(v);
                if let Some(bad) = names.iter().find(|n| assignor_by_name(n).is_none()) {
                    return Err(Error::Config(format!(
                        "{name}={value:?} is invalid: unknown assignor '{bad}'; use range, roundrobin or \
                         cooperative-sticky"
                    )));
                }
                self.assignment_strategy = names;
            }
            "request.timeout.ms" => self.request_timeout = ms(1)?,
            "retry.backoff.ms" => self.retry_backoff = ms(0)?,
            "default.api.timeout.ms" => self.default_api_timeout = ms(1)?,
            "metadata.max.age.ms" => self.metadata_max_age = ms(0)?,
            "exclude.internal.topics" => self.exclude_internal_topics = boolean()?,
            "isolation.level" => {
                self.isolation_level = match v.to_ascii_lowercase().as_str() {
                    "read_committed" => IsolationLevel::ReadCommitted,
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    _ => return Err(invalid("read_committed or read_uncommitted")),
                }
            }
            other => return Err(Error::Config(unknown_property(other))),
        }
        Ok(())
    }

    /// Check the settings together: the bounds Kafka's consumer enforces.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.bootstrap_servers.split(',').all(|s| s.trim().is_empty()) {
            return bad("bootstrap.servers is required (a comma-separated host:port list)".into());
        }
        if self.group_id.as_deref() == Some("") {
            return bad("group.id must not be empty; leave it unset for a consumer without a group".into());
        }
        if self.group_instance_id.is_some() && self.group_id.is_none() {
            return bad("group.instance.id needs a group.id".into());
        }
        if self.heartbeat_interval >= self.session_timeout {
            return bad(format!(
                "heartbeat.interval.ms={} must be lower than session.timeout.ms={}",
                self.heartbeat_interval.as_millis(),
                self.session_timeout.as_millis()
            ));
        }
        if self.max_poll_records == 0 {
            return bad("max.poll.records must be at least 1".into());
        }
        if self.request_timeout.is_zero() {
            return bad("request.timeout.ms must be at least 1".into());
        }
        if self.assignment_strategy.is_empty() {
            return bad("partition.assignment.strategy must name at least one assignor".into());
        }
        let assignors = self.assignors()?;
        let refs: Vec<&dyn Assignor> = assignors.iter().map(|a| a.as_ref()).collect();
        if common_protocol(&refs).is_none() {
            return bad(format!(
                "partition.assignment.strategy={:?} mixes assignors with no rebalance protocol in common",
                self.assignment_strategy.join(",")
            ));
        }
        Ok(())
    }

    /// Use `assignor` (before any set earlier, in order of preference) instead of
    /// `partition.assignment.strategy`: how Kafka Streams plugs in its own assignor.
    pub fn with_assignor(mut self, assignor: std::sync::Arc<dyn Assignor>) -> Self {
        self.custom_assignors.push(CustomAssignor(assignor));
        self
    }

    /// The assignors in order of preference: those set with [`ConsumerConfig::with_assignor`]
    /// if any, else those of `partition.assignment.strategy`.
    pub fn assignors(&self) -> Result<Vec<Box<dyn Assignor>>> {
        if !self.custom_assignors.is_empty() {
            return Ok(self.custom_assignors.iter().map(|a| Box::new(a.clone()) as Box<dyn Assignor>).collect());
        }
        self.assignment_strategy
            .iter()
            .map(|n| {
                assignor_by_name(n)
                    .ok_or_else(|| Error::Config(format!("partition.assignment.strategy: unknown assignor '{n}'")))
            })
            .collect()
    }
}

/// The message for an unknown property, suggesting the known one it most likely meant.
fn unknown_property(name: &str) -> String {
    crate::props::unknown_property("consumer", name, PROPERTIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(extra: &[(&str, &str)]) -> Result<ConsumerConfig> {
        let mut all = vec![("bootstrap.servers", "127.0.0.1:9092")];
        all.extend_from_slice(extra);
        ConsumerConfig::from_properties(all)
    }

    fn config_error(r: Result<ConsumerConfig>) -> String {
        match r {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = props(&[]).unwrap();
        assert_eq!(c.group_id, None);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.enable_auto_commit);
        assert_eq!(c.auto_commit_interval, Duration::from_secs(5));
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.max_poll_interval, Duration::from_secs(300));
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.fetch_max_bytes, 50 << 20);
        assert_eq!(c.max_partition_fetch_bytes, 1 << 20);
        assert_eq!(c.assignment_strategy, ["range", "cooperative-sticky"]);
        assert_eq!(c.metadata_max_age, Duration::from_secs(300));
        assert!(c.exclude_internal_topics);
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c, ConsumerConfig::new("127.0.0.1:9092"));
    }

    #[test]
    fn every_property_parses() {
        let c = props(&[
            ("group.id", "g"),
            ("client.id", "me"),
            ("group.instance.id", "i1"),
            ("auto.offset.reset", "Earliest"),
            ("enable.auto.commit", "false"),
            ("auto.commit.interval.ms", "100"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
            ("max.poll.interval.ms", "10000"),
            ("max.poll.records", "7"),
            ("fetch.min.bytes", "10"),
            ("fetch.max.bytes", "1000"),
            ("max.partition.fetch.bytes", "100"),
            ("fetch.max.wait.ms", "50"),
            ("partition.assignment.strategy", "org.apache.kafka.clients.consumer.RoundRobinAssignor, range"),
            ("request.timeout.ms", "1000"),
            ("retry.backoff.ms", "5"),
            ("metadata.max.age.ms", "200"),
            ("exclude.internal.topics", "FALSE"),
            ("isolation.level", "READ_UNCOMMITTED"),
        ])
        .unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.group_instance_id.as_deref(), Some("i1"));
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert!(!c.enable_auto_commit);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.max_poll_records, 7);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(50));
        assert_eq!(c.metadata_max_age, Duration::from_millis(200));
        assert!(!c.exclude_internal_topics);
        assert_eq!(c.assignors().unwrap().iter().map(|a| a.name()).collect::<Vec<_>>(), ["roundrobin", "range"]);
    }

    #[test]
    fn bad_values_name_the_property() {
        let e = config_error(props(&[("auto.offset.reset", "smallest")]));
        assert!(e.contains("auto.offset.reset") && e.contains("earliest, latest or none"), "{e}");
        let e = config_error(props(&[("max.poll.records", "0")]));
        assert!(e.contains("max.poll.records"), "{e}");
        let e = config_error(props(&[("enable.auto.commit", "yes")]));
        assert!(e.contains("enable.auto.commit"), "{e}");
        let e = config_error(props(&[("partition.assignment.strategy", "sticky")]));
        assert!(e.contains("partition.assignment.strategy") && e.contains("sticky"), "{e}");
        let e = config_error(props(&[("session.timeout.ms", "1000"), ("heartbeat.interval.ms", "1000")]));
        assert!(e.contains("heartbeat.interval.ms"), "{e}");
        let e = config_error(props(&[("group.instance.id", "x")]));
        assert!(e.contains("group.id"), "{e}");
        let e = config_error(ConsumerConfig::from_properties([("group.id", "g")]));
        assert!(e.contains("bootstrap.servers"), "{e}");
        let e = config_error(props(&[("group_id", "g")]));
        assert!(e.contains("did you mean 'group.id'"), "{e}");
        let e = config_error(props(&[("fetch.max.wait.ms", "-1")]));
        assert!(e.contains("fetch.max.wait.ms"), "{e}");
        let e = config_error(props(&[("metadata.max.age.ms", "-5")]));
        assert!(e.contains("metadata.max.age.ms") && e.contains("an integer in 0..="), "{e}");
        let e = config_error(props(&[("metadata.max.age.ms", "soon")]));
        assert!(e.contains("metadata.max.age.ms"), "{e}");
        let e = config_error(props(&[("isolation.level", "serializable")]));
        assert!(e.contains("isolation.level") && e.contains("read_committed or read_uncommitted"), "{e}");
        let e = config_error(props(&[("exclude.internal.topics", "1")]));
        assert!(e.contains("exclude.internal.topics"), "{e}");
    }
}
