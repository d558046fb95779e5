//! Requests, responses and effects of the transaction coordinator, as plain structs.
//!
//! The driver fills requests from the Kafka messages at any version: fields an old version lacks
//! take Kafka's defaults (no expected producer id before InitProducerId v3, no epoch bump at
//! EndTxn before v5). PRODUCER_FENCED answers are turned into INVALID_PRODUCER_EPOCH by the
//! driver for versions older than KIP-588 ([`ErrorCode::for_old_client`]).

use super::{ErrorCode, TxnRecord};
pub use crate::group::RequestId;
use crate::group::TopicPartition;

/// InitProducerId (API 22) with a transactional id. Without one the driver hands out a producer
/// id itself: no coordinator state is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerId {
    /// The transactional id (an empty one is INVALID_REQUEST).
    pub transactional_id: String,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// v3+ (KIP-360): the producer id and epoch the client holds, when it has them (not -1).
    pub expected: Option<(i64, i16)>,
}

/// AddPartitionsToTxn (API 24), one transaction (versions 0-3 carry one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPartitions {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Partitions to add (the driver answers partitions of unknown topics itself).
    pub partitions: Vec<TopicPartition>,
}

/// AddOffsetsToTxn (API 25): adds the group's `__consumer_offsets` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOffsets {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The consumer group whose offsets the transaction will commit.
    pub group_id: String,
}

/// EndTxn (API 26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTxn {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Commit (true) or abort.
    pub commit: bool,
    /// v5+ (KIP-890 part 2): the coordinator bumps the epoch at every transaction end.
    pub bump_epoch: bool,
}

/// A request to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// InitProducerId.
    InitProducerId(InitProducerId),
    /// AddPartitionsToTxn.
    AddPartitions(AddPartitions),
    /// AddOffsetsToTxn.
    AddOffsets(AddOffsets),
    /// EndTxn.
    EndTxn(EndTxn),
}

impl Request {
    /// The transactional id asked about (empty: an idempotent producer's InitProducerId).
    pub fn transactional_id(&self) -> &str {
        match self {
            Request::InitProducerId(r) => &r.transactional_id,
            Request::AddPartitions(r) => &r.transactional_id,
            Request::AddOffsets(r) => &r.transactional_id,
            Request::EndTxn(r) => &r.transactional_id,
        }
    }
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

into_request!(InitProducerId, AddPartitions, AddOffsets, EndTxn);

/// A producer id and epoch, with the error that goes with them (-1/-1 on error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerAnswer {
    /// The error.
    pub error: ErrorCode,
    /// The producer id to use, or -1.
    pub producer_id: i64,
    /// The epoch to use, or -1.
    pub producer_epoch: i16,
}

impl ProducerAnswer {
    /// An error, with no producer id.
    pub fn error(error: ErrorCode) -> Self {
        Self { error, producer_id: -1, producer_epoch: -1 }
    }

    /// Success with `producer_id` and `producer_epoch`.
    pub fn ok(producer_id: i64, producer_epoch: i16) -> Self {
        Self { error: ErrorCode::None, producer_id, producer_epoch }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// To an InitProducerId.
    InitProducerId(ProducerAnswer),
    /// To an AddPartitionsToTxn: one error for every partition passed in.
    AddPartitions(ErrorCode),
    /// To an AddOffsetsToTxn.
    AddOffsets(ErrorCode),
    /// To an EndTxn. v5+ answers carry the producer id and epoch for the next transaction; older
    /// versions only the error.
    EndTxn(ProducerAnswer),
}

/// One thing for the driver to do, in order. A [`Effect::Respond`] that follows a
/// [`Effect::Persist`] may be sent only once the record is appended to `__transaction_state`.
/// If an append fails, drop the responses that follow (the handlers answer
/// COORDINATOR_NOT_AVAILABLE) and rebuild the coordinator from the log with
/// [`TxnCoordinator::load`](super::TxnCoordinator::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `response` as the answer to `request`.
    Respond {
        /// The request being answered.
        request: RequestId,
        /// The answer.
        response: Response,
    },
    /// Append `record` to the `__transaction_state` partition of its transactional id.
    Persist(TxnRecord),
    /// Write a COMMIT or ABORT marker for `producer_id` at `producer_epoch` to each partition,
    /// then report with [`TxnCoordinator::markers_written`](super::TxnCoordinator::markers_written).
    WriteMarkers {
        /// The transactional id whose transaction ends.
        transactional_id: String,
        /// The producer.
        producer_id: i64,
        /// The epoch the markers carry.
        producer_epoch: i16,
        /// Commit (true) or abort.
        commit: bool,
        /// The partitions, ascending.
        partitions: Vec<TopicPartition>,
    },
}
