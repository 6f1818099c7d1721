//! The decoded, display-ready form of one datapath event: header fields with their names,
//! the interface name, and the captured packet's summary. Its serde form is the `-o json`
//! output of `cilium monitor`.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use cilium_datapath::codes::{
    source_file_name, DropReason, ObservationPoint, SockProtocol, TraceReason, XlatePoint,
};
use cilium_datapath::{DatapathEvent, EventParseError};
use serde::{Serialize, Serializer};

use crate::names::policy_match_name;
use crate::packet::{decode_ethernet, PacketSummary};
use crate::rev_nat::trace_rev_nat;

/// Errors turning records into events.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("unknown event type {name:?}; valid types: {}", valid_names())]
    UnknownKind { name: String },
    #[error("undecodable datapath record of {len} bytes")]
    Record {
        len: usize,
        #[source]
        source: EventParseError,
    },
}

/// One event from the monitor stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorEvent {
    Trace(TraceEvent),
    Drop(DropEvent),
    PolicyVerdict(PolicyVerdictEvent),
    TraceSock(TraceSockEvent),
}

/// A socket address socket LB translated (`trace_sock_notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceSockEvent {
    /// `post-xlate-fwd` (connect or send to a frontend) or `post-xlate-rev` (a backend shown
    /// as the frontend).
    #[serde(serialize_with = "xlate_point_name")]
    pub xlate_point: XlatePoint,
    pub cgroup_id: u64,
    pub sock_cookie: u64,
    /// The address after the translation.
    pub dst: SocketAddrV4,
    /// The address before it.
    pub orig_dst: SocketAddrV4,
    /// `tcp`, `udp` or `unknown`.
    #[serde(serialize_with = "sock_protocol_name")]
    pub protocol: SockProtocol,
    /// Reverse-NAT index (service frontend ID); 0 when not reported.
    pub rev_nat: u16,
    /// The socket's own address; unspecified while it is not bound.
    pub src: SocketAddrV4,
}

/// A packet seen at an observation point (`trace_notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Where the packet was seen, e.g. `to-endpoint` (the record's subtype).
    #[serde(serialize_with = "point_name")]
    pub observation_point: ObservationPoint,
    /// Endpoint whose program emitted the event (`source` in the common header).
    pub source_endpoint: u16,
    pub flow_hash: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    /// Destination endpoint, for traces delivered to an endpoint.
    pub dst_endpoint: u16,
    /// Connection-tracking state: `new`, `established`, `reply`, `related`, `unknown`.
    #[serde(serialize_with = "trace_reason_name")]
    pub reason: TraceReason,
    pub ifindex: u32,
    /// Name of `ifindex` on this node, when it could be resolved.
    pub interface: Option<String>,
    /// Address before service translation; unspecified when there was none.
    pub orig_ip: IpAddr,
    /// Reverse-NAT index (service frontend ID) of a translated request; 0 when none.
    pub rev_nat: u16,
    /// Length of the packet on the wire; the summary covers only the captured prefix.
    pub original_len: u32,
    pub summary: PacketSummary,
}

/// A packet the datapath dropped (`drop_notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropEvent {
    /// Why, e.g. `Policy denied`.
    #[serde(serialize_with = "drop_reason_description")]
    pub reason: DropReason,
    /// Cilium's drop reason number (the positive `-DROP_*` code).
    pub reason_code: u8,
    pub source_endpoint: u16,
    pub flow_hash: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub dst_endpoint: u32,
    pub ifindex: u32,
    pub interface: Option<String>,
    /// Datapath source file and line that dropped the packet.
    pub file: Option<&'static str>,
    pub line: u16,
    pub ext_error: i8,
    pub original_len: u32,
    pub summary: PacketSummary,
}

