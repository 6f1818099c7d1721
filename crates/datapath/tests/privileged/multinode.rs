//! Two nodes end to end: each node a `cilt-` namespace with its own
//! datapath and bpffs root, joined by a veth underlay (192.0.2.0/24), one
//! pod on each. Tunnel mode: pods talk through `cilium_vxlan` devices and the
//! capture on the underlay shows UDP 8472 with the sender's identity as VNI.
//! Native mode: the sender sends plain packets out of the underlay device to
//! the node its ipcache names (the kernel resolving that node's MAC), the
//! receiver's underlay program hands them to the pod's policy program with
//! the source identity from its ipcache. Both modes run
//! with the underlay program attached, as the agent does.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    time::Duration,
};

use cilium_datapath::{
    abi::{RemoteEndpointInfo, TRACE_AGGREGATE_ACTIVE_CT, TRACE_AGGREGATE_NONE, TUPLE_F_IN},
    codes::{DropReason, ObservationPoint},
    maps::{CtEntryRecord, CtMap, CtMapKind},
    AttachPreference, Datapath, DatapathEvent, EndpointDatapathConfig, Routing, Underlay,
};
use ipnet::Ipv4Net;

use crate::{
    capture::{Capture, Packet, VXLAN_PORT},
    common::*,
};

const VXLAN: &str = "cilium_vxlan";
const UNDERLAY: &str = "ul0";
/// The outer TTL of the datapath's VXLAN packets (encap.h).
const TUNNEL_TTL: u8 = 64;
/// VXLAN adds 50 bytes: pods in tunnel mode get 1450 on a 1500 underlay.
const TUNNEL_POD_MTU: u32 = 1450;

/// What differs between the two nodes.
struct NodeSpec {
    tag: &'static str,
    underlay_ip: Ipv4Addr,
    pod_cidr: &'static str,
    gateway: Ipv4Addr,
    pod: EndpointDatapathConfig,
}

/// The two nodes; their pods have identities `identity_a` and `identity_b`.
fn specs(identity_a: u32, identity_b: u32) -> [NodeSpec; 2] {
    let pod = |id: u16, identity: u32, ipv4: Ipv4Addr, ifname: &str| EndpointDatapathConfig {
        id,
        identity,
        ipv4,
        mac: [0; 6],
        node_mac: [0; 6],
        ifindex: 0,
        ifname: ifname.to_string(),
    };
    [
        NodeSpec {
            tag: "nodea",
            underlay_ip: Ipv4Addr::new(192, 0, 2, 1),
            pod_cidr: "10.0.1.0/24",
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            pod: pod(101, identity_a, Ipv4Addr::new(10, 0, 1, 5), "lxc-a"),
        },
        NodeSpec {
            tag: "nodeb",
            underlay_ip: Ipv4Addr::new(192, 0, 2, 2),
            pod_cidr: "10.0.2.0/24",
            gateway: Ipv4Addr::new(10, 0, 2, 1),
            pod: pod(202, identity_b, Ipv4Addr::new(10, 0, 2, 5), "lxc-b"),
        },
    ]
}

/// One node. Field order is drop order: datapath, bpffs root, pod, node.
struct Node {
    dp: Datapath,
    _root: TestRoot,
    pod: NetNs,
    ep: EndpointDatapathConfig,
    ns: NetNs,
}

/// Two nodes, each knowing the other's pod through its ipcache.
struct Cluster {
    a: Node,
    b: Node,
}

/// Prefix length of the nodes' underlay subnet (192.0.2.0/24).
const UNDERLAY_PREFIX: u8 = 24;

impl Cluster {
    /// Pod A has identity 4242, pod B 4343.
    fn new(tunnel: bool, monitor_aggregation: u32) -> Self {
        Self::with_identities(tunnel, monitor_aggregation, 4242, 4343)
    }

    fn with_identities(
        tunnel: bool,
        monitor_aggregation: u32,
        identity_a: u32,
        identity_b: u32,
    ) -> Self {
        Self::build(
            tunnel,
            monitor_aggregation,
            [identity_a, identity_b],
            UNDERLAY_PREFIX,
        )
    }

    /// Tunnel mode with each node's underlay address as a /32 and a route
    /// to the other: to each node's datapath the other is off its subnet.
    fn tunnel_off_subnet() -> Self {
        Self::build(true, TRACE_AGGREGATE_ACTIVE_CT, [4242, 4343], 32)
    }

