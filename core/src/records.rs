//! Records as applications see them, and their encoding into magic-v2 batches.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{Error, Result};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Key; `None` for a null key.
    pub key: Option<Bytes>,
    /// Value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms; `None` for now.
    pub timestamp: Option<i64>,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Offset in the partition.
    pub offset: i64,
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Parse a compression name as Kafka spells it (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
pub fn parse_compression(s: &str) -> Result<Compression> {
    Ok(match s {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(Error::Config(format!(
                "unknown compression.type '{other}'; use none, gzip, snappy, lz4 or zstd"
            )))
        }
    })
}

/// Encode records as one magic-v2 batch (offsets 0..n, no idempotence).
pub fn encode_batch(records: &[ProducerRecord], compression: Compression, now_ms: i64) -> Result<Bytes> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes: this keeps all
            // records in one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp: r.timestamp.unwrap_or(now_ms),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression })
        .map_err(|e| Error::Protocol(format!("encoding record batch: {e}")))?;
    Ok(buf.freeze())
}

/// Decode the data records in fetched bytes, skipping control batches and records before
/// `from_offset`. A partial batch at the end (a fetch cut at the byte limit) is ignored.
pub fn decode_records(mut data: Bytes, from_offset: i64) -> Result<Vec<ConsumerRecord>> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        if len < 0 || 12 + len as usize > data.len() {
            break;
        }
        let mut one = data.split_to(12 + len as usize);
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| Error::Protocol(format!("decoding fetched batch: {e}")))?;
        for r in set.records {
            if r.control || r.offset < from_offset {
                continue;
            }
            out.push(ConsumerRecord {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip_every_codec() {
        let recs: Vec<ProducerRecord> = (0..50)
            .map(|i| ProducerRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i % 7 != 0).then(|| Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp: Some(1_000 + i),
            })
            .collect();
        for c in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let b = encode_batch(&recs, parse_compression(c).unwrap(), 0).unwrap();
            let got = decode_records(b, 10).unwrap();
            assert_eq!(got.len(), 40, "{c}");
            assert_eq!(got[0].offset, 10);
            assert_eq!(got[0].key, recs[10].key);
            assert_eq!(got[4].value, None, "{c}: record 14 is a tombstone");
            assert_eq!(got[0].headers, recs[10].headers);
        }
        assert!(parse_compression("brotli").is_err());
    }
}
