//! One client connection: read frames, dispatch, write responses in request order.
//!
//! The reader runs each request's ordered part inline (appends happen in the order requests
//! arrive) and queues the response; work that may wait (durability flushes, fetch long polls)
//! continues in its own task. At most `max_in_flight_per_connection` responses are queued before
//! the reader stops reading. A frame over `socket.request.max.bytes`, an unknown API key, an
//! unsupported version or an undecodable request closes the connection with one log line; the
//! broker goes on serving everyone else.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util_like::CancelOnDrop;

use super::handlers;
use super::response::{write_frame, Frame};
use super::versions;
use super::BrokerState;
use rill_core::wire::{self, FrameError};

/// A queued response: ready now, or computed by a task. `None`: nothing to send (acks=0).
pub enum Reply {
    /// Already encoded.
    Now(Option<Frame>),
    /// Being computed.
    Later(JoinHandle<Option<Frame>>),
}

mod tokio_util_like {
    /// Aborts a task when dropped, so a closed connection stops its pending work.
    pub struct CancelOnDrop(pub tokio::task::AbortHandle);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
}

/// Serve one connection until it closes or the broker stops.
pub async fn serve(state: Arc<BrokerState>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Reply>(state.config.max_in_flight_per_connection.max(1));
    let zero_copy = state.config.zero_copy;
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let frame = match reply {
                Reply::Now(f) => f,
                Reply::Later(h) => {
                    let _guard = CancelOnDrop(h.abort_handle());
                    match h.await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::error!(%peer, error = %e, "request task failed; closing connection");
                            return;
                        }
                    }
                }
            };
            let Some(frame) = frame else { continue };
            let frame = if zero_copy { Ok(frame) } else { frame.materialize() };
            let res = match frame {
                Ok(f) => write_frame(&mut wr, &f).await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "write failed; closing connection");
                return;
            }
        }
    });
    // The worker handles requests strictly in arrival order while the reader is already
    // reading the next frame off the socket: network reads overlap disk appends.
    let (frames_tx, mut frames_rx) = mpsc::channel::<Bytes>(state.config.max_in_flight_per_connection.max(1));
    let worker_state = state.clone();
    let worker = tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            match dispatch(&worker_state, frame).await {
                Ok(reply) => {
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                }
                Err(why) => {
                    tracing::warn!(%peer, "{why}; closing connection");
                    break;
                }
            }
        }
    });
    let max = state.config.socket_request_max_bytes;
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            f = wire::read_frame(&mut rd, max, &mut buf) => f,
            _ = state.shutdown.cancelled() => break,
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
            // The worker closed the connection (a bad request).
            break;
        }
    }
    drop(frames_tx);
    for (what, task) in [("request worker", worker), ("response writer", writer)] {
        if let Err(e) = task.await {
            tracing::error!(%peer, error = %e, "connection {what} failed");
        }
    }
}

/// Decode one request and run its handler. `Err` closes the connection.
async fn dispatch(state: &Arc<BrokerState>, frame: Bytes) -> Result<Reply, String> {
    if frame.len() < 8 {
        return Err(format!("request of {} bytes is too short for a header", frame.len()));
    }
    let mut peek = &frame[..8];
    let key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
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
    handlers::handle(state, api, version, header, body).await
}
