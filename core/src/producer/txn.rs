//! The client's transaction state machine, without I/O (Kafka's `TransactionManager` states).
//!
//! ```text
//!  Uninitialized --init--> Initializing --ok--> Ready --begin--> InTransaction
//!                                                 ^                 |      |
//!                                                 |            commit    abort
//!                                                 |                 v      v
//!                                                 +----ok------ Committing  Aborting --ok--> Ready
//!  InTransaction / Committing --abortable error--> AbortableError --abort--> Aborting
//!  any --fenced or fatal error--> FatalError (only close)
//! ```
//!
//! The producer calls `start_*` before talking to the coordinator and `*_done` with the outcome;
//! the sender reports failed batches with [`Transaction::batch_failed`]. Each call returns the
//! typed error the application sees: [`Error::IllegalState`] for a call in the wrong state,
//! [`Error::TransactionAbortable`] while the transaction must be aborted, and the stored fatal
//! error ([`Error::ProducerFenced`] or [`Error::ProducerFatal`]) once fatal.

use super::delivery::duplicate;
use crate::error::{Error, Result};

/// Where a transactional producer is.
#[derive(Debug)]
pub(crate) enum TxnState {
    /// `init_transactions` not called yet.
    Uninitialized,
    /// `init_transactions` running.
    Initializing,
    /// Between transactions.
    Ready,
    /// After `begin_transaction`.
    InTransaction,
    /// `commit_transaction` running.
    Committing,
    /// `abort_transaction` running.
    Aborting,
    /// The transaction cannot commit; abort it.
    AbortableError(Error),
    /// Only `close` is left.
    FatalError(Error),
}

/// Kafka error codes the transaction logic tells apart.
pub(crate) mod codes {
    pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub(crate) const NOT_COORDINATOR: i16 = 16;
    pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
    pub(crate) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub(crate) const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub(crate) const INVALID_TXN_STATE: i16 = 48;
    pub(crate) const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub(crate) const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub(crate) const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub(crate) const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub(crate) const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub(crate) const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub(crate) const PRODUCER_FENCED: i16 = 90;
    #[cfg(test)]
    pub(crate) const TRANSACTION_ABORTABLE: i16 = 120;
}

/// Coordinator errors after which the same request is simply retried (after a backoff, with the
/// coordinator looked up again for the last two).
pub(crate) fn coordinator_retriable(e: &Error) -> bool {
    use codes::*;
    matches!(
        e.code(),
        Some(CONCURRENT_TRANSACTIONS | COORDINATOR_LOAD_IN_PROGRESS | NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE)
    ) || matches!(e, Error::Io { .. } | Error::Disconnected(_) | Error::Frame(_) | Error::NoBroker(_))
}

/// Classify an error from a transaction coordinator or a batch of the transaction: fenced,
/// fatal, or abortable (the default: the transaction cannot commit, the producer can go on).
pub(crate) fn classify(e: Error) -> Error {
    use codes::*;
    if matches!(e, Error::ProducerFenced(_) | Error::ProducerFatal(_) | Error::TransactionAbortable(_)) {
        return e;
    }
    match e.code() {
        // Older coordinators answer INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
        Some(PRODUCER_FENCED | INVALID_PRODUCER_EPOCH) => Error::ProducerFenced(e.to_string()),
        Some(
            UNSUPPORTED_VERSION
            | TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | INVALID_TXN_STATE
            | INVALID_TRANSACTION_TIMEOUT
            | INVALID_PRODUCER_ID_MAPPING,
        ) => Error::ProducerFatal(Box::new(e)),
        _ if matches!(e, Error::UnsupportedVersion { .. }) => Error::ProducerFatal(Box::new(e)),
        _ => Error::TransactionAbortable(Box::new(e)),
    }
}

/// Classify a failed batch of a transaction. Unlike a coordinator, a partition leader answering
/// INVALID_PRODUCER_EPOCH only means this transaction is stale (Kafka 2.7+): abortable.
pub(crate) fn classify_batch_error(e: &Error) -> Error {
    match e.code() {
        Some(codes::INVALID_PRODUCER_EPOCH) => Error::TransactionAbortable(Box::new(duplicate(e))),
        _ => classify(duplicate(e)),
    }
}

