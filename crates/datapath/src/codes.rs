//! Numeric codes the datapath reports, with their user-facing names: drop
//! reasons, trace observation points, trace reasons, socket translation
//! points, metric directions and source files. The numbers and texts
//! follow Cilium so that monitor output and flows read the same.

use std::fmt;

/// A drop reason: the positive form of a datapath `DROP_*` code, as carried
/// in metrics keys and drop notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropReason(pub u8);

/// One known drop reason: code, flow.proto `DropReason` name, monitor text.
struct DropReasonInfo {
    code: u8,
    flow_name: &'static str,
    description: &'static str,
}

macro_rules! drop_reasons {
    ($( $konst:ident = $code:literal, $flow:literal, $desc:literal; )+) => {
        impl DropReason {
            $(
                #[doc = $desc]
                pub const $konst: DropReason = DropReason($code);
            )+
        }

        const DROP_REASONS: &[DropReasonInfo] = &[
            $( DropReasonInfo { code: $code, flow_name: $flow, description: $desc }, )+
        ];
    };
}

drop_reasons! {
    INVALID_SOURCE_MAC = 130, "INVALID_SOURCE_MAC", "Invalid source mac";
    INVALID_DESTINATION_MAC = 131, "INVALID_DESTINATION_MAC", "Invalid destination mac";
    INVALID_SOURCE_IP = 132, "INVALID_SOURCE_IP", "Invalid source ip";
    POLICY_DENIED = 133, "POLICY_DENIED", "Policy denied";
    INVALID_PACKET = 134, "INVALID_PACKET_DROPPED", "Invalid packet";
    CT_INVALID_HEADER = 135, "CT_TRUNCATED_OR_INVALID_HEADER", "CT: Truncated or invalid header";
    CT_MISSING_TCP_ACK = 136, "CT_MISSING_TCP_ACK_FLAG", "CT: Missing TCP ACK flag";
    CT_UNKNOWN_L4 = 137, "CT_UNKNOWN_L4_PROTOCOL", "CT: Unknown L4 protocol";
    CT_CANNOT_CREATE = 138, "CT_CANNOT_CREATE_ENTRY_FROM_PACKET", "CT: Can't create entry from packet";
    UNSUPPORTED_L3 = 139, "UNSUPPORTED_L3_PROTOCOL", "Unsupported L3 protocol";
    MISSED_TAIL_CALL = 140, "MISSED_TAIL_CALL", "Missed tail call";
    WRITE_ERROR = 141, "ERROR_WRITING_TO_PACKET", "Error writing to packet";
    UNKNOWN_L4 = 142, "UNKNOWN_L4_PROTOCOL", "Unknown L4 protocol";
    UNKNOWN_ICMPV4_CODE = 143, "UNKNOWN_ICMPV4_CODE", "Unknown ICMPv4 code";
    UNKNOWN_ICMPV4_TYPE = 144, "UNKNOWN_ICMPV4_TYPE", "Unknown ICMPv4 type";
    UNKNOWN_ICMPV6_CODE = 145, "UNKNOWN_ICMPV6_CODE", "Unknown ICMPv6 code";
    UNKNOWN_ICMPV6_TYPE = 146, "UNKNOWN_ICMPV6_TYPE", "Unknown ICMPv6 type";
    TUNNEL_KEY = 147, "ERROR_RETRIEVING_TUNNEL_KEY", "Error retrieving tunnel key";
    TUNNEL_OPTIONS = 148, "ERROR_RETRIEVING_TUNNEL_OPTIONS", "Error retrieving tunnel options";
    INVALID_GENEVE_OPTION = 149, "INVALID_GENEVE_OPTION", "Invalid Geneve option";
    UNKNOWN_L3_TARGET = 150, "UNKNOWN_L3_TARGET_ADDRESS", "Unknown L3 target address";
    STALE_OR_UNROUTABLE_IP = 151, "STALE_OR_UNROUTABLE_IP", "Stale or unroutable IP";
    NO_LOCAL_CONTAINER = 152, "NO_MATCHING_LOCAL_CONTAINER_FOUND", "No matching local container found";
    CSUM_L3 = 153, "ERROR_WHILE_CORRECTING_L3_CHECKSUM", "Error while correcting L3 checksum";
    CSUM_L4 = 154, "ERROR_WHILE_CORRECTING_L4_CHECKSUM", "Error while correcting L4 checksum";
    CT_MAP_INSERTION_FAILED = 155, "CT_MAP_INSERTION_FAILED", "CT: Map insertion failed";
    INVALID_IPV6_EXT_HEADER = 156, "INVALID_IPV6_EXTENSION_HEADER", "Invalid IPv6 extension header";
    FRAG_NOT_SUPPORTED = 157, "IP_FRAGMENTATION_NOT_SUPPORTED", "IP fragmentation not supported";
    NO_SERVICE_BACKEND = 158, "SERVICE_BACKEND_NOT_FOUND", "Service backend not found";
    NO_TUNNEL_ENDPOINT = 160, "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT", "No tunnel/encapsulation endpoint (datapath BUG!)";
    PROXYMAP_INSERT = 161, "FAILED_TO_INSERT_INTO_PROXYMAP", "Failed to insert into proxymap";
    EDT_HORIZON = 162, "REACHED_EDT_RATE_LIMITING_DROP_HORIZON", "Reached EDT rate-limiting drop horizon";
    UNKNOWN_CT_STATE = 163, "UNKNOWN_CONNECTION_TRACKING_STATE", "Unknown connection tracking state";
    HOST_UNREACHABLE = 164, "LOCAL_HOST_IS_UNREACHABLE", "Local host is unreachable";
    NO_POLICY_CONFIG = 165, "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION", "No configuration available to perform policy decision";
    UNSUPPORTED_L2 = 166, "UNSUPPORTED_L2_PROTOCOL", "Unsupported L2 protocol";
    NAT_NO_MAPPING = 167, "NO_MAPPING_FOR_NAT_MASQUERADE", "No mapping for NAT masquerade";
    NAT_UNSUPPORTED_PROTO = 168, "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE", "Unsupported protocol for NAT masquerade";
    FIB_LOOKUP_FAILED = 169, "FIB_LOOKUP_FAILED", "FIB lookup failed";
    ENCAP_PROHIBITED = 170, "ENCAPSULATION_TRAFFIC_IS_PROHIBITED", "Encapsulation traffic is prohibited";
    INVALID_IDENTITY = 171, "INVALID_IDENTITY", "Invalid identity";
    UNKNOWN_SENDER = 172, "UNKNOWN_SENDER", "Unknown sender";
    NAT_NOT_NEEDED = 173, "NAT_NOT_NEEDED", "NAT not needed";
    IS_CLUSTER_IP = 174, "IS_A_CLUSTERIP", "Is a ClusterIP";
    FRAG_NOT_FOUND = 175, "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND", "First logical datagram fragment not found";
    FORBIDDEN_ICMPV6 = 176, "FORBIDDEN_ICMPV6_MESSAGE", "Forbidden ICMPv6 message";
    LB_SOURCE_RANGE = 177, "DENIED_BY_LB_SRC_RANGE_CHECK", "Denied by LB src range check";
    SOCKET_LOOKUP_FAILED = 178, "SOCKET_LOOKUP_FAILED", "Socket lookup failed";
    SOCKET_ASSIGN_FAILED = 179, "SOCKET_ASSIGN_FAILED", "Socket assign failed";
    PROXY_UNSUPPORTED_PROTO = 180, "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL", "Proxy redirection not supported for protocol";
    POLICY_DENY = 181, "POLICY_DENY", "Policy denied by denylist";
    VLAN_FILTERED = 182, "VLAN_FILTERED", "VLAN traffic disallowed by VLAN filter";
    INVALID_VNI = 183, "INVALID_VNI", "Incorrect VNI from VTEP";
    INVALID_TC_BUFFER = 184, "INVALID_TC_BUFFER", "Failed to update or lookup TC buffer";
    NO_SID = 185, "NO_SID", "No SID was found for the IP address";
    MISSING_SRV6_STATE = 186, "MISSING_SRV6_STATE", "SRv6 state was removed during tail call";
    NAT46 = 187, "NAT46", "L3 translation from IPv4 to IPv6 failed (NAT46)";
    NAT64 = 188, "NAT64", "L3 translation from IPv6 to IPv4 failed (NAT64)";
    AUTH_REQUIRED = 189, "AUTH_REQUIRED", "Authentication required";
    CT_NO_MAP_FOUND = 190, "CT_NO_MAP_FOUND", "No conntrack map found";
    SNAT_NO_MAP_FOUND = 191, "SNAT_NO_MAP_FOUND", "No nat map found";
    INVALID_CLUSTER_ID = 192, "INVALID_CLUSTER_ID", "Invalid ClusterID";
    DSR_ENCAP_UNSUPPORTED = 193, "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP", "Unsupported packet protocol for DSR encapsulation";
    NO_EGRESS_GATEWAY = 194, "NO_EGRESS_GATEWAY", "No egress gateway found";
    TTL_EXCEEDED = 196, "TTL_EXCEEDED", "TTL exceeded";
    NO_NODE_ID = 197, "NO_NODE_ID", "No node ID found";
    HOST_NOT_READY = 202, "DROP_HOST_NOT_READY", "Host datapath not ready";
    EP_NOT_READY = 203, "DROP_EP_NOT_READY", "Endpoint policy program not available";
}

