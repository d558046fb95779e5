//! Replication primitives through [`Log`]: the high watermark and what reads see below it, the
//! leader-epoch cache, follower appends of a leader's batches, and truncation.

use super::txn::{idem, recs};
use super::*;
use crate::log::producer_state::ProducerError;
use crate::log::{end_offset_for, ReadLimit, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE};

/// A leader-epoch cache: (epoch, start offset).
type Epochs<'a> = &'a [(i32, i64)];

/// Base offsets of the batches a read from `from` returns under `limit`.
fn bases(log: &Log, from: i64, limit: ReadLimit) -> Vec<i64> {
    let r = log.read_upto(from, u64::MAX, limit).unwrap();
    let Some(slice) = r.slice else { return Vec::new() };
    let data = slice.read_bytes().unwrap();
    batch::batches(&data).map(|b| b.unwrap().1.base_offset).collect()
}

/// (base offset, partition leader epoch) of every batch in the log.
fn batch_epochs(log: &Log) -> Vec<(i64, i32)> {
    read_all(log, u64::MAX)
        .iter()
        .map(|b| BatchHeader::parse(b).map(|h| (h.base_offset, h.partition_leader_epoch)).unwrap())
        .collect()
}

/// A log of `n` single-record batches, replicated (its high watermark managed) or not.
fn log_of(dir: &Path, n: usize, replicated: bool) -> Log {
    let (log, _) = open(dir, &config(&[]), true);
    log.set_replicated(replicated);
    for _ in 0..n {
        log.append(&recs(1), 0).unwrap();
    }
    log
}

#[test]
fn the_high_watermark_follows_the_end_when_unreplicated() {
    let dir = tempdir();
    let log = log_of(dir.path(), 3, false);
    assert_eq!(log.high_watermark(), 3);
    assert!(!log.set_high_watermark(1), "an unreplicated log ignores set_high_watermark");
    let r = log.read_upto(0, u64::MAX, ReadLimit::HighWatermark).unwrap();
    assert_eq!((r.high_watermark, r.last_stable_offset), (3, 3));
    assert_eq!(bases(&log, 0, ReadLimit::HighWatermark), vec![0, 1, 2]);
    log.truncate_to(2).unwrap();
    assert_eq!(log.high_watermark(), 2);
    // Switched on, it starts where it was; switched off, it jumps to the end.
    log.set_replicated(true);
    log.append(&recs(1), 0).unwrap();
    assert_eq!(log.high_watermark(), 2);
    log.set_replicated(false);
    assert_eq!(log.high_watermark(), 3);
}

