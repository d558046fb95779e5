//! The background fetcher: looks up starting positions (committed offset, else
//! `auto.offset.reset`) and prefetches records for assigned, unpaused partitions while the
//! unpolled data stays under `fetch.max.bytes`, one Fetch per topic and leader broker. One fetch is in flight at a time for a
//! partition; results are dropped if the partition's epoch changed meanwhile.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::task::JoinSet;

use super::config::OffsetReset;
use super::protocol::{self, codes};
use super::state::{Completed, Shared, TopicPartition};
use crate::client::{EARLIEST, LATEST};
use crate::error::{Error, Result};
use crate::records::decode_fetched;

/// Run until the consumer closes.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    loop {
        if shared.is_closed() {
            break;
        }
        let (resolve, fetch) = plan(&shared);
        if !resolve.is_empty() {
            let s = shared.clone();
            tasks.spawn(async move { resolve_positions(&s, resolve).await });
        }
        for (topic, parts) in fetch {
            let s = shared.clone();
            tasks.spawn(async move { fetch_topic(&s, topic, parts).await });
        }
        tokio::select! {
            _ = shared.fetcher_wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

type Planned = (Vec<(TopicPartition, u64)>, BTreeMap<String, Vec<(i32, i64, u64)>>);

/// Partitions that need a position looked up, and partitions to fetch by topic.
fn plan(shared: &Shared) -> Planned {
    let mut state = shared.lock();
    let full = state.buffered_bytes >= shared.config.fetch_max_bytes.max(1) as usize;
    let buffered: std::collections::BTreeSet<TopicPartition> = state.buffered.iter().map(|c| c.tp.clone()).collect();
    let mut resolve = Vec::new();
    let mut fetch: BTreeMap<String, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for (tp, p) in state.parts.iter_mut() {
        if p.busy || p.failed {
            continue;
        }
        match p.position {
            None => {
                p.busy = true;
                resolve.push((tp.clone(), p.epoch));
            }
            Some(offset) if !p.paused && !full && !buffered.contains(tp) => {
                p.busy = true;
                fetch.entry(tp.0.clone()).or_default().push((tp.1, offset, p.epoch));
            }
            Some(_) => {}
        }
    }
    (resolve, fetch)
}

/// Mark partitions idle again (if their epoch still matches) and wake the planner.
fn release(shared: &Shared, parts: impl IntoIterator<Item = (TopicPartition, u64)>) {
    let mut state = shared.lock();
    for (tp, epoch) in parts {
        if let Some(p) = state.parts.get_mut(&tp) {
            if p.epoch == epoch {
                p.busy = false;
            }
        }
    }
    drop(state);
    shared.fetcher_wake.notify_one();
}

async fn backoff(shared: &Shared) {
    tokio::time::sleep(shared.config.retry_backoff).await;
}

async fn resolve_positions(shared: &Shared, parts: Vec<(TopicPartition, u64)>) {
    let committed = match committed_for(shared, &parts).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "looking up committed offsets failed; retrying");
            if protocol::is_coordinator_error(&e) {
                shared.forget_coordinator().await;
            }
            backoff(shared).await;
            return release(shared, parts);
        }
    };
    for (tp, epoch) in &parts {
        let found = match committed.get(tp).copied().flatten() {
            Some(o) => Ok(Some(o)),
            None => reset_offset(shared, tp).await,
        };
        let failed = {
            let mut guard = shared.lock();
            let state = &mut *guard;
            let Some(p) = state.parts.get_mut(tp) else { continue };
            if p.epoch != *epoch {
                continue;
            }
            match found {
                Ok(Some(o)) => {
                    p.busy = false;
                    p.position = Some(o);
                    p.needs_reset = false;
                    None
                }
                Ok(None) => {
                    p.busy = false;
                    p.failed = true;
                    state.errors.push_back(Error::Config(format!(
                        "{}-{}: no committed offset{} and auto.offset.reset=none; seek to a position",
                        tp.0,
                        tp.1,
                        if p.needs_reset { " in range" } else { "" }
                    )));
                    shared.poll_wake.notify_one();
                    None
                }
                Err(e) => Some(e),
            }
        };
        if let Some(e) = failed {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "offset reset failed; retrying");
            shared.client.invalidate().await;
            backoff(shared).await;
            release(shared, [(tp.clone(), *epoch)]);
        }
    }
    shared.fetcher_wake.notify_one();
}

