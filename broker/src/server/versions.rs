//! The APIs and version ranges this broker serves.
//!
//! Ranges cover what librdkafka 2.x and kafka-python ask for, within what the protocol crate
//! encodes (its floors follow Kafka 4.0: Produce 3, Fetch 4 — the magic-v2 floor anyway).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// (API, min version, max version).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    // v1 adds allow_replication_factor_change (KIP-860): not served.
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // OffsetCommit v9 and OffsetFetch v9 carry KIP-848 member epochs: not served.
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    // v4+ batches transactions for brokers verifying partitions (KIP-890): not served.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    // v4 adds broker-side verification of the transaction (KIP-890 part 1): not served yet.
    (ApiKey::TxnOffsetCommit, 0, 3),
];

/// The Produce floor given to clients in ApiVersions, below the served floor of 3 (requests at
/// v0-2 still close the connection). librdkafka up to 2.11 compresses with gzip, snappy or lz4 only
/// when the broker's Produce range overlaps 0..=0 (confluentinc/librdkafka#4956) and otherwise
/// silently sends uncompressed batches; Kafka 4.0 advertises v0 for the same reason (KAFKA-18659).
/// Clients pick the highest common version, so none of them sends v0-2 to a broker offering v9.
const PRODUCE_ADVERTISED_MIN: i16 = 0;

/// The supported range of `key`, if served.
pub fn range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, lo, hi)| (*lo, *hi))
}

/// The ApiVersions answer (with `error_code`; 35 for an unsupported ApiVersions version).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
        SUPPORTED
            .iter()
            .map(|(k, lo, hi)| {
                let lo = if *k == ApiKey::Produce { PRODUCE_ADVERTISED_MIN } else { *lo };
                ApiVersion::default().with_api_key(*k as i16).with_min_version(lo).with_max_version(*hi)
            })
            .collect(),
    )
}