impl DropReason {
    fn info(self) -> Option<&'static DropReasonInfo> {
        DROP_REASONS.iter().find(|info| info.code == self.0)
    }

    /// Monitor text, e.g. "Policy denied"; the number itself when unknown.
    pub fn description(self) -> String {
        match self.info() {
            Some(info) => info.description.to_string(),
            None => self.0.to_string(),
        }
    }

    /// Name of the flow.proto `DropReason` value, e.g. `POLICY_DENIED`;
    /// `DROP_REASON_UNKNOWN` when unknown.
    pub fn flow_name(self) -> &'static str {
        self.info()
            .map_or("DROP_REASON_UNKNOWN", |info| info.flow_name)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

/// A trace observation point (subtype of a trace notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservationPoint(pub u8);

impl ObservationPoint {
    /// Delivered to a local endpoint.
    pub const TO_ENDPOINT: Self = Self(0);
    /// Redirected to a proxy.
    pub const TO_PROXY: Self = Self(1);
    /// Sent to the host.
    pub const TO_HOST: Self = Self(2);
    /// Passed to the node's network stack.
    pub const TO_STACK: Self = Self(3);
    /// Sent into the overlay.
    pub const TO_OVERLAY: Self = Self(4);
    /// Left a local endpoint.
    pub const FROM_ENDPOINT: Self = Self(5);
    /// Came from a proxy.
    pub const FROM_PROXY: Self = Self(6);
    /// Came from the host.
    pub const FROM_HOST: Self = Self(7);
    /// Came from the node's network stack.
    pub const FROM_STACK: Self = Self(8);
    /// Came from the overlay.
    pub const FROM_OVERLAY: Self = Self(9);
    /// Came from the network.
    pub const FROM_NETWORK: Self = Self(10);
    /// Sent to the network.
    pub const TO_NETWORK: Self = Self(11);

