//! The real `bpf_lxc.o`, loaded with real per-endpoint globals into a
//! per-test bpffs root, fed crafted packets through BPF_PROG_TEST_RUN.

use std::{net::Ipv4Addr, time::Duration};

use aya::maps::{HashMap, Map, MapData};
use cilium_datapath::{
    abi::{
        CtEntry, Ipv4CtTuple, CT_F_RX_CLOSING, CT_F_TX_CLOSING, TRACE_AGGREGATE_ACTIVE_CT,
        TRACE_AGGREGATE_NONE, TUPLE_F_IN, TUPLE_F_OUT,
    },
    codes::{DropReason, MetricDirection, ObservationPoint, TraceReason},
    maps::{monotonic_seconds, CtEntryRecord, CtMap, CtMapKind, LxcMap, MetricsMap},
    AttachPreference, Datapath, DatapathEvent, DropEvent, EndpointDatapathConfig, EndpointObject,
    EndpointProgram,
};

use crate::common::*;

/// A datapath in its own bpffs root. Field order: the datapath goes first.
struct Fixture {
    dp: Datapath,
    _root: TestRoot,
}

impl Fixture {
    fn new(monitor_aggregation: u32) -> Self {
        let root = TestRoot::new();
        let dp = root.open(monitor_aggregation, AttachPreference::Auto);
        Self { dp, _root: root }
    }

    fn load(&self, ep: &EndpointDatapathConfig) -> EndpointObject {
        self.dp
            .load_endpoint(ep)
            .unwrap_or_else(|err| panic!("loading endpoint {}: {}", ep.id, chain(&err)))
    }

    /// Loads `ep` and makes it a local delivery target.
    fn load_registered(&self, ep: &EndpointDatapathConfig) -> EndpointObject {
        let object = self.load(ep);
        self.dp
            .register_endpoint(ep, &object)
            .unwrap_or_else(|err| panic!("registering endpoint {}: {}", ep.id, chain(&err)));
        object
    }

    fn ct(&self, kind: CtMapKind) -> Vec<CtEntryRecord> {
        CtMap::open(self.dp.paths(), kind)
            .and_then(|map| map.entries())
            .unwrap_or_else(|err| panic!("reading {kind:?} conntrack: {}", chain(&err)))
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
fn arp_request_for_the_gateway_is_answered_with_the_node_mac() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let gateway = Ipv4Addr::new(10, 200, 0, 1);

    let verdict = run(from_container(&object), &arp_request(&ep, gateway));

    assert_eq!(
        verdict.retval, TC_ACT_REDIRECT,
        "the reply goes back out of the veth"
    );
    let reply = &verdict.packet;
    assert_eq!(reply.len(), 42, "an Ethernet ARP packet: {reply:02x?}");
    assert_eq!(
        &reply[0..6],
        &ep.mac,
        "Ethernet destination = the asking pod"
    );
    assert_eq!(&reply[6..12], &ep.node_mac, "Ethernet source = node MAC");
    assert_eq!(&reply[12..14], &ETH_P_ARP.to_be_bytes());
    assert_eq!(&reply[20..22], &[0, 2], "ARP op = reply");
    assert_eq!(&reply[22..28], &ep.node_mac, "sender MAC = node MAC");
    assert_eq!(&reply[28..32], &gateway.octets(), "sender IP = the gateway");
    assert_eq!(&reply[32..38], &ep.mac, "target MAC = the pod");
    assert_eq!(&reply[38..42], &ep.ipv4.octets(), "target IP = the pod");

    let own = run(from_container(&object), &arp_request(&ep, ep.ipv4));
    assert_eq!(
        own.retval, TC_ACT_OK,
        "ARP for the pod's own IP is left to the stack"
    );
}

#[test]
fn local_delivery_rewrites_l2_decrements_ttl_and_tracks_the_connection() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 4242);
    let src_obj = fx.load(&src);
    let _dst_obj = fx.load_registered(&dst);

    let packet = tcp_packet(&src, dst.ipv4, 40000, 80, TCP_SYN, 64);
    let verdict = run(from_container(&src_obj), &packet);

    assert_eq!(
        verdict.retval, TC_ACT_REDIRECT,
        "delivered with bpf_redirect_peer"
    );
    let out = &verdict.packet;
    assert_eq!(out.len(), packet.len());
    assert_eq!(
        &out[0..6],
        &dst.mac,
        "Ethernet destination = destination pod"
    );
    assert_eq!(
        &out[6..12],
        &dst.node_mac,
        "Ethernet source = destination's node MAC"
    );
    assert_eq!(out[14 + 8], 63, "TTL decremented");
    assert_eq!(
        checksum(&out[14..34]),
        0,
        "IPv4 header checksum still valid"
    );
    assert_eq!(&out[34..], &packet[34..], "L4 untouched");

    let ct = fx.ct(CtMapKind::Tcp);
    let egress = find_ct(&ct, src.ipv4, dst.ipv4, 40000, 80, TUPLE_F_OUT);
    assert_eq!(egress.tx_packets, 1);
    assert_eq!(egress.tx_bytes, packet.len() as u64);
    assert_eq!(egress.src_sec_id, src.identity);
    let ingress = find_ct(&ct, src.ipv4, dst.ipv4, 40000, 80, TUPLE_F_IN);
    assert_eq!(ingress.tx_packets, 1);
    assert_eq!(
        ingress.src_sec_id, src.identity,
        "the receiver records the source identity"
    );
    assert!(ingress.lifetime > 0);

    assert_eq!(
        fx.metric(0, MetricDirection::Egress),
        1,
        "forwarded egress counted"
    );
    assert_eq!(
        fx.metric(0, MetricDirection::Ingress),
        1,
        "forwarded ingress counted"
    );

    let events = fx.events();
    let traces = traces(&events);
    assert_eq!(
        traces.len(),
        1,
        "medium aggregation: one trace for a new connection: {events:#?}"
    );
    let trace = traces[0];
    assert_eq!(trace.observation_point, ObservationPoint::TO_ENDPOINT);
    assert_eq!(trace.reason, TraceReason::NEW);
    assert_eq!(trace.src_identity, src.identity);
    assert_eq!(trace.dst_identity, dst.identity);
    assert_eq!(trace.dst_endpoint, dst.id);
    assert_eq!(trace.header.source_endpoint, dst.id);
    assert_eq!(trace.ifindex, dst.ifindex);
    assert_eq!(trace.header.len_orig as usize, packet.len());
    assert_eq!(trace.payload, *out, "the capture is the delivered packet");
}