    fn build(
        tunnel: bool,
        monitor_aggregation: u32,
        [identity_a, identity_b]: [u32; 2],
        underlay_prefix: u8,
    ) -> Self {
        let [spec_a, spec_b] = specs(identity_a, identity_b);
        let ns_a = NetNs::new(spec_a.tag);
        let ns_b = NetNs::new(spec_b.tag);
        ns_a.ip(&[
            "link", "add", UNDERLAY, "type", "veth", "peer", "name", UNDERLAY, "netns", &ns_b.name,
        ]);
        let underlay = |spec: &NodeSpec| Underlay {
            device: UNDERLAY.to_string(),
            address: Ipv4Net::new(spec.underlay_ip, underlay_prefix).expect("valid prefix"),
        };
        for (ns, spec, peer) in [(&ns_a, &spec_a, &spec_b), (&ns_b, &spec_b, &spec_a)] {
            ns.ip(&[
                "addr",
                "add",
                &underlay(spec).address.to_string(),
                "dev",
                UNDERLAY,
            ]);
            ns.ip(&["link", "set", UNDERLAY, "up"]);
            if underlay_prefix == 32 {
                ns.ip(&[
                    "route",
                    "add",
                    &peer.underlay_ip.to_string(),
                    "dev",
                    UNDERLAY,
                ]);
            }
        }
        let a = Self::node(
            ns_a,
            &spec_a,
            &spec_b,
            tunnel,
            monitor_aggregation,
            underlay(&spec_a),
        );
        let b = Self::node(
            ns_b,
            &spec_b,
            &spec_a,
            tunnel,
            monitor_aggregation,
            underlay(&spec_b),
        );
        Self { a, b }
    }

