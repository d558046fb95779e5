//! Tests of the cleaner through real logs in temporary directories.

use std::collections::HashMap;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::log::batch::{self, test_util::keyed_batch};

type Kv = (String, Option<String>);
/// (offset, key, value) as a consumer reads it.
type Row = (i64, String, Option<String>);

fn kv(k: &str, v: Option<&str>) -> Kv {
    (k.to_string(), v.map(str::to_string))
}

fn config(overrides: &[(&str, &str)]) -> LogConfig {
    let base = [("cleanup.policy", "compact"), ("segment.bytes", "1024")];
    LogConfig::default().with_overrides(base.iter().chain(overrides).copied()).unwrap()
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, config, clean, 0).unwrap().0
}

/// Append one batch; returns the rows it wrote.
fn append(log: &Log, kvs: Vec<Kv>, ts: i64, c: Compression) -> Vec<Row> {
    let info = log.append(&keyed_batch(kvs.clone(), ts, c), ts).unwrap();
    kvs.into_iter().enumerate().map(|(i, (k, v))| (info.base_offset + i as i64, k, v)).collect()
}

/// Append single-record batches with unique keys until the log has `segments` segments.
fn fill(log: &Log, segments: usize, ts: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    while log.segment_count() < segments {
        let key = format!("filler-{}", log.log_end_offset());
        rows.extend(append(log, vec![(key, Some("x".repeat(100)))], ts, Compression::None));
    }
    rows
}

fn text(b: Bytes) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Every record from the log start on, in offset order.
fn read_all(log: &Log) -> Vec<Row> {
    let (mut rows, mut offset) = (Vec::new(), log.log_start_offset());
    while offset < log.log_end_offset() {
        let Some(slice) = log.read(offset, u64::MAX).unwrap().slice else {
            break;
        };
        let mut bytes = slice.read_bytes().unwrap();
        for item in batch::batches(&bytes) {
            offset = item.unwrap().1.next_offset();
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            rows.extend(set.records.into_iter().map(|r| (r.offset, text(r.key.unwrap()), r.value.map(text))));
        }
    }
    rows
}

/// The stored bytes of the batch holding `offset`.
fn raw_batch(log: &Log, offset: i64) -> Bytes {
    log.read(offset, 1).unwrap().slice.unwrap().read_bytes().unwrap()
}

fn active_base(log: &Log) -> i64 {
    log.sealed_segments().last().unwrap().next_offset
}

/// What compaction must leave: the latest version per key among sealed segments, and the
/// whole active segment.
fn expected(rows: &[Row], active_base: i64) -> Vec<Row> {
    let latest: HashMap<&str, i64> = rows.iter().filter(|r| r.0 < active_base).map(|r| (r.1.as_str(), r.0)).collect();
    rows.iter().filter(|r| r.0 >= active_base || latest[r.1.as_str()] == r.0).cloned().collect()
}

#[test]
fn keeps_latest_version_per_key_for_every_codec() {
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for c in codecs {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(&[]), true);
        let mut rows = Vec::new();
        for round in 0..40 {
            let kvs = (0..4).map(|i| {
                let v = format!("value-{round}-{i}-{}", "y".repeat(20));
                let k = format!("key-{}", (round * 3 + i) % 7);
                (k, if round == 20 && i == 0 { None } else { Some(v) })
            });
            rows.extend(append(&log, kvs.collect(), 1_000 + round, c));
        }
        assert!(log.sealed_segments().len() >= 2, "{c:?}: need several segments");
        let (end, active) = (log.log_end_offset(), active_base(&log));
        let want = expected(&rows, active);
        let stats = clean_log(&log, 2_000).unwrap();
        assert_eq!(read_all(&log), want, "{c:?}");
        assert_eq!(stats.records_removed as usize, rows.len() - want.len(), "{c:?}");
        assert!(stats.bytes_after < stats.bytes_before, "{c:?}");
        assert_eq!((stats.keys, stats.clean_horizon, stats.tombstones_removed), (7, active, 0), "{c:?}");
        assert_eq!(log.log_end_offset(), end);
        // A second pass finds nothing more to remove.
        let again = clean_log(&log, 2_000).unwrap();
        assert_eq!((again.records_removed, again.segments_rewritten), (0, 0), "{c:?}");
        assert_eq!(read_all(&log), want, "{c:?}");
    }
}

