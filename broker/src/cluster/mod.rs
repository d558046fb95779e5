//! The cluster: a metadata quorum on Raft (openraft) holding brokers, topics, replica
//! assignments, leaders, leader epochs and ISRs.
//!
//! - [`image`]: the metadata and the deterministic [`image::ClusterImage::apply`] of a
//!   [`command::Command`]; leader elections happen there, so they are replicated history.
//! - [`command`]: what the quorum replicates.
//! - [`controller`]: the active controller's decisions (fencing, unfencing, rebalancing),
//!   without I/O.
//! - [`raft`]: openraft's storage, state machine and network.
//! - [`rpc`]: the broker-to-broker calls, on the brokers' own port.
//! - [`node`]: a broker's node of the quorum, tying these together.

pub mod command;
pub mod controller;
pub mod image;
pub mod node;
pub mod raft;
pub mod rpc;

pub use node::{ClusterConfig, ClusterNode};
