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
pub fn decode_records(data: Bytes, from_offset: i64) -> Result<Vec<ConsumerRecord>> {
    Ok(decode_fetched(data, from_offset, &[])?.records)
}

/// Records decoded from one partition's fetched bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The records to hand to the application, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// The offset after the last complete batch walked (delivered or skipped: control batches,
    /// aborted transactions); `None` when no complete batch was there. A consumer's position
    /// moves here once the records are consumed, so it never fetches skipped batches again.
    pub next_offset: Option<i64>,
}

/// Batch attribute bits (Kafka's `DefaultRecordBatch`).
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// Decode fetched bytes as a `read_committed` consumer does (Kafka's `CompletedFetch`):
/// `aborted` is the Fetch response's aborted transactions, `(producer id, first offset)`.
/// Walking batches in offset order, a producer's aborted transaction opens at its first offset
/// (at or before a batch's last offset); a transactional batch of a producer with an open
/// aborted transaction is skipped; the producer's ABORT control batch closes it. Control batches
/// are never returned. With `aborted` empty (read_uncommitted) only control batches are skipped.
pub fn decode_fetched(mut data: Bytes, from_offset: i64, aborted: &[(i64, i64)]) -> Result<Fetched> {
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    // Earliest first offset last, so the next to open is popped from the end.
    pending.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut open: Vec<i64> = Vec::new();
    let mut out = Fetched::default();
    while data.len() >= BATCH_HEAD {
        let len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        if len < 0 || 12 + len as usize > data.len() {
            break;
        }
        let base = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
        let attributes = i16::from_be_bytes([data[21], data[22]]);
        let last = base + i32::from_be_bytes(data[23..27].try_into().expect("4 bytes")) as i64;
        let producer_id = i64::from_be_bytes(data[43..51].try_into().expect("8 bytes"));
        let mut one = data.split_to(12 + len as usize);
        out.next_offset = Some(last + 1);
        while pending.last().is_some_and(|&(_, first)| first <= last) {
            let (pid, _) = pending.pop().expect("checked");
            open.push(pid);
        }
        if attributes & CONTROL != 0 {
            if is_abort_marker(&mut one)? {
                open.retain(|p| *p != producer_id);
            }
            continue;
        }
        if attributes & TRANSACTIONAL != 0 && open.contains(&producer_id) {
            continue;
        }
        if last < from_offset {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| Error::Protocol(format!("decoding fetched batch: {e}")))?;
        for r in set.records {
            if r.control || r.offset < from_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
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

/// Bytes of a v2 batch header up to the record count.
const BATCH_HEAD: usize = 61;

/// True when a control batch holds an ABORT marker (control record key: version i16, type i16
/// with 0 = ABORT, 1 = COMMIT).
fn is_abort_marker(batch: &mut Bytes) -> Result<bool> {
    let set = RecordBatchDecoder::decode(batch).map_err(|e| Error::Protocol(format!("decoding control batch: {e}")))?;
    Ok(set.records.iter().any(|r| r.key.as_ref().is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch at `base` of `n` records by `producer` (transactional when `txn`), or a control
    /// batch (`marker`: Some(commit)).
    fn batch(base: i64, n: usize, producer: i64, txn: bool, marker: Option<bool>) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: txn || marker.is_some(),
                control: marker.is_some(),
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: producer,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: if producer < 0 { -1 } else { i as i32 },
                timestamp: 0,
                key: Some(match marker {
                    Some(commit) => Bytes::from(vec![0, 0, 0, commit as u8]),
                    None => Bytes::from(format!("k{}", base + i as i64)),
                }),
                value: Some(match marker {
                    Some(_) => Bytes::from_static(&[0, 0, 0, 0, 0, 0]),
                    None => Bytes::from_static(b"v"),
                }),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .unwrap();
        buf.freeze()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        parts.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>().into()
    }

    fn offsets(f: &Fetched) -> Vec<i64> {
        f.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn aborted_transactions_and_control_batches_are_skipped_and_offsets_move_past_them() {
        // Producer 1 aborts 0..2 (marker at 4); producer 2 commits 2..3 (marker at 5);
        // producer 1 later writes 6 transactionally again and commits (marker at 7); 8 is plain.
        let data = concat(&[
            batch(0, 2, 1, true, None),
            batch(2, 2, 2, true, None),
            batch(4, 1, 1, false, Some(false)),
            batch(5, 1, 2, false, Some(true)),
            batch(6, 1, 1, true, None),
            batch(7, 1, 1, false, Some(true)),
            batch(8, 1, -1, false, None),
        ]);
        let committed = decode_fetched(data.clone(), 0, &[(1, 0)]).unwrap();
        assert_eq!(offsets(&committed), [2, 3, 6, 8], "the abort marker closes producer 1's aborted range");
        assert_eq!(committed.next_offset, Some(9));
        let all = decode_fetched(data.clone(), 0, &[]).unwrap();
        assert_eq!(offsets(&all), [0, 1, 2, 3, 6, 8], "read_uncommitted: only control batches go");
        // An aborted transaction starting later does not touch earlier batches of the producer.
        let late = decode_fetched(data.clone(), 0, &[(1, 6)]).unwrap();
        assert_eq!(offsets(&late), [0, 1, 2, 3, 8]);
        // Starting mid-way; and a fetch holding only skipped batches still moves the position.
        assert_eq!(offsets(&decode_fetched(data, 3, &[(1, 0)]).unwrap()), [3, 6, 8]);
        let only_skipped = concat(&[batch(0, 2, 1, true, None), batch(2, 1, 1, false, Some(false))]);
        let f = decode_fetched(only_skipped, 0, &[(1, 0)]).unwrap();
        assert_eq!((f.records.len(), f.next_offset), (0, Some(3)));
        assert_eq!(decode_fetched(Bytes::new(), 0, &[]).unwrap().next_offset, None);
    }

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
