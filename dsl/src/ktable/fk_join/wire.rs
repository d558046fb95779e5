//! What the two sides of a foreign-key join send each other, and how the right side keys its
//! subscriptions: Kafka Streams' `SubscriptionWrapper`, `SubscriptionResponseWrapper` and
//! `CombinedKey`, in Rill's own byte layout (both sides are Rill; version 0).
//!
//! - A [`Subscription`] travels keyed by the foreign key (null for Kafka's "no subscription,
//!   just answer" cases): version, [`Instruction`], flags (bit 0: hash present), the
//!   subscriber's partition (i32 big-endian), the 16-byte hash if present, the primary key's
//!   bytes.
//! - A [`Response`] travels keyed by the primary key's bytes: version, flags (bit 0: hash, bit 1:
//!   foreign value), the subscriber's partition (which the response sink writes to), the hash,
//!   the foreign value's bytes.
//! - The subscription store's key is the foreign key's length (u32 big-endian), its bytes, then
//!   the primary key's bytes, so the subscribers of one foreign key are one prefix range; its
//!   value is the subscriber's partition and hash.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rill_core::streams::serde::{Serde, SerdeError};
use rill_core::streams::Partitioner;

use super::murmur3;
use crate::serdes::ArcSerde;

/// The hash of a left value's bytes a subscription carries: MurmurHash3 x64 128 as Kafka
/// Streams computes it (seed 104729), `h1` then `h2`, big-endian.
pub(crate) type Hash = [u8; 16];

/// The hash of a serialized left value.
pub(crate) fn value_hash(bytes: &[u8]) -> Hash {
    let (h1, h2) = murmur3::hash128(bytes, murmur3::DEFAULT_SEED);
    let mut out = [0; 16];
    out[..8].copy_from_slice(&h1.to_be_bytes());
    out[8..].copy_from_slice(&h2.to_be_bytes());
    out
}

const VERSION: u8 = 0;

/// What the right side does with a subscription (Kafka's `SubscriptionWrapper.Instruction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instruction {
    /// Forget the subscription; answer nothing (the old foreign key of a row whose key moved).
    DeleteKeyNoPropagate = 0,
    /// Forget the subscription and answer with no foreign value (the row is gone).
    DeleteKeyAndPropagate = 1,
    /// Subscribe; answer with the foreign value, or with none if it is missing.
    PropagateNullIfNoFkValAvailable = 2,
    /// Subscribe; answer only if the foreign value exists.
    PropagateOnlyIfFkValAvailable = 3,
}

impl Instruction {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::DeleteKeyNoPropagate,
            1 => Self::DeleteKeyAndPropagate,
            2 => Self::PropagateNullIfNoFkValAvailable,
            3 => Self::PropagateOnlyIfFkValAvailable,
            _ => return None,
        })
    }

    /// Whether the right side forgets the subscription.
    pub(crate) fn deletes(self) -> bool {
        matches!(self, Self::DeleteKeyNoPropagate | Self::DeleteKeyAndPropagate)
    }
}

/// A left row's subscription to a foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Hash of the left value that sent it (`None`: the row was deleted).
    pub(crate) hash: Option<Hash>,
    pub(crate) instruction: Instruction,
    /// The left row's key, serialized.
    pub(crate) primary_key: Bytes,
    /// The left partition (task) the answer must go back to.
    pub(crate) partition: i32,
}

/// The right side's answer to a subscription or to a change of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response<VO> {
    /// The hash of the subscription it answers.
    pub(crate) hash: Option<Hash>,
    /// The foreign row's value, if it exists.
    pub(crate) foreign: Option<VO>,
    /// The left partition it goes to.
    pub(crate) partition: i32,
}

fn bad(serde: &'static str, what: &str) -> SerdeError {
    SerdeError { serde, op: "deserialize", what: what.to_string() }
}

/// A record's `[flags][partition][hash?]` and the bytes after them.
struct Head<'a> {
    flags: u8,
    partition: i32,
    hash: Option<Hash>,
    rest: &'a [u8],
}

