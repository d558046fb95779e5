//! Failed writes and fsyncs, and crashes in the middle of recovery (through failpoints).

use super::*;
use crate::log::checkpoint::synced_dirs;
use crate::log::index::INDEX_APPEND;
use crate::log::segment::{failpoints, CUT_TAIL, DELETE_SEGMENT, SYNC_DATA, WRITE_DATA};
use crate::log::time_index::TIME_INDEX_APPEND;
use crate::log::LEADER_EPOCH_FILE;

/// Assert that the log takes neither appends nor flushes, and still serves `sent`.
fn assert_failed(log: &Log, sent: &[Sent], ctx: &str) {
    let end = log.log_end_offset();
    assert!(log.flush_to(end).is_err(), "{ctx}: flush_to after the failure");
    assert!(log.flush().is_err(), "{ctx}: flush after the failure");
    let res = log.append(&batch(1, 7, Compression::None), 0);
    assert!(matches!(res, Err(LogError::Io(_))), "{ctx}: append after the failure: {res:?}");
    assert_eq!(log.log_end_offset(), end, "{ctx}: nothing appended");
    assert_log(log, sent, &format!("{ctx}: reads go on"));
}

/// After a failed fsync Linux may have dropped the dirty pages: a later fsync that succeeds
/// proves nothing, so the log refuses appends and flushes until a restart recovers it.
#[test]
fn a_failed_fsync_fails_the_log_until_a_restart() {
    let dir = tempdir();
    let cfg = config(&[("flush.messages", "1")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut sent = Vec::new();
    let info = append(&log, &mut sent, &[batch(2, 1, Compression::None)], 0);
    log.flush_to(info.flush_to.unwrap()).unwrap();
    let info = append(&log, &mut sent, &[batch(2, 2, Compression::None)], 0);
    failpoints::arm(SYNC_DATA);
    assert!(log.flush_to(info.flush_to.unwrap()).is_err(), "injected fsync failure");
    failpoints::disarm(SYNC_DATA);
    assert_eq!(log.recovery_point(), 2, "the failed fsync covers nothing");
    assert_failed(&log, &sent, "failed fsync");
    assert!(log.close().is_err(), "a failed log must not close cleanly");
    drop(log);
    // The restart re-validates everything above the recovery point and takes writes again.
    let (log, stats) = open(dir.path(), &cfg, false);
    assert_eq!(stats.recovered_segments, 1);
    assert_log(&log, &sent, "after the restart");
    let info = append(&log, &mut sent, &[batch(1, 3, Compression::None)], 0);
    log.flush_to(info.flush_to.unwrap()).unwrap();
    assert_log(&log, &sent, "appended after the restart");
}

#[test]
fn a_failed_data_write_fails_the_log_until_a_restart() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &LogConfig::default(), true);
    let mut sent = Vec::new();
    append(&log, &mut sent, &[batch(2, 1, Compression::None)], 0);
    failpoints::arm(WRITE_DATA);
    assert!(matches!(log.append(&batch(2, 2, Compression::None), 0), Err(LogError::Io(_))));
    failpoints::disarm(WRITE_DATA);
    assert_failed(&log, &sent, "failed write");
    drop(log);
    let (log, _) = open(dir.path(), &LogConfig::default(), false);
    append(&log, &mut sent, &[batch(1, 3, Compression::None)], 0);
    assert_log(&log, &sent, "after the restart");
}

/// Indexes are sparse and checked on open: failing to write an entry costs a slower lookup,
/// never an append, and never the agreement between the data and the offsets handed out.
#[test]
fn index_write_failures_cost_no_offsets() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "2048"), ("index.interval.bytes", "0")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(0xFA11);
    let mut sent = Vec::new();
    for i in 0..60 {
        match i {
            10 => failpoints::arm(INDEX_APPEND),
            20 => failpoints::arm(TIME_INDEX_APPEND),
            30 => failpoints::disarm(INDEX_APPEND),
            45 => failpoints::disarm(TIME_INDEX_APPEND),
            _ => {}
        }
        append(&log, &mut sent, &[random_batch_at(&mut rng, 10_000 + 300 * i)], 0);
    }
    assert!(log.segment_count() > 3, "setup: failures span rolls");
    assert_eq!(log.log_end_offset(), sent.last().unwrap().next());
    assert_log(&log, &sent, "with failed index writes");
    assert_timestamps(&log, &sent, "with failed index writes");
    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let ctx = format!("reopened (clean: {clean})");
        let (log, _) = open(dir.path(), &cfg, clean);
        assert_log(&log, &sent, &ctx);
        assert_timestamps(&log, &sent, &ctx);
        assert_eq!(append(&log, &mut sent, &[random_batch(&mut rng)], 0).base_offset, sent[sent.len() - 2].next());
        log.close().unwrap();
    }
}