    /// Monitor name, e.g. `to-endpoint`; `unknown` when unknown.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "to-endpoint",
            1 => "to-proxy",
            2 => "to-host",
            3 => "to-stack",
            4 => "to-overlay",
            5 => "from-endpoint",
            6 => "from-proxy",
            7 => "from-host",
            8 => "from-stack",
            9 => "from-overlay",
            10 => "from-network",
            11 => "to-network",
            _ => "unknown",
        }
    }

    /// flow.proto `TraceObservationPoint` number (the datapath's 0 is
    /// `TO_ENDPOINT` = 101 there).
    pub fn flow_number(self) -> u32 {
        match self.0 {
            0 => 101,
            n @ 1..=11 => u32::from(n),
            _ => 0,
        }
    }
}

impl fmt::Display for ObservationPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Trace reason: the connection tracking state of a traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceReason(pub u8);

impl TraceReason {
    /// First packet of a connection.
    pub const NEW: Self = Self(0);
    /// Original direction of a known connection.
    pub const ESTABLISHED: Self = Self(1);
    /// Reply direction of a known connection.
    pub const REPLY: Self = Self(2);
    /// Related to a known connection.
    pub const RELATED: Self = Self(3);
    /// State not known at this observation point.
    pub const UNKNOWN: Self = Self(5);

