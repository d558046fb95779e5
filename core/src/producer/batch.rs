//! Building one magic-v2 record batch in place, record by record.
//!
//! A [`BatchBuilder`] owns one buffer: 61 bytes reserved for the batch header, then each record
//! encoded as it is appended (the one copy of a record's key, value and headers the producer
//! makes). [`BatchBuilder::seal`] fills in the header (counts, timestamps, producer ids,
//! CRC-32C) and, with a codec, compresses the records section: the codec takes the buffer by move
//! and writes a new, compressed one. Layout (Kafka's `DefaultRecordBatch`):
//!
//! | offset | field |
//! |---|---|
//! | 0 | base offset (i64, 0: the broker assigns) |
//! | 8 | batch length (i32, bytes after this field) |
//! | 12 | partition leader epoch (i32, -1) |
//! | 16 | magic (i8, 2) |
//! | 17 | CRC-32C of everything from offset 21 on (u32) |
//! | 21 | attributes (i16: codec in the low 3 bits) |
//! | 23 | last offset delta (i32) |
//! | 27 | base timestamp, 35: max timestamp (i64) |
//! | 43 | producer id (i64), 51: producer epoch (i16), 53: base sequence (i32) |
//! | 57 | record count (i32), then the records |

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::Compression;

use crate::error::{Error, Result};
use crate::records::ProducerRecord;

/// Bytes of a v2 batch header.
pub(crate) const BATCH_HEADER_LEN: usize = 61;
const ATTRIBUTES_AT: usize = 21;

/// Attribute bit of a batch that belongs to a transaction.
const TRANSACTIONAL: i16 = 0x10;

/// What idempotence stamps on a batch: all -1 (none) for a non-idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIds {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) base_sequence: i32,
    /// Part of a transaction (attribute bit 4).
    pub(crate) transactional: bool,
}

impl ProducerIds {
    /// A non-idempotent producer's batch.
    pub(crate) const NONE: ProducerIds =
        ProducerIds { producer_id: -1, epoch: -1, base_sequence: -1, transactional: false };
}

