//! What stream threads tell the group leader and what it answers, carried in the consumer
//! protocol's `user_data` (Rill's own layout: a group of Rill instances, not of Java ones).
//!
//! Subscription, version 1: `u16 version`, `str process_id`, `str host` (empty: none), then the
//! task lists `active`, `standby` and `on_disk` (tasks with local state; each with the sum of its
//! stores' changelog checkpoints, `-1` when unknown). Assignment, version 1: `u16 version`, the
//! member's `active` and `standby` tasks, then per host its active and standby tasks. Strings are
//! `u16` length + UTF-8; lists `u32` count; a task is `u32 subtopology, i32 partition`; all
//! big-endian.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::streams::task::TaskId;

/// The layout version written.
pub const VERSION: u16 = 1;

/// What a member tells the leader in its subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The instance (process) the member's thread belongs to: threads of one instance share it.
    pub process_id: String,
    /// `application.server` of the instance, if set.
    pub host: Option<String>,
    /// Tasks the thread runs.
    pub active: BTreeSet<TaskId>,
    /// Standby tasks the thread keeps.
    pub standby: BTreeSet<TaskId>,
    /// Tasks the instance has local state for: task -> sum of its stores' checkpoints (`-1`:
    /// unknown).
    pub on_disk: BTreeMap<TaskId, i64>,
}

/// Active and standby tasks of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTasks {
    /// Tasks it runs.
    pub active: BTreeSet<TaskId>,
    /// Tasks it keeps standby replicas of.
    pub standby: BTreeSet<TaskId>,
}

/// What the leader tells a member in its assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentInfo {
    /// Tasks the member runs.
    pub active: BTreeSet<TaskId>,
    /// Standby tasks the member keeps.
    pub standby: BTreeSet<TaskId>,
    /// Every instance with `application.server` set: its tasks.
    pub hosts: BTreeMap<String, HostTasks>,
}

/// A `user_data` this version cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "streams assignment data: {}", self.0)
    }
}

impl SubscriptionInfo {
    /// Encode.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u16(VERSION);
        put_str(&mut b, &self.process_id);
        put_str(&mut b, self.host.as_deref().unwrap_or(""));
        put_tasks(&mut b, &self.active);
        put_tasks(&mut b, &self.standby);
        b.put_u32(self.on_disk.len() as u32);
        for (t, sum) in &self.on_disk {
            put_task(&mut b, t);
            b.put_i64(*sum);
        }
        b.freeze()
    }

    /// Decode.
    pub fn decode(mut b: &[u8]) -> Result<Self, DecodeError> {
        let b = &mut b;
        version(b)?;
        let process_id = get_str(b)?;
        let host = Some(get_str(b)?).filter(|h| !h.is_empty());
        let active = get_tasks(b)?;
        let standby = get_tasks(b)?;
        let n = get_u32(b)?;
        let mut on_disk = BTreeMap::new();
        for _ in 0..n {
            let t = get_task(b)?;
            need(b, 8)?;
            on_disk.insert(t, b.get_i64());
        }
        Ok(Self { process_id, host, active, standby, on_disk })
    }
}

impl AssignmentInfo {
    /// Encode.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u16(VERSION);
        put_tasks(&mut b, &self.active);
        put_tasks(&mut b, &self.standby);
        b.put_u32(self.hosts.len() as u32);
        for (host, tasks) in &self.hosts {
            put_str(&mut b, host);
            put_tasks(&mut b, &tasks.active);
            put_tasks(&mut b, &tasks.standby);
        }
        b.freeze()
    }

    /// Decode.
    pub fn decode(mut b: &[u8]) -> Result<Self, DecodeError> {
        let b = &mut b;
        version(b)?;
        let active = get_tasks(b)?;
        let standby = get_tasks(b)?;
        let n = get_u32(b)?;
        let mut hosts = BTreeMap::new();
        for _ in 0..n {
            let host = get_str(b)?;
            let tasks = HostTasks { active: get_tasks(b)?, standby: get_tasks(b)? };
            hosts.insert(host, tasks);
        }
        Ok(Self { active, standby, hosts })
    }
}

fn need(b: &[u8], n: usize) -> Result<(), DecodeError> {
    if b.len() < n {
        return Err(DecodeError(format!("truncated: {n} bytes wanted, {} left", b.len())));
    }
    Ok(())
}

fn version(b: &mut &[u8]) -> Result<(), DecodeError> {
    need(b, 2)?;
    match b.get_u16() {
        VERSION => Ok(()),
        v => Err(DecodeError(format!("version {v} is not supported (this build reads {VERSION})"))),
    }
}

fn get_u32(b: &mut &[u8]) -> Result<u32, DecodeError> {
    need(b, 4)?;
    Ok(b.get_u32())
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u16(s.len() as u16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut &[u8]) -> Result<String, DecodeError> {
    need(b, 2)?;
    let n = b.get_u16() as usize;
    need(b, n)?;
    let s = std::str::from_utf8(&b[..n]).map_err(|e| DecodeError(format!("a string is not UTF-8: {e}")))?.to_string();
    b.advance(n);
    Ok(s)
}

fn put_task(b: &mut BytesMut, t: &TaskId) {
    b.put_u32(t.subtopology);
    b.put_i32(t.partition);
}

fn get_task(b: &mut &[u8]) -> Result<TaskId, DecodeError> {
    need(b, 8)?;
    Ok(TaskId { subtopology: b.get_u32(), partition: b.get_i32() })
}

fn put_tasks(b: &mut BytesMut, tasks: &BTreeSet<TaskId>) {
    b.put_u32(tasks.len() as u32);
    for t in tasks {
        put_task(b, t);
    }
}

fn get_tasks(b: &mut &[u8]) -> Result<BTreeSet<TaskId>, DecodeError> {
    let n = get_u32(b)? as usize;
    need(b, n.saturating_mul(8))?;
    (0..n).map(|_| get_task(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32, p: i32) -> TaskId {
        TaskId { subtopology: s, partition: p }
    }

    #[test]
    fn subscription_round_trips() {
        let info = SubscriptionInfo {
            process_id: "p1".into(),
            host: Some("h:1".into()),
            active: [t(0, 1), t(1, 0)].into(),
            standby: [t(0, 2)].into(),
            on_disk: [(t(0, 2), 42), (t(0, 3), -1)].into(),
        };
        assert_eq!(SubscriptionInfo::decode(&info.encode()).unwrap(), info);
        let bare = SubscriptionInfo { process_id: "p".into(), ..Default::default() };
        assert_eq!(SubscriptionInfo::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn assignment_round_trips() {
        let info = AssignmentInfo {
            active: [t(0, 0)].into(),
            standby: [t(0, 1)].into(),
            hosts: [("a:1".to_string(), HostTasks { active: [t(0, 0)].into(), standby: [t(0, 1)].into() })].into(),
        };
        assert_eq!(AssignmentInfo::decode(&info.encode()).unwrap(), info);
    }

    #[test]
    fn bad_data_is_an_error_not_a_panic() {
        let full = SubscriptionInfo { process_id: "p".into(), active: [t(0, 0)].into(), ..Default::default() }.encode();
        for cut in 0..full.len() {
            assert!(SubscriptionInfo::decode(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(SubscriptionInfo::decode(&[0, 9]).unwrap_err().0.contains("version 9"));
        // A count claiming more tasks than there are bytes is refused before allocating.
        assert!(AssignmentInfo::decode(&[0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
