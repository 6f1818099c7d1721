//! Every filter field against a table of flows, plus AND/OR/blacklist semantics.

use cilium_hubble_proto::flow::{
    layer4::Protocol, layer7::Record, CiliumEventType, Dns, DropReason, Endpoint, EventTypeFilter,
    Flow, FlowFilter, Http, IcmPv6, Ip, IpVersion, Layer4, Layer7, NetworkInterface, Service, Tcp,
    TcpFlags, TraceContext, TraceParent, TrafficDirection, Udp, Verdict, Workload,
};
use cilium_hubble_proto::well_known::BoolValue;

use super::{FilterError, FlowFilterSet};

const NS: &str = "k8s:io.kubernetes.pod.namespace=default";

fn pod(id: u32, identity: u32, name: &str, labels: &[&str]) -> Endpoint {
    let mut labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    labels.push(NS.to_string());
    Endpoint {
        id,
        identity,
        namespace: "default".into(),
        labels,
        pod_name: name.into(),
        workloads: Vec::new(),
    }
}

fn xwing() -> Endpoint {
    pod(0, 1234, "xwing", &["k8s:org=alliance", "k8s:class=xwing"])
}
fn tiefighter() -> Endpoint {
    pod(
        11,
        4321,
        "tiefighter",
        &["k8s:org=empire", "k8s:class=tiefighter"],
    )
}
fn deathstar() -> Endpoint {
    let mut ep = pod(
        42,
        5678,
        "deathstar-5f8c",
        &["k8s:org=empire", "k8s:class=deathstar"],
    );
    ep.workloads = vec![Workload {
        name: "deathstar".into(),
        kind: "Deployment".into(),
    }];
    ep
}
fn world() -> Endpoint {
    Endpoint {
        identity: 2,
        labels: vec!["reserved:world".into()],
        ..Default::default()
    }
}

fn ipv4(src: &str, dst: &str) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: IpVersion::IPv4 as i32,
        encrypted: false,
    })
}

fn tcp(sport: u32, dport: u32, flags: TcpFlags) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(Protocol::Tcp(Tcp {
            source_port: sport,
            destination_port: dport,
            flags: Some(flags),
        })),
    })
}

const SYN: TcpFlags = TcpFlags {
    fin: false,
    syn: true,
    rst: false,
    psh: false,
    ack: false,
    urg: false,
    ece: false,
    cwr: false,
    ns: false,
};

fn event(kind: i32, sub_type: i32) -> Option<CiliumEventType> {
    Some(CiliumEventType {
        r#type: kind,
        sub_type,
    })
}

