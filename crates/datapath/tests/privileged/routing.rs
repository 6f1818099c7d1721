//! Multi-node routing decisions of the real objects, through
//! BPF_PROG_TEST_RUN: the ipcache, encapsulation in tunnel mode, native
//! mode's redirect out of the direct-routing device (or the stack without
//! one), the source identity of native-routed traffic, and the tunnel
//! device's program without tunnel metadata.

use std::net::Ipv4Addr;

use cilium_datapath::{
    abi::{
        RemoteEndpointInfo, FLAG_HAS_TUNNEL_EP, FLAG_SKIP_TUNNEL, TRACE_AGGREGATE_ACTIVE_CT,
        TUPLE_F_IN, TUPLE_F_OUT,
    },
    codes::{DropReason, MetricDirection, ObservationPoint},
    maps::{CtMap, CtMapKind, IpcacheEntry, IpcacheMap, MetricsMap},
    AttachPreference, Datapath, DatapathEvent, EndpointDatapathConfig, EndpointObject,
    EndpointProgram, OverlayObject, Routing, Underlay,
};
use ipnet::Ipv4Net;

use crate::common::*;

/// The underlay address of the node hosting [`REMOTE_POD`].
const REMOTE_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A pod on another node.
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 5);
/// Its identity.
const REMOTE_IDENTITY: u32 = 4343;
/// Name of the tunnel device.
const VXLAN: &str = "cilium_vxlan";
/// Name of the direct-routing device.
const UNDERLAY: &str = "ul0";

/// This node's underlay: 192.0.2.1/24 on [`UNDERLAY`], the subnet of
/// [`REMOTE_NODE`].
fn underlay() -> Underlay {
    Underlay {
        device: UNDERLAY.to_string(),
        address: "192.0.2.1/24".parse().expect("valid prefix"),
    }
}

/// A datapath in its own bpffs root, in tunnel mode (inside a `cilt-`
/// namespace holding the VXLAN device) or native mode (with the
/// direct-routing device in such a namespace, or without one). Field order:
/// the datapath goes first, the namespace last.
struct Node {
    dp: Datapath,
    _root: TestRoot,
    /// ifindex of the tunnel or direct-routing device, 0 without one.
    device_ifindex: u32,
    _ns: Option<NetNs>,
}

