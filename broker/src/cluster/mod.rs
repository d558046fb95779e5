//! The cluster: a metadata quorum on Raft (openraft) holding brokers, topics, replica
//! assignments, leaders, leader epochs and ISRs.
//!
//! - [`image`]: the metadata and the deterministic [`image::ClusterImage::apply`] of a
//!   [`command::Command`]; leader elections happen there, so they are replicated history.
//! - [`command`]: what the quorum replicates.

pub mod command;
pub mod image;
