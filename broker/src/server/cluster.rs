//! The server's side of the cluster: answering other brokers' quorum calls, keeping the local
//! topics in step with the metadata image, and sending admin changes through the controller.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::conn::Reply;
use super::handlers::blocking;
use super::response::Frame;
use super::BrokerState;
use crate::cluster::command::{Command, Reply as CommandReply};
use crate::cluster::image::ClusterImage;
use crate::cluster::rpc::{self, Response};
use crate::topics::TopicError;

/// How long an admin request waits for the quorum to commit its change.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answer a cluster call (API key [`rpc::API_KEY`]).
pub async fn serve(state: &Arc<BrokerState>, frame: Bytes) -> Result<Reply, String> {
    let (correlation, req) = rpc::decode_request(frame)?;
    let resp = match &state.cluster {
        Some(node) => node.handle(req).await,
        None => Response::NoCluster,
    };
    let bytes = rpc::encode_response(correlation, &resp)?;
    Ok(Reply::Now(Some(Frame { bytes, splices: Vec::new() })))
}

/// Propose `cmd` to the controller; a refusal or a quorum failure becomes a Kafka error code
/// and message.
pub async fn propose(state: &BrokerState, cmd: Command) -> Result<CommandReply, (i16, String)> {
    const REQUEST_TIMED_OUT: i16 = 7;
    let node = state.cluster.as_ref().ok_or((super::handlers::codes::INVALID_REQUEST, "not a cluster".into()))?;
    match node.propose(cmd, PROPOSE_TIMEOUT).await {
        Ok(CommandReply::Error { code, message }) => Err((code, message)),
        Ok(r) => Ok(r),
        Err(e) => Err((REQUEST_TIMED_OUT, e.to_string())),
    }
}

/// Wait (at most [`PROPOSE_TIMEOUT`]) until the local image satisfies `ready`, then bring the
/// local topics in step with it, so a request that changed the metadata answers only once this
/// broker serves the change.
pub async fn wait_and_sync(state: &Arc<BrokerState>, ready: impl Fn(&ClusterImage) -> bool) -> bool {
    let Some(node) = &state.cluster else { return false };
    if node.wait_for(PROPOSE_TIMEOUT, ready).await.is_none() {
        return false;
    }
    let st = state.clone();
    blocking(move || sync_topics(&st)).await;
    true
}

/// Follow the image: after every change, create, grow, reconfigure and delete local topics.
pub async fn sync_loop(state: Arc<BrokerState>) {
    let Some(node) = state.cluster.clone() else { return };
    let mut rx = node.subscribe();
    tokio::select! {
        _ = node.wait_registered() => {}
        _ = state.shutdown.cancelled() => return,
    }
    loop {
        let st = state.clone();
        blocking(move || sync_topics(&st)).await;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Make the local topics match the image. Serialised, and idempotent: callers race freely.
pub fn sync_topics(state: &Arc<BrokerState>) {
    let Some(node) = &state.cluster else { return };
    if !node.caught_up() {
        // An image behind the quorum (just restarted, not yet replayed) would delete every
        // local topic it does not know yet: wait for it.
        return;
    }
    let _one_at_a_time = state.topic_sync.lock().unwrap_or_else(|p| p.into_inner());
    let image = node.image();
    let report = |what: &str, name: &str, e: TopicError| {
        tracing::error!(topic = %name, error = %e, "cannot {what} the topic the cluster metadata holds");
    };
    for (name, t) in &image.topics {
        let partitions = t.partitions.len() as i32;
        match state.topics.get(name) {
            Some(local) if local.id != t.id => {
                // Deleted and created again while this broker was away.
                if let Err(e) = state.topics.delete(name) {
                    report("replace", name, e);
                    continue;
                }
                if let Err(e) = state.topics.create_with_id(name, t.id, partitions, t.configs.clone()) {
                    report("create", name, e);
                }
            }
            Some(local) => {
                if (local.partitions.len() as i32) < partitions {
                    if let Err(e) = state.topics.add_partitions(name, partitions, false) {
                        report("grow", name, e);
                    }
                }
                if local.overrides != t.configs {
                    if let Err(e) = state.topics.replace_configs(name, &t.configs) {
                        report("reconfigure", name, e);
                    }
                }
            }
            None => {
                if let Err(e) = state.topics.create_with_id(name, t.id, partitions, t.configs.clone()) {
                    report("create", name, e);
                }
            }
        }
    }
    for local in state.topics.all() {
        if !image.topics.contains_key(&local.name) {
            if let Err(e) = state.topics.delete(&local.name) {
                report("delete", &local.name, e);
            }
        }
    }
    state.replicas.apply_image(state, &image);
}
