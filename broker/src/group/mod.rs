//! The classic-protocol group coordinator, as a state machine without I/O.
//!
//! [`GroupCoordinator`] holds every group this broker coordinates: members, generations,
//! assignments and committed offsets. A driver feeds it decoded requests with
//! [`step`](GroupCoordinator::step), calls [`tick`](GroupCoordinator::tick) as time passes (at the
//! latest by [`next_deadline`](GroupCoordinator::next_deadline)), and carries out the [`Effect`]s it
//! gets back in order: answers to requests (a JoinGroup is answered only when its rebalance
//! completes, a follower's SyncGroup when the leader's assignment arrives) and records to append
//! to `__consumer_offsets` before the answers that follow them. On start the driver replays that
//! topic through [`load`](GroupCoordinator::load). Time is passed in as milliseconds since the
//! epoch; nothing here reads a clock, a socket or a file.
//!
//! Behaviour follows Kafka's classic group protocol: groups move Empty -> PreparingRebalance ->
//! CompletingRebalance -> Stable ([`GroupState`]); the first rebalance of an empty group waits
//! `group.initial.rebalance.delay.ms`; members that stop heartbeating are dropped after their
//! session timeout and members that do not rejoin (or sync) within the rebalance timeout are
//! dropped from the rebalance (KIP-62); first joins get MEMBER_ID_REQUIRED from v4 (KIP-394);
//! static members (`group.instance.id`, KIP-345) rejoin without a rebalance and fence the
//! member they replace. Offsets of groups empty for `offsets.retention.minutes` expire.
//!
//! - `request.rs` / `response.rs`: the requests and effects, as plain structs.
//! - `state.rs`: one group's data; `join.rs`, `rebalance.rs`, `membership.rs`: the transitions.
//! - `offsets.rs`: commits, fetches, deletion and expiry; `admin.rs`: list, describe, delete.
//! - `txn_offsets.rs`: offsets committed in transactions (TxnOffsetCommit), pending until the
//!   transaction ends ([`complete_txn`](GroupCoordinator::complete_txn)).
//! - `record.rs`: the `__consumer_offsets` records and their binary format; `load.rs`: replay,
//!   transaction markers included.

mod admin;
mod config;
mod error;
mod join;
mod load;
mod membership;
mod offsets;
mod rebalance;
mod record;
mod request;
mod response;
mod state;
mod subscription;
mod timers;
mod txn_offsets;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use config::*;
pub use error::ErrorCode;
pub use load::LogEntry;
pub use record::{
    partition_for, DecodeError, GroupValue, MemberValue, OffsetValue, Record, DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS,
    OFFSETS_TOPIC,
};
pub use request::*;
pub use response::*;
pub use state::GroupState;
pub use subscription::CONSUMER_PROTOCOL_TYPE;

use state::Group;

/// Makes the unique part of new member ids.
type IdSource = Box<dyn FnMut() -> String + Send>;

/// Every group this broker coordinates. See the [module docs](self) for the contract.
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    /// When offsets are next checked for expiry (set by the first call).
    next_cleanup_ms: Option<i64>,
    new_id: IdSource,
    /// The position the next write takes (see `state::Stored`).
    next_position: i64,
}

impl fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .field("groups", &self.groups.len())
            .field("next_cleanup_ms", &self.next_cleanup_ms)
            .field("next_position", &self.next_position)
            .finish()
    }
}

/// What a transition needs: the time, the settings, and where effects go.
struct Ctx<'a> {
    now: i64,
    config: &'a GroupConfig,
    out: Vec<Effect>,
    /// The position the next write takes.
    position: i64,
}

impl Ctx<'_> {
    fn respond(&mut self, request: RequestId, response: Response) {
        self.out.push(Effect::Respond { request, response });
    }

    fn persist(&mut self, group_id: &str, records: Vec<Record>) {
        if !records.is_empty() {
            self.next_position();
            self.out.push(Effect::Persist { group_id: group_id.to_owned(), records });
        }
    }

    /// Take a position for a write.
    fn next_position(&mut self) -> i64 {
        self.position += 1;
        self.position - 1
    }
}

impl GroupCoordinator {
    /// A coordinator with no groups (check `config` with [`GroupConfig::validate`] first). New
    /// member ids are `<client id or instance id>-<uuid v4>`, as in Kafka.
    pub fn new(config: GroupConfig) -> Self {
        Self::with_member_ids(config, || uuid::Uuid::new_v4().to_string())
    }