/// (requested, moved, high watermark after) on a replicated log of 10 records.
#[test]
fn set_high_watermark_clamps_and_only_moves_forward() {
    let dir = tempdir();
    let log = log_of(dir.path(), 10, true);
    assert_eq!(log.high_watermark(), 0, "no checkpoint: a replicated log starts at its log start");
    let cases =
        [(4, true, 4), (4, false, 4), (3, false, 4), (-7, false, 4), (9, true, 9), (50, true, 10), (11, false, 10)];
    for (hw, moved, after) in cases {
        assert_eq!(log.set_high_watermark(hw), moved, "set_high_watermark({hw})");
        assert_eq!(log.high_watermark(), after, "after set_high_watermark({hw})");
    }
    // Records go (DeleteRecords, retention) only below the high watermark.
    let dir = tempdir();
    let log = log_of(dir.path(), 0, true);
    log.set_config(config(&[("segment.bytes", "200"), ("retention.bytes", "0")]));
    while log.segment_count() < 4 {
        log.append(&recs(2), 0).unwrap();
    }
    log.set_high_watermark(3);
    assert!(matches!(log.delete_records(4), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(log.delete_records(-1).unwrap(), 3, "-1 means the high watermark");
    let second = segment_bases(dir.path())[1];
    log.set_high_watermark(second);
    assert_eq!(log.apply_retention(0).unwrap(), 1, "only the segment below the high watermark goes");
    assert_eq!(log.log_start_offset(), second);
}

#[test]
fn the_high_watermark_is_checkpointed_and_reopened_clamped() {
    // (clean shutdown, records cut from the tail before reopening, high watermark after reopening)
    let cases = [(true, 0, 6), (false, 0, 6), (false, 3, 5)];
    for (clean, cut, want) in cases {
        let dir = tempdir();
        let cfg = config(&[]);
        let ctx = format!("clean={clean} cut={cut}");
        {
            let log = log_of(dir.path(), 8, true);
            assert!(log.set_high_watermark(6));
            if clean {
                log.close().unwrap();
            } else {
                log.flush_sealed().unwrap();
            }
            assert_eq!(checkpoint::read_i64(&dir.path().join(HIGH_WATERMARK_FILE)).unwrap(), Some(6), "{ctx}");
            if cut > 0 {
                log.truncate_to(8 - cut).unwrap();
                // The crash left the checkpoint above the end.
                checkpoint::write_i64(&dir.path().join(HIGH_WATERMARK_FILE), 6).unwrap();
            }
        }
        let (log, _) = open(dir.path(), &cfg, clean);
        assert_eq!(log.high_watermark(), log.log_end_offset(), "{ctx}: unreplicated, it follows the end");
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), want, "{ctx}");
    }
    // No checkpoint at all: a replicated log exposes nothing after a crash.
    let dir = tempdir();
    drop(log_of(dir.path(), 5, true));
    let (log, _) = open(dir.path(), &config(&[]), false);
    log.set_replicated(true);
    assert_eq!(log.high_watermark(), 0);
    assert!(log.read_upto(0, u64::MAX, ReadLimit::HighWatermark).unwrap().slice.is_none());
}

#[test]
fn consumers_read_below_the_high_watermark_and_followers_to_the_end() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &config(&[]), true);
    log.set_replicated(true);
    log.append(&recs(1), 0).unwrap(); // 0
    log.append(&idem(&recs(2), 1, 0, 0, true), 0).unwrap(); // 1-2: open transaction
    log.append(&recs(1), 0).unwrap(); // 3
    log.append(&recs(1), 0).unwrap(); // 4
                                      // (high watermark, what uncommitted reads see, what committed reads see, reported LSO)
    let cases: [(i64, &[i64], &[i64], i64); 4] =
        [(0, &[], &[], 0), (1, &[0], &[0], 1), (4, &[0, 1, 3], &[0], 1), (5, &[0, 1, 3, 4], &[0], 1)];
    for (hw, uncommitted, committed, lso) in cases {
        log.set_high_watermark(hw);
        assert_eq!(bases(&log, 0, ReadLimit::HighWatermark), uncommitted, "hw {hw}");
        assert_eq!(bases(&log, 0, ReadLimit::Committed), committed, "hw {hw}");
        assert_eq!(bases(&log, 0, ReadLimit::LogEnd), vec![0, 1, 3, 4], "hw {hw}: followers read to the end");
        let r = log.read_upto(0, u64::MAX, ReadLimit::LogEnd).unwrap();
        assert_eq!((r.high_watermark, r.last_stable_offset), (hw, lso), "hw {hw}");
        assert_eq!((log.last_stable_offset(), log.stable_offset_hint()), (lso, lso), "hw {hw}");
    }
    log.append_marker(1, 0, true, 0, 0).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 5, "the LSO is capped by the high watermark");
    log.set_high_watermark(6);
    assert_eq!((log.last_stable_offset(), log.stable_offset_hint()), (6, 6));
    // A consumer between the high watermark and the end gets nothing, not an error.
    log.append(&recs(1), 0).unwrap();
    assert!(log.read_upto(6, u64::MAX, ReadLimit::HighWatermark).unwrap().slice.is_none());
}

