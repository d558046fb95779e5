//! Raft's network: one [`PeerClient`] per replication stream, over the peers' broker ports.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;

use super::TypeConfig;
use crate::cluster::rpc::{PeerClient, Request, Response};

/// Makes a connection per peer.
#[derive(Debug, Clone, Default)]
pub struct Network;

/// A connection to one peer.
#[derive(Debug)]
pub struct Connection {
    target: u64,
    client: PeerClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        Connection { target, client: PeerClient::new(node.addr.clone()) }
    }
}

type Rpc<T, E = openraft::error::Infallible> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Connection {
    async fn send(&self, req: Request, option: &RPCOption) -> Result<Response, Unreachable> {
        self.client.call(&req, option.hard_ttl()).await.map_err(|e| Unreachable::new(&e))
    }

    fn unexpected<E: std::error::Error>(&self, what: &str) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        let e = std::io::Error::other(format!("peer {} answered {what} with another message", self.target));
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<u64, E>) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>> {
        match self.send(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("AppendEntries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self.send(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("InstallSnapshot")),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Rpc<VoteResponse<u64>> {
        match self.send(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("Vote")),
        }
    }
}