/// A log with a torn middle segment, never flushed: (dir, config, bases, batches kept, end).
fn torn_middle_segment(seed: u64) -> (tempfile::TempDir, LogConfig, Vec<i64>, Vec<Sent>, i64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "1024"), ("index.interval.bytes", "200")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut sent = Vec::new();
    while log.segment_count() < 5 {
        append(&log, &mut sent, &[random_batch(&mut rng)], 0);
    }
    drop(log);
    let bases = segment_bases(dir.path());
    let path = seg_path(dir.path(), bases[1], "log");
    let mut data = fs::read(&path).unwrap();
    let l = layout(&data);
    let j = l.len() / 2;
    data.truncate(l[j].0 + l[j].1 / 2);
    fs::write(&path, &data).unwrap();
    let first = sent.iter().position(|s| s.base >= bases[1]).unwrap();
    sent.truncate(first + j);
    let end = sent.last().unwrap().next();
    (dir, cfg, bases, sent, end)
}

/// Recovery must delete the segments after a torn one before it cuts the torn one: a crash in
/// between must not leave a cut segment followed by later ones, an offset hole that the next
/// start would accept.
#[test]
fn a_crash_during_recovery_leaves_no_offset_hole() {
    for (i, point) in [DELETE_SEGMENT, CUT_TAIL].into_iter().enumerate() {
        let (dir, cfg, bases, mut sent, end) = torn_middle_segment(0xC4A5 + i as u64);
        let ctx = format!("crash at {point}");
        failpoints::arm(point);
        assert!(Log::open(dir.path(), cfg.clone(), false, 0).is_err(), "{ctx}: injected crash");
        failpoints::disarm(point);
        let (log, stats) = open(dir.path(), &cfg, false);
        assert!(stats.truncated_bytes > 0, "{ctx}: the torn tail is still there to cut: {stats:?}");
        assert_segment_files(dir.path(), &bases[..2], &ctx);
        assert_eq!(log.log_end_offset(), end, "{ctx}");
        assert_log(&log, &sent, &ctx);
        assert_eq!(append(&log, &mut sent, &[batch(1, 5, Compression::None)], 0).base_offset, end, "{ctx}");
    }
}

/// Recovery makes the deletion of the segments after a torn one durable before it cuts.
#[test]
fn recovery_fsyncs_the_directory_before_it_cuts() {
    let (dir, cfg, bases, _, _) = torn_middle_segment(0xD15C);
    synced_dirs::take();
    failpoints::arm(CUT_TAIL);
    assert!(Log::open(dir.path(), cfg.clone(), false, 0).is_err());
    failpoints::disarm(CUT_TAIL);
    assert_segment_files(dir.path(), &bases[..2], "later segments deleted before the cut");
    assert!(synced_dirs::take().contains(&dir.path().to_path_buf()), "the deletions were fsynced");
}

/// A segment created while opening a log is made durable by fsyncing the directory.
#[test]
fn open_fsyncs_the_directory_when_it_creates_a_segment() {
    let dir = tempdir();
    // A partition directory whose only segment never reached the disk.
    checkpoint::write_epochs(&dir.path().join(LEADER_EPOCH_FILE), &[(0, 0)]).unwrap();
    synced_dirs::take();
    let (_log, _) = open(dir.path(), &LogConfig::default(), false);
    assert_eq!(segment_bases(dir.path()), [0]);
    assert!(synced_dirs::take().contains(&dir.path().to_path_buf()), "directory fsynced after the segment was created");
}
