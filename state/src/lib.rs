//! rill-state: state stores for Rill's streams runtime.
//!
//! At the bottom a [`BytesStore`](rill_core::streams::store::BytesStore) holding committed
//! state: [`RocksDbStore`] or its in-memory twin [`InMemoryStore`] (both pass one test suite).
//! Above it, layers that each do one thing ([`KvLayer`]), stacked as Kafka Streams stacks them:
//!
//! ```text
//! TypedStore<K, V>          serdes; KeyValueStore for processors, StateStore for the runtime
//!   Metered                 counts and latencies
//!     Caching               statestore.cache.max.bytes: coalesces writes per key
//!       ChangeLogging       every write also a record for <application.id>-<store>-changelog
//!         Staging | Direct  exactly-once: writes held until commit | at-least-once: write-through
//!           RocksDbStore | InMemoryStore
//! ```
//!
//! Window and session stores are the same stack over a time-segmented bytes store,
//! [`SegmentedRocksDbStore`] or [`SegmentedInMemoryStore`] (segments by window time, dropped
//! whole once past retention; see [`SegmentSpec`]).
//!
//! [`StoreBuilder`] builds such a stack from a declaration. Where restoration from the changelog
//! starts given a store's checkpoint is planned in core
//! ([`rill_core::streams::store::restore`], so the runtime can use it).

mod builder;
mod caching;
mod config;
mod layer;
mod logging;
mod memory;
mod merge;
mod metered;
mod rocks;
mod segmented;
mod staging;
#[cfg(test)]
mod suite;
mod typed;

pub use builder::{StoreBuilder, StoreContext, StoreKind};
pub use caching::{CacheFlushListener, Caching, ENTRY_OVERHEAD_BYTES};
pub use config::{default_state_dir, store_dir, StateConfig, StateConfigError, DEFAULT_CACHE_MAX_BYTES};
pub use layer::{Direct, KvLayer};
pub use logging::{changelog_topic, ChangeLogging};
pub use memory::InMemoryStore;
pub use metered::{Metered, OpStats, StoreMetrics};
pub use rocks::{
    RocksDbOptions, RocksDbStore, DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_MAX_WRITE_BUFFERS, DEFAULT_WRITE_BUFFER_BYTES,
};
pub use segmented::{
    default_segment_interval, window_changelog_configs, SegmentSpec, SegmentTime, SegmentedInMemoryStore,
    SegmentedRocksDbStore, MIN_DEFAULT_SEGMENT_INTERVAL_MS, WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS,
};
pub use staging::Staging;
pub use typed::TypedStore;
