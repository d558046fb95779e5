//! The Rill consumer and the consumer side of consumer groups.
//!
//! ```no_run
//! # async fn demo() -> rill_core::Result<()> {
//! use std::time::Duration;
//! use rill_core::consumer::{Consumer, ConsumerConfig};
//!
//! let config = ConsumerConfig::from_properties([
//!     ("bootstrap.servers", "127.0.0.1:9092"),
//!     ("group.id", "billing"),
//!     ("auto.offset.reset", "earliest"),
//! ])?;
//! let mut consumer = Consumer::new(config).await?;
//! consumer.subscribe(["orders"])?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! }
//! consumer.close().await?;
//! # Ok(()) }
//! ```
//!
//! - [`config`]: [`ConsumerConfig`] from Kafka's property names, validated.
//! - [`Consumer`]: `assign`, `subscribe` or `subscribe_pattern`, `poll`, `seek`, `position`, `pause`/`resume`,
//!   `committed`, `commit_sync`/`commit_async`, `close`.
//! - A fetcher task (`fetcher.rs`) looks up starting positions (the committed offset, else
//!   `auto.offset.reset`) and prefetches while unpolled data stays under `fetch.max.bytes`.
//! - A coordinator task (`group.rs`) runs group membership for `subscribe`: join, assign as
//!   leader, sync, heartbeat, rejoin; eager or cooperative (KIP-429) rebalances. Assignment
//!   changes are applied inside `poll`, where [`RebalanceListener`] callbacks run and revoked
//!   partitions are committed (with `enable.auto.commit`). When `poll` is not called within
//!   `max.poll.interval.ms` the member leaves the group and loses its partitions.
//! - Every `metadata.max.age.ms` the coordinator task re-reads metadata: when the topics a
//!   `subscribe_pattern` regex matches (whole names; internal topics excluded with
//!   `exclude.internal.topics`) change, or a subscribed topic gains partitions, it rejoins so the
//!   leader reassigns (`pattern.rs`).
//! - [`protocol`]: the group requests themselves.
//! - [`assignor`]: how the group leader divides partitions among members (range, roundrobin,
//!   cooperative-sticky) and the ConsumerProtocol metadata carried in JoinGroup and SyncGroup.
//!
//! - `isolation.level` (read_committed by default, as librdkafka): fetches stop at the last stable
//!   offset, records of aborted transactions and control batches are dropped
//!   ([`crate::records::decode_fetched`]) and positions move past them; `seek_to` the end and
//!   `auto.offset.reset=latest` use the last stable offset. [`Consumer::group_metadata`] feeds a
//!   transactional producer's `send_offsets_to_transaction`.
//!
//! Not yet: fetch sessions (KIP-227), fetching partitions of one topic from
//! several leaders in one round (the broker is single-node).

mod api;
pub mod assignor;
pub mod config;
mod fetcher;
mod group;
mod pattern;
pub use pattern::TopicPattern;
pub mod protocol;
mod state;

pub use api::{Consumer, ConsumerGroupMetadata, PolledRecord, RebalanceListener};
pub use config::{ConsumerConfig, OffsetReset};
pub use state::TopicPartition;
