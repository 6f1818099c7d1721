//! The relay's Observer service: every call goes to every known node.
//!
//! `GetFlows` sends the client's request to each node; nodes that cannot be reached are
//! reported first with a `NODE_UNAVAILABLE` status event, and a node whose stream fails
//! later is reported the same way while the others keep streaming. `ServerStatus` sums the
//! nodes' counters and lists the unavailable ones; `GetNodes` lists every node with its state.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cilium_hubble::api::observer_server::Observer;
use cilium_hubble::api::{
    get_flows_response::ResponseTypes, GetAgentEventsRequest, GetAgentEventsResponse,
    GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest, GetFlowsResponse,
    GetNodesRequest, GetNodesResponse, Node, ServerStatusRequest, ServerStatusResponse,
};
use cilium_hubble::relay::{NodeState, NodeStatusEvent};
use cilium_hubble::well_known::UInt32Value;
use cilium_hubble::Timestamp;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::merge::{merge_all, SortBuffer};
use crate::peers::{Peer, Peers};

/// Version reported to clients.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Responses queued per client before the relay waits for it.
const STREAM_BUFFER: usize = 1024;

/// Most responses a follower's sort buffer holds before releasing the oldest at once.
const SORT_BUFFER_CAPACITY: usize = 4096;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How the relay talks to nodes.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// Longest wait for a node's answer to a unary call (and for its first response).
    pub request_timeout: Duration,
    /// How long a followed response waits for older ones from slower nodes.
    pub sort_window: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            sort_window: Duration::from_millis(100),
        }
    }
}

/// The relay's gRPC service; cheap to clone.
#[derive(Clone)]
pub struct RelayService {
    peers: Arc<Peers>,
    config: RelayConfig,
    started: Instant,
}

impl RelayService {
    pub fn new(peers: Arc<Peers>, config: RelayConfig) -> Self {
        Self {
            peers,
            config,
            started: Instant::now(),
        }
    }

    /// Asks every peer the same unary question at once; each answer or the reason it failed.
    async fn ask<T, F, Fut>(&self, call: F) -> Vec<(Peer, Result<T, Status>)>
    where
        F: Fn(Peer) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let timeout = self.config.request_timeout;
        let calls = self.peers.list().into_iter().map(|peer| {
            let answer = call(peer.clone());
            async move {
                let result = match tokio::time::timeout(timeout, answer).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::deadline_exceeded(format!(
                        "no answer within {timeout:?}"
                    ))),
                };
                (peer, result)
            }
        });
        futures::future::join_all(calls).await
    }
}

fn status_event(state: NodeState, nodes: Vec<String>, message: String) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: String::new(),
        time: Some(Timestamp::from(SystemTime::now())),
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state as i32,
            node_names: nodes,
            message,
        })),
    }
}

