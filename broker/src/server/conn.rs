//! One client connection: read frames, dispatch, write responses in request order.
//!
//! Three tasks: the reader takes frames off the socket, each then holding part of the
//! broker-wide request-byte budget until it is handled; the worker handles them strictly in arrival order
//! (appends happen in the order requests arrive); the writer sends responses in order. Work that
//! may wait (durability flushes, fetch long polls) continues in a task of its own whose response
//! keeps its place in the queue. At most `max_in_flight_per_connection` responses are queued
//! before the reader stops reading. A frame over `socket.request.max.bytes`, an unknown API key,
//! an unsupported version or an undecodable request closes the connection with one log line; the
//! broker goes on serving everyone else. When the peer hangs up, work whose answers nobody will
//! read (long polls) is aborted; requests already read are still handled, as Kafka does.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::handlers;
use super::response::{write_frame, Frame};
use super::versions;
use super::BrokerState;
use rill_core::wire::{self, FrameError};

/// A queued response: ready now, or computed by a task. `Now(None)`: nothing to send
/// (acks=0). A task that yields `None` failed to encode its response, which closes the
/// connection: skipping a response would shift every later correlation id.
pub enum Reply {
    /// Already encoded.
    Now(Option<Frame>),
    /// Being computed.
    Later(JoinHandle<Option<Frame>>),
}

impl Reply {
    /// Stop the work behind a reply nobody will read.
    fn abort(self) {
        if let Reply::Later(h) = self {
            h.abort();
        }
    }
}

/// Aborts a task when dropped, so a closed connection stops its pending work.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serve one connection until it closes or the broker stops.
pub async fn serve(state: Arc<BrokerState>, stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (mut rd, mut wr) = stream.into_split();
    let closed = state.shutdown.child_token();
    let in_flight = state.config.max_in_flight_per_connection.max(1);
    let (tx, mut rx) = mpsc::channel::<Reply>(in_flight);
    let zero_copy = state.config.zero_copy;
    let writer_closed = closed.clone();
    let writer = tokio::spawn(async move {
        loop {
            let reply = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => break },
                _ = writer_closed.cancelled() => break,
            };
            let frame = match reply {
                Reply::Now(None) => continue,
                Reply::Now(Some(f)) => f,
                Reply::Later(h) => {
                    let _guard = AbortOnDrop(h.abort_handle());
                    let done = tokio::select! {
                        r = h => r,
                        _ = writer_closed.cancelled() => break,
                    };
                    match done {
                        Ok(Some(f)) => f,
                        Ok(None) => {
                            tracing::error!(%peer, "a response could not be encoded; closing connection");
                            break;
                        }
                        Err(e) => {
                            tracing::error!(%peer, error = %e, "request task failed; closing connection");
                            break;
                        }
                    }
                }
            };
            let res = match if zero_copy { Ok(frame) } else { frame.materialize() } {
                Ok(f) => write_frame(&mut wr, &f).await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "write failed; closing connection");
                break;
            }
        }
        writer_closed.cancel();
        rx.close();
        while let Ok(r) = rx.try_recv() {
            r.abort();
        }
    });
    let (frames_tx, mut frames_rx) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(in_flight);
    let (worker_state, worker_closed) = (state.clone(), closed.clone());
    let worker = tokio::spawn(async move {
        while let Some((frame, permit)) = frames_rx.recv().await {
            match dispatch(&worker_state, frame, peer).await {
                Ok(reply) => {
                    if let Err(unsent) = tx.send(reply).await {
                        unsent.0.abort();
                    }
                }
                Err(why) => {
                    tracing::warn!(%peer, "{why}; closing connection");
                    worker_closed.cancel();
                    break;
                }
            }
            drop(permit);
        }
    });
    let max = state.config.socket_request_max_bytes;
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            f = read_budgeted(&state, &mut rd, max, &mut buf) => f,
            _ = closed.cancelled() => break,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(FrameError::Closed) => break,
            Err(FrameError::TooLarge { claimed, max }) => {
                tracing::warn!(%peer, claimed, max, "request larger than socket.request.max.bytes; closing connection");
                break;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "read failed; closing connection");
                break;
            }
        };
        if frames_tx.send(frame).await.is_err() {
            break;
        }
    }
    closed.cancel();
    drop(frames_tx);
    for (what, task) in [("request worker", worker), ("response writer", writer)] {
        if let Err(e) = task.await {
            tracing::error!(%peer, error = %e, "connection {what} failed");
        }
    }
}

/// Read one frame, then take its share of the broker's request-byte budget
/// (`queued.max.request.bytes`), held until the request has been handled.
///
/// The budget is taken for bytes that arrived, not for bytes claimed: a peer that claims
/// 100 MiB and sends little holds only what it sent, and cannot starve others by claiming.
/// Frames being read are bounded per connection (one at a time, at most
/// `socket.request.max.bytes`, and only as large as what actually arrived).
async fn read_budgeted(
    state: &BrokerState,
    rd: &mut OwnedReadHalf,
    max: usize,
    buf: &mut BytesMut,
) -> Result<(Bytes, OwnedSemaphorePermit), FrameError> {
    let n = wire::read_frame_len(rd, max).await?;
    let body = wire::read_frame_body(rd, n, wire::SERVER_TRUST_BYTES, buf).await?;
    let want = n.clamp(1, state.config.queued_max_request_bytes).min(u32::MAX as usize) as u32;
    let permit = state
        .request_budget
        .clone()
        .acquire_many_owned(want)
        .await
        .map_err(|_| FrameError::Io(std::io::ErrorKind::BrokenPipe.into()))?;
    Ok((body, permit))
}

/// Decode one request and run its handler. `Err` closes the connection.
async fn dispatch(state: &Arc<BrokerState>, frame: Bytes, peer: SocketAddr) -> Result<Reply, String> {
    if frame.len() < 8 {
        return Err(format!("request of {} bytes is too short for a header", frame.len()));
    }
    let mut peek = &frame[..8];
    let key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    if key == crate::cluster::rpc::API_KEY {
        return super::cluster::serve(state, frame).await;
    }
    let api = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    let Some((lo, hi)) = versions::range(api) else {
        return Err(format!("unsupported API {api:?}"));
    };
    if version < lo || version > hi {
        if api == ApiKey::ApiVersions {
            // Answer in the v0 format with UNSUPPORTED_VERSION and our list, so the client can
            // retry at a version we speak.
            let resp = versions::api_versions_response(handlers::codes::UNSUPPORTED_VERSION);
            return Ok(Reply::Now(Some(handlers::encode(api, 0, correlation_id, &resp)?)));
        }
        return Err(format!("{api:?} v{version} is outside the supported {lo}..={hi}"));
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| format!("undecodable {api:?} v{version} request header: {e}"))?;
    handlers::handle(state, api, version, header, body, peer).await
}
