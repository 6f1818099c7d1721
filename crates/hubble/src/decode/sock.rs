//! Socket translations (trace-sock records) decoded into flows as Cilium's Hubble shows
//! them: flow type `SOCK`, event type 7 with the translation point as subtype, the socket
//! cookie and cgroup, the address the application now talks to, and the Service the
//! translation is about. A forward translation (connect, send) goes from the socket to the
//! backend; a reverse one (recvmsg, getpeername) shows the frontend as the peer, so it goes
//! from the frontend to the socket.
//!
//! Cilium finds the client pod by its cgroup; every lab pod shares its node's cgroup, so the
//! client is found by the socket's own address — known once the socket is bound (always for
//! a reverse translation; for a first connect only when the application bound it) — else by
//! the socket's network namespace: every pod has its own, and the record carries its cookie.
//! A client found that way lends the flow its address (with port 0: no port is chosen yet).

use std::net::{IpAddr, SocketAddrV4};

use cilium_datapath::codes::SockProtocol;
use cilium_datapath::events::TraceSockEvent;
use cilium_hubble_proto::flow::{
    layer4, CiliumEventType, Flow, Ip, IpVersion, Layer4, Service, Tcp, Udp, Verdict,
};

use super::{message_type, FlowDecoder};
use crate::context::{EndpointInfo, FrontendProtocol};

impl FlowDecoder {
    /// The flow of one socket translation.
    pub(super) fn trace_sock(&self, sock: &TraceSockEvent) -> Flow {
        let (client, client_info) = self.client(sock);
        let peer = sock.address;
        let peer_info = self.endpoint_at(peer);
        // Forward: socket -> backend. Reverse: frontend -> socket.
        let ((source, source_info), (destination, destination_info)) =
            if sock.xlate_point.is_reverse() {
                ((Some(peer), peer_info), (client, client_info))
            } else {
                ((client, client_info), (Some(peer), peer_info))
            };
        let service = self.translated_service(sock);
        let (source_service, destination_service) = if sock.xlate_point.is_reverse() {
            (service, None)
        } else {
            (None, service)
        };
        let summary = match sock.protocol {
            SockProtocol::Tcp => "TCP",
            SockProtocol::Udp => "UDP",
            SockProtocol::Unknown(_) => "",
        };
        #[allow(deprecated)]
        Flow {
            verdict: if sock.xlate_point.is_post() {
                Verdict::Translated
            } else {
                Verdict::Traced
            } as i32,
            ip: Some(Ip {
                source: source.map(|a| a.ip().to_string()).unwrap_or_default(),
                destination: destination.map(|a| a.ip().to_string()).unwrap_or_default(),
                ip_version: IpVersion::IPv4 as i32,
                encrypted: false,
            }),
            l4: l4(sock.protocol, source, destination),
            source: Some(self.endpoint(source_info)),
            destination: Some(self.endpoint(destination_info)),
            source_service,
            destination_service,
            event_type: Some(CiliumEventType {
                r#type: message_type::TRACE_SOCK,
                sub_type: i32::from(sock.xlate_point.0),
            }),
            sock_xlate_point: i32::from(sock.xlate_point.0),
            socket_cookie: sock.socket_cookie,
            cgroup_id: sock.cgroup_id,
            summary: summary.to_string(),
            ..Default::default()
        }
    }

    /// The socket's own end: its address when it is bound, and the pod behind it — by that
    /// address, else by the socket's network namespace, whose pod then also gives the
    /// address when the socket had none.
    fn client(&self, sock: &TraceSockEvent) -> (Option<SocketAddrV4>, EndpointInfo) {
        let local = (!sock.local_address.ip().is_unspecified()).then_some(sock.local_address);
        let by_address = local.and_then(|a| self.context.endpoint_by_ip(IpAddr::V4(*a.ip())));
        if let Some(info) = by_address {
            return (local, info);
        }
        let Some(info) = (sock.netns_cookie != 0)
            .then(|| self.context.endpoint_by_netns_cookie(sock.netns_cookie))
            .flatten()
        else {
            return (local, EndpointInfo::default());
        };
        let address = local.or(match info.ip {
            Some(IpAddr::V4(ip)) => Some(SocketAddrV4::new(ip, 0)),
            _ => None,
        });
        (address, info)
    }

    /// What the context knows of the pod at `address`, nothing when it is not known.
    fn endpoint_at(&self, address: SocketAddrV4) -> EndpointInfo {
        self.context
            .endpoint_by_ip(IpAddr::V4(*address.ip()))
            .unwrap_or_default()
    }

