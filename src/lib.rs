//! Rill: stream processing in Rust with a Kafka-compatible broker.
//!
//! This facade re-exports the workspace crates:
//! - [`core`]: records, Kafka wire framing, the client, the Processor API and the streams runtime.
//! - [`state`]: state stores (RocksDB, in-memory) and their layers.
//! - [`dsl`]: the streams DSL (`StreamsBuilder`, `KStream`, `KTable`) and the test driver.
//! - [`broker`]: the broker, embedded ([`broker::Broker::embedded`]) or standalone (`rill broker`).

pub use rill_broker as broker;
pub use rill_core as core;
pub use rill_dsl as dsl;
pub use rill_state as state;
