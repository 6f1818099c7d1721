//! Rust mirrors of the C structures shared with `bpf/` (map keys and values,
//! notification records) and the map names and flag values that go with them.
//!
//! Every mirror is `#[repr(C)]` (or `packed` where the C struct is), names its
//! C counterpart in its doc line, and has a layout test. `bpf/lib/layout.h`
//! asserts the same sizes and offsets at compile time on the C side, so a
//! change on either side fails the build or `cargo test` until both agree.

use std::{fmt, net::Ipv4Addr};

/// Directory under the bpffs root holding the node-wide pinned maps.
pub const GLOBALS_DIR: &str = "tc/globals";
/// Directory under the bpffs root holding per-endpoint pinned links.
pub const ENDPOINTS_DIR: &str = "endpoints";
/// Directory under the bpffs root holding per-device pinned links (the
/// tunnel device's `cil_from_overlay`).
pub const DEVICES_DIR: &str = "devices";

/// Name of the local endpoint map (`bpf/lib/maps.h`).
pub const LXC_MAP: &str = "cilium_lxc";
/// Name of the policy program array indexed by endpoint id (`bpf/lib/maps.h`).
pub const CALL_POLICY_MAP: &str = "cilium_call_policy";
/// Name of the TCP conntrack map (`bpf/lib/conntrack.h`).
pub const CT_TCP4_MAP: &str = "cilium_ct4_global";
/// Name of the non-TCP conntrack map (`bpf/lib/conntrack.h`).
pub const CT_ANY4_MAP: &str = "cilium_ct_any4_global";
/// Name of the per-CPU metrics map (`bpf/lib/metrics.h`).
pub const METRICS_MAP: &str = "cilium_metrics";
/// Name of the notification ring buffer (`bpf/lib/events.h`).
pub const EVENTS_MAP: &str = "cilium_events";
/// Name of the IP → identity / tunnel endpoint LPM trie (`bpf/lib/ipcache.h`).
pub const IPCACHE_MAP: &str = "cilium_ipcache";

/// ELF name of the per-endpoint policy map (`bpf/lib/policy.h`); each
/// endpoint's instance is pinned as [`policy_map_name`].
pub const POLICY_MAP: &str = "cilium_policy_v2";
/// Name of the per-endpoint enforcement switches, indexed by endpoint id
/// (`bpf/lib/policy.h`).
pub const POLICY_ENFORCEMENT_MAP: &str = "cilium_policy_enforcement";

