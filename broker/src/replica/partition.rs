//! One partition's replication role on this broker, without I/O.

use std::collections::BTreeMap;

use super::hw::{self, Progress};
use crate::cluster::image::PartitionInfo;

/// What this broker is for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not a replica (or the partition is unknown to the cluster).
    None,
    /// Follows `leader` at `epoch` (`leader` is -1 while the partition has none).
    Follower {
        /// The leader.
        leader: i32,
        /// Its leader epoch.
        epoch: i32,
    },
    /// Leads.
    Leader(Leading),
}

/// A leader's view of its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leading {
    /// Leader epoch.
    pub epoch: i32,
    /// Partition epoch of the state below (for AlterPartition).
    pub partition_epoch: i32,
    /// Committed ISR.
    pub isr: Vec<i32>,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// Each follower's progress.
    pub followers: BTreeMap<i32, Progress>,
    /// The log end offset when this leadership began.
    pub epoch_start: i64,
    /// An ISR change sent to the controller and not yet seen committed.
    pub pending_isr: Option<Vec<i32>>,
}

impl Leading {
    /// A new leadership of `p` by `me`, starting at log end `log_end`, at `now`.
    pub fn new(me: i32, p: &PartitionInfo, log_end: i64, now: i64) -> Self {
        Self {
            epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr.clone(),
            replicas: p.replicas.clone(),
            followers: p.replicas.iter().filter(|r| **r != me).map(|r| (*r, Progress::new(now))).collect(),
            epoch_start: log_end,
            pending_isr: None,
        }
    }

    /// Take a newer partition state of the same leadership (ISR or replicas changed).
    pub fn update(&mut self, me: i32, p: &PartitionInfo, now: i64) {
        if p.partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = p.partition_epoch;
        self.isr = p.isr.clone();
        self.replicas = p.replicas.clone();
        self.followers.retain(|r, _| p.replicas.contains(r));
        for r in p.replicas.iter().filter(|r| **r != me) {
            self.followers.entry(*r).or_insert_with(|| Progress::new(now));
        }
        // Whatever was pending is now either committed or superseded.
        self.pending_isr = None;
    }

    /// The ISR the high watermark must wait for: the committed one, plus members of a pending
    /// expansion (waiting for more never hurts; waiting for fewer than committed would).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            isr.extend(p.iter().filter(|r| !self.isr.contains(r)));
        }
        isr
    }

    /// The high watermark given the leader's own log end and the current one.
    pub fn high_watermark(&self, me: i32, log_end: i64, current: i64) -> i64 {
        let ends: Vec<i64> = self
            .maximal_isr()
            .iter()
            .map(|r| if *r == me { log_end } else { self.followers.get(r).map(|p| p.log_end).unwrap_or(-1) })
            .collect();
        hw::high_watermark(&ends, current)
    }

    /// An ISR change to propose now, if one is due and none is in flight; marks it pending.
    pub fn isr_change(&mut self, me: i32, now: i64, lag_ms: i64, high_watermark: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let followers: Vec<(i32, Progress)> = self.followers.iter().map(|(r, p)| (*r, *p)).collect();
        let next = hw::isr_update(me, &self.isr, &followers, now, lag_ms, high_watermark, self.epoch_start)?;
        self.pending_isr = Some(next.clone());
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(isr: &[i32], partition_epoch: i32) -> PartitionInfo {
        PartitionInfo {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: 4,
            partition_epoch,
            target_replicas: None,
            adding_replicas: Vec::new(),
        }
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut l = Leading::new(1, &info(&[1, 2, 3], 0), 10, 0);
        assert_eq!(l.high_watermark(1, 20, 10), 10, "followers not heard from hold it");
        l.followers.get_mut(&2).unwrap().fetched(15, 1, 20);
        l.followers.get_mut(&3).unwrap().fetched(18, 1, 20);
        assert_eq!(l.high_watermark(1, 20, 10), 15);
        // Broker 2 leaves the ISR: the watermark follows 3 and the leader.
        l.update(1, &info(&[1, 3], 1), 2);
        assert_eq!(l.high_watermark(1, 20, 15), 18);
    }

    #[test]
    fn a_pending_expansion_counts_a_pending_shrink_does_not() {
        let mut l = Leading::new(1, &info(&[1, 3], 0), 0, 0);
        l.followers.get_mut(&3).unwrap().fetched(20, 1, 20);
        l.followers.get_mut(&2).unwrap().fetched(20, 1, 20);
        assert_eq!(l.isr_change(1, 2, 1000, 20), Some(vec![1, 2, 3]));
        assert_eq!(l.isr_change(1, 2, 1000, 20), None, "one change in flight at a time");
        l.followers.get_mut(&2).unwrap().fetched(19, 3, 30);
        assert_eq!(l.high_watermark(1, 30, 19), 19);
        l.update(1, &info(&[1, 2, 3], 1), 4);
        assert!(l.pending_isr.is_none());
        // Broker 2 stops fetching: it ages out, but until the controller commits that, the high
        // watermark still waits for it.
        l.followers.get_mut(&3).unwrap().fetched(30, 5_000, 30);
        assert_eq!(l.isr_change(1, 5_000, 1000, 19), Some(vec![1, 3]));
        assert_eq!(l.high_watermark(1, 30, 19), 19);
        l.update(1, &info(&[1, 3], 2), 5_001);
        assert_eq!(l.high_watermark(1, 30, 19), 30);
    }
}
