//! Consumer-group cases of `protocol_versions`: every case uses groups of its own (named after
//! the API and version), set up with the other group APIs at their highest versions, so cases do
//! not interfere.

use super::*;

impl Pv {
    pub(super) fn join_request(group_id: &str, member_id: &str, instance: Option<&str>, v: i16) -> JoinGroupRequest {
        let mut req = JoinGroupRequest::default()
            .with_group_id(group(group_id))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_member_id(s(member_id))
            .with_protocol_type(s(CONSUMER))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s(ASSIGNOR))
                .with_metadata(subscription())]);
        if v >= 1 {
            req = req.with_rebalance_timeout_ms(SESSION_TIMEOUT_MS);
        }
        if v >= 5 {
            req = req.with_group_instance_id(instance.map(s));
        }
        if v >= 8 {
            req = req.with_reason(Some(s("protocol-versions test")));
        }
        req
    }

    /// Join `group_id` as its only member at JoinGroup `v`: first with no member id (from v4 a
    /// dynamic member gets MEMBER_ID_REQUIRED and its id), then with it. The member leads the new
    /// generation and sees itself with its subscription.
    pub(super) async fn join(&self, group_id: &str, instance: Option<&str>, v: i16) -> Result<Member, String> {
        let mut member_id = String::new();
        if v >= 4 && instance.is_none() {
            let resp = self.call(Self::join_request(group_id, "", None, v), v).await?;
            ensure!(
                resp.error_code == MEMBER_ID_REQUIRED,
                "first join: error {}, expected {MEMBER_ID_REQUIRED}",
                resp.error_code
            );
            ensure!(!resp.member_id.is_empty(), "first join: no member id with MEMBER_ID_REQUIRED");
            ensure!(resp.generation_id == -1, "first join: generation {}", resp.generation_id);
            member_id = resp.member_id.to_string();
        }
        let resp = self.call(Self::join_request(group_id, &member_id, instance, v), v).await?;
        ensure!(resp.error_code == 0, "join: error {}", resp.error_code);
        ensure!(!resp.member_id.is_empty(), "join: no member id");
        ensure!(
            member_id.is_empty() || resp.member_id.as_str() == member_id,
            "join: member id {:?}, joined as {member_id:?}",
            resp.member_id
        );
        ensure!(resp.generation_id >= 1, "join: generation {}", resp.generation_id);
        ensure!(resp.leader == resp.member_id, "join: leader {:?}, member {:?}", resp.leader, resp.member_id);
        ensure!(resp.protocol_name.as_deref() == Some(ASSIGNOR), "join: protocol {:?}", resp.protocol_name);
        ensure!(
            v < 7 || resp.protocol_type.as_deref() == Some(CONSUMER),
            "join: protocol type {:?}",
            resp.protocol_type
        );
        ensure!(!resp.skip_assignment, "join: the only member is told to skip assignment");
        ensure!(resp.members.len() == 1, "join: the leader sees {} members", resp.members.len());
        let me = &resp.members[0];
        ensure!(me.member_id == resp.member_id, "join: the leader sees member {:?}", me.member_id);
        ensure!(me.metadata == subscription(), "join: member metadata {:?}", me.metadata);
        ensure!(
            v < 5 || me.group_instance_id.as_deref() == instance,
            "join: member instance id {:?}, expected {instance:?}",
            me.group_instance_id
        );
        Ok(Member {
            group: group_id.to_string(),
            id: resp.member_id.to_string(),
            instance: instance.map(str::to_string),
            generation: resp.generation_id,
        })
    }

    pub(super) fn sync_request(m: &Member, v: i16) -> SyncGroupRequest {
        let mut req = SyncGroupRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id(m.generation)
            .with_member_id(s(&m.id))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&m.id))
                .with_assignment(assignment())]);
        if v >= 3 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        if v >= 5 {
            req = req.with_protocol_type(Some(s(CONSUMER))).with_protocol_name(Some(s(ASSIGNOR)));
        }
        req
    }

    /// SyncGroup at `v` as the leader: the member gets back the assignment it gave itself.
    pub(super) async fn sync(&self, m: &Member, v: i16) -> Result<(), String> {
        let resp = self.call(Self::sync_request(m, v), v).await?;
        ensure!(resp.error_code == 0, "sync: error {}", resp.error_code);
        ensure!(resp.assignment == assignment(), "sync: assignment {:?}", resp.assignment);
        ensure!(
            v < 5
                || (resp.protocol_type.as_deref() == Some(CONSUMER) && resp.protocol_name.as_deref() == Some(ASSIGNOR)),
            "sync: protocol {:?}/{:?}",
            resp.protocol_type,
            resp.protocol_name
        );
        Ok(())
    }

    /// A member of a new Stable group `group_id`: joined and synced at the highest versions.
    pub(super) async fn stable(&self, group_id: &str, instance: Option<&str>) -> Result<Member, String> {
        let m = self.join(group_id, instance, self.max_version(ApiKey::JoinGroup)).await?;
        self.sync(&m, self.max_version(ApiKey::SyncGroup)).await?;
        Ok(m)
    }

    /// The error of a Heartbeat from `m` at `v`.
    pub(super) async fn heartbeat_error(&self, m: &Member, v: i16) -> Result<i16, String> {
        let mut req = HeartbeatRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id(m.generation)
            .with_member_id(s(&m.id));
        if v >= 3 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        Ok(self.call(req, v).await?.error_code)
    }

    /// The error of `m` leaving at LeaveGroup `v`: by member id before v3, as the only entry of
    /// the members list from v3 (by instance id alone when `m.id` is empty).
    pub(super) async fn leave_error(&self, m: &Member, v: i16) -> Result<i16, String> {
        let req = LeaveGroupRequest::default().with_group_id(group(&m.group));
        if v < 3 {
            return Ok(self.call(req.with_member_id(s(&m.id)), v).await?.error_code);
        }
        let mut who =
            MemberIdentity::default().with_member_id(s(&m.id)).with_group_instance_id(m.instance.as_deref().map(s));
        if v >= 5 {
            who = who.with_reason(Some(s("protocol-versions test")));
        }
        let resp = self.call(req.with_members(vec![who]), v).await?;
        if resp.error_code != 0 {
            ensure!(resp.members.is_empty(), "leave: error {} with members {:?}", resp.error_code, resp.members);
            return Ok(resp.error_code);
        }
        ensure!(resp.members.len() == 1, "leave: {} member answers", resp.members.len());
        let r = &resp.members[0];
        ensure!(r.member_id.as_str() == m.id, "leave: member {:?}, expected {:?}", r.member_id, m.id);
        ensure!(
            r.group_instance_id.as_deref() == m.instance.as_deref(),
            "leave: instance {:?}, expected {:?}",
            r.group_instance_id,
            m.instance
        );
        Ok(r.error_code)
    }

    /// Commit `offset` (with metadata `meta`) for one partition as `m`, at OffsetCommit `v`.
    /// Returns the partition's error.
    pub(super) async fn commit(
        &self,
        m: &Member,
        topic: &str,
        partition: i32,
        offset: i64,
        meta: &str,
        v: i16,
    ) -> Result<i16, String> {
        let mut p = OffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s(meta)));
        if v >= 6 {
            p = p.with_committed_leader_epoch(LEADER_EPOCH);
        }
        let mut req = OffsetCommitRequest::default()
            .with_group_id(group(&m.group))
            .with_generation_id_or_member_epoch(m.generation)
            .with_member_id(s(&m.id))
            .with_topics(vec![OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![p])]);
        if v >= 7 {
            req = req.with_group_instance_id(m.instance.as_deref().map(s));
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.topics.len() == 1 && resp.topics[0].name.0.as_str() == topic, "commit: topics {:?}", resp.topics);
        let parts = &resp.topics[0].partitions;
        ensure!(parts.len() == 1 && parts[0].partition_index == partition, "commit: partitions {parts:?}");
        Ok(parts[0].error_code)
    }

    /// Commit at the highest version, expecting success.
    pub(super) async fn commit_ok(&self, m: &Member, partition: i32, offset: i64, meta: &str) -> Result<(), String> {
        let e = self.commit(m, GROUP_TOPIC, partition, offset, meta, self.max_version(ApiKey::OffsetCommit)).await?;
        ensure!(e == 0, "committing {GROUP_TOPIC}-{partition} to {}: error {e}", m.group);
        Ok(())
    }

    pub(super) fn offset_fetch_request(group_ids: &[&str], partitions: Option<&[i32]>, v: i16) -> OffsetFetchRequest {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            req = req.with_groups(
                group_ids
                    .iter()
                    .map(|g| {
                        OffsetFetchRequestGroup::default().with_group_id(group(g)).with_topics(partitions.map(|ps| {
                            vec![OffsetFetchRequestTopics::default()
                                .with_name(name(GROUP_TOPIC))
                                .with_partition_indexes(ps.to_vec())]
                        }))
                    })
                    .collect(),
            );
        } else {
            assert_eq!(group_ids.len(), 1, "OffsetFetch v{v} asks about one group");
            req = req.with_group_id(group(group_ids[0])).with_topics(partitions.map(|ps| {
                vec![OffsetFetchRequestTopic::default()
                    .with_name(name(GROUP_TOPIC))
                    .with_partition_indexes(ps.to_vec())]
            }));
        }
        // What a read_committed consumer asks (there are no transactions to wait for).
        if v >= 7 {
            req = req.with_require_stable(true);
        }
        req
    }

    /// The committed offsets of `group_id` in [`GROUP_TOPIC`] (`partitions`, or all with a
    /// committed offset if `None`, v2+) at OffsetFetch `v`; any error fails.
    pub(super) async fn committed(
        &self,
        group_id: &str,
        partitions: Option<&[i32]>,
        v: i16,
    ) -> Result<Vec<Committed>, String> {
        let resp = self.call(Self::offset_fetch_request(&[group_id], partitions, v), v).await?;
        let read = |name: &TopicName, p: i32, offset: i64, epoch: i32, meta: &Option<StrBytes>, e: i16| {
            ensure!(name.0.as_str() == GROUP_TOPIC, "fetched topic {:?}", name.0);
            ensure!(e == 0, "partition {p}: error {e}");
            Ok(Committed::new(p, offset, epoch, meta.as_deref().unwrap_or("<null>")))
        };
        let mut out = Vec::new();
        if v >= 8 {
            ensure!(resp.groups.len() == 1, "{} groups in the answer", resp.groups.len());
            let g = &resp.groups[0];
            ensure!(g.group_id.0.as_str() == group_id, "group {:?}, expected {group_id:?}", g.group_id.0);
            ensure!(g.error_code == 0, "group error {}", g.error_code);
            for t in &g.topics {
                for p in &t.partitions {
                    let (i, o, ep, m, e) =
                        (p.partition_index, p.committed_offset, p.committed_leader_epoch, &p.metadata, p.error_code);
                    out.push(read(&t.name, i, o, ep, m, e)?);
                }
            }
        } else {
            ensure!(resp.error_code == 0, "error {}", resp.error_code);
            for t in &resp.topics {
                for p in &t.partitions {
                    let (i, o, ep, m, e) =
                        (p.partition_index, p.committed_offset, p.committed_leader_epoch, &p.metadata, p.error_code);
                    out.push(read(&t.name, i, o, ep, m, e)?);
                }
            }
        }
        Ok(out)
    }

    /// Committed offsets read at the highest OffsetFetch version.
    pub(super) async fn committed_now(&self, group_id: &str, partitions: &[i32]) -> Result<Vec<Committed>, String> {
        self.committed(group_id, Some(partitions), self.max_version(ApiKey::OffsetFetch)).await
    }

    /// One group described at the highest DescribeGroups version.
    pub(super) async fn describe_group(&self, group_id: &str) -> Result<DescribedGroup, String> {
        let req = DescribeGroupsRequest::default().with_groups(vec![group(group_id)]);
        let resp = self.call(req, self.max_version(ApiKey::DescribeGroups)).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| format!("{group_id} not described"))?;
        ensure!(g.error_code == 0, "describing {group_id}: error {}", g.error_code);
        Ok(g)
    }

    /// Every group at ListGroups `v` (only those in `states` from v4 if any are given).
    pub(super) async fn list(&self, states: &[&str], v: i16) -> Result<Vec<ListedGroup>, String> {
        let mut req = ListGroupsRequest::default();
        if v >= 4 {
            req = req.with_states_filter(states.iter().copied().map(s).collect());
        }
        let resp = self.call(req, v).await?;
        ensure!(resp.error_code == 0, "list: error {}", resp.error_code);
        Ok(resp.groups)
    }

    pub(super) async fn find_coordinator(&self, v: i16) -> Result<(), String> {
        let (host, port) = self.advertised_addr.rsplit_once(':').ok_or("advertised address without a port")?;
        let port: i32 = port.parse().map_err(|e| format!("advertised port {port:?}: {e}"))?;
        let is_here = |node: BrokerId, h: &StrBytes, p: i32| node.0 == self.node && h.as_str() == host && p == port;
        let keys = [format!("pv-coordinator-v{v}"), format!("pv-coordinator-other-v{v}")];
        let txn = format!("pv-transaction-v{v}");
        if v < 4 {
            // A group (key type 0; v0 has no key type and means a group).
            let resp = self.call(FindCoordinatorRequest::default().with_key(s(&keys[0])), v).await?;
            ensure!(resp.error_code == 0, "group: error {} ({:?})", resp.error_code, resp.error_message);
            ensure!(is_here(resp.node_id, &resp.host, resp.port), "group: coordinator {resp:?}");
            if v >= 1 {
                let req = FindCoordinatorRequest::default().with_key(s(&txn)).with_key_type(1);
                let resp = self.call(req, v).await?;
                ensure!(resp.error_code == 0, "transaction: error {} ({:?})", resp.error_code, resp.error_message);
                ensure!(is_here(resp.node_id, &resp.host, resp.port), "transaction: coordinator {resp:?}");
                let req = FindCoordinatorRequest::default().with_key(s(&txn)).with_key_type(2);
                let resp = self.call(req, v).await?;
                ensure!(resp.error_code == INVALID_REQUEST, "key type 2: error {}", resp.error_code);
            }
            return Ok(());
        }
        // v4+: keys in a batch, answered in order.
        let req = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(keys.iter().map(|k| s(k)).collect());
        let resp = self.call(req, v).await?;
        ensure!(
            resp.coordinators.len() == keys.len(),
            "group: {} coordinators for {} keys",
            resp.coordinators.len(),
            keys.len()
        );
        for (c, key) in resp.coordinators.iter().zip(&keys) {
            ensure!(c.key.as_str() == key, "group: key {:?}, expected {key:?}", c.key);
            ensure!(c.error_code == 0, "group {key}: error {} ({:?})", c.error_code, c.error_message);
            ensure!(is_here(c.node_id, &c.host, c.port), "group {key}: coordinator {c:?}");
        }
        let req = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s(&txn)]);
        let resp = self.call(req, v).await?;
        let c = resp.coordinators.first().ok_or("transaction: no coordinator")?;
        ensure!(c.key.as_str() == txn, "transaction: key {:?}", c.key);
        ensure!(c.error_code == 0, "transaction: error {} ({:?})", c.error_code, c.error_message);
        ensure!(is_here(c.node_id, &c.host, c.port), "transaction: coordinator {c:?}");
        Ok(())
    }

    pub(super) async fn join_group(&self, v: i16) -> Result<(), String> {
        // A dynamic member through a whole cycle: join here, then sync, heartbeat and leave.
        let group_id = format!("pv-join-v{v}");
        let m = self.join(&group_id, None, v).await?;
        ensure!(m.generation == 1, "first generation {}", m.generation);
        self.sync(&m, self.max_version(ApiKey::SyncGroup)).await?;
        let e = self.heartbeat_error(&m, self.max_version(ApiKey::Heartbeat)).await?;
        ensure!(e == 0, "heartbeat after joining: error {e}");

        // A member id the group does not know: UNKNOWN_MEMBER_ID.
        let resp = self.call(Self::join_request(&group_id, "pv-stranger", None, v), v).await?;
        ensure!(
            resp.error_code == UNKNOWN_MEMBER_ID,
            "stranger: error {}, expected {UNKNOWN_MEMBER_ID}",
            resp.error_code
        );

        let e = self.leave_error(&m, self.max_version(ApiKey::LeaveGroup)).await?;
        ensure!(e == 0, "leaving: error {e}");
        let g = self.describe_group(&group_id).await?;
        ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after leaving: {g:?}");

        // An empty group id: INVALID_GROUP_ID; a session timeout below the minimum: INVALID_SESSION_TIMEOUT.
        let resp = self.call(Self::join_request("", "", None, v), v).await?;
        ensure!(
            resp.error_code == INVALID_GROUP_ID,
            "empty group id: error {}, expected {INVALID_GROUP_ID}",
            resp.error_code
        );
        let short = Self::join_request(&format!("pv-join-short-v{v}"), "", None, v).with_session_timeout_ms(1_000);
        let resp = self.call(short, v).await?;
        ensure!(
            resp.error_code == INVALID_SESSION_TIMEOUT,
            "short session: error {}, expected {INVALID_SESSION_TIMEOUT}",
            resp.error_code
        );

        // v5+: a static member joins at once (no MEMBER_ID_REQUIRED) and is listed with its instance id.
        if v >= 5 {
            let instance = format!("pv-join-instance-v{v}");
            let m = self.join(&format!("pv-join-static-v{v}"), Some(&instance), v).await?;
            let e = self.leave_error(&m, self.max_version(ApiKey::LeaveGroup)).await?;
            ensure!(e == 0, "static member leaving: error {e}");
        }
        Ok(())
    }

    pub(super) async fn sync_group(&self, v: i16) -> Result<(), String> {
        let m = self.join(&format!("pv-sync-v{v}"), None, self.max_version(ApiKey::JoinGroup)).await?;
        // While the group waits for its leader's assignment, wrong requests are turned away.
        let cases = [
            ("stale generation", m.with_generation(m.generation - 1), ILLEGAL_GENERATION),
            ("unknown member", m.with_id("pv-stranger"), UNKNOWN_MEMBER_ID),
            ("empty group id", m.in_group(""), INVALID_GROUP_ID),
        ];
        for (what, bad, want) in cases {
            let resp = self.call(Self::sync_request(&bad, v), v).await?;
            ensure!(resp.error_code == want, "{what}: error {}, expected {want}", resp.error_code);
        }
        if v >= 5 {
            let req = Self::sync_request(&m, v).with_protocol_name(Some(s("roundrobin")));
            let resp = self.call(req, v).await?;
            ensure!(
                resp.error_code == INCONSISTENT_GROUP_PROTOCOL,
                "other protocol: error {}, expected {INCONSISTENT_GROUP_PROTOCOL}",
                resp.error_code
            );
        }
        self.sync(&m, v).await?;
        // Again once Stable: the member gets its assignment back.
        self.sync(&m, v).await?;
        let g = self.describe_group(&m.group).await?;
        ensure!(g.group_state.as_str() == "Stable", "after sync: state {}", g.group_state.as_str());
        let e = self.heartbeat_error(&m, self.max_version(ApiKey::Heartbeat)).await?;
        ensure!(e == 0, "heartbeat after sync: error {e}");
        Ok(())
    }

    pub(super) async fn heartbeat(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-heartbeat-v{v}"), None).await?;
        let cases = [
            ("member", m.clone(), 0),
            ("unknown member", m.with_id("pv-stranger"), UNKNOWN_MEMBER_ID),
            ("stale generation", m.with_generation(m.generation - 1), ILLEGAL_GENERATION),
            ("empty group id", m.in_group(""), INVALID_GROUP_ID),
        ];
        for (what, who, want) in cases {
            let e = self.heartbeat_error(&who, v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        Ok(())
    }

    pub(super) async fn leave_group(&self, v: i16) -> Result<(), String> {
        let m = self.stable(&format!("pv-leave-v{v}"), None).await?;
        let e = self.leave_error(&m, v).await?;
        ensure!(e == 0, "leaving: error {e}");
        let g = self.describe_group(&m.group).await?;
        ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after leaving: {g:?}");
        // Gone already: UNKNOWN_MEMBER_ID (the member's error from v3, the answer's before).
        let e = self.leave_error(&m, v).await?;
        ensure!(e == UNKNOWN_MEMBER_ID, "leaving again: error {e}, expected {UNKNOWN_MEMBER_ID}");
        let e = self.leave_error(&m.in_group(""), v).await?;
        ensure!(e == INVALID_GROUP_ID, "empty group id: error {e}, expected {INVALID_GROUP_ID}");

        // v3+: an administrator removes a static member by its instance id alone (KIP-345).
        if v >= 3 {
            let instance = format!("pv-leave-instance-v{v}");
            let m = self.stable(&format!("pv-leave-static-v{v}"), Some(&instance)).await?;
            let e = self.leave_error(&m.with_id(""), v).await?;
            ensure!(e == 0, "removing the static member: error {e}");
            let g = self.describe_group(&m.group).await?;
            ensure!(g.group_state.as_str() == "Empty" && g.members.is_empty(), "after removing: {g:?}");
        }
        Ok(())
    }

    pub(super) async fn offset_commit(&self, v: i16) -> Result<(), String> {
        let epoch = if v >= 6 { LEADER_EPOCH } else { -1 };
        let m = self.stable(&format!("pv-commit-v{v}"), None).await?;
        let (offset, meta) = (100 + v as i64, format!("commit-v{v}"));
        let e = self.commit(&m, GROUP_TOPIC, 0, offset, &meta, v).await?;
        ensure!(e == 0, "member: error {e}");
        let got = self.committed_now(&m.group, &[0]).await?;
        ensure!(got == [Committed::new(0, offset, epoch, &meta)], "member: committed {got:?}");

        let cases = [
            ("stale generation", m.with_generation(m.generation - 1), GROUP_TOPIC, 0, ILLEGAL_GENERATION),
            ("unknown member", m.with_id("pv-stranger"), GROUP_TOPIC, 0, UNKNOWN_MEMBER_ID),
            ("unknown topic", m.clone(), "pv-nowhere", 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("unknown partition", m.clone(), GROUP_TOPIC, GROUP_TOPIC_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION),
            // A group-managed commit to a group that does not exist (Kafka's answer too).
            ("no such group", m.in_group(&format!("pv-commit-none-v{v}")), GROUP_TOPIC, 0, ILLEGAL_GENERATION),
        ];
        for (what, who, topic, partition, want) in cases {
            let e = self.commit(&who, topic, partition, offset + 1, "rejected", v).await?;
            ensure!(e == want, "{what}: error {e}, expected {want}");
        }
        let got = self.committed_now(&m.group, &[0]).await?;
        ensure!(got == [Committed::new(0, offset, epoch, &meta)], "after rejected commits: {got:?}");

        // A simple consumer (no member id, generation -1) commits to a group without members.
        let simple = Member::simple(&format!("pv-commit-simple-v{v}"));
        let e = self.commit(&simple, GROUP_TOPIC, 1, offset, &meta, v).await?;
        ensure!(e == 0, "simple consumer: error {e}");
        let got = self.committed_now(&simple.group, &[1]).await?;
        ensure!(got == [Committed::new(1, offset, epoch, &meta)], "simple consumer: committed {got:?}");
        Ok(())
    }

    pub(super) async fn offset_fetch(&self, v: i16) -> Result<(), String> {
        let group_id = format!("pv-fetch-v{v}");
        let (offset, meta) = (200 + v as i64, format!("fetch-v{v}"));
        self.commit_ok(&Member::simple(&group_id), 0, offset, &meta).await?;
        // The leader epoch is in the answer from v5.
        let epoch = if v >= 5 { LEADER_EPOCH } else { -1 };
        let committed = Committed::new(0, offset, epoch, &meta);

        // Named partitions, one never committed.
        let got = self.committed(&group_id, Some(&[0, 1]), v).await?;
        ensure!(got == [committed.clone(), Committed::none(1)], "named partitions: {got:?}");
        // Every committed partition (null topics, v2+).
        if v >= 2 {
            let got = self.committed(&group_id, None, v).await?;
            ensure!(got == [committed.clone()], "all partitions: {got:?}");
        }
        // A group that does not exist: no offsets, no error.
        let got = self.committed(&format!("pv-fetch-none-v{v}"), Some(&[0]), v).await?;
        ensure!(got == [Committed::none(0)], "unknown group: {got:?}");

        // v8+: several groups at once, answered in order.
        if v >= 8 {
            let none = format!("pv-fetch-none-v{v}");
            let resp = self.call(Self::offset_fetch_request(&[&group_id, &none], Some(&[0]), v), v).await?;
            let answered: Vec<(&str, i16, Vec<i64>)> = resp
                .groups
                .iter()
                .map(|g| {
                    let offsets =
                        g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.committed_offset)).collect();
                    (g.group_id.0.as_str(), g.error_code, offsets)
                })
                .collect();
            let want = vec![(group_id.as_str(), 0, vec![offset]), (none.as_str(), 0, vec![-1])];
            ensure!(answered == want, "two groups: {answered:?}, expected {want:?}");
        }
        Ok(())
    }

    pub(super) async fn list_groups(&self, v: i16) -> Result<(), String> {
        let stable = self.stable(&format!("pv-list-v{v}"), None).await?;
        let empty = format!("pv-list-empty-v{v}");
        self.commit_ok(&Member::simple(&empty), 0, 1, "").await?;
        let find = |gs: &[ListedGroup], id: &str| gs.iter().find(|g| g.group_id.0.as_str() == id).cloned();

        let all = self.list(&[], v).await?;
        let g = find(&all, &stable.group).ok_or_else(|| format!("{} not listed", stable.group))?;
        ensure!(g.protocol_type.as_str() == CONSUMER, "{}: protocol type {:?}", stable.group, g.protocol_type);
        ensure!(v < 4 || g.group_state.as_str() == "Stable", "{}: state {:?}", stable.group, g.group_state);
        // A group that only stores offsets: listed, without protocol type.
        let g = find(&all, &empty).ok_or_else(|| format!("{empty} not listed"))?;
        ensure!(g.protocol_type.is_empty(), "{empty}: protocol type {:?}", g.protocol_type);
        ensure!(v < 4 || g.group_state.as_str() == "Empty", "{empty}: state {:?}", g.group_state);

        // v4+: filtered by state.
        if v >= 4 {
            let listed = self.list(&["Stable"], v).await?;
            ensure!(find(&listed, &stable.group).is_some(), "Stable: {} not listed", stable.group);
            ensure!(find(&listed, &empty).is_none(), "Stable: {empty} listed");
            ensure!(listed.iter().all(|g| g.group_state.as_str() == "Stable"), "Stable: {listed:?}");
            let listed = self.list(&["Empty", "Dead"], v).await?;
            ensure!(find(&listed, &stable.group).is_none(), "Empty: {} listed", stable.group);
            ensure!(find(&listed, &empty).is_some(), "Empty: {empty} not listed");
        }
        Ok(())
    }

    pub(super) async fn describe_groups(&self, v: i16) -> Result<(), String> {
        // From v4 members show their instance id: make this one static.
        let instance = (v >= 4).then(|| format!("pv-describe-instance-v{v}"));
        let m = self.stable(&format!("pv-describe-v{v}"), instance.as_deref()).await?;
        let none = format!("pv-describe-none-v{v}");
        let resp =
            self.call(DescribeGroupsRequest::default().with_groups(vec![group(&m.group), group(&none)]), v).await?;
        ensure!(resp.groups.len() == 2, "{} groups described", resp.groups.len());

        let g = &resp.groups[0];
        ensure!(g.group_id.0.as_str() == m.group, "first group {:?}", g.group_id.0);
        ensure!(g.error_code == 0, "error {}", g.error_code);
        ensure!(g.group_state.as_str() == "Stable", "state {:?}", g.group_state);
        ensure!(g.protocol_type.as_str() == CONSUMER, "protocol type {:?}", g.protocol_type);
        ensure!(g.protocol_data.as_str() == ASSIGNOR, "protocol {:?}", g.protocol_data);
        // Not asked for (and not computed): Kafka's "not requested" marker.
        ensure!(v < 3 || g.authorized_operations == i32::MIN, "authorized operations {}", g.authorized_operations);
        ensure!(g.members.len() == 1, "{} members", g.members.len());
        let member = &g.members[0];
        ensure!(member.member_id.as_str() == m.id, "member {:?}, expected {:?}", member.member_id, m.id);
        ensure!(
            member.group_instance_id.as_deref() == instance.as_deref(),
            "instance id {:?}",
            member.group_instance_id
        );
        ensure!(member.client_id.as_str() == CLIENT_ID, "client id {:?}", member.client_id);
        ensure!(member.client_host.as_str() == "/127.0.0.1", "client host {:?}", member.client_host);
        ensure!(member.member_metadata == subscription(), "metadata {:?}", member.member_metadata);
        ensure!(member.member_assignment == assignment(), "assignment {:?}", member.member_assignment);

        // A group that does not exist: Dead, without error (as Kafka answers before v6).
        let g = &resp.groups[1];
        ensure!(g.group_id.0.as_str() == none, "second group {:?}", g.group_id.0);
        ensure!(g.error_code == 0 && g.group_state.as_str() == "Dead" && g.members.is_empty(), "unknown group: {g:?}");
        Ok(())
    }

    pub(super) async fn delete_groups(&self, v: i16) -> Result<(), String> {
        // Empty groups: one that only stores offsets, one whose member left.
        let offsets_only = format!("pv-delete-offsets-v{v}");
        self.commit_ok(&Member::simple(&offsets_only), 0, 5, "").await?;
        let left = self.stable(&format!("pv-delete-left-v{v}"), None).await?;
        self.commit_ok(&left, 1, 6, "").await?;
        let e = self.leave_error(&left, self.max_version(ApiKey::LeaveGroup)).await?;
        ensure!(e == 0, "leaving {}: error {e}", left.group);
        let busy = self.stable(&format!("pv-delete-busy-v{v}"), None).await?;
        let none = format!("pv-delete-none-v{v}");

        let ids = [&offsets_only, &left.group, &busy.group, &none];
        let resp = self
            .call(DeleteGroupsRequest::default().with_groups_names(ids.iter().map(|g| group(g)).collect()), v)
            .await?;
        let got: Vec<(&str, i16)> = resp.results.iter().map(|r| (r.group_id.0.as_str(), r.error_code)).collect();
        let want = vec![
            (ids[0].as_str(), 0),
            (ids[1].as_str(), 0),
            (ids[2].as_str(), NON_EMPTY_GROUP),
            (ids[3].as_str(), GROUP_ID_NOT_FOUND),
        ];
        ensure!(got == want, "results {got:?}, expected {want:?}");

        // The deleted groups are gone with their offsets; the busy one is untouched.
        let listed = self.list(&[], self.max_version(ApiKey::ListGroups)).await?;
        for id in [&offsets_only, &left.group] {
            ensure!(!listed.iter().any(|g| g.group_id.0.as_str() == id.as_str()), "{id} still listed");
        }
        let got = self.committed_now(&offsets_only, &[0]).await?;
        ensure!(got == [Committed::none(0)], "{offsets_only}: offsets left {got:?}");
        let got = self.committed_now(&left.group, &[1]).await?;
        ensure!(got == [Committed::none(1)], "{}: offsets left {got:?}", left.group);
        let g = self.describe_group(&busy.group).await?;
        ensure!(g.group_state.as_str() == "Stable" && g.members.len() == 1, "{}: {g:?}", busy.group);
        Ok(())
    }

    pub(super) async fn offset_delete(&self, v: i16) -> Result<(), String> {
        let request = |group_id: &str, topics: &[(&str, i32)]| {
            OffsetDeleteRequest::default().with_group_id(group(group_id)).with_topics(
                topics
                    .iter()
                    .map(|(t, p)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(name(t))
                            .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(*p)])
                    })
                    .collect(),
            )
        };
        let results = |resp: &OffsetDeleteResponse| -> Vec<(String, i32, i16)> {
            resp.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.error_code)))
                .collect()
        };

        // An empty group: the named offset goes, the other stays; an unknown topic is answered as such.
        let group_id = format!("pv-offset-delete-v{v}");
        let simple = Member::simple(&group_id);
        self.commit_ok(&simple, 0, 10, "zero").await?;
        self.commit_ok(&simple, 1, 11, "one").await?;
        let resp = self.call(request(&group_id, &[(GROUP_TOPIC, 0), ("pv-nowhere", 0)]), v).await?;
        ensure!(resp.error_code == 0, "error {}", resp.error_code);
        let got = results(&resp);
        let want = vec![(GROUP_TOPIC.to_string(), 0, 0), ("pv-nowhere".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)];
        ensure!(got == want, "results {got:?}, expected {want:?}");
        let epoch = if self.max_version(ApiKey::OffsetCommit) >= 6 { LEADER_EPOCH } else { -1 };
        let got = self.committed_now(&group_id, &[0, 1]).await?;
        ensure!(got == [Committed::none(0), Committed::new(1, 11, epoch, "one")], "offsets after delete: {got:?}");

        // A consumer group subscribed to the topic keeps its offsets.
        let m = self.stable(&format!("pv-offset-delete-busy-v{v}"), None).await?;
        self.commit_ok(&m, 0, 12, "").await?;
        let resp = self.call(request(&m.group, &[(GROUP_TOPIC, 0)]), v).await?;
        ensure!(resp.error_code == 0, "subscribed: error {}", resp.error_code);
        let got = results(&resp);
        ensure!(got == [(GROUP_TOPIC.to_string(), 0, GROUP_SUBSCRIBED_TO_TOPIC)], "subscribed: results {got:?}");

        for (what, id, want) in [
            ("no such group", format!("pv-offset-delete-none-v{v}"), GROUP_ID_NOT_FOUND),
            ("empty group id", String::new(), INVALID_GROUP_ID),
        ] {
            let resp = self.call(request(&id, &[(GROUP_TOPIC, 0)]), v).await?;
            ensure!(resp.error_code == want, "{what}: error {}, expected {want}", resp.error_code);
            ensure!(resp.topics.is_empty(), "{what}: topics {:?}", resp.topics);
        }
        Ok(())
    }
}