#[test]
fn begin_epoch_stamps_later_batches_and_is_kept() {
    let dir = tempdir();
    let cfg = config(&[]);
    {
        let log = log_of(dir.path(), 2, false);
        assert_eq!((log.latest_epoch(), log.last_fetched_epoch()), (Some(0), Some(0)));
        log.begin_epoch(3).unwrap();
        assert_eq!((log.latest_epoch(), log.last_fetched_epoch(), log.leader_epoch()), (Some(3), Some(0), 3));
        log.begin_epoch(3).unwrap();
        assert!(matches!(log.begin_epoch(2), Err(LogError::StaleEpoch { epoch: 2, latest: 3 })));
        log.append(&recs(2), 0).unwrap();
        assert_eq!(log.last_fetched_epoch(), Some(3));
        // An epoch with no batches is replaced by the next one starting at the same offset.
        log.begin_epoch(4).unwrap();
        log.begin_epoch(6).unwrap();
        log.append(&recs(1), 0).unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (3, 2), (6, 4)]);
        assert_eq!(batch_epochs(&log), vec![(0, 0), (1, 0), (2, 3), (4, 6)]);
    }
    let (log, _) = open(dir.path(), &cfg, false);
    assert_eq!(checkpoint::read_epochs(&dir.path().join(LEADER_EPOCH_FILE)).unwrap(), Some(log.leader_epochs()));
    assert_eq!(log.leader_epochs(), vec![(0, 0), (3, 2), (6, 4)]);
    log.append(&recs(1), 0).unwrap();
    assert_eq!(batch_epochs(&log).last(), Some(&(5, 6)));
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor` cases, on the cache [(1, 0), (3, 10), (6, 25)]
/// of a log ending at 40.
#[test]
fn end_offset_for_epoch_table() {
    let epochs = [(1, 0), (3, 10), (6, 25)];
    let cases = [
        (-1, (-1, -1)), // undefined
        (0, (0, 0)),    // below the earliest: the start of the earliest
        (1, (1, 10)),
        (2, (1, 10)), // not cached: the largest epoch below it
        (3, (3, 25)),
        (5, (3, 25)),
        (6, (6, 40)), // the latest: the log end
        (7, (-1, -1)),
    ];
    for (requested, want) in cases {
        assert_eq!(end_offset_for(&epochs, requested, 40), want, "epoch {requested}");
    }
    assert_eq!(end_offset_for(&[], 0, 40), (-1, -1), "empty cache");
    // Through a log.
    let dir = tempdir();
    let log = log_of(dir.path(), 2, false);
    log.begin_epoch(2).unwrap();
    log.append(&recs(3), 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), (0, 2));
    assert_eq!(log.end_offset_for_epoch(1), (0, 2));
    assert_eq!(log.end_offset_for_epoch(2), (2, 5));
    assert_eq!(log.end_offset_for_epoch(3), (-1, -1));
}

/// Every batch of `log`, as the stored bytes.
fn log_bytes(log: &Log) -> Vec<Bytes> {
    read_all(log, u64::MAX)
}

/// A leader log with idempotent writes, transactions that commit, abort and stay open, and two
/// leader epochs, in small segments.
fn busy_leader(dir: &Path, cfg: &LogConfig) -> Log {
    let (log, _) = open(dir, cfg, true);
    log.append(&recs(2), 0).unwrap();
    log.begin_epoch(2).unwrap();
    for i in 0..4 {
        log.append(&idem(&recs(2), 5, 0, i * 2, false), 0).unwrap();
    }
    log.append(&idem(&recs(2), 7, 0, 0, true), 0).unwrap();
    log.append(&idem(&recs(1), 8, 0, 0, true), 0).unwrap();
    log.append(&recs(1), 0).unwrap();
    log.append_marker(7, 0, false, 0, 0).unwrap();
    log.begin_epoch(4).unwrap();
    log.append_marker(8, 0, true, 0, 0).unwrap();
    log.append(&idem(&recs(3), 9, 0, 0, true), 0).unwrap(); // left open
    log.append(&recs(1), 0).unwrap();
    log
}

#[test]
fn a_follower_copies_a_leaders_log_byte_for_byte() {
    let cfg = config(&[("segment.bytes", "400"), ("message.timestamp.type", "LogAppendTime")]);
    let leader_dir = tempdir();
    let leader = busy_leader(leader_dir.path(), &cfg);
    let batches = log_bytes(&leader);
    // Fetched one batch at a time, and all at once.
    for chunk in [1, batches.len()] {
        let dir = tempdir();
        let (follower, _) = open(dir.path(), &cfg, true);
        for group in batches.chunks(chunk) {
            let info = follower.append_replicated(&group.concat(), 99).unwrap();
            assert_eq!(info.last_offset + 1, follower.log_end_offset(), "chunk {chunk}");
        }
        let check = |f: &Log, what: &str| {
            assert_eq!(log_bytes(f), batches, "{what}: stored bytes");
            assert_eq!(f.leader_epochs(), leader.leader_epochs(), "{what}: epoch cache");
            assert_eq!(f.last_stable_offset(), leader.last_stable_offset(), "{what}: LSO");
            assert_eq!(f.aborted_txns(0, i64::MAX), leader.aborted_txns(0, i64::MAX), "{what}: aborted");
            assert_eq!(f.producer_count(), leader.producer_count(), "{what}: producers");
            assert!(f.has_open_txn(9), "{what}: producer 9's transaction is open");
        };
        // Rolls are decided per append, as for producers: one large fetch lands in one segment.
        assert_eq!(follower.segment_count() > 2, chunk == 1, "chunk {chunk}: the follower rolled");
        check(&follower, &format!("chunk {chunk}"));
        drop(follower);
        // Producer state and aborted transactions rebuilt from the follower's own files.
        for e in fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "snapshot") {
                fs::remove_file(p).unwrap();
            }
        }
        let (follower, _) = open(dir.path(), &cfg, false);
        check(&follower, &format!("chunk {chunk}, reopened uncleanly without snapshots"));
    }
    assert_eq!(leader.leader_epochs(), vec![(0, 0), (2, 2), (4, 15)]);
}

#[test]
fn replicated_batches_must_not_overlap_the_log() {
    let leader_dir = tempdir();
    let leader = log_of(leader_dir.path(), 6, false);
    let batches = log_bytes(&leader);
    let dir = tempdir();
    let (follower, _) = open(dir.path(), &config(&[]), true);
    follower.append_replicated(&batches[..3].concat(), 0).unwrap();
    let refused = [
        (batches[2].clone(), 3, 2),                                       // already there
        ([batches[3].clone(), batches[3].clone()].concat().into(), 4, 3), // repeats itself
        ([batches[4].clone(), batches[3].clone()].concat().into(), 5, 3), // goes backwards
    ];
    for (records, expected, got) in refused {
        let err = follower.append_replicated(&records, 0).unwrap_err();
        assert!(matches!(err, LogError::NonContiguous { expected: e, got: g } if (e, g) == (expected, got)), "{err}");
        assert_eq!(follower.log_end_offset(), 3, "nothing was written");
    }
    let mut corrupt = batches[3].to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(follower.append_replicated(&corrupt, 0), Err(LogError::Batch(_))));
    // A gap, as compaction on the leader leaves one, is taken.
    follower.append_replicated(&batches[5], 0).unwrap();
    assert_eq!(follower.log_end_offset(), 6);
    assert_eq!(bases(&follower, 3, ReadLimit::LogEnd), vec![5]);
}

#[test]
fn truncation_drops_later_epochs_and_clamps_the_high_watermark() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "300")]);
    {
        let (log, _) = open(dir.path(), &cfg, true);
        log.set_replicated(true);
        for epoch in [0, 2, 5] {
            log.begin_epoch(epoch).unwrap();
            for _ in 0..2 {
                log.append(&recs(2), 0).unwrap();
            }
        }
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 8)]);
        log.set_high_watermark(11);
        // (truncate to, end after, epochs after, high watermark after)
        let cases: [(i64, i64, Epochs, i64); 4] = [
            (12, 12, &[(0, 0), (2, 4), (5, 8)], 11),
            (9, 8, &[(0, 0), (2, 4)], 8),
            (6, 6, &[(0, 0), (2, 4)], 6),
            (4, 4, &[(0, 0)], 4),
        ];
        for (to, end, epochs, hw) in cases {
            log.truncate_to(to).unwrap();
            assert_eq!(log.log_end_offset(), end, "truncate_to({to})");
            assert_eq!(log.leader_epochs(), epochs, "truncate_to({to})");
            assert_eq!(log.high_watermark(), hw, "truncate_to({to})");
            assert_eq!(log.last_fetched_epoch(), epochs.last().map(|e| e.0), "truncate_to({to})");
        }
        log.begin_epoch(7).unwrap();
        log.append(&recs(1), 0).unwrap();
        assert_eq!(batch_epochs(&log).last(), Some(&(4, 7)));
        log.close().unwrap();
    }
    let (log, _) = open(dir.path(), &cfg, true);
    log.set_replicated(true);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (7, 4)]);
    assert_eq!(log.high_watermark(), 4);
}

#[test]
fn truncating_below_the_first_segment_starts_the_log_afresh() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "300")]);
    let log = log_of(dir.path(), 0, true);
    log.set_config(cfg.clone());
    while log.segment_count() < 4 {
        log.append(&recs(2), 0).unwrap();
    }
    log.set_high_watermark(i64::MAX);
    let third = segment_bases(dir.path())[2];
    log.delete_records(third + 1).unwrap();
    let first = segment_bases(dir.path())[0];
    assert_eq!(first, third);
    log.truncate_to(first - 2).unwrap();
    let at = first - 2;
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.high_watermark()), (at, at, at));
    assert_segment_files(dir.path(), &[at], "after truncating below the first segment");
    assert!(log.leader_epochs().is_empty());
    let info = log.append(&recs(1), 0).unwrap();
    assert_eq!(info.base_offset, at);
    // Inside the first segment but below the log start: the log start comes down too.
    log.append(&recs(1), 0).unwrap();
    log.set_high_watermark(i64::MAX);
    log.delete_records(at + 2).unwrap();
    log.truncate_to(at + 1).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (at + 1, at + 1));
}

#[test]
fn truncate_fully_and_start_at_survives_a_reopen() {
    for clean in [true, false] {
        let dir = tempdir();
        let cfg = config(&[("segment.bytes", "300")]);
        {
            let log = busy_leader(dir.path(), &cfg);
            log.set_replicated(true);
            log.set_high_watermark(10);
            log.truncate_fully_and_start_at(1000).unwrap();
            if clean {
                log.close().unwrap();
            }
        }
        let (log, _) = open(dir.path(), &cfg, clean);
        log.set_replicated(true);
        let ctx = format!("clean={clean}");
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset(), log.high_watermark(), log.last_stable_offset()),
            (1000, 1000, 1000, 1000),
            "{ctx}"
        );
        assert_segment_files(dir.path(), &[1000], &ctx);
        assert!(log.leader_epochs().is_empty(), "{ctx}");
        assert_eq!((log.producer_count(), log.aborted_txns(0, i64::MAX).len()), (0, 0), "{ctx}");
        // The follower goes on from there.
        let leader_dir = tempdir();
        let (leader, _) = open(leader_dir.path(), &cfg, true);
        leader.truncate_fully_and_start_at(1000).unwrap();
        leader.begin_epoch(9).unwrap();
        leader.append(&idem(&recs(2), 5, 0, 0, false), 0).unwrap();
        log.append_replicated(&log_bytes(&leader).concat(), 0).unwrap();
        assert_eq!((log.log_end_offset(), log.leader_epochs()), (1002, vec![(9, 1000)]), "{ctx}");
    }
}

/// Each step of `truncate_fully_and_start_at` done by hand, then a crash: the reopened log is
/// consistent (its start within its segments, everything left readable).
#[test]
fn truncate_fully_and_start_at_is_crash_safe_at_every_step() {
    let cfg = config(&[("segment.bytes", "300")]);
    for steps in 0..=4 {
        let dir = tempdir();
        let p = dir.path();
        drop(busy_leader(p, &cfg));
        let bases = segment_bases(p);
        if steps >= 1 {
            checkpoint::write_i64(&p.join(LOG_START_FILE), 5).unwrap();
        }
        if steps >= 2 {
            checkpoint::write_epochs(&p.join(LEADER_EPOCH_FILE), &[]).unwrap();
        }
        if steps >= 3 {
            for e in fs::read_dir(p).unwrap() {
                let path = e.unwrap().path();
                if path.extension().is_some_and(|x| x == "snapshot") {
                    fs::remove_file(path).unwrap();
                }
            }
            crate::log::segment::delete_segment_files(p, bases[0]).unwrap();
        }
        if steps >= 4 {
            for &b in &bases[1..] {
                crate::log::segment::delete_segment_files(p, b).unwrap();
            }
        }
        let (log, _) = open(p, &cfg, false);
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let ctx = format!("crash after step {steps}");
        let first = *segment_bases(p).first().unwrap();
        assert!(first <= start && start <= end, "{ctx}: start {start}, end {end}, first segment {first}");
        let served: i64 =
            read_all(&log, u64::MAX).iter().map(|b| BatchHeader::parse(b).unwrap().next_offset()).max().unwrap_or(end);
        assert_eq!(served, end, "{ctx}: the log reads to its end");
        if steps == 4 {
            assert_eq!((start, end), (5, 5), "{ctx}");
        }
        log.append(&recs(1), 0).unwrap();
    }
}

#[test]
fn a_follower_that_becomes_leader_dedupes_a_retried_batch() {
    let leader_dir = tempdir();
    let (leader, _) = open(leader_dir.path(), &config(&[]), true);
    let mut infos = Vec::new();
    for i in 0..3 {
        infos.push(leader.append(&idem(&recs(2), 5, 0, i * 2, false), 0).unwrap());
    }
    let dir = tempdir();
    let (follower, _) = open(dir.path(), &config(&[]), true);
    follower.append_replicated(&log_bytes(&leader).concat(), 0).unwrap();
    follower.begin_epoch(1).unwrap();
    // The producer's last request was written but not acknowledged; it retries on the new leader.
    let again = follower.append(&idem(&recs(2), 5, 0, 4, false), 0).unwrap();
    assert_eq!((again.base_offset, again.last_offset), (infos[2].base_offset, infos[2].last_offset));
    assert_eq!(follower.log_end_offset(), 6, "the retry was not written again");
    let gap = follower.append(&idem(&recs(1), 5, 0, 9, false), 0).unwrap_err();
    assert!(matches!(gap, LogError::Producer(ProducerError::OutOfOrder { expected: 6, .. })), "{gap}");
    follower.append(&idem(&recs(1), 5, 0, 6, false), 0).unwrap();
    assert_eq!(batch_epochs(&follower).last(), Some(&(6, 1)));
}

#[test]
fn the_cleaner_never_cleans_at_or_above_the_high_watermark() {
    let dir = tempdir();
    let cfg = config(&[("cleanup.policy", "compact"), ("segment.bytes", "200")]);
    let (log, _) = open(dir.path(), &cfg, true);
    log.set_replicated(true);
    let kv = |i: usize| keyed_batch([("k".to_string(), Some(format!("v{i}")))], 0, Compression::None);
    for i in 0..20 {
        log.append(&kv(i), 0).unwrap();
    }
    assert!(log.segment_count() > 4);
    log.set_high_watermark(9);
    let before: Vec<Bytes> = read_all(&log, u64::MAX);
    let stats = crate::log::clean_log(&log, 0).unwrap();
    assert!(stats.clean_horizon <= 9, "horizon {}", stats.clean_horizon);
    let after = read_all(&log, u64::MAX);
    let from = |v: &[Bytes]| -> Vec<Bytes> {
        v.iter().filter(|b| BatchHeader::parse(b).unwrap().base_offset >= 9).cloned().collect()
    };
    assert_eq!(from(&after), from(&before), "nothing at or above the high watermark changed");
    assert!(stats.records_removed > 0, "records below the high watermark were cleaned");
}