#[test]
fn replies_are_tracked_as_replies_and_aggregated() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-b", 22);
    let client_obj = fx.load_registered(&client);
    let server_obj = fx.load_registered(&server);

    let syn = tcp_packet(&client, server.ipv4, 40001, 80, TCP_SYN, 64);
    assert_eq!(
        run(from_container(&client_obj), &syn).retval,
        TC_ACT_REDIRECT
    );
    let syn_ack = tcp_packet(&server, client.ipv4, 80, 40001, TCP_SYN | TCP_ACK, 64);
    let verdict = run(from_container(&server_obj), &syn_ack);
    assert_eq!(verdict.retval, TC_ACT_REDIRECT);
    assert_eq!(
        &verdict.packet[0..6],
        &client.mac,
        "the reply reaches the client"
    );

    let ct = fx.ct(CtMapKind::Tcp);
    let client_entry = find_ct(&ct, client.ipv4, server.ipv4, 40001, 80, TUPLE_F_OUT);
    assert_eq!((client_entry.tx_packets, client_entry.rx_packets), (1, 1));
    let server_entry = find_ct(&ct, client.ipv4, server.ipv4, 40001, 80, TUPLE_F_IN);
    assert_eq!((server_entry.tx_packets, server_entry.rx_packets), (1, 1));
    assert_eq!(ct.len(), 2, "no entry for the reply direction: {ct:#?}");

    let events = fx.events();
    let reasons: Vec<_> = traces(&events).iter().map(|t| t.reason).collect();
    assert_eq!(reasons, vec![TraceReason::NEW, TraceReason::REPLY]);

    // The handshake's final ACK brings no new SYN/FIN/RST and comes within
    // the report interval: medium aggregation stays quiet.
    let ack = tcp_packet(&client, server.ipv4, 40001, 80, TCP_ACK, 64);
    assert_eq!(
        run(from_container(&client_obj), &ack).retval,
        TC_ACT_REDIRECT
    );
    assert!(
        fx.events().is_empty(),
        "an established ACK is aggregated away"
    );
    let ct = fx.ct(CtMapKind::Tcp);
    let client_entry = find_ct(&ct, client.ipv4, server.ipv4, 40001, 80, TUPLE_F_OUT);
    assert_eq!(client_entry.tx_packets, 2);
}

