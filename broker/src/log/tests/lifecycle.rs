//! What a log does around its partition lock: reads of settings that must not wait on it, and a
//! log closed because its topic is deleted.

use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// Reactor threads read the config and the leader epoch; neither may wait for the partition
/// lock, which an append holds across a large write.
#[test]
fn config_and_leader_epoch_do_not_wait_for_the_log_lock() {
    let dir = tempdir();
    let cfg = config(&[("retention.ms", "1234")]);
    let (log, _) = open(dir.path(), &cfg, true);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let guard = log.hold_lock_for_test();
        let log = &log;
        s.spawn(move || {
            let _ = tx.send((log.config().retention_ms, log.leader_epoch()));
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        drop(guard);
        assert_eq!(got.ok(), Some((1234, 0)), "config() and leader_epoch() waited for the log lock");
    });
    log.set_config(config(&[("retention.ms", "99")]));
    assert_eq!(log.config().retention_ms, 99, "set_config is seen by config()");
}

/// A log closed for deletion writes nothing more into its directory, which a new topic of the
/// same name may be using; reads of what it holds go on.
#[test]
fn a_log_closed_for_delete_writes_nothing() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "100"), ("retention.ms", "10"), ("flush.messages", "1")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut sent = Vec::new();
    for i in 0..3 {
        append(&log, &mut sent, &[batch(3, i, Compression::None)], 0);
    }
    let cleaned = dir.path().join(format!("{}.cleaned", file_name(0, "log")));
    fs::write(&cleaned, b"cleaner output").unwrap();
    log.close_for_delete();
    let listing = || {
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let before = listing();
    let end = log.log_end_offset();

    assert!(matches!(log.append(&batch(3, 9, Compression::None), 0), Err(LogError::Deleted)), "append");
    assert!(log.flush_to(end + 1).is_err(), "flush_to past the end");
    log.flush().unwrap();
    assert!(!log.flush_sealed().unwrap(), "flush_sealed");
    log.flush_if_due(i64::MAX).unwrap();
    assert!(matches!(log.delete_records(3), Err(LogError::Deleted)), "delete_records");
    assert!(matches!(log.truncate_to(3), Err(LogError::Deleted)), "truncate_to");
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0, "retention");
    assert!(!log.swap_cleaned(0, sent[0].bytes.len() as u64, &cleaned, &[], 0).unwrap(), "swap_cleaned");
    log.close().unwrap();
    let mut after = listing();
    after.push(cleaned.file_name().unwrap().to_str().unwrap().to_string());
    after.sort();
    assert_eq!(after, before, "only the cleaner's output may go");
    assert_eq!(log.log_end_offset(), end);
    assert_log(&log, &sent, "reads of a closed log");
}
