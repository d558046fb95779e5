//! The state machine: the [`ClusterImage`] with every committed command applied, published to
//! the broker through a watch channel after each batch of entries.
//!
//! The image lives in memory; snapshots (`raft-snapshot` in the metadata directory, replaced
//! atomically) make it survive restarts, and the log after the snapshot is applied again.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{io_error, TypeConfig};
use crate::cluster::command::Reply;
use crate::cluster::image::ClusterImage;
use crate::log::checkpoint;

const SNAPSHOT_FILE: &str = "raft-snapshot";

/// What the broker sees of the state machine: the image as of a log index.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Index of the last applied entry (0: nothing yet).
    pub index: u64,
    /// The image at that index.
    pub image: Arc<ClusterImage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft::BasicNode>,
    image: ClusterImage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    state: State,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The metadata state machine. Clones share it (one is the snapshot builder).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    publish: Arc<watch::Sender<Applied>>,
}

impl StateMachine {
    /// Open the state machine in `dir`, starting from its snapshot if there is one.
    pub fn open(dir: &Path) -> io::Result<(Self, watch::Receiver<Applied>)> {
        let snapshot: Option<StoredSnapshot> = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| io::Error::other(format!("raft-snapshot: {e}")))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let state = match &snapshot {
            Some(s) => serde_json::from_slice(&s.data).map_err(|e| io::Error::other(format!("raft-snapshot: {e}")))?,
            None => State::default(),
        };
        let applied = published(&state);
        let (tx, rx) = watch::channel(applied);
        let inner = Inner { dir: dir.to_path_buf(), state, snapshot, snapshots_built: 0 };
        Ok((Self { inner: Arc::new(Mutex::new(inner)), publish: Arc::new(tx) }, rx))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn published(state: &State) -> Applied {
    Applied { index: state.last_applied.map(|l| l.index).unwrap_or(0), image: Arc::new(state.image.clone()) }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (stored, dir) = {
            let mut g = self.lock();
            g.snapshots_built += 1;
            let data =
                serde_json::to_vec(&g.state).map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
            let last = g.state.last_applied;
            let id = format!(
                "{}-{}-{}",
                last.map(|l| l.leader_id.term).unwrap_or(0),
                last.map(|l| l.index).unwrap_or(0),
                g.snapshots_built
            );
            let meta = SnapshotMeta { last_log_id: last, last_membership: g.state.membership.clone(), snapshot_id: id };
            (StoredSnapshot { meta, data }, g.dir.clone())
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        tokio::task::spawn_blocking(move || checkpoint::write_atomic(&dir.join(SNAPSHOT_FILE), &bytes))
            .await
            .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?
            .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        self.lock().snapshot = Some(stored.clone());
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, openraft::BasicNode>), StorageError<u64>> {
        let g = self.lock();
        Ok((g.state.last_applied, g.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        let applied = {
            let mut g = self.lock();
            for entry in entries {
                g.state.last_applied = Some(entry.log_id);
                replies.push(match entry.payload {
                    EntryPayload::Blank => Reply::Ok,
                    EntryPayload::Normal(cmd) => g.state.image.apply(entry.log_id.index, &cmd),
                    EntryPayload::Membership(m) => {
                        g.state.membership = StoredMembership::new(Some(entry.log_id), m);
                        Reply::Ok
                    }
                });
            }
            published(&g.state)
        };
        self.publish.send_replace(applied);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let state: State = serde_json::from_slice(&data)
            .map_err(|e| io_error(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, e))?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        let dir = self.lock().dir.clone();
        tokio::task::spawn_blocking(move || checkpoint::write_atomic(&dir.join(SNAPSHOT_FILE), &bytes))
            .await
            .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?
            .map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        let applied = {
            let mut g = self.lock();
            g.state = state;
            g.snapshot = Some(stored);
            published(&g.state)
        };
        self.publish.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.lock().snapshot.clone().map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
