//! The ConsumerProtocol: what consumers put in JoinGroup and SyncGroup metadata.
//!
//! Both messages are a big-endian `int16` version followed by the body of Kafka's
//! `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` schemas at that version; the
//! bodies are encoded and decoded by the `kafka-protocol` crate. Versions Java and librdkafka
//! send:
//!
//! | version | Subscription adds                | Assignment            |
//! |---------|----------------------------------|-----------------------|
//! | 0       | topics, user_data                | partitions, user_data |
//! | 1       | owned_partitions (KIP-429)       | same as v0            |
//! | 2       | generation_id (KIP-792)          | same as v0            |
//! | 3       | rack_id (KIP-881)                | same as v0            |
//!
//! As in Kafka, a version newer than 3 is read as version 3 (later versions only append fields,
//! and trailing bytes are ignored); a negative version is an error.
//!
//! Subscriptions come from other members through the coordinator. Like every decode through the
//! protocol crate, a claimed array length is reserved before its elements are read (see
//! "Hostile input" in NOTES.md: programs install `GuardedAlloc` against it).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};

/// JoinGroup `protocol_type` of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The subscription version Rill sends (the highest it knows).
pub const SUBSCRIPTION_VERSION: i16 = 3;

/// The assignment version Rill sends (the highest it knows).
pub const ASSIGNMENT_VERSION: i16 = 3;

/// The highest version of either message the codec knows.
const HIGHEST_VERSION: i16 = 3;

/// A member's JoinGroup metadata for one assignor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Version on the wire; encoding supports 0..=3 and drops the fields the version lacks.
    pub version: i16,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Assignor-specific data (`None` is a null, distinct from empty).
    pub user_data: Option<Bytes>,
    /// Partitions the member owns (v1+).
    pub owned_partitions: Vec<(String, i32)>,
    /// The member's generation (v2+); `None` when absent or negative.
    pub generation_id: Option<i32>,
    /// `client.rack` (v3).
    pub rack_id: Option<String>,
}

impl Subscription {
    /// A subscription at [`SUBSCRIPTION_VERSION`] to these topics, with nothing else set.
    pub fn new<T: Into<String>>(topics: impl IntoIterator<Item = T>) -> Self {
        Self {
            version: SUBSCRIPTION_VERSION,
            topics: topics.into_iter().map(Into::into).collect(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: None,
            rack_id: None,
        }
    }

    /// Encode as JoinGroup protocol metadata. Owned partitions are grouped by topic.
    pub fn encode(&self) -> Result<Bytes> {
        check_version("subscription", self.version)?;
        let message = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(
                group_by_topic(&self.owned_partitions)
                    .map(|(topic, partitions)| OwnedTopic::default().with_topic(topic).with_partitions(partitions))
                    .collect(),
            )
            .with_generation_id(self.generation_id.unwrap_or(-1))
            .with_rack_id(self.rack_id.clone().map(StrBytes::from_string));
        encode_versioned("subscription", self.version, &message)
    }

    /// Decode JoinGroup protocol metadata.
    pub fn decode(mut bytes: Bytes) -> Result<Self> {
        let version = read_version("subscription", &mut bytes)?;
        let m = ConsumerProtocolSubscription::decode(&mut bytes, version.min(HIGHEST_VERSION))
            .map_err(|e| Error::Protocol(format!("decoding consumer protocol subscription v{version}: {e}")))?;
        Ok(Self {
            version,
            topics: m.topics.iter().map(|t| t.to_string()).collect(),
            user_data: m.user_data,
            owned_partitions: m
                .owned_partitions
                .iter()
                .flat_map(|o| o.partitions.iter().map(|&p| (o.topic.to_string(), p)))
                .collect(),
            generation_id: Some(m.generation_id).filter(|&g| g >= 0),
            rack_id: m.rack_id.map(|r| r.to_string()),
        })
    }
}

/// The leader's answer for one member, carried in SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Version on the wire; encoding supports 0..=3 (all the same layout).
    pub version: i16,
    /// Assigned partitions.
    pub partitions: Vec<(String, i32)>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

impl Assignment {
    /// An assignment at [`ASSIGNMENT_VERSION`] of these partitions.
    pub fn new(partitions: Vec<(String, i32)>) -> Self {
        Self { version: ASSIGNMENT_VERSION, partitions, user_data: None }
    }

    /// Encode as SyncGroup assignment bytes. Partitions are grouped by topic.
    pub fn encode(&self) -> Result<Bytes> {
        check_version("assignment", self.version)?;
        let message = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                group_by_topic(&self.partitions)
                    .map(|(topic, partitions)| AssignedTopic::default().with_topic(topic).with_partitions(partitions))
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        encode_versioned("assignment", self.version, &message)
    }