/// The policy decision on a new connection (`policy_verdict_notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVerdictEvent {
    /// The endpoint whose policy decided (`local EP ID`).
    pub source_endpoint: u16,
    pub flow_hash: u32,
    /// Identity of the other end of the connection.
    pub remote_identity: u32,
    /// IP protocol number.
    pub protocol: u8,
    pub direction: TrafficDirection,
    pub action: PolicyAction,
    /// Why the connection was denied (`None` when allowed), e.g. `Policy denied`.
    #[serde(serialize_with = "optional_drop_reason_description")]
    pub drop_reason: Option<DropReason>,
    /// Which kind of policy entry decided, as Cilium names it: `none`, `L3-Only`, `L3-L4`,
    /// `L4-Only`, `all`, `L3-Proto`, `Proto-Only`.
    #[serde(serialize_with = "match_type_name")]
    pub match_type: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub auth_type: u8,
    pub cookie: u32,
    pub original_len: u32,
    pub summary: PacketSummary,
}

/// The endpoint's side of the connection a policy verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficDirection {
    Ingress,
    Egress,
}

impl TrafficDirection {
    pub fn name(self) -> &'static str {
        match self {
            TrafficDirection::Ingress => "ingress",
            TrafficDirection::Egress => "egress",
        }
    }
}

/// What policy did with a new connection, as `cilium monitor` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    Allow,
    Deny,
    /// Audit mode let through what policy denies.
    Audit,
}

impl PolicyAction {
    pub fn name(self) -> &'static str {
        match self {
            PolicyAction::Allow => "allow",
            PolicyAction::Deny => "deny",
            PolicyAction::Audit => "audit",
        }
    }
}

fn xlate_point_name<S: Serializer>(point: &XlatePoint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(point.name())
}

fn sock_protocol_name<S: Serializer>(protocol: &SockProtocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(protocol.name())
}

fn point_name<S: Serializer>(point: &ObservationPoint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(point.name())
}

fn trace_reason_name<S: Serializer>(reason: &TraceReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.name())
}

fn optional_drop_reason_description<S: Serializer>(
    reason: &Option<DropReason>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match reason {
        Some(reason) => s.serialize_str(&reason.description()),
        None => s.serialize_none(),
    }
}

fn match_type_name<S: Serializer>(match_type: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(policy_match_name(*match_type))
}

fn drop_reason_description<S: Serializer>(reason: &DropReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&reason.description())
}

