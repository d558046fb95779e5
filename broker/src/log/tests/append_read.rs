//! Append and read, rolling and indexes, ListOffsets by timestamp, config changes.

use super::*;

#[test]
fn append_assigns_consecutive_offsets_and_keeps_batches_verbatim() {
    let dir = tempdir();
    let (log, stats) = open(dir.path(), &LogConfig::default(), true);
    assert_no_recovery(&stats, "fresh log");
    let requests = vec![
        vec![batch(1, 1000, Compression::None)],
        vec![batch(3, 1001, Compression::Gzip), batch(2, 1004, Compression::None), batch(5, 1006, Compression::Lz4)],
        vec![batch(4, 1011, Compression::Snappy), batch(1, 1015, Compression::Zstd)],
        vec![keyed_batch([("a".to_string(), None), ("b".to_string(), Some("x".to_string()))], 1016, Compression::None)],
    ];
    let mut sent = Vec::new();
    for req in &requests {
        let end = log.log_end_offset();
        let records: i64 = req.iter().map(|b| BatchHeader::parse(b).unwrap().record_count as i64).sum();
        let info = append(&log, &mut sent, req, 0);
        assert_eq!(
            info,
            AppendInfo {
                base_offset: end,
                last_offset: end + records - 1,
                log_append_time: -1,
                log_start_offset: 0,
                flush_to: None
            }
        );
        assert_eq!(log.log_end_offset(), end + records);
    }
    assert_eq!(log.log_end_offset(), 18);
    assert_log(&log, &sent, "after appends");
    // Each stored batch decodes to the records that were sent, at their new offsets.
    let all = log.read(0, u64::MAX).unwrap().slice.unwrap().read_bytes().unwrap();
    let decoded = RecordBatchDecoder::decode_all(&mut all.clone()).unwrap();
    let offsets: Vec<i64> = decoded.iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect();
    assert_eq!(offsets, (0..18).collect::<Vec<_>>());
    assert_eq!(decoded[1].records[2].value.as_deref(), Some(&b"value-2"[..]));
}

#[test]
fn reads_return_whole_batches_within_max_bytes() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &LogConfig::default(), true);
    let mut sent = Vec::new();
    let batches = [batch(4, 0, Compression::None), batch(6, 10, Compression::Gzip), batch(3, 20, Compression::None)];
    append(&log, &mut sent, &batches, 0);
    let end = log.log_end_offset();
    // From any offset, even inside a batch, the read starts with the whole batch holding it.
    for offset in 0..end {
        let r = log.read(offset, 0).unwrap();
        assert_eq!((r.high_watermark, r.log_start_offset), (end, 0));
        let bytes = r.slice.expect("data below the end").read_bytes().unwrap();
        assert_stored(&bytes, holding(&sent, offset), &format!("read({offset}, 0)"));
    }
    let size = |i: usize| sent[i].bytes.len() as u64;
    // (offset, max_bytes, batches expected): at least one batch, never a partial one.
    let cases = [
        (0, 0, 1),
        (0, 1, 1),
        (0, size(0), 1),
        (0, size(0) + size(1) - 1, 1),
        (0, size(0) + size(1), 2),
        (0, size(0) + size(1) + size(2), 3),
        (0, u64::MAX, 3),
        (5, size(1) + size(2) - 1, 1),
        (5, size(1) + size(2), 2),
        (12, 0, 1),
    ];
    for (offset, max_bytes, n) in cases {
        let bytes = log.read(offset, max_bytes).unwrap().slice.unwrap().read_bytes().unwrap();
        let got: Vec<_> = batch::batches(&bytes).map(|b| b.unwrap()).collect();
        assert_eq!(got.len(), n, "read({offset}, {max_bytes})");
        let first = sent.iter().position(|s| s.next() > offset).unwrap();
        for (i, (at, h)) in got.iter().enumerate() {
            assert_stored(&bytes[*at..at + h.size], &sent[first + i], &format!("read({offset}, {max_bytes})"));
        }
    }
}

#[test]
fn reads_at_the_end_are_empty_and_outside_the_log_are_out_of_range() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &LogConfig::default(), true);
    let r = log.read(0, 100).unwrap();
    assert!(r.slice.is_none());
    assert_eq!((r.high_watermark, r.log_start_offset), (0, 0));
    assert!(matches!(log.read(1, 100), Err(LogError::OffsetOutOfRange { offset: 1, start: 0, end: 0 })));
    append(&log, &mut Vec::new(), &[batch(5, 0, Compression::None), batch(5, 5, Compression::None)], 0);
    let r = log.read(10, 100).unwrap();
    assert!(r.slice.is_none(), "a read at the log end has nothing to serve");
    assert_eq!(r.high_watermark, 10);
    for offset in [11, 1000, -1, i64::MIN] {
        match log.read(offset, 100) {
            Err(LogError::OffsetOutOfRange { offset: o, start: 0, end: 10 }) => assert_eq!(o, offset),
            other => panic!("read({offset}): {other:?}"),
        }
    }
    assert_eq!(log.delete_records(7).unwrap(), 7);
    assert!(matches!(log.read(6, 100), Err(LogError::OffsetOutOfRange { offset: 6, start: 7, end: 10 })));
    let r = log.read(7, 0).unwrap();
    assert_eq!(r.log_start_offset, 7);
    let h = BatchHeader::parse(&r.slice.unwrap().read_bytes().unwrap()).unwrap();
    assert_eq!(h.base_offset, 5, "the batch holding the log start is served whole");
}