/// An IPv4 address as a `__be32` global holds it: its in-memory bytes are
/// the address octets.
pub(crate) fn ipv4_be32(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The pinned name of endpoint `id`'s policy map, `cilium_policy_v2_00042`.
pub fn policy_map_name(id: u16) -> String {
    format!("{POLICY_MAP}_{id:05}")
}

/// `ENDPOINTS_MAP_SIZE`: capacity of `cilium_lxc`.
pub const ENDPOINTS_MAP_SIZE: u32 = 65535;
/// `POLICY_PROG_MAP_SIZE`: endpoint ids must be below this.
pub const POLICY_PROG_MAP_SIZE: u32 = 4096;
/// `POLICY_MAP_SIZE`: capacity of each endpoint's policy map.
pub const POLICY_MAP_SIZE: u32 = 16_384;
/// `POLICY_FULL_PREFIX`: key bits after the trie header.
pub const POLICY_FULL_PREFIX: u32 = 64;
/// `POLICY_IDENTITY_PREFIX`: prefix bits of the identity and direction,
/// which every policy entry has.
pub const POLICY_IDENTITY_PREFIX: u32 = 40;
/// `LPM_PROTO_PREFIX_BITS`: L4 prefix bits naming the protocol only.
pub const LPM_PROTO_PREFIX_BITS: u8 = 8;
/// `POLICY_F_INGRESS`: the endpoint enforces ingress policy.
pub const POLICY_F_INGRESS: u32 = 1;
/// `POLICY_F_EGRESS`: the endpoint enforces egress policy.
pub const POLICY_F_EGRESS: u32 = 2;
/// `CT_MAP_SIZE_TCP`: default capacity of `cilium_ct4_global`.
pub const CT_MAP_SIZE_TCP: u32 = 524_288;
/// `CT_MAP_SIZE_ANY`: default capacity of `cilium_ct_any4_global`.
pub const CT_MAP_SIZE_ANY: u32 = 262_144;
/// `IPCACHE_MAP_SIZE`: capacity of `cilium_ipcache` (allocated on use).
pub const IPCACHE_MAP_SIZE: u32 = 512_000;

/// `IPCACHE_STATIC_PREFIX_BITS`: key bits before the address (cluster id,
/// padding, family) that every ipcache prefix length includes.
pub const IPCACHE_STATIC_PREFIX_BITS: u32 = 32;
/// `FLAG_SKIP_TUNNEL`: never encapsulate towards this entry.
pub const FLAG_SKIP_TUNNEL: u8 = 1;
/// `FLAG_HAS_TUNNEL_EP`: the entry's tunnel endpoint is set.
pub const FLAG_HAS_TUNNEL_EP: u8 = 2;
/// `FLAG_IPV6_TUNNEL_EP`: the tunnel endpoint is IPv6 (not supported here).
pub const FLAG_IPV6_TUNNEL_EP: u8 = 4;
/// `FLAG_REMOTE_CLUSTER`: the entry lives in another cluster.
pub const FLAG_REMOTE_CLUSTER: u8 = 8;

/// `ROUTING_MODE_NATIVE`: traffic to remote pods goes to the node's stack.
pub const ROUTING_MODE_NATIVE: u32 = 0;
/// `ROUTING_MODE_TUNNEL`: traffic to remote pods is encapsulated.
pub const ROUTING_MODE_TUNNEL: u32 = 1;
/// `TUNNEL_ID_MASK`: the 24 bits of an identity the VNI carries.
pub const TUNNEL_ID_MASK: u32 = 0x00FF_FFFF;

/// `ENDPOINT_KEY_IPV4`: `endpoint_key.family` of an IPv4 key.
pub const ENDPOINT_KEY_IPV4: u8 = 1;
/// `ENDPOINT_F_HOST`: the address belongs to the host (router IP).
pub const ENDPOINT_F_HOST: u32 = 1;

/// `TUPLE_F_OUT`: conntrack entry created on egress from an endpoint.
pub const TUPLE_F_OUT: u8 = 0;
/// `TUPLE_F_IN`: conntrack entry created on ingress to an endpoint.
pub const TUPLE_F_IN: u8 = 1;
/// `TUPLE_F_RELATED`: entry for related traffic.
pub const TUPLE_F_RELATED: u8 = 2;
/// `TUPLE_F_SERVICE`: service (load-balancer) entry.
pub const TUPLE_F_SERVICE: u8 = 4;

/// `ct_entry` flag bit: the reply direction saw FIN or RST.
pub const CT_F_RX_CLOSING: u16 = 1 << 0;
/// `ct_entry` flag bit: the original direction saw FIN or RST.
pub const CT_F_TX_CLOSING: u16 = 1 << 1;
/// `ct_entry` flag bit: a TCP packet without SYN was seen.
pub const CT_F_SEEN_NON_SYN: u16 = 1 << 4;

/// `TRACE_PAYLOAD_LEN`: bytes of packet copied after a notification.
pub const TRACE_PAYLOAD_LEN: usize = 128;
/// `CILIUM_NOTIFY_DROP`: type of a drop notification.
pub const CILIUM_NOTIFY_DROP: u8 = 1;
/// `CILIUM_NOTIFY_TRACE`: type of a trace notification.
pub const CILIUM_NOTIFY_TRACE: u8 = 4;
/// `CILIUM_NOTIFY_POLICY_VERDICT`: type of a policy-verdict notification.
pub const CILIUM_NOTIFY_POLICY_VERDICT: u8 = 5;
/// `NOTIFY_POLICY_VER`: layout version of [`PolicyVerdictNotify`].
pub const NOTIFY_POLICY_VER: u16 = 1;
/// `NOTIFY_TRACE_VER`: layout version of [`TraceNotify`].
pub const NOTIFY_TRACE_VER: u16 = 1;
/// `NOTIFY_DROP_VER`: layout version of [`DropNotify`].
pub const NOTIFY_DROP_VER: u16 = 1;

/// `TRACE_AGGREGATE_NONE`: trace every packet at every observation point.
pub const TRACE_AGGREGATE_NONE: u32 = 0;
/// `TRACE_AGGREGATE_RX`: never trace `from-*` observation points.
pub const TRACE_AGGREGATE_RX: u32 = 1;
/// `TRACE_AGGREGATE_ACTIVE_CT`: Cilium's default "medium" aggregation.
pub const TRACE_AGGREGATE_ACTIVE_CT: u32 = 3;

/// `union macaddr`: a MAC address padded to 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacAddr {
    /// The six address bytes.
    pub addr: [u8; 6],
    /// Padding to the union's 8-byte size.
    pub pad: [u8; 2],
}

