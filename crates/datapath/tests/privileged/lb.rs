//! Per-packet service load balancing in the real `bpf_lxc.o` through BPF_PROG_TEST_RUN: a
//! packet to a ClusterIP is translated to its backend with valid checksums, the backend's
//! reply is translated back to the frontend, and a frontend without backends is answered
//! with an ICMP port unreachable and counted as drop reason 158. On the underlay device
//! (`bpf_host.o`) a packet from outside to a NodePort is translated to a local backend and
//! handed to its policy program, the connection remembering the frontend for the replies, and
//! a NodePort without backends is answered with a port unreachable out of the device.

use std::net::Ipv4Addr;

use cilium_datapath::{
    abi::TRACE_AGGREGATE_ACTIVE_CT,
    abi::TUPLE_F_IN,
    codes::{DropReason, MetricDirection},
    maps::{CtMap, CtMapKind, MetricsMap},
    AttachPreference, Datapath, EndpointDatapathConfig, EndpointObject, EndpointProgram,
};
use cilium_loadbalancer::{
    frontend::SVC_FLAG_NODEPORT, FrontendAddr, Protocol, RevNatIndex, ServiceFlags,
};

use crate::common::*;

/// This node's underlay address, where NodePort frontends live.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 11);
const NODE_PORT: u16 = 30080;
/// A client outside the cluster.
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 200);

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const VIP_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
const REV_NAT: RevNatIndex = RevNatIndex(7);

struct Fixture {
    dp: Datapath,
    _root: TestRoot,
}

impl Fixture {
    fn new() -> Self {
        let root = TestRoot::new();
        let dp = root.open(TRACE_AGGREGATE_ACTIVE_CT, AttachPreference::Auto);
        Self { dp, _root: root }
    }

    fn load_registered(&self, ep: &EndpointDatapathConfig) -> EndpointObject {
        let object = self
            .dp
            .load_endpoint(ep)
            .unwrap_or_else(|err| panic!("loading endpoint {}: {}", ep.id, chain(&err)));
        self.dp
            .register_endpoint(ep, &object)
            .unwrap_or_else(|err| panic!("registering endpoint {}: {}", ep.id, chain(&err)));
        object
    }

    /// Programs frontend VIP:80/TCP with `backends` (all on port 8080), random selection.
    fn service(&self, backends: &[Ipv4Addr]) {
        self.service_at(VIP, VIP_PORT, ServiceFlags::default(), backends);
    }

    /// Programs frontend `ip:port`/TCP (`flags` on every entry) with `backends` (all on
    /// port 8080), random selection.
    fn service_at(&self, ip: Ipv4Addr, port: u16, flags: ServiceFlags, backends: &[Ipv4Addr]) {
        let frontend = FrontendAddr {
            ip,
            port,
            protocol: Protocol::Tcp,
        };
        program_random_service(
            &self.dp,
            frontend,
            REV_NAT,
            flags,
            backends,
            BACKEND_PORT,
            1,
        );
    }

    fn metric(&self, reason: u8, direction: MetricDirection) -> u64 {
        MetricsMap::open(self.dp.paths())
            .and_then(|map| map.get(reason, direction))
            .unwrap_or_else(|err| panic!("reading metrics: {}", chain(&err)))
            .map_or(0, |entry| entry.packets)
    }
}

fn from_container(object: &EndpointObject) -> &aya::programs::SchedClassifier {
    object
        .program(EndpointProgram::FromContainer)
        .expect("cil_from_container is loaded")
}

/// A TCP packet with a valid TCP checksum, as `from`'s pod emits it.
fn tcp_segment(
    from: &EndpointDatapathConfig,
    to: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let mut frame = tcp_packet(from, to, sport, dport, flags, 64);
    let csum = l4_checksum(&frame);
    frame[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&csum.to_be_bytes());
    frame
}

/// The checksum over the IPv4 pseudo-header and the L4 segment of an Ethernet frame
/// (0 when the segment's checksum field is right; the right value when it holds 0).
fn l4_checksum(frame: &[u8]) -> u16 {
    let ip = &frame[14..34];
    let l4 = &frame[34..];
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, ip[9]]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    checksum(&pseudo)
}

