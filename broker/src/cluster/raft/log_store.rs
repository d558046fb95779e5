//! The Raft log on disk, in `<data-dir>/__cluster_metadata/`:
//!
//! - `raft-log`: entries, each `[u32 length][u32 crc32c][JSON]`, appended and fsynced before
//!   openraft is told they are durable. A torn or corrupt tail (a crash mid-append) is cut on
//!   open: those entries were never acknowledged.
//! - `raft-vote`: the vote (term and candidate), replaced atomically.
//! - `raft-purged`: the last purged log id, written before the purged entries leave `raft-log`.
//!
//! Truncation and purging rewrite `raft-log` atomically; the metadata log is small (snapshots
//! keep it short) and both are rare.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogId, RaftLogReader, StorageError, Vote};

use super::{io_error, TypeConfig};
use crate::log::checkpoint;

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "raft-vote";
const PURGED_FILE: &str = "raft-purged";

#[derive(Debug)]
struct Data {
    dir: PathBuf,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    file: Arc<File>,
}

/// The file-backed Raft log store. Clones share the same log (one is the reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    data: Arc<Mutex<Data>>,
}

fn encode(entry: &Entry<TypeConfig>) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Entries from `bytes` up to the first torn or corrupt record; returns them and the length of
/// the valid prefix.
fn decode_all(bytes: &[u8]) -> (Vec<Entry<TypeConfig>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 8..at + 8 + len) else { break };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice(body) else { break };
        out.push(entry);
        at += 8 + len;
    }
    (out, at)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> io::Result<()> {
    checkpoint::write_atomic(path, &serde_json::to_vec(v).map_err(io::Error::other)?)
}

impl LogStore {
    /// Open (or create) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let last_purged: Option<LogId<u64>> = read_json(&dir.join(PURGED_FILE))?;
        let path = dir.join(LOG_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (entries, valid) = decode_all(&bytes);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if valid < bytes.len() {
            tracing::warn!(dir = %dir.display(), cut = bytes.len() - valid, "metadata log had a torn tail; cut it");
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let floor = last_purged.map(|l| l.index);
        let entries = entries
            .into_iter()
            .filter(|e| floor.is_none_or(|f| e.log_id.index > f))
            .map(|e| (e.log_id.index, e))
            .collect();
        Ok(Self {
            data: Arc::new(Mutex::new(Data {
                dir: dir.to_path_buf(),
                entries,
                last_purged,
                vote,
                file: Arc::new(file),
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Data {
    /// Rewrite the log file with the entries held now.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        for e in self.entries.values() {
            bytes.extend_from_slice(&encode(e)?);
        }
        let path = self.dir.join(LOG_FILE);
        checkpoint::write_atomic(&path, &bytes)?;
        self.file = Arc::new(OpenOptions::new().append(true).open(&path)?);
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let d = self.lock();
        let last = d.entries.values().next_back().map(|e| *e.get_log_id()).or(d.last_purged);
        Ok(LogState { last_purged_log_id: d.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let (dir, vote) = (self.lock().dir.clone(), *vote);
        tokio::task::spawn_blocking(move || write_json(&dir.join(VOTE_FILE), &vote))
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.lock().vote = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut bytes = Vec::new();
        for e in &entries {
            bytes.extend_from_slice(&encode(e).map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?);
        }
        let file = self.lock().file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut f: &File = &file;
            f.write_all(&bytes)?;
            f.sync_data()
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        if let Err(e) = &written {
            // The file's tail is unknown now; refuse to go on rather than risk a gap.
            let err = io_error(ErrorSubject::Logs, ErrorVerb::Write, e);
            callback.log_io_completed(Err(io::Error::other(e.to_string())));
            return Err(err);
        }
        {
            let mut d = self.lock();
            for e in entries {
                d.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut d = self.lock();
        let _ = d.entries.split_off(&log_id.index);
        d.rewrite().map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut d = self.lock();
        write_json(&d.dir.join(PURGED_FILE), &log_id)
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        d.last_purged = Some(log_id);
        d.entries = d.entries.split_off(&(log_id.index + 1));
        d.rewrite().map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(crate::cluster::command::Command::AllocateProducerIds {
                count: index as u32,
            }),
        }
    }

    fn write(dir: &Path, entries: &[Entry<TypeConfig>]) {
        let mut f = OpenOptions::new().create(true).append(true).open(dir.join(LOG_FILE)).unwrap();
        for e in entries {
            f.write_all(&encode(e).unwrap()).unwrap();
        }
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_truncate_and_purge_persist() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1), entry(1, 2), entry(2, 3)]);
        // A torn fourth record.
        let mut torn = encode(&entry(2, 4)).unwrap();
        torn.truncate(torn.len() - 3);
        OpenOptions::new().append(true).open(dir.path().join(LOG_FILE)).unwrap().write_all(&torn).unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
        s.truncate(LogId::new(CommittedLeaderId::new(2, 1), 3)).await.unwrap();
        s.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.unwrap();
        s.save_vote(&Vote::new(5, 2)).await.unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
        assert_eq!(s.try_get_log_entries(0..10).await.unwrap().len(), 1);
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(5, 2)));
    }
}
