//! The transactional producer's API: `init_transactions`, `begin_transaction`,
//! `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`.
//!
//! The state lives in the accumulator (`txn.rs`, checked by `send` under the same lock); these
//! methods move it and talk to the transaction coordinator. The sender adds partitions to the
//! transaction (AddPartitionsToTxn) before their first batch goes out and marks batches
//! transactional.

use std::collections::BTreeMap;

use super::sender::Shared;
use super::txn::{codes, Transaction};
use super::txn_requests;
use super::Producer;
use crate::consumer::protocol::{find_coordinator, is_coordinator_error};
use crate::consumer::{ConsumerGroupMetadata, TopicPartition};
use crate::error::{Error, Result};

impl Producer {
    fn txn_shared(&self) -> Result<(&Shared, &str)> {
        let s = &*self.inner.shared;
        match s.config.transactional_id.as_deref() {
            Some(id) => Ok((s, id)),
            None => Err(Error::IllegalState("this producer has no transactional.id".into())),
        }
    }

    /// Move the transaction state with `f` (under the accumulator's lock).
    fn txn<T>(&self, f: impl FnOnce(&mut Transaction) -> T) -> T {
        let mut acc = self.inner.shared.acc();
        f(acc.txn.as_mut().expect("a transactional producer has a transaction state"))
    }

    /// Register the `transactional.id` with its coordinator and get the producer id and epoch.
    /// Fences earlier producers with the same id: their open transaction is aborted and their
    /// requests refused ([`Error::ProducerFenced`]). Call once, before any other transactional
    /// call; retries coordinator errors for up to `max.block.ms` ([`Error::Timeout`] after which
    /// it may be called again).
    pub async fn init_transactions(&self) -> Result<()> {
        let (s, id) = self.txn_shared()?;
        self.txn(Transaction::start_init)?;
        let c = &s.config;
        let r = s
            .with_txn_coordinator("InitProducerId", &[], |conn| async move {
                txn_requests::init_producer_id(&conn, Some(id), c.transaction_timeout, None, c.request_timeout).await
            })
            .await;
        let mut acc = s.acc();
        let r = r.map(|ids| acc.set_producer_ids(ids));
        acc.txn.as_mut().expect("transactional").init_done(r)
    }

    /// Start a transaction: records sent until the commit or abort belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.txn_shared()?;
        self.txn(Transaction::begin)
    }

    /// Commit `offsets` (the next offset to read, per partition) for the consumer group in
    /// `group` as part of the transaction: they count only if it commits (consume-transform-
    /// produce). `group` comes from the consumer's `group_metadata()`; the group coordinator
    /// refuses offsets of an old generation (then the transaction must be aborted).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (s, id) = self.txn_shared()?;
        self.txn(|t| t.check_send())?;
        let ids = s.acc().sequencer.ids.expect("initialized");
        let timeout = s.config.request_timeout;
        let added = s
            .with_txn_coordinator("AddOffsetsToTxn", &[], |conn| async move {
                txn_requests::add_offsets(&conn, id, ids, &group.group_id, timeout).await
            })
            .await;
        if let Err(e) = added {
            return Err(self.txn(|t| t.failed(e)));
        }
        self.txn(|t| t.started = true);
        if let Err(e) = self.txn_offset_commit(s, id, group, offsets).await {
            return Err(self.txn(|t| t.failed(e)));
        }
        Ok(())
    }

    /// TxnOffsetCommit to the group's coordinator, retrying coordinator errors.
    async fn txn_offset_commit(
        &self,
        s: &Shared,
        id: &str,
        group: &ConsumerGroupMetadata,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let c = &s.config;
        let ids = s.acc().sequencer.ids.expect("initialized");
        let deadline = std::time::Instant::now() + c.max_block;
        let mut attempt = 0;
        loop {
            let client = s.live_client().await?;
            let r =
                match find_coordinator(&client.live_broker().await?, &group.group_id, &c.client_id, c.request_timeout)
                    .await
                {
                    Ok(conn) => {
                        txn_requests::txn_offset_commit(&conn, id, ids, group, offsets, c.request_timeout).await
                    }
                    Err(e) => Err(e),
                };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if is_coordinator_error(&e) || e.code() == Some(codes::CONCURRENT_TRANSACTIONS) => {
                    attempt += 1;
                    let pause = std::time::Instant::now() + c.backoff(attempt);
                    if pause >= deadline {
                        return Err(Error::Timeout(format!("TxnOffsetCommit after max.block.ms; last error: {e}")));
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(pause)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send everything queued, then commit the transaction (EndTxn). If a record of it failed,
    /// or the coordinator says the transaction cannot commit, returns
    /// [`Error::TransactionAbortable`]: call [`Producer::abort_transaction`]. A timeout can be
    /// retried by calling this again.
    pub async fn commit_transaction(&self) -> Result<()> {
        let (s, id) = self.txn_shared()?;
        self.txn(Transaction::start_commit)?;
        self.flush().await;
        let (started, ids) = {
            let acc = s.acc();
            let txn = acc.txn.as_ref().expect("transactional");
            if let Some(e) = txn.doomed() {
                return Err(e);
            }
            (txn.started, acc.sequencer.ids.expect("initialized"))
        };
        self.end(s, id, started, ids, true).await
    }

    /// Abort the transaction: records not yet sent fail with [`Error::TransactionAborted`],
    /// those in flight get their outcome, then the coordinator writes abort markers (EndTxn)
    /// so read_committed consumers never see the transaction. The producer can then begin a
    /// new one. When a batch of the transaction failed after it was sent, the epoch is bumped
    /// (KIP-360) so sequence numbers start afresh.
    pub async fn abort_transaction(&self) -> Result<()> {
        let (s, id) = self.txn_shared()?;
        self.txn(Transaction::start_abort)?;
        let failed = s
            .acc()
            .fail_queued(&Error::TransactionAborted("the transaction was aborted before the record was sent".into()));
        for (completion, e) in failed {
            completion.complete(Err(e));
        }
        self.flush().await;
        let (started, ids) = {
            let acc = s.acc();
            (acc.txn.as_ref().expect("transactional").started, acc.sequencer.ids.expect("initialized"))
        };
        self.end(s, id, started, ids, false).await
    }

    /// EndTxn (if anything was added) and the new ids, then the state moves on.
    async fn end(
        &self,
        s: &Shared,
        id: &str,
        started: bool,
        ids: super::sequence::IdAndEpoch,
        commit: bool,
    ) -> Result<()> {
        let c = &s.config;
        let mut r = Ok(None);
        if started {
            r = s
                .with_txn_coordinator("EndTxn", &[], |conn| async move {
                    txn_requests::end_txn(&conn, id, ids, commit, c.request_timeout).await
                })
                .await;
        }
        // Sequences must start afresh after a failed batch: bump the epoch if EndTxn did not.
        if matches!(r, Ok(None)) && !commit && s.acc().bump_wanted() {
            r = s
                .with_txn_coordinator("InitProducerId (epoch bump)", &[], |conn| async move {
                    txn_requests::init_producer_id(&conn, Some(id), c.transaction_timeout, Some(ids), c.request_timeout)
                        .await
                })
                .await
                .map(Some);
        }
        let mut acc = s.acc();
        let r = r.map(|new| {
            if let Some(new) = new {
                acc.set_producer_ids(new);
            }
            acc.end_txn();
        });
        let out = acc.txn.as_mut().expect("transactional").end_done(r);
        drop(acc);
        s.wake.notify_one();
        out
    }
}
