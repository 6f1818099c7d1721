//! Datapath events (trace, drop, policy verdict, socket translation) decoded into flows with
//! full context.
//!
//! Each event's headers give the verdict, reason, observation point and the identities the
//! datapath knew; the captured packet gives addresses, ports and flags; the [`FlowContext`]
//! turns addresses and identities into pods, namespaces, labels and workloads, for local
//! endpoints and pods on other nodes alike, and names the Services at either end: the one a
//! translated request was sent to (by the reverse-NAT index its trace carries) and any
//! frontend address:port the packet itself shows (a reply translated back, or a request
//! seen before translation).

use std::net::IpAddr;
use std::sync::Arc;

use cilium_datapath::codes::TraceReason;
use cilium_datapath::events::{DatapathEvent, DropEvent, PolicyVerdictEvent, TraceEvent};
use cilium_hubble_proto::flow::{
    layer4, AuthType, CiliumEventType, DropReason, Endpoint, Flow, FlowType, Layer4,
    NetworkInterface, Service, TrafficDirection, Verdict,
};
use cilium_hubble_proto::well_known::BoolValue;
use cilium_hubble_proto::Timestamp;

use crate::context::{EndpointInfo, FlowContext, FrontendProtocol};
use crate::layers::{self, Layers};

mod sock;

/// Monitor message types (`pkg/monitor/api`): the `event_type.type` of a flow.
pub mod message_type {
    /// A dropped packet.
    pub const DROP: i32 = 1;
    /// A packet seen at an observation point.
    pub const TRACE: i32 = 4;
    /// A policy decision on a new connection.
    pub const POLICY_VERDICT: i32 = 5;
    /// A socket address translated by socket LB.
    pub const TRACE_SOCK: i32 = 7;
}

/// Set in a trace reason when the packet was encrypted.
const TRACE_REASON_ENCRYPTED: u8 = 0x80;

/// Turns datapath events into flows for one node.
#[derive(Clone)]
pub struct FlowDecoder {
    node_name: String,
    context: Arc<dyn FlowContext>,
}

impl FlowDecoder {
    /// A decoder stamping flows with `node_name` (Cilium's `cluster/node`) and resolving
    /// endpoints through `context`.
    pub fn new(node_name: impl Into<String>, context: Arc<dyn FlowContext>) -> Self {
        Self {
            node_name: node_name.into(),
            context,
        }
    }

    /// The node name flows are stamped with.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The flow for one event observed at `time`.
    pub fn decode(&self, event: &DatapathEvent, time: Timestamp) -> Flow {
        let (mut flow, kind) = match event {
            DatapathEvent::Trace(trace) => (self.trace(trace), FlowType::L3L4),
            DatapathEvent::Drop(drop) => (self.drop(drop), FlowType::L3L4),
            DatapathEvent::PolicyVerdict(verdict) => (self.policy_verdict(verdict), FlowType::L3L4),
            DatapathEvent::TraceSock(sock) => (self.trace_sock(sock), FlowType::Sock),
        };
        flow.time = Some(time);
        flow.uuid = uuid::Uuid::new_v4().to_string();
        flow.node_name = self.node_name.clone();
        flow.r#type = kind as i32;
        flow
    }

    fn trace(&self, trace: &TraceEvent) -> Flow {
        let layers = layers::decode(&trace.payload);
        let (source, destination) = self.ends(&layers, trace.src_identity, trace.dst_identity);
        let known = reason_is_known(trace.reason);
        let reply = trace.reason.is_reply();
        let reporter = u32::from(trace.header.source_endpoint);
        let direction = if known {
            direction_at(reporter, &source, &destination, reply)
        } else {
            TrafficDirection::Unknown
        };
        let verdict = if trace.observation_point.0 == 1 {
            Verdict::Redirected
        } else {
            Verdict::Forwarded
        };
        let rev_nat = cilium_monitor::trace_rev_nat(trace);
        let mut flow = self.base(layers, source, destination, rev_nat);
        flow.verdict = verdict as i32;
        flow.event_type = Some(CiliumEventType {
            r#type: message_type::TRACE,
            sub_type: i32::from(trace.observation_point.0),
        });
        flow.trace_observation_point = trace.observation_point.flow_number() as i32;
        flow.traffic_direction = direction as i32;
        if known {
            flow.is_reply = Some(BoolValue { value: reply });
            #[allow(deprecated)]
            {
                flow.reply = reply;
            }
        }
        if let Some(ip) = flow.ip.as_mut() {
            ip.encrypted = trace.reason.0 & TRACE_REASON_ENCRYPTED != 0;
        }
        flow.interface = self.interface(trace.ifindex);
        flow
    }

