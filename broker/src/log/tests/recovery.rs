//! Recovery from torn or corrupt segments and indexes, seeded and replayable.

use super::*;

/// Positions in a segment whose damage a reader can detect: everything but the base offset and
/// the leader epoch, which the broker stamps outside the CRC (see `unchecksummed_header_fields`).
fn checked_positions(l: &[(usize, usize)]) -> Vec<usize> {
    l.iter().flat_map(|&(at, size)| (at + 8..at + 12).chain(at + 16..at + size)).collect()
}

#[test]
fn recovery_from_a_damaged_tail_is_exact() {
    for seed in seeds(0x5EED_0000, 50) {
        recover_damaged_tail(seed);
    }
}

fn recover_damaged_tail(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let segment_bytes = rng.gen_range(1024..4096).to_string();
    let interval = ["0", "100", "512", "4096"][rng.gen_range(0..4)];
    let cfg = config(&[("segment.bytes", &segment_bytes), ("index.interval.bytes", interval)]);
    let (log, _) = open(dir.path(), &cfg, false);
    let mut sent = Vec::new();
    let requests = rng.gen_range(8..40);
    let flush_after = if rng.gen_bool(0.5) { Some(rng.gen_range(0..requests)) } else { None };
    for r in 0..requests {
        let batches: Vec<Bytes> = (0..rng.gen_range(1..=3)).map(|_| random_batch(&mut rng)).collect();
        append(&log, &mut sent, &batches, 0);
        if flush_after == Some(r) {
            log.flush().unwrap();
        }
    }
    let recovery_point = checkpoint::read_i64(&dir.path().join(RECOVERY_POINT_FILE)).unwrap().unwrap_or(0);
    // A crash: no flush, no clean marker. Then damage the last segment.
    drop(log);
    let bases = segment_bases(dir.path());
    let last = *bases.last().unwrap();
    let path = seg_path(dir.path(), last, "log");
    let mut data = fs::read(&path).unwrap();
    let l = layout(&data);
    let (damage_at, what) = match rng.gen_range(0..3) {
        0 => {
            let cut = rng.gen_range(0..data.len());
            data.truncate(cut);
            (cut, format!("truncated to {cut} bytes"))
        }
        1 => {
            let candidates = checked_positions(&l);
            let at = candidates[rng.gen_range(0..candidates.len())];
            let n = rng.gen_range(1..=4).min(data.len() - at);
            for b in &mut data[at..at + n] {
                *b ^= rng.gen_range(1..=255u8);
            }
            (at, format!("{n} bytes flipped at {at}"))
        }
        _ => {
            let n = rng.gen_range(1..=100);
            let zeros = rng.gen_bool(0.3);
            let at = data.len();
            data.extend((0..n).map(|_| if zeros { 0 } else { rng.gen::<u8>() }));
            (at, format!("{n} bytes of {} appended", if zeros { "zeros" } else { "garbage" }))
        }
    };
    fs::write(&path, &data).unwrap();
    let ctx = format!("seed {seed}: {what} in segment {last} of {} (replay with {SEED_ENV}={seed})", data.len());

    let whole = l.iter().take_while(|&&(at, size)| at + size <= damage_at).count();
    let kept_bytes = l[..whole].iter().map(|b| b.1).sum::<usize>();
    let first_in_last = sent.iter().position(|s| s.base >= last).unwrap();
    let mut expected = sent[..first_in_last + whole].to_vec();
    let end = expected.last().map(|s| s.next()).unwrap_or(0);
    let recovered =
        (0..bases.len()).filter(|&i| bases.get(i + 1).copied().unwrap_or(i64::MAX) > recovery_point).count();

    let (log, stats) = open(dir.path(), &cfg, false);
    assert_eq!(stats.recovered_segments, recovered, "{ctx}: segments recovered (recovery point {recovery_point})");
    assert_eq!(stats.truncated_bytes, (data.len() - kept_bytes) as u64, "{ctx}: bytes cut");
    assert_eq!(stats.dropped_segments, 0, "{ctx}: segments dropped");
    assert_eq!(log.log_end_offset(), end, "{ctx}: log end offset");
    assert_eq!(log.recovery_point(), end, "{ctx}: a recovered log is flushed");
    assert_log(&log, &expected, &ctx);
    assert_timestamps(&log, &expected, &ctx);

    let info = append(&log, &mut expected, &[random_batch(&mut rng), random_batch(&mut rng)], 0);
    assert_eq!(info.base_offset, end, "{ctx}: offsets continue from the recovered end");
    let end = log.log_end_offset();
    assert_log(&log, &expected, &format!("{ctx}, appended after recovery"));
    log.flush().unwrap();
    drop(log);

    let (log, stats) = open(dir.path(), &cfg, true);
    assert_no_recovery(&stats, &ctx);
    assert_eq!(log.log_end_offset(), end, "{ctx}: clean reopen");
    assert_log(&log, &expected, &format!("{ctx}, clean reopen"));
    assert_timestamps(&log, &expected, &format!("{ctx}, clean reopen"));
}

