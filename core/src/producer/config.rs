//! Producer settings under Kafka's property names, with Kafka 4.0's defaults.
//!
//! [`ProducerConfig`] is a plain struct: build it in code (`ProducerConfig::new(bootstrap)` and
//! set fields) or from string properties as Kafka clients take them
//! ([`ProducerConfig::from_properties`]). Either way [`ProducerConfig::validate`] runs before a
//! producer starts; an unknown property or a bad value is an [`Error::Config`] naming it.

use std::time::Duration;

use kafka_protocol::records::Compression;

use crate::error::{Error, Result};
use crate::records::parse_compression;

/// `acks`: all in-sync replicas acknowledge (Kafka's default since 3.0).
pub const DEFAULT_ACKS: Acks = Acks::All;
/// `linger.ms` (5 ms since Kafka 4.0, KIP-1030).
pub const DEFAULT_LINGER_MS: u64 = 5;
/// `batch.size`, bytes of records per partition batch.
pub const DEFAULT_BATCH_SIZE: usize = 16_384;
/// `compression.type`.
pub const DEFAULT_COMPRESSION: Compression = Compression::None;
/// `max.in.flight.requests.per.connection`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 5;
/// `retries`.
pub const DEFAULT_RETRIES: u32 = i32::MAX as u32;
/// `retry.backoff.ms`.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;
/// `retry.backoff.max.ms` (KIP-580: the backoff doubles per attempt up to this).
pub const DEFAULT_RETRY_BACKOFF_MAX_MS: u64 = 1_000;
/// `delivery.timeout.ms` (2 minutes).
pub const DEFAULT_DELIVERY_TIMEOUT_MS: u64 = 120_000;
/// `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// `buffer.memory` (32 MiB).
pub const DEFAULT_BUFFER_MEMORY: usize = 32 * 1024 * 1024;
/// `partitioner.ignore.keys`.
pub const DEFAULT_PARTITIONER_IGNORE_KEYS: bool = false;
/// `max.block.ms`: how long `send` may wait for metadata or buffer memory.
pub const DEFAULT_MAX_BLOCK_MS: u64 = 60_000;
/// `max.request.size`: the largest record (and produce request) the producer sends.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 1_048_576;
/// `client.id`.
pub const DEFAULT_CLIENT_ID: &str = "rill-producer";
/// `enable.idempotence` (on since Kafka 3.0, unless a conflicting setting turns it off).
pub const DEFAULT_ENABLE_IDEMPOTENCE: bool = true;
/// `transaction.timeout.ms` (1 minute): the coordinator aborts a transaction open this long.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;
/// The most requests per connection an idempotent producer may have in flight: the broker
/// remembers the last five batches per producer and partition.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// `acks`: how many replicas must have a record before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are reported as -1.
    None,
    /// `acks=1`: the leader has appended the record.
    Leader,
    /// `acks=all` (or `-1`): every in-sync replica has it.
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings. Field docs give the Kafka property each one stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list (required).
    pub bootstrap_servers: String,
    /// `client.id`.
    pub client_id: String,
    /// `acks`.
    pub acks: Acks,
    /// `linger.ms`: how long a partition's batch waits for more records before it is sent.
    pub linger: Duration,
    /// `batch.size`: bytes of encoded records per batch before it is sent regardless of
    /// `linger.ms` (counted before compression). 0 sends every record in a batch of its own.
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// `retries`: how often a batch is re-sent after a retriable error (within `delivery.timeout.ms`).
    pub retries: u32,
    /// `retry.backoff.ms`: the first wait before a retry.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: the backoff doubles per attempt up to this.
    pub retry_backoff_max: Duration,
    /// `delivery.timeout.ms`: the bound, from `send`, on reporting success or failure of a record.
    pub delivery_timeout: Duration,
    /// `request.timeout.ms`: how long to wait for a broker's answer.
    pub request_timeout: Duration,
    /// `buffer.memory`: bytes of records queued or in flight; `send` waits while they are used up.
    pub buffer_memory: usize,
    /// `partitioner.ignore.keys`: place keyed records like unkeyed ones (sticky).
    pub partitioner_ignore_keys: bool,
    /// `max.block.ms`: how long `send` waits for metadata or for buffer memory.
    pub max_block: Duration,
    /// `max.request.size`: the largest record the producer accepts, and the most record bytes
    /// it puts in one request.
    pub max_request_size: usize,
    /// `enable.idempotence`: `None` when not set, which means on unless `acks`, `retries` or
    /// `max.in.flight.requests.per.connection` conflict with it (then off, quietly, as Java does).
    /// `Some(true)` with a conflicting setting is a configuration error. See
    /// [`ProducerConfig::idempotent`].
    pub enable_idempotence: Option<bool>,
    /// `transactional.id`: enables transactions (requires idempotence).
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay open.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            client_id: DEFAULT_CLIENT_ID.into(),
            acks: DEFAULT_ACKS,
            linger: Duration::from_millis(DEFAULT_LINGER_MS),
            batch_size: DEFAULT_BATCH_SIZE,
            compression: DEFAULT_COMPRESSION,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retries: DEFAULT_RETRIES,
            retry_backoff: Duration::from_millis(DEFAULT_RETRY_BACKOFF_MS),
            retry_backoff_max: Duration::from_millis(DEFAULT_RETRY_BACKOFF_MAX_MS),
            delivery_timeout: Duration::from_millis(DEFAULT_DELIVERY_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            buffer_memory: DEFAULT_BUFFER_MEMORY,
            partitioner_ignore_keys: DEFAULT_PARTITIONER_IGNORE_KEYS,
            max_block: Duration::from_millis(DEFAULT_MAX_BLOCK_MS),
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            enable_idempotence: None,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(DEFAULT_TRANSACTION_TIMEOUT_MS),
        }
    }
}

