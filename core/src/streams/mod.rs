//! The streams side of rill-core: serdes, the store traits the runtime talks to, and (as the
//! streams issues land) the processor API and the runtime.
//!
//! Store implementations (RocksDB, in-memory) and their layers live in `rill-state`; the DSL in
//! `rill-dsl`. Dependencies run `dsl -> state -> core`.

pub mod serde;
pub mod store;