impl Node {
    fn native() -> Self {
        let root = TestRoot::new();
        let dp = root.open(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
        Self {
            dp,
            _root: root,
            device_ifindex: 0,
            _ns: None,
        }
    }

    /// Native routing with an underlay (192.0.2.1/24 on a veth), as the
    /// agent opens it.
    fn native_with_underlay() -> Self {
        let root = TestRoot::new();
        let ns = NetNs::new("drd");
        ns.ip(&[
            "link", "add", UNDERLAY, "type", "veth", "peer", "name", "ul1",
        ]);
        let device_ifindex = ns.ifindex(UNDERLAY);
        let mut config = root.config(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
        config.underlay = Some(underlay());
        let dp = ns.run(move || open_datapath(config));
        Self {
            dp,
            _root: root,
            device_ifindex,
            _ns: Some(ns),
        }
    }

    /// Tunnel mode without an underlay: everything goes through the tunnel
    /// device.
    fn tunnel() -> Self {
        Self::tunnel_with(None)
    }

    /// Tunnel mode with an underlay, as the agent opens it.
    fn tunnel_with_underlay() -> Self {
        Self::tunnel_with(Some(underlay()))
    }

    fn tunnel_with(underlay: Option<Underlay>) -> Self {
        let root = TestRoot::new();
        let ns = NetNs::new("tun");
        ns.ip(&[
            "link", "add", VXLAN, "type", "vxlan", "external", "dstport", "8472",
        ]);
        ns.ip(&[
            "link", "add", UNDERLAY, "type", "veth", "peer", "name", "ul1",
        ]);
        let tunnel_ifindex = ns.ifindex(VXLAN);
        let mut config = root.config(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
        config.routing = Routing::Tunnel {
            device: VXLAN.to_string(),
            port: 8472,
        };
        config.underlay = underlay;
        let dp = ns.run(move || open_datapath(config));
        assert_eq!(dp.tunnel_ifindex(), Some(tunnel_ifindex));
        Self {
            dp,
            _root: root,
            device_ifindex: tunnel_ifindex,
            _ns: Some(ns),
        }
    }

    fn load(&self, ep: &EndpointDatapathConfig) -> EndpointObject {
        self.dp
            .load_endpoint(ep)
            .unwrap_or_else(|err| panic!("loading endpoint {}: {}", ep.id, chain(&err)))
    }

    fn ipcache(&self, prefix: &str, info: RemoteEndpointInfo) {
        let prefix: Ipv4Net = prefix.parse().expect("valid prefix");
        self.dp
            .upsert_ipcache(prefix, &info)
            .unwrap_or_else(|err| panic!("writing ipcache {prefix}: {}", chain(&err)));
    }

    fn metric(&self, reason: u8, direction: MetricDirection) -> u64 {
        MetricsMap::open(self.dp.paths())
            .and_then(|map| map.get(reason, direction))
            .unwrap_or_else(|err| panic!("reading metrics: {}", chain(&err)))
            .map_or(0, |entry| entry.packets)
    }

    fn events(&self) -> Vec<DatapathEvent> {
        drain_events(&self.dp)
    }
}

fn from_container(object: &EndpointObject) -> &aya::programs::SchedClassifier {
    object
        .program(EndpointProgram::FromContainer)
        .expect("cil_from_container is loaded")
}

fn to_container(object: &EndpointObject) -> &aya::programs::SchedClassifier {
    object
        .program(EndpointProgram::ToContainer)
        .expect("cil_to_container is loaded")
}

#[test]
fn tunnel_mode_encapsulates_towards_the_node_owning_the_destination() {
    let node = Node::tunnel();
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );

    let packet = tcp_packet(&ep, REMOTE_POD, 41000, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &packet);

    assert_eq!(
        verdict.retval, TC_ACT_REDIRECT,
        "redirected to the tunnel device"
    );
    assert_eq!(
        verdict.packet, packet,
        "the inner packet leaves as the pod sent it"
    );
    assert_eq!(node.metric(0, MetricDirection::Egress), 1);
    let events = node.events();
    let traces = traces(&events);
    assert_eq!(traces.len(), 1, "{events:#?}");
    assert_eq!(traces[0].observation_point, ObservationPoint::TO_OVERLAY);
    assert_eq!(traces[0].observation_point.to_string(), "to-overlay");
    assert_eq!(traces[0].src_identity, ep.identity);
    assert_eq!(traces[0].dst_identity, REMOTE_IDENTITY);
    assert_eq!(traces[0].ifindex, node.device_ifindex);
    let ct = CtMap::open(node.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .expect("reading conntrack");
    find_ct(&ct, ep.ipv4, REMOTE_POD, 41000, 80, TUPLE_F_OUT);
}

#[test]
fn tunnel_mode_wraps_packets_for_a_node_on_the_underlay_subnet_itself() {
    let node = Node::tunnel_with_underlay();
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );

    let packet = tcp_packet(&ep, REMOTE_POD, 41010, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &packet);

    assert_eq!(verdict.retval, TC_ACT_REDIRECT, "sent out of {UNDERLAY}");
    let out = &verdict.packet;
    assert_eq!(out.len(), packet.len() + 50, "{out:02x?}");
    assert_eq!(
        &out[..14],
        &packet[..14],
        "outer Ethernet: the kernel writes the MACs on the way out"
    );
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45, "IPv4 without options");
    assert_eq!(ip[1], 0, "DSCP 0, the inner packet's ECN (not ECT)");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        out.len() - 14
    );
    assert_eq!(&ip[6..8], &[0, 0], "DF clear, as the kernel's device sends");
    assert_eq!(ip[8], 64, "outer TTL");
    assert_eq!(ip[9], IPPROTO_UDP);
    assert_eq!(checksum(ip), 0, "valid header checksum");
    assert_eq!(
        &ip[12..16],
        &[192, 0, 2, 1],
        "from this node's underlay address"
    );
    assert_eq!(&ip[16..20], &REMOTE_NODE.octets(), "to the pod's node");
    let udp = &out[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!(
        (32768..61000).contains(&sport),
        "source port {sport} from the flow hash, in the ephemeral range"
    );
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 8472);
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        out.len() - 34
    );
    assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
    let vni = ep.identity.to_be_bytes();
    assert_eq!(
        &out[42..50],
        &[0x08, 0, 0, 0, vni[1], vni[2], vni[3], 0],
        "VXLAN: the VNI flag, the sender's identity"
    );
    assert_eq!(&out[50..], &packet[..], "the pod's frame inside, unchanged");
    assert_eq!(node.metric(0, MetricDirection::Egress), 1);
    let events = node.events();
    let traces = traces(&events);
    assert_eq!(traces.len(), 1, "{events:#?}");
    assert_eq!(traces[0].observation_point, ObservationPoint::TO_OVERLAY);
    assert_eq!(traces[0].ifindex, node.device_ifindex);
    assert_eq!(
        traces[0].payload,
        packet[..traces[0].payload.len()],
        "traced unwrapped"
    );

    // ECN after RFC 6040: the inner field, ECT(0) for CE; DSCP is not copied.
    for (inner_tos, outer_tos) in [(0x03, 0x02), (0xb9, 0x01)] {
        let mut marked = tcp_packet(&ep, REMOTE_POD, 41011, 80, TCP_SYN, 64);
        marked[15] = inner_tos;
        let verdict = run(from_container(&object), &marked);
        assert_eq!(verdict.retval, TC_ACT_REDIRECT);
        assert_eq!(verdict.packet[15], outer_tos, "inner TOS {inner_tos:#04x}");
        assert_eq!(checksum(&verdict.packet[14..34]), 0);
    }

    // A node off the subnet is the tunnel device's to reach (it routes).
    let far_node = Ipv4Addr::new(198, 51, 100, 7);
    node.ipcache(
        "10.201.3.0/24",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, far_node),
    );
    let far = tcp_packet(&ep, Ipv4Addr::new(10, 201, 3, 9), 41012, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &far);
    assert_eq!(verdict.retval, TC_ACT_REDIRECT);
    assert_eq!(verdict.packet, far, "left to the tunnel device");
}