    /// A coordinator whose new member ids end in `next_id()` instead of a random UUID (tests
    /// use a counter, for reproducible ids). The values must never repeat.
    pub fn with_member_ids(config: GroupConfig, next_id: impl FnMut() -> String + Send + 'static) -> Self {
        Self { config, groups: BTreeMap::new(), next_cleanup_ms: None, new_id: Box::new(next_id), next_position: 0 }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Handle one request arriving at `now_ms`. The answer to `request` comes back as an effect,
    /// now or (JoinGroup, SyncGroup) from a later call.
    pub fn step(&mut self, now_ms: i64, request: RequestId, req: Request) -> Vec<Effect> {
        self.next_cleanup_ms.get_or_insert(now_ms + self.config.offsets_retention_check_interval_ms);
        let mut ctx = Ctx { now: now_ms, config: &self.config, out: Vec::new(), position: self.next_position };
        let groups = &mut self.groups;
        match req {
            Request::JoinGroup(r) => join::join_group(groups, &mut ctx, &mut self.new_id, request, r),
            Request::SyncGroup(r) => membership::sync_group(groups, &mut ctx, request, r),
            Request::Heartbeat(r) => membership::heartbeat(groups, &mut ctx, request, r),
            Request::LeaveGroup(r) => membership::leave_group(groups, &mut ctx, request, r),
            Request::OffsetCommit(r) => offsets::commit(groups, &mut ctx, request, r),
            Request::TxnOffsetCommit(r) => txn_offsets::commit(groups, &mut ctx, request, r),
            Request::OffsetFetch(r) => offsets::fetch(groups, &mut ctx, request, r),
            Request::OffsetDelete(r) => offsets::delete(groups, &mut ctx, request, r),
            Request::ListGroups(r) => admin::list_groups(groups, &mut ctx, request, r),
            Request::DescribeGroups(r) => admin::describe_groups(groups, &mut ctx, request, r),
            Request::DeleteGroups(r) => admin::delete_groups(groups, &mut ctx, request, r),
        }
        self.next_position = ctx.position;
        ctx.out
    }

    /// The write of an [`Effect::PersistTxn`] is in the log: its offsets are now pending for the
    /// producer's transaction. Call before carrying out the effects after it.
    pub fn txn_written(&mut self, write: &TxnWrite) {
        txn_offsets::written(&mut self.groups, write);
    }

    /// The transaction of `producer_id` ended with a marker (`commit` or abort) in the
    /// `__consumer_offsets` partition holding the groups for which `in_partition` is true: their
    /// pending offsets from that producer become committed offsets (where no later commit
    /// replaced them) or are dropped. Call once the marker is in the log. Nothing is written:
    /// the offsets and the marker already are.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, in_partition: impl Fn(&str) -> bool) {
        txn_offsets::complete(&mut self.groups, producer_id, commit, in_partition);
    }

    /// Let time pass to `now_ms`: drop members whose session expired, finish rebalances whose
    /// delay or timeout ran out, and (every `offsets.retention.check.interval.ms`) expire offsets.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut ctx = Ctx { now: now_ms, config: &self.config, out: Vec::new(), position: self.next_position };
        for group in self.groups.values_mut() {
            timers::expire(group, &mut ctx);
        }
        let next = *self.next_cleanup_ms.get_or_insert(now_ms + self.config.offsets_retention_check_interval_ms);
        if now_ms >= next {
            offsets::expire_offsets(&mut self.groups, &mut ctx);
            self.next_cleanup_ms = Some(now_ms + self.config.offsets_retention_check_interval_ms);
        }
        self.next_position = ctx.position;
        ctx.out
    }

    /// The earliest time at which [`tick`](Self::tick) has something to do, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(timers::next_deadline).chain(self.next_cleanup_ms).min()
    }

    /// Rebuild groups and offsets from one `__consumer_offsets` partition's entries, oldest
    /// first, at `now_ms`. Pass every entry of the partition, markers included, in one call:
    /// groups the entries name replace those in memory; transactional offsets whose marker has
    /// not come stay pending until [`complete_txn`](Self::complete_txn). Loaded members must
    /// heartbeat within their session timeout from `now_ms`.
    pub fn load(&mut self, now_ms: i64, entries: impl IntoIterator<Item = LogEntry>) {
        self.next_cleanup_ms.get_or_insert(now_ms + self.config.offsets_retention_check_interval_ms);
        let last = load::load(&mut self.groups, now_ms, entries);
        self.next_position = self.next_position.max(last + 1);
    }

    /// Forget the groups for which `in_partition` is true (this broker no longer leads their
    /// `__consumer_offsets` partition; the new leader loads them from its log).
    pub fn unload(&mut self, in_partition: impl Fn(&str) -> bool) {
        self.groups.retain(|id, _| !in_partition(id));
    }

    /// The state of every group as the records that would rebuild it.
    #[cfg(test)]
    fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for g in self.groups.values() {
            if g.generation > 0 {
                out.push(g.metadata_record());
            }
            for (tp, v) in &g.offsets {
                out.push(Record::Offset {
                    group_id: g.id.clone(),
                    partition: tp.clone(),
                    value: Some(v.value.clone()),
                });
            }
        }
        out
    }
}