    /// Decode SyncGroup assignment bytes. Empty bytes are an empty assignment: the coordinator
    /// sends them to a member the leader gave nothing.
    pub fn decode(mut bytes: Bytes) -> Result<Self> {
        if bytes.is_empty() {
            return Ok(Self { version: 0, partitions: Vec::new(), user_data: None });
        }
        let version = read_version("assignment", &mut bytes)?;
        let m = ConsumerProtocolAssignment::decode(&mut bytes, version.min(HIGHEST_VERSION))
            .map_err(|e| Error::Protocol(format!("decoding consumer protocol assignment v{version}: {e}")))?;
        let partitions =
            m.assigned_partitions.iter().flat_map(|a| a.partitions.iter().map(|&p| (a.topic.to_string(), p))).collect();
        Ok(Self { version, partitions, user_data: m.user_data })
    }
}

/// The `user_data` Java's cooperative-sticky assignor sends so that leaders reading subscriptions
/// older than v2 learn its generation: the generation as a big-endian `int32`.
pub fn cooperative_sticky_user_data(generation: Option<i32>) -> Bytes {
    Bytes::copy_from_slice(&generation.unwrap_or(super::NO_GENERATION).to_be_bytes())
}

/// The generation a member's `user_data` carries, for subscriptions older than v2: Java's
/// cooperative-sticky `int32`, or the sticky assignor's `[previous_assignment] generation`
/// (`StickyAssignorUserData` v1, which librdkafka's cooperative-sticky sends). `None` when the
/// data is neither or the generation is negative.
pub fn generation_from_user_data(user_data: &[u8]) -> Option<i32> {
    let generation = match user_data.first_chunk::<4>() {
        Some(bytes) if user_data.len() == 4 => i32::from_be_bytes(*bytes),
        _ => sticky_generation(user_data)?,
    };
    Some(generation).filter(|&g| g >= 0)
}

/// The generation at the end of `StickyAssignorUserData` v1. The protocol crate has no schema for
/// it, and user data is whatever another assignor chose to send, so it is walked here with every
/// count checked against the bytes left: nothing is allocated from a claimed length.
fn sticky_generation(mut buf: &[u8]) -> Option<i32> {
    fn take<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = buf.split_first_chunk::<N>()?;
        *buf = rest;
        Some(*head)
    }
    let topics = u32::try_from(i32::from_be_bytes(take(&mut buf)?)).ok()?;
    for _ in 0..topics {
        let name = usize::try_from(i16::from_be_bytes(take(&mut buf)?)).ok()?;
        buf = buf.get(name..)?;
        let partitions = usize::try_from(i32::from_be_bytes(take(&mut buf)?)).ok()?;
        buf = buf.get(partitions.checked_mul(4)?..)?;
    }
    let generation = i32::from_be_bytes(take(&mut buf)?);
    buf.is_empty().then_some(generation)
}

/// `(topic, partition)` pairs grouped by topic (topics sorted, partitions in the given order).
fn group_by_topic(partitions: &[(String, i32)]) -> impl Iterator<Item = (TopicName, Vec<i32>)> + '_ {
    let mut by_topic = std::collections::BTreeMap::<&str, Vec<i32>>::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    by_topic.into_iter().map(|(topic, partitions)| (TopicName(StrBytes::from_string(topic.to_string())), partitions))
}

fn check_version(what: &str, version: i16) -> Result<()> {
    if (0..=HIGHEST_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "cannot encode consumer protocol {what} v{version}: versions 0..={HIGHEST_VERSION}"
        )))
    }
}

fn encode_versioned<M: Encodable>(what: &str, version: i16, message: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| Error::Protocol(format!("encoding consumer protocol {what} v{version}: {e}")))?;
    Ok(buf.freeze())
}

