//! Producer-state snapshots: `<offset>.snapshot` holds the state of every producer after all
//! batches below `offset`, so an open replays only the log after the newest usable snapshot.
//!
//! Written at every segment roll (named by the new segment's base) and at clean shutdown (named
//! by the log end offset); the newest [`KEPT`] are kept. Format (big-endian): version `u16` (1),
//! CRC-32C `u32` of everything after it, entry count `u32`, then per producer: id `i64`, epoch
//! `i16`, coordinator epoch `i32`, open transaction's first offset `i64` (-1: none), last append
//! time `i64`, batch count `u8`, and per batch first sequence `i32`, last sequence `i32`, last
//! offset `i64`, offset delta `i32`, append time `i64`. A snapshot that fails its CRC is ignored.

use std::fs;
use std::io;
use std::path::Path;

use bytes::{Buf, BufMut};

use super::checkpoint;
use super::producer_state::{BatchMeta, ProducerEntry, ProducerState};
use super::segment::file_name;

const VERSION: u16 = 1;
/// Snapshots kept per partition.
pub const KEPT: usize = 2;

/// Offsets of the snapshots in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out: Vec<i64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok()?.strip_suffix(".snapshot")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Encode `state` as a snapshot file's contents.
pub fn encode(state: &ProducerState) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + state.len() * 100);
    body.put_u32(state.len() as u32);
    let mut entries: Vec<(i64, &ProducerEntry)> = state.entries().collect();
    entries.sort_unstable_by_key(|(p, _)| *p);
    for (pid, e) in entries {
        body.put_i64(pid);
        body.put_i16(e.epoch);
        body.put_i32(e.coordinator_epoch);
        body.put_i64(e.txn_first_offset.unwrap_or(-1));
        body.put_i64(e.last_append_ms);
        body.put_u8(e.batches().len() as u8);
        for b in e.batches() {
            body.put_i32(b.first_seq);
            body.put_i32(b.last_seq);
            body.put_i64(b.last_offset);
            body.put_i32(b.offset_delta);
            body.put_i64(b.append_ms);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 6);
    out.put_u16(VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.extend_from_slice(&body);
    out
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("producer snapshot: {what}"))
}

/// Decode a snapshot file's contents.
pub fn decode(mut data: &[u8]) -> io::Result<ProducerState> {
    if data.len() < 10 {
        return Err(bad("too short"));
    }
    let version = data.get_u16();
    if version != VERSION {
        return Err(bad(&format!("unknown version {version}")));
    }
    let crc = data.get_u32();
    if crc32c::crc32c(data) != crc {
        return Err(bad("CRC mismatch"));
    }
    let count = data.get_u32();
    let mut state = ProducerState::new();
    for _ in 0..count {
        if data.remaining() < 31 {
            return Err(bad("truncated entry"));
        }
        let pid = data.get_i64();
        let mut e = ProducerEntry::new(data.get_i16());
        e.coordinator_epoch = data.get_i32();
        let first = data.get_i64();
        e.txn_first_offset = (first >= 0).then_some(first);
        e.last_append_ms = data.get_i64();
        let n = data.get_u8();
        if data.remaining() < n as usize * 28 {
            return Err(bad("truncated batches"));
        }
        for _ in 0..n {
            e.push(BatchMeta {
                first_seq: data.get_i32(),
                last_seq: data.get_i32(),
                last_offset: data.get_i64(),
                offset_delta: data.get_i32(),
                append_ms: data.get_i64(),
            });
        }
        state.insert(pid, e);
    }
    if data.has_remaining() {
        return Err(bad("trailing bytes"));
    }
    Ok(state)
}

/// Write the snapshot at `offset` durably and delete all but the newest [`KEPT`].
pub fn write(dir: &Path, offset: i64, state: &ProducerState) -> io::Result<()> {
    checkpoint::write_atomic(&dir.join(file_name(offset, "snapshot")), &encode(state))?;
    let all = list(dir)?;
    for old in all.iter().take(all.len().saturating_sub(KEPT)) {
        remove(dir, *old)?;
    }
    Ok(())
}

/// Delete the snapshot at `offset` if there is one.
pub fn remove(dir: &Path, offset: i64) -> io::Result<()> {
    match fs::remove_file(dir.join(file_name(offset, "snapshot"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The newest readable snapshot at or below `max_offset`, with its offset. Snapshots above
/// `max_offset` (the log was cut below them) are deleted; unreadable ones are skipped with a
/// warning.
pub fn load_latest(dir: &Path, max_offset: i64) -> io::Result<Option<(i64, ProducerState)>> {
    let all = list(dir)?;
    for &off in all.iter().rev() {
        if off > max_offset {
            remove(dir, off)?;
            continue;
        }
        match fs::read(dir.join(file_name(off, "snapshot"))).and_then(|d| decode(&d)) {
            Ok(state) => return Ok(Some((off, state))),
            Err(e) => tracing::warn!(dir = %dir.display(), offset = off, error = %e, "ignoring producer snapshot"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProducerState {
        let mut s = ProducerState::new();
        let mut e = ProducerEntry::new(3);
        e.coordinator_epoch = 2;
        e.txn_first_offset = Some(40);
        e.last_append_ms = 1234;
        for i in 0..7 {
            e.push(BatchMeta {
                first_seq: i * 2,
                last_seq: i * 2 + 1,
                last_offset: 10 + i as i64,
                offset_delta: 1,
                append_ms: 5,
            });
        }
        s.insert(17, e);
        s.insert(18, ProducerEntry::new(0));
        s
    }

    #[test]
    fn a_snapshot_round_trips() {
        let s = sample();
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.get(17), s.get(17));
        assert_eq!(back.get(18), s.get(18));
        assert_eq!(back.first_unstable_offset(), Some(40));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let data = encode(&sample());
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0x40;
            assert!(decode(&d).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn load_latest_skips_snapshots_past_the_log_end_and_unreadable_ones() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, &sample()).unwrap();
        write(dir.path(), 20, &ProducerState::new()).unwrap();
        write(dir.path(), 30, &ProducerState::new()).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![20, 30], "only the newest two are kept");
        fs::write(dir.path().join(file_name(20, "snapshot")), b"garbage garbage").unwrap();
        assert!(load_latest(dir.path(), 25).unwrap().is_none());
        assert_eq!(list(dir.path()).unwrap(), vec![20], "the one past the end is gone");
    }
}
