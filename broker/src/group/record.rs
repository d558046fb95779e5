//! The records the coordinator keeps in `__consumer_offsets`, and their binary format.
//!
//! Two kinds of record share the compacted topic, told apart by the version number that opens
//! the key. All integers are big-endian. A `string` is an `i16` byte length followed by UTF-8
//! bytes; a `nullable string` uses length -1 for `None`; `bytes` is an `i32` length followed by
//! the bytes; an array is an `i32` count followed by its elements.
//!
//! - Committed offset. Key: `i16` 1, string group, string topic, `i32` partition. Value: `i16` 3,
//!   `i64` offset, `i32` leader epoch (-1 if unknown), string metadata, `i64` commit time (ms).
//! - Group metadata. Key: `i16` 2, string group. Value: `i16` 3, string protocol type, `i32`
//!   generation, nullable string protocol, nullable string leader, `i64` time the group entered
//!   its state (ms, -1 if unknown), array of members.
//!
//! A member is: string member id, nullable string `group.instance.id`, string client id, string
//! client host, `i32` rebalance timeout, `i32` session timeout, bytes subscription (the metadata
//! of the chosen protocol), bytes assignment. A missing value is a tombstone: the offset or the
//! group is gone.
//!
//! These are the layouts Kafka itself uses for the same records (offset key v1, group key v2,
//! value v3), so tools that read Kafka's `__consumer_offsets` can read Rill's.

use bytes::{BufMut, Bytes, BytesMut};

use super::TopicPartition;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.num.partitions` (50).
pub const DEFAULT_OFFSETS_TOPIC_NUM_PARTITIONS: i32 = 50;

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const VALUE_VERSION: i16 = 3;

/// The `__consumer_offsets` partition holding `group_id`'s records, as Kafka computes it (the
/// Java `String.hashCode` of the id, sign bit cleared, modulo the partition count), so that
/// FindCoordinator answers like Kafka would.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    (hash & 0x7fff_ffff) % partitions.max(1)
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When it was committed (ms since the epoch).
    pub commit_timestamp_ms: i64,
}

/// One member as stored in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's membership as stored after each completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type, e.g. `consumer`.
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// The chosen protocol; `None` when the group is empty.
    pub protocol: Option<String>,
    /// The leader; `None` when the group is empty.
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch).
    pub current_state_timestamp_ms: i64,
    /// The members.
    pub members: Vec<MemberValue>,
}

/// One record of `__consumer_offsets`. A `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A committed offset, or its deletion.
    Offset {
        /// The group.
        group_id: String,
        /// The partition.
        partition: TopicPartition,
        /// The offset, or `None` once deleted or expired.
        value: Option<OffsetValue>,
    },
    /// A group's metadata, or its deletion.
    Group {
        /// The group.
        group_id: String,
        /// The metadata, or `None` once the group is gone.
        value: Option<GroupValue>,
    },
}

/// Why bytes read back from `__consumer_offsets` are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A key version this broker does not know; Kafka skips such records while loading.
    #[error("unknown __consumer_offsets key version {0}")]
    UnknownKeyVersion(i16),
    /// A value version this broker does not know.
    #[error("unknown __consumer_offsets value version {0}")]
    UnknownValueVersion(i16),
    /// The bytes end early, lengths are negative where they may not be, or text is not UTF-8.
    #[error("malformed __consumer_offsets record: {0}")]
    Malformed(&'static str),
}