impl MonitorEvent {
    /// Decodes one raw ring-buffer record (the payload of a monitor frame). `interfaces`
    /// names an ifindex on this node.
    pub fn from_record(
        record: &[u8],
        interfaces: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Self, EventError> {
        let event = DatapathEvent::parse(record).map_err(|source| EventError::Record {
            len: record.len(),
            source,
        })?;
        Ok(Self::from_datapath(&event, interfaces))
    }

    /// Names and decodes a parsed datapath event.
    pub fn from_datapath(
        event: &DatapathEvent,
        interfaces: &dyn Fn(u32) -> Option<String>,
    ) -> Self {
        let interface = |ifindex: u32| (ifindex != 0).then(|| interfaces(ifindex)).flatten();
        match event {
            DatapathEvent::Trace(t) => MonitorEvent::Trace(TraceEvent {
                observation_point: t.observation_point,
                source_endpoint: t.header.source_endpoint,
                flow_hash: t.header.hash,
                src_identity: t.src_identity,
                dst_identity: t.dst_identity,
                dst_endpoint: t.dst_endpoint,
                reason: t.reason,
                ifindex: t.ifindex,
                interface: interface(t.ifindex),
                orig_ip: IpAddr::V4(Ipv4Addr::new(
                    t.orig_ip[0],
                    t.orig_ip[1],
                    t.orig_ip[2],
                    t.orig_ip[3],
                )),
                rev_nat: trace_rev_nat(t).unwrap_or(0),
                original_len: t.header.len_orig,
                summary: decode_ethernet(&t.payload),
            }),
            DatapathEvent::Drop(d) => MonitorEvent::Drop(DropEvent {
                reason: d.reason,
                reason_code: d.reason.0,
                source_endpoint: d.header.source_endpoint,
                flow_hash: d.header.hash,
                src_identity: d.src_identity,
                dst_identity: d.dst_identity,
                dst_endpoint: d.dst_endpoint,
                ifindex: d.ifindex,
                interface: interface(d.ifindex),
                file: source_file_name(d.file),
                line: d.line,
                ext_error: d.ext_error,
                original_len: d.header.len_orig,
                summary: decode_ethernet(&d.payload),
            }),
            DatapathEvent::PolicyVerdict(v) => MonitorEvent::PolicyVerdict(PolicyVerdictEvent {
                source_endpoint: v.header.source_endpoint,
                flow_hash: v.header.hash,
                remote_identity: v.remote_identity,
                protocol: v.protocol,
                direction: if v.egress {
                    TrafficDirection::Egress
                } else {
                    TrafficDirection::Ingress
                },
                action: match (v.audited, v.drop_reason) {
                    (true, _) => PolicyAction::Audit,
                    (false, Some(_)) => PolicyAction::Deny,
                    (false, None) => PolicyAction::Allow,
                },
                drop_reason: v.drop_reason,
                match_type: v.match_type,
                src_port: v.src_port,
                dst_port: v.dst_port,
                auth_type: v.auth_type,
                cookie: v.cookie,
                original_len: v.header.len_orig,
                summary: decode_ethernet(&v.payload),
            }),
            DatapathEvent::TraceSock(t) => MonitorEvent::TraceSock(TraceSockEvent {
                xlate_point: t.xlate_point,
                cgroup_id: t.cgroup_id,
                sock_cookie: t.socket_cookie,
                dst: t.address,
                orig_dst: t.orig_address,
                protocol: t.protocol,
                rev_nat: t.rev_nat,
                src: t.local_address,
            }),
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            MonitorEvent::Trace(_) => EventKind::Trace,
            MonitorEvent::Drop(_) => EventKind::Drop,
            MonitorEvent::PolicyVerdict(_) => EventKind::PolicyVerdict,
            MonitorEvent::TraceSock(_) => EventKind::TraceSock,
        }
    }

    /// Endpoint that emitted the event; 0 for socket translations, which the node's cgroup
    /// hooks report.
    pub fn source_endpoint(&self) -> u16 {
        match self {
            MonitorEvent::Trace(t) => t.source_endpoint,
            MonitorEvent::Drop(d) => d.source_endpoint,
            MonitorEvent::PolicyVerdict(v) => v.source_endpoint,
            MonitorEvent::TraceSock(_) => 0,
        }
    }

    /// Endpoint the packet was headed to, 0 when not known. An ingress verdict's packet is
    /// headed to the deciding endpoint; an egress verdict's leaves it.
    pub fn dst_endpoint(&self) -> u32 {
        match self {
            MonitorEvent::Trace(t) => u32::from(t.dst_endpoint),
            MonitorEvent::Drop(d) => d.dst_endpoint,
            MonitorEvent::PolicyVerdict(v) => match v.direction {
                TrafficDirection::Ingress => u32::from(v.source_endpoint),
                TrafficDirection::Egress => 0,
            },
            MonitorEvent::TraceSock(_) => 0,
        }
    }

    /// The captured packet's summary; `None` for socket translations, which carry no packet.
    pub fn summary(&self) -> Option<&PacketSummary> {
        match self {
            MonitorEvent::Trace(t) => Some(&t.summary),
            MonitorEvent::Drop(d) => Some(&d.summary),
            MonitorEvent::PolicyVerdict(v) => Some(&v.summary),
            MonitorEvent::TraceSock(_) => None,
        }
    }
}

/// Monitor message types by their `cilium monitor -t` names. Only `drop`, `trace`,
/// `policy-verdict` and `trace-sock` are produced by this datapath today; the others are
/// accepted so scripts written for Cilium keep working, and simply match nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Drop,
    Debug,
    Capture,
    Trace,
    PolicyVerdict,
    TraceSock,
    L7,
    Agent,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Drop,
        EventKind::Debug,
        EventKind::Capture,
        EventKind::Trace,
        EventKind::PolicyVerdict,
        EventKind::TraceSock,
        EventKind::L7,
        EventKind::Agent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Drop => "drop",
            EventKind::Debug => "debug",
            EventKind::Capture => "capture",
            EventKind::Trace => "trace",
            EventKind::PolicyVerdict => "policy-verdict",
            EventKind::TraceSock => "trace-sock",
            EventKind::L7 => "l7",
            EventKind::Agent => "agent",
        }
    }
}