// ---------------------------------------------------------------------------------------------
// Rolling and indexes

#[test]
fn rolls_on_segment_bytes_and_reads_across_segments() {
    let dir = tempdir();
    let cfg = config(&[("segment.bytes", "2048"), ("index.interval.bytes", "256")]);
    let (log, _) = open(dir.path(), &cfg, true);
    let mut rng = StdRng::seed_from_u64(7);
    let mut sent = Vec::new();
    // Offset ranges of the requests: a segment outgrows segment.bytes only with one request.
    let mut requests = Vec::new();
    for _ in 0..60 {
        let n = rng.gen_range(1..=2);
        let batches: Vec<Bytes> = (0..n).map(|_| random_batch(&mut rng)).collect();
        let info = append(&log, &mut sent, &batches, 0);
        requests.push((info.base_offset, info.last_offset + 1));
    }
    // A batch larger than segment.bytes still goes in, alone in its segment.
    let big = encode(&[(Some(&b"k"[..]), Some(&[7u8; 3000][..]), 5)], Compression::None);
    append(&log, &mut sent, std::slice::from_ref(&big), 0);
    append(&log, &mut sent, &[random_batch(&mut rng)], 0);

    let bases = segment_bases(dir.path());
    assert!(bases.len() > 10, "{} segments", bases.len());
    assert_eq!(log.segment_count(), bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let data = fs::read(seg_path(dir.path(), base, "log")).unwrap();
        let l = layout(&data);
        let first = BatchHeader::parse(&data).unwrap();
        assert_eq!(first.base_offset, base, "a segment is named after its first offset");
        let next = BatchHeader::parse(&data[l.last().unwrap().0..]).unwrap().next_offset();
        assert!(
            data.len() <= 2048 || l.len() == 1 || requests.contains(&(base, next)),
            "segment {base} is {} bytes",
            data.len()
        );
        if let Some(&following) = bases.get(i + 1) {
            assert_eq!(next, following, "segments are contiguous");
        }
    }
    let big_at = sent.iter().find(|s| s.bytes == big).unwrap().base;
    assert!(bases.contains(&big_at) && bases.contains(&(big_at + 1)));
    assert_log(&log, &sent, "after rolling");
    let end = log.log_end_offset();
    drop(log);
    for clean in [true, false] {
        let (log, _) = open(dir.path(), &cfg, clean);
        assert_eq!(log.log_end_offset(), end);
        assert_log(&log, &sent, &format!("reopened (clean: {clean})"));
    }
}

