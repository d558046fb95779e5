//! A task's input queues, one per partition: records wait here between the consumer's poll and
//! their processing, so the task can take, across its partitions, the record with the smallest
//! timestamp next (Kafka Streams' `PartitionGroup`). That keeps stream time, windows and joins
//! of co-partitioned inputs in event-time order even when one input is fetched ahead of another.
//!
//! `max.task.idle.ms`: when some of a task's partitions have nothing buffered, the task may wait
//! this long for them before going on without (0, the default: it never waits).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::records::ConsumerRecord;

/// One buffered record and the timestamp its extractor gave it (negative: skip it).
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) timestamp: i64,
    pub(crate) record: ConsumerRecord,
}

#[derive(Debug)]
struct Queue {
    topic: Arc<str>,
    partition: i32,
    records: VecDeque<Queued>,
    /// The largest timestamp extracted on this partition (`-1` before the first).
    time: i64,
}

/// A task's queues.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueues {
    queues: Vec<Queue>,
    /// How many partitions the task reads (for `max.task.idle.ms`).
    expected: usize,
    /// Since when the task has had data on some partitions but not all.
    idle_since: Option<Instant>,
}

impl PartitionQueues {
    /// Queues for a task reading `expected` partitions.
    pub(crate) fn new(expected: usize) -> Self {
        Self { expected, ..Self::default() }
    }

    fn find(&self, topic: &str, partition: i32) -> Option<usize> {
        self.queues.iter().position(|q| q.partition == partition && &*q.topic == topic)
    }

    /// The partition's time so far (`-1` before its first record).
    pub(crate) fn partition_time(&self, topic: &str, partition: i32) -> i64 {
        self.find(topic, partition).map_or(-1, |i| self.queues[i].time)
    }

    /// Buffer a record of `topic`-`partition` with its extracted timestamp.
    pub(crate) fn push(&mut self, topic: &Arc<str>, partition: i32, timestamp: i64, record: ConsumerRecord) {
        let i = match self.find(topic, partition) {
            Some(i) => i,
            None => {
                self.queues.push(Queue { topic: topic.clone(), partition, records: VecDeque::new(), time: -1 });
                self.queues.len() - 1
            }
        };
        let q = &mut self.queues[i];
        q.time = q.time.max(timestamp);
        q.records.push_back(Queued { timestamp, record });
    }

    /// Whether a record of `topic`-`partition` at `timestamp` may skip the queue: the task
    /// reads one partition and has nothing buffered, so nothing can come before it. Its time
    /// counts for the partition either way.
    pub(crate) fn bypass(&mut self, topic: &Arc<str>, partition: i32, timestamp: i64) -> bool {
        if self.expected > 1 || self.queues.iter().any(|q| !q.records.is_empty()) {
            return false;
        }
        match self.find(topic, partition) {
            Some(i) => self.queues[i].time = self.queues[i].time.max(timestamp),
            None => {
                self.queues.push(Queue { topic: topic.clone(), partition, records: VecDeque::new(), time: timestamp })
            }
        }
        true
    }

    /// The next record to process: a record to skip first, else the head with the smallest
    /// timestamp (the earliest queue on ties). `None` when nothing is buffered, or while the task
    /// waits (`idle`) for partitions with nothing buffered.
    pub(crate) fn next(&mut self, idle: Duration, now: Instant) -> Option<(Arc<str>, i32, Queued)> {
        let mut best: Option<(usize, i64)> = None;
        let mut empty = self.expected.saturating_sub(self.queues.len());
        for (i, q) in self.queues.iter().enumerate() {
            match q.records.front() {
                None => empty += 1,
                Some(r) if r.timestamp < 0 => {
                    best = Some((i, i64::MIN));
                    break;
                }
                Some(r) if best.is_none_or(|(_, t)| r.timestamp < t) => best = Some((i, r.timestamp)),
                Some(_) => {}
            }
        }
        let (i, ts) = best?;
        if empty > 0 && !idle.is_zero() && ts != i64::MIN {
            let since = *self.idle_since.get_or_insert(now);
            if now.duration_since(since) < idle {
                return None;
            }
        } else {
            self.idle_since = None;
        }
        let q = &mut self.queues[i];
        let r = q.records.pop_front().expect("a head was found");
        Some((q.topic.clone(), q.partition, r))
    }

