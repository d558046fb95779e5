//! The consumer side of consumer groups.
//!
//! - [`config`]: [`ConsumerConfig`] from Kafka's property names, validated.
//! - [`assignor`]: how the group leader divides partitions among members (range, roundrobin,
//!   cooperative-sticky) and the ConsumerProtocol metadata carried in JoinGroup and SyncGroup.

pub mod assignor;
pub mod config;

pub use config::{ConsumerConfig, OffsetReset};