fn addr(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

fn port(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

#[test]
fn clusterip_is_translated_to_the_backend_and_the_reply_back_to_the_frontend() {
    let fx = Fixture::new();
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-b", 22);
    let client_obj = fx.load_registered(&client);
    let server_obj = fx.load_registered(&server);
    fx.service(&[server.ipv4]);

    let syn = tcp_segment(&client, VIP, 40000, VIP_PORT, TCP_SYN);
    assert_eq!(l4_checksum(&syn), 0, "the crafted SYN is valid");
    let out = run(from_container(&client_obj), &syn);
    assert_eq!(
        out.retval, TC_ACT_REDIRECT,
        "the SYN is delivered to the local backend"
    );
    let pkt = &out.packet;
    assert_eq!(&pkt[0..6], &server.mac, "delivered to the backend's pod");
    assert_eq!(addr(&pkt[26..30]), client.ipv4, "source kept");
    assert_eq!(addr(&pkt[30..34]), server.ipv4, "destination = backend");
    assert_eq!(port(&pkt[34..36]), 40000, "source port kept");
    assert_eq!(
        port(&pkt[36..38]),
        BACKEND_PORT,
        "destination port = backend's"
    );
    assert_eq!(checksum(&pkt[14..34]), 0, "IPv4 header checksum valid");
    assert_eq!(l4_checksum(pkt), 0, "TCP checksum valid after DNAT");

    let syn_ack = tcp_segment(&server, client.ipv4, BACKEND_PORT, 40000, TCP_SYN | TCP_ACK);
    let back = run(from_container(&server_obj), &syn_ack);
    assert_eq!(back.retval, TC_ACT_REDIRECT, "the reply reaches the client");
    let pkt = &back.packet;
    assert_eq!(&pkt[0..6], &client.mac, "delivered to the client's pod");
    assert_eq!(addr(&pkt[26..30]), VIP, "reply source = the frontend");
    assert_eq!(addr(&pkt[30..34]), client.ipv4);
    assert_eq!(
        port(&pkt[34..36]),
        VIP_PORT,
        "reply source port = frontend's"
    );
    assert_eq!(port(&pkt[36..38]), 40000);
    assert_eq!(checksum(&pkt[14..34]), 0, "IPv4 header checksum valid");
    assert_eq!(l4_checksum(pkt), 0, "TCP checksum valid after reverse NAT");

    // The next packet of the connection goes to the same backend.
    let ack = tcp_segment(&client, VIP, 40000, VIP_PORT, TCP_ACK);
    let again = run(from_container(&client_obj), &ack);
    assert_eq!(again.retval, TC_ACT_REDIRECT);
    assert_eq!(addr(&again.packet[30..34]), server.ipv4);
    assert_eq!(l4_checksum(&again.packet), 0);
}

#[test]
fn a_frontend_without_backends_is_answered_with_port_unreachable_and_counted_as_158() {
    let fx = Fixture::new();
    let client = endpoint(11, "lxc-a", 11);
    let client_obj = fx.load_registered(&client);
    fx.service(&[]);

    let syn = tcp_segment(&client, VIP, 40001, VIP_PORT, TCP_SYN);
    let out = run(from_container(&client_obj), &syn);
    assert_eq!(
        out.retval, TC_ACT_REDIRECT,
        "the answer goes straight back into the pod"
    );
    let pkt = &out.packet;
    assert_eq!(
        pkt.len(),
        14 + 20 + 8 + 28,
        "Ethernet + IPv4 + ICMP + quote"
    );
    assert_eq!(&pkt[0..6], &client.mac, "to the client's MAC");
    assert_eq!(&pkt[6..12], &client.node_mac, "from the MAC it sent to");
    assert_eq!(&pkt[12..14], &ETH_P_IP.to_be_bytes());
    let ip = &pkt[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[9], IPPROTO_ICMP);
    assert_eq!(
        port(&ip[2..4]) as usize,
        pkt.len() - 14,
        "IPv4 total length"
    );
    assert_eq!(addr(&ip[12..16]), VIP, "from the frontend");
    assert_eq!(addr(&ip[16..20]), client.ipv4, "to the client");
    assert_eq!(checksum(ip), 0, "IPv4 header checksum valid");
    let icmp = &pkt[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 3), "destination unreachable, port");
    assert_eq!(checksum(icmp), 0, "ICMP checksum valid");
    assert_eq!(
        &icmp[8..36],
        &syn[14..42],
        "quotes the SYN's IPv4 header and first 8 bytes of TCP"
    );

    assert_eq!(
        fx.metric(158, MetricDirection::Egress),
        1,
        "counted as SERVICE_BACKEND_NOT_FOUND"
    );
    let events = drain_events(&fx.dp);
    let dropped = drops(&events);
    assert_eq!(dropped.len(), 1, "one drop event: {events:#?}");
    assert_eq!(dropped[0].reason, DropReason(158));
    assert_eq!(dropped[0].src_identity, client.identity);
}

const NODEPORT: ServiceFlags = ServiceFlags {
    flags: SVC_FLAG_NODEPORT,
    flags2: 0,
};

/// A TCP segment with a valid checksum as it arrives on the underlay device from `src`.
fn tcp_from_wire(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut frame = ethernet([0x02, 0xaa, 0, 0, 0, 1], [0x02, 0xaa, 0, 0, 0, 2], ETH_P_IP);
    let tcp = tcp_header(sport, dport, flags);
    frame.extend(ipv4_header(src, dst, IPPROTO_TCP, 63, tcp.len()));
    frame.extend(tcp);
    let csum = l4_checksum(&frame);
    frame[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&csum.to_be_bytes());
    frame
}

#[test]
fn nodeport_from_outside_is_translated_to_a_local_backend_which_remembers_the_frontend() {
    let fx = Fixture::new();
    let server = endpoint(22, "lxc-b", 22);
    fx.load_registered(&server);
    fx.service_at(NODE_IP, NODE_PORT, NODEPORT, &[server.ipv4]);
    let host = fx
        .dp
        .load_host()
        .unwrap_or_else(|err| panic!("loading bpf_host.o: {}", chain(&err)));
    let program = host.program().expect("cil_from_netdev is loaded");

    let syn = tcp_from_wire(EXTERNAL, NODE_IP, 45000, NODE_PORT, TCP_SYN);
    assert_eq!(l4_checksum(&syn), 0, "the crafted SYN is valid");
    let out = run(program, &syn);
    assert_eq!(
        out.retval, TC_ACT_REDIRECT,
        "delivered into the backend's pod"
    );
    let pkt = &out.packet;
    assert_eq!(&pkt[0..6], &server.mac, "to the backend's MAC");
    assert_eq!(addr(&pkt[26..30]), EXTERNAL, "client address kept");
    assert_eq!(addr(&pkt[30..34]), server.ipv4, "destination = backend");
    assert_eq!(port(&pkt[34..36]), 45000, "client port kept");
    assert_eq!(
        port(&pkt[36..38]),
        BACKEND_PORT,
        "destination port = backend's"
    );
    assert_eq!(checksum(&pkt[14..34]), 0, "IPv4 header checksum valid");
    assert_eq!(l4_checksum(pkt), 0, "TCP checksum valid after DNAT");

    let ct = CtMap::open(fx.dp.paths(), CtMapKind::Tcp)
        .and_then(|map| map.entries())
        .unwrap_or_else(|err| panic!("reading conntrack: {}", chain(&err)));
    let entry = find_ct(&ct, EXTERNAL, server.ipv4, 45000, BACKEND_PORT, TUPLE_F_IN);
    assert_eq!(entry.src_sec_id, 2, "the client is the world: {entry:?}");
    assert_eq!(
        u16::from_be(entry.rev_nat_index),
        REV_NAT.0,
        "the backend's entry names the frontend for its replies: {entry:?}"
    );
}

#[test]
fn nodeport_without_backends_is_refused_out_of_the_underlay_device() {
    let fx = Fixture::new();
    fx.service_at(NODE_IP, NODE_PORT, NODEPORT, &[]);
    let host = fx
        .dp
        .load_host()
        .unwrap_or_else(|err| panic!("loading bpf_host.o: {}", chain(&err)));
    let program = host.program().expect("cil_from_netdev is loaded");

    let syn = tcp_from_wire(EXTERNAL, NODE_IP, 45001, NODE_PORT, TCP_SYN);
    let out = run(program, &syn);
    assert_eq!(out.retval, TC_ACT_REDIRECT, "the answer goes back out");
    let pkt = &out.packet;
    assert_eq!(&pkt[0..6], &syn[6..12], "to the MAC the SYN came from");
    let ip = &pkt[14..34];
    assert_eq!(ip[9], IPPROTO_ICMP);
    assert_eq!(addr(&ip[12..16]), NODE_IP, "from the frontend");
    assert_eq!(addr(&ip[16..20]), EXTERNAL, "to the client");
    assert_eq!((pkt[34], pkt[35]), (3, 3), "destination unreachable, port");
    assert_eq!(
        fx.metric(158, MetricDirection::Ingress),
        1,
        "counted as SERVICE_BACKEND_NOT_FOUND"
    );
}