#[test]
fn tunnel_mode_leaves_entries_without_a_usable_tunnel_endpoint_to_the_stack() {
    let node = Node::tunnel();
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    node.ipcache("198.51.100.0/24", RemoteEndpointInfo::new(2));
    node.ipcache(
        "10.201.3.0/24",
        RemoteEndpointInfo {
            flags: FLAG_HAS_TUNNEL_EP | FLAG_SKIP_TUNNEL,
            ..RemoteEndpointInfo::with_tunnel(7000, REMOTE_NODE)
        },
    );

    for (dst, identity, sport) in [
        (Ipv4Addr::new(198, 51, 100, 9), 2, 41001),
        (Ipv4Addr::new(10, 201, 3, 9), 7000, 41002),
        (Ipv4Addr::new(203, 0, 113, 1), 0, 41003),
    ] {
        let packet = tcp_packet(&ep, dst, sport, 443, TCP_SYN, 64);
        let verdict = run(from_container(&object), &packet);
        assert_eq!(verdict.retval, TC_ACT_OK, "{dst} goes to the stack");
        let events = node.events();
        let traces = traces(&events);
        assert_eq!(traces.len(), 1, "{events:#?}");
        assert_eq!(traces[0].observation_point, ObservationPoint::TO_STACK);
        assert_eq!(
            traces[0].dst_identity, identity,
            "{dst}: identity from the ipcache, 0 when unknown"
        );
    }
}

#[test]
fn identities_the_vni_cannot_carry_are_never_sent() {
    let node = Node::tunnel();
    let mut ep = endpoint(11, "lxc-a", 11);
    ep.identity = 0x0100_0001; // a local-scope identity: 24 bits would make it "host"
    let object = node.load(&ep);
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );

    let packet = tcp_packet(&ep, REMOTE_POD, 41004, 80, TCP_SYN, 64);
    assert_eq!(run(from_container(&object), &packet).retval, TC_ACT_SHOT);
    assert_eq!(
        node.metric(DropReason::INVALID_IDENTITY.0, MetricDirection::Egress),
        1
    );
    let events = node.events();
    let drops = drops(&events);
    assert_eq!(drops.len(), 1, "{events:#?}");
    assert_eq!(drops[0].reason, DropReason::INVALID_IDENTITY);
    assert_eq!(drops[0].src_identity, ep.identity);
}

