//! The requests the coordinator handles, decoded from any wire version into plain structs.
//!
//! The driver fills these from the Kafka messages. Where an old version lacks a field, it passes
//! what Kafka assumes: JoinGroup v0 has no rebalance timeout (use the session timeout), versions
//! before v4 do not require a known member id, and requests without `group.instance.id` pass `None`.

use bytes::Bytes;

use super::GroupState;

/// The caller's handle for one request; the response to it comes back as an effect naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

/// One protocol a joining member supports (for consumers: an assignor and its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Protocol name, e.g. `range`.
    pub name: String,
    /// Opaque metadata (for consumers: a ConsumerProtocolSubscription).
    pub metadata: Bytes,
}

/// JoinGroup (API 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    /// The group to join.
    pub group_id: String,
    /// The member id from an earlier join, or empty on the first one.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's address, shown by DescribeGroups.
    pub client_host: String,
    /// The protocol type, e.g. `consumer`.
    pub protocol_type: String,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<Protocol>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` for consumers (KIP-62); v0 requests pass the session timeout.
    pub rebalance_timeout_ms: i32,
    /// v4+: a first join without member id is answered MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// v9+: the client understands `skip_assignment` (KIP-814).
    pub supports_skip_assignment: bool,
}

/// One member's assignment, as sent by the leader in SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    /// The member.
    pub member_id: String,
    /// Opaque assignment (for consumers: a ConsumerProtocolAssignment).
    pub assignment: Bytes,
}

/// SyncGroup (API 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    /// The group.
    pub group_id: String,
    /// The member syncing.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The generation from the JoinGroup response.
    pub generation_id: i32,
    /// v5+: the protocol type the member expects.
    pub protocol_type: Option<String>,
    /// v5+: the protocol name the member expects.
    pub protocol_name: Option<String>,
    /// Every member's assignment if this is the leader; empty otherwise.
    pub assignments: Vec<MemberAssignment>,
}

/// Heartbeat (API 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The group.
    pub group_id: String,
    /// The member.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's generation.
    pub generation_id: i32,
}

/// One member leaving (LeaveGroup v3+ carries several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id; empty to remove a static member by instance id alone (admin removal).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

/// LeaveGroup (API 13). Versions 0-2 carry one member and take the top-level error from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroup {
    /// The group.
    pub group_id: String,
    /// The members leaving.
    pub members: Vec<LeavingMember>,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset to commit (the next record to consume).
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata; `None` is stored as empty.
    pub metadata: Option<String>,
}

/// OffsetCommit (API 8). A "simple" consumer that uses no group management commits with
/// generation -1 and an empty member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The group.
    pub group_id: String,
    /// The member committing; empty for simple consumers.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's generation; -1 for simple consumers.
    pub generation_id: i32,
    /// The offsets.
    pub offsets: Vec<CommitOffset>,
}

/// One group's part of an OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchGroup {
    /// The group.
    pub group_id: String,
    /// The partitions wanted; `None` for every partition with a committed offset.
    pub partitions: Option<Vec<TopicPartition>>,
}

/// OffsetFetch (API 9). Versions before 8 ask for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetch {
    /// The groups asked about.
    pub groups: Vec<OffsetFetchGroup>,
    /// v7+ (KIP-447): answer UNSTABLE_OFFSET_COMMIT for partitions with a transactional offset
    /// not yet committed or aborted, instead of the last committed offset.
    pub require_stable: bool,
}

/// TxnOffsetCommit (API 28): offsets committed inside a producer's transaction (KIP-98). They
/// stay pending, invisible to OffsetFetch, until the transaction commits (and are dropped if it
/// aborts). Versions before 3 carry no member id, generation or instance id: pass an empty
/// member id, generation -1 and `None`, which skip the generation check as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommit {
    /// The group.
    pub group_id: String,
    /// The producer's `transactional.id` (for logs).
    pub transactional_id: String,
    /// The producer id of the transaction.
    pub producer_id: i64,
    /// The producer epoch; the write is refused if the producer has been fenced since.
    pub producer_epoch: i16,
    /// v3+: the consumer's member id, empty if unknown (KIP-447).
    pub member_id: String,
    /// v3+: `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// v3+: the consumer's generation; -1 if unknown.
    pub generation_id: i32,
    /// The offsets.
    pub offsets: Vec<CommitOffset>,
}

/// ListGroups (API 16).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroups {
    /// v4+: only groups in these states; empty for all.
    pub states: Vec<GroupState>,
}

/// DescribeGroups (API 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroups {
    /// The groups.
    pub group_ids: Vec<String>,
}

/// DeleteGroups (API 42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroups {
    /// The groups.
    pub group_ids: Vec<String>,
}

/// OffsetDelete (API 47). The driver answers UNKNOWN_TOPIC_OR_PARTITION itself for partitions of
/// topics that do not exist (as Kafka's request handler does) and passes the rest here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDelete {
    /// The group.
    pub group_id: String,
    /// The partitions whose committed offsets to delete.
    pub partitions: Vec<TopicPartition>,
}

/// A request to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// JoinGroup; answered when the rebalance completes (or at once on error).
    JoinGroup(JoinGroup),
    /// SyncGroup; followers are answered when the leader's assignment arrives.
    SyncGroup(SyncGroup),
    /// Heartbeat.
    Heartbeat(Heartbeat),
    /// LeaveGroup.
    LeaveGroup(LeaveGroup),
    /// OffsetCommit.
    OffsetCommit(OffsetCommit),
    /// TxnOffsetCommit.
    TxnOffsetCommit(TxnOffsetCommit),
    /// OffsetFetch.
    OffsetFetch(OffsetFetch),
    /// ListGroups.
    ListGroups(ListGroups),
    /// DescribeGroups.
    DescribeGroups(DescribeGroups),
    /// DeleteGroups.
    DeleteGroups(DeleteGroups),
    /// OffsetDelete.
    OffsetDelete(OffsetDelete),
}

macro_rules! into_request {
    ($($t:ident),*) => {$(
        impl From<$t> for Request {
            fn from(r: $t) -> Self {
                Request::$t(r)
            }
        }
    )*};
}

into_request!(
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    TxnOffsetCommit,
    OffsetFetch,
    ListGroups,
    DescribeGroups,
    DeleteGroups,
    OffsetDelete
);
