//! Table-driven tests of the coordinator: rows of (time, request or tick) and the effects
//! expected back, each effect summarised as one line of text (see [`summary`]).

mod admin;
mod membership;
mod offsets;
mod persistence;
mod static_members;
mod txn_offsets;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::subscription::encode_subscription;
use super::*;

/// What happens at a row's time.
pub(super) enum Input {
    /// A request with its id.
    Req(u64, Request),
    /// Time passes.
    Tick,
}

/// A request with id `id`.
pub(super) fn req(id: u64, r: impl Into<Request>) -> Input {
    Input::Req(id, r.into())
}

/// Time passes.
pub(super) fn tick() -> Input {
    Input::Tick
}

/// Kafka's defaults, with shorter offset retention so expiry tables stay readable.
pub(super) fn config() -> GroupConfig {
    GroupConfig { offsets_retention_ms: 1_000_000, offsets_retention_check_interval_ms: 10_000, ..Default::default() }
}

/// A coordinator whose member ids end in 1, 2, 3, ... in order of creation.
pub(super) fn coordinator_with(config: GroupConfig) -> GroupCoordinator {
    let n = Arc::new(AtomicU64::new(0));
    GroupCoordinator::with_member_ids(config, move || (n.fetch_add(1, Ordering::Relaxed) + 1).to_string())
}

pub(super) fn coordinator() -> GroupCoordinator {
    coordinator_with(config())
}

#[test]
fn the_coordinator_can_move_to_a_driver_task() {
    fn send<T: Send + 'static>() {}
    send::<GroupCoordinator>();
    send::<Effect>();
}

/// Run the rows in order, checking each row's effects; transactional writes succeed
/// ([`GroupCoordinator::txn_written`] is called). Returns the non-transactional records persisted.
pub(super) fn run(c: &mut GroupCoordinator, rows: &[(i64, Input, &[&str])]) -> Vec<Record> {
    let mut persisted = Vec::new();
    for (i, (at, input, want)) in rows.iter().enumerate() {
        let effects = match input {
            Input::Req(id, r) => c.step(*at, RequestId(*id), r.clone()),
            Input::Tick => c.tick(*at),
        };
        let got: Vec<String> = effects.iter().map(summary).collect();
        assert_eq!(got, *want, "row {i} (t={at})");
        for e in &effects {
            if let Effect::PersistTxn(w) = e {
                c.txn_written(w);
            }
        }
        persisted.extend(persisted_records(effects));
    }
    persisted
}

fn persisted_records(effects: Vec<Effect>) -> Vec<Record> {
    effects
        .into_iter()
        .flat_map(|e| match e {
            Effect::Persist { records, .. } => records,
            Effect::PersistTxn(_) | Effect::Respond { .. } => Vec::new(),
        })
        .collect()
}

