//! rill-core: records, Kafka wire framing and the client.
//!
//! - [`wire`]: frame reading and request/response encoding shared with the broker.
//! - [`client`]: connections, metadata, admin and the requests tools need.
//! - [`consumer`]: consumer groups: partition assignors and the ConsumerProtocol.
//! - [`records`]: records as applications see them and their batch encoding.
//! - [`producer`]: the producer: batching, compression, retries, Kafka-compatible partitioning.

pub mod client;
pub mod consumer;
pub mod error;
pub mod producer;
mod props;
pub mod records;
pub mod streams;
pub mod wire;

pub use error::{Error, Result};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, RecordMetadata};
