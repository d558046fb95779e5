//! Group commit and the recovery point.

use super::*;

#[test]
fn concurrent_flush_to_calls_all_return_covered() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "2048"), ("flush.messages", "1")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let threads: i64 = 4;
    let per_thread: i64 = 25;
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = &log;
            s.spawn(move || {
                for i in 0..per_thread {
                    let info = log.append(&batch(2, t * 1000 + i, Compression::None), 0).unwrap();
                    let to = info.flush_to.expect("flush.messages=1 asks for a flush per append");
                    assert!(to > info.last_offset);
                    log.flush_to(to).unwrap();
                    assert!(log.recovery_point() >= to, "flush_to({to}) returned at {}", log.recovery_point());
                }
            });
        }
    });
    let end = log.log_end_offset();
    assert_eq!(end, threads * per_thread * 2);
    assert_eq!(log.recovery_point(), end);
    let batches = read_all(&log, u64::MAX);
    assert_eq!(batches.len() as i64, threads * per_thread);
    let mut stamps: Vec<i64> = batches.iter().map(|b| BatchHeader::parse(b).unwrap().base_timestamp).collect();
    stamps.sort_unstable();
    let want: Vec<i64> = (0..threads).flat_map(|t| (0..per_thread).map(move |i| t * 1000 + i)).collect();
    assert_eq!(stamps, want, "every append stored once");
    assert!(log.segment_count() > 1);
}

#[test]
fn recovery_point_file_follows_flush() {
    let dir = tempdir();
    let path = dir.path().join(RECOVERY_POINT_FILE);
    let cfg = config(&[("segment.bytes", "1024")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(3);
    let mut sent = Vec::new();
    while log.segment_count() < 4 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    assert_eq!(checkpoint::read_i64(&path).unwrap(), None, "nothing flushed yet");
    log.flush().unwrap();
    let flushed = log.log_end_offset();
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(flushed));
    assert_eq!(log.recovery_point(), flushed);
    while log.segment_count() < 7 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    let end = log.log_end_offset();
    assert_eq!(log.recovery_point(), flushed, "appends are not durable by themselves");
    log.flush_to(end).unwrap();
    assert_eq!(log.recovery_point(), end);
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(flushed), "only flush() writes the file");
    drop(log);
    // Unclean open: segments wholly below the recovery point are trusted, the rest re-checked.
    let bases = segment_bases(dir.path());
    let untrusted = (0..bases.len()).filter(|&i| bases.get(i + 1).is_none_or(|&n| n > flushed)).count();
    assert!(untrusted < bases.len() && untrusted >= 3);
    let (log, stats) = open(dir.path(), &cfg, false);
    assert_eq!((stats.recovered_segments, stats.truncated_bytes), (untrusted, 0));
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(end), "recovery flushes and records it");
    assert_eq!(log.recovery_point(), end);
    assert_log(&log, &sent, "after unclean reopen");
}

/// Truncation must pull the recovery point back: data written after it is not yet durable.
#[test]
fn truncate_to_lowers_the_recovery_point() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "1024"), ("index.interval.bytes", "100")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(5);
    let mut sent = Vec::new();
    while log.segment_count() < 5 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    log.flush().unwrap();
    let flushed = log.log_end_offset();
    // Truncate inside the second segment, in the middle of a batch.
    let second = segment_bases(dir.path())[1];
    let j = sent.iter().position(|s| s.base > second && s.ts.len() > 1).unwrap();
    log.truncate_to(sent[j].base + 1).unwrap();
    sent.truncate(j);
    let cut = log.log_end_offset();
    assert_eq!(cut, sent[j - 1].next(), "the batch holding the offset goes");
    assert!(log.recovery_point() <= cut);
    assert_log(&log, &sent, "after truncation");
    assert_timestamps(&log, &sent, "after truncation");
    while log.log_end_offset() < flushed + 20 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    drop(log);
    // Corrupt the first batch written after the truncation; an unclean open must catch it.
    let bases = segment_bases(dir.path());
    let k = bases.iter().rposition(|&b| b <= cut).unwrap();
    assert!(bases[k + 1] <= flushed, "setup: the damaged segment ends below the old recovery point");
    let path = seg_path(dir.path(), bases[k], "log");
    let mut data = fs::read(&path).unwrap();
    let l = layout(&data);
    let i = sent.iter().filter(|s| s.base >= bases[k] && s.base < cut).count();
    let (at, size) = l[i];
    data[at + size - 1] ^= 0x20;
    fs::write(&path, &data).unwrap();
    let (log, stats) = open(dir.path(), &cfg, false);
    assert!(stats.truncated_bytes > 0, "{stats:?}");
    assert_eq!(log.log_end_offset(), cut);
    let kept: Vec<Sent> = sent.iter().filter(|s| s.base < cut).cloned().collect();
    assert_log(&log, &kept, "after unclean reopen");
}

/// As in Kafka, sealed segments are flushed after a roll and the recovery point moves to the
/// active segment, so an unclean start re-validates only that one.
#[test]
fn flush_sealed_moves_the_recovery_point_to_the_active_segment() {
    let dir = tempdir();
    let path = dir.path().join(RECOVERY_POINT_FILE);
    let cfg = config(&[("segment.bytes", "1024")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(6);
    let mut sent = Vec::new();
    while log.segment_count() < 5 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    let active = *segment_bases(dir.path()).last().unwrap();
    assert!(log.flush_sealed().unwrap(), "sealed segments to flush");
    assert_eq!(log.recovery_point(), active);
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(active));
    assert!(!log.flush_sealed().unwrap(), "nothing new to flush");
    // The loop stops at the append that rolled: the active segment holds unflushed data.
    while log.segment_count() < 7 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    let active = *segment_bases(dir.path()).last().unwrap();
    assert!(log.log_end_offset() > active);
    assert!(log.flush_sealed().unwrap());
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(active));
    drop(log);
    let (log, stats) = open(dir.path(), &cfg, false);
    assert_eq!((stats.recovered_segments, stats.truncated_bytes), (1, 0), "only the active segment is re-validated");
    assert_log(&log, &sent, "after unclean reopen");
}

/// Group commit moves the recovery point in memory only; `flush_sealed` checkpoints it.
#[test]
fn flush_sealed_checkpoints_a_recovery_point_moved_by_group_commit() {
    let dir = tempdir();
    let path = dir.path().join(RECOVERY_POINT_FILE);
    let cfg = config(&[("segment.bytes", "1024"), ("flush.messages", "1")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(7);
    let mut sent = Vec::new();
    while log.segment_count() < 3 {
        let info = append(&log, &mut sent, &[random_batch(&mut rng)], 0);
        log.flush_to(info.flush_to.unwrap()).unwrap();
    }
    let end = log.log_end_offset();
    assert_eq!(log.recovery_point(), end);
    assert_eq!(checkpoint::read_i64(&path).unwrap(), None, "not checkpointed yet");
    assert!(log.flush_sealed().unwrap());
    assert_eq!(checkpoint::read_i64(&path).unwrap(), Some(end));
    assert!(!log.flush_sealed().unwrap());
}