/// Log entries for records written one batch each, at positions 0, 1, 2, ...
pub(super) fn entries(records: Vec<Record>) -> Vec<LogEntry> {
    (0..).zip(records).map(|(position, record)| LogEntry::Record { position, producer_id: None, record }).collect()
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tp(p: &TopicPartition) -> String {
    format!("{}-{}", p.topic, p.partition)
}

/// One line per effect, e.g. `#2 join gen=1 range leader=a-1 member=a-1 members=a-1,b-2`.
pub(super) fn summary(e: &Effect) -> String {
    match e {
        Effect::Persist { group_id, records } => {
            let records: Vec<String> = records.iter().map(record_summary).collect();
            format!("persist {group_id}: {}", records.join("; "))
        }
        Effect::PersistTxn(w) => {
            let records: Vec<String> = w.records.iter().map(record_summary).collect();
            format!(
                "persist txn {} pid={} epoch={}: {}",
                w.group_id,
                w.producer_id,
                w.producer_epoch,
                records.join("; ")
            )
        }
        Effect::Respond { request, response } => format!("#{} {}", request.0, response_summary(response)),
    }
}

pub(super) fn record_summary(r: &Record) -> String {
    match r {
        Record::Offset { partition, value: Some(v), .. } => format!("offset {}={}", tp(partition), v.offset),
        Record::Offset { partition, value: None, .. } => format!("offset {}=tombstone", tp(partition)),
        Record::Group { value: None, .. } => "group tombstone".into(),
        Record::Group { value: Some(v), .. } => {
            let members: Vec<String> =
                v.members.iter().map(|m| format!("{}={}", m.member_id, text(&m.assignment))).collect();
            let protocol = v.protocol.as_deref().unwrap_or("-");
            let leader = v.leader.as_deref().unwrap_or("-");
            format!("group gen={} {protocol} leader={leader} [{}]", v.generation, members.join(","))
        }
    }
}

fn results(rs: &[PartitionResult]) -> String {
    rs.iter().map(|r| format!("{}:{}", tp(&r.partition), r.error.name())).collect::<Vec<_>>().join(" ")
}

fn response_summary(r: &Response) -> String {
    match r {
        Response::JoinGroup(j) if !j.error.is_ok() => {
            let member = if j.member_id.is_empty() { String::new() } else { format!(" member={}", j.member_id) };
            format!("join {}{member}", j.error.name())
        }
        Response::JoinGroup(j) => {
            let mut s = format!(
                "join gen={} {} leader={} member={}",
                j.generation_id,
                j.protocol_name.as_deref().unwrap_or("-"),
                j.leader,
                j.member_id
            );
            if !j.members.is_empty() {
                let ids: Vec<&str> = j.members.iter().map(|m| m.member_id.as_str()).collect();
                s += &format!(" members={}", ids.join(","));
            }
            if j.skip_assignment {
                s += " skip";
            }
            s
        }
        Response::SyncGroup(s) if s.error.is_ok() => format!("sync ={}", text(&s.assignment)),
        Response::SyncGroup(s) => format!("sync {}", s.error.name()),
        Response::Heartbeat(e) => format!("heartbeat {}", e.name()),
        Response::LeaveGroup(l) => {
            let members: Vec<String> =
                l.members.iter().map(|m| format!("{}:{}", m.member_id, m.error.name())).collect();
            format!("leave {} {}", l.error.name(), members.join(" ")).trim_end().to_owned()
        }
        Response::OffsetCommit(rs) => format!("commit {}", results(rs)),
        Response::TxnOffsetCommit(rs) => format!("txn-commit {}", results(rs)),
        Response::WriteFailed(code) => format!("write failed {code}"),
        Response::OffsetFetch(groups) => {
            let fetched = |p: &FetchedOffset| match p.error {
                ErrorCode::None => format!("{}={}", tp(&p.partition), p.offset),
                e => format!("{}:{}={}", tp(&p.partition), e.name(), p.offset),
            };
            let groups: Vec<String> = groups
                .iter()
                .map(|g| {
                    let ps: Vec<String> = g.partitions.iter().map(fetched).collect();
                    format!("{}[{}]", g.group_id, ps.join(" "))
                })
                .collect();
            format!("fetch {}", groups.join(" "))
        }
        Response::ListGroups(gs) => {
            let gs: Vec<String> =
                gs.iter().map(|g| format!("{}:{}:{}", g.group_id, g.protocol_type, g.state.name())).collect();
            format!("list {}", gs.join(" ")).trim_end().to_owned()
        }
        Response::DescribeGroups(gs) => {
            let gs: Vec<String> = gs
                .iter()
                .map(|g| {
                    let ms: Vec<String> =
                        g.members.iter().map(|m| format!("{}={}", m.member_id, text(&m.assignment))).collect();
                    format!(
                        "{} {} {}/{} [{}]",
                        g.group_id,
                        g.state.name(),
                        g.protocol_type,
                        g.protocol_data,
                        ms.join(",")
                    )
                })
                .collect();
            format!("describe {}", gs.join(" "))
        }
        Response::DeleteGroups(rs) => {
            let rs: Vec<String> = rs.iter().map(|(g, e)| format!("{g}:{}", e.name())).collect();
            format!("delete {}", rs.join(" "))
        }
        Response::OffsetDelete(d) => {
            format!("offset-delete {} {}", d.error.name(), results(&d.partitions)).trim_end().to_owned()
        }
    }
}

// ---- request builders: group "g", consumer protocol "range" subscribed to topic "t" ----

/// A JoinGroup from `client` (member id `member`, empty on the first join), as a v3 client
/// sends it (no MEMBER_ID_REQUIRED round trip); `.v4()` asks for that.
pub(super) fn join(client: &str, member: &str) -> JoinGroup {
    JoinGroup {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: client.into(),
        client_host: "/10.0.0.1".into(),
        protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
        protocols: vec![Protocol { name: "range".into(), metadata: encode_subscription(&["t"]) }],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

impl JoinGroup {
    pub(super) fn v4(mut self) -> Self {
        self.require_known_member_id = true;
        self
    }
    pub(super) fn group(mut self, g: &str) -> Self {
        self.group_id = g.into();
        self
    }
    pub(super) fn instance(mut self, i: &str) -> Self {
        self.group_instance_id = Some(i.into());
        self
    }
    /// Protocols by name, each subscribing to `topics`.
    pub(super) fn protocols(mut self, names: &[&str], topics: &[&str]) -> Self {
        self.protocols =
            names.iter().map(|n| Protocol { name: (*n).into(), metadata: encode_subscription(topics) }).collect();
        self
    }
    pub(super) fn protocol_type(mut self, t: &str) -> Self {
        self.protocol_type = t.into();
        self
    }
    pub(super) fn session(mut self, ms: i32) -> Self {
        self.session_timeout_ms = ms;
        self
    }
    pub(super) fn rebalance(mut self, ms: i32) -> Self {
        self.rebalance_timeout_ms = ms;
        self
    }
    pub(super) fn skip_capable(mut self) -> Self {
        self.supports_skip_assignment = true;
        self
    }
}

pub(super) fn sync(member: &str, generation: i32) -> SyncGroup {
    SyncGroup {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }
}

impl SyncGroup {
    pub(super) fn assign(mut self, assignments: &[(&str, &str)]) -> Self {
        self.assignments = assignments
            .iter()
            .map(|(m, a)| MemberAssignment { member_id: (*m).into(), assignment: Bytes::copy_from_slice(a.as_bytes()) })
            .collect();
        self
    }
    pub(super) fn instance(mut self, i: &str) -> Self {
        self.group_instance_id = Some(i.into());
        self
    }
    pub(super) fn protocol(mut self, name: &str) -> Self {
        self.protocol_name = Some(name.into());
        self
    }
}

pub(super) fn heartbeat(member: &str, generation: i32) -> Heartbeat {
    Heartbeat { group_id: "g".into(), member_id: member.into(), group_instance_id: None, generation_id: generation }
}

impl Heartbeat {
    pub(super) fn instance(mut self, i: &str) -> Self {
        self.group_instance_id = Some(i.into());
        self
    }
}

/// LeaveGroup of members given as `member` or `member/instance`.
pub(super) fn leave(members: &[&str]) -> LeaveGroup {
    let members = members
        .iter()
        .map(|m| match m.split_once('/') {
            Some((id, instance)) => LeavingMember { member_id: id.into(), group_instance_id: Some(instance.into()) },
            None => LeavingMember { member_id: (*m).into(), group_instance_id: None },
        })
        .collect();
    LeaveGroup { group_id: "g".into(), members }
}

impl LeaveGroup {
    pub(super) fn group(mut self, g: &str) -> Self {
        self.group_id = g.into();
        self
    }
}

/// "t-0" -> t/0.
pub(super) fn part(s: &str) -> TopicPartition {
    let (t, p) = s.rsplit_once('-').expect("topic-partition");
    TopicPartition::new(t, p.parse().expect("partition"))
}

/// An OffsetCommit to `group` of `offsets` given as ("t-0", offset).
pub(super) fn commit(group: &str, member: &str, generation: i32, offsets: &[(&str, i64)]) -> OffsetCommit {
    OffsetCommit {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        offsets: offsets
            .iter()
            .map(|(p, o)| CommitOffset { partition: part(p), offset: *o, leader_epoch: -1, metadata: None })
            .collect(),
    }
}

/// OffsetFetch of `partitions` ("t-0") in `group`; `None` for all.
pub(super) fn fetch(group: &str, partitions: Option<&[&str]>) -> OffsetFetch {
    let partitions = partitions.map(|ps| ps.iter().map(|p| part(p)).collect());
    OffsetFetch { groups: vec![OffsetFetchGroup { group_id: group.into(), partitions }], require_stable: false }
}

impl OffsetFetch {
    /// With RequireStable.
    pub(super) fn stable(mut self) -> Self {
        self.require_stable = true;
        self
    }
}

pub(super) fn describe(groups: &[&str]) -> DescribeGroups {
    DescribeGroups { group_ids: groups.iter().map(|g| (*g).into()).collect() }
}

/// Form a stable group "g" from dynamic members `clients` joining at t=0 (with the default 3 s
/// initial delay, extended once if several joined). The leader (the first) assigns each member
/// `p<i>`. Member ids are `<client>-<i+1>`. Returns the time the group became stable.
pub(super) fn form(c: &mut GroupCoordinator, clients: &[&str]) -> i64 {
    form_with(c, clients.iter().map(|cl| join(cl, "")).collect()).0
}

/// Like [`form`], with the JoinGroups given; also returns the records persisted.
pub(super) fn form_with(c: &mut GroupCoordinator, joins: Vec<JoinGroup>) -> (i64, Vec<Record>) {
    let n = joins.len();
    for (i, j) in joins.into_iter().enumerate() {
        assert!(c.step(0, RequestId(100 + i as u64), j.into()).is_empty());
    }
    let mut now = 0;
    let mut effects = Vec::new();
    while effects.is_empty() {
        now += 3000;
        effects = c.tick(now);
    }
    assert_eq!(effects.len(), n, "{effects:?}");
    let ids: Vec<String> = effects
        .iter()
        .map(|e| match e {
            Effect::Respond { response: Response::JoinGroup(j), .. } => j.member_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let assignments: Vec<(String, String)> =
        ids.iter().enumerate().map(|(i, id)| (id.clone(), format!("p{i}"))).collect();
    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
    let mut leader = sync(&ids[0], 1).assign(&pairs);
    leader.group_instance_id = c.instance_of(&ids[0]);
    let effects = c.step(now, RequestId(200), leader.into());
    assert_eq!(effects.len(), 2, "{effects:?}");
    let mut persisted = persisted_records(effects);
    for (i, id) in ids.iter().enumerate().skip(1) {
        let mut s = sync(id, 1);
        s.group_instance_id = c.instance_of(id);
        let effects = c.step(now, RequestId(200 + i as u64), s.into());
        assert_eq!(effects.len(), 1, "{effects:?}");
        persisted.extend(persisted_records(effects));
    }
    (now, persisted)
}

impl GroupCoordinator {
    /// The instance id of a member of group "g".
    fn instance_of(&self, member: &str) -> Option<String> {
        self.groups["g"].members[member].instance_id.clone()
    }
}
