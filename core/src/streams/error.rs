//! Errors of topologies and their processing.

use super::serde::SerdeError;
use super::store::StoreError;

/// Why building or running a topology failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The topology is malformed (unknown parent, duplicate name, mismatched types, ...).
    #[error("topology: {0}")]
    Topology(String),
    /// A key or value could not be (de)serialized.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// An input record could not be deserialized at its source (the
    /// `deserialization.exception.handler` decides what happens).
    #[error("source {source_node}: {cause}")]
    Deserialization {
        /// The source node.
        source_node: String,
        /// Why.
        cause: SerdeError,
    },
    /// A state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A processor failed on a record.
    #[error("processor {node}: {cause}")]
    Processing {
        /// The processor's name.
        node: String,
        /// What went wrong.
        cause: String,
    },
    /// Sending a record to its topic failed.
    #[error("sending to {topic}: {cause}")]
    Send {
        /// Output topic.
        topic: String,
        /// Why.
        cause: String,
    },
    /// The Kafka client failed.
    #[error(transparent)]
    Client(#[from] crate::error::Error),
}

impl StreamsError {
    /// A processing error of `node`.
    pub fn processing(node: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Processing { node: node.into(), cause: cause.to_string() }
    }
}

/// Result of topology and processing operations.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