    fn drop(&self, drop: &DropEvent) -> Flow {
        let layers = layers::decode(&drop.payload);
        let (source, destination) = self.ends(&layers, drop.src_identity, drop.dst_identity);
        let reporter = u32::from(drop.header.source_endpoint);
        let direction = direction_at(reporter, &source, &destination, false);
        let mut flow = self.base(layers, source, destination, None);
        flow.verdict = Verdict::Dropped as i32;
        set_drop_reason(&mut flow, drop.reason.0);
        flow.event_type = Some(CiliumEventType {
            r#type: message_type::DROP,
            sub_type: i32::from(drop.reason.0),
        });
        flow.traffic_direction = direction as i32;
        flow.interface = self.interface(drop.ifindex);
        flow
    }

    fn policy_verdict(&self, verdict: &PolicyVerdictEvent) -> Flow {
        let layers = layers::decode(&verdict.payload);
        let local = self
            .context
            .endpoint_by_id(verdict.header.source_endpoint)
            .map_or(0, |ep| ep.identity);
        let (src_identity, dst_identity) = if verdict.egress {
            (local, verdict.remote_identity)
        } else {
            (verdict.remote_identity, local)
        };
        let (source, destination) = self.ends(&layers, src_identity, dst_identity);
        let mut flow = self.base(layers, source, destination, None);
        flow.verdict = match (verdict.drop_reason, verdict.audited) {
            (Some(_), true) => Verdict::Audit,
            (Some(_), false) => Verdict::Dropped,
            (None, _) => Verdict::Forwarded,
        } as i32;
        match verdict.drop_reason {
            Some(reason) => set_drop_reason(&mut flow, reason.0),
            // Allowed verdicts are reported for a connection's first packet.
            None => flow.is_reply = Some(BoolValue { value: false }),
        }
        flow.event_type = Some(CiliumEventType {
            r#type: message_type::POLICY_VERDICT,
            sub_type: 0,
        });
        flow.traffic_direction = if verdict.egress {
            TrafficDirection::Egress
        } else {
            TrafficDirection::Ingress
        } as i32;
        flow.policy_match_type = u32::from(verdict.match_type);
        flow.auth_type =
            AuthType::try_from(i32::from(verdict.auth_type)).unwrap_or(AuthType::Disabled) as i32;
        flow
    }

    /// The flow's packet layers, both ends and their Services (`rev_nat`: the reverse-NAT
    /// index a trace of a translated request carries); the rest is filled by the caller.
    fn base(
        &self,
        layers: Layers,
        source: EndpointInfo,
        destination: EndpointInfo,
        rev_nat: Option<u16>,
    ) -> Flow {
        let (source_service, destination_service) = self.services(&layers, rev_nat);
        #[allow(deprecated)]
        Flow {
            ethernet: layers.ethernet,
            ip: layers.ip,
            l4: layers.l4,
            source: Some(self.endpoint(source)),
            destination: Some(self.endpoint(destination)),
            source_service,
            destination_service,
            summary: layers.summary,
            ..Default::default()
        }
    }

