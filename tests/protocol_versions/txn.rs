//! Transaction cases of `protocol_versions`: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit and WriteTxnMarkers.

use super::*;

impl Pv {
    /// A marker for a partition that does not exist answers UNKNOWN_TOPIC_OR_PARTITION (a real
    /// one would end a transaction in the main topic).
    pub(super) async fn write_txn_markers(&self, v: i16) -> Result<(), String> {
        use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
        let marker = WritableTxnMarker::default()
            .with_producer_id(kafka_protocol::messages::ProducerId(4242))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name("pv-nowhere"))
                .with_partition_indexes(vec![0])]);
        let req = kafka_protocol::messages::WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let resp = self.call(req, v).await?;
        let codes: Vec<i16> = resp
            .markers
            .iter()
            .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
            .collect();
        ensure!(codes == vec![3], "codes {codes:?}");
        Ok(())
    }

    /// The error of a TxnOffsetCommit of `offset` for `topic`-`partition` by `m` in the
    /// transaction `txn` of producer `producer_id` at `v`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn txn_commit(
        &self,
        m: &Member,
        txn: &str,
        (producer_id, epoch): (i64, i16),
        topic: &str,
        partition: i32,
        offset: i64,
        v: i16,
    ) -> Result<i16, String> {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let mut p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s("txn")));
        if v >= 2 {
            p = p.with_committed_leader_epoch(LEADER_EPOCH);
        }
        let mut req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_group_id(group(&m.group))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![p])]);
        if v >= 3 {
            req = req
                .with_generation_id(m.generation)
                .with_member_id(s(&m.id))
                .with_group_instance_id(m.instance.as_deref().map(s));
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.topics.len() == 1 && resp.topics[0].name.0.as_str() == topic, "txn commit: {:?}", resp.topics);
        let parts = &resp.topics[0].partitions;
        ensure!(parts.len() == 1 && parts[0].partition_index == partition, "txn commit: partitions {parts:?}");
        Ok(parts[0].error_code)
    }

    /// TxnOffsetCommit: the offset stays pending (a RequireStable OffsetFetch answers
    /// UNSTABLE_OFFSET_COMMIT, an older one the last committed offset) while its transaction is
    /// open; ending transactions is tests/txn_offsets.rs's business. From v3 the member and its
    /// generation are checked; before, a group with members takes commits from anyone.
    pub(super) async fn txn_offset_commit(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-txn-commit-v{v}"), None).await?;
        let who = if v >= 3 { m.clone() } else { Member::simple(&m.group) };
        // A real transaction that holds the group's offsets partition: the broker verifies a
        // transaction's first write to a partition with the transaction coordinator.
        let txn = format!("pv-txn-commit-v{v}");
        let ids = self.txn_init(&txn).await?;
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(ProducerId(ids.0))
            .with_producer_epoch(ids.1)
            .with_group_id(group(&m.group));
        let resp = self.call(add, self.max_version(ApiKey::AddOffsetsToTxn)).await?;
        ensure!(resp.error_code == 0, "add offsets: error {}", resp.error_code);
        let e = self.txn_commit(&who, &txn, ids, GROUP_TOPIC, 0, 300 + v as i64, v).await?;
        ensure!(e == 0, "member: error {e}");

        let fv = self.max_version(ApiKey::OffsetFetch);
        let resp = self.call(Self::offset_fetch_request(&[&m.group], Some(&[0]), fv), fv).await?;
        let parts: Vec<(i64, i16)> = resp
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.committed_offset, p.error_code))))
            .collect();
        ensure!(parts == [(-1, UNSTABLE_OFFSET_COMMIT)], "RequireStable while pending: {parts:?}");
        let got = self.committed(&m.group, Some(&[0]), 6).await?;
        ensure!(got == [Committed::none(0)], "without RequireStable while pending: {got:?}");

        let mut cases = vec![
            ("unknown topic", who.clone(), "pv-nowhere", UNKNOWN_TOPIC_OR_PARTITION),
            ("empty group id", who.in_group(""), GROUP_TOPIC, INVALID_GROUP_ID),
        ];
        if v >= 3 {
            cases.push(("stale generation", m.with_generation(m.generation - 1), GROUP_TOPIC, ILLEGAL_GENERATION));
            cases.push(("unknown member", m.with_id("pv-stranger"), GROUP_TOPIC, UNKNOWN_MEMBER_ID));
        }
        for (what, who, topic, want) in cases {
            let e = self.txn_commit(&who, &txn, ids, topic, 1, 1, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        Ok(())
    }

    /// InitProducerId with a transactional id at the highest version: (producer id, epoch).
    pub(super) async fn txn_init(&self, txn: &str) -> Result<(i64, i16), String> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(txn))))
            .with_transaction_timeout_ms(60_000);
        let resp = self.call(req, self.max_version(ApiKey::InitProducerId)).await?;
        ensure!(resp.error_code == 0, "init {txn}: error {}", resp.error_code);
        Ok((resp.producer_id.0, resp.producer_epoch))
    }

    /// AddPartitionsToTxn of [`TXN_TOPIC`]-0 (or `topic`) at `v`: the partition's error code.
    pub(super) async fn txn_add(&self, txn: &str, pid: i64, epoch: i16, topic: &str, v: i16) -> Result<i16, String> {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(txn)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0])]);
        let resp = self.call(req, v).await?;
        let codes: Vec<(String, i32, i16)> = resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_error_code))
            })
            .collect();
        ensure!(codes.len() == 1 && codes[0].0 == topic && codes[0].1 == 0, "add: results {codes:?}");
        Ok(codes[0].2)
    }

    /// EndTxn at `v`: (error, producer id, epoch) with the id and epoch -1 before v5.
    pub(super) async fn txn_end(
        &self,
        txn: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
        v: i16,
    ) -> Result<(i16, i64, i16), String> {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(txn)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let resp = self.call(req, v).await?;
        Ok((resp.error_code, resp.producer_id.0, resp.producer_epoch))
    }

    /// PRODUCER_FENCED as a client at `v` hears it: INVALID_PRODUCER_EPOCH before `fenced_from`.
    pub(super) fn fenced(v: i16, fenced_from: i16) -> i16 {
        if v < fenced_from {
            INVALID_PRODUCER_EPOCH
        } else {
            PRODUCER_FENCED
        }
    }

    pub(super) async fn init_producer_id(&self, v: i16) -> Result<(), String> {
        // Without a transactional id (an idempotent producer): a new id each time, epoch 0.
        let idempotent = || InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(1);
        let a = self.call(idempotent(), v).await?;
        let b = self.call(idempotent(), v).await?;
        ensure!(a.error_code == 0 && b.error_code == 0, "idempotent: errors {} {}", a.error_code, b.error_code);
        ensure!(a.producer_epoch == 0 && a.producer_id.0 >= 0, "idempotent: {a:?}");
        ensure!(b.producer_id.0 != a.producer_id.0, "idempotent: the same id twice ({})", a.producer_id.0);

        let txn = format!("pv-init-v{v}");
        let init = |expected: Option<(i64, i16)>| {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&txn))))
                .with_transaction_timeout_ms(60_000);
            if let Some((pid, epoch)) = expected {
                req = req.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch);
            }
            req
        };
        let first = self.call(init(None), v).await?;
        ensure!(first.error_code == 0 && first.producer_epoch == 0, "first init: {first:?}");
        let second = self.call(init(None), v).await?;
        ensure!(second.error_code == 0, "second init: error {}", second.error_code);
        ensure!(
            (second.producer_id.0, second.producer_epoch) == (first.producer_id.0, 1),
            "second init: {second:?} after {first:?}"
        );
        if v >= 3 {
            // KIP-360: the current producer bumps its own epoch; a stale one is fenced.
            let pid = first.producer_id.0;
            let bumped = self.call(init(Some((pid, 1))), v).await?;
            ensure!((bumped.error_code, bumped.producer_epoch) == (0, 2), "bump: {bumped:?}");
            let stale = self.call(init(Some((pid, 0))), v).await?;
            ensure!(stale.error_code == Self::fenced(v, 4), "stale epoch: error {}", stale.error_code);
        }
        let bad = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&txn))))
            .with_transaction_timeout_ms(i32::MAX);
        let resp = self.call(bad, v).await?;
        ensure!(resp.error_code == 50, "timeout above transaction.max.timeout.ms: error {}", resp.error_code);
        Ok(())
    }

    pub(super) async fn add_partitions_to_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-add-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let e = self.txn_add(&txn, pid, epoch, TXN_TOPIC, v).await?;
        ensure!(e == 0, "add: error {e}");
        for (what, id, pid, epoch, topic, want) in [
            ("unknown topic", txn.as_str(), pid, epoch, "pv-txn-nowhere", UNKNOWN_TOPIC_OR_PARTITION),
            ("other producer id", txn.as_str(), pid + 1, epoch, TXN_TOPIC, INVALID_PRODUCER_ID_MAPPING),
            ("stale epoch", txn.as_str(), pid, epoch - 1, TXN_TOPIC, Self::fenced(v, 2)),
            ("unknown transactional id", "pv-add-nobody", pid, epoch, TXN_TOPIC, INVALID_PRODUCER_ID_MAPPING),
        ] {
            let e = self.txn_add(id, pid, epoch, topic, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, 3).await?;
        ensure!(e == 0, "abort: error {e}");
        Ok(())
    }

    pub(super) async fn add_offsets_to_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-add-offsets-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let add = |epoch: i16| {
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&txn)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(group(&format!("pv-add-offsets-group-v{v}")))
        };
        let resp = self.call(add(epoch), v).await?;
        ensure!(resp.error_code == 0, "add offsets: error {}", resp.error_code);
        let resp = self.call(add(epoch - 1), v).await?;
        ensure!(resp.error_code == Self::fenced(v, 2), "stale epoch: error {}", resp.error_code);
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, 3).await?;
        ensure!(e == 0, "abort: error {e}");
        Ok(())
    }

    pub(super) async fn end_txn(&self, v: i16) -> Result<(), String> {
        let txn = format!("pv-end-v{v}");
        let (pid, epoch) = self.txn_init(&txn).await?;
        let e = self.txn_add(&txn, pid, epoch, TXN_TOPIC, 3).await?;
        ensure!(e == 0, "add: error {e}");
        let (e, got_pid, got_epoch) = self.txn_end(&txn, pid, epoch, true, v).await?;
        ensure!(e == 0, "commit: error {e}");
        // v5 (KIP-890 part 2) answers with the epoch bumped; older versions carry no producer.
        let want = if v >= 5 { (pid, epoch + 1) } else { (-1, -1) };
        ensure!((got_pid, got_epoch) == want, "commit answered {:?}, expected {want:?}", (got_pid, got_epoch));
        // A retry of the commit is answered alike, an abort of it is refused.
        let (e, ..) = self.txn_end(&txn, pid, epoch, true, v).await?;
        ensure!(e == 0, "retried commit: error {e}");
        let (e, ..) = self.txn_end(&txn, pid, epoch, false, v).await?;
        ensure!(e == INVALID_TXN_STATE, "abort after commit: error {e}");
        let (e, ..) = self.txn_end(&txn, pid, epoch - 1, true, v).await?;
        ensure!(e == Self::fenced(v, 2), "stale epoch: error {e}");
        Ok(())
    }
}
