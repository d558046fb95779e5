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
    let n = claimed as usize;
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

/// Encode a request frame: length prefix, header (at the version the API needs), body.
pub fn encode_request<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &M,
) -> Result<BytesMut, crate::Error> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
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
    let err = |e: anyhow::Error| crate::Error::Protocol(format!("decoding {api_key:?} v{version} response: {e}"));
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).map_err(err)?;
    let body = M::decode(&mut frame, version).map_err(err)?;
    Ok((header.correlation_id, body))
}

/// Correlation id of a response frame, read without decoding the rest.
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    (frame.len() >= 4).then(|| (&frame[..4]).get_i32())
}
