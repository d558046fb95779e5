//! Rill: stream processing in Rust with a Kafka-compatible broker.
//!
//! This facade re-exports the workspace crates:
//! - [`core`]: records, Kafka wire framing and the client.
//! - [`broker`]: the broker, embedded ([`broker::Broker::embedded`]) or standalone (`rill broker`).

pub use rill_broker as broker;
pub use rill_core as core;
