//! Broker settings under Kafka's names, with Kafka's defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::{ConfigError, LogConfig};

/// `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_SOCKET_REQUEST_MAX_BYTES: usize = rill_core::wire::DEFAULT_MAX_FRAME_BYTES;
/// `num.partitions` for auto-created topics.
pub const DEFAULT_NUM_PARTITIONS: i32 = 1;
/// `log.retention.check.interval.ms` (5 minutes).
pub const DEFAULT_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// `log.cleaner.backoff.ms` (15 s).
pub const DEFAULT_CLEANER_BACKOFF: Duration = Duration::from_secs(15);
/// `queued.max.request.bytes`: request bytes read but not yet handled, over all connections.
/// Kafka leaves this unbounded by default; a bound keeps slow clients from pinning memory.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;
/// Requests read ahead per connection before the reader waits for responses to drain.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 16;

/// Settings of one broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// Directory holding every partition directory (`log.dirs`).
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Host name given to clients in Metadata (defaults to the listen IP).
    pub advertised_host: Option<String>,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// Requests read ahead per connection.
    pub max_in_flight_per_connection: usize,
    /// `queued.max.request.bytes`.
    pub queued_max_request_bytes: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `log.cleaner.backoff.ms`.
    pub cleaner_backoff: Duration,
    /// Defaults for topic configs (`log.segment.bytes`, `log.retention.ms`, ...).
    pub log_defaults: LogConfig,
    /// Serve fetches with sendfile (zero-copy); off copies through user space.
    pub zero_copy: bool,
    /// Group coordinator settings (`group.*`, `offsets.retention.minutes`, ...).
    pub group: crate::group::GroupConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: i32,
    /// Transaction coordinator settings (`transaction.max.timeout.ms`, ...). Its
    /// `offsets_topic_partitions` is taken from [`BrokerConfig::offsets_topic_partitions`].
    pub txn: crate::txn::TxnConfig,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: i32,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent producer that wrote
    /// nothing for this long (and has no open transaction).
    pub producer_id_expiration: Duration,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check: Duration,
    /// The metadata quorum (`controller.quorum.voters`, heartbeats, sessions). With no voters
    /// the broker runs alone.
    pub cluster: crate::cluster::ClusterConfig,
    /// `default.replication.factor` for auto-created topics and CreateTopics without one.
    pub default_replication_factor: i16,
    /// `offsets.topic.replication.factor` and `transaction.state.log.replication.factor`
    /// (capped at the number of live brokers when the internal topics are created).
    pub internal_topic_replication_factor: i16,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.max.bytes`: what a follower asks of each partition per fetch. 8 MiB, above
    /// Kafka's 1 MiB on purpose: the high watermark moves one follower round trip at a time, and
    /// a busy partition's acks=all producers wait on that round trip (NOTES.md).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: what a follower asks for per fetch in all (16 MiB).
    pub replica_fetch_response_max_bytes: i32,
}

/// `value` as a number above zero, if it is one.
fn positive<T: std::str::FromStr + PartialOrd + Default>(value: &str) -> Option<T> {
    value.trim().parse().ok().filter(|n: &T| *n > T::default())
}

impl BrokerConfig {
    /// Defaults for a broker storing data in `data_dir`, listening on 127.0.0.1:9092.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id: 0,
            data_dir: data_dir.into(),
            listen: "127.0.0.1:9092".parse().expect("valid address"),
            advertised_host: None,
            auto_create_topics: true,
            num_partitions: DEFAULT_NUM_PARTITIONS,
            socket_request_max_bytes: DEFAULT_SOCKET_REQUEST_MAX_BYTES,
            max_in_flight_per_connection: DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            queued_max_request_bytes: DEFAULT_QUEUED_MAX_REQUEST_BYTES,
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
            cleaner_backoff: DEFAULT_CLEANER_BACKOFF,
            log_defaults: LogConfig::default(),
            zero_copy: true,
            group: crate::group::GroupConfig::default(),
            offsets_topic_partitions: crate::group::DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
            txn: crate::txn::TxnConfig::default(),
            transaction_state_partitions: crate::txn::DEFAULT_TRANSACTION_STATE_PARTITIONS,
            producer_id_expiration: Duration::from_millis(86_400_000),
            producer_id_expiration_check: Duration::from_millis(600_000),
            cluster: crate::cluster::ClusterConfig::default(),
            default_replication_factor: 1,
            internal_topic_replication_factor: 3,
            replica_lag_time_max: Duration::from_millis(30_000),
            replica_fetch_max_bytes: 8 << 20,
            replica_fetch_response_max_bytes: 16 << 20,
        }
    }

    /// Apply one broker setting by its Kafka name. Topic defaults take the broker-level names
    /// (`log.segment.bytes`, `log.retention.ms`, `log.retention.hours`, `log.cleanup.policy`, ...)
    /// or the topic-level name itself.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |why| ConfigError::Invalid { name: name.into(), value: value.into(), why };
        let ms = |v: &str| v.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| invalid("milliseconds"));
        let positive_ms = |v: &str| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| invalid("milliseconds > 0"))
        };
        match name {
            "node.id" | "broker.id" => self.node_id = value.trim().parse().map_err(|_| invalid("an integer"))?,
            "auto.create.topics.enable" => {
                self.auto_create_topics = value.trim().parse().map_err(|_| invalid("true or false"))?
            }
            "num.partitions" => self.num_partitions = positive(value).ok_or_else(|| invalid("a positive integer"))?,
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms =
                    value.trim().parse().ok().filter(|n| *n >= 0).ok_or_else(|| invalid("milliseconds >= 0"))?
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms =
                    value.trim().parse().ok().filter(|n| *n >= 0).ok_or_else(|| invalid("milliseconds >= 0"))?
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = positive(value).ok_or_else(|| invalid("milliseconds > 0"))?
            }
            "group.max.size" => self.group.max_size = positive(value).ok_or_else(|| invalid("a positive integer"))?,
            "offsets.retention.minutes" => {
                let m: i64 = positive(value).ok_or_else(|| invalid("minutes > 0"))?;
                self.group.offsets_retention_ms = m * 60_000;
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_partitions = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "transaction.max.timeout.ms" => {
                self.txn.max_timeout_ms = positive(value).ok_or_else(|| invalid("milliseconds > 0"))?
            }
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.txn.abort_check_interval_ms = positive(value).ok_or_else(|| invalid("milliseconds > 0"))?
            }
            "transaction.state.log.num.partitions" => {
                self.transaction_state_partitions = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "queued.max.request.bytes" => {
                self.queued_max_request_bytes = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "controller.quorum.voters" => {
                self.cluster.voters = crate::cluster::node::parse_voters(value)
                    .map_err(|_| invalid("ID@HOST:PORT entries separated by commas, each node id once"))?
            }
            "broker.heartbeat.interval.ms" => self.cluster.heartbeat_interval = positive_ms(value)?,
            "broker.session.timeout.ms" => self.cluster.session_timeout = positive_ms(value)?,
            "controller.quorum.election.timeout.ms" => self.cluster.election_timeout = positive_ms(value)?,
            "auto.leader.rebalance.enable" => {
                self.cluster.auto_leader_rebalance = value.trim().parse().map_err(|_| invalid("true or false"))?
            }
            "leader.imbalance.check.interval.seconds" => {
                let s: u64 = positive(value).ok_or_else(|| invalid("seconds > 0"))?;
                self.cluster.leader_imbalance_check = Duration::from_secs(s)
            }
            "default.replication.factor" => {
                self.default_replication_factor = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "offsets.topic.replication.factor" | "transaction.state.log.replication.factor" => {
                self.internal_topic_replication_factor = positive(value).ok_or_else(|| invalid("a positive integer"))?
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max = positive_ms(value)?,
            "replica.fetch.max.bytes" => {
                self.replica_fetch_max_bytes = positive(value).ok_or_else(|| invalid("a positive number of bytes"))?
            }
            "replica.fetch.response.max.bytes" => {
                self.replica_fetch_response_max_bytes =
                    positive(value).ok_or_else(|| invalid("a positive number of bytes"))?
            }
            "log.retention.check.interval.ms" => self.retention_check_interval = ms(value)?,
            "producer.id.expiration.ms" => self.producer_id_expiration = ms(value)?,
            "producer.id.expiration.check.interval.ms" => self.producer_id_expiration_check = ms(value)?,
            "log.cleaner.backoff.ms" => self.cleaner_backoff = ms(value)?,
            "message.max.bytes" => self.log_defaults.set("max.message.bytes", value)?,
            "log.retention.hours" => {
                let h: i64 = value.trim().parse().map_err(|_| invalid("hours"))?;
                self.log_defaults.set("retention.ms", &(h * 3_600_000).to_string())?
            }
            "log.roll.ms" => self.log_defaults.set("segment.ms", value)?,
            "log.roll.hours" => {
                let h: i64 = value.trim().parse().map_err(|_| invalid("hours"))?;
                self.log_defaults.set("segment.ms", &(h * 3_600_000).to_string())?
            }
            "log.flush.interval.messages" => self.log_defaults.set("flush.messages", value)?,
            "log.flush.interval.ms" => self.log_defaults.set("flush.ms", value)?,
            "log.cleaner.delete.retention.ms" => self.log_defaults.set("delete.retention.ms", value)?,
            "log.cleaner.min.cleanable.ratio" => self.log_defaults.set("min.cleanable.dirty.ratio", value)?,
            "log.cleaner.min.compaction.lag.ms" => self.log_defaults.set("min.compaction.lag.ms", value)?,
            "log.message.timestamp.type" => self.log_defaults.set("message.timestamp.type", value)?,
            other => {
                let topic_name = other.strip_prefix("log.").unwrap_or(other);
                self.log_defaults.set(topic_name, value)?
            }
        }
        Ok(())
    }

    /// Apply many settings in order.
    pub fn set_all(&mut self, settings: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (k, v) in settings {
            self.set(k, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_names_map_to_topic_defaults() {
        let mut c = BrokerConfig::new("/tmp/x");
        c.set("log.segment.bytes", "4096").unwrap();
        c.set("log.retention.hours", "1").unwrap();
        c.set("log.cleanup.policy", "compact").unwrap();
        c.set("num.partitions", "3").unwrap();
        assert_eq!(c.log_defaults.segment_bytes, 4096);
        assert_eq!(c.log_defaults.retention_ms, 3_600_000);
        assert!(c.log_defaults.cleanup_policy.compacts());
        assert_eq!(c.num_partitions, 3);
        assert!(c.set("log.bogus", "1").is_err());
        assert!(c.set("num.partitions", "0").is_err());
    }

    #[test]
    fn transaction_settings() {
        let mut c = BrokerConfig::new("/tmp/x");
        assert_eq!(
            (c.txn.max_timeout_ms, c.txn.abort_check_interval_ms, c.transaction_state_partitions),
            (900_000, 10_000, 50)
        );
        c.set("transaction.max.timeout.ms", "60000").unwrap();
        c.set("transaction.abort.timed.out.transaction.cleanup.interval.ms", "500").unwrap();
        c.set("transaction.state.log.num.partitions", "3").unwrap();
        assert_eq!(
            (c.txn.max_timeout_ms, c.txn.abort_check_interval_ms, c.transaction_state_partitions),
            (60_000, 500, 3)
        );
        assert!(c.set("transaction.max.timeout.ms", "0").is_err());
        assert!(c.set("transaction.state.log.num.partitions", "x").is_err());
    }

    #[test]
    fn replica_fetch_settings() {
        let mut c = BrokerConfig::new("/tmp/x");
        assert_eq!((c.replica_fetch_max_bytes, c.replica_fetch_response_max_bytes), (8 << 20, 16 << 20));
        c.set("replica.fetch.max.bytes", "1048576").unwrap();
        c.set("replica.fetch.response.max.bytes", "10485760").unwrap();
        assert_eq!((c.replica_fetch_max_bytes, c.replica_fetch_response_max_bytes), (1 << 20, 10 << 20));
        assert!(c.set("replica.fetch.max.bytes", "0").is_err());
        assert!(c.set("replica.fetch.response.max.bytes", "lots").is_err());
    }
}