fn valid_names() -> String {
    EventKind::ALL.map(EventKind::name).join(", ")
}

impl std::str::FromStr for EventKind {
    type Err = EventError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| EventError::UnknownKind {
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::tests::{ipv4_frame, tcp_header};
    use cilium_datapath::abi::{
        DropNotify, NotifyCaptureHdr, PolicyVerdictNotify, TraceNotify, CILIUM_NOTIFY_DROP,
        CILIUM_NOTIFY_POLICY_VERDICT, CILIUM_NOTIFY_TRACE, NOTIFY_DROP_VER, NOTIFY_POLICY_VER,
        NOTIFY_TRACE_VER,
    };
    use cilium_datapath::events::{TraceSockNotify, CILIUM_NOTIFY_TRACE_SOCK};

    /// The raw bytes of a notification struct followed by the captured packet, as the
    /// datapath writes them into the ring buffer.
    fn record<T: Copy>(msg: &T, packet: &[u8]) -> Vec<u8> {
        // SAFETY: T is one of the datapath's `#[repr(C)]` integer-only mirrors; we only
        // read its bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts((msg as *const T).cast::<u8>(), size_of::<T>()) };
        let mut out = bytes.to_vec();
        out.extend_from_slice(packet);
        out
    }

    pub(crate) fn trace_record(point: u8, reason: u8, ifindex: u32, packet: &[u8]) -> Vec<u8> {
        let orig_ip = [10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        trace_record_with_orig(point, reason, ifindex, orig_ip, packet)
    }

    pub(crate) fn trace_record_with_orig(
        point: u8,
        reason: u8,
        ifindex: u32,
        orig_ip: [u8; 16],
        packet: &[u8],
    ) -> Vec<u8> {
        let msg = TraceNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_TRACE,
                subtype: point,
                source: 212,
                hash: 0x3000_e251,
                len_orig: packet.len() as u32,
                len_cap: packet.len() as u16,
                version: NOTIFY_TRACE_VER,
            },
            src_label: 5,
            dst_label: 61131,
            dst_id: 212,
            reason,
            flags: 0,
            ifindex,
            orig_ip,
        };
        record(&msg, packet)
    }