impl MacAddr {
    /// Wraps a six-byte address.
    pub fn new(addr: [u8; 6]) -> Self {
        Self { addr, pad: [0; 2] }
    }
}

/// `struct endpoint_key` (`bpf/lib/maps.h`): key of `cilium_lxc`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointKey {
    /// `union { ip4 | ip6 }`: an IPv4 address uses the first four bytes.
    pub ip: [u8; 16],
    /// `ENDPOINT_KEY_IPV4` or `ENDPOINT_KEY_IPV6`.
    pub family: u8,
    /// IPsec key index (unused here).
    pub key: u8,
    /// Cluster id (0 = local cluster).
    pub cluster_id: u8,
    /// Padding.
    pub pad: u8,
}

impl EndpointKey {
    /// The key for an IPv4 address.
    pub fn ipv4(ip: Ipv4Addr) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&ip.octets());
        Self {
            ip: bytes,
            family: ENDPOINT_KEY_IPV4,
            ..Self::default()
        }
    }

    /// The IPv4 address, when this is an IPv4 key.
    pub fn ipv4_addr(&self) -> Option<Ipv4Addr> {
        (self.family == ENDPOINT_KEY_IPV4)
            .then(|| Ipv4Addr::new(self.ip[0], self.ip[1], self.ip[2], self.ip[3]))
    }
}

/// `struct endpoint_info` (`bpf/lib/maps.h`): value of `cilium_lxc`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// ifindex of the endpoint's host-side veth.
    pub ifindex: u32,
    /// Unused (was the security label).
    pub unused: u16,
    /// Endpoint id, index into `cilium_call_policy`.
    pub lxc_id: u16,
    /// `ENDPOINT_F_*` flags.
    pub flags: u32,
    /// MAC of the pod-side interface.
    pub mac: MacAddr,
    /// MAC of the host-side veth.
    pub node_mac: MacAddr,
    /// Padding.
    pub pad: [u32; 4],
}

/// `struct ipcache_key` (`bpf/lib/ipcache.h`) after its leading
/// `struct bpf_lpm_trie_key_hdr`: key of `cilium_ipcache`.
///
/// aya's [`aya::maps::lpm_trie::Key`] supplies the prefix length, so the
/// whole 24-byte C key is `Key<IpcacheKey>`; offsets here are the C ones
/// minus 4. The prefix length counts [`IPCACHE_STATIC_PREFIX_BITS`] plus
/// the IP prefix length.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpcacheKey {
    /// Cluster id (0 = this cluster).
    pub cluster_id: u16,
    /// Padding.
    pub pad1: u8,
    /// `ENDPOINT_KEY_IPV4` or `ENDPOINT_KEY_IPV6`.
    pub family: u8,
    /// `union { ip4 | ip6 }`: an IPv4 address uses the first four bytes.
    pub ip: [u8; 16],
}

impl IpcacheKey {
    /// The key for an IPv4 prefix of this cluster (host bits must be zero).
    pub fn ipv4(network: Ipv4Addr) -> Self {
        let mut ip = [0u8; 16];
        ip[..4].copy_from_slice(&network.octets());
        Self {
            family: ENDPOINT_KEY_IPV4,
            ip,
            ..Self::default()
        }
    }

    /// The IPv4 address, when this is an IPv4 key.
    pub fn ipv4_addr(&self) -> Option<Ipv4Addr> {
        (self.family == ENDPOINT_KEY_IPV4)
            .then(|| Ipv4Addr::new(self.ip[0], self.ip[1], self.ip[2], self.ip[3]))
    }
}

/// `struct remote_endpoint_info` (`bpf/lib/ipcache.h`, Cilium's v1 value):
/// value of `cilium_ipcache`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteEndpointInfo {
    /// Security identity of the address.
    pub sec_identity: u32,
    /// Underlay IPv4 address of the node hosting it (network order bytes).
    pub tunnel_endpoint: [u8; 4],
    /// Node id (0 = none).
    pub node_id: u16,
    /// IPsec key index (0 = none).
    pub key: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
}

impl RemoteEndpointInfo {
    /// An address with `identity` and no tunnel endpoint (outside the
    /// cluster's nodes, or a CIDR).
    pub fn new(identity: u32) -> Self {
        Self {
            sec_identity: identity,
            ..Self::default()
        }
    }

    /// An address with `identity` hosted by the node at `tunnel_endpoint`.
    pub fn with_tunnel(identity: u32, tunnel_endpoint: Ipv4Addr) -> Self {
        Self {
            sec_identity: identity,
            tunnel_endpoint: tunnel_endpoint.octets(),
            flags: FLAG_HAS_TUNNEL_EP,
            ..Self::default()
        }
    }