#[tonic::async_trait]
impl Observer for RelayService {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let request = request.into_inner();
        if request.first && request.follow {
            return Err(Status::invalid_argument(
                "`first` cannot be combined with `follow`",
            ));
        }
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let (merged_tx, merged_rx) = mpsc::channel::<Merged>(STREAM_BUFFER);
        let peers = self.peers.list();
        for peer in peers {
            tokio::spawn(forward(
                peer,
                request.clone(),
                merged_tx.clone(),
                self.config.request_timeout,
            ));
        }
        drop(merged_tx);
        let config = self.config;
        tokio::spawn(async move {
            if request.follow {
                follow(merged_rx, sender, config.sort_window).await;
            } else {
                collect(merged_rx, sender, request.number, request.first).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;

    async fn get_agent_events(
        &self,
        request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Ok(Response::new(nothing(request.get_ref().follow)))
    }

    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    async fn get_debug_events(
        &self,
        request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Ok(Response::new(nothing(request.get_ref().follow)))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let answers = self
            .ask(|peer| async move {
                peer.client()
                    .get_nodes(GetNodesRequest {})
                    .await
                    .map(Response::into_inner)
            })
            .await;
        let nodes = answers
            .into_iter()
            .flat_map(|(peer, answer)| match answer {
                Ok(answer) => answer
                    .nodes
                    .into_iter()
                    .map(|node| Node {
                        address: peer.address.clone(),
                        ..node
                    })
                    .collect(),
                Err(_) => vec![Node {
                    name: peer.name.clone(),
                    address: peer.address.clone(),
                    state: NodeState::NodeUnavailable as i32,
                    ..Default::default()
                }],
            })
            .collect();
        Ok(Response::new(GetNodesResponse { nodes }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let answers = self
            .ask(|peer| async move {
                peer.client()
                    .server_status(ServerStatusRequest {})
                    .await
                    .map(Response::into_inner)
            })
            .await;
        let mut total = ServerStatusResponse {
            uptime_ns: u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            version: VERSION.to_string(),
            ..Default::default()
        };
        let mut connected = 0;
        for (peer, answer) in answers {
            match answer {
                Ok(status) => {
                    connected += 1;
                    total.num_flows += status.num_flows;
                    total.max_flows += status.max_flows;
                    total.seen_flows += status.seen_flows;
                }
                Err(status) => {
                    tracing::debug!(node = %peer.name, %status, "node unavailable");
                    total.unavailable_nodes.push(peer.name);
                }
            }
        }
        total.num_connected_nodes = Some(UInt32Value { value: connected });
        total.num_unavailable_nodes = Some(UInt32Value {
            value: total.unavailable_nodes.len() as u32,
        });
        Ok(Response::new(total))
    }
}

fn nothing<T: Send + 'static>(follow: bool) -> BoxStream<T> {
    if follow {
        Box::pin(futures::stream::pending())
    } else {
        Box::pin(futures::stream::empty())
    }
}

/// What the per-node tasks hand to the merging task.
enum Merged {
    Response(Box<GetFlowsResponse>),
    /// The node could not be reached or its stream failed.
    Unavailable {
        node: String,
        message: String,
    },
}

/// Streams one node's answer into the merge; a failure becomes an `Unavailable` notice.
async fn forward(
    peer: Peer,
    request: GetFlowsRequest,
    merged: mpsc::Sender<Merged>,
    timeout: Duration,
) {
    let unavailable = |message: String| Merged::Unavailable {
        node: peer.name.clone(),
        message,
    };
    let mut client = peer.client();
    let stream = match tokio::time::timeout(timeout, client.get_flows(request)).await {
        Ok(Ok(stream)) => stream.into_inner(),
        Ok(Err(status)) => {
            let _ = merged.send(unavailable(status.message().to_string())).await;
            return;
        }
        Err(_) => {
            let _ = merged
                .send(unavailable(format!("no answer within {timeout:?}")))
                .await;
            return;
        }
    };
    let mut stream = stream;
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            // The client went away: stop reading (and let the node close the stream).
            () = merged.closed() => return,
        };
        match next {
            Ok(Some(response)) => {
                if merged
                    .send(Merged::Response(Box::new(response)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(None) => return,
            Err(status) => {
                let _ = merged.send(unavailable(status.message().to_string())).await;
                return;
            }
        }
    }
}

/// Reports unavailable nodes, one status event per failure.
fn unavailable_event(node: String, message: String) -> GetFlowsResponse {
    status_event(NodeState::NodeUnavailable, vec![node], message)
}

/// Without `follow`: every node's full answer, merged, then sent.
async fn collect(
    mut merged: mpsc::Receiver<Merged>,
    sender: mpsc::Sender<Result<GetFlowsResponse, Status>>,
    number: u64,
    first: bool,
) {
    let mut responses = Vec::new();
    let mut notices = Vec::new();
    while let Some(item) = merged.recv().await {
        match item {
            Merged::Response(response) => responses.push(*response),
            Merged::Unavailable { node, message } => notices.push(unavailable_event(node, message)),
        }
    }
    for response in notices
        .into_iter()
        .chain(merge_all(responses, number, first))
    {
        if sender.send(Ok(response)).await.is_err() {
            return;
        }
    }
}

/// With `follow`: responses in time order through a sort window, until the client goes.
async fn follow(
    mut merged: mpsc::Receiver<Merged>,
    sender: mpsc::Sender<Result<GetFlowsResponse, Status>>,
    window: Duration,
) {
    let mut buffer = SortBuffer::new(window, SORT_BUFFER_CAPACITY);
    loop {
        let due = buffer.next_due();
        let item = tokio::select! {
            item = merged.recv() => item,
            () = sleep_until(due) => {
                for response in buffer.release(Instant::now()) {
                    if sender.send(Ok(response)).await.is_err() { return; }
                }
                continue;
            }
            () = sender.closed() => return,
        };
        match item {
            Some(Merged::Response(response)) => buffer.push(*response, Instant::now()),
            Some(Merged::Unavailable { node, message }) => {
                if sender
                    .send(Ok(unavailable_event(node, message)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            None => {
                // Every node's stream ended (all unavailable, or `until` reached).
                for response in buffer.drain() {
                    if sender.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
        for response in buffer.release(Instant::now()) {
            if sender.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}