#[test]
fn native_mode_never_encapsulates() {
    let node = Node::native();
    assert_eq!(node.dp.tunnel_ifindex(), None);
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );

    let packet = tcp_packet(&ep, REMOTE_POD, 41005, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &packet);

    assert_eq!(verdict.retval, TC_ACT_OK, "the stack routes it");
    assert_eq!(verdict.packet, packet);
    let events = node.events();
    let traces = traces(&events);
    assert_eq!(traces.len(), 1, "{events:#?}");
    assert_eq!(traces[0].observation_point, ObservationPoint::TO_STACK);
    assert_eq!(traces[0].dst_identity, REMOTE_IDENTITY);
}

#[test]
fn native_mode_sends_out_of_the_direct_routing_device_without_a_route() {
    // The namespace has no route to the remote pod: with the device known,
    // none is looked up (the agent's route would name the same node).
    let node = Node::native_with_underlay();
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );

    let packet = tcp_packet(&ep, REMOTE_POD, 41006, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &packet);

    assert_eq!(verdict.retval, TC_ACT_REDIRECT, "sent out of {UNDERLAY}");
    let mut routed = packet.clone();
    routed[14 + 8] = 63;
    let csum = checksum(&{
        let mut header = routed[14..34].to_vec();
        header[10..12].fill(0);
        header
    });
    routed[14 + 10..14 + 12].copy_from_slice(&csum.to_be_bytes());
    assert_eq!(
        verdict.packet, routed,
        "TTL decremented, checksum updated, the rest (MACs: the kernel writes them) unchanged"
    );
    assert_eq!(node.metric(0, MetricDirection::Egress), 1);
    let events = node.events();
    let traces = traces(&events);
    assert_eq!(traces.len(), 1, "{events:#?}");
    assert_eq!(traces[0].observation_point, ObservationPoint::TO_NETWORK);
    assert_eq!(traces[0].dst_identity, REMOTE_IDENTITY);
    assert_eq!(traces[0].ifindex, node.device_ifindex);

    // A packet that may not be routed again goes to the stack, which
    // answers it with time exceeded.
    let last_hop = tcp_packet(&ep, REMOTE_POD, 41007, 80, TCP_SYN, 1);
    let verdict = run(from_container(&object), &last_hop);
    assert_eq!(verdict.retval, TC_ACT_OK);
    assert_eq!(verdict.packet, last_hop);

    // An address no node hosts (outside the cluster) is the stack's too.
    node.ipcache("10.201.3.0/24", RemoteEndpointInfo::new(REMOTE_IDENTITY));
    let outside = tcp_packet(&ep, Ipv4Addr::new(10, 201, 3, 9), 41008, 80, TCP_SYN, 64);
    let verdict = run(from_container(&object), &outside);
    assert_eq!(verdict.retval, TC_ACT_OK);
    assert_eq!(verdict.packet, outside);
    let events = node.events();
    let points: Vec<_> = crate::common::traces(&events)
        .iter()
        .map(|t| t.observation_point)
        .collect();
    assert_eq!(
        points,
        [ObservationPoint::TO_STACK, ObservationPoint::TO_STACK],
        "{events:#?}"
    );
}

