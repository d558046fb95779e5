//! Kafka wire framing: a 4-byte big-endian length, then a header and a body.
//!
//! Shared by the broker's server and the client, so both enforce the same limits: a frame whose
//! claimed length is over the limit is rejected before anything of that size is allocated.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the broker reserves for a frame before its bytes arrive.
pub const SERVER_TRUST_BYTES: usize = 1 << 20;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// Socket error or EOF inside a frame.
    #[error("I/O error reading frame: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is negative or over the limit.
    #[error("frame of {claimed} bytes is outside the allowed 0..={max} (socket.request.max.bytes)")]
    TooLarge {
        /// Length the peer claimed.
        claimed: i64,
        /// The limit in force.
        max: usize,
    },
}

/// Read one frame body (without its length prefix), reserving at most
/// [`SERVER_TRUST_BYTES`] before the bytes arrive: for frames from untrusted peers.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize, buf: &mut BytesMut) -> Result<Bytes, FrameError> {
    read_frame_trusting(r, max, SERVER_TRUST_BYTES, buf).await
}

/// Read one frame body (without its length prefix).
///
/// At most `trust` bytes are reserved before they arrive; past that the buffer grows with the
/// bytes that actually come, so a peer that claims 100 MiB and sends 10 bytes costs at most
/// `trust`. The broker passes a small `trust` (its clients are strangers); the client passes its
/// own limit, since fetch responses from its broker are large by design.
pub async fn read_frame_trusting<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    trust: usize,
    buf: &mut BytesMut,
) -> Result<Bytes, FrameError> {
    let n = read_frame_len(r, max).await?;
    read_frame_body(r, n, trust, buf).await
}

/// Read a frame's 4-byte length prefix and check it against `max`.
pub async fn read_frame_len<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<usize, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let claimed = i32::from_be_bytes(len) as i64;
    if claimed < 0 || claimed as usize > max {
        return Err(FrameError::TooLarge { claimed, max });
    }
    Ok(claimed as usize)
}

/// Read a frame body of `n` bytes whose length prefix was already read; see
/// [`read_frame_trusting`] for `trust`.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    r: &mut R,
    n: usize,
    trust: usize,
    buf: &mut BytesMut,
) -> Result<Bytes, FrameError> {
    buf.clear();
    buf.reserve(n.min(trust.max(64 * 1024)));
    while buf.len() < n {
        let want = (n - buf.len()).min(1 << 20);
        if buf.capacity() - buf.len() < want {
            buf.reserve(want);
        }
        let got = (&mut *r).take(want as u64).read_buf(buf).await?;
        if got == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(buf.split().freeze())
}

fn request_header(api_key: ApiKey, version: i16, correlation_id: i32, client_id: &str) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
}

/// Encode a request frame: length prefix, header (at the version the API needs), body.
pub fn encode_request<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &M,
) -> Result<BytesMut, crate::Error> {
    let header = request_header(api_key, version, correlation_id, client_id);
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .and_then(|_| body.encode(&mut buf, version))
        .map_err(|e| crate::Error::Protocol(format!("encoding {api_key:?} v{version}: {e}")))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Split a response frame into its correlation id and body, for the given API and version.
pub fn decode_response<M: Decodable>(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, M), crate::Error> {
    let err =
        |e: &dyn std::fmt::Display| crate::Error::Protocol(format!("decoding {api_key:?} v{version} response: {e}"));
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).map_err(|e| err(&e))?;
    let body = M::decode(&mut frame, version).map_err(|e| err(&e))?;
    Ok((header.correlation_id, body))
}

/// Correlation id of a response frame, read without decoding the rest.
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    (frame.len() >= 4).then(|| (&frame[..4]).get_i32())
}

/// A request frame as a list of chunks: encoded bytes, with large payloads the caller already
/// holds (record batches) referenced rather than copied.
#[derive(Debug, Default)]
pub struct Chunks {
    /// In wire order, starting with the 4-byte length.
    pub parts: Vec<Bytes>,
}

impl Chunks {
    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }
}

/// Payloads smaller than this are copied: a separate chunk costs more than the copy.
const MIN_REFERENCED: usize = 4096;

/// An encoding buffer that references known payloads instead of copying them.
///
/// The protocol crate writes a `records` field with `put_slice(&bytes)`; when the slice is one of
/// the `known` payloads (same address and length), the current chunk is closed and the payload
/// is appended by reference.
struct ChunkBuf<'a> {
    done: Vec<Bytes>,
    done_len: usize,
    cur: BytesMut,
    known: &'a [Bytes],
}

unsafe impl BufMut for ChunkBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded contract: the caller initialised `cnt` bytes of `chunk_mut`.
        unsafe { self.cur.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.cur.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        let known = (src.len() >= MIN_REFERENCED)
            .then(|| self.known.iter().find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len()))
            .flatten();
        match known {
            Some(b) => {
                let head = self.cur.split().freeze();
                self.done_len += head.len() + b.len();
                self.done.push(head);
                self.done.push(b.clone());
            }
            None => self.cur.extend_from_slice(src),
        }
    }
}

impl kafka_protocol::protocol::buf::ByteBufMut for ChunkBuf<'_> {
    fn offset(&self) -> usize {
        self.done_len + self.cur.len()
    }
    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.done_len, "seek into a referenced chunk");
        self.cur.truncate(offset - self.done_len)
    }
    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.done_len, "gap inside a referenced chunk");
        &mut self.cur[r.start - self.done_len..r.end - self.done_len]
    }
}

/// Encode a request frame as chunks, referencing any of `known` payloads the body contains.
pub fn encode_request_chunks<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &M,
    known: &[Bytes],
) -> Result<Chunks, crate::Error> {
    let header = request_header(api_key, version, correlation_id, client_id);
    let mut buf = ChunkBuf { done: Vec::new(), done_len: 0, cur: BytesMut::with_capacity(256), known };
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .and_then(|_| body.encode(&mut buf, version))
        .map_err(|e| crate::Error::Protocol(format!("encoding {api_key:?} v{version}: {e}")))?;
    let body_len = buf.done_len + buf.cur.len();
    let mut parts = Vec::with_capacity(buf.done.len() + 2);
    parts.push(Bytes::copy_from_slice(&(body_len as i32).to_be_bytes()));
    parts.extend(buf.done.into_iter().filter(|b| !b.is_empty()));
    if !buf.cur.is_empty() {
        parts.push(buf.cur.freeze());
    }
    Ok(Chunks { parts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};

    #[test]
    fn chunked_encoding_matches_contiguous_and_references_records() {
        let records = Bytes::from(vec![7u8; 64 * 1024]);
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(records.clone())),
            ]),
        ]);
        for v in [3, 8, 9] {
            let flat = encode_request(ApiKey::Produce, v, 42, "c", &req).unwrap();
            let chunks =
                encode_request_chunks(ApiKey::Produce, v, 42, "c", &req, std::slice::from_ref(&records)).unwrap();
            let joined: Vec<u8> = chunks.parts.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(joined, flat.to_vec(), "v{v}");
            assert!(chunks.parts.iter().any(|p| p.as_ptr() == records.as_ptr()), "v{v}: records were copied");
        }
    }
}
