//! The relay end to end without privilege: two nodes' Observer servers on loopback TCP,
//! their peer records in an in-memory kvstore, the relay on a unix socket, and a client
//! asking what `hubble observe`, `hubble status` and `hubble list nodes` ask — with both
//! nodes up, then with one of them stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cilium_hubble::api::{
    get_flows_response::ResponseTypes, GetFlowsRequest, GetFlowsResponse, GetNodesRequest,
    ServerStatusRequest,
};
use cilium_hubble::flow::{Flow, FlowFilter, Verdict};
use cilium_hubble::peer::{self, PeerRecord};
use cilium_hubble::relay::NodeState;
use cilium_hubble::{
    client, serve, Capacity, FlowDecoder, NoContext, Observer, ObserverService, Timestamp,
};
use cilium_hubble_relay::service::RelayConfig;
use cilium_hubble_relay::{Peers, RelayService};
use cilium_kvstore::{KvStore, MemoryStore};
use tokio::sync::oneshot;

/// One node's Hubble server on loopback TCP.
struct NodeServer {
    observer: Arc<Observer>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
    address: String,
}

impl NodeServer {
    async fn start(name: &str) -> NodeServer {
        let observer = Arc::new(Observer::new(
            FlowDecoder::new(format!("default/{name}"), Arc::new(NoContext)),
            Capacity::default(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve_tcp(
            listener,
            ObserverService::new(Arc::clone(&observer), address.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        NodeServer {
            observer,
            stop: Some(stop),
            task,
            address,
        }
    }

    fn record(&self, seconds: i64, verdict: Verdict) {
        self.observer.record_flow(Flow {
            time: Some(Timestamp { seconds, nanos: 0 }),
            node_name: self.observer.node_name().to_string(),
            verdict: verdict as i32,
            ..Default::default()
        });
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .expect("server task")
            .expect("stopped cleanly");
    }
}

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn describe(responses: &[GetFlowsResponse]) -> Vec<String> {
    responses
        .iter()
        .map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(flow)) => {
                format!("{}@{}", flow.node_name, flow.time.map_or(0, |t| t.seconds))
            }
            Some(ResponseTypes::NodeStatus(status)) => format!(
                "{:?}:{}",
                NodeState::try_from(status.state_change).expect("known state"),
                status.node_names.join(",")
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn get_flows(target: &str, request: GetFlowsRequest) -> Vec<GetFlowsResponse> {
    let mut client = client::connect(target).await.expect("connect to the relay");
    let mut stream = client
        .get_flows(request)
        .await
        .expect("GetFlows")
        .into_inner();
    let mut responses = Vec::new();
    while let Some(response) = stream.message().await.expect("stream") {
        responses.push(response);
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_merges_nodes_and_reports_the_unavailable_one() {
    let node1 = NodeServer::start("node1").await;
    let node2 = NodeServer::start("node2").await;
    node1.record(1, Verdict::Forwarded);
    node2.record(2, Verdict::Dropped);
    node1.record(3, Verdict::Forwarded);
    node2.record(4, Verdict::Forwarded);

    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    for (name, server) in [("node1", &node1), ("node2", &node2)] {
        let record = PeerRecord {
            name: name.into(),
            cluster: "default".into(),
            address: server.address.clone(),
        };
        store
            .put(
                &peer::key("default", name),
                serde_json::to_vec(&record).expect("json"),
                None,
            )
            .await
            .expect("put");
    }
    let peers = Arc::new(Peers::new(Duration::from_secs(1)));
    tokio::spawn(Arc::clone(&peers).follow(Arc::clone(&store), "default".into()));
    eventually("both peers known", || {
        let n = peers.list().len();
        async move { n == 2 }
    })
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("relay.sock");
    let listener = serve::bind_unix(&socket).expect("bind relay");
    let relay = RelayService::new(
        Arc::clone(&peers),
        RelayConfig {
            request_timeout: Duration::from_secs(2),
            sort_window: Duration::from_millis(50),
        },
    );
    tokio::spawn(serve::serve_unix(listener, relay, std::future::pending()));
    let target = format!("unix://{}", socket.display());

    // Merged by time across nodes; `number` counts the cluster's last flows.
    let all = get_flows(&target, GetFlowsRequest::default()).await;
    assert_eq!(
        describe(&all),
        [
            "default/node1@1",
            "default/node2@2",
            "default/node1@3",
            "default/node2@4"
        ]
    );
    let last2 = get_flows(
        &target,
        GetFlowsRequest {
            number: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(describe(&last2), ["default/node1@3", "default/node2@4"]);
    let drops = get_flows(
        &target,
        GetFlowsRequest {
            whitelist: vec![FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(describe(&drops), ["default/node2@2"]);

    let mut client = client::connect(&target).await.expect("connect");
    let status = client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|n| n.value), Some(2));
    assert_eq!(status.num_unavailable_nodes.map(|n| n.value), Some(0));
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (4, 8190, 4)
    );

    // A follower gets each node's last flow, then new flows from both nodes. Receiving the
    // buffered ones proves both nodes' streams are open before anything new is recorded.
    let mut follower = client
        .get_flows(GetFlowsRequest {
            follow: true,
            number: 1,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let mut followed = Vec::new();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), follower.message())
            .await
            .expect("a followed flow within 5 s")
            .expect("stream")
            .expect("open")
    };
    for _ in 0..2 {
        followed.push(next().await);
    }
    node2.record(10, Verdict::Forwarded);
    node1.record(11, Verdict::Forwarded);
    for _ in 0..2 {
        followed.push(next().await);
    }
    assert_eq!(
        describe(&followed),
        [
            "default/node1@3",
            "default/node2@4",
            "default/node2@10",
            "default/node1@11"
        ]
    );
    drop(follower);

    // node2 stops: reported unavailable, node1 still served.
    node2.stop().await;
    let status = client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.num_connected_nodes.map(|n| n.value), Some(1));
    assert_eq!(status.num_unavailable_nodes.map(|n| n.value), Some(1));
    assert_eq!(status.unavailable_nodes, ["default/node2"]);
    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    let states: Vec<(String, i32)> = nodes.iter().map(|n| (n.name.clone(), n.state)).collect();
    assert_eq!(
        states,
        [
            ("default/node1".to_string(), NodeState::NodeConnected as i32),
            (
                "default/node2".to_string(),
                NodeState::NodeUnavailable as i32
            )
        ]
    );
    let rest = get_flows(&target, GetFlowsRequest::default()).await;
    assert_eq!(
        describe(&rest),
        [
            "NodeUnavailable:default/node2",
            "default/node1@1",
            "default/node1@3",
            "default/node1@11"
        ]
    );

    // Its peer record expiring removes it.
    store
        .delete(&peer::key("default", "node2"))
        .await
        .expect("delete");
    eventually("node2 forgotten", || {
        let n = peers.list().len();
        async move { n == 1 }
    })
    .await;
    node1.stop().await;
}
