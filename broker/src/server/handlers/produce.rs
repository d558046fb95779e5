//! Produce: append each partition's batches in request order; acknowledge per `acks`.
//!
//! Appends run inline, so requests on a connection append in the order they arrived. When the
//! topic's flush policy wants an fsync before the acknowledgement, the flush runs in a task of
//! its own and joins the partition's group commit; the connection goes on reading meanwhile.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{blocking, codes, encode, log_error_code};
use crate::log::{now_ms, AppendInfo, Log, LogError};
use crate::server::conn::Reply;
use crate::server::BrokerState;

pub async fn handle(state: &Arc<BrokerState>, req: ProduceRequest, version: i16, id: i32) -> Result<Reply, String> {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    // Every partition of the request is appended in one trip to a blocking thread.
    let st = state.clone();
    let (mut resp, flushes, appended, replicated) = blocking(move || append_all(&st, req, version, valid_acks)).await;
    if appended {
        state.data_arrived.notify_waiters();
    }
    if acks == -1 && !replicated.is_empty() {
        // acks=all in a cluster: answer once the ISR holds every appended batch.
        let st = state.clone();
        return Ok(Reply::Later(tokio::spawn(async move {
            let waits = replicated.iter().map(|r| {
                st.replicas.wait_replicated(&r.topic, r.partition, &r.log, r.last_offset + 1, r.epoch, timeout)
            });
            let outcomes = futures_join_all(waits).await;
            for (r, outcome) in replicated.iter().zip(outcomes) {
                if let Err(code) = outcome {
                    set_error(&mut resp, &r.topic, r.partition, code);
                }
            }
            let failed = flush_all(flushes).await;
            for f in failed {
                set_error(&mut resp, &f.topic, f.partition, codes::KAFKA_STORAGE_ERROR);
            }
            encode(ApiKey::Produce, version, id, &resp).map_err(|e| tracing::error!("{e}")).ok()
        })));
    }
    if acks == 0 && valid_acks {
        // acks=0: no response at all. Durability work still happens.
        if !flushes.is_empty() {
            tokio::spawn(flush_all(flushes));
        }
        // The producer reads no answer, so an error can only reach it by a closed connection
        // (Kafka does the same); it then refreshes metadata and reconnects.
        let failed = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(move |p| (t, p)))
            .find(|(_, p)| p.error_code != 0);
        if let Some((t, p)) = failed {
            return Err(format!("acks=0 produce to {}-{} failed with error {}", t.name.0, p.index, p.error_code));
        }
        return Ok(Reply::Now(None));
    }
    if flushes.is_empty() {
        return Ok(Reply::Now(Some(encode(ApiKey::Produce, version, id, &resp)?)));
    }
    Ok(Reply::Later(tokio::spawn(async move {
        let failed = flush_all(flushes).await;
        for t in resp.responses.iter_mut() {
            for p in t.partition_responses.iter_mut() {
                if failed.iter().any(|f| f.topic == t.name.0.as_str() && f.partition == p.index) {
                    p.error_code = codes::KAFKA_STORAGE_ERROR;
                }
            }
        }
        match encode(ApiKey::Produce, version, id, &resp) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    })))
}

/// Mark one partition of a response failed.
fn set_error(resp: &mut ProduceResponse, topic: &str, partition: i32, code: i16) {
    for t in resp.responses.iter_mut().filter(|t| t.name.0.as_str() == topic) {
        for p in t.partition_responses.iter_mut().filter(|p| p.index == partition) {
            p.error_code = code;
            p.base_offset = -1;
        }
    }
}

/// Wait for every future, in order (few partitions per request: no need for a join set).
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

/// A leader's append that acks=all must see replicated.
struct Replicated {
    topic: String,
    partition: i32,
    log: Arc<Log>,
    last_offset: i64,
    epoch: i32,
}