#[test]
fn tombstones_live_for_delete_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("delete.retention.ms", "1000")]), true);
    append(&log, vec![kv("a", Some("1")), kv("b", Some("1"))], 0, Compression::None);
    let tombstone = append(&log, vec![kv("a", None)], 100, Compression::None);
    let filler = fill(&log, 3, 100);
    let stats = clean_log(&log, 500).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 0));
    let mut want = vec![(1, "b".to_string(), Some("1".to_string())), tombstone[0].clone()];
    want.extend(filler.iter().cloned());
    assert_eq!(read_all(&log), want);
    let stats = clean_log(&log, 5_000).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_removed), (1, 1));
    want.remove(1);
    assert_eq!(read_all(&log), want);
}

#[test]
fn fully_kept_batches_are_byte_identical_and_partial_ones_reencoded() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let unique = append(&log, (0..5).map(|i| kv(&format!("u{i}"), Some("u"))).collect(), 10, Compression::Gzip);
    let partial = append(&log, (0..4).map(|i| kv(&format!("k{i}"), Some("old"))).collect(), 20, Compression::Lz4);
    append(&log, vec![kv("k0", Some("new")), kv("k1", Some("new"))], 30, Compression::None);
    fill(&log, 2, 40);
    let unique_before = raw_batch(&log, unique[0].0);
    let stats = clean_log(&log, 50).unwrap();
    assert_eq!((stats.records_removed, stats.batches_reencoded), (2, 1));
    assert_eq!(raw_batch(&log, unique[0].0), unique_before);
    let raw = raw_batch(&log, partial[0].0);
    let h = BatchHeader::parse_checked(&raw).unwrap();
    assert_eq!(h.size, raw.len());
    assert_eq!((h.base_offset, h.last_offset(), h.record_count), (partial[2].0, partial[3].0, 2));
    assert_eq!((h.compression(), h.base_sequence, h.producer_id), (3, -1, -1));
    assert_eq!((h.base_timestamp, h.max_timestamp), (22, 23));
    let rows: Vec<i64> = read_all(&log).iter().map(|r| r.0).take(7).collect();
    assert_eq!(rows, [0, 1, 2, 3, 4, partial[2].0, partial[3].0]);
}

#[test]
fn appends_and_reopen_after_swap() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let mut rows = Vec::new();
    for round in 0..30 {
        let kvs = (0..3).map(|i| kv(&format!("k{i}"), Some(&format!("v{round}")))).collect();
        rows.extend(append(&log, kvs, round, Compression::Zstd));
    }
    let want = expected(&rows, active_base(&log));
    assert!(clean_log(&log, 100).unwrap().segments_rewritten > 0);
    let mut more = want.clone();
    for round in 30..40 {
        more.extend(append(&log, vec![kv("k9", Some(&format!("v{round}")))], round, Compression::None));
    }
    assert_eq!(read_all(&log), more);
    let (end, start) = (log.log_end_offset(), log.log_start_offset());
    drop(log);
    for clean in [false, true] {
        let log = open(dir.path(), config(&[]), clean);
        assert_eq!((log.log_end_offset(), log.log_start_offset()), (end, start));
        assert_eq!(read_all(&log), more, "clean={clean}");
    }
}

#[test]
fn leftover_cleaned_file_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let rows = append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
    drop(log);
    let leftover = cleaned_path(dir.path(), 0);
    fs::write(&leftover, b"half-written cleaner output").unwrap();
    let log = open(dir.path(), config(&[]), false);
    assert!(!leftover.exists());
    assert_eq!(read_all(&log), rows);
}