#[test]
fn fin_and_rst_shorten_the_connection_lifetime() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-b", 22);
    let client_obj = fx.load_registered(&client);
    let server_obj = fx.load_registered(&server);
    let lifetime_left = |fx: &Fixture| {
        let now = monotonic_seconds().expect("monotonic clock");
        let ct = fx.ct(CtMapKind::Tcp);
        let entry = find_ct(&ct, client.ipv4, server.ipv4, 40011, 80, TUPLE_F_OUT);
        (i64::from(entry.lifetime) - i64::from(now), entry.flags)
    };

    let syn = tcp_packet(&client, server.ipv4, 40011, 80, TCP_SYN, 64);
    run(from_container(&client_obj), &syn);
    let (left, _) = lifetime_left(&fx);
    assert!(
        (55..=61).contains(&left),
        "a SYN-only connection lives 60 s, not {left}"
    );

    let ack = tcp_packet(&client, server.ipv4, 40011, 80, TCP_ACK, 64);
    run(from_container(&client_obj), &ack);
    let (left, _) = lifetime_left(&fx);
    assert!(
        left > 21000,
        "an established connection lives 6 h, not {left}"
    );
    assert_eq!(
        traces(&fx.events()).len(),
        1,
        "only the SYN was reported so far"
    );

    let fin = tcp_packet(&client, server.ipv4, 40011, 80, TCP_FIN | TCP_ACK, 64);
    run(from_container(&client_obj), &fin);
    let (left, flags) = lifetime_left(&fx);
    assert_eq!(flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING), CT_F_TX_CLOSING);
    assert!(
        left > 21000,
        "half-closed keeps the long lifetime, not {left}"
    );
    let events = fx.events();
    assert_eq!(
        traces(&events).len(),
        1,
        "a first FIN is reported: {events:#?}"
    );

    let rst = tcp_packet(&server, client.ipv4, 80, 40011, TCP_RST, 64);
    run(from_container(&server_obj), &rst);
    let (left, flags) = lifetime_left(&fx);
    assert_eq!(
        flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING),
        CT_F_TX_CLOSING | CT_F_RX_CLOSING
    );
    assert!(
        (5..=11).contains(&left),
        "a closed connection lives 10 s, not {left}"
    );
}

#[test]
fn a_fresh_syn_reopens_a_closed_connection_in_place() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-b", 22);
    let client_obj = fx.load_registered(&client);
    let server_obj = fx.load_registered(&server);
    let client_entry = |fx: &Fixture| {
        let ct = fx.ct(CtMapKind::Tcp);
        let entry = *find_ct(&ct, client.ipv4, server.ipv4, 40021, 80, TUPLE_F_OUT);
        (entry, ct.len())
    };

    let syn = tcp_packet(&client, server.ipv4, 40021, 80, TCP_SYN, 64);
    run(from_container(&client_obj), &syn);
    let ack = tcp_packet(&client, server.ipv4, 40021, 80, TCP_ACK, 64);
    run(from_container(&client_obj), &ack);
    let rst = tcp_packet(&server, client.ipv4, 80, 40021, TCP_RST, 64);
    run(from_container(&server_obj), &rst);
    let (closed, entries) = client_entry(&fx);
    assert_eq!(
        closed.flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING),
        CT_F_TX_CLOSING | CT_F_RX_CLOSING
    );
    fx.events();

    // The client reuses its port within the close timeout.
    assert_eq!(
        run(from_container(&client_obj), &syn).retval,
        TC_ACT_REDIRECT
    );
    let (reopened, entries_after) = client_entry(&fx);
    assert_eq!(entries_after, entries, "the closed entry is reused");
    assert_eq!(
        reopened.flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING),
        0,
        "the new connection is open: {reopened:#?}"
    );
    assert_eq!((reopened.tx_packets, reopened.rx_packets), (1, 0));
    let left = i64::from(reopened.lifetime) - i64::from(monotonic_seconds().expect("clock"));
    assert!(
        (55..=61).contains(&left),
        "a new SYN lives 60 s, not {left}"
    );
    let reasons: Vec<_> = traces(&fx.events()).iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        vec![TraceReason::NEW],
        "reported as a new connection"
    );
}