/// The state machine plus what the current transaction touched.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub(crate) state: TxnState,
    /// A partition or the offsets of a group were added: ending it needs an EndTxn.
    pub(crate) started: bool,
}

impl Default for Transaction {
    fn default() -> Self {
        Self { state: TxnState::Uninitialized, started: false }
    }
}

impl Transaction {
    fn illegal(&self, what: &str) -> Error {
        match &self.state {
            TxnState::FatalError(e) => duplicate(e),
            TxnState::AbortableError(e) if what != "begin_transaction" => {
                Error::TransactionAbortable(Box::new(duplicate(unwrap_abortable(e))))
            }
            s => Error::IllegalState(format!("cannot {what} in state {}", name(s))),
        }
    }

    /// `init_transactions` starts.
    pub(crate) fn start_init(&mut self) -> Result<()> {
        match self.state {
            TxnState::Uninitialized => {
                self.state = TxnState::Initializing;
                Ok(())
            }
            _ => Err(self.illegal("init_transactions")),
        }
    }

    /// `init_transactions` ended. A timeout leaves the producer uninitialized (call it again).
    pub(crate) fn init_done(&mut self, r: Result<()>) -> Result<()> {
        match r {
            Ok(()) => {
                self.state = TxnState::Ready;
                Ok(())
            }
            Err(e @ Error::Timeout(_)) => {
                self.state = TxnState::Uninitialized;
                Err(e)
            }
            Err(e) => Err(self.fatal(classify_fatal(e))),
        }
    }

    /// `begin_transaction`.
    pub(crate) fn begin(&mut self) -> Result<()> {
        match self.state {
            TxnState::Ready => {
                self.state = TxnState::InTransaction;
                self.started = false;
                Ok(())
            }
            _ => Err(self.illegal("begin_transaction")),
        }
    }

    /// May records be sent (or offsets added) now?
    pub(crate) fn check_send(&self) -> Result<()> {
        match self.state {
            TxnState::InTransaction => Ok(()),
            _ => Err(self.illegal("send outside a transaction (call begin_transaction first)")),
        }
    }

    /// `commit_transaction` starts (flush, then EndTxn). Called again after a timeout, it
    /// resumes.
    pub(crate) fn start_commit(&mut self) -> Result<()> {
        match self.state {
            TxnState::InTransaction | TxnState::Committing => {
                self.state = TxnState::Committing;
                Ok(())
            }
            _ => Err(self.illegal("commit_transaction")),
        }
    }

    /// `abort_transaction` starts (drop unsent batches, wait for the rest, EndTxn).
    pub(crate) fn start_abort(&mut self) -> Result<()> {
        match self.state {
            TxnState::InTransaction | TxnState::AbortableError(_) | TxnState::Committing | TxnState::Aborting => {
                self.state = TxnState::Aborting;
                Ok(())
            }
            _ => Err(self.illegal("abort_transaction")),
        }
    }

    /// The commit or abort finished (EndTxn answered, or nothing needed ending). A timeout
    /// keeps the state, so the call can be repeated; abortable errors during a commit move to
    /// AbortableError; anything else is fatal.
    pub(crate) fn end_done(&mut self, r: Result<()>) -> Result<()> {
        let committing = matches!(self.state, TxnState::Committing);
        match r {
            Ok(()) => {
                self.state = TxnState::Ready;
                self.started = false;
                Ok(())
            }
            Err(e @ Error::Timeout(_)) => Err(e),
            Err(e) => match classify(e) {
                Error::TransactionAbortable(cause) if committing => {
                    self.state = TxnState::AbortableError(duplicate(&cause));
                    Err(Error::TransactionAbortable(cause))
                }
                e @ Error::TransactionAbortable(_) => Err(self.fatal(Error::ProducerFatal(Box::new(e)))),
                e => Err(self.fatal(e)),
            },
        }
    }

    /// A batch of the transaction failed for good, or a request of it failed (`e` already
    /// classified or not). Returns the classified error.
    pub(crate) fn failed(&mut self, e: Error) -> Error {
        let e = classify(e);
        match (&self.state, &e) {
            (TxnState::FatalError(_), _) => {}
            (_, Error::ProducerFenced(_) | Error::ProducerFatal(_)) => return self.fatal(e),
            (TxnState::InTransaction | TxnState::Committing, Error::TransactionAbortable(cause)) => {
                self.state = TxnState::AbortableError(duplicate(cause));
            }
            _ => {}
        }
        e
    }

