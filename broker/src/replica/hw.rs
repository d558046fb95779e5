//! The arithmetic of replication, as pure functions with their tables of cases.

/// A follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Its log end offset (the offset it last fetched from); -1 until it fetches.
    pub log_end: i64,
    /// When it last fetched (ms).
    pub last_fetch_ms: i64,
    /// The leader's log end offset at that fetch.
    pub leader_end_at_last_fetch: i64,
    /// The last time it was caught up (ms): see [`caught_up_at`].
    pub caught_up_ms: i64,
}

impl Progress {
    /// A follower not heard from yet, counted as caught up at `now` (a new leader gives every
    /// follower one full lag time, as Kafka does).
    pub fn new(now: i64) -> Self {
        Self { log_end: -1, last_fetch_ms: now, leader_end_at_last_fetch: -1, caught_up_ms: now }
    }

    /// Record a fetch at `offset` at `now`, when the leader's log ends at `leader_end`.
    pub fn fetched(&mut self, offset: i64, now: i64, leader_end: i64) {
        self.caught_up_ms = caught_up_at(self, offset, now, leader_end);
        self.log_end = offset;
        self.last_fetch_ms = now;
        self.leader_end_at_last_fetch = leader_end;
    }
}

/// When a follower fetching at `offset` at `now` was last caught up (Kafka's
/// `lastCaughtUpTimeMs`):
///
/// | fetch offset reaches                               | caught up at          |
/// |----------------------------------------------------|-----------------------|
/// | the leader's end now                               | now                   |
/// | the leader's end as of the previous fetch          | the previous fetch    |
/// | neither                                            | unchanged             |
///
/// So a follower that keeps fetching but never catches up with a busy leader still ages out,
/// while one that reads everything there was at its previous fetch does not.
pub fn caught_up_at(p: &Progress, offset: i64, now: i64, leader_end: i64) -> i64 {
    if offset >= leader_end {
        now
    } else if p.leader_end_at_last_fetch >= 0 && offset >= p.leader_end_at_last_fetch {
        p.last_fetch_ms.max(p.caught_up_ms)
    } else {
        p.caught_up_ms
    }
}

/// The high watermark: the smallest log end offset among the ISR (the leader's own included).
/// A member not heard from yet (-1) holds it at `current`, which never moves backwards.
///
/// | ISR ends (leader first)  | current | high watermark |
/// |--------------------------|---------|----------------|
/// | [10]                     | 4       | 10             |
/// | [10, 7, 9]               | 4       | 7              |
/// | [10, -1]                 | 4       | 4              |
/// | [10, 3]                  | 4       | 4              |
pub fn high_watermark(isr_ends: &[i64], current: i64) -> i64 {
    match isr_ends.iter().copied().min() {
        Some(m) if m > current => m,
        _ => current,
    }
}

/// The ISR the leader should ask for, if it differs from `isr`: in-sync followers that have not
/// caught up for more than `lag_ms` leave; out-of-sync assigned followers whose log reaches the
/// high watermark (and the start of the leader's epoch, so they hold everything this leader
/// wrote) join. The leader always stays.
///
/// `followers`: (id, progress) of every assigned replica but the leader.
pub fn isr_update(
    leader: i32,
    isr: &[i32],
    followers: &[(i32, Progress)],
    now: i64,
    lag_ms: i64,
    high_watermark: i64,
    epoch_start: i64,
) -> Option<Vec<i32>> {
    let mut next: Vec<i32> = vec![leader];
    for (id, p) in followers {
        let in_sync = isr.contains(id);
        let keep = in_sync && now - p.caught_up_ms <= lag_ms;
        let join = !in_sync && p.log_end >= 0 && p.log_end >= high_watermark && p.log_end >= epoch_start;
        if keep || join {
            next.push(*id);
        }
    }
    let mut a = next.clone();
    let mut b = isr.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    (a != b).then_some(next)
}

