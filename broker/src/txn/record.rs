//! The records the coordinator keeps in `__transaction_state`, and their binary format.
//!
//! One record per change of a transactional id, keyed by the id; the latest record of a key is
//! the whole state of that id (the topic is compacted). These are Kafka's layouts
//! (`TransactionLogKey` v0, `TransactionLogValue` v1), so tools that read Kafka's
//! `__transaction_state` can read Rill's.
//!
//! - Key: `i16` 0, then the transactional id as a `string` (`i16` length, UTF-8 bytes).
//! - Value: `i16` 1 (the first flexible version), then in order: `i64` producer id, `i16`
//!   producer epoch, `i32` transaction timeout (ms), `i8` state (see [`TxnState::code`]), the
//!   partitions as a compact nullable array of (compact string topic, compact array of `i32`
//!   partition, empty tagged fields), `i64` last update time (ms), `i64` transaction start time
//!   (ms, -1 when no transaction is open), and the tagged fields.
//!
//! Compact lengths are unsigned varints of length + 1 (0 for null). The tagged fields section is
//! an unsigned varint count followed by (varint tag, varint size, value), tags ascending; a field
//! at its default is left out. Kafka's tags: 0 previous producer id (`i64`, default -1), 1 next
//! producer id (`i64`, default -1; the id an epoch overflow at EndTxn moves to), 2 client
//! transaction version (`i16`, default 0; 2 once the client uses EndTxn v5). Rill adds tag 100,
//! the last producer epoch (`i16`, default -1), which Kafka keeps only in memory: with it a retried
//! InitProducerId (KIP-360) is recognised across a restart. Kafka ignores tags it does not know.
//! A missing value is a tombstone: the transactional id is gone.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::group::TopicPartition;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// `transaction.state.log.num.partitions` (50).
pub const DEFAULT_TRANSACTION_STATE_PARTITIONS: i32 = 50;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 1;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TXN_VERSION: u32 = 2;
const TAG_LAST_PRODUCER_EPOCH: u32 = 100;

/// The state of a transactional id, with Kafka's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open (a new id, or one just initialised).
    Empty,
    /// A transaction is open: partitions were added.
    Ongoing,
    /// EndTxn(commit) was accepted; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fence or a timeout is aborting; abort markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
}

impl TxnState {
    /// The byte stored in `__transaction_state`.
    pub fn code(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
        }
    }

    /// The state stored as `code`.
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            _ => return None,
        })
    }

    /// Kafka's name, as DescribeTransactions shows it (e.g. `PrepareCommit`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
        }
    }

    /// PrepareCommit or PrepareAbort: markers are still to be written.
    pub fn is_prepare(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

/// Everything stored about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// The producer id in use.
    pub producer_id: i64,
    /// The producer id used before the last rotation (epoch overflow), or -1.
    pub previous_producer_id: i64,
    /// During an EndTxn that overflows the epoch: the producer id taken on completion, or -1.
    pub next_producer_id: i64,
    /// The current epoch (-1 before the first InitProducerId completes).
    pub producer_epoch: i16,
    /// The epoch before the last bump a client asked for, or -1 (KIP-360 retries).
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions in the open (or ending) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the state last changed (ms since the epoch).
    pub last_update_ms: i64,
    /// When the open transaction started (ms since the epoch), or -1.
    pub start_ms: i64,
    /// 2 when the client ends transactions with EndTxn v5+ (KIP-890 part 2), else 0.
    pub client_txn_version: i16,
}

/// One record of `__transaction_state`: an id and its state, or `None` (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its state; `None` once removed.
    pub value: Option<TxnValue>,
}

/// Why bytes read back from `__transaction_state` are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A key version this broker does not know.
    #[error("unknown __transaction_state key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this broker does not know.
    #[error("unknown __transaction_state value version {0}")]
    UnknownValueVersion(i16),
    /// The bytes end early, lengths are out of range, or text is not UTF-8.
    #[error("malformed __transaction_state record: {0}")]
    Malformed(&'static str),
}

impl TxnRecord {
    /// The key bytes.
    pub fn encode_key(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(KEY_VERSION);
        let id = truncate(&self.transactional_id, i16::MAX as usize);
        b.put_i16(id.len() as i16);
        b.put_slice(id.as_bytes());
        b.freeze()
    }