    /// A batch sent in this transaction failed for good.
    pub(crate) fn batch_failed(&mut self, e: &Error) {
        let e = classify_batch_error(e);
        self.failed(e);
    }

    fn fatal(&mut self, e: Error) -> Error {
        let out = duplicate(&e);
        self.state = TxnState::FatalError(e);
        out
    }

    /// The error for batches queued while the transaction can no longer commit, if it cannot.
    pub(crate) fn doomed(&self) -> Option<Error> {
        match &self.state {
            TxnState::AbortableError(e) => Some(Error::TransactionAbortable(Box::new(duplicate(unwrap_abortable(e))))),
            TxnState::FatalError(e) => Some(duplicate(e)),
            _ => None,
        }
    }

    /// True once only `close` is left.
    #[cfg(test)]
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self.state, TxnState::FatalError(_))
    }
}

fn unwrap_abortable(e: &Error) -> &Error {
    match e {
        Error::TransactionAbortable(inner) => inner,
        e => e,
    }
}

/// Errors of `init_transactions` are fatal unless they are fencing.
fn classify_fatal(e: Error) -> Error {
    match classify(e) {
        Error::TransactionAbortable(cause) => Error::ProducerFatal(cause),
        e => e,
    }
}

fn name(s: &TxnState) -> &'static str {
    match s {
        TxnState::Uninitialized => "Uninitialized (call init_transactions first)",
        TxnState::Initializing => "Initializing",
        TxnState::Ready => "Ready (no transaction begun)",
        TxnState::InTransaction => "InTransaction",
        TxnState::Committing => "Committing",
        TxnState::Aborting => "Aborting",
        TxnState::AbortableError(_) => "AbortableError",
        TxnState::FatalError(_) => "FatalError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: i16) -> Error {
        Error::from_code(code, "test", None).unwrap()
    }

    fn kind(r: &Result<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(Error::IllegalState(_)) => "illegal",
            Err(Error::TransactionAbortable(_)) => "abortable",
            Err(Error::ProducerFenced(_)) => "fenced",
            Err(Error::ProducerFatal(_)) => "fatal",
            Err(Error::Timeout(_)) => "timeout",
            Err(_) => "other",
        }
    }

    fn state(t: &Transaction) -> &'static str {
        name(&t.state).split(' ').next().unwrap()
    }

    /// A producer driven to `target` the normal way.
    fn at(target: &str) -> Transaction {
        let mut t = Transaction::default();
        let steps: &[&str] = match target {
            "Uninitialized" => &[],
            "Initializing" => &["init"],
            "Ready" => &["init", "init_ok"],
            "InTransaction" => &["init", "init_ok", "begin"],
            "Committing" => &["init", "init_ok", "begin", "commit"],
            "Aborting" => &["init", "init_ok", "begin", "abort"],
            "AbortableError" => &["init", "init_ok", "begin", "batch_failed"],
            "FatalError" => &["init", "init_ok", "begin", "fenced"],
            other => panic!("{other}"),
        };
        for s in steps {
            let _ = apply(&mut t, s);
        }
        assert_eq!(state(&t), target);
        t
    }

    fn apply(t: &mut Transaction, op: &str) -> Result<()> {
        match op {
            "init" => t.start_init(),
            "init_ok" => t.init_done(Ok(())),
            "begin" => t.begin(),
            "send" => t.check_send(),
            "commit" => t.start_commit(),
            "abort" => t.start_abort(),
            "end_ok" => t.end_done(Ok(())),
            "end_abortable" => t.end_done(Err(broker(codes::TRANSACTION_ABORTABLE))),
            "end_timeout" => t.end_done(Err(Error::Timeout("EndTxn".into()))),
            "batch_failed" => {
                t.batch_failed(&broker(10));
                Ok(())
            }
            "fenced" => Err(t.failed(broker(codes::PRODUCER_FENCED))),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn transitions_follow_kafkas_transaction_manager() {
        // (state, operation, result, next state)
        let table: &[(&str, &str, &str, &str)] = &[
            ("Uninitialized", "init", "ok", "Initializing"),
            ("Uninitialized", "begin", "illegal", "Uninitialized"),
            ("Uninitialized", "send", "illegal", "Uninitialized"),
            ("Initializing", "init_ok", "ok", "Ready"),
            ("Ready", "init", "illegal", "Ready"),
            ("Ready", "begin", "ok", "InTransaction"),
            ("Ready", "send", "illegal", "Ready"),
            ("Ready", "commit", "illegal", "Ready"),
            ("Ready", "abort", "illegal", "Ready"),
            ("InTransaction", "send", "ok", "InTransaction"),
            ("InTransaction", "begin", "illegal", "InTransaction"),
            ("InTransaction", "commit", "ok", "Committing"),
            ("InTransaction", "abort", "ok", "Aborting"),
            ("InTransaction", "batch_failed", "ok", "AbortableError"),
            ("InTransaction", "fenced", "fenced", "FatalError"),
            ("Committing", "end_ok", "ok", "Ready"),
            ("Committing", "end_timeout", "timeout", "Committing"),
            ("Committing", "commit", "ok", "Committing"),
            ("Committing", "end_abortable", "abortable", "AbortableError"),
            ("Committing", "batch_failed", "ok", "AbortableError"),
            ("Committing", "send", "illegal", "Committing"),
            ("Aborting", "end_ok", "ok", "Ready"),
            ("Aborting", "end_abortable", "fatal", "FatalError"),
            ("Aborting", "batch_failed", "ok", "Aborting"),
            ("AbortableError", "send", "abortable", "AbortableError"),
            ("AbortableError", "commit", "abortable", "AbortableError"),
            ("AbortableError", "begin", "illegal", "AbortableError"),
            ("AbortableError", "abort", "ok", "Aborting"),
            ("FatalError", "abort", "fenced", "FatalError"),
            ("FatalError", "begin", "fenced", "FatalError"),
            ("FatalError", "send", "fenced", "FatalError"),
            ("FatalError", "batch_failed", "ok", "FatalError"),
        ];
        for (from, op, want, to) in table {
            let mut t = at(from);
            let got = apply(&mut t, op);
            assert_eq!((kind(&got), state(&t)), (*want, *to), "{from} --{op}-->");
        }
    }

    #[test]
    fn init_errors_are_fatal_except_timeouts() {
        let mut t = at("Initializing");
        assert_eq!(kind(&t.init_done(Err(Error::Timeout("x".into())))), "timeout");
        assert_eq!(state(&t), "Uninitialized");
        t.start_init().unwrap();
        assert_eq!(kind(&t.init_done(Err(broker(codes::INVALID_TRANSACTION_TIMEOUT)))), "fatal");
        assert!(t.is_fatal());
    }

    #[test]
    fn errors_are_classified_with_kafkas_rules() {
        let c = |code| match classify(broker(code)) {
            Error::ProducerFenced(_) => "fenced",
            Error::ProducerFatal(_) => "fatal",
            Error::TransactionAbortable(_) => "abortable",
            _ => "other",
        };
        assert_eq!(c(codes::PRODUCER_FENCED), "fenced");
        assert_eq!(c(codes::INVALID_PRODUCER_EPOCH), "fenced", "from a coordinator");
        assert_eq!(c(codes::UNSUPPORTED_VERSION), "fatal");
        assert_eq!(c(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED), "fatal");
        assert_eq!(c(codes::TRANSACTION_ABORTABLE), "abortable");
        assert_eq!(c(codes::UNKNOWN_PRODUCER_ID), "abortable");
        assert!(matches!(classify_batch_error(&broker(codes::INVALID_PRODUCER_EPOCH)), Error::TransactionAbortable(_)));
        assert!(matches!(classify_batch_error(&broker(codes::PRODUCER_FENCED)), Error::ProducerFenced(_)));
        assert!(coordinator_retriable(&broker(codes::CONCURRENT_TRANSACTIONS)));
        assert!(coordinator_retriable(&broker(codes::NOT_COORDINATOR)));
        assert!(!coordinator_retriable(&broker(codes::PRODUCER_FENCED)));
        assert_eq!(broker(codes::TRANSACTION_ABORTABLE).code(), Some(120));
    }
}
