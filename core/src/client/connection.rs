//! One TCP connection to one broker: pipelined requests, responses matched in order.
//!
//! Kafka answers requests on a connection in the order they were sent, so a writer task sends
//! frames and queues each caller's reply slot; a reader task pops the slots in the same order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::wire::{self, DEFAULT_MAX_FRAME_BYTES};

type Reply = oneshot::Sender<Result<Bytes>>;

struct Call {
    frame: wire::Chunks,
    correlation_id: i32,
    /// `None` for requests the broker does not answer (Produce with acks=0).
    reply: Option<Reply>,
}

/// A connection to one broker, with the API versions it supports.
#[derive(Clone)]
pub struct Connection {
    addr: String,
    client_id: Arc<str>,
    tx: mpsc::Sender<Call>,
    next_id: Arc<AtomicI32>,
    versions: Arc<HashMap<i16, (i16, i16)>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("addr", &self.addr).finish()
    }
}

/// Requests queued per connection before callers wait (bounded in-flight).
const MAX_QUEUED: usize = 64;

impl Connection {
    /// Connect, start the I/O tasks and negotiate API versions.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Self> {
        let io_err = |cause| Error::Io { addr: addr.to_string(), cause };
        let stream = TcpStream::connect(addr).await.map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Call>(MAX_QUEUED);
        let (pending_tx, mut pending_rx) = mpsc::unbounded_channel::<(i32, Reply)>();
        let peer = addr.to_string();
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                if let Some(reply) = call.reply {
                    if pending_tx.send((call.correlation_id, reply)).is_err() {
                        break;
                    }
                }
                if let Err(e) = write_chunks(&mut wr, &call.frame.parts).await {
                    tracing::debug!(peer = %peer, error = %e, "write failed; closing connection");
                    break;
                }
            }
        });
        let peer = addr.to_string();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            while let Some((id, reply)) = pending_rx.recv().await {
                match wire::read_frame_trusting(&mut rd, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES, &mut buf)
                    .await
                {
                    Ok(frame) => {
                        let got = wire::peek_correlation_id(&frame);
                        if got != Some(id) {
                            let _ = reply.send(Err(Error::Protocol(format!(
                                "{peer} answered correlation id {got:?}, expected {id}"
                            ))));
                            break;
                        }
                        let _ = reply.send(Ok(frame));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        break;
                    }
                }
            }
            // Fail every caller still waiting.
            pending_rx.close();
            while let Some((_, reply)) = pending_rx.recv().await {
                let _ = reply.send(Err(Error::Disconnected(peer.clone())));
            }
        });
        let mut conn = Self {
            addr: addr.to_string(),
            client_id: client_id.into(),
            tx,
            next_id: Arc::new(AtomicI32::new(1)),
            versions: Arc::new(HashMap::new()),
        };
        conn.versions = Arc::new(conn.negotiate().await?);
        Ok(conn)
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("rill"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.call_at(req.clone(), 3).await?;
        if resp.error_code == 35 {
            resp = self.call_at(req, 0).await?;
        }
        if let Some(e) = Error::from_code(resp.error_code, "ApiVersions", None) {
            return Err(e);
        }
        Ok(resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect())
    }

    /// The highest version of `R` both sides support, capped at `our_max`.
    pub fn version<R: Request>(&self, our_max: i16) -> Result<i16> {
        let ours = R::VERSIONS;
        let api = ApiKey::try_from(R::KEY).map(|k| format!("{k:?}")).unwrap_or_default();
        let unsupported = || Error::UnsupportedVersion {
            addr: self.addr.clone(),
            api: api.clone(),
            min: ours.min,
            max: our_max.min(ours.max),
        };
        let (bmin, bmax) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let v = bmax.min(our_max).min(ours.max);
        if v < bmin.max(ours.min) {
            return Err(unsupported());
        }
        Ok(v)
    }

    /// Send `req` at the best common version (at most `our_max`) and wait for the response.
    pub async fn call<R: Request>(&self, req: R, our_max: i16) -> Result<R::Response> {
        let v = self.version::<R>(our_max)?;
        self.call_at(req, v).await
    }

    /// Send `req` at exactly `version` and wait for the response.
    pub async fn call_at<R: Request>(&self, req: R, version: i16) -> Result<R::Response> {
        self.call_at_with(req, version, &[]).await
    }

    /// Like [`Connection::call_at`], sending any of `payloads` that `req` holds (record
    /// batches) by reference rather than copying them into the frame.
    pub async fn call_at_with<R: Request>(&self, req: R, version: i16, payloads: &[Bytes]) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol("unknown API key".into()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode_request_chunks(key, version, id, &self.client_id, &req, payloads)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Call { frame, correlation_id: id, reply: Some(reply) })
            .await
            .map_err(|_| Error::Disconnected(self.addr.clone()))?;
        let frame = rx.await.map_err(|_| Error::Disconnected(self.addr.clone()))??;
        let (_, resp) = wire::decode_response::<R::Response>(key, version, frame)?;
        Ok(resp)
    }

    /// Send `req` without waiting for an answer (Produce with acks=0); `payloads` as in
    /// [`Connection::call_at_with`].
    pub async fn send_oneway<R: Request>(&self, req: R, our_max: i16, payloads: &[Bytes]) -> Result<()> {
        let version = self.version::<R>(our_max)?;
        let key = ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol("unknown API key".into()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode_request_chunks(key, version, id, &self.client_id, &req, payloads)?;
        self.tx
            .send(Call { frame, correlation_id: id, reply: None })
            .await
            .map_err(|_| Error::Disconnected(self.addr.clone()))
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True once the I/O tasks have stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Write every chunk with vectored writes, continuing after short writes.
async fn write_chunks(w: &mut tokio::net::tcp::OwnedWriteHalf, parts: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
