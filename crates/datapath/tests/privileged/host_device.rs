//! The underlay device's program (`bpf_host.o`, `cil_from_netdev`): through
//! BPF_PROG_TEST_RUN it delivers plain IPv4 for a local endpoint by the
//! endpoint's policy program with the source identity from the ipcache, in
//! tunnel mode decapsulates other nodes' VXLAN packets for a local endpoint
//! and delivers them with the identity from the VNI, and leaves everything
//! else to the stack; attached to a real device it is replaced in place,
//! survives a restart and is removed.

use std::{net::Ipv4Addr, time::Duration};

use aya::programs::{SchedClassifier, TcAttachType};
use cilium_datapath::{
    abi::{RemoteEndpointInfo, TRACE_AGGREGATE_NONE, TUPLE_F_IN},
    codes::{MetricDirection, ObservationPoint},
    maps::{CtEntryRecord, CtMap, CtMapKind, MetricsMap},
    AttachPreference, Datapath, DatapathEvent, EndpointDatapathConfig, HostObject, Routing,
};
use ipnet::Ipv4Net;

use crate::common::*;

/// A pod on another node and its identity.
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 5);
const REMOTE_IDENTITY: u32 = 4343;
/// The MAC of this node's underlay device, where other nodes send to.
const UNDERLAY_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
/// The MAC of the other node's underlay device.
const PEER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 2];
/// Underlay addresses of this node and of the other one.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const TUNNEL_DEVICE: &str = "cilium_vxlan";
const TUNNEL_PORT: u16 = 8472;

/// A datapath in its own bpffs root, tracing every packet; in tunnel mode
/// opened inside a namespace that holds the tunnel device. Field order: the
/// datapath goes first.
struct Node {
    dp: Datapath,
    _root: TestRoot,
    ns: Option<NetNs>,
}

impl Node {
    /// Native routing.
    fn new() -> Self {
        let root = TestRoot::new();
        let dp = root.open(TRACE_AGGREGATE_NONE, AttachPreference::Auto);
        Self {
            dp,
            _root: root,
            ns: None,
        }
    }

    /// Tunnel mode, with `cilium_vxlan` on UDP 8472 in a `cilt-tunhost-…`
    /// namespace.
    fn tunnel() -> Self {
        let root = TestRoot::new();
        let ns = NetNs::new("tunhost");
        let port = TUNNEL_PORT.to_string();
        ns.ip(&[
            "link",
            "add",
            TUNNEL_DEVICE,
            "type",
            "vxlan",
            "external",
            "dstport",
            &port,
        ]);
        let mut config = root.config(TRACE_AGGREGATE_NONE, AttachPreference::Auto);
        config.routing = Routing::Tunnel {
            device: TUNNEL_DEVICE.to_string(),
            port: TUNNEL_PORT,
        };
        let dp = ns.run(move || open_datapath(config));
        Self {
            dp,
            _root: root,
            ns: Some(ns),
        }
    }

    fn tunnel_ifindex(&self) -> u32 {
        self.ns
            .as_ref()
            .expect("a tunnel-mode node")
            .ifindex(TUNNEL_DEVICE)
    }

    /// Loads `ep` and makes it a local delivery target.
    fn register(&self, ep: &EndpointDatapathConfig) {
        let object = self
            .dp
            .load_endpoint(ep)
            .unwrap_or_else(|err| panic!("loading endpoint {}: {}", ep.id, chain(&err)));
        self.dp
            .register_endpoint(ep, &object)
            .unwrap_or_else(|err| panic!("registering endpoint {}: {}", ep.id, chain(&err)));
    }

    fn host(&self) -> HostObject {
        self.dp
            .load_host()
            .unwrap_or_else(|err| panic!("loading bpf_host.o: {}", chain(&err)))
    }

    fn events(&self) -> Vec<DatapathEvent> {
        drain_events(&self.dp)
    }

    /// The TCP conntrack entries.
    fn tcp_conntrack(&self) -> Vec<CtEntryRecord> {
        CtMap::open(self.dp.paths(), CtMapKind::Tcp)
            .and_then(|map| map.entries())
            .unwrap_or_else(|err| panic!("reading conntrack: {}", chain(&err)))
    }

