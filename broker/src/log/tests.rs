//! Tests of the partition log through [`Log`]: append and read, rolling and indexes, timestamps,
//! validation, retention, recovery from torn or corrupt files, and group commit.
//!
//! Fault tests are seeded from fixed bases so that every run is the same; a failure names its
//! seed, and `RILL_LOG_SEED=<seed> cargo test -p rill-broker log::tests` replays that one seed.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_core::records::{encode_batch, ProducerRecord};

use super::batch::test_util::{batch, keyed_batch};
use super::batch::{self, BatchError, BatchHeader};
use super::checkpoint;
use super::segment::file_name;
use super::{AppendInfo, Log, LogConfig, LogError, OpenStats, LOG_START_FILE, RECOVERY_POINT_FILE};

const SEED_ENV: &str = "RILL_LOG_SEED";
const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// `count` seeds from `base`, or just `$RILL_LOG_SEED` when it is set.
fn seeds(base: u64, count: u64) -> Vec<u64> {
    match std::env::var(SEED_ENV) {
        Ok(s) => vec![s.trim().parse().expect("RILL_LOG_SEED must be an unsigned integer")],
        Err(_) => (base..base + count).collect(),
    }
}

/// A temporary directory, on tmpfs when there is one: these tests fsync thousands of times and
/// nothing they check depends on the disk.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| tempfile::tempdir_in(shm).ok())
        .flatten()
        .unwrap_or_else(|| tempfile::tempdir().expect("create a temporary directory"))
}

fn config(overrides: &[(&str, &str)]) -> LogConfig {
    LogConfig::default().with_overrides(overrides.iter().copied()).expect("valid test config")
}

fn open(dir: &Path, cfg: &LogConfig, clean: bool) -> (Log, OpenStats) {
    Log::open(dir, cfg.clone(), clean, 0).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn assert_no_recovery(stats: &OpenStats, ctx: &str) {
    assert_eq!(
        (stats.recovered_segments, stats.truncated_bytes, stats.dropped_segments),
        (0, 0, 0),
        "{ctx}: a clean open must trust the files as they are"
    );
}

/// Encode one batch from (key, value, timestamp) records, as a producer would send it.
/// One record to encode: key, value, timestamp.
type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

fn encode(records: &[Rec], compression: Compression) -> Bytes {
    let records: Vec<ProducerRecord> = records
        .iter()
        .map(|(k, v, ts)| ProducerRecord {
            key: k.map(Bytes::copy_from_slice),
            value: v.map(Bytes::copy_from_slice),
            headers: Vec::new(),
            timestamp: Some(*ts),
        })
        .collect();
    encode_batch(&records, compression, 0).expect("encode")
}

/// A batch whose records carry the given timestamps.
fn ts_batch(timestamps: &[i64], compression: Compression) -> Bytes {
    let recs: Vec<Rec> = timestamps.iter().map(|t| (Some(&b"key"[..]), Some(&b"some value"[..]), *t)).collect();
    encode(&recs, compression)
}

/// 1..=12 records with random keys, random (incompressible) values of 0..120 bytes and random,
/// non-monotonic timestamps, under a random codec.
fn random_batch(rng: &mut StdRng) -> Bytes {
    let base_ts = rng.gen_range(1_000..100_000i64);
    random_batch_at(rng, base_ts)
}

/// [`random_batch`] with timestamps within 500 ms of `base_ts`.
fn random_batch_at(rng: &mut StdRng, base_ts: i64) -> Bytes {
    let n = rng.gen_range(1..=12);
    let codec = CODECS[rng.gen_range(0..CODECS.len())];
    let owned: Vec<(Vec<u8>, Vec<u8>, i64)> = (0..n)
        .map(|_| {
            let key = format!("k{}", rng.gen_range(0..50)).into_bytes();
            let value: Vec<u8> = (0..rng.gen_range(0..120)).map(|_| rng.gen()).collect();
            (key, value, base_ts + rng.gen_range(-500..500))
        })
        .collect();
    let recs: Vec<_> = owned.iter().map(|(k, v, t)| (Some(&k[..]), Some(&v[..]), *t)).collect();
    encode(&recs, codec)
}

fn record_timestamps(b: &Bytes) -> Vec<i64> {
    let mut buf = b.clone();
    RecordBatchDecoder::decode(&mut buf).expect("decode").records.iter().map(|r| r.timestamp).collect()
}

/// One batch as the producer sent it, and the offset the log gave it.
#[derive(Debug, Clone)]
struct Sent {
    base: i64,
    bytes: Bytes,
    /// Timestamp of each record, in offset order.
    ts: Vec<i64>,
}

impl Sent {
    fn next(&self) -> i64 {
        self.base + self.ts.len() as i64
    }
}

/// Append `batches` as one produce request; record where each landed in `sent`.
fn append(log: &Log, sent: &mut Vec<Sent>, batches: &[Bytes], now_ms: i64) -> AppendInfo {
    let info = log.append(&batches.concat(), now_ms).expect("append");
    let mut base = info.base_offset;
    for b in batches {
        let s = Sent { base, bytes: b.clone(), ts: record_timestamps(b) };
        base = s.next();
        sent.push(s);
    }
    assert_eq!(info.last_offset, base - 1, "AppendInfo.last_offset");
    info
}

/// Assert that `stored` is `sent` as the log keeps it: the same bytes but for the base offset and
/// leader epoch, which the broker stamps.
fn assert_stored(stored: &[u8], sent: &Sent, ctx: &str) {
    let h = BatchHeader::parse_checked(stored).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(h.base_offset, sent.base, "{ctx}: base offset");
    assert_eq!(h.partition_leader_epoch, 0, "{ctx}: leader epoch");
    assert_eq!(stored.len(), sent.bytes.len(), "{ctx}: size of batch {}", sent.base);
    assert!(
        stored[8..12] == sent.bytes[8..12] && stored[16..] == sent.bytes[16..],
        "{ctx}: batch {} differs from what was sent",
        sent.base
    );
}

/// Every batch from the log start to the end, in reads of at most `max_bytes`. Panics if a read
/// serves a batch that fails validation (CRC included) or does not move forward.
fn read_all(log: &Log, max_bytes: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let r = log.read(offset, max_bytes).unwrap_or_else(|e| panic!("read({offset}): {e}"));
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_bytes().expect("read slice");
        assert!(!bytes.is_empty(), "read({offset}) served an empty slice");
        for item in batch::batches(&bytes) {
            let (at, h) = item.unwrap_or_else(|e| panic!("read({offset}) served a bad batch: {e}"));
            assert!(h.next_offset() > offset, "read({offset}) went backwards");
            out.push(bytes.slice(at..at + h.size));
            offset = h.next_offset();
        }
    }
    out
}