    /// The hosting node's underlay address, when the entry has one.
    pub fn tunnel_endpoint(&self) -> Option<Ipv4Addr> {
        (self.flags & FLAG_HAS_TUNNEL_EP != 0).then(|| Ipv4Addr::from(self.tunnel_endpoint))
    }

    /// The flags as Cilium's CLI names them: `skiptunnel`, `hastunnel`,
    /// `ipv6tunnel`, `remotecluster`, comma-separated, or `<none>`.
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = [
            (FLAG_SKIP_TUNNEL, "skiptunnel"),
            (FLAG_HAS_TUNNEL_EP, "hastunnel"),
            (FLAG_IPV6_TUNNEL_EP, "ipv6tunnel"),
            (FLAG_REMOTE_CLUSTER, "remotecluster"),
        ]
        .iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
        if names.is_empty() {
            "<none>".to_string()
        } else {
            names.join(",")
        }
    }
}

/// `cilium bpf ipcache list`'s value column:
/// `identity=5 encryptkey=0 tunnelendpoint=172.18.0.12 flags=hastunnel`.
impl fmt::Display for RemoteEndpointInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "identity={} encryptkey={} tunnelendpoint={} flags={}",
            self.sec_identity,
            self.key,
            Ipv4Addr::from(self.tunnel_endpoint),
            self.flag_names()
        )
    }
}

/// `struct ipv4_ct_tuple` (`bpf/lib/conntrack.h`, packed): conntrack key.
///
/// Addresses and ports are in network byte order, as the creating packet
/// carried them (see the key convention in `conntrack.h`).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ipv4CtTuple {
    /// Destination address of the creating packet.
    pub daddr: [u8; 4],
    /// Source address of the creating packet.
    pub saddr: [u8; 4],
    /// Destination port (network order), or ICMP echo id of a reply.
    pub dport: u16,
    /// Source port (network order), or ICMP echo id of a request.
    pub sport: u16,
    /// IP protocol number.
    pub nexthdr: u8,
    /// `TUPLE_F_*` flags.
    pub flags: u8,
}

impl Ipv4CtTuple {
    /// Source address.
    pub fn source(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.saddr)
    }

    /// Destination address.
    pub fn destination(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.daddr)
    }

    /// Source port in host byte order.
    pub fn source_port(&self) -> u16 {
        u16::from_be(self.sport)
    }

    /// Destination port in host byte order.
    pub fn destination_port(&self) -> u16 {
        u16::from_be(self.dport)
    }
}

/// `struct ct_entry` (`bpf/lib/conntrack.h`, Cilium 1.14–1.15 layout):
/// conntrack value.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// Packets in the reply direction.
    pub rx_packets: u64,
    /// Bytes in the reply direction.
    pub rx_bytes: u64,
    /// Packets in the original direction.
    pub tx_packets: u64,
    /// Bytes in the original direction.
    pub tx_bytes: u64,
    /// Expiry, in CLOCK_MONOTONIC seconds.
    pub lifetime: u32,
    /// Bitfield word: `CT_F_*`.
    pub flags: u16,
    /// Reverse NAT index (0 = none).
    pub rev_nat_index: u16,
    /// ifindex (unused here).
    pub ifindex: u16,
    /// TCP flags seen in the original direction.
    pub tx_flags_seen: u8,
    /// TCP flags seen in the reply direction.
    pub rx_flags_seen: u8,
    /// Security identity of the connection's source.
    pub src_sec_id: u32,
    /// Last trace report of the original direction (monotonic seconds).
    pub last_tx_report: u32,
    /// Last trace report of the reply direction (monotonic seconds).
    pub last_rx_report: u32,
}

impl CtEntry {
    /// Whether the entry's lifetime ended before `now` (monotonic seconds): what the
    /// conntrack GC deletes.
    pub fn is_expired(&self, now: u32) -> bool {
        self.lifetime < now
    }
}

/// `struct metrics_key` (`bpf/lib/metrics.h`): key of `cilium_metrics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricsKey {
    /// 0 = forwarded, otherwise the positive drop code.
    pub reason: u8,
    /// Bitfield byte: direction in the low two bits (1 ingress, 2 egress, 3 service).
    pub dir: u8,
    /// Reserved.
    pub reserved: [u16; 3],
}

impl MetricsKey {
    /// The traffic direction (low two bits of the bitfield byte).
    pub fn direction(&self) -> u8 {
        self.dir & 0b11
    }
}