/// Reads the head after the version byte (and the instruction byte, if any).
fn read_head<'a>(serde: &'static str, bytes: &'a [u8]) -> Result<Head<'a>, SerdeError> {
    let (&flags, rest) = bytes.split_first().ok_or_else(|| bad(serde, "a truncated record"))?;
    let partition: [u8; 4] =
        rest.get(..4).and_then(|p| p.try_into().ok()).ok_or_else(|| bad(serde, "a truncated record"))?;
    let (partition, rest) = (i32::from_be_bytes(partition), &rest[4..]);
    if flags & 1 == 0 {
        return Ok(Head { flags, partition, hash: None, rest });
    }
    let hash: Hash = rest.get(..16).and_then(|h| h.try_into().ok()).ok_or_else(|| bad(serde, "a truncated hash"))?;
    Ok(Head { flags, partition, hash: Some(hash), rest: &rest[16..] })
}

fn put_head(b: &mut BytesMut, flags: u8, partition: i32, hash: &Option<Hash>) {
    b.put_u8(flags | u8::from(hash.is_some()));
    b.put_i32(partition);
    if let Some(h) = hash {
        b.put_slice(h);
    }
}

fn check_version<'a>(serde: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], SerdeError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest),
        Some((v, _)) => Err(bad(serde, &format!("version {v} (this build reads {VERSION})"))),
        None => Err(bad(serde, "an empty record")),
    }
}

/// [`Subscription`]s as bytes.
pub(crate) struct SubscriptionSerde;

impl Serde<Subscription> for SubscriptionSerde {
    fn serialize(&self, s: &Subscription) -> Result<Bytes, SerdeError> {
        let mut b = BytesMut::with_capacity(23 + s.primary_key.len());
        b.put_u8(VERSION);
        b.put_u8(s.instruction as u8);
        put_head(&mut b, 0, s.partition, &s.hash);
        b.put_slice(&s.primary_key);
        Ok(b.freeze())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Subscription, SerdeError> {
        const NAME: &str = "SubscriptionSerde";
        let rest = check_version(NAME, bytes)?;
        let (&i, rest) = rest.split_first().ok_or_else(|| bad(NAME, "a truncated record"))?;
        let instruction = Instruction::from_byte(i).ok_or_else(|| bad(NAME, &format!("instruction {i}")))?;
        let Head { partition, hash, rest: key, .. } = read_head(NAME, rest)?;
        Ok(Subscription { hash, instruction, primary_key: Bytes::copy_from_slice(key), partition })
    }
}

/// [`Response`]s as bytes, the foreign value in its table's serde.
pub(crate) struct ResponseSerde<VO>(pub(crate) ArcSerde<VO>);

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(&self, r: &Response<VO>) -> Result<Bytes, SerdeError> {
        let value = r.foreign.as_ref().map(|v| self.0.serialize(v)).transpose()?;
        let mut b = BytesMut::with_capacity(22 + value.as_ref().map_or(0, Bytes::len));
        b.put_u8(VERSION);
        put_head(&mut b, if value.is_some() { 2 } else { 0 }, r.partition, &r.hash);
        if let Some(v) = value {
            b.put_slice(&v);
        }
        Ok(b.freeze())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Response<VO>, SerdeError> {
        let rest = check_version("ResponseSerde", bytes)?;
        let Head { flags, partition, hash, rest: value } = read_head("ResponseSerde", rest)?;
        let foreign = if flags & 2 != 0 { Some(self.0.deserialize(value)?) } else { None };
        Ok(Response { hash, foreign, partition })
    }
}

/// Sends a response to the partition its subscription came from (the default partitioner's
/// choice if that is out of range: the topic has fewer partitions than the left side had tasks).
pub(crate) fn response_partitioner() -> Partitioner {
    Arc::new(|_key, value, partitions| {
        let p = value?.get(2..6)?;
        let p = i32::from_be_bytes(p.try_into().ok()?);
        (0..partitions).contains(&p).then_some(p)
    })
}

/// The subscription store's key prefix of one foreign key.
pub(crate) fn prefix(foreign_key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + foreign_key.len());
    b.put_u32(foreign_key.len() as u32);
    b.put_slice(foreign_key);
    b.freeze()
}

/// The subscription store's key of `primary_key`'s subscription to `foreign_key`.
pub(crate) fn combined_key(foreign_key: &[u8], primary_key: &[u8]) -> Bytes {
    let mut b = BytesMut::from(&prefix(foreign_key)[..]);
    b.put_slice(primary_key);
    b.freeze()
}

