//! openraft glue: the type configuration, a file-backed log store, the state machine holding
//! the [`ClusterImage`](super::image::ClusterImage), and the network over the brokers' own port.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use super::command::{Command, Reply};

openraft::declare_raft_types!(
    /// Rill's Raft types: metadata commands in, replies out, nodes addressed `host:port`.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A Raft node of the metadata quorum.
pub type Raft = openraft::Raft<TypeConfig>;

/// The storage error openraft expects, from an I/O error.
pub(crate) fn io_error(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> openraft::StorageError<u64> {
    let e = std::io::Error::other(e.to_string());
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}