fn read_version(what: &str, bytes: &mut Bytes) -> Result<i16> {
    if bytes.remaining() < 2 {
        return Err(Error::Protocol(format!("consumer protocol {what} of {} bytes has no version", bytes.len())));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(Error::Protocol(format!("unsupported consumer protocol {what} version {version}")));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_string(), partition)
    }

    /// A subscription with every field its version carries set.
    fn full_subscription(version: i16) -> Subscription {
        Subscription {
            version,
            topics: vec!["orders".into(), "payments".into()],
            user_data: Some(Bytes::from_static(b"\x00\x01\x02")),
            owned_partitions: if version >= 1 {
                vec![tp("orders", 0), tp("orders", 3), tp("payments", 1)]
            } else {
                vec![]
            },
            generation_id: (version >= 2).then_some(42),
            rack_id: (version >= 3).then(|| "rack-a".to_string()),
        }
    }

    #[test]
    fn subscriptions_round_trip_at_every_version() {
        for version in 0..=3 {
            let s = full_subscription(version);
            assert_eq!(Subscription::decode(s.encode().unwrap()).unwrap(), s, "v{version}");
            // librdkafka sends an empty (not null) user_data; Java sends null. Both survive.
            for user_data in [None, Some(Bytes::new())] {
                let s = Subscription { user_data, ..full_subscription(version) };
                assert_eq!(Subscription::decode(s.encode().unwrap()).unwrap(), s, "v{version}");
            }
        }
    }

    #[test]
    fn assignments_round_trip_at_every_version() {
        for version in 0..=3 {
            for user_data in [None, Some(Bytes::new()), Some(Bytes::from_static(b"x"))] {
                let a = Assignment {
                    version,
                    partitions: vec![tp("a", 0), tp("a", 1), tp("b", 7)],
                    user_data: user_data.clone(),
                };
                assert_eq!(Assignment::decode(a.encode().unwrap()).unwrap(), a, "v{version}");
            }
        }
    }

    #[test]
    fn subscription_layout_matches_the_schema() {
        // v0: version, [topics], user_data (null = -1).
        let v0 = Subscription { version: 0, ..Subscription::new(["ab"]) };
        assert_eq!(&v0.encode().unwrap()[..], b"\x00\x00\x00\x00\x00\x01\x00\x02ab\xff\xff\xff\xff");
        // v3 adds owned partitions grouped by topic, the generation and a nullable rack.
        let v3 = Subscription {
            owned_partitions: vec![tp("ab", 2)],
            generation_id: Some(9),
            user_data: Some(Bytes::new()),
            ..Subscription::new(["ab"])
        };
        let want: &[u8] = b"\x00\x03\x00\x00\x00\x01\x00\x02ab\x00\x00\x00\x00\
            \x00\x00\x00\x01\x00\x02ab\x00\x00\x00\x01\x00\x00\x00\x02\
            \x00\x00\x00\x09\xff\xff";
        assert_eq!(&v3.encode().unwrap()[..], want);
        // Fields a version lacks are not written.
        let dropped = Subscription { version: 0, ..v3 };
        assert_eq!(
            Subscription::decode(dropped.encode().unwrap()).unwrap(),
            Subscription { version: 0, user_data: Some(Bytes::new()), ..Subscription::new(["ab"]) }
        );
    }

    #[test]
    fn assignment_layout_matches_the_schema() {
        let a = Assignment { version: 0, ..Assignment::new(vec![tp("t", 1), tp("t", 0)]) };
        assert_eq!(
            &a.encode().unwrap()[..],
            b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff"
        );
    }

    #[test]
    fn newer_versions_read_as_the_highest_known_and_bad_input_is_an_error() {
        // A v4 subscription: the v3 body followed by a field Rill does not know.
        let mut v4 = BytesMut::from(&full_subscription(3).encode().unwrap()[..]);
        v4[..2].copy_from_slice(&4i16.to_be_bytes());
        v4.put_slice(b"\x00\x00\x00\x07");
        let s = Subscription::decode(v4.freeze()).unwrap();
        assert_eq!(s, Subscription { version: 4, ..full_subscription(3) });
        assert!(s.encode().is_err(), "Rill does not write versions it does not know");

        let mut v5 = BytesMut::from(&Assignment::new(vec![tp("t", 0)]).encode().unwrap()[..]);
        v5[..2].copy_from_slice(&5i16.to_be_bytes());
        assert_eq!(Assignment::decode(v5.freeze()).unwrap().partitions, [tp("t", 0)]);

        for bad in [&b"\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"[..], b"\x00", b"\x00\x01\x00\x00\x00\x05\x00"] {
            assert!(Subscription::decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        assert!(Assignment::decode(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01")).is_err());
        let err = Subscription::decode(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x02\xff\xfe")).unwrap_err();
        assert!(err.to_string().contains("subscription v0"), "{err}");
    }

    #[test]
    fn empty_assignment_bytes_are_an_empty_assignment() {
        let a = Assignment::decode(Bytes::new()).unwrap();
        assert!(a.partitions.is_empty() && a.user_data.is_none());
    }

    #[test]
    fn generations_in_user_data() {
        assert_eq!(generation_from_user_data(&cooperative_sticky_user_data(Some(12))), Some(12));
        assert_eq!(generation_from_user_data(&cooperative_sticky_user_data(None)), None);
        // StickyAssignorUserData v1: [topic [partition]] generation.
        let sticky = b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x01\x00\x00\x00\x03\x00\x00\x00\x08";
        assert_eq!(generation_from_user_data(sticky), Some(8));
        // v0 of that format (no generation), truncated data and other assignors' data.
        assert_eq!(generation_from_user_data(&sticky[..sticky.len() - 4]), None);
        assert_eq!(generation_from_user_data(&sticky[..sticky.len() - 1]), None);
        assert_eq!(generation_from_user_data(b""), None);
        assert_eq!(generation_from_user_data(b"hello"), None);
        // Another assignor's data that looks like a huge count is rejected without allocating.
        assert_eq!(generation_from_user_data(b"\x7f\xff\xff\xff\x00\x01t\x7f\xff\xff\xff\x00\x00\x00\x01"), None);
        assert_eq!(generation_from_user_data(b"\x00\x00\x00\x00\x00\x00\x00\x01"), Some(1));
    }
}
