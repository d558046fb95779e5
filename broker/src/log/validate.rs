//! Validation of producer batches before they are stored.
//!
//! Whatever the broker later relies on must hold before a batch reaches the log: a batch that
//! lies about itself (record count, lengths, codec) is rejected, never stored, so nothing that
//! reads it back (timestamp lookups, compaction, consumers) meets it. Uncompressed batches are
//! walked in place without allocating; compressed ones are decoded, as Kafka does.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::{RecordBatchDecoder, RecordSet};

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::partition_log::LogError;

/// Check every batch in a producer's `records`; returns each batch's position and header.
pub fn validate_batches(
    records: &[u8],
    max_message_bytes: i64,
    require_keys: bool,
) -> Result<Vec<(usize, BatchHeader)>, LogError> {
    let mut headers = Vec::new();
    for item in batch::batches(records) {
        let (at, h) = item?;
        if h.size as i64 > max_message_bytes {
            return Err(LogError::TooLarge { size: h.size, max: max_message_bytes });
        }
        if h.record_count < 1 || h.last_offset_delta as i64 + 1 != h.record_count as i64 {
            return Err(invalid(format!(
                "batch claims {} records but an offset range of {}",
                h.record_count,
                h.last_offset_delta as i64 + 1
            )));
        }
        if h.is_control() {
            return Err(invalid("producers may not write control batches"));
        }
        let body = &records[at..at + h.size];
        match h.compression() {
            0 => walk_records(&body[HEADER_LEN..], h.record_count, require_keys).map_err(invalid)?,
            codec @ 1..=4 => {
                walk_compressed(codec, &body[HEADER_LEN..], h.record_count, require_keys).map_err(invalid)?
            }
            c => return Err(invalid(format!("unknown compression codec {c}"))),
        }
        headers.push((at, h));
    }
    if headers.is_empty() {
        return Err(invalid("produce request carries no record batch"));
    }
    Ok(headers)
}