#[test]
fn min_compaction_lag_protects_young_batches_and_those_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("min.compaction.lag.ms", "1000")]), true);
    let old = append(&log, vec![kv("a", Some("old"))], 0, Compression::None);
    let young = append(&log, vec![kv("b", Some("young"))], 5_000, Compression::None);
    let after = append(&log, vec![kv("c", Some("1"))], 0, Compression::None);
    let latest =
        append(&log, vec![kv("a", Some("new")), kv("b", Some("new")), kv("c", Some("2"))], 0, Compression::None);
    let filler = fill(&log, 2, 0);
    let stats = clean_log(&log, 5_500).unwrap();
    assert_eq!((stats.clean_horizon, stats.records_removed), (young[0].0, 1));
    let mut want: Vec<Row> = [young.clone(), after.clone(), latest.clone(), filler.clone()].concat();
    assert_eq!(read_all(&log), want);
    let stats = clean_log(&log, 10_000).unwrap();
    assert_eq!((stats.clean_horizon, stats.records_removed), (active_base(&log), 2));
    want.drain(..2);
    assert_eq!(read_all(&log), want);
    assert_eq!(old[0].0, 0);
}

#[test]
fn log_append_time_survives_reencoding() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("message.timestamp.type", "LogAppendTime")]), true);
    let first =
        append(&log, vec![kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))], 777, Compression::Snappy);
    append(&log, vec![kv("a", Some("2"))], 800, Compression::None);
    fill(&log, 2, 900);
    assert_eq!(clean_log(&log, 1_000).unwrap().batches_reencoded, 1);
    let h = BatchHeader::parse_checked(&raw_batch(&log, first[1].0)).unwrap();
    assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    assert_eq!((h.max_timestamp, h.record_count, h.compression()), (777, 2, 2));
}

/// One batch from producer `pid` with sequences from `base_seq`, maybe transactional.
fn producer_batch(pid: i64, base_seq: i32, transactional: bool, kvs: &[Kv]) -> Bytes {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_seq + i as i32,
            timestamp: 0,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = Vec::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::Gzip };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    Bytes::from(buf)
}

#[test]
fn idempotent_batches_keep_sequences_and_the_last_batch_per_producer() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let x = log
        .append(&producer_batch(7, 0, false, &[kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))]), 0)
        .unwrap();
    log.append(&producer_batch(7, 3, false, &[kv("a", Some("2")), kv("b", Some("2"))]), 0).unwrap();
    let z = log.append(&producer_batch(9, 0, false, &[kv("d", Some("1"))]), 0).unwrap();
    append(&log, vec![kv("d", Some("2"))], 0, Compression::None);
    fill(&log, 2, 0);
    assert_eq!(clean_log(&log, 10).unwrap().records_removed, 3);
    let h = BatchHeader::parse_checked(&raw_batch(&log, x.base_offset)).unwrap();
    assert_eq!((h.base_offset, h.last_offset(), h.base_sequence), (x.base_offset + 2, x.last_offset, 2));
    assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (7, 3, 1));
    let mut raw = raw_batch(&log, x.base_offset);
    let rec = &RecordBatchDecoder::decode(&mut raw).unwrap().records[0];
    assert_eq!((rec.offset, rec.sequence), (x.base_offset + 2, 2));
    let empty = raw_batch(&log, z.base_offset);
    let h = BatchHeader::parse_checked(&empty).unwrap();
    assert_eq!((h.base_offset, h.record_count, h.producer_id, h.size), (z.base_offset, 0, 9, HEADER_LEN));
}

#[test]
fn open_transactions_are_left_alone_and_aborted_ones_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let committed = append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
    let txn = log.append(&producer_batch(11, 0, true, &[kv("a", Some("maybe-aborted"))]), 0).unwrap();
    fill(&log, 2, 0);
    // Open: the transaction's record may still abort, so it supersedes nothing, and nothing
    // from the first open transaction on is touched.
    clean_log(&log, 10).unwrap();
    let rows = read_all(&log);
    assert_eq!((rows[0].0, rows[1].0), (committed[0].0, txn.base_offset));
    log.append_marker(11, 3, false, 0, 0).unwrap();
    fill(&log, 3, 0);
    clean_log(&log, 10).unwrap();
    let a: Vec<_> = read_all(&log).into_iter().filter(|r| r.1 == "a").map(|r| r.2).collect();
    assert_eq!(a, vec![Some("1".to_string())], "the aborted record is gone, the committed one stays");
}