impl Record {
    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            Self::Offset { group_id, .. } | Self::Group { group_id, .. } => group_id,
        }
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Offset { value: None, .. } | Self::Group { value: None, .. })
    }

    /// The record's key bytes.
    pub fn encode_key(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Self::Offset { group_id, partition, .. } => {
                b.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut b, group_id);
                put_str(&mut b, &partition.topic);
                b.put_i32(partition.partition);
            }
            Self::Group { group_id, .. } => {
                b.put_i16(GROUP_KEY_VERSION);
                put_str(&mut b, group_id);
            }
        }
        b.freeze()
    }

    /// The record's value bytes; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Bytes> {
        let mut b = BytesMut::new();
        b.put_i16(VALUE_VERSION);
        match self {
            Self::Offset { value: Some(v), .. } => {
                b.put_i64(v.offset);
                b.put_i32(v.leader_epoch);
                put_str(&mut b, &v.metadata);
                b.put_i64(v.commit_timestamp_ms);
            }
            Self::Group { value: Some(v), .. } => {
                put_str(&mut b, &v.protocol_type);
                b.put_i32(v.generation);
                put_opt_str(&mut b, v.protocol.as_deref());
                put_opt_str(&mut b, v.leader.as_deref());
                b.put_i64(v.current_state_timestamp_ms);
                b.put_i32(v.members.len() as i32);
                for m in &v.members {
                    put_str(&mut b, &m.member_id);
                    put_opt_str(&mut b, m.group_instance_id.as_deref());
                    put_str(&mut b, &m.client_id);
                    put_str(&mut b, &m.client_host);
                    b.put_i32(m.rebalance_timeout_ms);
                    b.put_i32(m.session_timeout_ms);
                    put_bytes(&mut b, &m.subscription);
                    put_bytes(&mut b, &m.assignment);
                }
            }
            _ => return None,
        }
        Some(b.freeze())
    }

    /// Read a record back from its key and value (`None` for a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let record = match k.i16()? {
            0 | OFFSET_KEY_VERSION => {
                let group_id = k.string()?;
                let partition = TopicPartition { topic: k.string()?, partition: k.i32()? };
                let value = value.map(decode_offset).transpose()?;
                Self::Offset { group_id, partition, value }
            }
            GROUP_KEY_VERSION => {
                let group_id = k.string()?;
                let value = value.map(decode_group).transpose()?;
                Self::Group { group_id, value }
            }
            v => return Err(DecodeError::UnknownKeyVersion(v)),
        };
        k.finish()?;
        Ok(record)
    }
}

fn decode_offset(bytes: &[u8]) -> Result<OffsetValue, DecodeError> {
    let mut r = Reader(bytes);
    r.version()?;
    let v =
        OffsetValue { offset: r.i64()?, leader_epoch: r.i32()?, metadata: r.string()?, commit_timestamp_ms: r.i64()? };
    r.finish()?;
    Ok(v)
}

fn decode_group(bytes: &[u8]) -> Result<GroupValue, DecodeError> {
    let mut r = Reader(bytes);
    r.version()?;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.opt_string()?;
    let leader = r.opt_string()?;
    let current_state_timestamp_ms = r.i64()?;
    let count = r.i32()?;
    let count = usize::try_from(count).map_err(|_| DecodeError::Malformed("negative member count"))?;
    // Each member takes at least 24 bytes, so a count larger than that cannot be honest.
    if count > r.0.len() / 24 {
        return Err(DecodeError::Malformed("member count exceeds the record"));
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(MemberValue {
            member_id: r.string()?,
            group_instance_id: r.opt_string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    r.finish()?;
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms, members })
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Strings hold at most i16::MAX bytes (as on Kafka's wire, where these strings come from);
    // a longer one is cut at a character boundary rather than written unreadable.
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_i16(end as i16);
    b.put_slice(&s.as_bytes()[..end]);
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(bytes.len() as i32);
    b.put_slice(bytes);
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

    fn version(&mut self) -> Result<(), DecodeError> {
        match self.i16()? {
            VALUE_VERSION => Ok(()),
            v => Err(DecodeError::UnknownValueVersion(v)),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| DecodeError::Malformed("string is not UTF-8"))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.opt_string()?.ok_or(DecodeError::Malformed("null where a string is required"))
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::try_from(self.i32()?).map_err(|_| DecodeError::Malformed("negative byte length"))?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}