#[test]
fn connections_from_a_low_port_to_a_high_one_are_tracked_both_ways() {
    // ct_lookup4 tries a low-to-high-port packet as a reply first; a client
    // on a low port must still be tracked in its own direction.
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let client = endpoint(11, "lxc-a", 11);
    let server = endpoint(22, "lxc-b", 22);
    let client_obj = fx.load_registered(&client);
    let server_obj = fx.load_registered(&server);

    run(
        from_container(&client_obj),
        &tcp_packet(&client, server.ipv4, 80, 40031, TCP_SYN, 64),
    );
    run(
        from_container(&server_obj),
        &tcp_packet(&server, client.ipv4, 40031, 80, TCP_SYN | TCP_ACK, 64),
    );
    run(
        from_container(&client_obj),
        &tcp_packet(&client, server.ipv4, 80, 40031, TCP_ACK, 64),
    );

    let ct = fx.ct(CtMapKind::Tcp);
    assert_eq!(ct.len(), 2, "one entry per endpoint: {ct:#?}");
    let client_entry = find_ct(&ct, client.ipv4, server.ipv4, 80, 40031, TUPLE_F_OUT);
    assert_eq!((client_entry.tx_packets, client_entry.rx_packets), (2, 1));
    let server_entry = find_ct(&ct, client.ipv4, server.ipv4, 80, 40031, TUPLE_F_IN);
    assert_eq!((server_entry.tx_packets, server_entry.rx_packets), (2, 1));
    let reasons: Vec<_> = traces(&fx.events()).iter().map(|t| t.reason).collect();
    assert_eq!(reasons, vec![TraceReason::NEW, TraceReason::REPLY]);
}

#[test]
fn without_aggregation_every_packet_is_traced_at_every_point() {
    let fx = Fixture::new(TRACE_AGGREGATE_NONE);
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let src_obj = fx.load(&src);
    let _dst_obj = fx.load_registered(&dst);

    for flags in [TCP_SYN, TCP_ACK, TCP_ACK] {
        let packet = tcp_packet(&src, dst.ipv4, 40002, 80, flags, 64);
        assert_eq!(
            run(from_container(&src_obj), &packet).retval,
            TC_ACT_REDIRECT
        );
    }
    let events = fx.events();
    let points: Vec<_> = traces(&events)
        .iter()
        .map(|t| t.observation_point)
        .collect();
    let pair = [
        ObservationPoint::FROM_ENDPOINT,
        ObservationPoint::TO_ENDPOINT,
    ];
    assert_eq!(points, pair.repeat(3), "{events:#?}");
}

#[test]
fn traffic_to_unknown_addresses_goes_to_the_stack() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let outside = Ipv4Addr::new(192, 0, 2, 1);

    let packet = tcp_packet(&ep, outside, 40003, 443, TCP_SYN, 64);
    let verdict = run(from_container(&object), &packet);

    assert_eq!(verdict.retval, TC_ACT_OK);
    assert_eq!(
        verdict.packet, packet,
        "the stack gets the packet unchanged"
    );
    assert_eq!(fx.metric(0, MetricDirection::Egress), 1);
    let events = fx.events();
    let traces = traces(&events);
    assert_eq!(traces.len(), 1, "{events:#?}");
    assert_eq!(traces[0].observation_point, ObservationPoint::TO_STACK);
    assert_eq!(traces[0].src_identity, ep.identity);
    find_ct(
        &fx.ct(CtMapKind::Tcp),
        ep.ipv4,
        outside,
        40003,
        443,
        TUPLE_F_OUT,
    );
}

fn assert_dropped(
    fx: &Fixture,
    object: &EndpointObject,
    packet: &[u8],
    reason: DropReason,
) -> DropEvent {
    let before = fx.metric(reason.0, MetricDirection::Egress);
    let verdict = run(from_container(object), packet);
    assert_eq!(
        verdict.retval, TC_ACT_SHOT,
        "{reason} must drop: {packet:02x?}"
    );
    assert_eq!(
        fx.metric(reason.0, MetricDirection::Egress),
        before + 1,
        "metrics count the drop under reason {}",
        reason.0
    );
    let events = fx.events();
    let drops = drops(&events);
    assert_eq!(drops.len(), 1, "one drop notification: {events:#?}");
    assert_eq!(drops[0].reason, reason);
    drops[0].clone()
}

