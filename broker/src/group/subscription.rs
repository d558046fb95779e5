//! The topics a consumer subscribes to, read from its JoinGroup metadata.
//!
//! Members of `consumer` groups send a ConsumerProtocolSubscription as their protocol metadata:
//! an `i16` version, then (in every version) an `i32` count of topics, each an `i16`-length
//! UTF-8 string; later fields (user data, owned partitions, generation, rack) follow and are not
//! needed here. The coordinator uses the topics to refuse OffsetDelete of a consumed topic and to
//! expire offsets of topics a stable group no longer consumes.

use std::collections::BTreeSet;

/// The protocol type of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics in a ConsumerProtocolSubscription, or `None` if the bytes are not one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let (version, rest) = split_i16(metadata)?;
    if version < 0 {
        return None;
    }
    let (count, mut rest) = rest.split_first_chunk::<4>()?;
    let count = usize::try_from(i32::from_be_bytes(*count)).ok()?;
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let (len, tail) = split_i16(rest)?;
        let len = usize::try_from(len).ok()?;
        if tail.len() < len {
            return None;
        }
        topics.insert(std::str::from_utf8(&tail[..len]).ok()?.to_owned());
        rest = &tail[len..];
    }
    Some(topics)
}

fn split_i16(b: &[u8]) -> Option<(i16, &[u8])> {
    let (head, rest) = b.split_first_chunk::<2>()?;
    Some((i16::from_be_bytes(*head), rest))
}

/// A ConsumerProtocolSubscription (version 0, no user data) for `topics`.
#[cfg(test)]
pub fn encode_subscription(topics: &[&str]) -> bytes::Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_and_rejects_garbage() {
        let set = |ts: &[&str]| Some(ts.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>());
        let cases: &[(&[u8], Option<BTreeSet<String>>)] = &[
            (&encode_subscription(&["a", "bb"]), set(&["a", "bb"])),
            (&encode_subscription(&[]), set(&[])),
            (&[0, 3, 0, 0, 0, 1, 0, 1, b'x', 0xff, 0xff, 0xff, 0xff], set(&["x"])),
            (b"", None),
            (&[0, 0, 0, 0, 0, 2, 0, 1, b'x'], None),
            (&[0, 0, 0, 0, 0, 1, 0, 5, b'x'], None),
            (&[0xff, 0xff, 0, 0, 0, 0], None),
            (&[0, 0, 0, 0, 0, 1, 0, 1, 0xff], None),
        ];
        for (bytes, want) in cases {
            assert_eq!(&subscribed_topics(bytes), want, "{bytes:?}");
        }
    }
}
