//! Real packets between two pods on one node, through the attached
//! datapath: ARP answered by BPF, local delivery by tail call and
//! bpf_redirect_peer, and traffic that keeps flowing while no agent runs.

use std::{net::Ipv4Addr, process::Command, time::Duration};

use cilium_datapath::{codes::MetricDirection, AttachPreference, Datapath, EndpointDatapathConfig};

use crate::common::*;

const GATEWAY: &str = "10.200.0.1";

/// A pod namespace wired to `node` with a veth whose host side is `host_if`.
fn pod(node: &NetNs, tag: &str, n: u8, host_if: &str) -> (NetNs, EndpointDatapathConfig) {
    let pod = NetNs::new(tag);
    node.ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    node.ip(&["link", "set", host_if, "up"]);
    let mut ep = endpoint(n, host_if, node.ifindex(host_if));
    ep.node_mac = node.mac(host_if);
    ep.mac = pod.mac("eth0");
    pod.ip(&["addr", "add", &format!("{}/32", ep.ipv4), "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"]);
    pod.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
    (pod, ep)
}

/// One ping from `from` to `to`; true when answered.
fn ping(from: &NetNs, to: Ipv4Addr) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &from.name, "busybox", "ping", "-c", "1", "-W", "1",
        ])
        .arg(to.to_string())
        .output()
        .map(|out| out.status.success())
        .unwrap_or_else(|err| panic!("running ping: {err}"))
}

fn assert_pings(from: &NetNs, to: Ipv4Addr, when: &str) {
    wait_until(
        Duration::from_secs(10),
        &format!("{} to ping {to} {when}", from.name),
        || ping(from, to),
    );
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
