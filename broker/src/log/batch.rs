//! Magic-v2 record batch headers: parse, validate and patch batches in place.
//!
//! Batches are stored exactly as they travel on the wire. The broker only looks at the 61-byte
//! header; records stay opaque (and compressed) unless compaction has to rewrite them.
//!
//! Layout (offsets in bytes): base offset 0..8, batch length 8..12 (bytes after this field),
//! partition leader epoch 12..16, magic 16, CRC-32C 17..21 (covers 21..end), attributes 21..23,
//! last offset delta 23..27, base timestamp 27..35, max timestamp 35..43, producer id 43..51,
//! producer epoch 51..53, base sequence 53..57, record count 57..61, records 61..

use bytes::Buf;

/// Bytes in a v2 batch header before the records.
pub const HEADER_LEN: usize = 61;
/// Bytes before (and including) the batch length field: base offset + length.
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRS_AT: usize = 21;

/// Attribute bit: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: the batch holds control records (transaction markers).
pub const ATTR_CONTROL: i16 = 1 << 5;
/// Attribute bit: timestamps are log-append time.
pub const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
/// Attribute bit: the base timestamp holds the batch's delete horizon (KIP-534), the time from
/// which the log cleaner may remove it (set on transaction markers whose transaction has no
/// data left; record timestamps stay what they were, as deltas from it).
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// Why a batch was rejected. Each maps to one Kafka error code at the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's length field claims.
    #[error("record batch truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the batch claims to need.
        need: usize,
        /// Bytes actually present.
        have: usize,
    },
    /// Magic byte other than 2 (message sets v0/v1 are not accepted).
    #[error("unsupported record batch magic {0}; only magic v2 is accepted")]
    Magic(i8),
    /// Stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// A structurally impossible header (negative length or count, bad delta).
    #[error("invalid record batch header: {0}")]
    Invalid(&'static str),
}

/// A read-only view of one v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset in the batch.
    pub base_offset: i64,
    /// Whole batch size in bytes, including the 12-byte offset/length prefix.
    pub size: usize,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Batch attributes (compression in the low 3 bits, flags above).
    pub attributes: i16,
    /// `last_offset - base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// First sequence number, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parse the header at the start of `buf` without checking the CRC.
    ///
    /// Fails if `buf` is shorter than the batch the header describes.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let h = Self::parse_prefix(buf)?;
        if buf.len() < h.size {
            return Err(BatchError::Truncated { need: h.size, have: buf.len() });
        }
        Ok(h)
    }

    /// Parse the header from its first [`HEADER_LEN`] bytes; the records need not be present.
    pub fn parse_prefix(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { need: HEADER_LEN, have: buf.len() });
        }
        let mut b = buf;
        let base_offset = b.get_i64();
        let length = b.get_i32();
        if length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Invalid("batch length shorter than a header"));
        }
        let size = LOG_OVERHEAD + length as usize;
        let partition_leader_epoch = b.get_i32();
        let magic = b.get_i8();
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let _crc = b.get_u32();
        let attributes = b.get_i16();
        let last_offset_delta = b.get_i32();
        let base_timestamp = b.get_i64();
        let max_timestamp = b.get_i64();
        let producer_id = b.get_i64();
        let producer_epoch = b.get_i16();
        let base_sequence = b.get_i32();
        let record_count = b.get_i32();
        if record_count < 0 || last_offset_delta < 0 {
            return Err(BatchError::Invalid("negative record count or offset delta"));
        }
        Ok(Self {
            base_offset,
            size,
            partition_leader_epoch,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        })
    }

    /// Parse and verify the CRC-32C of the batch at the start of `buf`.
    pub fn parse_checked(buf: &[u8]) -> Result<Self, BatchError> {
        let h = Self::parse(buf)?;
        let stored = u32::from_be_bytes(buf[CRC_AT..ATTRS_AT].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&buf[ATTRS_AT..h.size]);
        if stored != computed {
            return Err(BatchError::Crc { stored, computed });
        }
        Ok(h)
    }

    /// Last offset in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }

    /// True for transaction marker batches.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True for batches written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// The delete horizon (KIP-534): when the flag is set, the time from which the log cleaner
    /// may remove the batch, kept in the base timestamp field.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }
}

