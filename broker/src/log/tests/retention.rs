//! Retention by time and size, and DeleteRecords.

use super::*;

/// A log of `n` single-batch segments; batch `i` has timestamps `1000 * i ..`.
fn one_batch_segments(dir: &Path, cfg: &LogConfig, n: i64) -> (Log, Vec<Sent>) {
    let (log, _) = open(dir, cfg, true);
    let mut sent = Vec::new();
    for i in 0..n {
        append(&log, &mut sent, &[batch(3, 1000 * i, Compression::None)], 0);
    }
    assert_eq!(log.segment_count() as i64, n);
    (log, sent)
}

#[test]
fn retention_ms_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempdir();
    // Each 3-record batch (~100 bytes) fills a segment.
    let cfg = config(&[("segment.bytes", "100"), ("retention.ms", "500")]);
    let (log, sent) = one_batch_segments(dir.path(), &cfg, 6);
    let bases: Vec<i64> = sent.iter().map(|s| s.base).collect();
    // Segment i's max timestamp is 1000 * i + 2.
    assert_eq!(log.apply_retention(502).unwrap(), 0, "nothing older than 500 ms");
    assert_eq!(log.apply_retention(503).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 3);
    assert_segment_files(dir.path(), &bases[1..], "after deleting one");
    assert!(matches!(log.read(2, 100), Err(LogError::OffsetOutOfRange { .. })));
    assert_log(&log, &sent, "after deleting one");
    assert_eq!(log.apply_retention(3503).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 12);
    // Every sealed segment is expired, the active one is not: it stays.
    assert_eq!(log.apply_retention(5502).unwrap(), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 15);
    assert_log(&log, &sent, "only the active segment left");
    drop(log);
    for clean in [true, false] {
        let (log, _) = open(dir.path(), &cfg, clean);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (15, 18), "reopened (clean: {clean})");
        assert_log(&log, &sent, "reopened");
    }
    // Once the active segment expires it is rolled and deleted too; the log stays writable.
    let (log, _) = open(dir.path(), &cfg, true);
    assert_eq!(log.apply_retention(5503).unwrap(), 1);
    assert_eq!((log.segment_count(), log.log_start_offset(), log.log_end_offset()), (1, 18, 18));
    assert!(log.read(18, 100).unwrap().slice.is_none());
    assert_eq!(checkpoint::read_i64(&dir.path().join(LOG_START_FILE)).unwrap(), Some(18));
    let mut sent = Vec::new();
    assert_eq!(append(&log, &mut sent, &[batch(2, 9000, Compression::None)], 0).base_offset, 18);
    assert_log(&log, &sent, "after total expiry");
    drop(log);
    let (log, _) = open(dir.path(), &cfg, false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (18, 20));
}

#[test]
fn retention_ms_stops_at_the_first_segment_to_keep() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "100"), ("retention.ms", "1000")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut sent = Vec::new();
    for ts in [100, 5000, 200, 300] {
        append(&log, &mut sent, &[batch(3, ts, Compression::None)], 0);
    }
    assert_eq!(log.apply_retention(3000).unwrap(), 1, "segment 1 is recent, so segment 2 stays too");
    assert_eq!(log.log_start_offset(), 3);
    for (policy, ms) in [("compact", "1000"), ("delete", "-1")] {
        log.set_config(config(&[("segment.bytes", "100"), ("retention.ms", ms), ("cleanup.policy", policy)]));
        assert_eq!(log.apply_retention(i64::MAX / 2).unwrap(), 0, "cleanup.policy={policy}, retention.ms={ms}");
    }
    assert_log(&log, &sent, "after retention");
}

#[test]
fn retention_bytes_keeps_at_least_the_limit() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "100"), ("retention.bytes", "450")]);
    let (log, sent) = one_batch_segments(dir.path(), &cfg, 10);
    let size = sent[0].bytes.len() as u64;
    assert!(sent.iter().all(|s| s.bytes.len() as u64 == size));
    let deleted = log.apply_retention(0).unwrap();
    // Delete the oldest while what remains would still be >= 450 bytes.
    let keep = 450u64.div_ceil(size);
    assert_eq!(deleted as u64, 10 - keep);
    assert_eq!(log.size_bytes(), keep * size);
    assert_eq!(log.log_start_offset(), sent[deleted].base);
    assert_segment_files(dir.path(), &sent[deleted..].iter().map(|s| s.base).collect::<Vec<_>>(), "after retention");
    assert_eq!(log.apply_retention(0).unwrap(), 0, "retention is idempotent");
    assert_log(&log, &sent, "after retention.bytes");
    drop(log);
    let (log, _) = open(dir.path(), &cfg, false);
    assert_eq!(log.log_start_offset(), sent[deleted].base);
    assert_log(&log, &sent, "reopened");
}

#[test]
fn delete_records_moves_the_log_start_and_drops_whole_segments() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "100")]);
    let (log, sent) = one_batch_segments(dir.path(), &cfg, 8);
    let bases: Vec<i64> = sent.iter().map(|s| s.base).collect();
    assert_eq!(log.delete_records(10).unwrap(), 10, "inside the batch at 9");
    assert_segment_files(dir.path(), &bases[3..], "log start 10");
    assert_eq!(log.read(10, 0).unwrap().log_start_offset, 10);
    assert!(matches!(log.read(9, 0), Err(LogError::OffsetOutOfRange { start: 10, .. })));
    assert_log(&log, &sent, "log start 10");
    assert_eq!(log.delete_records(4).unwrap(), 10, "the log start never moves back");
    assert_eq!(log.delete_records(12).unwrap(), 12, "a segment boundary");
    assert_segment_files(dir.path(), &bases[4..], "log start 12");
    assert!(matches!(log.delete_records(25), Err(LogError::OffsetOutOfRange { offset: 25, .. })));
    assert!(matches!(log.delete_records(-2), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(checkpoint::read_i64(&dir.path().join(LOG_START_FILE)).unwrap(), Some(12));
    drop(log);
    for clean in [true, false] {
        let (log, _) = open(dir.path(), &cfg, clean);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 24), "reopened (clean: {clean})");
        assert_log(&log, &sent, "reopened");
    }
    let (log, _) = open(dir.path(), &cfg, true);
    assert_eq!(log.delete_records(-1).unwrap(), 24, "-1 means the high watermark");
    assert_eq!(log.segment_count(), 1, "only the active segment is left");
    assert!(log.read(24, 100).unwrap().slice.is_none());
    drop(log);
    let (log, _) = open(dir.path(), &cfg, false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (24, 24));
}