    /// Records buffered for `topic`-`partition`.
    pub(crate) fn len_of(&self, topic: &str, partition: i32) -> usize {
        self.find(topic, partition).map_or(0, |i| self.queues[i].records.len())
    }

    /// Drop everything buffered (the positions are rewound).
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
        self.idle_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64) -> ConsumerRecord {
        ConsumerRecord { offset, timestamp: 0, key: None, value: None, headers: Vec::new() }
    }

    fn drain(q: &mut PartitionQueues) -> Vec<(String, i64)> {
        let now = Instant::now();
        std::iter::from_fn(|| q.next(Duration::ZERO, now)).map(|(t, _, r)| (t.to_string(), r.timestamp)).collect()
    }

    #[test]
    fn the_smallest_timestamp_across_partitions_goes_first() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut q = PartitionQueues::new(2);
        for (i, ts) in [10, 20, 30].into_iter().enumerate() {
            q.push(&a, 0, ts, rec(i as i64));
        }
        for (i, ts) in [5, 25, 26].into_iter().enumerate() {
            q.push(&b, 0, ts, rec(i as i64));
        }
        let got = drain(&mut q);
        let want: Vec<(String, i64)> = [("b", 5), ("a", 10), ("a", 20), ("b", 25), ("b", 26), ("a", 30)]
            .iter()
            .map(|(t, s)| (t.to_string(), *s))
            .collect();
        assert_eq!(got, want);
        assert_eq!(q.partition_time("a", 0), 30);
        assert_eq!(q.partition_time("c", 0), -1);
    }

    #[test]
    fn within_a_partition_order_is_kept_even_out_of_timestamp_order() {
        let a: Arc<str> = Arc::from("a");
        let mut q = PartitionQueues::new(1);
        for (i, ts) in [30, 10, 20].into_iter().enumerate() {
            q.push(&a, 0, ts, rec(i as i64));
        }
        assert_eq!(drain(&mut q).iter().map(|(_, t)| *t).collect::<Vec<_>>(), [30, 10, 20]);
        assert_eq!(q.partition_time("a", 0), 30);
    }

    #[test]
    fn a_single_partition_task_with_nothing_buffered_bypasses_its_queue() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut one = PartitionQueues::new(1);
        assert!(one.bypass(&a, 0, 5));
        assert_eq!(one.partition_time("a", 0), 5);
        one.push(&a, 0, 6, rec(1));
        assert!(!one.bypass(&a, 0, 7), "something is buffered: keep the order");
        let mut two = PartitionQueues::new(2);
        assert!(!two.bypass(&b, 0, 5), "two partitions: order by time");
    }

    #[test]
    fn records_to_skip_leave_at_once() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut q = PartitionQueues::new(2);
        q.push(&a, 0, 10, rec(0));
        q.push(&b, 0, -1, rec(0));
        assert_eq!(drain(&mut q), [("b".to_string(), -1), ("a".to_string(), 10)]);
    }

    #[test]
    fn a_task_may_wait_for_empty_partitions_up_to_max_task_idle() {
        let a: Arc<str> = Arc::from("a");
        let mut q = PartitionQueues::new(2);
        q.push(&a, 0, 10, rec(0));
        let t0 = Instant::now();
        let idle = Duration::from_millis(100);
        assert!(q.next(idle, t0).is_none(), "partition b has nothing yet: wait");
        assert!(q.next(idle, t0 + Duration::from_millis(50)).is_none());
        assert!(q.next(idle, t0 + Duration::from_millis(100)).is_some(), "waited long enough");
        q.push(&a, 0, 11, rec(1));
        assert!(q.next(Duration::ZERO, t0).is_some(), "max.task.idle.ms=0 never waits");
        assert_eq!(q.len_of("a", 0), 0);
        q.push(&a, 0, 12, rec(2));
        q.clear();
        assert!(q.next(Duration::ZERO, t0).is_none());
    }
}
