//! The underlay device's program (`bpf_host.o`, `cil_from_netdev`): through
//! BPF_PROG_TEST_RUN it delivers plain IPv4 for a local endpoint by the
//! endpoint's policy program with the source identity from the ipcache and
//! leaves everything else to the stack; attached to a real device it is
//! replaced in place, survives a restart and is removed.

use std::{net::Ipv4Addr, time::Duration};

use aya::programs::{SchedClassifier, TcAttachType};
use cilium_datapath::{
    abi::{RemoteEndpointInfo, TRACE_AGGREGATE_NONE, TUPLE_F_IN},
    codes::{MetricDirection, ObservationPoint},
    maps::{CtMap, CtMapKind, MetricsMap},
    AttachPreference, Datapath, DatapathEvent, EndpointDatapathConfig, HostObject,
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

/// A native-mode datapath in its own bpffs root, tracing every packet.
/// Field order: the datapath goes first.
struct Node {
    dp: Datapath,
    _root: TestRoot,
}

impl Node {
    fn new() -> Self {
        let root = TestRoot::new();
        let dp = root.open(TRACE_AGGREGATE_NONE, AttachPreference::Auto);
        Self { dp, _root: root }
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
    let ct = CtMap::open(node.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .expect("reading conntrack");
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
    let ct = CtMap::open(node.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .expect("reading conntrack");
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
    for (what, packet) in cases {
        let verdict = run(program, &packet);
        assert_eq!(verdict.retval, TC_ACT_OK, "{what} goes to the stack");
        assert_eq!(verdict.packet, packet, "{what} is unchanged");
    }
    let events = node.events();
    assert!(events.is_empty(), "nothing to report: {events:#?}");
    let ct = CtMap::open(node.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .expect("reading conntrack");
    assert!(ct.is_empty(), "nothing tracked: {ct:?}");
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