    /// Sets up the node `ns` of `spec` as the agent would: devices, routes,
    /// the pod, the datapath, the ipcache entry of `peer`'s pod.
    fn node(
        ns: NetNs,
        spec: &NodeSpec,
        peer: &NodeSpec,
        tunnel: bool,
        monitor_aggregation: u32,
        underlay: Underlay,
    ) -> Node {
        let root = TestRoot::new();
        let mut config = root.config(monitor_aggregation, AttachPreference::Auto);
        // As the agent does in both modes.
        config.underlay = Some(underlay);
        let mtu = if tunnel {
            ns.ip(&[
                "link",
                "add",
                VXLAN,
                "type",
                "vxlan",
                "external",
                "dstport",
                "8472",
                "nolearning",
            ]);
            ns.ip(&["link", "set", VXLAN, "up"]);
            config.routing = Routing::Tunnel {
                device: VXLAN.to_string(),
                port: VXLAN_PORT,
            };
            TUNNEL_POD_MTU
        } else {
            sh(&[
                "ip",
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            ns.ip(&[
                "route",
                "add",
                peer.pod_cidr,
                "via",
                &peer.underlay_ip.to_string(),
                "dev",
                UNDERLAY,
            ]);
            1500
        };
        let (pod, ep) = wire_pod(&ns, spec.tag, spec.pod.clone(), spec.gateway, mtu);
        ns.ip(&[
            "route",
            "add",
            &format!("{}/32", ep.ipv4),
            "dev",
            &ep.ifname,
        ]);

        let remote = Ipv4Net::from(peer.pod.ipv4);
        // Cilium's ipcache names the hosting node in both modes; only the
        // routing mode decides whether it is used.
        let remote_info = RemoteEndpointInfo::with_tunnel(peer.pod.identity, peer.underlay_ip);
        let underlay_ip = spec.underlay_ip;
        let dp = ns.run({
            let ep = ep.clone();
            move || {
                let dp = open_datapath(config);
                dp.install_endpoint(&ep)
                    .unwrap_or_else(|err| panic!("installing {}: {}", ep.id, chain(&err)));
                dp.upsert_ipcache(remote, &remote_info)
                    .unwrap_or_else(|err| panic!("ipcache {remote}: {}", chain(&err)));
                if tunnel {
                    dp.attach_overlay(VXLAN)
                        .unwrap_or_else(|err| panic!("attaching the overlay: {}", chain(&err)));
                }
                // As the agent does in both modes.
                dp.upsert_host_ip(underlay_ip)
                    .unwrap_or_else(|err| panic!("the node IP: {}", chain(&err)));
                dp.attach_host_device(UNDERLAY)
                    .unwrap_or_else(|err| panic!("attaching the host device: {}", chain(&err)));
                dp
            }
        });
        Node {
            dp,
            _root: root,
            pod,
            ep,
            ns,
        }
    }
}

/// ICMP conntrack entries of `dp` from `src` to `dst` created on ingress.
fn icmp_ingress_entries(dp: &Datapath, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<CtEntryRecord> {
    CtMap::open(dp.paths(), CtMapKind::Any)
        .and_then(|map| map.entries())
        .unwrap_or_else(|err| panic!("reading conntrack: {}", chain(&err)))
        .into_iter()
        .filter(|r| {
            r.tuple.source() == src
                && r.tuple.destination() == dst
                && r.tuple.nexthdr == IPPROTO_ICMP
                && r.tuple.flags == TUPLE_F_IN
        })
        .collect()
}

fn assert_receiver_tracked(receiver: &Node, sender: &Node) {
    let entries = icmp_ingress_entries(&receiver.dp, sender.ep.ipv4, receiver.ep.ipv4);
    assert!(
        !entries.is_empty(),
        "{} tracks the ping from {}",
        receiver.ns.name,
        sender.ep.ipv4
    );
    for record in &entries {
        assert_eq!(
            record.entry.src_sec_id, sender.ep.identity,
            "{} knows the sender's identity: {record:?}",
            receiver.ns.name
        );
    }
}

fn trace_at(
    events: &[DatapathEvent],
    point: ObservationPoint,
    src_identity: u32,
) -> Vec<cilium_datapath::TraceEvent> {
    traces(events)
        .into_iter()
        .filter(|t| t.observation_point == point && t.src_identity == src_identity)
        .cloned()
        .collect()
}

fn ping_both_ways(cluster: &Cluster, when: &str) {
    assert_pings(&cluster.a.pod, cluster.b.ep.ipv4, when);
    assert_pings(&cluster.b.pod, cluster.a.ep.ipv4, when);
}

/// Packets the kernel's VXLAN device of `node` has received (decapsulated).
fn tunnel_rx_packets(node: &Node) -> u64 {
    tunnel_packets(node, "rx")
}

/// Packets the kernel's VXLAN device of `node` has sent (encapsulated).
fn tunnel_tx_packets(node: &Node) -> u64 {
    tunnel_packets(node, "tx")
}

/// A packet counter (`rx` or `tx`) of the VXLAN device of `node`.
fn tunnel_packets(node: &Node, direction: &str) -> u64 {
    let counter = format!("/sys/class/net/{VXLAN}/statistics/{direction}_packets");
    let out = sh(&["ip", "netns", "exec", &node.ns.name, "cat", &counter]);
    out.trim()
        .parse()
        .unwrap_or_else(|err| panic!("{counter}: {err}: {out:?}"))
}

/// The capture `packets` holds both pods' packets, only in VXLAN between
/// the nodes' underlay addresses (to the other node's MAC, outer TTL 64),
/// each with its sender's identity as VNI.
fn assert_pods_talk_in_vxlan(packets: &[Packet], a: &Node, b: &Node) {
    let vxlan: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.udp_dport == Some(VXLAN_PORT))
        .collect();
    let underlay_a = Ipv4Addr::new(192, 0, 2, 1);
    let underlay_b = Ipv4Addr::new(192, 0, 2, 2);
    let a_to_b = Packet {
        eth_dst: Some(b.ns.mac(UNDERLAY)),
        ip: Some((underlay_a, underlay_b)),
        ttl: TUNNEL_TTL,
        protocol: 17,
        udp_dport: Some(VXLAN_PORT),
        vni: Some(a.ep.identity),
        inner_ip: Some((a.ep.ipv4, b.ep.ipv4)),
    };
    let b_to_a = Packet {
        eth_dst: Some(a.ns.mac(UNDERLAY)),
        ip: Some((underlay_b, underlay_a)),
        vni: Some(b.ep.identity),
        inner_ip: Some((b.ep.ipv4, a.ep.ipv4)),
        ..a_to_b.clone()
    };
    assert!(
        vxlan.contains(&&a_to_b),
        "A's pod → B's pod in VXLAN with VNI 4242: {packets:#?}"
    );
    assert!(
        vxlan.contains(&&b_to_a),
        "B's pod → A's pod in VXLAN with VNI 4343: {packets:#?}"
    );
    for packet in &vxlan {
        let expected = if packet.ip == a_to_b.ip {
            a.ep.identity
        } else {
            b.ep.identity
        };
        assert_eq!(packet.vni, Some(expected), "{packet:?}");
    }
    assert!(
        !packets
            .iter()
            .any(|p| p.ip == Some((a.ep.ipv4, b.ep.ipv4)) || p.ip == Some((b.ep.ipv4, a.ep.ipv4))),
        "no pod packet crosses the underlay unencapsulated: {packets:#?}"
    );
}

#[test]
fn tunnel_mode_carries_the_identity_in_the_vni() {
    let cluster = Cluster::new(true, TRACE_AGGREGATE_NONE);
    let (a, b) = (&cluster.a, &cluster.b);
    assert!(b.dp.overlay_attached(VXLAN));

    let capture = Capture::start(&a.ns, UNDERLAY);
    let decapsulated_by_kernel = (tunnel_rx_packets(a), tunnel_rx_packets(b));
    let encapsulated_by_kernel = (tunnel_tx_packets(a), tunnel_tx_packets(b));
    ping_both_ways(&cluster, "through the tunnel");
    let packets = capture.finish();
    assert_eq!(
        (tunnel_rx_packets(a), tunnel_rx_packets(b)),
        decapsulated_by_kernel,
        "each node's bpf_host decapsulated the pods' packets; none went through the tunnel device"
    );
    assert_eq!(
        (tunnel_tx_packets(a), tunnel_tx_packets(b)),
        encapsulated_by_kernel,
        "each node's bpf_lxc wrapped its pod's packets for a node on its subnet itself"
    );

    assert_pods_talk_in_vxlan(&packets, a, b);

    let vxlan_b = b.ns.ifindex(VXLAN);
    let events_b = drain_events(&b.dp);
    let from_overlay = trace_at(&events_b, ObservationPoint::FROM_OVERLAY, a.ep.identity);
    assert!(
        from_overlay.iter().any(|t| t.ifindex == vxlan_b),
        "B saw A's identity come out of the tunnel: {events_b:#?}"
    );
    let delivered = trace_at(&events_b, ObservationPoint::TO_ENDPOINT, a.ep.identity);
    assert!(
        delivered
            .iter()
            .any(|t| t.dst_identity == b.ep.identity && t.dst_endpoint == b.ep.id),
        "B delivered A's packet to its pod: {events_b:#?}"
    );
    let events_a = drain_events(&a.dp);
    let to_overlay = trace_at(&events_a, ObservationPoint::TO_OVERLAY, a.ep.identity);
    assert!(
        to_overlay
            .iter()
            .any(|t| t.dst_identity == b.ep.identity && t.ifindex == a.ns.ifindex(VXLAN)),
        "A sent its pod's packet into the tunnel: {events_a:#?}"
    );

    assert_receiver_tracked(b, a);
    assert_receiver_tracked(a, b);
}

#[test]
fn tunnel_mode_sends_through_the_tunnel_device_to_a_node_off_the_underlay_subnet() {
    let cluster = Cluster::tunnel_off_subnet();
    let (a, b) = (&cluster.a, &cluster.b);

    let capture = Capture::start(&a.ns, UNDERLAY);
    let encapsulated_by_kernel = (tunnel_tx_packets(a), tunnel_tx_packets(b));
    ping_both_ways(&cluster, "through the tunnel device");
    let packets = capture.finish();

    assert_pods_talk_in_vxlan(&packets, a, b);
    assert!(
        tunnel_tx_packets(a) > encapsulated_by_kernel.0
            && tunnel_tx_packets(b) > encapsulated_by_kernel.1,
        "both nodes' tunnel devices wrapped and routed the pods' packets"
    );
    assert_receiver_tracked(b, a);
    assert_receiver_tracked(a, b);
}

/// Sends `len` bytes over TCP from `from`'s pod to a listener in `to`'s pod
/// and returns what arrived.
fn tcp_transfer(from: &Node, to: &Node, len: usize) -> (Vec<u8>, Vec<u8>) {
    let sent: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let server = SocketAddrV4::new(to.ep.ipv4, 5201);
    let listener = to.pod.run(move || {
        TcpListener::bind(server).unwrap_or_else(|err| panic!("bind {server}: {err}"))
    });
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accepting the sender");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .unwrap_or_else(|err| panic!("receiving after {} bytes: {err}", received.len()));
        received
    });
    from.pod.run({
        let sent = sent.clone();
        move || {
            let mut stream = TcpStream::connect_timeout(&server.into(), Duration::from_secs(5))
                .unwrap_or_else(|err| panic!("connecting to {server}: {err}"));
            stream.write_all(&sent).expect("sending");
        }
    });
    let received = receiver.join().expect("receiver thread");
    (sent, received)
}