#[test]
fn committed_transactional_records_supersede_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
    log.append(&producer_batch(11, 0, true, &[kv("a", Some("2"))]), 0).unwrap();
    log.append_marker(11, 3, true, 0, 0).unwrap();
    fill(&log, 3, 0);
    assert!(clean_log(&log, 10).unwrap().records_removed >= 1);
    let a: Vec<_> = read_all(&log).into_iter().filter(|r| r.1 == "a").map(|r| r.2).collect();
    assert_eq!(a, vec![Some("2".to_string())]);
}

#[test]
fn only_compacted_logs_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("cleanup.policy", "delete")]), true);
    for _ in 0..20 {
        append(&log, vec![kv("a", Some(&"z".repeat(100)))], 0, Compression::None);
    }
    let before = read_all(&log);
    assert_eq!(clean_log(&log, 10).unwrap(), CleanStats::default());
    assert_eq!(Cleaner::new().clean_if_dirty(&log, 10).unwrap(), None);
    assert_eq!(read_all(&log), before);
}

#[test]
fn corrupt_segment_fails_the_pass_and_leaves_no_cleaned_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    for _ in 0..20 {
        append(&log, vec![kv("a", Some(&"z".repeat(100)))], 0, Compression::None);
    }
    let seg = &log.sealed_segments()[0];
    let mut byte = [0u8; 1];
    seg.file.read_exact_at(&mut byte, 70).unwrap();
    seg.file.write_all_at(&[byte[0] ^ 0xff], 70).unwrap();
    let err = clean_log(&log, 10).unwrap_err();
    assert!(matches!(err, CleanError::Corrupt { segment: 0, position: 0, source: BatchError::Crc { .. } }), "{err}");
    assert!(!cleaned_path(dir.path(), 0).exists());
}

#[test]
fn cleaner_follows_the_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    let write = |rounds: usize| {
        for _ in 0..rounds {
            append(&log, vec![kv("a", Some(&"z".repeat(100))), kv("b", Some("1"))], 0, Compression::None);
        }
    };
    write(30);
    let mut cleaner = Cleaner::new();
    let run = cleaner.run_once([&log], 10);
    assert_eq!((run.logs_cleaned, run.logs_failed), (1, 0));
    assert!(run.records_removed > 0 && run.bytes_reclaimed > 0);
    assert_eq!(cleaner.first_dirty(log.dir()), Some(active_base(&log)));
    assert_eq!(cleaner.run_once([&log], 10).logs_cleaned, 0, "nothing new is dirty");
    write(30);
    assert_eq!(cleaner.run_once([&log], 10).logs_cleaned, 1);
    assert_eq!(cleaner.run_once(std::iter::empty(), 10), RunStats::default());
    assert_eq!(cleaner.first_dirty(log.dir()), None, "forgotten when not passed");
}

#[test]
fn segment_that_loses_everything_keeps_an_empty_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    for ts in 0..30 {
        append(&log, vec![kv("a", Some(&"z".repeat(100)))], ts, Compression::None);
    }
    let sealed = log.sealed_segments();
    assert!(sealed.len() >= 3);
    let (end, count) = (log.log_end_offset(), log.segment_count());
    clean_log(&log, 100).unwrap();
    let after = log.sealed_segments();
    assert_eq!((log.segment_count(), log.log_end_offset()), (count, end));
    for (old, new) in sealed.iter().zip(&after).take(sealed.len() - 1) {
        assert_eq!((new.base_offset, new.next_offset, new.size), (old.base_offset, old.next_offset, HEADER_LEN as u64));
        assert_eq!(new.max_timestamp, old.max_timestamp);
    }
    let rows = read_all(&log);
    assert_eq!(rows.iter().filter(|r| r.0 < active_base(&log)).count(), 1);
}