#[test]
fn a_torn_middle_segment_drops_the_segments_after_it() {
    for seed in seeds(0x7EA2_0000, 10) {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempdir();
        let cfg = config(&[("segment.bytes", "1024"), ("index.interval.bytes", "200")]);
        let (log, _) = open(dir.path(), &cfg, true);
        let mut sent = Vec::new();
        while log.segment_count() < 6 {
            append(&log, &mut sent, &[random_batch(&mut rng)], 0);
        }
        drop(log);
        let bases = segment_bases(dir.path());
        let k = rng.gen_range(0..bases.len() - 1);
        let path = seg_path(dir.path(), bases[k], "log");
        let mut data = fs::read(&path).unwrap();
        let l = layout(&data);
        let j = rng.gen_range(0..l.len());
        let (at, size) = l[j];
        let corrupt = rng.gen_bool(0.5);
        let what = if corrupt {
            let p = at + 16 + rng.gen_range(0..size - 16);
            data[p] ^= 0x08;
            format!("byte {p} flipped")
        } else {
            let cut = at + rng.gen_range(1..size);
            data.truncate(cut);
            format!("cut at {cut}")
        };
        fs::write(&path, &data).unwrap();
        let ctx = format!("seed {seed}: segment {} of {} {what} (replay with {SEED_ENV}={seed})", k, bases.len());

        let first = sent.iter().position(|s| s.base >= bases[k]).unwrap();
        let mut expected = sent[..first + j].to_vec();
        let end = expected.last().map(|s| s.next()).unwrap_or(0);
        let (log, stats) = open(dir.path(), &cfg, false);
        assert_eq!(stats.recovered_segments, k + 1, "{ctx}: recovered");
        assert_eq!(stats.dropped_segments, bases.len() - 1 - k, "{ctx}: dropped");
        assert_eq!(stats.truncated_bytes, (data.len() - at) as u64, "{ctx}: cut");
        assert_segment_files(dir.path(), &bases[..=k], &ctx);
        assert_eq!(log.log_end_offset(), end, "{ctx}");
        assert_log(&log, &expected, &ctx);
        assert_eq!(append(&log, &mut expected, &[random_batch(&mut rng)], 0).base_offset, end, "{ctx}");
        log.flush().unwrap();
        drop(log);
        let (log, stats) = open(dir.path(), &cfg, true);
        assert_no_recovery(&stats, &ctx);
        assert_log(&log, &expected, &format!("{ctx}, clean reopen"));
    }
}

/// The base offset and leader epoch sit outside the CRC, so a flip there is invisible to a CRC
/// check. Recovery still must not serve garbage: offsets stay increasing and inside what a
/// segment can index, and every record served is one that was written.
#[test]
fn unchecksummed_header_fields() {
    let setup = || {
        let dir = tempdir();
        let (log, _) = open(dir.path(), &LogConfig::default(), true);
        let mut sent = Vec::new();
        for i in 0..10 {
            append(&log, &mut sent, &[batch(3, i, Compression::None)], 0);
        }
        drop(log);
        let data = fs::read(seg_path(dir.path(), 0, "log")).unwrap();
        let at = layout(&data)[6].0;
        (dir, sent, data, at)
    };
    // (header byte of batch 6 to change, xor mask, batches served when that is decidable)
    let cases: [(usize, u8, Option<usize>); 6] = [
        (0, 0x40, Some(6)), // base offset 18 + 2^62
        (3, 0x01, Some(6)), // 18 + 2^32: past any offset a segment can index
        (0, 0x80, Some(6)), // negative
        (7, 0x02, Some(6)), // 16: overlaps batch 5
        // 19: a gap of one offset, which looks like a compacted log. Batch 6 is served at 19 and
        // batch 7 (at 21 < 22) is cut.
        (7, 0x01, Some(7)),
        (13, 0x01, None), // leader epoch 65536: served as is
    ];
    for (i, (byte, mask, survivors)) in cases.into_iter().enumerate() {
        let (dir, sent, mut data, at) = setup();
        data[at + byte] ^= mask;
        fs::write(seg_path(dir.path(), 0, "log"), &data).unwrap();
        let ctx = format!("case {i}: byte {byte} of batch 6 ^ {mask:#04x}");
        let (log, _) = open(dir.path(), &LogConfig::default(), false);
        let served = read_all(&log, u64::MAX);
        for (g, w) in served.iter().zip(&sent[..6]) {
            assert_stored(g, w, &ctx);
        }
        let mut prev = -1;
        for g in &served {
            let h = BatchHeader::parse_checked(g).unwrap();
            assert!(h.base_offset > prev, "{ctx}: offsets must increase");
            assert!(h.last_offset() <= u32::MAX as i64, "{ctx}: offset {} past the segment's range", h.base_offset);
            assert!(sent.iter().any(|s| s.bytes[16..] == g[16..]), "{ctx}: served records never written");
            prev = h.last_offset();
        }
        if let Some(n) = survivors {
            assert_eq!(served.len(), n, "{ctx}: batches kept");
        }
        assert!(log.log_end_offset() <= 31, "{ctx}: log end offset {}", log.log_end_offset());
    }
}

