//! Table-driven tests of the transaction coordinator: rows of (time, input) and the effects
//! expected back, each effect summarised as one line of text (see [`summary`]).

mod end;
mod init;
mod records;
mod timeouts;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::*;

/// What happens at a row's time.
pub(super) enum Input {
    /// A request with its id.
    Req(u64, Request),
    /// Time passes.
    Tick,
    /// The driver wrote the markers of `id` for (producer id, epoch), except those of `failed`.
    Written { id: &'static str, pid: i64, epoch: i16, failed: Vec<TopicPartition> },
}

pub(super) const TXN: &str = "t1";

/// A coordinator whose producer ids are 1000, 1001, ...
pub(super) fn coordinator() -> TxnCoordinator {
    let next = Arc::new(AtomicI64::new(1000));
    TxnCoordinator::new(TxnConfig::default(), move || Some(next.fetch_add(1, Ordering::Relaxed)))
}

pub(super) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// InitProducerId for [`TXN`] with a 60 s timeout; `expected` as KIP-360 clients send it.
pub(super) fn init(id: u64, expected: Option<(i64, i16)>) -> Input {
    let r = InitProducerId { transactional_id: TXN.into(), timeout_ms: 60_000, expected };
    Input::Req(id, r.into())
}

/// AddPartitionsToTxn for [`TXN`].
pub(super) fn add(id: u64, pid: i64, epoch: i16, parts: &[(&str, i32)]) -> Input {
    let partitions = parts.iter().map(|(t, p)| tp(t, *p)).collect();
    Input::Req(
        id,
        AddPartitions { transactional_id: TXN.into(), producer_id: pid, producer_epoch: epoch, partitions }.into(),
    )
}

/// EndTxn for [`TXN`]; `v5` bumps the epoch (KIP-890 part 2).
pub(super) fn end(id: u64, pid: i64, epoch: i16, commit: bool, v5: bool) -> Input {
    let r = EndTxn { transactional_id: TXN.into(), producer_id: pid, producer_epoch: epoch, commit, bump_epoch: v5 };
    Input::Req(id, r.into())
}

/// The driver wrote every marker of [`TXN`] for `pid`/`epoch`.
pub(super) fn written(pid: i64, epoch: i16) -> Input {
    Input::Written { id: TXN, pid, epoch, failed: Vec::new() }
}

/// Run the rows in order, checking each row's effects. Returns the records persisted.
pub(super) fn run(c: &mut TxnCoordinator, rows: &[(i64, Input, &[&str])]) -> Vec<TxnRecord> {
    let mut persisted = Vec::new();
    for (i, (at, input, want)) in rows.iter().enumerate() {
        let effects = match input {
            Input::Req(id, r) => c.step(*at, RequestId(*id), r.clone()),
            Input::Tick => c.tick(*at),
            Input::Written { id, pid, epoch, failed } => c.markers_written(*at, id, *pid, *epoch, failed.clone()),
        };
        let got: Vec<String> = effects.iter().map(summary).collect();
        assert_eq!(got, *want, "row {i} (t={at})");
        persisted.extend(effects.into_iter().filter_map(|e| match e {
            Effect::Persist(r) => Some(r),
            _ => None,
        }));
    }
    persisted
}

fn parts(ps: &[TopicPartition]) -> String {
    ps.iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect::<Vec<_>>().join(",")
}

fn answer(a: &ProducerAnswer) -> String {
    match a.error {
        ErrorCode::None => format!("pid={} epoch={}", a.producer_id, a.producer_epoch),
        e => e.name().to_string(),
    }
}

/// One line per effect, e.g. `persist t1: PrepareCommit pid=1000 epoch=0 [a-0]`.
pub(super) fn summary(e: &Effect) -> String {
    match e {
        Effect::Persist(r) => format!("persist {}: {}", r.transactional_id, value_summary(r.value.as_ref())),
        Effect::Respond { request, response } => {
            let text = match response {
                Response::InitProducerId(a) => format!("init {}", answer(a)),
                Response::EndTxn(a) => format!("end {}", answer(a)),
                Response::AddPartitions(e) => format!("add {}", e.name()),
                Response::AddOffsets(e) => format!("add-offsets {}", e.name()),
            };
            format!("#{} {text}", request.0)
        }
        Effect::WriteMarkers { transactional_id, producer_id, producer_epoch, commit, partitions } => {
            let kind = if *commit { "commit" } else { "abort" };
            format!(
                "markers {transactional_id} {kind} pid={producer_id} epoch={producer_epoch} [{}]",
                parts(partitions)
            )
        }
    }
}

pub(super) fn value_summary(v: Option<&TxnValue>) -> String {
    let Some(v) = v else { return "tombstone".into() };
    let ps: Vec<TopicPartition> = v.partitions.iter().cloned().collect();
    format!("{} pid={} epoch={} [{}]", v.state.name(), v.producer_id, v.producer_epoch, parts(&ps))
}

#[test]
fn the_coordinator_can_move_to_a_driver_task() {
    fn send<T: Send + 'static>() {}
    send::<TxnCoordinator>();
    send::<Effect>();
}