    /// The Services at both ends: the destination's by the reverse-NAT index of a translated
    /// request, else by address and port (Cilium's lookup); the source's by address and port
    /// (a reply translated back comes from the frontend).
    fn services(
        &self,
        layers: &Layers,
        rev_nat: Option<u16>,
    ) -> (Option<Service>, Option<Service>) {
        let ends = layers.addresses.zip(frontend_ports(layers.l4.as_ref()));
        let source = ends.and_then(|((ip, _), (port, _, protocol))| {
            self.context.service_by_frontend(ip, port, protocol)
        });
        let destination = rev_nat
            .and_then(|index| self.context.service_by_rev_nat(index))
            .or_else(|| {
                ends.and_then(|((_, ip), (_, port, protocol))| {
                    self.context.service_by_frontend(ip, port, protocol)
                })
            });
        (source, destination)
    }

    /// Both ends of the packet: what the context knows of each address, with the identity
    /// the datapath reported when it reported one.
    fn ends(
        &self,
        layers: &Layers,
        src_identity: u32,
        dst_identity: u32,
    ) -> (EndpointInfo, EndpointInfo) {
        let lookup = |ip: Option<IpAddr>, identity: u32| {
            let mut info = ip
                .and_then(|ip| self.context.endpoint_by_ip(ip))
                .unwrap_or_default();
            if identity != 0 {
                info.identity = identity;
            }
            info
        };
        let (src, dst) = layers.addresses.unzip();
        (lookup(src, src_identity), lookup(dst, dst_identity))
    }

    fn endpoint(&self, info: EndpointInfo) -> Endpoint {
        let labels = match info.identity {
            0 => Vec::new(),
            id => self.context.identity_labels(id).unwrap_or_default(),
        };
        Endpoint {
            id: info.id,
            identity: info.identity,
            namespace: info.namespace,
            labels,
            pod_name: info.pod_name,
            workloads: info.workloads,
        }
    }

    fn interface(&self, ifindex: u32) -> Option<NetworkInterface> {
        (ifindex != 0).then(|| NetworkInterface {
            index: ifindex,
            name: self.context.interface_name(ifindex).unwrap_or_default(),
        })
    }
}

/// Source port, destination port and protocol of a packet a service frontend could be at
/// either end of (TCP and UDP).
fn frontend_ports(l4: Option<&Layer4>) -> Option<(u16, u16, FrontendProtocol)> {
    let ports = |source: u32, destination: u32, protocol| {
        Some((
            u16::try_from(source).ok()?,
            u16::try_from(destination).ok()?,
            protocol,
        ))
    };
    match l4?.protocol.as_ref()? {
        layer4::Protocol::Tcp(tcp) => {
            ports(tcp.source_port, tcp.destination_port, FrontendProtocol::Tcp)
        }
        layer4::Protocol::Udp(udp) => {
            ports(udp.source_port, udp.destination_port, FrontendProtocol::Udp)
        }
        _ => None,
    }
}

/// Whether a trace reason is a connection tracking state (not "unknown at this point").
fn reason_is_known(reason: TraceReason) -> bool {
    matches!(reason.0 & !TRACE_REASON_ENCRYPTED, 0..=3)
}

/// Direction of a packet reported by endpoint `reporter`: leaving the endpoint that opened
/// the connection is egress, entering the one that accepted it is ingress; replies count for
/// the connection's direction. Unknown when the reporter is neither end.
fn direction_at(
    reporter: u32,
    source: &EndpointInfo,
    destination: &EndpointInfo,
    reply: bool,
) -> TrafficDirection {
    let from_source = reporter != 0 && reporter == source.id;
    let at_destination = reporter != 0 && reporter == destination.id;
    match (from_source, at_destination, reply) {
        (true, _, false) | (false, true, true) => TrafficDirection::Egress,
        (true, _, true) | (false, true, false) => TrafficDirection::Ingress,
        (false, false, _) => TrafficDirection::Unknown,
    }
}