#[test]
fn malformed_ipv4_is_dropped_as_invalid_packet() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let good = tcp_packet(&ep, Ipv4Addr::new(10, 200, 0, 99), 40004, 80, TCP_SYN, 64);

    // The kernel's test run refuses frames shorter than a bare IPv4 header,
    // so truncate the header by claiming 60 bytes of options-laden header
    // where only 40 bytes of IP packet follow.
    let mut truncated = good.clone();
    truncated[14] = 0x4f;
    truncated[16..18].copy_from_slice(&60u16.to_be_bytes());
    let drop = assert_dropped(&fx, &object, &truncated, DropReason::INVALID_PACKET);
    assert_eq!(drop.header.source_endpoint, ep.id);
    assert_eq!(drop.src_identity, ep.identity);
    assert_eq!(drop.file, 2, "reported from bpf_lxc.c");
    assert!(drop.line > 0);
    assert_eq!(
        drop.payload, truncated,
        "the capture holds the dropped packet"
    );

    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    assert_dropped(&fx, &object, &bad_ihl, DropReason::INVALID_PACKET);

    let mut long_tot_len = good.clone();
    long_tot_len[16..18].copy_from_slice(&1500u16.to_be_bytes());
    assert_dropped(&fx, &object, &long_tot_len, DropReason::INVALID_PACKET);

    let mut not_v4 = good;
    not_v4[14] = 0x65;
    assert_dropped(&fx, &object, &not_v4, DropReason::INVALID_PACKET);
}

#[test]
fn drop_events_arrive_through_the_async_reader() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime");
    let mut reader = runtime
        .block_on(async { fx.dp.event_reader() })
        .expect("event reader");

    let mut packet = tcp_packet(&ep, Ipv4Addr::new(10, 200, 0, 99), 40005, 80, TCP_SYN, 64);
    packet[14] = 0x43;
    assert_eq!(run(from_container(&object), &packet).retval, TC_ACT_SHOT);

    let event = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), reader.next_event()).await })
        .expect("a drop event within 5 s")
        .expect("a decodable event");
    let DatapathEvent::Drop(drop) = event else {
        panic!("expected a drop, got {event:?}");
    };
    assert_eq!(drop.reason, DropReason::INVALID_PACKET);
    assert_eq!(drop.reason.description(), "Invalid packet");
}

#[test]
fn spoofed_source_ip_is_dropped() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let mut spoofer = ep.clone();
    spoofer.ipv4 = Ipv4Addr::new(10, 200, 0, 66);

    let packet = tcp_packet(
        &spoofer,
        Ipv4Addr::new(10, 200, 0, 22),
        40006,
        80,
        TCP_SYN,
        64,
    );
    let drop = assert_dropped(&fx, &object, &packet, DropReason::INVALID_SOURCE_IP);
    assert_eq!(drop.reason.description(), "Invalid source ip");
    assert!(
        fx.ct(CtMapKind::Tcp).is_empty(),
        "no conntrack entry for a spoofed packet"
    );
}

#[test]
fn unsupported_ethertype_is_dropped() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let mut packet = ethernet(ep.node_mac, ep.mac, 0x86dd);
    packet.extend_from_slice(&[0x60; 40]);
    assert_dropped(&fx, &object, &packet, DropReason::UNSUPPORTED_L3);
}

#[test]
fn missing_policy_program_is_a_missed_tail_call() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let object = fx.load(&src);
    // The destination is known but its policy program is not installed.
    let info = cilium_datapath::abi::EndpointInfo {
        ifindex: dst.ifindex,
        lxc_id: dst.id,
        ..Default::default()
    };
    LxcMap::open(fx.dp.paths())
        .and_then(|mut map| map.upsert(dst.ipv4, &info))
        .expect("writing cilium_lxc");

    let packet = tcp_packet(&src, dst.ipv4, 40007, 80, TCP_SYN, 64);
    let drop = assert_dropped(&fx, &object, &packet, DropReason::MISSED_TAIL_CALL);
    assert_eq!(drop.dst_endpoint, u32::from(dst.id));
}