    /// Runs `program` on every case (`kind` prefixes their names) and asserts
    /// each went to the stack unchanged, with nothing reported and nothing
    /// tracked.
    fn assert_pass_untouched(
        &self,
        program: &SchedClassifier,
        kind: &str,
        cases: impl IntoIterator<Item = (&'static str, Vec<u8>)>,
    ) {
        for (what, packet) in cases {
            let verdict = run(program, &packet);
            assert_eq!(verdict.retval, TC_ACT_OK, "{kind}{what} goes to the stack");
            assert_eq!(verdict.packet, packet, "{kind}{what} is unchanged");
        }
        let events = self.events();
        assert!(events.is_empty(), "nothing to report: {events:#?}");
        let ct = self.tcp_conntrack();
        assert!(ct.is_empty(), "nothing tracked: {ct:?}");
    }

    fn forwarded(&self, direction: MetricDirection) -> u64 {
        MetricsMap::open(self.dp.paths())
            .and_then(|map| map.get(0, direction))
            .unwrap_or_else(|err| panic!("reading metrics: {}", chain(&err)))
            .map_or(0, |entry| entry.packets)
    }
}

/// A TCP packet from `src` to `dst` as it arrives on the underlay device.
fn from_wire(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut frame = ethernet(UNDERLAY_MAC, PEER_MAC, ETH_P_IP);
    frame.extend(ipv4_header(src, dst, proto, 63, l4.len()));
    frame.extend_from_slice(l4);
    frame
}

/// `inner` (an Ethernet frame) as another node's tunnel device sends it to
/// this node: UDP to the tunnel port without a checksum, VXLAN with `vni`.
fn vxlan_from_peer(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&51000u16.to_be_bytes());
    l4.extend_from_slice(&TUNNEL_PORT.to_be_bytes());
    l4.extend_from_slice(&((8 + 8 + inner.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(&[0x08, 0, 0, 0]);
    l4.extend_from_slice(&(vni << 8).to_be_bytes());
    l4.extend_from_slice(inner);
    from_wire(PEER_IP, NODE_IP, IPPROTO_UDP, &l4)
}

/// A TCP SYN from the remote pod to `dst`, as the remote pod sent it.
fn remote_pod_syn(dst: Ipv4Addr) -> Vec<u8> {
    let tcp = tcp_header(42010, 80, TCP_SYN);
    let mut frame = ethernet([0x02, 0xbb, 0, 0, 0, 1], [0x02, 0xbb, 0, 0, 0, 2], ETH_P_IP);
    frame.extend(ipv4_header(REMOTE_POD, dst, IPPROTO_TCP, 64, tcp.len()));
    frame.extend(tcp);
    frame
}

/// Offset of the outer IPv4 header, and of the VXLAN header, in a frame
/// from [`vxlan_from_peer`].
const OUTER_IP: usize = 14;
const VXLAN_HEADER: usize = 14 + 20 + 8;

/// Sets byte `offset` of `frame` and recomputes the outer IPv4 checksum.
fn with_outer_byte(mut frame: Vec<u8>, offset: usize, value: u8) -> Vec<u8> {
    frame[offset] = value;
    frame[OUTER_IP + 10..OUTER_IP + 12].copy_from_slice(&[0, 0]);
    let csum = checksum(&frame[OUTER_IP..OUTER_IP + 20]);
    frame[OUTER_IP + 10..OUTER_IP + 12].copy_from_slice(&csum.to_be_bytes());
    frame
}

fn udp_header(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend(std::iter::repeat_n(0u8, payload));
    udp
}

#[test]
fn traffic_for_a_local_pod_goes_to_its_policy_program_with_the_ipcache_identity() {
    let node = Node::new();
    let ep = endpoint(21, "lxc-h", 21);
    node.register(&ep);
    node.dp
        .upsert_ipcache(
            Ipv4Net::from(REMOTE_POD),
            &RemoteEndpointInfo::with_tunnel(REMOTE_IDENTITY, Ipv4Addr::new(192, 0, 2, 2)),
        )
        .expect("ipcache entry of the remote pod");
    let host = node.host();
    let program = host.program().expect("cil_from_netdev is loaded");

    let tcp = tcp_header(42000, 80, TCP_SYN);
    let packet = from_wire(REMOTE_POD, ep.ipv4, IPPROTO_TCP, &tcp);
    let verdict = run(program, &packet);

    assert_eq!(verdict.retval, TC_ACT_REDIRECT, "into the pod");
    assert_eq!(&verdict.packet[0..6], &ep.mac, "to the pod's MAC");
    assert_eq!(&verdict.packet[6..12], &ep.node_mac, "from its gateway");
    assert_eq!(verdict.packet[14 + 8], 62, "TTL decremented");
    assert_eq!(
        checksum(&verdict.packet[14..34]),
        0,
        "IPv4 checksum still valid"
    );
    let ct = node.tcp_conntrack();
    let entry = find_ct(&ct, REMOTE_POD, ep.ipv4, 42000, 80, TUPLE_F_IN);
    assert_eq!(entry.src_sec_id, REMOTE_IDENTITY, "{entry:?}");
    assert_eq!(node.forwarded(MetricDirection::Ingress), 1);

    let events = node.events();
    let traces = traces(&events);
    let points: Vec<_> = traces.iter().map(|t| t.observation_point).collect();
    assert_eq!(
        points,
        [
            ObservationPoint::FROM_NETWORK,
            ObservationPoint::TO_ENDPOINT
        ],
        "{events:#?}"
    );
    assert!(traces.iter().all(|t| t.src_identity == REMOTE_IDENTITY));
    assert_eq!(traces[1].dst_identity, ep.identity);
    assert_eq!(traces[1].dst_endpoint, ep.id);

    // A source the cluster does not know is the world.
    let stranger = Ipv4Addr::new(198, 51, 100, 7);
    let packet = from_wire(stranger, ep.ipv4, IPPROTO_TCP, &tcp);
    assert_eq!(run(program, &packet).retval, TC_ACT_REDIRECT);
    let ct = node.tcp_conntrack();
    let entry = find_ct(&ct, stranger, ep.ipv4, 42000, 80, TUPLE_F_IN);
    assert_eq!(entry.src_sec_id, 2, "world: {entry:?}");
}

#[test]
fn everything_but_local_pod_traffic_passes_to_the_stack_untouched() {
    let node = Node::new();
    let ep = endpoint(22, "lxc-h", 22);
    node.register(&ep);
    let node_ip = Ipv4Addr::new(192, 0, 2, 1);
    let router = Ipv4Addr::new(10, 200, 0, 1);
    node.dp
        .upsert_host_ip(router)
        .expect("registering the router IP");
    let host = node.host();
    let program = host.program().expect("cil_from_netdev is loaded");

    let tcp = tcp_header(42001, 2379, TCP_SYN);
    let vxlan = udp_header(51000, 8472, 64);
    let mut arp = ethernet([0xff; 6], PEER_MAC, ETH_P_ARP);
    arp.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[192, 0, 2, 2]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&node_ip.octets());
    let cases = [
        ("ARP", arp),
        (
            "VXLAN to the node",
            from_wire(Ipv4Addr::new(192, 0, 2, 2), node_ip, IPPROTO_UDP, &vxlan),
        ),
        (
            "TCP to the node",
            from_wire(Ipv4Addr::new(192, 0, 2, 2), node_ip, IPPROTO_TCP, &tcp),
        ),
        (
            "TCP to the router IP",
            from_wire(REMOTE_POD, router, IPPROTO_TCP, &tcp),
        ),
        (
            "TCP to a pod of another node",
            from_wire(REMOTE_POD, Ipv4Addr::new(10, 202, 0, 9), IPPROTO_TCP, &tcp),
        ),
    ];
    node.assert_pass_untouched(program, "", cases);
}

#[test]
fn tunnel_traffic_for_a_local_pod_is_decapsulated_and_delivered_with_the_vni_identity() {
    let node = Node::tunnel();
    let ep = endpoint(23, "lxc-h", 23);
    node.register(&ep);
    node.dp
        .upsert_host_ip(NODE_IP)
        .expect("registering the node IP");
    let host = node.host();
    let program = host.program().expect("cil_from_netdev is loaded");

    // No ipcache entry for the remote pod: the identity can only come from
    // the VNI.
    let inner = remote_pod_syn(ep.ipv4);
    let verdict = run(program, &vxlan_from_peer(REMOTE_IDENTITY, &inner));

    assert_eq!(verdict.retval, TC_ACT_REDIRECT, "into the pod");
    assert_eq!(
        verdict.packet.len(),
        inner.len(),
        "the outer headers are gone: {:02x?}",
        verdict.packet
    );
    assert_eq!(&verdict.packet[0..6], &ep.mac, "to the pod's MAC");
    assert_eq!(&verdict.packet[6..12], &ep.node_mac, "from its gateway");
    assert_eq!(&verdict.packet[12..14], &inner[12..14], "IPv4");
    assert_eq!(verdict.packet[14 + 8], 63, "the inner TTL, decremented");
    assert_eq!(
        checksum(&verdict.packet[14..34]),
        0,
        "IPv4 checksum still valid"
    );
    assert_eq!(
        &verdict.packet[14 + 12..],
        &inner[14 + 12..],
        "addresses and TCP header as sent"
    );
    let ct = node.tcp_conntrack();
    let entry = find_ct(&ct, REMOTE_POD, ep.ipv4, 42010, 80, TUPLE_F_IN);
    assert_eq!(entry.src_sec_id, REMOTE_IDENTITY, "{entry:?}");

    let events = node.events();
    let traces = traces(&events);
    let points: Vec<_> = traces.iter().map(|t| t.observation_point).collect();
    assert_eq!(
        points,
        [
            ObservationPoint::FROM_OVERLAY,
            ObservationPoint::TO_ENDPOINT
        ],
        "{events:#?}"
    );
    assert_eq!(
        traces[0].ifindex,
        node.tunnel_ifindex(),
        "traced on the tunnel device, as cil_from_overlay traces it"
    );
    assert!(traces.iter().all(|t| t.src_identity == REMOTE_IDENTITY));
    assert_eq!(traces[1].dst_endpoint, ep.id);
}

#[test]
fn tunnel_traffic_the_node_does_not_decapsulate_itself_passes_to_the_stack_untouched() {
    let node = Node::tunnel();
    let ep = endpoint(24, "lxc-h", 24);
    node.register(&ep);
    let router = Ipv4Addr::new(10, 200, 0, 1);
    for ip in [NODE_IP, router] {
        node.dp.upsert_host_ip(ip).expect("registering a host IP");
    }
    let host = node.host();
    let program = host.program().expect("cil_from_netdev is loaded");

    let good = vxlan_from_peer(REMOTE_IDENTITY, &remote_pod_syn(ep.ipv4));
    let mut bad_checksum = good.clone();
    bad_checksum[OUTER_IP + 10] ^= 0xff;
    let mut udp_checksum = good.clone();
    udp_checksum[OUTER_IP + 20 + 6] = 0x12;
    let mut gbp_flags = good.clone();
    gbp_flags[VXLAN_HEADER] = 0x88;
    let mut reserved_vni_byte = good.clone();
    reserved_vni_byte[VXLAN_HEADER + 7] = 1;
    let mut inner_arp = good.clone();
    inner_arp[VXLAN_HEADER + 8 + 12..VXLAN_HEADER + 8 + 14]
        .copy_from_slice(&ETH_P_ARP.to_be_bytes());
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0; 8]);
    let to_other_node = with_outer_byte(good.clone(), OUTER_IP + 19, 9);
    let cases = [
        (
            "for the node's router IP",
            vxlan_from_peer(REMOTE_IDENTITY, &remote_pod_syn(router)),
        ),
        (
            "for a pod of another node",
            vxlan_from_peer(
                REMOTE_IDENTITY,
                &remote_pod_syn(Ipv4Addr::new(10, 202, 0, 9)),
            ),
        ),
        (
            "claiming the host identity (cil_from_overlay reports it)",
            vxlan_from_peer(1, &remote_pod_syn(ep.ipv4)),
        ),
        ("sent to another node's address", to_other_node),
        (
            "a fragment",
            with_outer_byte(good.clone(), OUTER_IP + 6, 0x20),
        ),
        (
            "CE-marked",
            with_outer_byte(good.clone(), OUTER_IP + 1, 0x03),
        ),
        ("with IP options", {
            let mut options = good.clone();
            options.splice(OUTER_IP + 20..OUTER_IP + 20, [1, 1, 1, 1]);
            let tot_len = u16::from_be_bytes([options[OUTER_IP + 2], options[OUTER_IP + 3]]) + 4;
            options[OUTER_IP + 2..OUTER_IP + 4].copy_from_slice(&tot_len.to_be_bytes());
            with_outer_byte(options, OUTER_IP, 0x46)
        }),
        ("with a bad IPv4 checksum", bad_checksum),
        ("with a UDP checksum", udp_checksum),
        ("with VXLAN-GBP flags", gbp_flags),
        ("with the reserved VNI byte set", reserved_vni_byte),
        ("carrying ARP", inner_arp),
        ("with bytes after the datagram", trailing),
        ("cut short", good[..good.len() - 30].to_vec()),
    ];
    node.assert_pass_untouched(program, "VXLAN ", cases);