/// Every property [`ProducerConfig::set`] knows.
pub const PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "max.in.flight.requests.per.connection",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "buffer.memory",
    "partitioner.ignore.keys",
    "max.block.ms",
    "max.request.size",
    "enable.idempotence",
    "transactional.id",
    "transaction.timeout.ms",
];

impl ProducerConfig {
    /// Defaults, talking to `bootstrap`.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self { bootstrap_servers: bootstrap.into(), ..Self::default() }
    }

    /// Settings from Kafka properties (`("linger.ms", "10")`, ...), applied over the defaults in
    /// order, then validated.
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

    /// Apply one property by its Kafka name. Checks the value alone; [`ProducerConfig::validate`]
    /// checks how values fit together.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let v = value.trim();
        let invalid = |expected: &str| Error::Config(format!("{name}={value:?} is invalid: expected {expected}"));
        let int = |min: i64, max: i64| -> Result<i64> {
            v.parse::<i64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
                if max == i32::MAX as i64 {
                    invalid(&format!("an integer of at least {min}"))
                } else {
                    invalid(&format!("an integer in {min}..={max}"))
                }
            })
        };
        let ms = || int(0, i32::MAX as i64).map(|n| Duration::from_millis(n as u64));
        let boolean = || match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("true or false")),
        };
        match name {
            "bootstrap.servers" => self.bootstrap_servers = v.to_string(),
            "client.id" => self.client_id = v.to_string(),
            "acks" => {
                self.acks = match v.to_ascii_lowercase().as_str() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => return Err(invalid("0, 1, all or -1")),
                }
            }
            "linger.ms" => self.linger = ms()?,
            "batch.size" => self.batch_size = int(0, i32::MAX as i64)? as usize,
            "compression.type" => {
                self.compression = parse_compression(&v.to_ascii_lowercase())
                    .map_err(|_| invalid("none, gzip, snappy, lz4 or zstd"))?
            }
            "max.in.flight.requests.per.connection" => self.max_in_flight = int(1, i32::MAX as i64)? as usize,
            "retries" => self.retries = int(0, i32::MAX as i64)? as u32,
            "retry.backoff.ms" => self.retry_backoff = ms()?,
            "retry.backoff.max.ms" => self.retry_backoff_max = ms()?,
            "delivery.timeout.ms" => self.delivery_timeout = ms()?,
            "request.timeout.ms" => self.request_timeout = ms()?,
            "buffer.memory" => self.buffer_memory = int(1, i64::MAX)? as usize,
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = boolean()?,
            "max.block.ms" => self.max_block = ms()?,
            "max.request.size" => self.max_request_size = int(1, i32::MAX as i64)? as usize,
            "enable.idempotence" => self.enable_idempotence = Some(boolean()?),
            "transactional.id" => self.transactional_id = (!v.is_empty()).then(|| v.to_string()),
            "transaction.timeout.ms" => {
                self.transaction_timeout = int(1, i32::MAX as i64).map(|n| Duration::from_millis(n as u64))?
            }
            other => return Err(Error::Config(unknown_property(other))),
        }
        Ok(())
    }

    /// Check the settings together: the bounds Kafka's producer enforces.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.bootstrap_servers.split(',').all(|s| s.trim().is_empty()) {
            return bad("bootstrap.servers is required (a comma-separated host:port list)".into());
        }
        if self.max_in_flight == 0 {
            return bad("max.in.flight.requests.per.connection must be at least 1".into());
        }
        if self.request_timeout.is_zero() || self.request_timeout.as_millis() > i32::MAX as u128 {
            return bad(format!("request.timeout.ms={} must be in 1..={}", self.request_timeout.as_millis(), i32::MAX));
        }
        let floor = self.linger + self.request_timeout;
        if self.delivery_timeout < floor {
            return bad(format!(
                "delivery.timeout.ms={} must be at least linger.ms + request.timeout.ms = {}",
                self.delivery_timeout.as_millis(),
                floor.as_millis()
            ));
        }
        if self.buffer_memory == 0 || self.buffer_memory > tokio::sync::Semaphore::MAX_PERMITS {
            return bad(format!(
                "buffer.memory={} must be in 1..={}",
                self.buffer_memory,
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        if self.max_request_size == 0 || self.max_request_size > i32::MAX as usize {
            return bad(format!("max.request.size={} must be in 1..={}", self.max_request_size, i32::MAX));
        }
        if self.enable_idempotence == Some(true) {
            if let Some(conflict) = self.idempotence_conflict() {
                return bad(format!("enable.idempotence=true conflicts with {conflict}"));
            }
        }
        if let Some(id) = &self.transactional_id {
            if !self.idempotent() {
                let why = match (self.enable_idempotence, self.idempotence_conflict()) {
                    (Some(false), _) => "enable.idempotence=false".to_string(),
                    (_, Some(conflict)) => format!("{conflict}, which turns idempotence off"),
                    _ => "idempotence off".to_string(),
                };
                return bad(format!("transactional.id={id:?} requires idempotence, but {why}"));
            }
            if self.transaction_timeout.is_zero() || self.transaction_timeout.as_millis() > i32::MAX as u128 {
                return bad(format!(
                    "transaction.timeout.ms={} must be in 1..={}",
                    self.transaction_timeout.as_millis(),
                    i32::MAX
                ));
            }
        }
        Ok(())
    }

    /// True when the producer is idempotent: `enable.idempotence=true`, or not set and nothing
    /// conflicts with it (`acks=all`, `retries` > 0, `max.in.flight.requests.per.connection` <= 5).
    pub fn idempotent(&self) -> bool {
        match self.enable_idempotence {
            Some(on) => on,
            None => DEFAULT_ENABLE_IDEMPOTENCE && self.idempotence_conflict().is_none(),
        }
    }

    /// The first setting idempotence cannot work with, as `name=value` and what it needs.
    fn idempotence_conflict(&self) -> Option<String> {
        if self.acks != Acks::All {
            let v = if self.acks == Acks::None { 0 } else { 1 };
            return Some(format!("acks={v} (idempotence needs acks=all)"));
        }
        if self.retries == 0 {
            return Some("retries=0 (idempotence needs retries > 0)".into());
        }
        if self.max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT {
            return Some(format!(
                "max.in.flight.requests.per.connection={} (idempotence needs at most {MAX_IN_FLIGHT_IDEMPOTENT})",
                self.max_in_flight
            ));
        }
        None
    }

    /// The backoff before retry number `attempt` (1 for the first retry), without jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let max = self.retry_backoff_max.max(self.retry_backoff);
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        self.retry_backoff.checked_mul(factor).unwrap_or(max).min(max)
    }
}