/// A sealed batch with other producer ids (an idempotent producer re-sequencing a batch after an
/// epoch bump). The ids are covered by the CRC, so this copies the batch and recomputes it: a
/// rare path, taken only for batches being retried across a bump.
pub(crate) fn restamp(sealed: &Bytes, ids: ProducerIds) -> Bytes {
    let mut buf = BytesMut::from(&sealed[..]);
    let attributes = i16::from_be_bytes([buf[21], buf[22]]);
    let attributes = if ids.transactional { attributes | TRANSACTIONAL } else { attributes & !TRANSACTIONAL };
    buf[21..23].copy_from_slice(&attributes.to_be_bytes());
    buf[43..51].copy_from_slice(&ids.producer_id.to_be_bytes());
    buf[51..53].copy_from_slice(&ids.epoch.to_be_bytes());
    buf[53..57].copy_from_slice(&ids.base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

/// One batch being filled.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty batch with room for `capacity` bytes of records.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_LEN + capacity);
        buf.put_bytes(0, BATCH_HEADER_LEN);
        Self { buf, count: 0, base_timestamp: 0, max_timestamp: i64::MIN }
    }

    /// Records appended so far.
    pub(crate) fn count(&self) -> i32 {
        self.count
    }

    /// Bytes of encoded records so far (uncompressed, without the header).
    pub(crate) fn records_len(&self) -> usize {
        self.buf.len() - BATCH_HEADER_LEN
    }

    /// The exact bytes `rec` would take as the next record of this batch.
    pub(crate) fn size_of_next(&self, rec: &ProducerRecord, timestamp: i64) -> usize {
        let delta = if self.count == 0 { 0 } else { timestamp.wrapping_sub(self.base_timestamp) };
        let body = body_len(rec, delta, self.count);
        varint_len(body as i64) + body
    }

    /// Append `rec` with its timestamp. Returns its index (offset delta) in the batch.
    pub(crate) fn append(&mut self, rec: &ProducerRecord, timestamp: i64) -> i32 {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let delta = timestamp.wrapping_sub(self.base_timestamp);
        let index = self.count;
        let body = body_len(rec, delta, index);
        let b = &mut self.buf;
        b.reserve(varint_len(body as i64) + body);
        put_varint(b, body as i64);
        b.put_u8(0); // record attributes: unused
        put_varint(b, delta);
        put_varint(b, index as i64);
        put_bytes_field(b, rec.key.as_deref());
        put_bytes_field(b, rec.value.as_deref());
        put_varint(b, rec.headers.len() as i64);
        for (k, v) in &rec.headers {
            put_bytes_field(b, Some(k.as_bytes()));
            put_bytes_field(b, v.as_deref());
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        index
    }

    /// Finish the batch: compress the records if asked, fill in the header, compute the CRC.
    pub(crate) fn seal(self, compression: Compression, ids: ProducerIds) -> Result<Bytes> {
        let Self { mut buf, count, base_timestamp, max_timestamp } = self;
        if compression != Compression::None && count > 0 {
            let records = buf.split_off(BATCH_HEADER_LEN);
            let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len() / 2 + 64);
            out.extend_from_slice(&buf);
            // The codecs hand us an empty buffer to fill; giving them ours moves it, no copy.
            let give = |tmp: &mut BytesMut| {
                *tmp = records;
                Ok(())
            };
            match compression {
                Compression::Gzip => Gzip::compress(&mut out, give),
                Compression::Snappy => Snappy::compress(&mut out, give),
                Compression::Lz4 => Lz4::compress(&mut out, give),
                Compression::Zstd => Zstd::compress(&mut out, give),
                Compression::None => unreachable!("checked above"),
            }
            .map_err(|e| Error::Protocol(format!("compressing a record batch with {compression:?}: {e:#}")))?;
            buf = out;
        }
        let len = buf.len();
        let h = &mut buf[..BATCH_HEADER_LEN];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = 2;
        let attributes = compression as i16 | if ids.transactional { TRANSACTIONAL } else { 0 };
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        let max_timestamp = if count == 0 { base_timestamp } else { max_timestamp };
        h[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&ids.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&ids.epoch.to_be_bytes());
        h[53..57].copy_from_slice(&ids.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(buf.freeze())
    }
}

/// Bytes of a record after its length prefix.
fn body_len(rec: &ProducerRecord, timestamp_delta: i64, offset_delta: i32) -> usize {
    let mut n = 1 + varint_len(timestamp_delta) + varint_len(offset_delta as i64);
    n += field_len(rec.key.as_deref()) + field_len(rec.value.as_deref());
    n += varint_len(rec.headers.len() as i64);
    for (k, v) in &rec.headers {
        n += field_len(Some(k.as_bytes())) + field_len(v.as_deref());
    }
    n
}

/// An upper bound on the bytes `rec` takes in any batch (for reserving buffer memory before the
/// batch is known): the size with the widest varints for the deltas.
pub(crate) fn max_record_size(rec: &ProducerRecord) -> usize {
    // Deltas counted as 1 byte by body_len(.., 0, 0): widen to 10 (i64) and 5 (i32).
    let body = body_len(rec, 0, 0) + 9 + 4;
    varint_len(body as i64) + body
}

fn field_len(b: Option<&[u8]>) -> usize {
    match b {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

fn put_bytes_field(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

/// Kafka's varint/varlong: zigzag, then 7 bits per byte, least significant first.
fn put_varint(buf: &mut BytesMut, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn varint_len(n: i64) -> usize {
    let z = ((n << 1) ^ (n >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{decode_records, encode_batch};

    fn record(i: usize) -> ProducerRecord {
        ProducerRecord {
            key: (i % 5 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 7 != 3).then(|| Bytes::from(format!("value-{i}-").repeat(1 + i % 40))),
            headers: if i % 3 == 0 {
                vec![("h".into(), Some(Bytes::from_static(b"x"))), ("null".into(), None)]
            } else {
                vec![]
            },
            timestamp: Some(1_700_000_000_000 + (i as i64) * 1_000_003),
        }
    }

    fn build(records: &[ProducerRecord], compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(1024);
        for (i, r) in records.iter().enumerate() {
            let before = b.records_len();
            let size = b.size_of_next(r, r.timestamp.unwrap());
            assert!(size <= max_record_size(r), "record {i}: {size} > bound {}", max_record_size(r));
            assert_eq!(b.append(r, r.timestamp.unwrap()), i as i32);
            assert_eq!(b.records_len() - before, size, "record {i}: size_of_next is exact");
        }
        b.seal(compression, ProducerIds::NONE).unwrap()
    }

    #[test]
    fn uncompressed_batches_match_the_protocol_crates_encoder_byte_for_byte() {
        for n in [1, 2, 17, 300] {
            let recs: Vec<ProducerRecord> = (0..n).map(record).collect();
            let ours = build(&recs, Compression::None);
            let theirs = encode_batch(&recs, Compression::None, 0).unwrap();
            assert_eq!(ours, theirs, "{n} records");
        }
    }

    #[test]
    fn every_codec_decodes_back_to_the_records() {
        let recs: Vec<ProducerRecord> = (0..200).map(record).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let batch = build(&recs, c);
            assert_eq!(i16::from_be_bytes([batch[21], batch[22]]) & 7, c as i16);
            assert_eq!(crc32c::crc32c(&batch[21..]).to_be_bytes(), batch[17..21]);
            let got = decode_records(batch, 0).unwrap();
            assert_eq!(got.len(), recs.len(), "{c:?}");
            for (i, (g, r)) in got.iter().zip(&recs).enumerate() {
                assert_eq!(g.offset, i as i64);
                assert_eq!((&g.key, &g.value, &g.headers), (&r.key, &r.value, &r.headers), "{c:?} record {i}");
                assert_eq!(g.timestamp, r.timestamp.unwrap());
            }
        }
    }

    #[test]
    fn timestamps_before_the_first_record_are_negative_deltas() {
        let mut b = BatchBuilder::new(0);
        let r = ProducerRecord { value: Some(Bytes::from_static(b"v")), ..Default::default() };
        b.append(&r, 5_000);
        b.append(&r, 1_000);
        b.append(&r, 9_000);
        let batch = b.seal(Compression::None, ProducerIds::NONE).unwrap();
        assert_eq!(i64::from_be_bytes(batch[35..43].try_into().unwrap()), 9_000, "max timestamp");
        let ts: Vec<i64> = decode_records(batch, 0).unwrap().iter().map(|r| r.timestamp).collect();
        assert_eq!(ts, [5_000, 1_000, 9_000]);
    }

    #[test]
    fn producer_ids_are_stamped_and_restamped_under_the_crc() {
        let recs: Vec<ProducerRecord> = (0..3).map(record).collect();
        let mut b = BatchBuilder::new(64);
        for r in &recs {
            b.append(r, r.timestamp.unwrap());
        }
        let ids = ProducerIds { producer_id: 7, epoch: 2, base_sequence: 40, transactional: true };
        let batch = b.seal(Compression::Lz4, ids).unwrap();
        let head = |b: &Bytes| {
            (
                i16::from_be_bytes([b[21], b[22]]),
                i64::from_be_bytes(b[43..51].try_into().unwrap()),
                i16::from_be_bytes([b[51], b[52]]),
                i32::from_be_bytes(b[53..57].try_into().unwrap()),
            )
        };
        assert_eq!(head(&batch), (0x10 | Compression::Lz4 as i16, 7, 2, 40));
        assert_eq!(crc32c::crc32c(&batch[21..]).to_be_bytes(), batch[17..21]);
        let again = restamp(&batch, ProducerIds { producer_id: 7, epoch: 3, base_sequence: 0, transactional: false });
        assert_eq!(head(&again), (Compression::Lz4 as i16, 7, 3, 0));
        assert_eq!(crc32c::crc32c(&again[21..]).to_be_bytes(), again[17..21]);
        assert_eq!(&again[57..], &batch[57..], "records untouched");
        assert_eq!(decode_records(again, 0).unwrap().len(), 3);
    }

    #[test]
    fn varints_follow_kafka() {
        for (n, want) in [(0i64, &[0u8][..]), (-1, &[1]), (1, &[2]), (63, &[126]), (64, &[128, 1]), (-65, &[129, 1])] {
            let mut b = BytesMut::new();
            put_varint(&mut b, n);
            assert_eq!(&b[..], want, "{n}");
            assert_eq!(varint_len(n), want.len());
        }
        assert_eq!(varint_len(i64::MIN), 10);
        assert_eq!(varint_len(i32::MAX as i64), 5);
    }
}
