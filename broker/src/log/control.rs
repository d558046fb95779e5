//! Transaction markers: the control batches a coordinator writes to end a transaction.
//!
//! A marker is a batch with the control and transactional attributes, the producer's id and
//! epoch, base sequence -1 and one record. Its key is version `i16` (0) and type `i16` (0 abort,
//! 1 commit); its value is version `i16` (0) and the coordinator epoch `i32` (Kafka's layout).

use bytes::BufMut;

use super::batch::{BatchHeader, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TRANSACTIONAL, HEADER_LEN};

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Commit (else abort).
    pub commit: bool,
    /// Epoch of the coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// A complete marker batch (base offset 0: the log stamps it).
pub fn encode(producer_id: i64, producer_epoch: i16, marker: Marker, timestamp: i64) -> Vec<u8> {
    let fields = Fields {
        base_offset: 0,
        leader_epoch: 0,
        attributes: ATTR_TRANSACTIONAL | ATTR_CONTROL,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id,
        producer_epoch,
        timestamp_delta: 0,
    };
    encode_fields(&fields, marker)
}

/// The marker batch `batch` (header `h`) with its delete horizon set to `horizon_ms` (KIP-534):
/// the flag in the attributes and the horizon in the base timestamp. Base offset, leader epoch,
/// producer, max timestamp and the marker record's own timestamp (now a delta from the
/// horizon) stay as they were. `None` if `batch` holds no marker Rill understands.
pub fn with_delete_horizon(h: &BatchHeader, batch: &[u8], horizon_ms: i64) -> Option<Vec<u8>> {
    let (marker, delta) = decode_with_delta(h, batch)?;
    let record_ts = h.base_timestamp.checked_add(delta)?;
    let fields = Fields {
        base_offset: h.base_offset,
        leader_epoch: h.partition_leader_epoch,
        attributes: h.attributes | ATTR_DELETE_HORIZON,
        base_timestamp: horizon_ms,
        max_timestamp: h.max_timestamp,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        timestamp_delta: record_ts.checked_sub(horizon_ms)?,
    };
    Some(encode_fields(&fields, marker))
}

/// Header fields of a marker batch.
struct Fields {
    base_offset: i64,
    leader_epoch: i32,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    /// The marker record's timestamp minus the base timestamp.
    timestamp_delta: i64,
}

fn encode_fields(f: &Fields, marker: Marker) -> Vec<u8> {
    let mut record = Vec::with_capacity(32);
    record.put_u8(0); // attributes
    put_varint(&mut record, f.timestamp_delta);
    record.put_u8(0); // offset delta (varint 0)
    record.put_u8(8); // key length 4 (zigzag varint)
    record.put_i16(0);
    record.put_i16(marker.commit as i16);
    record.put_u8(12); // value length 6
    record.put_i16(0);
    record.put_i32(marker.coordinator_epoch);
    record.put_u8(0); // no headers
    let mut b = Vec::with_capacity(HEADER_LEN + 1 + record.len());
    b.put_i64(f.base_offset);
    b.put_i32(0); // length, patched below
    b.put_i32(f.leader_epoch);
    b.put_i8(2); // magic
    b.put_u32(0); // CRC, patched below
    b.put_i16(f.attributes);
    b.put_i32(0); // last offset delta
    b.put_i64(f.base_timestamp);
    b.put_i64(f.max_timestamp);
    b.put_i64(f.producer_id);
    b.put_i16(f.producer_epoch);
    b.put_i32(-1); // base sequence
    b.put_i32(1); // record count
    put_varint(&mut b, record.len() as i64);
    b.extend_from_slice(&record);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A zigzag varint, as record fields are encoded.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Read the marker in a control batch (`batch` holds the whole batch); `None` if the batch is
/// not a control batch or its record is not a marker Rill understands.
pub fn decode(h: &BatchHeader, batch: &[u8]) -> Option<Marker> {
    decode_with_delta(h, batch).map(|(m, _)| m)
}

/// [`decode`], with the marker record's timestamp delta.
fn decode_with_delta(h: &BatchHeader, batch: &[u8]) -> Option<(Marker, i64)> {
    if !h.is_control() || h.compression() != 0 || batch.len() < HEADER_LEN + 1 {
        return None;
    }
    let mut r = Reader { buf: &batch[HEADER_LEN..], pos: 0 };
    let _len = r.varint()?;
    let _attrs = r.byte()?;
    let ts_delta = r.varint()?;
    let _delta = r.varint()?;
    let klen = r.varint()?;
    if klen < 4 {
        return None;
    }
    let key = r.take(klen as usize)?;
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let vlen = r.varint()?;
    let coordinator_epoch = if vlen >= 6 {
        let v = r.take(vlen as usize)?;
        i32::from_be_bytes([v[2], v[3], v[4], v[5]])
    } else {
        -1
    };
    match kind {
        0 | 1 => Some((Marker { commit: kind == 1, coordinator_epoch }, ts_delta)),
        _ => None,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn varint(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            raw |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_control_batch_the_protocol_crate_reads() {
        for commit in [true, false] {
            let m = Marker { commit, coordinator_epoch: 7 };
            let b = encode(42, 3, m, 1000);
            let h = BatchHeader::parse_checked(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.record_count), (42, 3, -1, 1));
            assert_eq!(decode(&h, &b), Some(m));
            let set = crate::log::validate::decode_batch(&b).unwrap();
            assert_eq!(set.records.len(), 1);
            assert!(set.records[0].control);
        }
    }

    #[test]
    fn a_delete_horizon_keeps_the_marker_and_its_record_timestamp() {
        let m = Marker { commit: false, coordinator_epoch: 4 };
        let mut b = encode(42, 3, m, 1_000);
        b[0..8].copy_from_slice(&77i64.to_be_bytes());
        b[12..16].copy_from_slice(&5i32.to_be_bytes());
        let h = BatchHeader::parse_checked(&b).unwrap();
        for horizon in [1_000, 86_401_000, 0, i64::from(i32::MAX) * 1_000] {
            let s = with_delete_horizon(&h, &b, horizon).unwrap();
            let sh = BatchHeader::parse_checked(&s).unwrap();
            assert_eq!(sh.delete_horizon_ms(), Some(horizon));
            assert_eq!((sh.base_offset, sh.partition_leader_epoch, sh.max_timestamp), (77, 5, 1_000));
            assert_eq!((sh.producer_id, sh.producer_epoch, sh.record_count, sh.last_offset_delta), (42, 3, 1, 0));
            assert!(sh.is_control() && sh.is_transactional());
            assert_eq!(decode(&sh, &s), Some(m));
            let set = crate::log::validate::decode_batch(&s).unwrap();
            assert_eq!((set.records[0].timestamp, set.records[0].offset), (1_000, 77));
            assert!(set.records[0].delete_horizon);
        }
        assert_eq!(h.delete_horizon_ms(), None);
    }
}