/// The message for an unknown property, suggesting the known one it most likely meant.
fn unknown_property(name: &str) -> String {
    crate::props::unknown_property("producer", name, PROPERTIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(extra: &[(&str, &str)]) -> Result<ProducerConfig> {
        let mut all = vec![("bootstrap.servers", "127.0.0.1:9092")];
        all.extend_from_slice(extra);
        ProducerConfig::from_properties(all)
    }

    fn config_error(r: Result<ProducerConfig>) -> String {
        match r {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = props(&[]).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16_384);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.retries, i32::MAX as u32);
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.buffer_memory, 32 << 20);
        assert!(!c.partitioner_ignore_keys);
        assert_eq!(c, ProducerConfig::new("127.0.0.1:9092"));
    }

    #[test]
    fn every_property_parses() {
        let c = props(&[
            ("client.id", "me"),
            ("acks", "1"),
            ("linger.ms", "20"),
            ("batch.size", "0"),
            ("compression.type", "ZSTD"),
            ("max.in.flight.requests.per.connection", "1"),
            ("retries", "3"),
            ("retry.backoff.ms", "10"),
            ("retry.backoff.max.ms", "50"),
            ("delivery.timeout.ms", "5000"),
            ("request.timeout.ms", "1000"),
            ("buffer.memory", "1048576"),
            ("partitioner.ignore.keys", "true"),
            ("max.block.ms", "100"),
            ("max.request.size", "2048"),
            ("enable.idempotence", "false"),
            ("transaction.timeout.ms", "9000"),
        ])
        .unwrap();
        assert_eq!(c.client_id, "me");
        assert_eq!(c.acks, Acks::Leader);
        assert_eq!(c.linger, Duration::from_millis(20));
        assert_eq!(c.batch_size, 0);
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!((c.max_in_flight, c.retries), (1, 3));
        assert_eq!(c.retry_backoff_max, Duration::from_millis(50));
        assert_eq!(c.delivery_timeout, Duration::from_secs(5));
        assert_eq!(c.buffer_memory, 1 << 20);
        assert!(c.partitioner_ignore_keys);
        assert_eq!((c.max_block, c.max_request_size), (Duration::from_millis(100), 2048));
        assert_eq!((c.enable_idempotence, c.transaction_timeout), (Some(false), Duration::from_secs(9)));
        for (v, want) in [("0", Acks::None), ("all", Acks::All), ("-1", Acks::All), ("ALL", Acks::All)] {
            assert_eq!(props(&[("acks", v)]).unwrap().acks, want, "acks={v}");
        }
    }

    #[test]
    fn bad_values_name_the_property() {
        let cases: &[(&str, &str, &str)] = &[
            ("acks", "2", "acks=\"2\" is invalid: expected 0, 1, all or -1"),
            ("linger.ms", "-1", "linger.ms=\"-1\" is invalid"),
            ("linger.ms", "soon", "linger.ms=\"soon\" is invalid"),
            ("batch.size", "1e6", "batch.size"),
            ("compression.type", "brotli", "compression.type=\"brotli\" is invalid: expected none, gzip"),
            ("max.in.flight.requests.per.connection", "0", "max.in.flight.requests.per.connection=\"0\""),
            ("retries", "-3", "retries"),
            ("buffer.memory", "0", "buffer.memory"),
            ("partitioner.ignore.keys", "yes", "partitioner.ignore.keys=\"yes\" is invalid: expected true or false"),
            ("max.request.size", "0", "max.request.size"),
            ("enable.idempotence", "maybe", "enable.idempotence=\"maybe\" is invalid: expected true or false"),
            ("transaction.timeout.ms", "0", "transaction.timeout.ms"),
        ];
        for (name, value, want) in cases {
            let msg = config_error(props(&[(name, value)]));
            assert!(msg.contains(want), "{name}={value}: {msg}");
        }
    }

    #[test]
    fn unknown_properties_are_named_with_a_suggestion() {
        let msg = config_error(props(&[("linger_ms", "5")]));
        assert!(msg.contains("'linger_ms'") && msg.contains("did you mean 'linger.ms'"), "{msg}");
        let msg = config_error(props(&[("bach.size", "5")]));
        assert!(msg.contains("did you mean 'batch.size'"), "{msg}");
        let msg = config_error(props(&[("group.id", "g")]));
        assert!(msg.contains("unknown producer property 'group.id'; known properties: bootstrap.servers"), "{msg}");
    }

    #[test]
    fn validate_checks_values_together() {
        let msg = config_error(ProducerConfig::from_properties([("acks", "1")]));
        assert!(msg.contains("bootstrap.servers is required"), "{msg}");
        let msg = config_error(props(&[("delivery.timeout.ms", "1000"), ("request.timeout.ms", "1000")]));
        assert!(
            msg.contains("delivery.timeout.ms=1000 must be at least linger.ms + request.timeout.ms = 1005"),
            "{msg}"
        );
        let msg = config_error(props(&[("request.timeout.ms", "0")]));
        assert!(msg.contains("request.timeout.ms=0"), "{msg}");
        let mut c = ProducerConfig::new("h:1");
        c.max_in_flight = 0;
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.contains("max.in.flight")));
    }

    #[test]
    fn idempotence_is_on_by_default_and_conflicts_follow_java() {
        assert!(props(&[]).unwrap().idempotent(), "on by default");
        // Not set: a conflicting setting turns it off quietly.
        for (k, v) in [("acks", "1"), ("acks", "0"), ("retries", "0"), ("max.in.flight.requests.per.connection", "6")] {
            let c = props(&[(k, v)]).unwrap();
            assert!(!c.idempotent(), "{k}={v}");
        }
        assert!(props(&[("max.in.flight.requests.per.connection", "5"), ("retries", "1")]).unwrap().idempotent());
        assert!(!props(&[("enable.idempotence", "false")]).unwrap().idempotent());
        // Set explicitly: a conflict is an error naming both settings.
        let msg = config_error(props(&[("enable.idempotence", "true"), ("acks", "1")]));
        assert!(msg.contains("enable.idempotence=true conflicts with acks=1"), "{msg}");
        let msg =
            config_error(props(&[("enable.idempotence", "true"), ("max.in.flight.requests.per.connection", "6")]));
        assert!(msg.contains("max.in.flight.requests.per.connection=6"), "{msg}");
        let msg = config_error(props(&[("retries", "0"), ("enable.idempotence", "true")]));
        assert!(msg.contains("retries=0"), "{msg}");
    }

    #[test]
    fn transactions_need_idempotence() {
        let c = props(&[("transactional.id", "tx-1")]).unwrap();
        assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
        assert_eq!(c.transaction_timeout, Duration::from_secs(60));
        assert!(c.idempotent());
        let msg = config_error(props(&[("transactional.id", "tx"), ("enable.idempotence", "false")]));
        assert!(msg.contains("transactional.id=\"tx\" requires idempotence, but enable.idempotence=false"), "{msg}");
        let msg = config_error(props(&[("transactional.id", "tx"), ("acks", "1")]));
        assert!(msg.contains("requires idempotence, but acks=1"), "{msg}");
        assert_eq!(props(&[("transactional.id", "")]).unwrap().transactional_id, None);
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let c = ProducerConfig::new("h:1");
        let ms = |a| c.backoff(a).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4), ms(5), ms(100)], [100, 200, 400, 800, 1000, 1000]);
    }
}