/// Append each partition's batches; returns the response, the flushes the policy asks for,
/// whether anything was appended, and (in a cluster) the appends to wait for under acks=all.
fn append_all(
    state: &Arc<BrokerState>,
    req: ProduceRequest,
    version: i16,
    valid_acks: bool,
) -> (ProduceResponse, Vec<Flush>, bool, Vec<Replicated>) {
    let acks = req.acks;
    let clustered = state.cluster.is_some();
    let mut resp = ProduceResponse::default();
    let mut flushes: Vec<Flush> = Vec::new();
    let mut replicated = Vec::new();
    let mut appended = false;
    let now = now_ms();
    let txn_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    for topic in req.topic_data {
        let mut t = TopicProduceResponse::default().with_name(topic.name.clone());
        for p in topic.partition_data {
            let mut pr = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let log = state.topics.partition(&topic.name.0, p.index);
            // In a cluster this broker must lead the partition (with enough replicas for acks=all).
            let refused = |log: &Log| {
                clustered.then(|| state.replicas.check_produce(&topic.name.0, p.index, acks, log).err()).flatten()
            };
            match (valid_acks, log, p.records) {
                (false, _, _) => pr.error_code = codes::INVALID_REQUIRED_ACKS,
                (_, None, _) => pr.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                (_, Some(_), None) => pr.error_code = codes::CORRUPT_MESSAGE,
                (true, Some(log), Some(_)) if refused(&log).is_some() => {
                    pr.error_code = refused(&log).unwrap_or_default();
                }
                (true, Some(log), Some(records)) => {
                    match append(state, &log, &records, now, &txn_id, &topic.name.0, p.index) {
                        Ok(info) => {
                            appended = true;
                            if clustered {
                                state.replicas.after_append(state, &topic.name.0, p.index, &log);
                                if acks == -1 {
                                    let epoch = state.replicas.check_leader(&topic.name.0, p.index, -1).unwrap_or(-1);
                                    replicated.push(Replicated {
                                        topic: topic.name.0.to_string(),
                                        partition: p.index,
                                        log: log.clone(),
                                        last_offset: info.last_offset,
                                        epoch,
                                    });
                                }
                            }
                            pr.base_offset = info.base_offset;
                            pr.log_append_time_ms = info.log_append_time;
                            if version >= 5 {
                                pr.log_start_offset = info.log_start_offset;
                            }
                            if let Some(to) = info.flush_to {
                                flushes.push(Flush { topic: topic.name.0.to_string(), partition: p.index, log, to });
                            }
                        }
                        Err(e) => {
                            tracing::debug!(topic = %topic.name.0, partition = p.index, error = %e, "produce rejected");
                            pr.error_code = log_error_code(&e);
                            if version >= 8 {
                                pr.error_message = Some(StrBytes::from_string(e.to_string()));
                            }
                        }
                    }
                }
            }
            t.partition_responses.push(pr);
        }
        resp.responses.push(t);
    }
    (resp, flushes, appended, replicated)
}

/// Append a producer's batches. The first transactional batch of a transaction in a partition
/// is checked with the transaction coordinator (KIP-890 part 1): the partition must be in the
/// producer's ongoing transaction, or the batch is refused, so a late or stray batch can never
/// open a transaction that no marker will close.
fn append(
    state: &BrokerState,
    log: &Log,
    records: &[u8],
    now: i64,
    txn_id: &Option<String>,
    topic: &str,
    partition: i32,
) -> Result<AppendInfo, LogError> {
    let verify = |producer_id: i64, epoch: i16| match txn_id {
        Some(id) => state.txns.verify(id, producer_id, epoch, topic, partition),
        None => Err(codes::INVALID_TXN_STATE),
    };
    log.append_verified(records, now, &verify)
}

/// A partition that must be fsynced up to `to` before its acknowledgement.
struct Flush {
    topic: String,
    partition: i32,
    log: Arc<Log>,
    to: i64,
}

/// Flush each log to its offset; returns the ones that failed.
async fn flush_all(flushes: Vec<Flush>) -> Vec<Flush> {
    blocking(move || {
        flushes
            .into_iter()
            .filter(|f| match f.log.flush_to(f.to) {
                Ok(()) => false,
                Err(e) => {
                    tracing::error!(topic = %f.topic, partition = f.partition, error = %e, "flush failed");
                    true
                }
            })
            .collect()
    })
    .await
}