/// `struct metrics_value` (`bpf/lib/metrics.h`): one CPU's counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsValue {
    /// Packets.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `NOTIFY_CAPTURE_HDR` (`bpf/lib/events.h`): header of every notification.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyCaptureHdr {
    /// `CILIUM_NOTIFY_*`.
    pub kind: u8,
    /// Observation point (trace) or drop reason (drop).
    pub subtype: u8,
    /// Endpoint id of the reporting program.
    pub source: u16,
    /// Flow hash of the packet.
    pub hash: u32,
    /// Length of the packet.
    pub len_orig: u32,
    /// Bytes of the packet captured after the record.
    pub len_cap: u16,
    /// Layout version of the record.
    pub version: u16,
}

/// `struct trace_notify` (`bpf/lib/trace.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceNotify {
    /// Common header.
    pub hdr: NotifyCaptureHdr,
    /// Source security identity.
    pub src_label: u32,
    /// Destination security identity (0 = unknown).
    pub dst_label: u32,
    /// Destination endpoint id (0 = none).
    pub dst_id: u16,
    /// Trace reason (connection tracking state).
    pub reason: u8,
    /// Flags (none defined for IPv4 yet).
    pub flags: u8,
    /// Interface the packet goes to (0 = unknown).
    pub ifindex: u32,
    /// `union { orig_ip4 | orig_ip6 }`: address before translation.
    pub orig_ip: [u8; 16],
}

/// `struct drop_notify` (`bpf/lib/drop.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropNotify {
    /// Common header.
    pub hdr: NotifyCaptureHdr,
    /// Source security identity (0 = unknown).
    pub src_label: u32,
    /// Destination security identity (0 = unknown).
    pub dst_label: u32,
    /// Destination endpoint id (0 = unknown).
    pub dst_id: u32,
    /// Source line of the drop.
    pub line: u16,
    /// Source file id of the drop.
    pub file: u8,
    /// Extended error (0 = none).
    pub ext_error: i8,
    /// Interface the packet was seen on.
    pub ifindex: u32,
}

/// `struct policy_key` (`bpf/lib/policy.h`) after its leading
/// `struct bpf_lpm_trie_key_hdr`: key of an endpoint's policy map (offsets
/// here are the C ones minus 4; aya's `Key` supplies the prefix length).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    /// Remote security identity, 0 = any.
    pub sec_label: u32,
    /// Bit 0: egress (1) or ingress (0); the other bits are padding.
    pub egress: u8,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    /// Destination port, network byte order.
    pub dport: u16,
}

/// `struct policy_entry` (`bpf/lib/policy.h`): value of a policy map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyEntry {
    /// L7 proxy port, network byte order (0 = none; no proxy exists yet).
    pub proxy_port: u16,
    /// Bit 0 `deny`, bits 1-2 reserved, bits 3-7 `lpm_prefix_length` (the
    /// L4 bits of the entry's prefix).
    pub flags: u8,
    /// Bits 0-6 `auth_type`, bit 7 `has_explicit_auth_type`.
    pub auth: u8,
    /// Precedence between the identity and any-identity matches.
    pub proxy_port_priority: u8,
    /// Padding.
    pub pad1: u8,
    /// Padding.
    pub pad2: u16,
    /// Opaque rule cookie, reported in policy verdicts.
    pub cookie: u32,
}

impl PolicyEntry {
    /// An allow entry.
    pub fn allow() -> Self {
        Self::default()
    }

    /// An explicit deny entry.
    pub fn deny() -> Self {
        Self {
            flags: 1,
            ..Self::default()
        }
    }

    /// Whether this entry denies.
    pub fn is_deny(&self) -> bool {
        self.flags & 1 != 0
    }

    /// `lpm_prefix_length`: L4 bits of the entry's prefix (0..=24).
    pub fn lpm_prefix_length(&self) -> u8 {
        self.flags >> 3
    }

    /// This entry with `lpm_prefix_length` set to `bits` (0..=24).
    pub fn with_lpm_prefix_length(mut self, bits: u8) -> Self {
        self.flags = (self.flags & 0b111) | ((bits & 0x1f) << 3);
        self
    }
}