/// Where a follower truncates after asking the leader for the end of its latest epoch
/// (OffsetForLeaderEpoch, KIP-101/KIP-279).
///
/// `asked`: the follower's latest epoch; `answer`: the leader's (epoch, end offset);
/// `own_end_for`: the follower's own end offset for an epoch (its OffsetForLeaderEpoch on
/// itself); `log_end`: the follower's log end.
///
/// | leader's answer                     | truncate to                                      |
/// |-------------------------------------|--------------------------------------------------|
/// | undefined (-1, -1)                  | nothing (keep the log end: the leader knows none) |
/// | same epoch, end e                   | min(e, log end)                                  |
/// | an older epoch e' with end e        | min(e, own end for e', log end)                  |
pub fn truncation_offset(asked: i32, answer: (i32, i64), own_end_for: impl Fn(i32) -> i64, log_end: i64) -> i64 {
    let (epoch, end) = answer;
    if epoch < 0 || end < 0 {
        return log_end;
    }
    if epoch == asked {
        end.min(log_end)
    } else {
        end.min(own_end_for(epoch)).min(log_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_watermark_table() {
        let cases: &[(&[i64], i64, i64)] =
            &[(&[10], 4, 10), (&[10, 7, 9], 4, 7), (&[10, -1], 4, 4), (&[10, 3], 4, 4), (&[], 4, 4)];
        for (ends, current, hw) in cases {
            assert_eq!(high_watermark(ends, *current), *hw, "{ends:?} {current}");
        }
    }

    #[test]
    fn caught_up_table() {
        let p = Progress { log_end: 5, last_fetch_ms: 100, leader_end_at_last_fetch: 8, caught_up_ms: 50 };
        // (fetch offset, now, leader end, caught up at)
        let cases = [(10, 200, 10, 200), (8, 200, 10, 100), (6, 200, 10, 50)];
        for (offset, now, end, want) in cases {
            assert_eq!(caught_up_at(&p, offset, now, end), want, "offset {offset}");
        }
    }

    #[test]
    fn isr_shrinks_and_grows() {
        let at = |log_end, caught_up_ms| Progress {
            log_end,
            last_fetch_ms: caught_up_ms,
            leader_end_at_last_fetch: log_end,
            caught_up_ms,
        };
        // (isr, followers, hw, epoch start, expected)
        type Case<'a> = (&'a [i32], Vec<(i32, Progress)>, i64, i64, Option<Vec<i32>>);
        let now = 10_000;
        let cases: Vec<Case> = vec![
            (&[1, 2, 3], vec![(2, at(100, 9_500)), (3, at(100, 9_900))], 100, 0, None),
            (&[1, 2, 3], vec![(2, at(90, 5_000)), (3, at(100, 9_900))], 90, 0, Some(vec![1, 3])),
            (&[1, 3], vec![(2, at(100, 9_000)), (3, at(100, 9_900))], 100, 0, Some(vec![1, 2, 3])),
            (&[1, 3], vec![(2, at(99, 9_000)), (3, at(100, 9_900))], 100, 0, None),
            // Caught up with the high watermark but not with this leader's epoch: not yet.
            (&[1, 3], vec![(2, at(100, 9_000)), (3, at(120, 9_900))], 100, 110, None),
            (&[1, 3], vec![(2, at(-1, 9_000)), (3, at(0, 9_900))], 0, 0, None),
        ];
        for (isr, followers, hw, start, want) in cases {
            assert_eq!(isr_update(1, isr, &followers, now, 1_000, hw, start), want, "{isr:?} {followers:?}");
        }
    }

    #[test]
    fn truncation_table() {
        let own = |e: i32| match e {
            1 => 50,
            2 => 80,
            _ => 100,
        };
        // (asked, answer, expected)
        let cases = [(3, (-1, -1), 100), (3, (3, 90), 90), (3, (3, 120), 100), (3, (2, 70), 70), (3, (1, 60), 50)];
        for (asked, answer, want) in cases {
            assert_eq!(truncation_offset(asked, answer, own, 100), want, "{answer:?}");
        }
    }
}