#[test]
fn segments_removed_during_a_pass_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[]), true);
    for _ in 0..30 {
        append(&log, vec![kv("a", Some(&"z".repeat(100))), kv("b", Some("1"))], 0, Compression::None);
    }
    let sealed = log.sealed_segments();
    // DeleteRecords drops the first segment after the pass listed it.
    log.delete_records(sealed[0].next_offset).unwrap();
    let stats = clean_segments(&log, &log.config(), &sealed, 10).unwrap();
    assert_eq!(stats.segments_skipped, 1);
    assert_eq!(stats.segments_rewritten, sealed.len() - 1);
    assert!(!cleaned_path(dir.path(), 0).exists());
    let rows = read_all(&log);
    assert_eq!(rows.iter().filter(|r| r.0 < active_base(&log)).count(), 2);
}

/// Segments as (next offset, size, max timestamp), first dirty, lag cutoff, ratio.
type Case = (&'static [(i64, u64, i64)], i64, Option<i64>, f64);

#[test]
fn dirty_ratio_table() {
    let cases: [Case; 6] = [
        (&[(10, 100, 5), (20, 100, 5)], i64::MIN, None, 1.0),
        (&[(10, 100, 5), (20, 300, 5)], 10, None, 0.75),
        (&[(10, 100, 5), (20, 100, 5)], 20, None, 0.0),
        (&[(10, 100, 5), (20, 100, 50)], 10, Some(40), 0.0),
        (&[(10, 100, 5), (20, 100, 50)], i64::MIN, Some(40), 1.0),
        (&[], i64::MIN, None, 0.0),
    ];
    for (segments, first_dirty, cutoff, want) in cases {
        assert_eq!(dirty_ratio(segments.iter().copied(), first_dirty, cutoff), want, "{segments:?} {first_dirty}");
    }
}

/// Every transaction marker in the log: (offset, commit, delete horizon).
fn markers(log: &Log) -> Vec<(i64, bool, Option<i64>)> {
    let mut out = Vec::new();
    log.scan(|h, raw, _| {
        if let Some(m) = crate::log::control::decode(h, raw) {
            out.push((h.base_offset, m.commit, h.delete_horizon_ms()));
        }
        Ok(())
    })
    .unwrap();
    out
}

/// What a read_committed consumer reads from the log start, with the broker's aborted
/// transactions and the client's own filtering.
fn read_committed(log: &Log) -> Vec<Row> {
    let (mut rows, mut offset) = (Vec::new(), log.log_start_offset());
    let lso = log.last_stable_offset();
    while offset < lso {
        let Some(slice) = log.read_upto(offset, u64::MAX, crate::log::ReadLimit::Committed).unwrap().slice else {
            break;
        };
        let aborted: Vec<(i64, i64)> =
            log.aborted_txns(offset, lso).iter().map(|a| (a.producer_id, a.first_offset)).collect();
        let fetched = rill_core::records::decode_fetched(slice.read_bytes().unwrap(), offset, &aborted).unwrap();
        rows.extend(fetched.records.into_iter().map(|r| (r.offset, text(r.key.unwrap()), r.value.map(text))));
        offset = fetched.next_offset.unwrap();
    }
    rows
}

/// (key, value) of the rows that are not filler.
fn kvs(rows: &[Row]) -> Vec<(String, Option<String>)> {
    rows.iter().filter(|r| !r.1.starts_with("filler-")).map(|r| (r.1.clone(), r.2.clone())).collect()
}

/// How a transaction of producer 11 (records a=2, b=2) ends in [`txn_marker_table`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Committed, then both keys written again outside it.
    Superseded,
    /// Committed, then only `a` written again: b=2 survives.
    Survives,
    /// Aborted.
    Aborted,
}

/// The marker of the transaction after each pass: present without a horizon, with one, gone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum M {
    Kept,
    Stamped,
    Gone,
}

