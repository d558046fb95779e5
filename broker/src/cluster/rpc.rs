//! Broker-to-broker calls of the metadata quorum, carried on the brokers' Kafka port.
//!
//! A request is a Kafka-style frame whose API key is [`API_KEY`] (far outside Kafka's range, so
//! no Kafka client sends it): `[i32 length][i16 key][i16 version 0][i32 correlation id][JSON]`.
//! The answer is `[i32 length][i32 correlation id][JSON]`. JSON keeps the metadata traffic
//! readable in a capture; it is small (Raft entries, heartbeats), unlike the replication of
//! partition data, which uses the Kafka Fetch API itself.
//!
//! There is no authentication: like Kafka's PLAINTEXT listener, the port must only be reachable
//! by the cluster's brokers and its clients.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::command::{Command, Reply};
use super::raft::TypeConfig;

/// The API key of cluster calls.
pub const API_KEY: i16 = 10_000;

/// Largest cluster frame accepted (snapshots travel in chunks well below it).
pub const MAX_FRAME: usize = 64 << 20;

/// A call from one broker to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Raft: replicate entries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: ask for a vote.
    Vote(VoteRequest<u64>),
    /// Raft: a snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Apply a command through the active controller (the Raft leader).
    Propose(Command),
    /// A broker is alive at this registration.
    Heartbeat {
        /// `node.id`.
        id: i32,
        /// Its broker epoch.
        epoch: u64,
    },
}

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// The node asked is not the controller; `leader` is, if known.
    #[error("node is not the active controller (the controller is {leader:?})")]
    NotController {
        /// The current controller.
        leader: Option<u64>,
    },
    /// The quorum failed to commit it (no quorum, shutting down, ...).
    #[error("the metadata quorum did not commit the change: {0}")]
    Failed(String),
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    /// Alive and registered at this epoch.
    Ok,
    /// Ask the controller: this node is not it.
    NotController {
        /// The controller, if known.
        leader: Option<u64>,
    },
    /// The epoch is not the broker's current registration: register again.
    Stale,
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// To [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To [`Request::Vote`].
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To [`Request::InstallSnapshot`].
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To [`Request::Propose`].
    Propose(Result<Reply, ProposeError>),
    /// To [`Request::Heartbeat`].
    Heartbeat(HeartbeatReply),
    /// The receiving broker is not part of a cluster (or is starting).
    NoCluster,
}

/// Parse a request frame (without its length prefix); returns the correlation id and request.
pub fn decode_request(mut frame: Bytes) -> Result<(i32, Request), String> {
    if frame.len() < 8 {
        return Err("cluster request too short".into());
    }
    let _key = frame.get_i16();
    let _version = frame.get_i16();
    let correlation = frame.get_i32();
    let req = serde_json::from_slice(&frame).map_err(|e| format!("undecodable cluster request: {e}"))?;
    Ok((correlation, req))
}

/// Encode a response frame, length prefix included.
pub fn encode_response(correlation: i32, resp: &Response) -> Result<BytesMut, String> {
    let json = serde_json::to_vec(resp).map_err(|e| format!("cannot encode cluster response: {e}"))?;
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.put_i32((json.len() + 4) as i32);
    out.put_i32(correlation);
    out.extend_from_slice(&json);
    Ok(out)
}

/// A connection to one peer, opened on first use and reopened after an error. Calls on one
/// client are sequential.
#[derive(Debug)]
pub struct PeerClient {
    addr: String,
    conn: tokio::sync::Mutex<Option<TcpStream>>,
    next_id: std::sync::atomic::AtomicI32,
}

impl PeerClient {
    /// A client for the broker at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), conn: Default::default(), next_id: Default::default() }
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send `req` and wait at most `timeout` for the answer.
    pub async fn call(&self, req: &Request, timeout: Duration) -> std::io::Result<Response> {
        let mut conn = self.conn.lock().await;
        let res = tokio::time::timeout(timeout, self.call_on(&mut conn, req)).await;
        let res =
            res.unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "cluster call timed out")));
        if res.is_err() {
            // Whatever was in flight on the stream is unknown now.
            *conn = None;
        }
        res
    }

    async fn call_on(&self, conn: &mut Option<TcpStream>, req: &Request) -> std::io::Result<Response> {
        if conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            *conn = Some(s);
        }
        let stream = conn.as_mut().expect("connected above");
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let json = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        let mut frame = BytesMut::with_capacity(json.len() + 12);
        frame.put_i32((json.len() + 8) as i32);
        frame.put_i16(API_KEY);
        frame.put_i16(0);
        frame.put_i32(id);
        frame.extend_from_slice(&json);
        stream.write_all(&frame).await?;
        let mut buf = BytesMut::new();
        let mut body = rill_core::wire::read_frame_trusting(stream, MAX_FRAME, MAX_FRAME, &mut buf)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if body.len() < 4 || body.get_i32() != id {
            return Err(std::io::Error::other("cluster response out of order"));
        }
        serde_json::from_slice(&body).map_err(|e| std::io::Error::other(format!("undecodable cluster response: {e}")))
    }
}