    /// The value bytes; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Bytes> {
        let v = self.value.as_ref()?;
        let mut b = BytesMut::new();
        b.put_i16(VALUE_VERSION);
        b.put_i64(v.producer_id);
        b.put_i16(v.producer_epoch);
        b.put_i32(v.timeout_ms);
        b.put_i8(v.state.code());
        let topics = by_topic(&v.partitions);
        put_uvarint(&mut b, topics.len() as u64 + 1);
        for (topic, parts) in topics {
            put_compact_str(&mut b, topic);
            put_uvarint(&mut b, parts.len() as u64 + 1);
            for p in parts {
                b.put_i32(p);
            }
            put_uvarint(&mut b, 0);
        }
        b.put_i64(v.last_update_ms);
        b.put_i64(v.start_ms);
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((TAG_PREVIOUS_PRODUCER_ID, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((TAG_NEXT_PRODUCER_ID, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_txn_version != 0 {
            tags.push((TAG_CLIENT_TXN_VERSION, v.client_txn_version.to_be_bytes().to_vec()));
        }
        if v.last_producer_epoch != -1 {
            tags.push((TAG_LAST_PRODUCER_EPOCH, v.last_producer_epoch.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut b, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut b, tag as u64);
            put_uvarint(&mut b, data.len() as u64);
            b.put_slice(&data);
        }
        Some(b.freeze())
    }

    /// Read a record back from its key and value (`None` for a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        match k.i16()? {
            KEY_VERSION => {}
            v => return Err(DecodeError::UnknownKeyVersion(v)),
        }
        let len = usize::try_from(k.i16()?).map_err(|_| DecodeError::Malformed("null transactional id"))?;
        let transactional_id = utf8(k.take(len)?)?;
        k.finish()?;
        let value = value.map(decode_value).transpose()?;
        Ok(Self { transactional_id, value })
    }
}

fn decode_value(bytes: &[u8]) -> Result<TxnValue, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if !(0..=VALUE_VERSION).contains(&version) {
        return Err(DecodeError::UnknownValueVersion(version));
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_code(r.take(1)?[0] as i8).ok_or(DecodeError::Malformed("unknown state"))?;
    let mut partitions = BTreeSet::new();
    let topics = if flexible { r.compact_len()? } else { r.len_i32()? };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible { r.compact_str()? } else { r.str_i16()? };
        let count = if flexible { r.compact_len()? } else { r.len_i32()? };
        let count = count.ok_or(DecodeError::Malformed("null partition list"))?;
        if count > r.0.len() / 4 {
            return Err(DecodeError::Malformed("partition count exceeds the record"));
        }
        for _ in 0..count {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
        }
        if flexible {
            r.skip_tags()?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut v = TxnValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        client_txn_version: 0,
    };
    if flexible {
        let n = r.uvarint()?;
        for _ in 0..n {
            let tag = r.uvarint()?;
            let size = usize::try_from(r.uvarint()?).map_err(|_| DecodeError::Malformed("tag size"))?;
            let mut data = Reader(r.take(size)?);
            match tag as u32 {
                TAG_PREVIOUS_PRODUCER_ID => v.previous_producer_id = data.i64()?,
                TAG_NEXT_PRODUCER_ID => v.next_producer_id = data.i64()?,
                TAG_CLIENT_TXN_VERSION => v.client_txn_version = data.i16()?,
                TAG_LAST_PRODUCER_EPOCH => v.last_producer_epoch = data.i16()?,
                _ => continue, // a tag from a newer writer: ignored, as Kafka does
            }
            data.finish()?;
        }
    }
    r.finish()?;
    Ok(v)
}

/// Partitions grouped by topic, topics and partitions ascending.
fn by_topic(parts: &BTreeSet<TopicPartition>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in parts {
        match out.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => out.push((&tp.topic, vec![tp.partition])),
        }
    }
    out
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    let s = truncate(s, i16::MAX as usize);
    put_uvarint(b, s.len() as u64 + 1);
    b.put_slice(s.as_bytes());
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Malformed("string is not UTF-8"))
}

/// A cursor over record bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed("record ends early"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Malformed("varint too long"))
    }

    /// A compact length: `None` for null.
    fn compact_len(&mut self) -> Result<Option<usize>, DecodeError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => usize::try_from(n - 1).map(Some).map_err(|_| DecodeError::Malformed("length out of range")),
        }
    }

    /// A classic `i32` array length: `None` for -1.
    fn len_i32(&mut self) -> Result<Option<usize>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            n => usize::try_from(n).map(Some).map_err(|_| DecodeError::Malformed("negative length")),
        }
    }

    fn compact_str(&mut self) -> Result<String, DecodeError> {
        let len = self.compact_len()?.ok_or(DecodeError::Malformed("null topic"))?;
        utf8(self.take(len)?)
    }

    fn str_i16(&mut self) -> Result<String, DecodeError> {
        let len = usize::try_from(self.i16()?).map_err(|_| DecodeError::Malformed("null topic"))?;
        utf8(self.take(len)?)
    }

    fn skip_tags(&mut self) -> Result<(), DecodeError> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Malformed("tag size"))?;
            self.take(size)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}