    /// Monitor text: `new`, `established`, `reply`, `related`, `unknown`.
    pub fn name(self) -> &'static str {
        match self.0 & 0x7f {
            0 => "new",
            1 => "established",
            2 => "reply",
            3 => "related",
            _ => "unknown",
        }
    }

    /// Whether the packet belongs to the reply direction of a connection.
    pub fn is_reply(self) -> bool {
        self.0 & 0x7f == Self::REPLY.0
    }
}

impl fmt::Display for TraceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A socket translation point (`xlate_point` of a trace-sock notification,
/// flow.proto `SocketTranslationPoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XlatePoint(pub u8);

impl XlatePoint {
    /// The destination an application gave, before a forward translation.
    pub const PRE_DIRECTION_FWD: Self = Self(1);
    /// The destination after a forward translation (a backend).
    pub const POST_DIRECTION_FWD: Self = Self(2);
    /// The peer a socket received from, before a reverse translation.
    pub const PRE_DIRECTION_REV: Self = Self(3);
    /// The peer after a reverse translation (the frontend).
    pub const POST_DIRECTION_REV: Self = Self(4);

    /// Cilium's name, e.g. `pre-xlate-fwd`; `unknown` when unknown.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "pre-xlate-fwd",
            2 => "post-xlate-fwd",
            3 => "pre-xlate-rev",
            4 => "post-xlate-rev",
            _ => "unknown",
        }
    }

    /// Whether this point belongs to a reverse translation (recvmsg, getpeername).
    pub fn is_reverse(self) -> bool {
        self == Self::PRE_DIRECTION_REV || self == Self::POST_DIRECTION_REV
    }

    /// Whether the address at this point is the translated one.
    pub fn is_post(self) -> bool {
        self == Self::POST_DIRECTION_FWD || self == Self::POST_DIRECTION_REV
    }
}

impl fmt::Display for XlatePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The transport protocol of a translated socket, as a trace-sock
/// notification names it (Cilium's `enum l4_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockProtocol {
    /// TCP (`L4_PROTOCOL_TCP`, 1).
    Tcp,
    /// UDP (`L4_PROTOCOL_UDP`, 2).
    Udp,
    /// Any other value.
    Unknown(u8),
}

impl SockProtocol {
    /// The protocol a record's `l4_proto` byte names.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Tcp,
            2 => Self::Udp,
            other => Self::Unknown(other),
        }
    }

    /// Lowercase name as `cilium monitor` prints it: `tcp`, `udp`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// Direction bits of a metrics key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricDirection {
    /// Into an endpoint.
    Ingress,
    /// Out of an endpoint.
    Egress,
    /// Service translation.
    Service,
    /// Any other value.
    Unknown(u8),
}

