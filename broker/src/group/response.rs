//! What the coordinator asks its driver to do: answer requests and persist records.

use bytes::Bytes;

use super::record::Record;
use super::{ErrorCode, GroupState, RequestId, TopicPartition};

/// One thing for the driver to do. Effects are returned in order and must be carried out in
/// order: a [`Effect::Respond`] that follows a [`Effect::Persist`] may be sent only once those
/// records are appended to `__consumer_offsets` (they are what makes the answer true).
///
/// If an append fails, the coordinator's memory is ahead of the log: answer the responses that
/// followed it with COORDINATOR_NOT_AVAILABLE (or NOT_COORDINATOR), then rebuild the coordinator
/// from the log with [`GroupCoordinator::load`](super::GroupCoordinator::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `response` as the answer to `request`.
    Respond {
        /// The request being answered.
        request: RequestId,
        /// The answer.
        response: Response,
    },
    /// Append `records` to the `__consumer_offsets` partition of `group_id`.
    Persist {
        /// The group the records belong to (it picks the partition).
        group_id: String,
        /// The records, in order.
        records: Vec<Record>,
    },
    /// Append the records of a TxnOffsetCommit as one transactional batch. Unlike
    /// [`Effect::Persist`], memory changes only once the write is known to be in the log: after a
    /// successful append call [`GroupCoordinator::txn_written`](super::GroupCoordinator::txn_written);
    /// if the append fails, answer [`TxnWrite::request`] with [`Response::WriteFailed`] and skip
    /// its [`Effect::Respond`] (nothing needs rebuilding).
    PersistTxn(TxnWrite),
}

/// Transactional offsets to append to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnWrite {
    /// The TxnOffsetCommit this write answers.
    pub request: RequestId,
    /// The group the records belong to (it picks the partition).
    pub group_id: String,
    /// The producer's `transactional.id` (the transaction coordinator vouches for the first
    /// write of a transaction to the partition, KIP-890 part 1).
    pub transactional_id: String,
    /// The producer whose transaction the batch joins (its producer id field).
    pub producer_id: i64,
    /// The producer epoch (the log refuses the batch if the producer was fenced since).
    pub producer_epoch: i16,
    /// Where the write stands among the group's writes: later writes have larger positions.
    pub position: i64,
    /// Offset records, in order.
    pub records: Vec<Record>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// To a JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// To a SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// To a Heartbeat.
    Heartbeat(ErrorCode),
    /// To a LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// To an OffsetCommit: one result per partition, in request order.
    OffsetCommit(Vec<PartitionResult>),
    /// To a TxnOffsetCommit: one result per partition, in request order.
    TxnOffsetCommit(Vec<PartitionResult>),
    /// To an OffsetFetch: one entry per group, in request order.
    OffsetFetch(Vec<FetchedGroup>),
    /// To a ListGroups.
    ListGroups(Vec<ListedGroup>),
    /// To a DescribeGroups: one entry per group, in request order.
    DescribeGroups(Vec<DescribedGroup>),
    /// To a DeleteGroups: one (group, error) per group, in request order.
    DeleteGroups(Vec<(String, ErrorCode)>),
    /// To an OffsetDelete.
    OffsetDelete(OffsetDeleteResponse),
    /// Never produced by the coordinator: its driver answers with this Kafka error code when the
    /// write an answer depended on failed (see [`Effect::PersistTxn`]).
    WriteFailed(i16),
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// Error, or NONE.
    pub error: ErrorCode,
    /// The new generation, or -1 on error.
    pub generation_id: i32,
    /// The group's protocol type (v7+ on the wire).
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id (empty on error).
    pub leader: String,
    /// KIP-814: the receiver is the leader but must not assign (the group is stable).
    pub skip_assignment: bool,
    /// The receiver's member id (the new one with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinGroupResponse {
    /// An error answer for `member_id`.
    pub fn error(member_id: impl Into<String>, error: ErrorCode) -> Self {
        Self {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// The SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// Error, or NONE.
    pub error: ErrorCode,
    /// The group's protocol type (v5+ on the wire).
    pub protocol_type: Option<String>,
    /// The chosen protocol (v5+ on the wire).
    pub protocol_name: Option<String>,
    /// The receiver's assignment.
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// An error answer.
    pub fn error(error: ErrorCode) -> Self {
        Self { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// One member's outcome in a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftMember {
    /// Member id as given.
    pub member_id: String,
    /// `group.instance.id` as given.
    pub group_instance_id: Option<String>,
    /// Error, or NONE.
    pub error: ErrorCode,
}

/// The LeaveGroup answer. For v0-2, put the single member's error at the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    /// Group-level error, or NONE.
    pub error: ErrorCode,
    /// One entry per leaving member, in request order.
    pub members: Vec<LeftMember>,
}

/// One partition's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    /// The partition.
    pub partition: TopicPartition,
    /// Error, or NONE.
    pub error: ErrorCode,
}

/// One committed offset as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset, or -1 if none.
    pub offset: i64,
    /// The committed leader epoch, or -1.
    pub leader_epoch: i32,
    /// The committed metadata (empty if none).
    pub metadata: String,
    /// Error, or NONE.
    pub error: ErrorCode,
}

/// One group's offsets as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedGroup {
    /// The group.
    pub group_id: String,
    /// Group-level error, or NONE.
    pub error: ErrorCode,
    /// The partitions, in request order (or sorted when all were asked for).
    pub partitions: Vec<FetchedOffset>,
}

/// One group in a ListGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group.
    pub group_id: String,
    /// Its protocol type; empty for groups that only store offsets.
    pub protocol_type: String,
    /// Its state.
    pub state: GroupState,
}

/// One member in a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the chosen protocol (empty unless the group is stable).
    pub metadata: Bytes,
    /// Assignment (empty unless the group is stable).
    pub assignment: Bytes,
}

/// One group in a DescribeGroups answer. Unknown groups are described as Dead, without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    /// The group.
    pub group_id: String,
    /// Error, or NONE.
    pub error: ErrorCode,
    /// Its state.
    pub state: GroupState,
    /// Its protocol type; empty if none.
    pub protocol_type: String,
    /// The chosen protocol when stable; empty otherwise.
    pub protocol_data: String,
    /// The members.
    pub members: Vec<DescribedMember>,
}

/// The OffsetDelete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// Group-level error, or NONE.
    pub error: ErrorCode,
    /// One result per partition, in request order (empty on a group-level error).
    pub partitions: Vec<PartitionResult>,
}