#[test]
fn tunnel_mode_leaves_gso_packets_to_the_tunnel_device_and_both_paths_share_a_connection() {
    let cluster = Cluster::new(true, TRACE_AGGREGATE_ACTIVE_CT);
    let (a, b) = (&cluster.a, &cluster.b);
    assert_pings(&a.pod, b.ep.ipv4, "through the tunnel");

    let before = tunnel_rx_packets(b);
    let (sent, received) = tcp_transfer(a, b, 4 << 20);
    assert!(
        received == sent,
        "4 MiB arrive intact: {} of {} bytes",
        received.len(),
        sent.len()
    );
    assert!(
        tunnel_rx_packets(b) > before,
        "the sender's segmentation-offload packets went through B's tunnel device"
    );
    let events_b = drain_events(&b.dp);
    let ipv4_drops: Vec<_> = drops(&events_b)
        .into_iter()
        .filter(|d| d.payload.get(12..14) == Some(&[0x08, 0x00]))
        .collect();
    assert!(ipv4_drops.is_empty(), "{ipv4_drops:#?}");
}

#[test]
fn native_mode_routes_plain_packets_and_the_receiver_asks_the_ipcache() {
    let cluster = Cluster::new(false, TRACE_AGGREGATE_ACTIVE_CT);
    let (a, b) = (&cluster.a, &cluster.b);

    let capture = Capture::start(&a.ns, UNDERLAY);
    ping_both_ways(&cluster, "through native routing");
    let packets = capture.finish();

    assert!(
        !packets.iter().any(|p| p.udp_dport == Some(VXLAN_PORT)),
        "nothing is encapsulated: {packets:#?}"
    );
    // Sent to the other node's MAC, routed once (ping's TTL is 64).
    for (src, dst, to) in [(a, b, &b.ns), (b, a, &a.ns)] {
        let to_mac = to.mac(UNDERLAY);
        let (src, dst) = (src.ep.ipv4, dst.ep.ipv4);
        assert!(
            packets.iter().any(|p| p.ip == Some((src, dst))
                && p.protocol == IPPROTO_ICMP
                && p.eth_dst == Some(to_mac)
                && p.ttl == 63),
            "plain ICMP {src} → {dst} to {to_mac:02x?} with TTL 63 on the underlay: {packets:#?}"
        );
    }

    let events_b = drain_events(&b.dp);
    let delivered = trace_at(&events_b, ObservationPoint::TO_ENDPOINT, a.ep.identity);
    assert!(
        delivered.iter().any(|t| t.dst_identity == b.ep.identity),
        "B's pod received A's packet with A's identity: {events_b:#?}"
    );
    let events_a = drain_events(&a.dp);
    let to_network = trace_at(&events_a, ObservationPoint::TO_NETWORK, a.ep.identity);
    assert!(
        to_network
            .iter()
            .any(|t| t.dst_identity == b.ep.identity && t.ifindex == a.ns.ifindex(UNDERLAY)),
        "A sent its pod's packet straight out of the underlay device: {events_a:#?}"
    );
    assert_receiver_tracked(b, a);
    assert_receiver_tracked(a, b);
}

#[test]
fn the_receiver_drops_a_tunnelled_host_identity() {
    // A node never sends its own host identity through the tunnel; a
    // packet claiming it is forged.
    let cluster = Cluster::with_identities(true, TRACE_AGGREGATE_ACTIVE_CT, 1, 4343);
    let (a, b) = (&cluster.a, &cluster.b);

    assert!(
        !ping(&a.pod, b.ep.ipv4),
        "B must not deliver a packet claiming the host identity"
    );
    let events_b = drain_events(&b.dp);
    let dropped: Vec<_> = drops(&events_b)
        .into_iter()
        .filter(|d| d.reason == DropReason::INVALID_IDENTITY)
        .collect();
    assert!(!dropped.is_empty(), "B reports the drop: {events_b:#?}");
    assert_eq!(dropped[0].src_identity, 1);
    assert_eq!(dropped[0].file, 3, "dropped by bpf_overlay.c");
    assert!(
        icmp_ingress_entries(&b.dp, a.ep.ipv4, b.ep.ipv4).is_empty(),
        "nothing tracked for a dropped packet"
    );
}
