//! rill-broker: Rill's Kafka-compatible broker.
//!
//! - [`log`]: segmented log storage (segments, indexes, recovery, retention, compaction).
//! - [`topics`]: the topics a broker holds and their persisted metadata.
//! - [`server`]: the Kafka-protocol TCP server; [`Broker`] starts one, standalone or embedded.
//! - [`alloc`]: the allocator a process hosting a broker should install.
//! - [`group`]: the consumer group coordinator, a state machine without I/O.
//! - [`txn`]: the transaction coordinator, a state machine without I/O.

pub mod alloc;
pub mod cluster;
pub mod config;
pub mod group;
pub mod log;
pub mod replica;
pub mod server;
pub mod topics;
pub mod txn;

pub use config::BrokerConfig;
pub use server::{Broker, BrokerState, StartError};