fn set_drop_reason(flow: &mut Flow, code: u8) {
    #[allow(deprecated)]
    {
        flow.drop_reason = u32::from(code);
    }
    flow.drop_reason_desc =
        DropReason::try_from(i32::from(code)).unwrap_or(DropReason::Unknown) as i32;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use cilium_datapath::codes::{DropReason as Code, ObservationPoint};
    use cilium_datapath::events::EventHeader;
    use cilium_hubble_proto::flow::{layer4::Protocol, TraceObservationPoint, Workload};

    use super::*;
    use crate::layers::tests::tcp_frame;

    pub(super) const XWING: [u8; 4] = [10, 0, 1, 5];
    pub(super) const DEATHSTAR: [u8; 4] = [10, 0, 2, 7];
    /// The `deathstar` Service's ClusterIP (port 80/TCP, reverse-NAT index 3).
    pub(super) const DEATHSTAR_SVC: [u8; 4] = [10, 96, 0, 10];
    pub(super) const DEATHSTAR_REV_NAT: u16 = 3;
    /// Cookie of xwing's network namespace, for the socket translations of its connects.
    pub(super) const XWING_NETNS: u64 = 0x5eed;

    pub(super) fn deathstar_service() -> Service {
        Service {
            name: "deathstar".into(),
            namespace: "default".into(),
        }
    }

    /// Node 2's view: deathstar is local endpoint 42, xwing a pod on another node (the
    /// socket-translation tests let its sockets connect here, from [`XWING_NETNS`]).
    struct Node2 {
        by_ip: HashMap<IpAddr, EndpointInfo>,
        labels: HashMap<u32, Vec<String>>,
    }

    impl Node2 {
        fn new() -> Arc<Self> {
            let deathstar = EndpointInfo {
                id: 42,
                identity: 5678,
                namespace: "default".into(),
                pod_name: "deathstar".into(),
                workloads: Vec::new(),
                ip: Some(IpAddr::from(DEATHSTAR)),
            };
            let xwing = EndpointInfo {
                id: 0,
                identity: 1234,
                namespace: "default".into(),
                pod_name: "xwing-5d8f7c9b6-x2x7z".into(),
                workloads: vec![Workload {
                    name: "xwing".into(),
                    kind: "Deployment".into(),
                }],
                ip: Some(IpAddr::from(XWING)),
            };
            let ns = "k8s:io.kubernetes.pod.namespace=default".to_string();
            Arc::new(Node2 {
                by_ip: HashMap::from([
                    (IpAddr::from(DEATHSTAR), deathstar),
                    (IpAddr::from(XWING), xwing),
                ]),
                labels: HashMap::from([
                    (
                        5678,
                        vec![
                            "k8s:class=deathstar".into(),
                            ns.clone(),
                            "k8s:org=empire".into(),
                        ],
                    ),
                    (
                        1234,
                        vec!["k8s:class=xwing".into(), ns, "k8s:org=alliance".into()],
                    ),
                    (2, vec!["reserved:world".into()]),
                ]),
            })
        }
    }

    impl FlowContext for Node2 {
        fn endpoint_by_ip(&self, ip: IpAddr) -> Option<EndpointInfo> {
            self.by_ip.get(&ip).cloned()
        }
        fn endpoint_by_id(&self, id: u16) -> Option<EndpointInfo> {
            self.by_ip
                .values()
                .find(|ep| ep.id == u32::from(id))
                .cloned()
        }
        fn endpoint_by_netns_cookie(&self, cookie: u64) -> Option<EndpointInfo> {
            (cookie == XWING_NETNS)
                .then(|| self.by_ip.get(&IpAddr::from(XWING)).cloned())
                .flatten()
        }
        fn identity_labels(&self, identity: u32) -> Option<Vec<String>> {
            self.labels.get(&identity).cloned()
        }
        fn interface_name(&self, ifindex: u32) -> Option<String> {
            (ifindex == 9).then(|| "lxc1234".to_string())
        }
        fn service_by_frontend(
            &self,
            ip: IpAddr,
            port: u16,
            protocol: FrontendProtocol,
        ) -> Option<Service> {
            (ip == IpAddr::from(DEATHSTAR_SVC) && port == 80 && protocol == FrontendProtocol::Tcp)
                .then(deathstar_service)
        }
        fn service_by_rev_nat(&self, index: u16) -> Option<Service> {
            (index == DEATHSTAR_REV_NAT).then(deathstar_service)
        }
    }

    pub(super) fn decoder() -> FlowDecoder {
        FlowDecoder::new("default/node2", Node2::new())
    }

    fn header(source_endpoint: u16) -> EventHeader {
        EventHeader {
            source_endpoint,
            hash: 7,
            len_orig: 60,
        }
    }

    pub(super) fn at() -> Timestamp {
        Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }
    }

    #[test]
    fn a_policy_drop_names_both_pods_and_the_reason() {
        let event = DatapathEvent::Drop(DropEvent {
            header: header(42),
            reason: Code::POLICY_DENIED,
            src_identity: 1234,
            dst_identity: 5678,
            dst_endpoint: 42,
            line: 1,
            file: 2,
            ext_error: 0,
            ifindex: 9,
            payload: tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02),
        });
        let flow = decoder().decode(&event, at());
        assert_eq!(flow.verdict, Verdict::Dropped as i32);
        assert_eq!(flow.drop_reason_desc, DropReason::PolicyDenied as i32);
        #[allow(deprecated)]
        let numeric = flow.drop_reason;
        assert_eq!(numeric, 133);
        let source = flow.source.as_ref().expect("source");
        assert_eq!(
            (source.namespace.as_str(), source.pod_name.as_str()),
            ("default", "xwing-5d8f7c9b6-x2x7z")
        );
        assert_eq!(
            source.workloads,
            vec![Workload {
                name: "xwing".into(),
                kind: "Deployment".into()
            }],
            "the pod's workload as the context names it"
        );
        assert_eq!(flow.destination_service, None, "not a translated packet");
        assert_eq!((source.id, source.identity), (0, 1234));
        assert!(source.labels.contains(&"k8s:org=alliance".to_string()));
        let destination = flow.destination.as_ref().expect("destination");
        assert_eq!(destination.pod_name, "deathstar");
        assert_eq!((destination.id, destination.identity), (42, 5678));
        assert!(destination
            .labels
            .contains(&"k8s:class=deathstar".to_string()));
        assert_eq!(flow.traffic_direction, TrafficDirection::Ingress as i32);
        assert_eq!(
            flow.event_type,
            Some(CiliumEventType {
                r#type: 1,
                sub_type: 133
            })
        );
        assert_eq!(flow.node_name, "default/node2");
        assert_eq!(flow.r#type, FlowType::L3L4 as i32);
        assert_eq!(flow.time, Some(at()));
        assert_eq!(flow.uuid.len(), 36);
        assert_eq!(
            flow.interface,
            Some(NetworkInterface {
                index: 9,
                name: "lxc1234".into()
            })
        );
        assert_eq!(flow.is_reply, None, "drops do not know");
        #[allow(deprecated)]
        let summary = flow.summary.clone();
        assert_eq!(summary, "TCP Flags: SYN");
    }

    #[test]
    fn traces_carry_point_reply_and_direction() {
        // Deathstar's SYN-ACK leaving node 2 for xwing's node: a reply from its own endpoint.
        let reply = DatapathEvent::Trace(TraceEvent {
            header: header(42),
            observation_point: ObservationPoint::TO_OVERLAY,
            reason: TraceReason::REPLY,
            src_identity: 5678,
            dst_identity: 0,
            dst_endpoint: 0,
            ifindex: 0,
            flags: 0,
            orig_ip: [0; 16],
            payload: tcp_frame(DEATHSTAR, XWING, 80, 39042, 0x12),
        });
        let flow = decoder().decode(&reply, at());
        assert_eq!(flow.verdict, Verdict::Forwarded as i32);
        assert_eq!(
            flow.trace_observation_point,
            TraceObservationPoint::ToOverlay as i32
        );
        assert_eq!(flow.is_reply, Some(BoolValue { value: true }));
        assert_eq!(
            flow.traffic_direction,
            TrafficDirection::Ingress as i32,
            "a reply leaving the server belongs to its ingress connection"
        );
        let destination = flow.destination.as_ref().expect("destination");
        assert_eq!(
            destination.identity, 1234,
            "identity from the cluster's IP entries when the datapath sent none"
        );
        assert!(flow.interface.is_none());

        // A new connection delivered to deathstar: to-endpoint (101), ingress, not a reply.
        let delivered = DatapathEvent::Trace(TraceEvent {
            header: header(42),
            observation_point: ObservationPoint::TO_ENDPOINT,
            reason: TraceReason::NEW,
            src_identity: 1234,
            dst_identity: 5678,
            dst_endpoint: 42,
            ifindex: 9,
            flags: 0,
            orig_ip: [0; 16],
            payload: tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02),
        });
        let flow = decoder().decode(&delivered, at());
        assert_eq!(flow.trace_observation_point, 101);
        assert_eq!(
            flow.event_type,
            Some(CiliumEventType {
                r#type: 4,
                sub_type: 0
            })
        );
        assert_eq!(flow.traffic_direction, TrafficDirection::Ingress as i32);
        assert_eq!(flow.is_reply, Some(BoolValue { value: false }));
        let Some(Protocol::Tcp(tcp)) = flow.l4.and_then(|l4| l4.protocol) else {
            panic!("TCP expected");
        };
        assert_eq!(tcp.destination_port, 80);

        // Before conntrack the state is unknown: so are reply and direction.
        let early = DatapathEvent::Trace(TraceEvent {
            reason: TraceReason::UNKNOWN,
            observation_point: ObservationPoint::FROM_ENDPOINT,
            ..match delivered {
                DatapathEvent::Trace(trace) => trace,
                _ => unreachable!("built as a trace"),
            }
        });
        let flow = decoder().decode(&early, at());
        assert_eq!(flow.is_reply, None);
        assert_eq!(flow.traffic_direction, TrafficDirection::Unknown as i32);
    }

    #[test]
    fn policy_verdicts_resolve_the_local_side_by_endpoint() {
        let denied = PolicyVerdictEvent {
            header: header(42),
            remote_identity: 1234,
            drop_reason: Some(Code::POLICY_DENIED),
            dst_port: 80,
            src_port: 39042,
            protocol: 6,
            egress: false,
            match_type: 0,
            audited: false,
            auth_type: 0,
            cookie: 0,
            payload: tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02),
        };
        let flow = decoder().decode(&DatapathEvent::PolicyVerdict(denied.clone()), at());
        assert_eq!(flow.verdict, Verdict::Dropped as i32);
        assert_eq!(flow.drop_reason_desc, DropReason::PolicyDenied as i32);
        assert_eq!(flow.traffic_direction, TrafficDirection::Ingress as i32);
        assert_eq!(flow.event_type.map(|e| e.r#type), Some(5));
        assert_eq!(flow.source.map(|s| s.identity), Some(1234));
        assert_eq!(flow.destination.map(|d| d.identity), Some(5678));

        let audited = PolicyVerdictEvent {
            audited: true,
            ..denied.clone()
        };
        let flow = decoder().decode(&DatapathEvent::PolicyVerdict(audited), at());
        assert_eq!(flow.verdict, Verdict::Audit as i32);

        let allowed = PolicyVerdictEvent {
            drop_reason: None,
            match_type: 3,
            ..denied
        };
        let flow = decoder().decode(&DatapathEvent::PolicyVerdict(allowed), at());
        assert_eq!(flow.verdict, Verdict::Forwarded as i32);
        assert_eq!(flow.policy_match_type, 3);
        assert_eq!(flow.is_reply, Some(BoolValue { value: false }));
        assert_eq!(flow.drop_reason_desc, 0);
    }

    #[test]
    fn unknown_addresses_keep_the_datapath_identity_and_its_labels() {
        let event = DatapathEvent::Drop(DropEvent {
            header: header(42),
            reason: Code(199),
            src_identity: 2,
            dst_identity: 5678,
            dst_endpoint: 42,
            line: 1,
            file: 2,
            ext_error: 0,
            ifindex: 0,
            payload: tcp_frame([192, 0, 2, 1], DEATHSTAR, 1, 80, 0x02),
        });
        let flow = decoder().decode(&event, at());
        let source = flow.source.expect("source");
        assert_eq!(source.identity, 2);
        assert_eq!(source.labels, vec!["reserved:world".to_string()]);
        assert!(source.pod_name.is_empty());
        assert_eq!(flow.drop_reason_desc, DropReason::Unknown as i32);
        #[allow(deprecated)]
        let numeric = flow.drop_reason;
        assert_eq!(numeric, 199);
        assert_eq!(
            IpAddr::from(Ipv4Addr::from([192, 0, 2, 1])).to_string(),
            flow.ip.expect("IP").source
        );
    }

    /// A trace of xwing's request to `deathstar`'s frontend, `orig_ip` as the datapath
    /// fills it (the reverse-NAT index right after the IPv4 original address).
    fn trace(
        point: ObservationPoint,
        reason: TraceReason,
        rev_nat: u16,
        payload: Vec<u8>,
    ) -> DatapathEvent {
        let mut orig_ip = [0u8; 16];
        orig_ip[4..6].copy_from_slice(&rev_nat.to_be_bytes());
        DatapathEvent::Trace(TraceEvent {
            header: header(7),
            observation_point: point,
            reason,
            src_identity: 1234,
            dst_identity: 5678,
            dst_endpoint: 0,
            ifindex: 0,
            flags: 0,
            orig_ip,
            payload,
        })
    }

    #[test]
    fn translated_requests_name_the_service_they_were_sent_to() {
        // After translation the packet goes to the backend; the trace carries the frontend.
        let request = trace(
            ObservationPoint::TO_OVERLAY,
            TraceReason::NEW,
            DEATHSTAR_REV_NAT,
            tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x02),
        );
        let flow = decoder().decode(&request, at());
        assert_eq!(flow.destination_service, Some(deathstar_service()));
        assert_eq!(flow.source_service, None);
        assert_eq!(
            flow.destination.map(|d| d.pod_name),
            Some("deathstar".to_string()),
            "the destination is still the backend pod"
        );

        // An index the agent does not know (the service was just deleted) names nothing.
        let unknown = trace(
            ObservationPoint::TO_OVERLAY,
            TraceReason::ESTABLISHED,
            99,
            tcp_frame(XWING, DEATHSTAR, 39042, 80, 0x10),
        );
        assert_eq!(decoder().decode(&unknown, at()).destination_service, None);
    }

    #[test]
    fn frontend_addresses_name_their_service_at_either_end() {
        // The reply, translated back, comes from the frontend.
        let reply = trace(
            ObservationPoint::TO_ENDPOINT,
            TraceReason::REPLY,
            0,
            tcp_frame(DEATHSTAR_SVC, XWING, 80, 39042, 0x12),
        );
        let flow = decoder().decode(&reply, at());
        assert_eq!(flow.source_service, Some(deathstar_service()));
        assert_eq!(flow.destination_service, None);

        // Seen before translation (from-endpoint), the request goes to the frontend.
        let early = trace(
            ObservationPoint::FROM_ENDPOINT,
            TraceReason::UNKNOWN,
            0,
            tcp_frame(XWING, DEATHSTAR_SVC, 39042, 80, 0x02),
        );
        let flow = decoder().decode(&early, at());
        assert_eq!(flow.destination_service, Some(deathstar_service()));

        // Same address, another port: not a frontend.
        let other_port = trace(
            ObservationPoint::FROM_ENDPOINT,
            TraceReason::UNKNOWN,
            0,
            tcp_frame(XWING, DEATHSTAR_SVC, 39042, 8080, 0x02),
        );
        assert_eq!(
            decoder().decode(&other_port, at()).destination_service,
            None
        );
    }
}
