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

    /// The Kafka error code, for broker errors.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
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