/// A sealed segment's indexes that are missing, torn or wrong are rebuilt on a clean open.
#[test]
fn damaged_indexes_of_a_sealed_segment_are_rebuilt() {
    type Damage = fn(&Path, &Path, &mut StdRng);
    let cases: Vec<(&str, Damage)> = vec![
        ("index deleted", |idx, _, _| fs::remove_file(idx).unwrap()),
        ("time index deleted", |_, tix, _| fs::remove_file(tix).unwrap()),
        ("index torn", |idx, _, _| {
            let len = fs::metadata(idx).unwrap().len();
            fs::OpenOptions::new().write(true).open(idx).unwrap().set_len(len - 3).unwrap()
        }),
        ("time index torn", |_, tix, _| {
            let len = fs::metadata(tix).unwrap().len();
            fs::OpenOptions::new().write(true).open(tix).unwrap().set_len(len - 5).unwrap()
        }),
        ("time index emptied", |_, tix, _| fs::write(tix, b"").unwrap()),
        ("index garbage", |idx, _, rng| {
            let len = fs::metadata(idx).unwrap().len() as usize;
            fs::write(idx, (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<_>>()).unwrap()
        }),
        ("time index garbage", |_, tix, rng| {
            let len = fs::metadata(tix).unwrap().len() as usize;
            fs::write(tix, (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<_>>()).unwrap()
        }),
        ("index entry past the end of the log", |idx, _, _| {
            let mut data = fs::read(idx).unwrap();
            data.extend_from_slice(&[0, 0, 0x10, 0, 0, 0x10, 0, 0]);
            fs::write(idx, data).unwrap()
        }),
        ("index entry inside a batch", |idx, _, _| {
            let mut data = fs::read(idx).unwrap();
            let n = data.len();
            let rel = u32::from_be_bytes(data[n - 8..n - 4].try_into().unwrap());
            let pos = u32::from_be_bytes(data[n - 4..].try_into().unwrap());
            data.extend_from_slice(&(rel + 1).to_be_bytes());
            data.extend_from_slice(&(pos + 20).to_be_bytes());
            fs::write(idx, data).unwrap()
        }),
        ("time index entry with a timestamp never written", |_, tix, _| {
            let mut data = fs::read(tix).unwrap();
            let n = data.len();
            let ts = i64::from_be_bytes(data[n - 12..n - 4].try_into().unwrap());
            let rel = data[n - 4..].to_vec();
            data.extend_from_slice(&(ts + 1_000_000).to_be_bytes());
            data.extend_from_slice(&rel);
            fs::write(tix, data).unwrap()
        }),
    ];
    for (i, (name, damage)) in cases.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(0x1DE7 + i as u64);
        let dir = tempdir();
        let cfg = config(&[("segment.bytes", "4096"), ("index.interval.bytes", "128")]);
        let (log, _) = open(dir.path(), &cfg, true);
        let mut sent = Vec::new();
        // Timestamps rise by 300 ms a batch, with dips: several entries in each time index.
        while log.segment_count() < 4 {
            let ts = 10_000 + 300 * sent.len() as i64;
            append(&log, &mut sent, &[random_batch_at(&mut rng, ts)], 0);
        }
        log.flush().unwrap();
        drop(log);
        let base = segment_bases(dir.path())[1];
        let (idx, tix) = (seg_path(dir.path(), base, "index"), seg_path(dir.path(), base, "timeindex"));
        assert!(fs::metadata(&idx).unwrap().len() >= 16 && fs::metadata(&tix).unwrap().len() >= 24, "{name}: setup");
        damage(&idx, &tix, &mut rng);
        let (log, stats) = open(dir.path(), &cfg, true);
        assert_eq!(
            (stats.recovered_segments, stats.truncated_bytes, stats.dropped_segments),
            (1, 0, 0),
            "{name}: the segment is recovered, no data is lost"
        );
        assert_log(&log, &sent, name);
        assert_timestamps(&log, &sent, name);
        for offset in (0..log.log_end_offset()).step_by(3) {
            let bytes = log.read(offset, 0).unwrap().slice.unwrap().read_bytes().unwrap();
            assert_stored(&bytes, holding(&sent, offset), name);
        }
        drop(log);
        let (log, stats) = open(dir.path(), &cfg, true);
        assert_no_recovery(&stats, &format!("{name}, rebuilt indexes"));
        assert_timestamps(&log, &sent, name);
    }
}
