//! The Kafka error codes the group coordinator answers with.

/// A Kafka error code, as carried in group and offset responses.
///
/// Only the codes this coordinator produces are listed; [`ErrorCode::code`] gives the number
/// that goes on the wire and [`ErrorCode::name`] Kafka's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// NONE (0): success.
    None,
    /// OFFSET_METADATA_TOO_LARGE (12): the commit's metadata exceeds `offset.metadata.max.bytes`.
    OffsetMetadataTooLarge,
    /// ILLEGAL_GENERATION (22): the request names a generation the group is not in.
    IllegalGeneration,
    /// INCONSISTENT_GROUP_PROTOCOL (23): no protocol (type) in common with the group.
    InconsistentGroupProtocol,
    /// INVALID_GROUP_ID (24).
    InvalidGroupId,
    /// UNKNOWN_MEMBER_ID (25).
    UnknownMemberId,
    /// INVALID_SESSION_TIMEOUT (26): outside `group.min/max.session.timeout.ms`.
    InvalidSessionTimeout,
    /// REBALANCE_IN_PROGRESS (27): rejoin the group.
    RebalanceInProgress,
    /// NON_EMPTY_GROUP (68): the group still has members.
    NonEmptyGroup,
    /// GROUP_ID_NOT_FOUND (69).
    GroupIdNotFound,
    /// MEMBER_ID_REQUIRED (79): join again with the member id in the response (KIP-394).
    MemberIdRequired,
    /// GROUP_MAX_SIZE_REACHED (81).
    GroupMaxSizeReached,
    /// FENCED_INSTANCE_ID (82): another member now holds this `group.instance.id` (KIP-345).
    FencedInstanceId,
    /// GROUP_SUBSCRIBED_TO_TOPIC (86): offsets of a topic the group consumes cannot be deleted.
    GroupSubscribedToTopic,
    /// UNSTABLE_OFFSET_COMMIT (88): a transaction holds an uncommitted offset for the partition
    /// (OffsetFetch with `require_stable`, KIP-447); retry later.
    UnstableOffsetCommit,
}

impl ErrorCode {
    /// The number sent on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::OffsetMetadataTooLarge => 12,
            Self::IllegalGeneration => 22,
            Self::InconsistentGroupProtocol => 23,
            Self::InvalidGroupId => 24,
            Self::UnknownMemberId => 25,
            Self::InvalidSessionTimeout => 26,
            Self::RebalanceInProgress => 27,
            Self::NonEmptyGroup => 68,
            Self::GroupIdNotFound => 69,
            Self::MemberIdRequired => 79,
            Self::GroupMaxSizeReached => 81,
            Self::FencedInstanceId => 82,
            Self::GroupSubscribedToTopic => 86,
            Self::UnstableOffsetCommit => 88,
        }
    }

    /// Kafka's name for the code, e.g. `UNKNOWN_MEMBER_ID`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            Self::IllegalGeneration => "ILLEGAL_GENERATION",
            Self::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            Self::InvalidGroupId => "INVALID_GROUP_ID",
            Self::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            Self::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            Self::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            Self::NonEmptyGroup => "NON_EMPTY_GROUP",
            Self::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            Self::MemberIdRequired => "MEMBER_ID_REQUIRED",
            Self::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            Self::FencedInstanceId => "FENCED_INSTANCE_ID",
            Self::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
            Self::UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
        }
    }

    /// Whether this is [`ErrorCode::None`].
    pub fn is_ok(self) -> bool {
        self == Self::None
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}
