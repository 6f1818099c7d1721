//! The Observer API end to end without privilege: records decoded into a node's ring, the
//! gRPC server on a temporary unix socket, a tonic client asking what `hubble observe` and
//! `hubble status` ask.

mod support;

use std::time::Duration;

use cilium_hubble::api::{
    get_flows_response::ResponseTypes, GetFlowsRequest, GetFlowsResponse, GetNodesRequest,
    ServerStatusRequest,
};
use cilium_hubble::flow::{DropReason, Flow, FlowFilter, Verdict};
use cilium_hubble::relay::NodeState;
use cilium_hubble::{client, layers};
use support::*;
use tonic::Code;

fn xwing_drop() -> Vec<u8> {
    drop_record(
        DEATHSTAR_EP,
        POLICY_DENIED,
        XWING_ID,
        DEATHSTAR_ID,
        &tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02),
    )
}

fn tiefighter_delivered(sport: u16) -> Vec<u8> {
    trace_record(
        DEATHSTAR_EP,
        TO_ENDPOINT,
        REASON_NEW,
        TIEFIGHTER_ID,
        DEATHSTAR_ID,
        &tcp_frame(TIEFIGHTER, DEATHSTAR, sport, 80, 0x02),
    )
}

fn flow_of(response: GetFlowsResponse) -> Flow {
    match response.response_types {
        Some(ResponseTypes::Flow(flow)) => flow,
        other => panic!("expected a flow, got {other:?}"),
    }
}

async fn get_flows(target: &str, request: GetFlowsRequest) -> Vec<Flow> {
    let mut client = client::connect(target).await.expect("connect");
    let mut stream = client
        .get_flows(request)
        .await
        .expect("GetFlows accepted")
        .into_inner();
    let mut flows = Vec::new();
    while let Some(response) = stream.message().await.expect("stream") {
        flows.push(flow_of(response));
    }
    flows
}

fn dropped() -> FlowFilter {
    FlowFilter {
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_flows_filters_and_server_status() {
    let server = Server::start();
    server.feed(tiefighter_delivered(40000), 1);
    server.feed(xwing_drop(), 2);
    server.feed(tiefighter_delivered(40001), 3);
    let target = server.target();

    // `hubble observe --verdict DROPPED`
    let drops = get_flows(
        &target,
        GetFlowsRequest {
            number: 20,
            whitelist: vec![dropped()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(drops.len(), 1, "{drops:?}");
    let drop = &drops[0];
    assert_eq!(drop.drop_reason_desc, DropReason::PolicyDenied as i32);
    assert_eq!(drop.node_name, NODE);
    let source = drop.source.as_ref().expect("source");
    assert_eq!(
        (
            source.namespace.as_str(),
            source.pod_name.as_str(),
            source.identity
        ),
        ("default", "xwing", XWING_ID)
    );
    assert!(source.labels.contains(&"k8s:class=xwing".to_string()));
    let destination = drop.destination.as_ref().expect("destination");
    assert_eq!(
        (destination.pod_name.as_str(), destination.identity),
        ("deathstar", DEATHSTAR_ID)
    );
    // What `hubble observe -o json` prints for it.
    let json = serde_json::to_value(drop).expect("JSON");
    assert_eq!(json["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(json["verdict"], "DROPPED");
    assert_eq!(json["source"]["pod_name"], "xwing");
    assert_eq!(json["Type"], "L3_L4");

    // `--not --verdict DROPPED --last 1`: the newest flow that is not a drop.
    let last = get_flows(
        &target,
        GetFlowsRequest {
            number: 1,
            blacklist: vec![dropped()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(last.len(), 1);
    assert_eq!(layers::ports(&last[0]), Some((40001, 80)));

    // `--first 2` and `--from-pod default/tiefighter` (a whitelist of two filters is ORed).
    let first = get_flows(
        &target,
        GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.len(), 2);
    assert_eq!(first[1].verdict, Verdict::Dropped as i32);
    let either = get_flows(
        &target,
        GetFlowsRequest {
            whitelist: vec![
                dropped(),
                FlowFilter {
                    source_pod: vec!["default/tie".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(either.len(), 3);

    // A malformed filter is refused with the field named.
    let mut client = client::connect(&target).await.expect("connect");
    let refused = client
        .get_flows(GetFlowsRequest {
            whitelist: vec![FlowFilter {
                source_ip: vec!["10.0.0.999".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect_err("bad IP refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("source_ip"), "{refused:?}");

    // `hubble status` and `hubble list nodes`.
    let status = client
        .server_status(ServerStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (3, 4095, 3)
    );
    assert!(status.uptime_ns > 0);
    assert_eq!(status.num_connected_nodes.map(|n| n.value), Some(1));
    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, NODE);
    assert_eq!(nodes[0].state, NodeState::NodeConnected as i32);
    assert_eq!(nodes[0].address, target);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_new_matching_flows() {
    let server = Server::start();
    server.feed(xwing_drop(), 1);
    let mut client = client::connect(&server.target()).await.expect("connect");
    // `hubble observe -f --from-pod default/xwing`: only what comes next.
    let mut stream = client
        .get_flows(GetFlowsRequest {
            follow: true,
            whitelist: vec![FlowFilter {
                source_pod: vec!["default/xwing".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("GetFlows accepted")
        .into_inner();

    server.feed(tiefighter_delivered(40000), 2); // filtered out
    let mut later = xwing_drop();
    // Mark the new drop: a different source port in the captured TCP header.
    let port_at = later.len() - 20;
    later[port_at..port_at + 2].copy_from_slice(&40404u16.to_be_bytes());
    server.feed(later, 3);

    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a followed flow within 5 s")
        .expect("stream")
        .expect("not ended");
    let flow = flow_of(next);
    assert_eq!(
        flow.source.as_ref().map(|s| s.pod_name.as_str()),
        Some("xwing")
    );
    assert_eq!(
        layers::ports(&flow),
        Some((40404, 80)),
        "the new drop, not the buffered one"
    );
    drop(stream);
    server.stop().await;
}
