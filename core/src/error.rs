//! The client's error type: classified so callers know what to retry.

use kafka_protocol::error::ResponseError;

/// Errors from the Rill client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Socket-level failure talking to a broker.
    #[error("cannot talk to a broker at {addr}: {cause}; check that one runs there (--bootstrap / bootstrap.servers)")]
    Io {
        /// Broker address.
        addr: String,
        /// Underlying error (in the message, not chained, so it is printed once).
        cause: std::io::Error,
    },
    /// Framing failure (oversized or truncated frame).
    #[error(transparent)]
    Frame(#[from] crate::wire::FrameError),
    /// A message could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("broker error {code} ({name}) on {what}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// Kafka error code.
        code: i16,
        /// Kafka's name for the code.
        name: String,
        /// What the request was about (topic, partition, ...).
        what: String,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// The broker does not support any version of an API we need in common with us.
    #[error("broker at {addr} does not support {api} in versions {min}..={max}")]
    UnsupportedVersion {
        /// Broker address.
        addr: String,
        /// API name.
        api: String,
        /// Our lowest version.
        min: i16,
        /// Our highest version.
        max: i16,
    },
    /// The connection closed before the response arrived.
    #[error("connection to {0} closed")]
    Disconnected(String),
    /// Invalid client configuration or arguments.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No broker could be reached.
    #[error("no broker reachable at {0}")]
    NoBroker(String),
    /// The group has members, so an outsider may not change its offsets.
    #[error("group '{0}' is active; stop its consumers first")]
    GroupActive(String),
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Kafka's `ProducerFencedException`: a newer producer with the same `transactional.id`
    /// called `init_transactions` (or the coordinator fenced this one: `PRODUCER_FENCED`, or
    /// `INVALID_PRODUCER_EPOCH` from a transaction coordinator). Fatal: the producer can only be
    /// closed.
    #[error("producer fenced: {0}; another producer with the same transactional.id took over, close this one")]
    ProducerFenced(String),
    /// Kafka's `TransactionAbortableException`: the current transaction cannot commit (a batch of
    /// it failed, `TRANSACTION_ABORTABLE`, an offset commit was refused, ...). Call
    /// `abort_transaction`; the producer can then begin a new transaction.
    #[error("the transaction must be aborted: {0}")]
    TransactionAbortable(Box<Error>),
    /// A fatal producer error (Kafka's `KafkaException` from a fatal transaction state): the broker
    /// refused the producer for good (`UNSUPPORTED_VERSION`, `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`,
    /// `INVALID_TRANSACTION_TIMEOUT`, an idempotent producer's unrecoverable sequence error, ...).
    /// The producer can only be closed.
    #[error("fatal producer error, close the producer: {0}")]
    ProducerFatal(Box<Error>),
    /// Kafka's `TransactionAbortedException`: the record was queued in a transaction that was
    /// aborted before it was sent.
    #[error("transaction aborted: {0}")]
    TransactionAborted(String),
    /// Kafka's `IllegalStateException`: an operation called in a state that does not allow it
    /// (`begin_transaction` twice, `send` outside a transaction on a transactional producer, ...).
    #[error("illegal state: {0}")]
    IllegalState(String),
}

impl Error {
    /// Build a broker error from a Kafka error code; `None` for code 0.
    pub fn from_code(code: i16, what: impl Into<String>, message: Option<String>) -> Option<Self> {
        if code == 0 {
            return None;
        }
        let name = match ResponseError::try_from_code(code) {
            Some(ResponseError::Unknown(_)) | None => "UNKNOWN_SERVER_ERROR".to_string(),
            Some(e) => screaming_snake(&e.to_string()),
        };
        Some(Error::Broker { code, name, what: what.into(), message })
    }

    /// True when retrying the same operation may succeed (Kafka's retriable errors, I/O).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Disconnected(_) | Error::Timeout(_) => true,
            Error::Broker { code, .. } => {
                ResponseError::try_from_code(*code).map(|e| e.is_retriable()).unwrap_or(false)
            }
            _ => false,
        }
    }

    /// The Kafka error code, for broker errors (also when wrapped in
    /// [`Error::TransactionAbortable`] or [`Error::ProducerFatal`]).
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            Error::TransactionAbortable(e) | Error::ProducerFatal(e) => e.code(),
            _ => None,
        }
    }

    /// True for errors after which a producer can only be closed ([`Error::ProducerFenced`],
    /// [`Error::ProducerFatal`]).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::ProducerFenced(_) | Error::ProducerFatal(_))
    }
}

/// Result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`, Kafka's spelling of error names.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_retriability_follow_kafka() {
        let e = Error::from_code(3, "t-0", None).unwrap();
        assert!(e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION"), "{e}");
        assert!(e.is_retriable());
        assert!(!Error::from_code(10, "t-0", None).unwrap().is_retriable());
        assert!(Error::from_code(0, "t", None).is_none());
    }
}