    /// The Service whose frontend was translated: by its address and port, else by the
    /// reverse-NAT index (a NodePort reached at a node address is stored under 0.0.0.0).
    fn translated_service(&self, sock: &TraceSockEvent) -> Option<Service> {
        let frontend = sock.frontend();
        let protocol = match sock.protocol {
            SockProtocol::Tcp => Some(FrontendProtocol::Tcp),
            SockProtocol::Udp => Some(FrontendProtocol::Udp),
            SockProtocol::Unknown(_) => None,
        };
        protocol
            .and_then(|protocol| {
                self.context.service_by_frontend(
                    IpAddr::V4(*frontend.ip()),
                    frontend.port(),
                    protocol,
                )
            })
            .or_else(|| {
                (sock.rev_nat != 0)
                    .then(|| self.context.service_by_rev_nat(sock.rev_nat))
                    .flatten()
            })
    }
}

/// The ports of a translated socket; a side that is not known has port 0.
fn l4(
    protocol: SockProtocol,
    source: Option<SocketAddrV4>,
    destination: Option<SocketAddrV4>,
) -> Option<Layer4> {
    let source_port = source.map_or(0, |a| u32::from(a.port()));
    let destination_port = destination.map_or(0, |a| u32::from(a.port()));
    let protocol = match protocol {
        SockProtocol::Tcp => layer4::Protocol::Tcp(Tcp {
            source_port,
            destination_port,
            flags: None,
        }),
        SockProtocol::Udp => layer4::Protocol::Udp(Udp {
            source_port,
            destination_port,
        }),
        SockProtocol::Unknown(_) => return None,
    };
    Some(Layer4 {
        protocol: Some(protocol),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use cilium_datapath::codes::XlatePoint;
    use cilium_datapath::events::DatapathEvent;
    use cilium_hubble_proto::flow::{FlowType, SocketTranslationPoint};

    use super::super::tests::{
        at, deathstar_service, decoder, DEATHSTAR, DEATHSTAR_REV_NAT, DEATHSTAR_SVC, XWING,
        XWING_NETNS,
    };
    use super::*;

    fn v4(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    /// xwing connecting to the deathstar ClusterIP, pointed at the deathstar pod.
    fn connect(local: SocketAddrV4) -> TraceSockEvent {
        TraceSockEvent {
            xlate_point: XlatePoint::POST_DIRECTION_FWD,
            protocol: SockProtocol::Tcp,
            socket_cookie: 0xc0ffee,
            cgroup_id: 4242,
            address: v4(DEATHSTAR, 8080),
            orig_address: v4(DEATHSTAR_SVC, 80),
            rev_nat: DEATHSTAR_REV_NAT,
            local_address: local,
            netns_cookie: XWING_NETNS,
        }
    }

    #[test]
    #[allow(deprecated)] // `Summary` is still what clients show
    fn a_connect_names_the_service_and_the_backend() {
        let event = DatapathEvent::TraceSock(connect(v4(XWING, 39042)));
        let flow = decoder().decode(&event, at());
        assert_eq!(flow.r#type, FlowType::Sock as i32);
        assert_eq!(flow.verdict, Verdict::Translated as i32);
        assert_eq!(
            flow.event_type,
            Some(CiliumEventType {
                r#type: 7,
                sub_type: 2
            })
        );
        assert_eq!(
            flow.sock_xlate_point,
            SocketTranslationPoint::SockXlatePointPostDirectionFwd as i32
        );
        assert_eq!((flow.socket_cookie, flow.cgroup_id), (0xc0ffee, 4242));
        let ip = flow.ip.clone().expect("IP layer");
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("10.0.1.5", "10.0.2.7")
        );
        let Some(layer4::Protocol::Tcp(tcp)) = flow.l4.and_then(|l4| l4.protocol) else {
            panic!("expected TCP ports");
        };
        assert_eq!((tcp.source_port, tcp.destination_port), (39042, 8080));
        assert_eq!(flow.destination_service, Some(deathstar_service()));
        assert_eq!(flow.source_service, None);
        let source = flow.source.expect("source endpoint");
        assert_eq!(source.pod_name, "xwing-5d8f7c9b6-x2x7z");
        assert_eq!(source.identity, 1234);
        let destination = flow.destination.expect("destination endpoint");
        assert_eq!(destination.pod_name, "deathstar");
        assert_eq!(flow.summary, "TCP");
        assert_eq!(flow.node_name, "default/node2");
    }

    #[test]
    fn an_unbound_socket_is_named_by_its_network_namespace() {
        let flow = decoder().decode(&DatapathEvent::TraceSock(connect(v4([0; 4], 0))), at());
        let ip = flow.ip.expect("IP layer");
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("10.0.1.5", "10.0.2.7"),
            "the client's address comes from its pod"
        );
        let Some(layer4::Protocol::Tcp(tcp)) = flow.l4.and_then(|l4| l4.protocol) else {
            panic!("expected TCP ports");
        };
        assert_eq!(
            (tcp.source_port, tcp.destination_port),
            (0, 8080),
            "no source port is chosen before connect() returns"
        );
        let source = flow.source.expect("source endpoint");
        assert_eq!(
            (source.namespace.as_str(), source.pod_name.as_str()),
            ("default", "xwing-5d8f7c9b6-x2x7z")
        );
        assert_eq!(source.identity, 1234);
        assert!(
            source.labels.contains(&"k8s:class=xwing".to_string()),
            "{:?}",
            source.labels
        );
        assert_eq!(source.workloads.len(), 1);
    }

    #[test]
    fn an_unbound_socket_in_an_unknown_namespace_has_no_source() {
        let mut sock = connect(v4([0, 0, 0, 0], 0));
        sock.netns_cookie = 0xdead;
        // A frontend the context does not know by address is found by its index.
        sock.orig_address = v4([192, 168, 0, 2], 30080);
        let flow = decoder().decode(&DatapathEvent::TraceSock(sock), at());
        assert_eq!(flow.ip.as_ref().map(|ip| ip.source.as_str()), Some(""));
        assert_eq!(flow.source.map(|s| s.pod_name), Some(String::new()));
        assert_eq!(flow.destination_service, Some(deathstar_service()));
    }

    #[test]
    fn a_reverse_translation_of_an_unbound_socket_goes_to_its_pod() {
        let sock = TraceSockEvent {
            xlate_point: XlatePoint::POST_DIRECTION_REV,
            protocol: SockProtocol::Udp,
            address: v4(DEATHSTAR_SVC, 80),
            orig_address: v4(DEATHSTAR, 8080),
            ..connect(v4([0; 4], 0))
        };
        let flow = decoder().decode(&DatapathEvent::TraceSock(sock), at());
        assert_eq!(
            flow.ip.map(|ip| ip.destination),
            Some("10.0.1.5".to_string())
        );
        assert_eq!(
            flow.destination.map(|d| d.pod_name),
            Some("xwing-5d8f7c9b6-x2x7z".to_string())
        );
    }

    #[test]
    #[allow(deprecated)] // `Summary` is still what clients show
    fn a_reverse_translation_comes_from_the_frontend() {
        let sock = TraceSockEvent {
            xlate_point: XlatePoint::POST_DIRECTION_REV,
            protocol: SockProtocol::Udp,
            address: v4(DEATHSTAR_SVC, 80),
            orig_address: v4(DEATHSTAR, 8080),
            ..connect(v4(XWING, 39042))
        };
        let flow = decoder().decode(&DatapathEvent::TraceSock(sock), at());
        assert_eq!(flow.verdict, Verdict::Translated as i32);
        assert_eq!(flow.event_type.map(|e| e.sub_type), Some(4));
        let ip = flow.ip.expect("IP layer");
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("10.96.0.10", "10.0.1.5")
        );
        let Some(layer4::Protocol::Udp(udp)) = flow.l4.and_then(|l4| l4.protocol) else {
            panic!("expected UDP ports");
        };
        assert_eq!((udp.source_port, udp.destination_port), (80, 39042));
        // The frontend is UDP here, which the context does not know; the index names it.
        assert_eq!(flow.source_service, Some(deathstar_service()));
        assert_eq!(flow.destination_service, None);
        assert_eq!(
            flow.destination.map(|d| d.pod_name),
            Some("xwing-5d8f7c9b6-x2x7z".to_string())
        );
        assert_eq!(flow.summary, "UDP");
    }

    #[test]
    fn a_pre_translation_point_is_traced() {
        let sock = TraceSockEvent {
            xlate_point: XlatePoint::PRE_DIRECTION_FWD,
            ..connect(v4(XWING, 39042))
        };
        let flow = decoder().decode(&DatapathEvent::TraceSock(sock), at());
        assert_eq!(flow.verdict, Verdict::Traced as i32);
    }
}