/// Stamp the broker-assigned base offset and partition leader epoch into a batch.
///
/// Neither field is covered by the CRC, so the stored CRC stays valid.
pub fn patch_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Set log-append time: the timestamp-type bit and the max timestamp, then recompute the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16::from_be_bytes([batch[ATTRS_AT], batch[ATTRS_AT + 1]]) | ATTR_LOG_APPEND_TIME;
    batch[ATTRS_AT..ATTRS_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRS_AT..]);
    batch[CRC_AT..ATTRS_AT].copy_from_slice(&crc.to_be_bytes());
}

/// Iterate the batches in a buffer of concatenated batches, verifying each CRC.
///
/// Stops with the error of the first invalid batch; yields nothing after it.
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches { buf, pos: 0, failed: false }
}

/// Iterator returned by [`batches`].
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Batches<'a> {
    /// A header, its position in the buffer, or the first error.
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match BatchHeader::parse_checked(&self.buf[self.pos..]) {
            Ok(h) => {
                let at = self.pos;
                self.pos += h.size;
                Some(Ok((at, h)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Magic byte position, exposed for tests that corrupt batches on purpose.
pub const MAGIC_OFFSET: usize = MAGIC_AT;

#[cfg(test)]
pub(crate) mod test_util {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;
    use rill_core::records::{encode_batch, ProducerRecord};

    /// Encode `n` records `key-i`/`value-i` with timestamps `ts + i` as one batch at offset 0.
    pub fn batch(n: usize, ts: i64, compression: Compression) -> Bytes {
        keyed_batch((0..n).map(|i| (format!("key-{i}"), Some(format!("value-{i}")))), ts, compression)
    }

    /// Encode one batch from (key, value) pairs; `None` values are tombstones.
    pub fn keyed_batch(
        kvs: impl IntoIterator<Item = (String, Option<String>)>,
        ts: i64,
        compression: Compression,
    ) -> Bytes {
        let records: Vec<ProducerRecord> = kvs
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| ProducerRecord {
                key: Some(Bytes::from(k)),
                value: v.map(Bytes::from),
                headers: Vec::new(),
                timestamp: Some(ts + i as i64),
            })
            .collect();
        encode_batch(&records, compression, ts).expect("encode")
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::batch;
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn parses_encoder_output() {
        let b = batch(10, 1000, Compression::None);
        let h = BatchHeader::parse_checked(&b).unwrap();
        assert_eq!(h.size, b.len());
        assert_eq!(h.record_count, 10);
        assert_eq!(h.last_offset_delta, 9);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1009);
    }

    #[test]
    fn patching_keeps_crc_valid() {
        let mut b = batch(3, 5, Compression::Lz4).to_vec();
        patch_offset_and_epoch(&mut b, 4242, 7);
        let h = BatchHeader::parse_checked(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch, h.last_offset()), (4242, 7, 4244));
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = batch(3, 5, Compression::None).to_vec();
        set_log_append_time(&mut b, 99_000);
        let h = BatchHeader::parse_checked(&b).unwrap();
        assert_eq!(h.max_timestamp, 99_000);
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    }

    #[test]
    fn detects_corruption_truncation_and_magic() {
        let b = batch(5, 0, Compression::None).to_vec();
        let mut flipped = b.clone();
        *flipped.last_mut().unwrap() ^= 0x40;
        assert!(matches!(BatchHeader::parse_checked(&flipped), Err(BatchError::Crc { .. })));
        assert!(matches!(BatchHeader::parse_checked(&b[..b.len() - 1]), Err(BatchError::Truncated { .. })));
        let mut magic = b.clone();
        magic[MAGIC_OFFSET] = 1;
        assert_eq!(BatchHeader::parse_checked(&magic), Err(BatchError::Magic(1)));
    }

    #[test]
    fn iterates_and_stops_at_first_bad_batch() {
        let mut buf = batch(2, 0, Compression::None).to_vec();
        buf.extend_from_slice(&batch(3, 0, Compression::Gzip));
        let good = buf.len();
        buf.extend_from_slice(&[0u8; 20]);
        let items: Vec<_> = batches(&buf).collect();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok() && items[2].is_err());
        let (pos, h) = items[1].clone().unwrap();
        assert_eq!(pos + h.size, good);
    }
}