/// Committed offsets of the partitions that want them (group consumers, not after an
/// out-of-range error).
async fn committed_for(
    shared: &Shared,
    parts: &[(TopicPartition, u64)],
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let Some(group) = shared.config.group_id.as_deref() else { return Ok(BTreeMap::new()) };
    let wanted: Vec<TopicPartition> = {
        let state = shared.lock();
        parts
            .iter()
            .filter(|(tp, _)| state.parts.get(tp).is_some_and(|p| !p.needs_reset))
            .map(|(tp, _)| tp.clone())
            .collect()
    };
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let conn = shared.coordinator().await?;
    let stable = shared.config.isolation_level == crate::client::IsolationLevel::ReadCommitted;
    protocol::fetch_offsets(&conn, group, &wanted, shared.config.request_timeout, stable).await
}

/// The `auto.offset.reset` position; `None` for `none`.
async fn reset_offset(shared: &Shared, tp: &TopicPartition) -> Result<Option<i64>> {
    let ts = match shared.config.auto_offset_reset {
        OffsetReset::Earliest => EARLIEST,
        OffsetReset::Latest => LATEST,
        OffsetReset::None => return Ok(None),
    };
    shared.client.list_offset_isolated(&tp.0, tp.1, ts, shared.config.isolation_level).await.map(Some)
}

/// Fetch `parts` of `topic`: one request per leader broker (a Fetch goes to the leader of every
/// partition in it), the requests side by side.
async fn fetch_topic(shared: &Arc<Shared>, topic: String, parts: Vec<(i32, i64, u64)>) {
    let mut by_leader: BTreeMap<i32, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for part in parts {
        let leader = shared.client.leader_id(&topic, part.0).await.unwrap_or(-1);
        by_leader.entry(leader).or_default().push(part);
    }
    if by_leader.len() == 1 {
        let parts = by_leader.into_values().next().expect("one group");
        return fetch_from_leader(shared, topic, parts).await;
    }
    let mut fetches = JoinSet::new();
    for parts in by_leader.into_values() {
        let (s, t) = (shared.clone(), topic.clone());
        fetches.spawn(async move { fetch_from_leader(&s, t, parts).await });
    }
    while fetches.join_next().await.is_some() {}
}

/// Fetch `parts` of `topic`, all led by one broker as far as the client knows.
async fn fetch_from_leader(shared: &Shared, topic: String, parts: Vec<(i32, i64, u64)>) {
    let c = &shared.config;
    let offsets: Vec<(i32, i64)> = parts.iter().map(|&(p, o, _)| (p, o)).collect();
    let release_all = |s: &Shared| release(s, parts.iter().map(|&(p, _, e)| ((topic.clone(), p), e)));
    let got = shared
        .client
        .fetch_many_isolated(
            &topic,
            &offsets,
            c.fetch_max_bytes,
            c.max_partition_fetch_bytes,
            c.fetch_max_wait.as_millis() as i32,
            c.isolation_level,
        )
        .await;
    let results = match got {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%topic, error = %e, "fetch failed; retrying");
            shared.client.invalidate().await;
            backoff(shared).await;
            return release_all(shared);
        }
    };
    let name: Arc<str> = topic.as_str().into();
    let mut retry = false;
    {
        let mut state = shared.lock();
        for (partition, result) in results {
            let Some(&(_, offset, epoch)) = parts.iter().find(|(p, _, _)| *p == partition) else { continue };
            let tp = (topic.clone(), partition);
            let Some(p) = state.parts.get_mut(&tp) else { continue };
            if p.epoch != epoch || p.position != Some(offset) {
                continue;
            }
            let decoded = result.and_then(|data| {
                let bytes = data.records.len();
                Ok((bytes, decode_fetched(data.records, offset, &data.aborted_transactions)?))
            });
            match decoded {
                Ok((bytes, fetched)) if !fetched.records.is_empty() => {
                    state.buffered_bytes += bytes;
                    let records: VecDeque<_> = fetched.records.into();
                    let next_offset = fetched.next_offset.unwrap_or(offset);
                    state.buffered.push_back(Completed { tp, topic: name.clone(), epoch, records, bytes, next_offset });
                }
                // Only skipped batches (control batches, aborted transactions): move past them.
                Ok((_, fetched)) => {
                    if let Some(next) = fetched.next_offset.filter(|n| *n > offset) {
                        p.position = Some(next);
                    }
                }
                Err(e) if e.code() == Some(codes::OFFSET_OUT_OF_RANGE) => {
                    p.position = None;
                    p.needs_reset = true;
                    p.epoch += 1;
                    p.busy = false;
                }
                Err(e) => {
                    tracing::debug!(%topic, partition, error = %e, "fetch of a partition failed; retrying");
                    retry = true;
                }
            }
        }
    }
    shared.poll_wake.notify_one();
    if retry {
        shared.client.invalidate().await;
        backoff(shared).await;
    }
    release_all(shared);
}