#[test]
fn rolls_on_segment_ms() {
    let dir = tempdir();
    let cfg = config(&[("segment.ms", "1000")]);
    let (log, _) = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    let mut sent = Vec::new();
    // (now_ms, segments after appending then)
    let steps = [(0, 1), (999, 1), (1000, 2), (1500, 2), (1999, 2), (2000, 3), (9000, 4), (9001, 4)];
    for (now, segments) in steps {
        append(&log, &mut sent, &[batch(2, now, Compression::None)], now);
        assert_eq!(log.segment_count(), segments, "after an append at {now} ms");
    }
    assert_log(&log, &sent, "after time rolls");
    // An empty active segment never rolls, however old.
    let dir = tempdir();
    let (log, _) = Log::open(dir.path(), cfg, true, 0).unwrap();
    append(&log, &mut Vec::new(), &[batch(1, 0, Compression::None)], 50_000);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn index_interval_does_not_change_answers() {
    let mut rng = StdRng::seed_from_u64(11);
    let requests: Vec<Vec<Bytes>> =
        (0..50).map(|_| (0..rng.gen_range(1..=3)).map(|_| random_batch(&mut rng)).collect()).collect();
    let mut answers = Vec::new();
    for interval in ["0", "1", "100", "4096", "100000000"] {
        let dir = tempdir();
        let cfg = config(&[("segment.bytes", "8192"), ("index.interval.bytes", interval)]);
        let (log, _) = open(dir.path(), &cfg, true);
        let mut sent = Vec::new();
        for req in &requests {
            append(&log, &mut sent, req, 0);
        }
        let ctx = format!("index.interval.bytes={interval}");
        assert_log(&log, &sent, &ctx);
        assert_timestamps(&log, &sent, &ctx);
        log.flush().unwrap();
        drop(log);
        let (log, stats) = open(dir.path(), &cfg, true);
        assert_no_recovery(&stats, &ctx);
        let mut reads = Vec::new();
        for offset in 0..log.log_end_offset() {
            for max_bytes in [0, 500, 5000] {
                let bytes = log.read(offset, max_bytes).unwrap().slice.unwrap().read_bytes().unwrap();
                assert_stored(&bytes[..BatchHeader::parse(&bytes).unwrap().size], holding(&sent, offset), &ctx);
                reads.push(bytes);
            }
        }
        assert_timestamps(&log, &sent, &format!("{ctx}, reopened"));
        answers.push(reads);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "reads differ between index intervals");
}

// ---------------------------------------------------------------------------------------------
// ListOffsets by timestamp

#[test]
fn offset_for_timestamp_table() {
    let dir = tempdir();
    // Small segments: every request below lands in its own segment.
    let cfg = config(&[("segment.bytes", "100"), ("index.interval.bytes", "0")]);
    let (log, _) = open(dir.path(), &cfg, true);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
    let mut sent = Vec::new();
    append(&log, &mut sent, &[ts_batch(&[100, 105, 103], Compression::None)], 0); // offsets 0..3
    append(&log, &mut sent, &[ts_batch(&[50, 60], Compression::Gzip)], 0); // 3..5
    append(&log, &mut sent, &[ts_batch(&[300, 200, 400], Compression::Zstd)], 0); // 5..8
    append(&log, &mut sent, &[ts_batch(&[400, 10], Compression::Lz4)], 0); // 8..10
    assert_eq!(log.segment_count(), 4);
    let cases = [
        (i64::MIN, Some(0)),
        (0, Some(0)),
        (100, Some(0)),
        (101, Some(1)),
        (104, Some(1)),
        (105, Some(1)),
        (106, Some(5)),
        (200, Some(5)),
        (301, Some(7)),
        (400, Some(7)),
        (401, None),
    ];
    for (t, want) in cases {
        assert_eq!(log.offset_for_timestamp(t).unwrap(), want, "timestamp {t}");
    }
    assert_eq!(log.max_timestamp().unwrap(), Some((7, 400)));
    assert_timestamps(&log, &sent, "table");
    // Records below the log start are not answers, even inside the batch holding it.
    log.delete_records(2).unwrap();
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some(5), "offset 1 (105) is below the log start");
    assert_eq!(log.offset_for_timestamp(100).unwrap(), Some(2));
    assert_timestamps(&log, &sent, "log start 2");
    log.delete_records(9).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(9));
    assert_eq!(log.offset_for_timestamp(11).unwrap(), None, "offset 9 has timestamp 10");
    // As in Kafka, the largest timestamp is reported where it is, even below the log start.
    assert_eq!(log.max_timestamp().unwrap(), Some((8, 400)));
}

#[test]
fn offset_for_timestamp_random_logs() {
    for seed in seeds(0x7153_0000, 8) {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempdir();
        let interval = ["0", "128", "4096"][rng.gen_range(0..3)];
        let cfg = config(&[("segment.bytes", "1500"), ("index.interval.bytes", interval)]);
        let (log, _) = open(dir.path(), &cfg, true);
        let mut sent = Vec::new();
        for _ in 0..rng.gen_range(10..40) {
            append(&log, &mut sent, &[random_batch(&mut rng)], 0);
        }
        let ctx = format!("seed {seed} (replay with {SEED_ENV}={seed})");
        assert_timestamps(&log, &sent, &ctx);
        let start = rng.gen_range(0..log.log_end_offset());
        log.delete_records(start).unwrap();
        assert_timestamps(&log, &sent, &format!("{ctx}, log start {start}"));
        drop(log);
        let (log, _) = open(dir.path(), &cfg, true);
        assert_timestamps(&log, &sent, &format!("{ctx}, reopened"));
    }
}

// ---------------------------------------------------------------------------------------------
// Config changes

#[test]
fn set_config_takes_effect_on_the_next_append() {
    let dir = tempdir();
    let (log, _) = open(dir.path(), &LogConfig::default(), true);
    let mut sent = Vec::new();
    for i in 0..3 {
        append(&log, &mut sent, &[batch(3, i, Compression::None)], 0);
    }
    assert_eq!(log.segment_count(), 1);
    let small = config(&[("segment.bytes", "200"), ("max.message.bytes", "150")]);
    log.set_config(small.clone());
    assert_eq!(log.config(), small);
    append(&log, &mut sent, &[batch(3, 9, Compression::None)], 0);
    assert_eq!(log.segment_count(), 2, "the active segment is past the new segment.bytes");
    assert!(matches!(log.append(&batch(10, 0, Compression::None), 0), Err(LogError::TooLarge { max: 150, .. })));
    assert_log(&log, &sent, "after set_config");
}