    // The packet every case was made from is decapsulated.
    assert_eq!(run(program, &good).retval, TC_ACT_REDIRECT);
}

/// Names and ids of the TCX programs on the ingress of `ifname`.
fn tcx_ingress(ifname: &str) -> Vec<(String, u32)> {
    let (_, programs) = SchedClassifier::query_tcx(ifname, TcAttachType::Ingress)
        .unwrap_or_else(|err| panic!("querying TCX on {ifname}: {}", chain(&err)));
    programs
        .iter()
        .map(|p| (p.name_as_str().unwrap_or("?").to_string(), p.id()))
        .collect()
}

fn attach_host(dp: &Datapath) {
    dp.attach_host_device("eth0")
        .unwrap_or_else(|err| panic!("attaching to eth0: {}", chain(&err)));
}

#[test]
fn host_device_attachment_is_replaced_in_place_survives_restart_and_is_removed() {
    let root = TestRoot::new();
    let node = NetNs::new("node");
    node.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ]);
    node.ip(&["link", "set", "eth0", "up"]);
    let pin = root.path.join("devices/eth0/link_ingress");
    let root_config = root.config(3, AttachPreference::Auto);

    node.run(move || {
        let dp = root.open(3, AttachPreference::Auto);
        attach_host(&dp);
        assert!(dp.host_device_attached("eth0"));
        assert!(pin.exists(), "{} pinned", pin.display());
        let first = tcx_ingress("eth0");
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].0.starts_with("cil_from_netde"), "{first:?}");

        attach_host(&dp);
        let second = tcx_ingress("eth0");
        assert_eq!(second.len(), 1, "still one program: {second:?}");
        assert_ne!(second[0].1, first[0].1, "the program was replaced");

        drop(dp);
        assert_eq!(tcx_ingress("eth0"), second, "attached while no agent runs");
        let dp = Datapath::open(root_config).expect("reopening the datapath");
        assert!(
            dp.host_device_attached("eth0"),
            "pins found after the restart"
        );
        attach_host(&dp);
        assert_eq!(tcx_ingress("eth0").len(), 1);

        dp.detach_host_device("eth0")
            .unwrap_or_else(|err| panic!("detaching: {}", chain(&err)));
        assert!(!dp.host_device_attached("eth0"));
        wait_until(Duration::from_secs(5), "the TCX link to detach", || {
            tcx_ingress("eth0").is_empty()
        });
        dp.detach_host_device("eth0")
            .unwrap_or_else(|err| panic!("detaching twice must succeed: {}", chain(&err)));
        drop(dp);
        drop(root);
    });
}