    pub(crate) fn drop_record(reason: u8, packet: &[u8]) -> Vec<u8> {
        let msg = DropNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_DROP,
                subtype: reason,
                source: 829,
                hash: 0,
                len_orig: 98,
                len_cap: packet.len() as u16,
                version: NOTIFY_DROP_VER,
            },
            src_label: 1210,
            dst_label: 0,
            dst_id: 0,
            line: 321,
            file: 2,
            ext_error: 0,
            ifindex: 8,
        };
        record(&msg, packet)
    }

    /// The verdict of Cilium's documentation example: endpoint 743 denies, on ingress, a DNS
    /// reply from identity 1210 (10.35.133.77:53 -> 10.35.10.243:41763). `dir` is 1 for
    /// ingress, 2 for egress; `verdict` 0 allows, `-reason` denies.
    pub(crate) fn verdict_record(dir: u8, verdict: i32, match_type: u8, audited: u8) -> Vec<u8> {
        let mut udp = Vec::new();
        for word in [53u16, 41763, 8, 0] {
            udp.extend_from_slice(&word.to_be_bytes());
        }
        let packet = ipv4_frame([10, 35, 133, 77], [10, 35, 10, 243], 17, &udp);
        let msg = PolicyVerdictNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_POLICY_VERDICT,
                subtype: 0,
                source: 743,
                hash: 0,
                len_orig: packet.len() as u32,
                len_cap: packet.len() as u16,
                version: NOTIFY_POLICY_VER,
            },
            remote_label: 1210,
            verdict,
            dst_port: 41763,
            src_port: 53,
            proto: 17,
            dir,
            match_type,
            audited,
            auth_type: 0,
            pad: [0; 3],
            cookie: 0,
        };
        record(&msg, &packet)
    }

    /// Socket LB pointing a connect to 10.96.128.44:80/TCP (reverse-NAT index 3) at
    /// 10.0.2.7:8080 (`xlate_point` 2), or showing that backend as the frontend (4).
    pub(crate) fn trace_sock_record(xlate_point: u8) -> Vec<u8> {
        let (dst, dst_port, orig, orig_port) = if xlate_point == 4 {
            ([10, 96, 128, 44], 80u16, [10, 0, 2, 7], 8080u16)
        } else {
            ([10, 0, 2, 7], 8080, [10, 96, 128, 44], 80)
        };
        let mut dst_ip = [0; 16];
        dst_ip[..4].copy_from_slice(&dst);
        let msg = TraceSockNotify {
            kind: CILIUM_NOTIFY_TRACE_SOCK,
            xlate_point,
            l4_proto: 1,
            dst_port: dst_port.to_be_bytes(),
            sock_cookie: 7_123_674,
            cgroup_id: 479_586,
            dst_ip,
            orig_ip4: orig,
            orig_port: orig_port.to_be_bytes(),
            rev_nat: 3u16.to_be_bytes(),
            ..TraceSockNotify::default()
        };
        record(&msg, &[])
    }

    pub(crate) fn names(ifindex: u32) -> Option<String> {
        (ifindex == 8).then(|| "lxc0a1b2c3d4e5".to_string())
    }

    pub(crate) fn syn_packet() -> Vec<u8> {
        ipv4_frame(
            [10, 0, 1, 5],
            [10, 0, 1, 7],
            6,
            &tcp_header(34219, 80, 0x02),
        )
    }

    #[test]
    fn trace_records_become_named_events() {
        let record = trace_record(0, 0, 8, &syn_packet());
        let event = MonitorEvent::from_record(&record, &names).expect("valid trace");
        let MonitorEvent::Trace(trace) = &event else {
            panic!("expected a trace, got {event:?}")
        };
        assert_eq!(trace.interface.as_deref(), Some("lxc0a1b2c3d4e5"));
        assert_eq!(trace.orig_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 1, 5)));
        assert_eq!(event.kind(), EventKind::Trace);
        assert_eq!((event.source_endpoint(), event.dst_endpoint()), (212, 212));

        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "trace");
        assert_eq!(json["observation_point"], "to-endpoint");
        assert_eq!(json["reason"], "new");
        assert_eq!(json["src_identity"], 5);
        assert_eq!(json["dst_identity"], 61131);
        assert_eq!(json["ifindex"], 8);
        assert_eq!(json["summary"]["l4"]["dst_port"], 80);
        assert_eq!(json["summary"]["l4"]["flags"], serde_json::json!(["SYN"]));
        assert_eq!(json["rev_nat"], 0, "not a translated request");

        let mut orig_ip = [0u8; 16];
        orig_ip[4..6].copy_from_slice(&7u16.to_be_bytes());
        let translated = trace_record_with_orig(4, 0, 0, orig_ip, &syn_packet());
        let event = MonitorEvent::from_record(&translated, &names).expect("valid trace");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["rev_nat"], 7, "the frontend's reverse-NAT index");
    }

    #[test]
    fn drop_records_carry_reason_and_location() {
        let event = MonitorEvent::from_record(&drop_record(133, &syn_packet()), &names).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "drop");
        assert_eq!(json["reason"], "Policy denied");
        assert_eq!(json["reason_code"], 133);
        assert_eq!(json["file"], "bpf_lxc.c");
        assert_eq!(json["line"], 321);
        assert_eq!(json["interface"], "lxc0a1b2c3d4e5");
    }

    #[test]
    fn policy_verdict_records_become_events() {
        let event = MonitorEvent::from_record(&verdict_record(1, -133, 0, 0), &names)
            .expect("valid policy verdict");
        let MonitorEvent::PolicyVerdict(verdict) = &event else {
            panic!("expected a policy verdict, got {event:?}")
        };
        assert_eq!(verdict.action, PolicyAction::Deny);
        assert_eq!(verdict.direction, TrafficDirection::Ingress);
        assert_eq!(event.kind(), EventKind::PolicyVerdict);
        assert_eq!((event.source_endpoint(), event.dst_endpoint()), (743, 743));

        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "policy_verdict");
        assert_eq!(json["source_endpoint"], 743);
        assert_eq!(json["remote_identity"], 1210);
        assert_eq!(json["protocol"], 17);
        assert_eq!(json["direction"], "ingress");
        assert_eq!(json["action"], "deny");
        assert_eq!(json["drop_reason"], "Policy denied");
        assert_eq!(json["match_type"], "none");
        assert_eq!(
            (json["src_port"].clone(), json["dst_port"].clone()),
            (53.into(), 41763.into())
        );
        assert_eq!(json["summary"]["l4"]["src_port"], 53);

        let allowed = MonitorEvent::from_record(&verdict_record(2, 0, 2, 0), &names).unwrap();
        let json = serde_json::to_value(&allowed).unwrap();
        assert_eq!(json["action"], "allow");
        assert_eq!(json["direction"], "egress");
        assert_eq!(json["drop_reason"], serde_json::Value::Null);
        assert_eq!(json["match_type"], "L3-L4");
        assert_eq!(allowed.dst_endpoint(), 0);

        let audited = MonitorEvent::from_record(&verdict_record(1, 0, 0, 1), &names).unwrap();
        assert_eq!(serde_json::to_value(&audited).unwrap()["action"], "audit");
    }

    #[test]
    fn trace_sock_records_become_events() {
        let event = MonitorEvent::from_record(&trace_sock_record(2), &names).expect("valid");
        assert_eq!(event.kind(), EventKind::TraceSock);
        assert_eq!((event.source_endpoint(), event.dst_endpoint()), (0, 0));
        assert_eq!(event.summary(), None);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "trace_sock");
        assert_eq!(json["xlate_point"], "post-xlate-fwd");
        assert_eq!(json["cgroup_id"], 479_586);
        assert_eq!(json["sock_cookie"], 7_123_674);
        assert_eq!(json["dst"], "10.0.2.7:8080");
        assert_eq!(json["orig_dst"], "10.96.128.44:80");
        assert_eq!(json["protocol"], "tcp");
        assert_eq!(json["rev_nat"], 3);
        assert_eq!(
            json["src"], "0.0.0.0:0",
            "a connect runs before the socket is bound"
        );
    }

    #[test]
    fn garbage_records_are_errors_not_panics() {
        for record in [vec![], vec![4u8; 10], vec![99u8; 80]] {
            let err = MonitorEvent::from_record(&record, &names).unwrap_err();
            assert!(err.to_string().contains("undecodable"), "{err}");
        }
        // A valid header whose captured bytes are nonsense still decodes.
        let record = trace_record(3, 2, 0, &[0xff; 40]);
        let event = MonitorEvent::from_record(&record, &names).unwrap();
        assert_eq!(event.summary().map(|s| s.captured_len), Some(40));
    }

    #[test]
    fn event_kinds_parse_by_cilium_name() {
        assert_eq!("drop".parse::<EventKind>().unwrap(), EventKind::Drop);
        assert_eq!(
            "policy-verdict".parse::<EventKind>().unwrap(),
            EventKind::PolicyVerdict
        );
        let err = "drops".parse::<EventKind>().unwrap_err().to_string();
        assert!(
            err.contains("\"drops\"") && err.contains("trace-sock"),
            "{err}"
        );
    }
}
