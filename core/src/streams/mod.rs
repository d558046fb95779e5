//! The streams side of rill-core: serdes, records, the Processor API ([`processor`]), topologies
//! and tasks, the store traits the runtime talks to, and windowed keys ([`window`]).
//!
//! Store implementations (RocksDB, in-memory) and their layers live in `rill-state`; the DSL in
//! `rill-dsl`. Dependencies run `dsl -> state -> core`.

pub mod error;
pub mod global;
pub(crate) mod node;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
pub mod store;
pub mod task;
pub mod timestamp;
pub mod topology;
pub mod window;

pub use node::{Partitioner, TopicChoice, TopicNamer};