impl MetricDirection {
    /// Decodes the two direction bits.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            1 => Self::Ingress,
            2 => Self::Egress,
            3 => Self::Service,
            other => Self::Unknown(other),
        }
    }

    /// The two direction bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::Ingress => 1,
            Self::Egress => 2,
            Self::Service => 3,
            Self::Unknown(bits) => bits & 0b11,
        }
    }

    /// Metric label text: `INGRESS`, `EGRESS`, `SERVICE`, `UNKNOWN`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingress => "INGRESS",
            Self::Egress => "EGRESS",
            Self::Service => "SERVICE",
            Self::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for MetricDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of the datapath source file with id `file` (`enum source_file` in
/// `bpf/lib/common.h`), as reported in drop notifications.
pub fn source_file_name(file: u8) -> Option<&'static str> {
    match file {
        1 => Some("bpf_host.c"),
        2 => Some("bpf_lxc.c"),
        3 => Some("bpf_overlay.c"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_read_like_cilium() {
        assert_eq!(DropReason(133).description(), "Policy denied");
        assert_eq!(DropReason(134).description(), "Invalid packet");
        assert_eq!(DropReason(132).description(), "Invalid source ip");
        assert_eq!(DropReason(139).description(), "Unsupported L3 protocol");
        assert_eq!(DropReason(140).description(), "Missed tail call");
        assert_eq!(DropReason(181).description(), "Policy denied by denylist");
        assert_eq!(DropReason::TTL_EXCEEDED.flow_name(), "TTL_EXCEEDED");
        assert_eq!(DropReason(134).flow_name(), "INVALID_PACKET_DROPPED");
        assert_eq!(DropReason(7).description(), "7");
        assert_eq!(DropReason(7).flow_name(), "DROP_REASON_UNKNOWN");
        assert_eq!(
            DropReason::TUNNEL_KEY.description(),
            "Error retrieving tunnel key"
        );
        assert_eq!(
            DropReason::INVALID_IDENTITY.description(),
            "Invalid identity"
        );
    }

    #[test]
    fn source_files_use_cilium_ids() {
        assert_eq!(source_file_name(2), Some("bpf_lxc.c"));
        assert_eq!(source_file_name(3), Some("bpf_overlay.c"));
        assert_eq!(source_file_name(9), None);
    }

    #[test]
    fn drop_reason_codes_are_unique() {
        for (i, a) in DROP_REASONS.iter().enumerate() {
            for b in &DROP_REASONS[i + 1..] {
                assert_ne!(a.code, b.code, "{} and {}", a.flow_name, b.flow_name);
            }
        }
    }

    #[test]
    fn observation_points_use_monitor_names() {
        assert_eq!(ObservationPoint::TO_ENDPOINT.to_string(), "to-endpoint");
        assert_eq!(ObservationPoint::TO_STACK.to_string(), "to-stack");
        assert_eq!(ObservationPoint::FROM_ENDPOINT.to_string(), "from-endpoint");
        assert_eq!(ObservationPoint::TO_ENDPOINT.flow_number(), 101);
        assert_eq!(ObservationPoint::FROM_ENDPOINT.flow_number(), 5);
        assert_eq!(ObservationPoint(200).name(), "unknown");
    }

    #[test]
    fn trace_reasons_name_ct_states() {
        assert_eq!(TraceReason::NEW.to_string(), "new");
        assert_eq!(TraceReason::REPLY.to_string(), "reply");
        assert!(TraceReason::REPLY.is_reply());
        assert!(!TraceReason::ESTABLISHED.is_reply());
    }

    #[test]
    fn xlate_points_use_cilium_names() {
        let names: Vec<&str> = (0..=5).map(|n| XlatePoint(n).name()).collect();
        assert_eq!(
            names,
            [
                "unknown",
                "pre-xlate-fwd",
                "post-xlate-fwd",
                "pre-xlate-rev",
                "post-xlate-rev",
                "unknown"
            ]
        );
        assert!(XlatePoint::POST_DIRECTION_REV.is_reverse());
        assert!(XlatePoint::POST_DIRECTION_REV.is_post());
        assert!(!XlatePoint::POST_DIRECTION_FWD.is_reverse());
        assert!(!XlatePoint::PRE_DIRECTION_FWD.is_post());
        assert_eq!(SockProtocol::from_code(1).name(), "tcp");
        assert_eq!(SockProtocol::from_code(2).name(), "udp");
        assert_eq!(SockProtocol::from_code(9), SockProtocol::Unknown(9));
    }

    #[test]
    fn metric_directions_round_trip() {
        for dir in [
            MetricDirection::Ingress,
            MetricDirection::Egress,
            MetricDirection::Service,
        ] {
            assert_eq!(MetricDirection::from_bits(dir.bits()), dir);
        }
        assert_eq!(MetricDirection::from_bits(0), MetricDirection::Unknown(0));
    }
}