#[test]
fn expiring_ttl_is_dropped_on_delivery() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let src_obj = fx.load(&src);
    let _dst_obj = fx.load_registered(&dst);

    let packet = tcp_packet(&src, dst.ipv4, 40008, 80, TCP_SYN, 1);
    assert_eq!(run(from_container(&src_obj), &packet).retval, TC_ACT_SHOT);
    assert_eq!(
        fx.metric(DropReason::TTL_EXCEEDED.0, MetricDirection::Ingress),
        1
    );
    let events = fx.events();
    let drops = drops(&events);
    assert_eq!(drops.len(), 1, "{events:#?}");
    assert_eq!(drops[0].reason, DropReason::TTL_EXCEEDED);
    assert_eq!(
        drops[0].header.source_endpoint, dst.id,
        "dropped by the receiver"
    );
    assert_eq!(drops[0].src_identity, src.identity);
    assert_eq!(drops[0].dst_identity, dst.identity);
}

#[test]
fn stack_traffic_to_the_pod_gets_host_or_world_identity() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let router = Ipv4Addr::new(10, 200, 0, 1);
    fx.dp
        .upsert_host_ip(router)
        .expect("registering the router IP");

    let from = |ip: Ipv4Addr, sport: u16| {
        let tcp = tcp_header(sport, 8080, TCP_SYN);
        let mut frame = ethernet(ep.mac, ep.node_mac, ETH_P_IP);
        frame.extend(ipv4_header(ip, ep.ipv4, IPPROTO_TCP, 64, tcp.len()));
        frame.extend(tcp);
        frame
    };
    let outside = Ipv4Addr::new(192, 0, 2, 7);
    for (ip, sport) in [(router, 50000), (outside, 50001)] {
        let packet = from(ip, sport);
        let verdict = run(to_container(&object), &packet);
        assert_eq!(verdict.retval, TC_ACT_OK);
        assert_eq!(
            verdict.packet, packet,
            "the stack already routed it: no rewrite"
        );
    }

    let ct = fx.ct(CtMapKind::Tcp);
    assert_eq!(
        find_ct(&ct, router, ep.ipv4, 50000, 8080, TUPLE_F_IN).src_sec_id,
        1
    );
    assert_eq!(
        find_ct(&ct, outside, ep.ipv4, 50001, 8080, TUPLE_F_IN).src_sec_id,
        2
    );
    let events = fx.events();
    let identities: Vec<_> = traces(&events).iter().map(|t| t.src_identity).collect();
    assert_eq!(identities, vec![1, 2], "host then world: {events:#?}");
    assert_eq!(fx.metric(0, MetricDirection::Ingress), 2);

    let arp = arp_request(&ep, router);
    assert_eq!(
        run(to_container(&object), &arp).retval,
        TC_ACT_OK,
        "non-IPv4 passes"
    );
}

#[test]
fn icmp_echo_replies_match_their_request() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let a = endpoint(11, "lxc-a", 11);
    let b = endpoint(22, "lxc-b", 22);
    let a_obj = fx.load_registered(&a);
    let b_obj = fx.load_registered(&b);

    let echo = |from: &EndpointDatapathConfig, to: Ipv4Addr, kind: u8| {
        let mut icmp = vec![kind, 0, 0, 0, 0x12, 0x34, 0, 1];
        let csum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&csum.to_be_bytes());
        let mut frame = ethernet(from.node_mac, from.mac, ETH_P_IP);
        frame.extend(ipv4_header(from.ipv4, to, IPPROTO_ICMP, 64, icmp.len()));
        frame.extend(icmp);
        frame
    };
    assert_eq!(
        run(from_container(&a_obj), &echo(&a, b.ipv4, 8)).retval,
        TC_ACT_REDIRECT
    );
    assert_eq!(
        run(from_container(&b_obj), &echo(&b, a.ipv4, 0)).retval,
        TC_ACT_REDIRECT
    );

    let ct = fx.ct(CtMapKind::Any);
    assert_eq!(
        ct.len(),
        2,
        "request created both sides, the reply none: {ct:#?}"
    );
    let entry = find_ct(&ct, a.ipv4, b.ipv4, 0x1234, 0, TUPLE_F_OUT);
    assert_eq!((entry.tx_packets, entry.rx_packets), (1, 1));
    let reasons: Vec<_> = traces(&fx.events()).iter().map(|t| t.reason).collect();
    assert_eq!(reasons, vec![TraceReason::NEW, TraceReason::REPLY]);
}

