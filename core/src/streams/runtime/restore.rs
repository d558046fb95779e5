//! Restoring a task's stores from their changelogs before it processes anything.
//!
//! Each logged store restores from its checkpoint (the changelog offset its committed state
//! corresponds to) up to the changelog's last stable offset, reading committed data only. A store
//! with no checkpoint restores from the start; one whose checkpoint lies past the changelog's end
//! (the changelog was recreated) is cleared first. Nothing is wiped otherwise: under
//! exactly-once a crash leaves a store at most one commit behind its changelog, and this replays
//! just that tail.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::retry::retrying;
use crate::client::{Client, IsolationLevel, EARLIEST, LATEST};
use crate::records::decode_fetched;
use crate::streams::error::{Result, StreamsError};
use crate::streams::store::WriteOp;
use crate::streams::task::Task;

/// Bytes fetched per restore round trip.
const RESTORE_FETCH_BYTES: i32 = 4 << 20;

/// What a restore did, per store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Changelog records applied.
    pub records: u64,
    /// Changelog offset restoration started from.
    pub from: i64,
    /// Changelog offset it reached.
    pub to: i64,
}

/// Restore every logged store of `task` (those whose changelog is in `partitions`). Calls a
/// broker failure interrupts are retried for up to `timeout` (`task.timeout.ms`).
pub(crate) async fn restore_task(
    client: &Client,
    task: &mut Task,
    application_id: &str,
    partitions: &HashMap<String, i32>,
    timeout: Duration,
) -> Result<Vec<(String, RestoreStats)>> {
    let id = task.id();
    let mut out = Vec::new();
    for store in task.context().state_stores() {
        let changelog = format!("{application_id}-{}-changelog", store.name());
        if !partitions.contains_key(&changelog) {
            continue;
        }
        let started = Instant::now();
        let p = id.partition;
        let (earliest, end) = retrying(client, timeout, "the changelog's offsets", || async {
            let earliest = client.list_offset(&changelog, p, EARLIEST).await?;
            let end = client.list_offset_isolated(&changelog, p, LATEST, IsolationLevel::ReadCommitted).await?;
            Ok::<_, crate::error::Error>((earliest, end))
        })
        .await?;
        let mut pos = match store.checkpoint()? {
            // Below the earliest offset (retention or compaction moved it): start there.
            Some(c) if c <= end => c.max(earliest),
            Some(c) => {
                tracing::warn!(store = store.name(), task = %id, checkpoint = c, end, "checkpoint past the changelog's end; restoring from the start");
                store.clear()?;
                earliest
            }
            None => earliest,
        };
        let from = pos;
        let mut records = 0u64;
        while pos < end {
            let data = retrying(client, timeout, "restoring from the changelog", || async {
                let got = client
                    .fetch_many_isolated(
                        &changelog,
                        &[(p, pos)],
                        RESTORE_FETCH_BYTES,
                        RESTORE_FETCH_BYTES,
                        500,
                        IsolationLevel::ReadCommitted,
                    )
                    .await?;
                got.into_iter().next().map(|(_, data)| data).transpose()
            })
            .await?;
            let Some(data) = data else { break };
            let fetched = decode_fetched(data.records, pos, &data.aborted_transactions)?;
            let Some(next) = fetched.next_offset.filter(|n| *n > pos) else {
                return Err(StreamsError::Topology(format!(
                    "restoring {} of task {id}: no progress at offset {pos} of {changelog} (end {end})",
                    store.name()
                )));
            };
            let batch: Vec<WriteOp> =
                fetched.records.into_iter().filter_map(|r| r.key.map(|k: Bytes| (k, r.value))).collect();
            records += batch.len() as u64;
            store.restore(batch, next)?;
            pos = next;
        }
        if records > 0 {
            tracing::info!(store = store.name(), task = %id, records, from, to = pos, elapsed = ?started.elapsed(), "restored");
        }
        out.push((store.name().to_string(), RestoreStats { records, from, to: pos }));
    }
    Ok(out)
}