#[test]
fn native_routed_traffic_gets_the_source_identity_from_the_ipcache() {
    let node = Node::native();
    let ep = endpoint(11, "lxc-a", 11);
    let object = node.load(&ep);
    let router = Ipv4Addr::new(10, 200, 0, 1);
    node.dp
        .upsert_host_ip(router)
        .expect("registering the router IP");
    node.ipcache(
        "10.201.2.5/32",
        RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE),
    );
    node.ipcache("10.202.0.0/16", RemoteEndpointInfo::new(16_777_217));
    // The node's own address wins over whatever the ipcache says.
    node.ipcache("10.200.0.1/32", RemoteEndpointInfo::new(6));

    let cidr_member = Ipv4Addr::new(10, 202, 7, 7);
    let outside = Ipv4Addr::new(192, 0, 2, 99);
    let cases = [
        (REMOTE_POD, 51000, REMOTE_IDENTITY),
        (cidr_member, 51001, 16_777_217),
        (router, 51002, 1),
        (outside, 51003, 2),
    ];
    for (src, sport, _) in cases {
        let tcp = tcp_header(sport, 8080, TCP_SYN);
        let mut packet = ethernet(ep.mac, ep.node_mac, ETH_P_IP);
        packet.extend(ipv4_header(src, ep.ipv4, IPPROTO_TCP, 63, tcp.len()));
        packet.extend(tcp);
        assert_eq!(run(to_container(&object), &packet).retval, TC_ACT_OK);
    }

    let ct = CtMap::open(node.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .expect("reading conntrack");
    for (src, sport, identity) in cases {
        assert_eq!(
            find_ct(&ct, src, ep.ipv4, sport, 8080, TUPLE_F_IN).src_sec_id,
            identity,
            "source {src}"
        );
    }
    let events = node.events();
    let identities: Vec<_> = traces(&events).iter().map(|t| t.src_identity).collect();
    assert_eq!(
        identities,
        cases.map(|(_, _, identity)| identity).to_vec(),
        "{events:#?}"
    );
}

#[test]
fn the_overlay_drops_packets_without_a_tunnel_key() {
    let node = Node::native();
    let overlay = node
        .dp
        .load_overlay()
        .unwrap_or_else(|err| panic!("loading bpf_overlay.o: {}", chain(&err)));
    let program = overlay
        .program(OverlayObject::FROM_OVERLAY)
        .expect("cil_from_overlay is loaded");
    let ep = endpoint(11, "lxc-a", 11);
    let packet = tcp_packet(&ep, Ipv4Addr::new(10, 200, 0, 22), 41006, 80, TCP_SYN, 64);

    assert_eq!(run(program, &packet).retval, TC_ACT_SHOT);
    assert_eq!(
        node.metric(DropReason::TUNNEL_KEY.0, MetricDirection::Ingress),
        1
    );
    let events = node.events();
    let drops = drops(&events);
    assert_eq!(drops.len(), 1, "{events:#?}");
    assert_eq!(drops[0].reason, DropReason::TUNNEL_KEY);
    assert_eq!(drops[0].reason.description(), "Error retrieving tunnel key");
    assert_eq!(drops[0].file, 3, "reported from bpf_overlay.c");
    assert_eq!(drops[0].header.source_endpoint, 0);

    let arp = arp_request(&ep, Ipv4Addr::new(10, 200, 0, 1));
    assert_eq!(
        run(program, &arp).retval,
        TC_ACT_OK,
        "what is not IPv4 is the stack's"
    );
}

#[test]
fn the_ipcache_handle_writes_what_the_datapath_reads() {
    let node = Node::native();
    let mut map = IpcacheMap::open(node.dp.paths()).expect("opening cilium_ipcache");
    let pod: Ipv4Net = "10.201.2.5/32".parse().expect("valid prefix");
    let cidr: Ipv4Net = "10.201.0.0/16".parse().expect("valid prefix");
    let pod_info = RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, REMOTE_NODE);
    let cidr_info = RemoteEndpointInfo::new(2);
    map.upsert(pod, &pod_info).expect("upserting the pod");
    map.upsert("10.201.9.9/16".parse().expect("valid prefix"), &cidr_info)
        .expect("upserting the CIDR (host bits are dropped)");

    assert_eq!(map.lookup(REMOTE_POD).expect("lookup"), Some(pod_info));
    assert_eq!(
        map.lookup(Ipv4Addr::new(10, 201, 2, 6)).expect("lookup"),
        Some(cidr_info),
        "longest prefix match"
    );
    assert_eq!(
        map.lookup(Ipv4Addr::new(10, 9, 9, 9)).expect("lookup"),
        None
    );
    assert_eq!(
        map.entries().expect("listing"),
        vec![
            IpcacheEntry {
                prefix: cidr,
                info: cidr_info
            },
            IpcacheEntry {
                prefix: pod,
                info: pod_info
            },
        ]
    );

    assert!(node.dp.delete_ipcache(pod).expect("deleting the pod"));
    assert!(!node.dp.delete_ipcache(pod).expect("deleting again"));
    assert_eq!(
        map.lookup(REMOTE_POD).expect("lookup"),
        Some(cidr_info),
        "the CIDR is all that is left"
    );
}