/// Check the batches a follower fetched from its leader; returns each batch's position and
/// header.
///
/// Only what the leader cannot have got wrong without the bytes being damaged is checked, as a
/// Kafka follower does: framing and magic, each CRC, at least one batch, and offsets that rise
/// from batch to batch. Record framing is not walked and `max.message.bytes` is not applied:
/// compaction leaves batches the producer rules refuse (no records, offsets with gaps), and a
/// limit lowered after the leader accepted a batch must not stall the follower. Control
/// batches are allowed.
pub fn validate_replicated(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, LogError> {
    let mut headers: Vec<(usize, BatchHeader)> = Vec::new();
    for item in batch::batches(records) {
        let (at, h) = item?;
        if let Some((_, prev)) = headers.last() {
            if h.base_offset < prev.next_offset() {
                return Err(LogError::NonContiguous { expected: prev.next_offset(), got: h.base_offset });
            }
        }
        headers.push((at, h));
    }
    if headers.is_empty() {
        return Err(invalid("replicated records carry no record batch"));
    }
    Ok(headers)
}

const NO_KEY: &str = "compacted topic cannot accept a record without a key";

fn invalid(why: impl Into<String>) -> LogError {
    LogError::InvalidRecord(why.into())
}

/// Decompress a batch's records with the protocol crate's codecs and walk them as uncompressed.
///
/// The output grows with the data actually decompressed (a decompression bomb costs what it
/// expands to, as in Kafka); nothing is sized by the batch's own claims.
fn walk_compressed(codec: i16, compressed: &[u8], count: i32, require_keys: bool) -> Result<(), String> {
    let mut input = Bytes::copy_from_slice(compressed);
    let mut outcome = Err("records were not decompressed".to_string());
    let walk = |b: &mut Bytes| {
        outcome = walk_records(b, count, require_keys);
        Ok(())
    };
    let decompressed = catch_unwind(AssertUnwindSafe(|| match codec {
        1 => Gzip::decompress(&mut input, walk),
        2 => Snappy::decompress(&mut input, walk),
        3 => Lz4::decompress(&mut input, walk),
        _ => Zstd::decompress(&mut input, walk),
    }));
    match decompressed {
        Ok(Ok(())) => outcome,
        Ok(Err(e)) => Err(format!("cannot decompress records: {e}")),
        Err(_) => Err("cannot decompress records: the codec rejected them".into()),
    }
}

/// Decode one batch with the protocol crate, turning a panic inside it (arithmetic overflow on
/// hostile input in debug builds) into an error. The crate sizes its output by the batch's
/// record count: only use this on batches that passed [`validate_batches`].
pub fn decode_batch(batch: &[u8]) -> Result<RecordSet, String> {
    let mut b = Bytes::copy_from_slice(batch);
    match catch_unwind(AssertUnwindSafe(|| RecordBatchDecoder::decode(&mut b))) {
        Ok(Ok(set)) => Ok(set),
        Ok(Err(e)) => Err(format!("undecodable batch: {e}")),
        Err(_) => Err("undecodable batch: the decoder rejected its contents".into()),
    }
}

/// Walk uncompressed records: each record's length must match its fields, offset deltas must
/// count 0, 1, 2, ..., and the records must fill the batch exactly.
fn walk_records(mut buf: &[u8], count: i32, require_keys: bool) -> Result<(), String> {
    for i in 0..count {
        let len = varint(&mut buf)?;
        if len < 0 || len as usize > buf.len() {
            return Err(format!("record {i} claims {len} bytes, {} remain", buf.len()));
        }
        let (mut rec, rest) = buf.split_at(len as usize);
        buf = rest;
        take(&mut rec, 1)?; // attributes
        varlong(&mut rec)?; // timestamp delta
        let delta = varint(&mut rec)?;
        if delta != i {
            return Err(format!("record {i} has offset delta {delta}"));
        }
        let key = varint(&mut rec)?;
        if key < -1 {
            return Err(format!("record {i} has key length {key}"));
        }
        if key == -1 && require_keys {
            return Err(NO_KEY.into());
        }
        take(&mut rec, key.max(0) as usize)?;
        let value = varint(&mut rec)?;
        if value < -1 {
            return Err(format!("record {i} has value length {value}"));
        }
        take(&mut rec, value.max(0) as usize)?;
        let headers = varint(&mut rec)?;
        if headers < 0 {
            return Err(format!("record {i} has {headers} headers"));
        }
        for _ in 0..headers {
            let k = varint(&mut rec)?;
            if k < 0 {
                return Err(format!("record {i} has a header key of length {k}"));
            }
            take(&mut rec, k as usize)?;
            let v = varint(&mut rec)?;
            if v < -1 {
                return Err(format!("record {i} has a header value of length {v}"));
            }
            take(&mut rec, v.max(0) as usize)?;
        }
        if !rec.is_empty() {
            return Err(format!("record {i} has {} bytes past its last header", rec.len()));
        }
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes follow the last of {count} records", buf.len()));
    }
    Ok(())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if n > buf.len() {
        return Err(format!("field of {n} bytes runs past its record"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// Zigzag varint of at most `max_bytes` bytes. A record's fields mostly take one byte (its
/// timestamp delta, key and header counts) or two (its length and value length up to 8 KiB,
/// offset deltas from 64): those cases are inline.
#[inline]
fn zigzag(buf: &mut &[u8], max_bytes: usize) -> Result<i64, String> {
    let bytes: &[u8] = buf;
    match bytes {
        [b, rest @ ..] if b & 0x80 == 0 => {
            *buf = rest;
            Ok(unzigzag(u64::from(*b)))
        }
        [b0, b1, rest @ ..] if b1 & 0x80 == 0 && max_bytes >= 2 => {
            *buf = rest;
            Ok(unzigzag(u64::from(b0 & 0x7f) | u64::from(*b1) << 7))
        }
        _ => zigzag_long(buf, max_bytes),
    }
}

fn unzigzag(raw: u64) -> i64 {
    (raw >> 1) as i64 ^ -((raw & 1) as i64)
}

#[inline(never)]
fn zigzag_long(buf: &mut &[u8], max_bytes: usize) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for (i, &b) in buf.iter().take(max_bytes).enumerate() {
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(unzigzag(raw));
        }
    }
    if buf.len() < max_bytes {
        return Err("a varint runs past its record".to_string());
    }
    Err(format!("varint longer than {max_bytes} bytes"))
}

fn varint(buf: &mut &[u8]) -> Result<i32, String> {
    let v = zigzag(buf, 5)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
}

fn varlong(buf: &mut &[u8]) -> Result<i64, String> {
    zigzag(buf, 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::test_util::{batch, keyed_batch};
    use kafka_protocol::records::Compression;

    const MAX: i64 = 1 << 20;

    /// Recompute the CRC after editing a batch, so only the edit is under test.
    fn fix_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn accepts_what_encoders_produce_in_every_codec() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = batch(50, 1000, c);
            assert_eq!(validate_batches(&b, MAX, true).unwrap().len(), 1, "{c:?}");
        }
    }

    #[test]
    fn rejects_batches_that_lie() {
        // Record count raised to i32::MAX with the offset delta to match: framing disagrees.
        let mut b = batch(3, 0, Compression::None).to_vec();
        b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        fix_crc(&mut b);
        assert!(matches!(validate_batches(&b, MAX, false), Err(LogError::InvalidRecord(_))));
        // The same lie in a compressed batch.
        let mut b = batch(3, 0, Compression::Gzip).to_vec();
        b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        fix_crc(&mut b);
        assert!(matches!(validate_batches(&b, MAX, false), Err(LogError::InvalidRecord(_))));
        // Unknown codec 5.
        let mut b = batch(3, 0, Compression::None).to_vec();
        b[22] = (b[22] & !7) | 5;
        fix_crc(&mut b);
        assert!(matches!(validate_batches(&b, MAX, false), Err(LogError::InvalidRecord(_))));
        // A record length pointing past the batch.
        let mut b = batch(3, 0, Compression::None).to_vec();
        b[HEADER_LEN] = 0x7e; // zigzag 63
        fix_crc(&mut b);
        assert!(matches!(validate_batches(&b, MAX, false), Err(LogError::InvalidRecord(_))));
    }

    #[test]
    fn keys_required_only_when_asked() {
        let b = keyed_batch([("k".to_string(), Some("v".to_string()))], 0, Compression::None);
        assert!(validate_batches(&b, MAX, true).is_ok());
        let recs = [rill_core::records::ProducerRecord { value: Some(Bytes::from_static(b"v")), ..Default::default() }];
        for c in [Compression::None, Compression::Lz4] {
            let keyless = rill_core::records::encode_batch(&recs, c, 0).unwrap();
            assert!(validate_batches(&keyless, MAX, false).is_ok());
            assert!(
                matches!(validate_batches(&keyless, MAX, true), Err(LogError::InvalidRecord(m)) if m.contains("key"))
            );
        }
    }

    #[test]
    fn zigzag_varints_decode() {
        for (bytes, want) in
            [(&[0x00u8][..], 0i64), (&[0x01], -1), (&[0x02], 1), (&[0xfe, 0x01], 127), (&[0x80, 0x01], 64)]
        {
            let mut b = bytes;
            assert_eq!(zigzag(&mut b, 10).unwrap(), want, "{bytes:?}");
        }
        let mut long: &[u8] = &[0xff; 6];
        assert!(varint(&mut long).is_err());
        let mut cut: &[u8] = &[0x80];
        assert_eq!(varint(&mut cut).unwrap_err(), "a varint runs past its record");
        let mut two: &[u8] = &[0xc8, 0x01, 0x07];
        assert_eq!(varint(&mut two).unwrap(), 100, "a two-byte varint");
        assert_eq!(two, &[0x07], "and only its bytes are taken");
    }
}
