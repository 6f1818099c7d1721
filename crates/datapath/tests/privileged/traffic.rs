//! Real packets between two pods on one node, through the attached
//! datapath: ARP answered by BPF, local delivery by tail call and
//! bpf_redirect_peer, and traffic that keeps flowing while no agent runs.

use std::net::Ipv4Addr;

use cilium_datapath::{codes::MetricDirection, AttachPreference, Datapath, EndpointDatapathConfig};

use crate::common::*;

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

/// A pod namespace wired to `node` with a veth whose host side is `host_if`.
fn pod(node: &NetNs, tag: &str, n: u8, host_if: &str) -> (NetNs, EndpointDatapathConfig) {
    wire_pod(node, tag, endpoint(n, host_if, 0), GATEWAY, 1500)
}

#[test]
fn pods_talk_through_the_datapath_and_keep_talking_without_an_agent() {
    let root = TestRoot::new();
    let node = NetNs::new("node");
    let (pod_a, ep_a) = pod(&node, "poda", 11, "lxc-a");
    let (pod_b, ep_b) = pod(&node, "podb", 22, "lxc-b");
    let config = root.config(3, AttachPreference::Auto);

    let dp = node.run({
        let (config, ep_a, ep_b) = (config.clone(), ep_a.clone(), ep_b.clone());
        move || {
            let dp = open_datapath(config);
            for ep in [&ep_a, &ep_b] {
                dp.install_endpoint(ep)
                    .unwrap_or_else(|err| panic!("installing {}: {}", ep.id, chain(&err)));
            }
            dp
        }
    });
    assert_pings(&pod_a, ep_b.ipv4, "through the datapath");
    assert_pings(&pod_b, ep_a.ipv4, "through the datapath");
    let delivered = dp
        .metrics()
        .expect("reading metrics")
        .iter()
        .filter(|m| m.reason == 0 && m.direction == MetricDirection::Ingress)
        .map(|m| m.packets)
        .sum::<u64>();
    assert!(
        delivered >= 4,
        "requests and replies were delivered by BPF: {delivered}"
    );

    // The agent goes away: nothing of the process is needed any more.
    drop(dp);
    assert_pings(&pod_a, ep_b.ipv4, "with no agent running");

    // A new agent opens the same state and regenerates an endpoint on top.
    let dp = node.run({
        let ep_a = ep_a.clone();
        move || {
            let dp = Datapath::open(config).expect("reopening the datapath");
            assert!(
                dp.endpoint_attached(ep_a.id),
                "the new agent sees the attachment"
            );
            dp.install_endpoint(&ep_a)
                .unwrap_or_else(|err| panic!("regenerating {}: {}", ep_a.id, chain(&err)));
            dp
        }
    });
    assert_pings(&pod_a, ep_b.ipv4, "after the restart and regeneration");

    let dp = node.run(move || {
        dp.remove_endpoint(ep_b.id, ep_b.ipv4)
            .unwrap_or_else(|err| panic!("removing {}: {}", ep_b.id, chain(&err)));
        dp
    });
    assert!(
        !ping(&pod_a, ep_b.ipv4),
        "no delivery once the endpoint is removed"
    );
    drop(dp);
}
