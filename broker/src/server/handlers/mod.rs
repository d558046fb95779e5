//! One module per API family; each turns a decoded request into a response.

mod admin;
mod admin_cluster;
mod admin_replicas;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod offset_for_epoch;
mod produce;
mod txn;
mod txn_offsets;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::conn::Reply;
use super::response::Frame;
use super::versions;
use super::BrokerState;

/// Encode a response with its header into a frame.
pub fn encode<M: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &M) -> Result<Frame, String> {
    let mut bytes = BytesMut::with_capacity(128);
    bytes.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut bytes, api.response_header_version(version))
        .and_then(|_| body.encode(&mut bytes, version))
        .map_err(|e| format!("cannot encode {api:?} v{version} response: {e}"))?;
    let mut frame = Frame { bytes, splices: Vec::new() };
    frame.finish();
    Ok(frame)
}

fn decode<M: Decodable>(api: ApiKey, version: i16, mut body: Bytes) -> Result<M, String> {
    M::decode(&mut body, version).map_err(|e| format!("undecodable {api:?} v{version} request: {e}"))
}

/// Run the handler for one request.
pub async fn handle(
    state: &Arc<BrokerState>,
    api: ApiKey,
    version: i16,
    header: RequestHeader,
    body: Bytes,
    peer: std::net::SocketAddr,
) -> Result<Reply, String> {
    let id = header.correlation_id;
    let now = |resp: Result<Frame, String>| resp.map(|f| Reply::Now(Some(f)));
    match api {
        ApiKey::ApiVersions => now(encode(api, version, id, &versions::api_versions_response(0))),
        ApiKey::Metadata => {
            let req: MetadataRequest = decode(api, version, body)?;
            let resp = metadata::handle(state, req, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::Produce => produce::handle(state, decode(api, version, body)?, version, id).await,
        ApiKey::Fetch => Ok(fetch::handle(state, decode(api, version, body)?, version, id)),
        ApiKey::WriteTxnMarkers => {
            let resp = crate::server::markers::handle(state, decode(api, version, body)?).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let resp = offset_for_epoch::handle(state, decode(api, version, body)?);
            now(encode(api, version, id, &resp))
        }
        ApiKey::ListOffsets => {
            let resp = list_offsets::handle(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::CreateTopics => {
            let resp = admin::create_topics(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::DeleteTopics => {
            let resp = admin::delete_topics(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::CreatePartitions => {
            let resp = admin::create_partitions(state, decode(api, version, body)?).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::DescribeConfigs => {
            let resp = admin::describe_configs(state, decode(api, version, body)?);
            now(encode(api, version, id, &resp))
        }
        ApiKey::IncrementalAlterConfigs => {
            let resp = admin::alter_configs(state, decode(api, version, body)?).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::DeleteRecords => {
            let resp = admin::delete_records(state, decode(api, version, body)?).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::ElectLeaders => {
            let resp = admin_replicas::elect_leaders(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::AlterPartitionReassignments => {
            let resp = admin_replicas::alter_reassignments(state, decode(api, version, body)?).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::ListPartitionReassignments => {
            let resp = admin_replicas::list_reassignments(state, decode(api, version, body)?);
            now(encode(api, version, id, &resp))
        }
        ApiKey::FindCoordinator => {
            let resp = groups::find_coordinator(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::JoinGroup => {
            // A join waits for the whole group: answer later, keep the connection reading.
            let (st, req) = (state.clone(), decode(api, version, body)?);
            let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
            Ok(Reply::Later(tokio::spawn(async move {
                let resp = groups::join_group(&st, req, version, &client_id, peer).await;
                encode(api, version, id, &resp).map_err(|e| tracing::error!("{e}")).ok()
            })))
        }
        ApiKey::SyncGroup => {
            let (st, req) = (state.clone(), decode(api, version, body)?);
            Ok(Reply::Later(tokio::spawn(async move {
                let resp = groups::sync_group(&st, req, version).await;
                encode(api, version, id, &resp).map_err(|e| tracing::error!("{e}")).ok()
            })))
        }
        ApiKey::Heartbeat => {
            now(encode(api, version, id, &groups::heartbeat(state, decode(api, version, body)?).await))
        }
        ApiKey::LeaveGroup => {
            now(encode(api, version, id, &groups::leave_group(state, decode(api, version, body)?, version).await))
        }
        ApiKey::OffsetCommit => {
            now(encode(api, version, id, &groups::offset_commit(state, decode(api, version, body)?, version).await))
        }
        ApiKey::OffsetFetch => {
            now(encode(api, version, id, &groups::offset_fetch(state, decode(api, version, body)?, version).await))
        }
        ApiKey::ListGroups => {
            now(encode(api, version, id, &groups::list_groups(state, decode(api, version, body)?, version).await))
        }
        ApiKey::DescribeGroups => {
            now(encode(api, version, id, &groups::describe_groups(state, decode(api, version, body)?, version).await))
        }
        ApiKey::DeleteGroups => {
            now(encode(api, version, id, &groups::delete_groups(state, decode(api, version, body)?).await))
        }
        ApiKey::OffsetDelete => {
            now(encode(api, version, id, &groups::offset_delete(state, decode(api, version, body)?).await))
        }
        ApiKey::TxnOffsetCommit => {
            let resp = txn_offsets::txn_offset_commit(state, decode(api, version, body)?, version).await;
            now(encode(api, version, id, &resp))
        }
        ApiKey::InitProducerId => {
            now(encode(api, version, id, &txn::init_producer_id(state, decode(api, version, body)?, version).await))
        }
        ApiKey::AddPartitionsToTxn => {
            now(encode(api, version, id, &txn::add_partitions(state, decode(api, version, body)?, version).await))
        }
        ApiKey::AddOffsetsToTxn => {
            now(encode(api, version, id, &txn::add_offsets(state, decode(api, version, body)?, version).await))
        }
        ApiKey::EndTxn => {
            now(encode(api, version, id, &txn::end_txn(state, decode(api, version, body)?, version).await))
        }
        other => Err(format!("unsupported API {other:?}")),
    }
}

/// Run blocking disk work off the reactor.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Kafka error codes used by the handlers.
pub mod codes {
    /// OFFSET_OUT_OF_RANGE.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// NOT_LEADER_OR_FOLLOWER.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// NETWORK_EXCEPTION.
    pub const NETWORK_EXCEPTION: i16 = 13;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR.
    pub const NOT_COORDINATOR: i16 = 16;
    /// NOT_ENOUGH_REPLICAS.
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    /// TOPIC_ALREADY_EXISTS.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REPLICATION_FACTOR.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// MESSAGE_TOO_LARGE.
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// INVALID_TOPIC_EXCEPTION.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// INVALID_REQUIRED_ACKS.
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT.
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// KAFKA_STORAGE_ERROR.
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// INVALID_RECORD.
    pub const INVALID_RECORD: i16 = 87;
    /// FETCH_SESSION_ID_NOT_FOUND.
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    /// INVALID_CONFIG.
    pub const INVALID_CONFIG: i16 = 40;
    /// INVALID_REPLICA_ASSIGNMENT.
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    /// POLICY_VIOLATION.
    pub const POLICY_VIOLATION: i16 = 44;
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// INVALID_PRODUCER_EPOCH.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// INVALID_TXN_STATE.
    pub const INVALID_TXN_STATE: i16 = 48;
    /// TRANSACTION_COORDINATOR_FENCED.
    pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
}

/// The Kafka error code (and message) for a log error.
pub fn log_error_code(e: &crate::log::LogError) -> i16 {
    const PRODUCER_FENCED: i16 = 90;
    const FENCED_LEADER_EPOCH: i16 = 74;
    use crate::log::producer_state::ProducerError;
    use crate::log::{batch::BatchError, LogError};
    match e {
        LogError::Producer(ProducerError::InvalidEpoch { .. }) => codes::INVALID_PRODUCER_EPOCH,
        LogError::Producer(ProducerError::OutOfOrder { .. }) => codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::Producer(ProducerError::InvalidTxnState { .. }) => codes::INVALID_TXN_STATE,
        LogError::Producer(ProducerError::CoordinatorFenced { .. }) => codes::TRANSACTION_COORDINATOR_FENCED,
        // As Kafka's verification does: a producer may not get PRODUCER_FENCED on a write.
        LogError::Producer(ProducerError::Unverified { code: PRODUCER_FENCED, .. }) => codes::INVALID_PRODUCER_EPOCH,
        LogError::Producer(ProducerError::Unverified { code, .. }) => *code,
        LogError::Io(_) => codes::KAFKA_STORAGE_ERROR,
        LogError::Batch(BatchError::Magic(_)) => codes::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        LogError::Batch(_) => codes::CORRUPT_MESSAGE,
        LogError::TooLarge { .. } => codes::MESSAGE_TOO_LARGE,
        LogError::InvalidRecord(_) => codes::INVALID_RECORD,
        LogError::OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
        LogError::Deleted => codes::UNKNOWN_TOPIC_OR_PARTITION,
        // Replication errors: the replica manager handles them before any client sees one.
        LogError::NonContiguous { .. } => codes::OFFSET_OUT_OF_RANGE,
        LogError::StaleEpoch { .. } => FENCED_LEADER_EPOCH,
    }
}