#[test]
fn txn_marker_table() {
    use End::*;
    use M::*;
    // delete.retention.ms is 1000; passes run at 100, 200, 1199 and 1200.
    const PASSES: [i64; 4] = [100, 200, 1_199, 1_200];
    // (how it ends, marker in a later segment than the data, producer writes another
    // transaction after it, marker after each pass, committed (key, value)s at the end)
    type Case = (End, bool, bool, [M; 4], &'static [(&'static str, &'static str)]);
    let cases: [Case; 7] = [
        // Data removed by the first pass, so the marker is stamped by the second (delete
        // horizon 200 + 1000) and removed by the pass at 1200.
        (Superseded, false, true, [Kept, Stamped, Stamped, Gone], &[("a", "3"), ("b", "3"), ("c", "1")]),
        (Superseded, true, true, [Kept, Stamped, Stamped, Gone], &[("a", "3"), ("b", "3"), ("c", "1")]),
        // A record of the transaction survives: its marker stays.
        (Survives, false, true, [Kept; 4], &[("b", "2"), ("a", "3"), ("c", "1")]),
        // Aborted data goes at once; the marker follows like a committed one's.
        (Aborted, false, true, [Kept, Stamped, Stamped, Gone], &[("a", "1"), ("c", "1")]),
        (Aborted, true, true, [Kept, Stamped, Stamped, Gone], &[("a", "1"), ("c", "1")]),
        // The producer's last data batch stays (emptied), and so does its marker.
        (Superseded, false, false, [Kept; 4], &[("a", "3"), ("b", "3")]),
        (Aborted, false, false, [Kept; 4], &[("a", "1")]),
    ];
    for (i, (end, split, later, want_markers, want_rows)) in cases.into_iter().enumerate() {
        let case = format!("case {i}: {end:?} split={split} later={later}");
        let dir = tempfile::tempdir().unwrap();
        let cfg = || config(&[("delete.retention.ms", "1000")]);
        let log = open(dir.path(), cfg(), true);
        append(&log, vec![kv("a", Some("1"))], 0, Compression::None);
        log.append(&producer_batch(11, 0, true, &[kv("a", Some("2")), kv("b", Some("2"))]), 0).unwrap();
        if split {
            fill(&log, log.segment_count() + 1, 0);
        }
        let marker = log.append_marker(11, 3, end != Aborted, 0, 0).unwrap().base_offset;
        match end {
            Superseded => drop(append(&log, vec![kv("a", Some("3")), kv("b", Some("3"))], 0, Compression::None)),
            Survives => drop(append(&log, vec![kv("a", Some("3"))], 0, Compression::None)),
            Aborted => {}
        }
        if later {
            log.append(&producer_batch(11, 2, true, &[kv("c", Some("1"))]), 0).unwrap();
            log.append_marker(11, 3, true, 0, 0).unwrap();
        }
        fill(&log, log.segment_count() + 2, 0);
        let want: Vec<_> = want_rows.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
        let mut log = log;
        for (pass, (now, want_marker)) in PASSES.into_iter().zip(want_markers).enumerate() {
            let stats = clean_log(&log, now).unwrap();
            let found = markers(&log).into_iter().find(|m| m.0 == marker);
            let got = match found {
                None => Gone,
                Some((_, _, None)) => Kept,
                Some((_, _, Some(horizon))) => {
                    assert_eq!(horizon, 1_200, "{case}, pass {pass}");
                    Stamped
                }
            };
            assert_eq!(got, want_marker, "{case}, pass {pass}");
            assert_eq!(stats.markers_removed, u64::from(pass == 3 && got == Gone), "{case}, pass {pass}");
            assert_eq!(kvs(&read_committed(&log)), want, "{case}, pass {pass}");
            // An aborted transaction's index entry lives exactly as long as its data.
            let listed = log.aborted_txns(0, i64::MAX).iter().any(|a| a.last_offset == marker);
            assert_eq!(listed, end == Aborted && (pass == 0 || !later), "{case}, pass {pass}");
            // Reopened between passes, cleanly or by replaying everything, the log agrees.
            log = reopen(log, cfg(), pass % 2 == 0, &format!("{case}, pass {pass}"));
        }
        assert_eq!(log.last_stable_offset(), log.log_end_offset(), "{case}");
    }
}

/// Close `log` and open it again: cleanly (snapshots, index files), or uncleanly with every
/// producer-state snapshot deleted, so that producer state and aborted transactions are
/// rebuilt from the cleaned log alone. What read_committed consumers see, the markers, the
/// aborted transactions and the last stable offset must not change. (Right after a pass that
/// removed an abort's data, a replay would already leave out its entry, which the next pass
/// drops anyway: harmless, as nothing is left to skip. The table reopens uncleanly only after
/// the passes that follow those.)
fn reopen(log: Log, config: LogConfig, clean: bool, what: &str) -> Log {
    let dir = log.dir().to_path_buf();
    let (rows, all_markers, aborted) = (read_committed(&log), markers(&log), log.aborted_txns(0, i64::MAX));
    let (end, stable) = (log.log_end_offset(), log.last_stable_offset());
    drop(log);
    if !clean {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "snapshot") {
                fs::remove_file(path).unwrap();
            }
        }
    }
    let log = open(&dir, config, clean);
    assert_eq!(read_committed(&log), rows, "{what}: reopened clean={clean}");
    assert_eq!(markers(&log), all_markers, "{what}: reopened clean={clean}");
    assert_eq!(log.aborted_txns(0, i64::MAX), aborted, "{what}: reopened clean={clean}");
    assert_eq!((log.log_end_offset(), log.last_stable_offset()), (end, stable), "{what}: reopened clean={clean}");
    log
}