/// The table: name and flow.
fn flows() -> Vec<(&'static str, Flow)> {
    vec![
        (
            "drop",
            Flow {
                uuid: "u-drop".into(),
                verdict: Verdict::Dropped as i32,
                drop_reason_desc: DropReason::PolicyDenied as i32,
                ip: ipv4("10.0.1.5", "10.0.2.7"),
                l4: tcp(39042, 80, SYN),
                source: Some(xwing()),
                destination: Some(deathstar()),
                node_name: "default/node2".into(),
                event_type: event(1, 133),
                traffic_direction: TrafficDirection::Ingress as i32,
                interface: Some(NetworkInterface {
                    index: 9,
                    name: "lxc1234".into(),
                }),
                ..Default::default()
            },
        ),
        (
            "syn",
            Flow {
                uuid: "u-syn".into(),
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.0.1.6", "10.0.2.7"),
                l4: tcp(40000, 80, SYN),
                source: Some(tiefighter()),
                destination: Some(deathstar()),
                node_name: "default/node2".into(),
                event_type: event(4, 0),
                traffic_direction: TrafficDirection::Ingress as i32,
                is_reply: Some(BoolValue { value: false }),
                ..Default::default()
            },
        ),
        (
            "synack",
            Flow {
                uuid: "u-synack".into(),
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.0.2.7", "10.0.1.6"),
                l4: tcp(80, 40000, TcpFlags { ack: true, ..SYN }),
                source: Some(deathstar()),
                destination: Some(tiefighter()),
                node_name: "default/node2".into(),
                event_type: event(4, 4),
                traffic_direction: TrafficDirection::Ingress as i32,
                is_reply: Some(BoolValue { value: true }),
                ..Default::default()
            },
        ),
        (
            "dns",
            Flow {
                uuid: "u-dns".into(),
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.0.1.6", "8.8.8.8"),
                l4: Some(Layer4 {
                    protocol: Some(Protocol::Udp(Udp {
                        source_port: 5353,
                        destination_port: 53,
                    })),
                }),
                source: Some(tiefighter()),
                destination: Some(world()),
                destination_names: vec!["dns.google.".into()],
                node_name: "default/node1".into(),
                event_type: event(129, 0),
                traffic_direction: TrafficDirection::Egress as i32,
                l7: Some(Layer7 {
                    record: Some(Record::Dns(Dns {
                        query: "cilium.io.".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "icmp6",
            Flow {
                uuid: "u-icmp6".into(),
                verdict: Verdict::Audit as i32,
                ip: Some(Ip {
                    source: "fd00::1".into(),
                    destination: "fd00::2".into(),
                    ip_version: IpVersion::IPv6 as i32,
                    encrypted: false,
                }),
                l4: Some(Layer4 {
                    protocol: Some(Protocol::IcmPv6(IcmPv6 {
                        r#type: 128,
                        code: 0,
                    })),
                }),
                source: Some(xwing()),
                destination: Some(world()),
                node_name: "mesh/node3".into(),
                event_type: event(5, 0),
                traffic_direction: TrafficDirection::Egress as i32,
                ..Default::default()
            },
        ),
        (
            "http",
            Flow {
                uuid: "u-http".into(),
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.0.1.6", "10.0.2.7"),
                l4: tcp(40000, 80, TcpFlags::default()),
                source: Some(tiefighter()),
                destination: Some(deathstar()),
                destination_service: Some(Service {
                    name: "deathstar".into(),
                    namespace: "default".into(),
                }),
                node_name: "default/node2".into(),
                event_type: event(129, 0),
                l7: Some(Layer7 {
                    record: Some(Record::Http(Http {
                        code: 404,
                        method: "POST".into(),
                        url: "http://deathstar.default/v1/request-landing?x=1".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                trace_context: Some(TraceContext {
                    parent: Some(TraceParent {
                        trace_id: "4bf92f35".into(),
                    }),
                }),
                ..Default::default()
            },
        ),
    ]
}

/// Names of the flows the whitelist and blacklist let through.
fn selected(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Vec<&'static str> {
    let set = FlowFilterSet::new(whitelist, blacklist).unwrap_or_else(|e| panic!("{e}"));
    flows()
        .into_iter()
        .filter(|(_, flow)| set.allows(flow))
        .map(|(name, _)| name)
        .collect()
}

fn only(filter: FlowFilter) -> Vec<&'static str> {
    selected(&[filter], &[])
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn each_field_selects_its_flows() {
    let all = ["drop", "syn", "synack", "dns", "icmp6", "http"];
    let table: Vec<(&str, FlowFilter, Vec<&str>)> = vec![
        ("empty filter", FlowFilter::default(), all.to_vec()),
        (
            "uuid",
            FlowFilter {
                uuid: strings(&["u-syn", "u-dns"]),
                ..Default::default()
            },
            vec!["syn", "dns"],
        ),
        (
            "source_ip exact",
            FlowFilter {
                source_ip: strings(&["10.0.1.5"]),
                ..Default::default()
            },
            vec!["drop"],
        ),
        (
            "source_ip CIDR",
            FlowFilter {
                source_ip: strings(&["10.0.1.0/24"]),
                ..Default::default()
            },
            vec!["drop", "syn", "dns", "http"],
        ),
        (
            "destination_ip v6 CIDR",
            FlowFilter {
                destination_ip: strings(&["fd00::/64"]),
                ..Default::default()
            },
            vec!["icmp6"],
        ),
        (
            "source_pod with namespace",
            FlowFilter {
                source_pod: strings(&["default/xwing"]),
                ..Default::default()
            },
            vec!["drop", "icmp6"],
        ),
        (
            "destination_pod prefix, any namespace",
            FlowFilter {
                destination_pod: strings(&["death"]),
                ..Default::default()
            },
            vec!["drop", "syn", "http"],
        ),
        (
            "source_pod namespace only",
            FlowFilter {
                source_pod: strings(&["default/"]),
                ..Default::default()
            },
            vec!["drop", "syn", "synack", "dns", "icmp6", "http"],
        ),
        (
            "source_label",
            FlowFilter {
                source_label: strings(&["org=alliance"]),
                ..Default::default()
            },
            vec!["drop", "icmp6"],
        ),
        (
            "destination_label set-based",
            FlowFilter {
                destination_label: strings(&["class in (tiefighter, xwing)"]),
                ..Default::default()
            },
            vec!["synack"],
        ),
        (
            "destination_label reserved",
            FlowFilter {
                destination_label: strings(&["reserved:world"]),
                ..Default::default()
            },
            vec!["dns", "icmp6"],
        ),
        (
            "source_identity",
            FlowFilter {
                source_identity: vec![5678],
                ..Default::default()
            },
            vec!["synack"],
        ),
        (
            "destination_identity",
            FlowFilter {
                destination_identity: vec![2, 4321],
                ..Default::default()
            },
            vec!["synack", "dns", "icmp6"],
        ),
        (
            "verdict",
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32, Verdict::Audit as i32],
                ..Default::default()
            },
            vec!["drop", "icmp6"],
        ),
        (
            "drop_reason_desc",
            FlowFilter {
                drop_reason_desc: vec![DropReason::PolicyDenied as i32],
                ..Default::default()
            },
            vec!["drop"],
        ),
        (
            "event_type without subtype",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 4,
                    ..Default::default()
                }],
                ..Default::default()
            },
            vec!["syn", "synack"],
        ),
        (
            "event_type with subtype 0",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 4,
                    match_sub_type: true,
                    sub_type: 0,
                }],
                ..Default::default()
            },
            vec!["syn"],
        ),
        (
            "protocol",
            FlowFilter {
                protocol: strings(&["UDP", "icmp"]),
                ..Default::default()
            },
            vec!["dns", "icmp6"],
        ),
        (
            "protocol L7",
            FlowFilter {
                protocol: strings(&["http"]),
                ..Default::default()
            },
            vec!["http"],
        ),
        (
            "source_port",
            FlowFilter {
                source_port: strings(&["80"]),
                ..Default::default()
            },
            vec!["synack"],
        ),
        (
            "destination_port",
            FlowFilter {
                destination_port: strings(&["80", "53"]),
                ..Default::default()
            },
            vec!["drop", "syn", "dns", "http"],
        ),
        (
            "tcp_flags SYN (subset)",
            FlowFilter {
                tcp_flags: vec![SYN],
                ..Default::default()
            },
            vec!["drop", "syn", "synack"],
        ),
        (
            "tcp_flags SYN+ACK",
            FlowFilter {
                tcp_flags: vec![TcpFlags { ack: true, ..SYN }],
                ..Default::default()
            },
            vec!["synack"],
        ),
        (
            "traffic_direction",
            FlowFilter {
                traffic_direction: vec![TrafficDirection::Egress as i32],
                ..Default::default()
            },
            vec!["dns", "icmp6"],
        ),
        (
            "node_name glob",
            FlowFilter {
                node_name: strings(&["node1", "mesh/"]),
                ..Default::default()
            },
            vec!["dns", "icmp6"],
        ),
        (
            "ip_version",
            FlowFilter {
                ip_version: vec![IpVersion::IPv6 as i32],
                ..Default::default()
            },
            vec!["icmp6"],
        ),
        (
            "reply true",
            FlowFilter {
                reply: vec![true],
                ..Default::default()
            },
            vec!["synack"],
        ),
        (
            "reply false (unknown never matches)",
            FlowFilter {
                reply: vec![false],
                ..Default::default()
            },
            vec!["syn"],
        ),
        (
            "interface",
            FlowFilter {
                interface: vec![NetworkInterface {
                    index: 0,
                    name: "lxc1234".into(),
                }],
                ..Default::default()
            },
            vec!["drop"],
        ),
        (
            "destination_fqdn",
            FlowFilter {
                destination_fqdn: strings(&["*.google"]),
                ..Default::default()
            },
            vec!["dns"],
        ),
        (
            "destination_service",
            FlowFilter {
                destination_service: strings(&["default/death"]),
                ..Default::default()
            },
            vec!["http"],
        ),
        (
            "destination_workload",
            FlowFilter {
                destination_workload: vec![Workload {
                    name: "deathstar".into(),
                    kind: String::new(),
                }],
                ..Default::default()
            },
            vec!["drop", "syn", "http"],
        ),
        (
            "dns_query",
            FlowFilter {
                dns_query: strings(&["^cilium\\.io\\.$"]),
                ..Default::default()
            },
            vec!["dns"],
        ),
        (
            "http_status_code",
            FlowFilter {
                http_status_code: strings(&["4+"]),
                ..Default::default()
            },
            vec!["http"],
        ),
        (
            "http_method and path",
            FlowFilter {
                http_method: strings(&["post"]),
                http_path: strings(&["^/v1/request"]),
                ..Default::default()
            },
            vec!["http"],
        ),
        (
            "trace_id",
            FlowFilter {
                trace_id: strings(&["4bf92f35"]),
                ..Default::default()
            },
            vec!["http"],
        ),
    ];
    for (what, filter, expected) in table {
        assert_eq!(only(filter), expected, "{what}");
    }
}

#[test]
fn fields_are_anded_and_values_ored() {
    // AND: from the empire, to port 80, dropped → none; forwarded → two.
    let filter = FlowFilter {
        source_label: strings(&["org=empire"]),
        destination_port: strings(&["80"]),
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    };
    assert_eq!(only(filter.clone()), Vec::<&str>::new());
    let filter = FlowFilter {
        verdict: vec![Verdict::Forwarded as i32],
        ..filter
    };
    assert_eq!(only(filter), vec!["syn", "http"]);
    // OR within a field, also for label selectors.
    let filter = FlowFilter {
        source_label: strings(&["class=xwing", "class=deathstar"]),
        ..Default::default()
    };
    assert_eq!(only(filter), vec!["drop", "synack", "icmp6"]);
}

#[test]
fn whitelists_are_ored_and_blacklists_remove() {
    let dropped = FlowFilter {
        verdict: vec![Verdict::Dropped as i32],
        ..Default::default()
    };
    let udp = FlowFilter {
        protocol: strings(&["udp"]),
        ..Default::default()
    };
    assert_eq!(
        selected(&[dropped.clone(), udp.clone()], &[]),
        vec!["drop", "dns"]
    );

    // Blacklist alone: everything except what it matches (hubble observe --not).
    let node2 = FlowFilter {
        node_name: strings(&["node2"]),
        ..Default::default()
    };
    assert_eq!(
        selected(&[], std::slice::from_ref(&node2)),
        vec!["dns", "icmp6"]
    );
    // Whitelist minus blacklist; a blacklist entry matching any of its filters removes.
    assert_eq!(
        selected(&[dropped, udp.clone()], std::slice::from_ref(&node2)),
        vec!["dns"]
    );
    assert_eq!(selected(&[], &[node2, udp]), vec!["icmp6"]);
}

#[test]
fn malformed_fields_are_refused_with_the_field_named() {
    let cases: Vec<(FlowFilter, &str)> = vec![
        (
            FlowFilter {
                source_ip: strings(&["10.0.0.300"]),
                ..Default::default()
            },
            "source_ip",
        ),
        (
            FlowFilter {
                destination_port: strings(&["http"]),
                ..Default::default()
            },
            "destination_port",
        ),
        (
            FlowFilter {
                protocol: strings(&["quic"]),
                ..Default::default()
            },
            "protocol",
        ),
        (
            FlowFilter {
                source_label: strings(&["org in alliance"]),
                ..Default::default()
            },
            "source_label",
        ),
        (
            FlowFilter {
                node_name: strings(&["a/b/c"]),
                ..Default::default()
            },
            "node_name",
        ),
        (
            FlowFilter {
                http_status_code: strings(&["4044"]),
                ..Default::default()
            },
            "http_status_code",
        ),
        (
            FlowFilter {
                http_path: strings(&["(unclosed"]),
                ..Default::default()
            },
            "http_path",
        ),
    ];
    for (filter, field) in cases {
        let err: FilterError = FlowFilterSet::new(&[], &[filter]).expect_err(field);
        assert!(err.to_string().starts_with(field), "{field}: {err}");
    }
}