/// `struct policy_verdict_notify` (`bpf/lib/policy.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyVerdictNotify {
    /// Common header (`source` = the endpoint whose policy decided).
    pub hdr: NotifyCaptureHdr,
    /// Identity of the other end.
    pub remote_label: u32,
    /// 0 = allowed, else the negative drop reason.
    pub verdict: i32,
    /// Destination port (host byte order, 0 for portless protocols).
    pub dst_port: u16,
    /// Source port (host byte order, 0 for portless protocols).
    pub src_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// 1 = ingress, 2 = egress.
    pub dir: u8,
    /// `POLICY_MATCH_*`.
    pub match_type: u8,
    /// 1 when audit mode turned a deny into an allow (never, yet).
    pub audited: u8,
    /// Auth type of the deciding entry.
    pub auth_type: u8,
    /// Padding.
    pub pad: [u8; 3],
    /// Cookie of the deciding entry.
    pub cookie: u32,
}

// SAFETY: all mirrors are `#[repr(C)]` (or packed) structs of integers and
// integer arrays, laid out without implicit padding (checked by the layout
// tests below), so every bit pattern is a valid value.
unsafe impl aya::Pod for MacAddr {}
// SAFETY: see above.
unsafe impl aya::Pod for EndpointKey {}
// SAFETY: see above.
unsafe impl aya::Pod for EndpointInfo {}
// SAFETY: see above.
unsafe impl aya::Pod for IpcacheKey {}
// SAFETY: see above.
unsafe impl aya::Pod for RemoteEndpointInfo {}
// SAFETY: see above.
unsafe impl aya::Pod for Ipv4CtTuple {}
// SAFETY: see above.
unsafe impl aya::Pod for CtEntry {}
// SAFETY: see above.
unsafe impl aya::Pod for MetricsKey {}
// SAFETY: see above.
unsafe impl aya::Pod for MetricsValue {}
// SAFETY: see above.
unsafe impl aya::Pod for NotifyCaptureHdr {}
// SAFETY: see above.
unsafe impl aya::Pod for TraceNotify {}
// SAFETY: see above.
unsafe impl aya::Pod for DropNotify {}
// SAFETY: see above.
unsafe impl aya::Pod for PolicyKey {}
// SAFETY: see above.
unsafe impl aya::Pod for PolicyEntry {}
// SAFETY: see above.
unsafe impl aya::Pod for PolicyVerdictNotify {}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn endpoint_key_matches_c() {
        assert_eq!(size_of::<EndpointKey>(), 20);
        assert_eq!(offset_of!(EndpointKey, ip), 0);
        assert_eq!(offset_of!(EndpointKey, family), 16);
        assert_eq!(offset_of!(EndpointKey, key), 17);
        assert_eq!(offset_of!(EndpointKey, cluster_id), 18);
        assert_eq!(offset_of!(EndpointKey, pad), 19);
    }

    #[test]
    fn endpoint_info_matches_c() {
        assert_eq!(size_of::<MacAddr>(), 8);
        assert_eq!(size_of::<EndpointInfo>(), 44);
        assert_eq!(offset_of!(EndpointInfo, ifindex), 0);
        assert_eq!(offset_of!(EndpointInfo, unused), 4);
        assert_eq!(offset_of!(EndpointInfo, lxc_id), 6);
        assert_eq!(offset_of!(EndpointInfo, flags), 8);
        assert_eq!(offset_of!(EndpointInfo, mac), 12);
        assert_eq!(offset_of!(EndpointInfo, node_mac), 20);
        assert_eq!(offset_of!(EndpointInfo, pad), 28);
    }

    #[test]
    fn ipcache_key_matches_c() {
        // The C key is 24 bytes: a u32 prefix length, then these 20.
        assert_eq!(size_of::<aya::maps::lpm_trie::Key<IpcacheKey>>(), 24);
        const LPM_HDR: usize = size_of::<u32>();
        assert_eq!(size_of::<IpcacheKey>() + LPM_HDR, 24);
        assert_eq!(offset_of!(IpcacheKey, cluster_id) + LPM_HDR, 4);
        assert_eq!(offset_of!(IpcacheKey, pad1) + LPM_HDR, 6);
        assert_eq!(offset_of!(IpcacheKey, family) + LPM_HDR, 7);
        assert_eq!(offset_of!(IpcacheKey, ip) + LPM_HDR, 8);
    }

    #[test]
    fn remote_endpoint_info_matches_c() {
        assert_eq!(size_of::<RemoteEndpointInfo>(), 12);
        assert_eq!(offset_of!(RemoteEndpointInfo, sec_identity), 0);
        assert_eq!(offset_of!(RemoteEndpointInfo, tunnel_endpoint), 4);
        assert_eq!(offset_of!(RemoteEndpointInfo, node_id), 8);
        assert_eq!(offset_of!(RemoteEndpointInfo, key), 10);
        assert_eq!(offset_of!(RemoteEndpointInfo, flags), 11);
    }

    #[test]
    fn ipcache_values_read_like_cilium_bpf_ipcache_list() {
        let remote = RemoteEndpointInfo::with_tunnel(5, Ipv4Addr::new(172, 18, 0, 12));
        assert_eq!(
            remote.to_string(),
            "identity=5 encryptkey=0 tunnelendpoint=172.18.0.12 flags=hastunnel"
        );
        assert_eq!(
            remote.tunnel_endpoint(),
            Some(Ipv4Addr::new(172, 18, 0, 12))
        );
        let world = RemoteEndpointInfo::new(2);
        assert_eq!(
            world.to_string(),
            "identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"
        );
        assert_eq!(world.tunnel_endpoint(), None);
        let skip = RemoteEndpointInfo {
            flags: FLAG_SKIP_TUNNEL | FLAG_HAS_TUNNEL_EP | FLAG_REMOTE_CLUSTER,
            ..remote
        };
        assert_eq!(skip.flag_names(), "skiptunnel,hastunnel,remotecluster");
    }

    #[test]
    fn ipcache_key_round_trips_ipv4() {
        let key = IpcacheKey::ipv4(Ipv4Addr::new(10, 0, 2, 0));
        assert_eq!(key.ipv4_addr(), Some(Ipv4Addr::new(10, 0, 2, 0)));
        assert_eq!(key.family, ENDPOINT_KEY_IPV4);
        assert_eq!(key.cluster_id, 0);
        assert_eq!(&key.ip[4..], &[0u8; 12]);
    }

    #[test]
    fn ct_tuple_matches_c() {
        assert_eq!(size_of::<Ipv4CtTuple>(), 14);
        assert_eq!(offset_of!(Ipv4CtTuple, daddr), 0);
        assert_eq!(offset_of!(Ipv4CtTuple, saddr), 4);
        assert_eq!(offset_of!(Ipv4CtTuple, dport), 8);
        assert_eq!(offset_of!(Ipv4CtTuple, sport), 10);
        assert_eq!(offset_of!(Ipv4CtTuple, nexthdr), 12);
        assert_eq!(offset_of!(Ipv4CtTuple, flags), 13);
    }

    #[test]
    fn ct_entry_matches_c() {
        assert_eq!(size_of::<CtEntry>(), 56);
        assert_eq!(offset_of!(CtEntry, rx_packets), 0);
        assert_eq!(offset_of!(CtEntry, rx_bytes), 8);
        assert_eq!(offset_of!(CtEntry, tx_packets), 16);
        assert_eq!(offset_of!(CtEntry, tx_bytes), 24);
        assert_eq!(offset_of!(CtEntry, lifetime), 32);
        assert_eq!(offset_of!(CtEntry, flags), 36);
        assert_eq!(offset_of!(CtEntry, rev_nat_index), 38);
        assert_eq!(offset_of!(CtEntry, ifindex), 40);
        assert_eq!(offset_of!(CtEntry, tx_flags_seen), 42);
        assert_eq!(offset_of!(CtEntry, rx_flags_seen), 43);
        assert_eq!(offset_of!(CtEntry, src_sec_id), 44);
        assert_eq!(offset_of!(CtEntry, last_tx_report), 48);
        assert_eq!(offset_of!(CtEntry, last_rx_report), 52);
    }

    #[test]
    fn metrics_match_c() {
        assert_eq!(size_of::<MetricsKey>(), 8);
        assert_eq!(offset_of!(MetricsKey, reason), 0);
        assert_eq!(offset_of!(MetricsKey, dir), 1);
        assert_eq!(offset_of!(MetricsKey, reserved), 2);
        assert_eq!(size_of::<MetricsValue>(), 16);
        assert_eq!(offset_of!(MetricsValue, count), 0);
        assert_eq!(offset_of!(MetricsValue, bytes), 8);
    }

    #[test]
    fn notify_header_matches_c() {
        assert_eq!(size_of::<NotifyCaptureHdr>(), 16);
        assert_eq!(offset_of!(NotifyCaptureHdr, kind), 0);
        assert_eq!(offset_of!(NotifyCaptureHdr, subtype), 1);
        assert_eq!(offset_of!(NotifyCaptureHdr, source), 2);
        assert_eq!(offset_of!(NotifyCaptureHdr, hash), 4);
        assert_eq!(offset_of!(NotifyCaptureHdr, len_orig), 8);
        assert_eq!(offset_of!(NotifyCaptureHdr, len_cap), 12);
        assert_eq!(offset_of!(NotifyCaptureHdr, version), 14);
    }

    #[test]
    fn trace_notify_matches_c() {
        assert_eq!(size_of::<TraceNotify>(), 48);
        assert_eq!(offset_of!(TraceNotify, hdr), 0);
        assert_eq!(offset_of!(TraceNotify, src_label), 16);
        assert_eq!(offset_of!(TraceNotify, dst_label), 20);
        assert_eq!(offset_of!(TraceNotify, dst_id), 24);
        assert_eq!(offset_of!(TraceNotify, reason), 26);
        assert_eq!(offset_of!(TraceNotify, flags), 27);
        assert_eq!(offset_of!(TraceNotify, ifindex), 28);
        assert_eq!(offset_of!(TraceNotify, orig_ip), 32);
    }

    #[test]
    fn drop_notify_matches_c() {
        assert_eq!(size_of::<DropNotify>(), 36);
        assert_eq!(offset_of!(DropNotify, hdr), 0);
        assert_eq!(offset_of!(DropNotify, src_label), 16);
        assert_eq!(offset_of!(DropNotify, dst_label), 20);
        assert_eq!(offset_of!(DropNotify, dst_id), 24);
        assert_eq!(offset_of!(DropNotify, line), 28);
        assert_eq!(offset_of!(DropNotify, file), 30);
        assert_eq!(offset_of!(DropNotify, ext_error), 31);
        assert_eq!(offset_of!(DropNotify, ifindex), 32);
    }

    #[test]
    fn policy_key_and_entry_match_c() {
        // C offsets minus the 4-byte trie header.
        assert_eq!(size_of::<PolicyKey>(), 8);
        assert_eq!(offset_of!(PolicyKey, sec_label), 0);
        assert_eq!(offset_of!(PolicyKey, egress), 4);
        assert_eq!(offset_of!(PolicyKey, protocol), 5);
        assert_eq!(offset_of!(PolicyKey, dport), 6);
        assert_eq!(POLICY_FULL_PREFIX as usize, 8 * size_of::<PolicyKey>());
        assert_eq!(size_of::<PolicyEntry>(), 12);
        assert_eq!(offset_of!(PolicyEntry, flags), 2);
        assert_eq!(offset_of!(PolicyEntry, auth), 3);
        assert_eq!(offset_of!(PolicyEntry, proxy_port_priority), 4);
        assert_eq!(offset_of!(PolicyEntry, pad1), 5);
        assert_eq!(offset_of!(PolicyEntry, pad2), 6);
        assert_eq!(offset_of!(PolicyEntry, cookie), 8);
    }

    #[test]
    fn policy_entry_bitfields_follow_the_c_layout() {
        let entry = PolicyEntry::deny().with_lpm_prefix_length(24);
        assert!(entry.is_deny());
        assert_eq!(entry.lpm_prefix_length(), 24);
        assert_eq!(entry.flags, 1 | (24 << 3));
        assert!(!PolicyEntry::allow().with_lpm_prefix_length(8).is_deny());
    }

    #[test]
    fn policy_verdict_notify_matches_c() {
        assert_eq!(size_of::<PolicyVerdictNotify>(), 40);
        assert_eq!(offset_of!(PolicyVerdictNotify, remote_label), 16);
        assert_eq!(offset_of!(PolicyVerdictNotify, verdict), 20);
        assert_eq!(offset_of!(PolicyVerdictNotify, dst_port), 24);
        assert_eq!(offset_of!(PolicyVerdictNotify, src_port), 26);
        assert_eq!(offset_of!(PolicyVerdictNotify, proto), 28);
        assert_eq!(offset_of!(PolicyVerdictNotify, dir), 29);
        assert_eq!(offset_of!(PolicyVerdictNotify, match_type), 30);
        assert_eq!(offset_of!(PolicyVerdictNotify, audited), 31);
        assert_eq!(offset_of!(PolicyVerdictNotify, auth_type), 32);
        assert_eq!(offset_of!(PolicyVerdictNotify, cookie), 36);
    }

    #[test]
    fn policy_map_names_have_five_digit_ids() {
        assert_eq!(policy_map_name(42), "cilium_policy_v2_00042");
    }

    #[test]
    fn endpoint_key_round_trips_ipv4() {
        let key = EndpointKey::ipv4(Ipv4Addr::new(10, 0, 1, 7));
        assert_eq!(key.ipv4_addr(), Some(Ipv4Addr::new(10, 0, 1, 7)));
        assert_eq!(&key.ip[4..], &[0u8; 12]);
    }
}