/// The primary key in a subscription store key.
pub(crate) fn primary_key_of(combined: &Bytes) -> Option<Bytes> {
    let len: [u8; 4] = combined.get(..4)?.try_into().ok()?;
    let start = 4 + u32::from_be_bytes(len) as usize;
    (start <= combined.len()).then(|| combined.slice(start..))
}

/// The first key after every key starting with `prefix` (`None`: no such key, scan to the end).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(Bytes::from(end))
}

/// A subscription store value: the subscriber's partition and hash.
pub(crate) fn stored(partition: i32, hash: &Option<Hash>) -> Bytes {
    let mut b = BytesMut::with_capacity(20);
    b.put_i32(partition);
    if let Some(h) = hash {
        b.put_slice(h);
    }
    b.freeze()
}

/// The partition and hash in a subscription store value.
pub(crate) fn read_stored(value: &[u8]) -> Option<(i32, Option<Hash>)> {
    let partition = i32::from_be_bytes(value.get(..4)?.try_into().ok()?);
    let hash = match value.len() {
        4 => None,
        20 => Some(value[4..].try_into().ok()?),
        _ => return None,
    };
    Some((partition, hash))
}

#[cfg(test)]
mod tests {
    use rill_core::streams::serde::StringSerde;

    use super::*;

    #[test]
    fn subscriptions_and_responses_round_trip() {
        let hash = Some(value_hash(b"value"));
        for (hash, instruction) in [
            (hash, Instruction::PropagateOnlyIfFkValAvailable),
            (None, Instruction::DeleteKeyAndPropagate),
            (hash, Instruction::DeleteKeyNoPropagate),
            (hash, Instruction::PropagateNullIfNoFkValAvailable),
        ] {
            let s = Subscription { hash, instruction, primary_key: Bytes::from_static(b"o1"), partition: 7 };
            assert_eq!(SubscriptionSerde.deserialize(&SubscriptionSerde.serialize(&s).unwrap()).unwrap(), s);
        }
        let serde = ResponseSerde::<String>(Arc::new(StringSerde));
        for (hash, foreign) in
            [(hash, Some("tea".to_string())), (None, None), (hash, Some(String::new())), (hash, None)]
        {
            let r = Response { hash, foreign, partition: 3 };
            let bytes = serde.serialize(&r).unwrap();
            assert_eq!(serde.deserialize(&bytes).unwrap(), r);
            assert_eq!(response_partitioner()(None, Some(&bytes), 4), Some(3));
            assert_eq!(response_partitioner()(None, Some(&bytes), 2), None, "out of range: default partitioner");
        }
        assert!(serde.deserialize(&[1, 0, 0, 0, 0, 0]).is_err(), "unknown version");
        assert!(SubscriptionSerde.deserialize(&[0, 9, 0, 0, 0, 0, 0]).is_err(), "unknown instruction");
        assert!(SubscriptionSerde.deserialize(&[0, 0, 1, 0, 0, 0, 0, 1, 2]).is_err(), "truncated hash");
    }

    #[test]
    fn subscriptions_of_one_foreign_key_are_one_prefix_range() {
        let k = combined_key(b"p1", b"o1");
        assert!(k.starts_with(&prefix(b"p1")));
        assert!(!k.starts_with(&prefix(b"p")), "the length keeps p from matching p1");
        assert_eq!(primary_key_of(&k).unwrap(), Bytes::from_static(b"o1"));
        assert_eq!(primary_key_of(&combined_key(b"p1", b"")).unwrap(), Bytes::new());
        let end = prefix_end(&prefix(b"p1")).unwrap();
        assert!(k < end && prefix(b"p1") < k);
        assert!(combined_key(b"p2", b"") >= end);
        assert_eq!(prefix_end(&[1, 0xff, 0xff]).unwrap(), Bytes::from_static(&[2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(read_stored(&stored(5, &Some([9; 16]))), Some((5, Some([9; 16]))));
        assert_eq!(read_stored(&stored(-1, &None)), Some((-1, None)));
        assert_eq!(read_stored(&[0, 0]), None);
    }
}
