//! Replication of partition data between brokers, as in Kafka: leaders track their followers'
//! log ends, move the high watermark to the smallest among the ISR, and ask the controller to
//! shrink or grow the ISR; followers fetch from their leader as replicas and truncate by leader
//! epoch when leadership changes.
//!
//! - [`hw`]: the arithmetic (high watermark, caught-up time, ISR changes, truncation point).
//! - [`partition`]: one partition's role, without I/O.
//! - [`manager`]: every partition's role on this broker, following the cluster image.
//! - [`fetcher`]: the follower side, one task per leader broker.

pub mod fetcher;
pub mod hw;
pub mod manager;
pub mod partition;

pub use manager::ReplicaManager;