/// Assert that the log serves exactly the batches of `sent` at or after its log start.
fn assert_log(log: &Log, sent: &[Sent], ctx: &str) {
    let start = log.log_start_offset();
    let want: Vec<&Sent> = sent.iter().filter(|s| s.next() > start).collect();
    for max_bytes in [0, 700, 1 << 20] {
        let got = read_all(log, max_bytes);
        assert_eq!(got.len(), want.len(), "{ctx}: batches served with max_bytes {max_bytes}");
        for (g, w) in got.iter().zip(&want) {
            assert_stored(g, w, ctx);
        }
    }
}

/// The batch a read at `offset` must start with.
fn holding(sent: &[Sent], offset: i64) -> &Sent {
    sent.iter().find(|s| s.next() > offset).expect("offset below the end")
}

/// The first offset at or after `start` whose timestamp is `>= t`.
fn expected_offset_for(sent: &[Sent], start: i64, t: i64) -> Option<i64> {
    sent.iter()
        .flat_map(|s| s.ts.iter().enumerate().map(move |(i, ts)| (s.base + i as i64, *ts)))
        .find(|&(o, ts)| o >= start && ts >= t)
        .map(|(o, _)| o)
}

/// (offset, timestamp) of the first record with the largest timestamp.
fn expected_max(sent: &[Sent]) -> Option<(i64, i64)> {
    let max = sent.iter().flat_map(|s| s.ts.iter().copied()).max()?;
    expected_offset_for(sent, i64::MIN, max).map(|o| (o, max))
}

/// Probe `offset_for_timestamp` at every timestamp in `sent`, its neighbours and both ends; check
/// `max_timestamp` too when nothing was deleted from the front.
fn assert_timestamps(log: &Log, sent: &[Sent], ctx: &str) {
    let start = log.log_start_offset();
    let mut probes: Vec<i64> = sent.iter().flat_map(|s| s.ts.iter().flat_map(|t| [t - 1, *t, t + 1])).collect();
    probes.extend([i64::MIN, -1, 0, i64::MAX]);
    probes.sort_unstable();
    probes.dedup();
    for t in probes {
        assert_eq!(
            log.offset_for_timestamp(t).expect("offset_for_timestamp"),
            expected_offset_for(sent, start, t),
            "{ctx}: first offset with timestamp >= {t} (log start {start})"
        );
    }
    if sent.first().map(|s| s.base) == Some(start) || sent.is_empty() {
        assert_eq!(log.max_timestamp().expect("max_timestamp"), expected_max(sent), "{ctx}: max timestamp");
    }
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs::read_dir(dir)
        .expect("list log dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    bases
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(file_name(base, ext))
}

/// (position, size) of each batch of a segment file that is still intact.
fn layout(data: &[u8]) -> Vec<(usize, usize)> {
    let l: Vec<(usize, usize)> =
        batch::batches(data).map(|b| b.map(|(at, h)| (at, h.size)).expect("intact segment")).collect();
    assert_eq!(l.iter().map(|b| b.1).sum::<usize>(), data.len(), "segment holds whole batches");
    l
}

/// Assert that exactly the segments at `bases` have files on disk.
fn assert_segment_files(dir: &Path, bases: &[i64], ctx: &str) {
    assert_eq!(segment_bases(dir), bases, "{ctx}: segments on disk");
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some((base, _)) = name.split_once('.').and_then(|(b, e)| Some((b.parse::<i64>().ok()?, e))) {
            assert!(bases.contains(&base), "{ctx}: {name} outlived its segment");
        }
    }
}

mod append_read;
mod faults;
mod flush;
mod lifecycle;
mod recovery;
mod replication;
mod retention;
mod txn;
mod validation;
