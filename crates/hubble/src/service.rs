//! The `observer.Observer` gRPC service over a node's [`Observer`].
//!
//! `GetFlows` streams the buffered events the request selects, then (with `follow`) new
//! ones as the decoder writes them; a follower too slow for the ring gets a
//! `HUBBLE_RING_BUFFER` lost-event notice with the count it missed. Agent and debug events
//! are not produced by this agent: those streams are empty (or stay open, with `follow`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use cilium_hubble_proto::flow::{LostEvent, LostEventSource};
use cilium_hubble_proto::observer::observer_server;
use cilium_hubble_proto::observer::{
    get_flows_response::ResponseTypes, GetAgentEventsRequest, GetAgentEventsResponse,
    GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest, GetFlowsResponse,
    GetNodesRequest, GetNodesResponse, ServerStatusRequest, ServerStatusResponse,
};
use cilium_hubble_proto::Timestamp;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error_chain;
use crate::observer::Observer;
use crate::query::{response, Admission, FlowQuery};
use crate::ring::Event;

/// Responses queued per client before the streaming task waits for it.
const STREAM_BUFFER: usize = 256;
/// Events read from the ring per lock while following.
const FOLLOW_BATCH: usize = 256;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The gRPC service; cheap to clone.
#[derive(Clone)]
pub struct ObserverService {
    observer: Arc<Observer>,
    address: String,
}

impl ObserverService {
    /// Serves `observer`; `address` is how clients reach it (reported by `GetNodes`).
    pub fn new(observer: Arc<Observer>, address: impl Into<String>) -> Self {
        Self {
            observer,
            address: address.into(),
        }
    }
}

#[tonic::async_trait]
impl observer_server::Observer for ObserverService {
    type GetFlowsStream = ReceiverStream<Result<GetFlowsResponse, Status>>;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<Self::GetFlowsStream>, Status> {
        let query = FlowQuery::new(request.get_ref())
            .map_err(|error| Status::invalid_argument(error_chain(&error)))?;
        // The request's "now": what is buffered when it is accepted. Subscribed before the
        // snapshot, so whatever is written after it wakes the follower.
        let ring = self.observer.ring();
        let written = ring.subscribe();
        let (buffered, next) = ring.snapshot();
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream_flows(
            Arc::clone(&self.observer),
            query,
            Start {
                buffered,
                next,
                written,
            },
            sender,
        ));
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
        Ok(Response::new(GetNodesResponse {
            nodes: vec![self.observer.node(&self.address)],
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(self.observer.status()))
    }
}

/// A stream with no items: ends at once, or (following) when the client goes.
fn nothing<T: Send + 'static>(follow: bool) -> BoxStream<T> {
    if follow {
        Box::pin(futures::stream::pending())
    } else {
        Box::pin(futures::stream::empty())
    }
}

/// Where a `GetFlows` stream starts: the buffered events, the ring position after them, and
/// the ring's write counter to follow.
struct Start {
    buffered: Vec<Arc<Event>>,
    next: u64,
    written: watch::Receiver<u64>,
}

/// Feeds one `GetFlows` client until its request is answered or it goes away.
async fn stream_flows(
    observer: Arc<Observer>,
    query: FlowQuery,
    start: Start,
    sender: mpsc::Sender<Result<GetFlowsResponse, Status>>,
) {
    let node = observer.node_name().to_string();
    let ring = observer.ring();
    let Start {
        buffered,
        mut next,
        mut written,
    } = start;
    // Selecting may decode thousands of records: off the async workers.
    let query = Arc::new(query);
    let selecting = Arc::clone(&query);
    let Ok(buffered) =
        tokio::task::spawn_blocking(move || selecting.select_buffered(&buffered)).await
    else {
        let _ = sender
            .send(Err(Status::internal("selecting buffered flows failed")))
            .await;
        return;
    };
    for event in buffered {
        let Some(response) = response(&event, &node) else {
            continue;
        };
        if sender.send(Ok(response)).await.is_err() {
            return;
        }
    }
    if !query.follow() {
        return;
    }
    loop {
        let batch = ring.read_from(next, FOLLOW_BATCH);
        next = batch.next;
        if batch.lost > 0 {
            let notice = GetFlowsResponse {
                node_name: node.clone(),
                time: Some(Timestamp::from(SystemTime::now())),
                response_types: Some(ResponseTypes::LostEvents(LostEvent {
                    source: LostEventSource::HubbleRingBuffer as i32,
                    num_events_lost: batch.lost,
                    cpu: None,
                })),
            };
            if sender.send(Ok(notice)).await.is_err() {
                return;
            }
        }
        let caught_up = batch.events.is_empty();
        for event in batch.events {
            match query.admit(&event) {
                Admission::Send => {
                    let Some(response) = response(&event, &node) else {
                        continue;
                    };
                    if sender.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                Admission::Skip => {}
                Admission::End => return,
            }
        }
        if caught_up {
            tokio::select! {
                changed = written.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
            }
        }
    }
}