#[test]
fn udp_is_tracked_in_the_non_tcp_map() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let src = endpoint(11, "lxc-a", 11);
    let dst = endpoint(22, "lxc-b", 22);
    let src_obj = fx.load(&src);
    let _dst_obj = fx.load_registered(&dst);

    let mut udp = Vec::new();
    udp.extend_from_slice(&5353u16.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&12u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0, b'p', b'i', b'n', b'g']);
    let mut packet = ethernet(src.node_mac, src.mac, ETH_P_IP);
    packet.extend(ipv4_header(src.ipv4, dst.ipv4, IPPROTO_UDP, 64, udp.len()));
    packet.extend(udp);

    assert_eq!(
        run(from_container(&src_obj), &packet).retval,
        TC_ACT_REDIRECT
    );
    assert!(
        fx.ct(CtMapKind::Tcp).is_empty(),
        "UDP stays out of the TCP map"
    );
    let ct = fx.ct(CtMapKind::Any);
    assert_eq!(
        find_ct(&ct, src.ipv4, dst.ipv4, 5353, 53, TUPLE_F_OUT).tx_packets,
        1
    );
    assert_eq!(
        find_ct(&ct, src.ipv4, dst.ipv4, 5353, 53, TUPLE_F_IN).src_sec_id,
        src.identity
    );
    assert_eq!(ct[0].tuple.nexthdr, IPPROTO_UDP);
}

#[test]
fn conntrack_gc_removes_only_expired_entries() {
    let fx = Fixture::new(TRACE_AGGREGATE_ACTIVE_CT);
    let ep = endpoint(11, "lxc-a", 11);
    let object = fx.load(&ep);
    let live = tcp_packet(&ep, Ipv4Addr::new(192, 0, 2, 1), 40009, 80, TCP_SYN, 64);
    assert_eq!(run(from_container(&object), &live).retval, TC_ACT_OK);

    let path = fx.dp.paths().map(CtMapKind::Tcp.map_name());
    let data = MapData::from_pin(&path).expect("opening the pinned TCP conntrack map");
    let mut map: HashMap<MapData, Ipv4CtTuple, CtEntry> =
        HashMap::try_from(Map::from_map_data(data).expect("map type")).expect("layout");
    let stale = Ipv4CtTuple {
        daddr: [192, 0, 2, 2],
        saddr: ep.ipv4.octets(),
        dport: 80u16.to_be(),
        sport: 40010u16.to_be(),
        nexthdr: IPPROTO_TCP,
        flags: TUPLE_F_OUT,
    };
    let expired = CtEntry {
        lifetime: 1,
        ..CtEntry::default()
    };
    map.insert(stale, expired, 0)
        .expect("inserting an expired entry");
    assert_eq!(fx.ct(CtMapKind::Tcp).len(), 2);

    assert_eq!(fx.dp.ct_gc().expect("conntrack GC"), 1);
    let left = fx.ct(CtMapKind::Tcp);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].tuple.source_port(), 40009);
    assert_eq!(fx.dp.ct_gc().expect("conntrack GC"), 0);

    // A pass over more entries than one batch holds (1,024; the fixture's map holds 4,096):
    // every expired one goes, no live one.
    let live_until = monotonic_seconds().expect("clock") + 3600;
    for port in 0..3_000u16 {
        let tuple = Ipv4CtTuple {
            sport: (20_000 + port).to_be(),
            ..stale
        };
        let entry = CtEntry {
            lifetime: if port % 2 == 0 { 1 } else { live_until },
            ..CtEntry::default()
        };
        map.insert(tuple, entry, 0).expect("inserting an entry");
    }
    assert_eq!(fx.dp.ct_gc().expect("conntrack GC"), 1_500);
    let left = fx.ct(CtMapKind::Tcp);
    assert_eq!(
        left.len(),
        1_501,
        "the live half and the connection's own entry"
    );
    assert!(
        left.iter().all(|record| record.entry.lifetime > 1),
        "only live entries are left"
    );
}