#[test]
fn the_cleaner_comes_back_for_markers_of_an_idle_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("delete.retention.ms", "1000")]), true);
    log.append(&producer_batch(11, 0, true, &[kv("a", Some("1"))]), 0).unwrap();
    let marker = log.append_marker(11, 3, true, 0, 0).unwrap().base_offset;
    append(&log, vec![kv("a", Some("2"))], 0, Compression::None);
    log.append(&producer_batch(11, 1, true, &[kv("b", Some("1"))]), 0).unwrap();
    log.append_marker(11, 3, true, 0, 0).unwrap();
    fill(&log, 3, 0);
    let mut cleaner = Cleaner::new();
    let has_marker = |log: &Log| markers(log).iter().any(|m| m.0 == marker);
    // (now, cleaned?, marker still there): the first pass removes the data, the next one (due
    // at once, though nothing new is dirty) stamps the marker, and the pass due at its delete
    // horizon (1100) removes it.
    let steps =
        [(100, true, true), (100, true, true), (1_099, false, true), (1_100, true, false), (5_000, false, false)];
    for (step, (now, cleaned, present)) in steps.into_iter().enumerate() {
        let run = cleaner.run_once([&log], now);
        assert_eq!((run.logs_cleaned == 1, has_marker(&log)), (cleaned, present), "step {step}");
    }
    let rows: Vec<_> = kvs(&read_committed(&log));
    assert_eq!(rows, vec![kv("a", Some("2")), kv("b", Some("1"))]);
}

#[test]
fn a_transactional_producers_last_data_batch_stays_empty_with_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config(&[("delete.retention.ms", "0")]), true);
    let first = log.append(&producer_batch(11, 0, true, &[kv("a", Some("1")), kv("b", Some("1"))]), 0).unwrap();
    let marker = log.append_marker(11, 3, true, 0, 0).unwrap().base_offset;
    append(&log, vec![kv("a", Some("2")), kv("b", Some("2"))], 0, Compression::None);
    fill(&log, 3, 0);
    for now in [10, 20, 30] {
        clean_log(&log, now).unwrap();
    }
    let h = BatchHeader::parse_checked(&raw_batch(&log, first.base_offset)).unwrap();
    assert_eq!((h.record_count, h.producer_id, h.base_sequence, h.last_offset()), (0, 11, 0, first.last_offset));
    assert!(h.is_transactional());
    assert_eq!(markers(&log), vec![(marker, true, None)]);
    // Once the producer writes again, the old empty batch and then its marker go.
    log.append(&producer_batch(11, 2, false, &[kv("c", Some("1"))]), 0).unwrap();
    fill(&log, log.segment_count() + 1, 0);
    for now in [40, 50, 60] {
        clean_log(&log, now).unwrap();
    }
    assert_eq!(markers(&log), vec![]);
    let mut bases = Vec::new();
    log.scan(|h, _, _| {
        bases.push(h.base_offset);
        Ok(())
    })
    .unwrap();
    assert!(!bases.contains(&first.base_offset), "the old empty batch went");
    assert_eq!(read_all(&log).iter().filter(|r| r.1 == "c").count(), 1);
}
