//! The Kafka error codes the transaction coordinator answers with.

/// A Kafka error code, as carried in transaction responses. [`ErrorCode::code`] gives the number
/// on the wire, [`ErrorCode::name`] Kafka's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// NONE (0).
    None,
    /// COORDINATOR_NOT_AVAILABLE (15): retry (no producer id could be handed out).
    CoordinatorNotAvailable,
    /// INVALID_REQUEST (42): an empty transactional id.
    InvalidRequest,
    /// INVALID_PRODUCER_EPOCH (47): what clients of old versions get instead of PRODUCER_FENCED.
    InvalidProducerEpoch,
    /// INVALID_TXN_STATE (48): the request does not fit the transaction's state.
    InvalidTxnState,
    /// INVALID_PRODUCER_ID_MAPPING (49): the producer id is not the one of this transactional id.
    InvalidProducerIdMapping,
    /// INVALID_TRANSACTION_TIMEOUT (50): outside `1..=transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// CONCURRENT_TRANSACTIONS (51): the previous transaction is still ending; retry.
    ConcurrentTransactions,
    /// PRODUCER_FENCED (90): a newer producer (epoch) took over this transactional id.
    ProducerFenced,
}

impl ErrorCode {
    /// The number sent on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::None => 0,
            Self::CoordinatorNotAvailable => 15,
            Self::InvalidRequest => 42,
            Self::InvalidProducerEpoch => 47,
            Self::InvalidTxnState => 48,
            Self::InvalidProducerIdMapping => 49,
            Self::InvalidTransactionTimeout => 50,
            Self::ConcurrentTransactions => 51,
            Self::ProducerFenced => 90,
        }
    }

    /// Kafka's name for the code.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            Self::InvalidTxnState => "INVALID_TXN_STATE",
            Self::InvalidProducerIdMapping => "INVALID_PRODUCER_ID_MAPPING",
            Self::InvalidTransactionTimeout => "INVALID_TRANSACTION_TIMEOUT",
            Self::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            Self::ProducerFenced => "PRODUCER_FENCED",
        }
    }

    /// The code for a client speaking a version that predates PRODUCER_FENCED (KIP-588):
    /// INVALID_PRODUCER_EPOCH in its place, every other code unchanged.
    pub fn for_old_client(self) -> Self {
        match self {
            Self::ProducerFenced => Self::InvalidProducerEpoch,
            other => other,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}
