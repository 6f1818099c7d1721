//! Decoding of `cilium_events` ring buffer records into typed datapath
//! events. Records come from the kernel but are treated as untrusted bytes:
//! short, unknown or inconsistent input is an error, never a panic.

use std::net::{Ipv4Addr, SocketAddrV4};

use thiserror::Error;

use crate::abi::{
    DropNotify, NotifyCaptureHdr, PolicyVerdictNotify, TraceNotify, CILIUM_NOTIFY_DROP,
    CILIUM_NOTIFY_POLICY_VERDICT, CILIUM_NOTIFY_TRACE, NOTIFY_DROP_VER, NOTIFY_POLICY_VER,
    NOTIFY_TRACE_VER,
};
use crate::codes::{DropReason, ObservationPoint, SockProtocol, TraceReason, XlatePoint};

/// `CILIUM_NOTIFY_TRACE_SOCK`: type of a socket translation notification.
pub const CILIUM_NOTIFY_TRACE_SOCK: u8 = 7;

/// `TRACE_SOCK_FLAG_IPV6`: a trace-sock record's addresses are IPv6.
pub const TRACE_SOCK_FLAG_IPV6: u8 = 0x01;

/// `struct trace_sock_notify` (`bpf/lib/trace_sock.h`): Cilium's 40-byte
/// layout followed by this datapath's extension. Fields named `*_port` and
/// `rev_nat` are in network order, as the kernel wrote them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSockNotify {
    /// [`CILIUM_NOTIFY_TRACE_SOCK`].
    pub kind: u8,
    /// [`XlatePoint`] number.
    pub xlate_point: u8,
    /// [`SockProtocol`] code.
    pub l4_proto: u8,
    /// [`TRACE_SOCK_FLAG_IPV6`].
    pub flags: u8,
    /// Port after the translation.
    pub dst_port: [u8; 2],
    /// Zero.
    pub pad1: u16,
    /// `bpf_get_socket_cookie()`.
    pub sock_cookie: u64,
    /// `bpf_get_current_cgroup_id()`.
    pub cgroup_id: u64,
    /// Address after the translation (IPv4 in the first four bytes).
    pub dst_ip: [u8; 16],
    /// Address before the translation.
    pub orig_ip4: [u8; 4],
    /// Port before the translation.
    pub orig_port: [u8; 2],
    /// Reverse-NAT index of the frontend.
    pub rev_nat: [u8; 2],
    /// The socket's own address (0 while unbound).
    pub src_ip4: [u8; 4],
    /// The socket's own port (0 while unbound).
    pub src_port: [u8; 2],
    /// Zero.
    pub pad2: u16,
    /// `bpf_get_netns_cookie()`: the socket's network namespace.
    pub netns_cookie: u64,
}

// SAFETY: repr(C) with only integer fields and arrays and no implicit padding
// (the layout test checks the size), so every bit pattern is valid.
unsafe impl aya::Pod for TraceSockNotify {}

/// Why a record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventParseError {
    /// The record is shorter than the structure its type announces.
    #[error("{kind} record of {len} bytes is shorter than its {needed}-byte header")]
    Truncated {
        /// Record kind being decoded.
        kind: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The record type is not one this datapath emits.
    #[error("unknown notification type {kind} in a {len}-byte record")]
    UnknownType {
        /// The type byte.
        kind: u8,
        /// Record length.
        len: usize,
    },
    /// The record uses an address family this datapath does not report.
    #[error("{kind} record has IPv6 addresses; this datapath decodes IPv4 only")]
    Ipv6Unsupported {
        /// Record kind.
        kind: &'static str,
    },
    /// The layout version is not the one this crate understands.
    #[error("{kind} record has layout version {version}, expected {expected}")]
    UnsupportedVersion {
        /// Record kind.
        kind: &'static str,
        /// Version found.
        version: u16,
        /// Version understood.
        expected: u16,
    },
    /// The captured length points past the end of the record.
    #[error(
        "{kind} record claims {len_cap} captured bytes but only {available} follow the header"
    )]
    CaptureOverrun {
        /// Record kind.
        kind: &'static str,
        /// Captured length claimed.
        len_cap: u16,
        /// Bytes present after the header.
        available: usize,
    },
}

/// Header fields common to every notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Endpoint id of the program that reported the packet.
    pub source_endpoint: u16,
    /// Flow hash of the packet.
    pub hash: u32,
    /// Length of the packet.
    pub len_orig: u32,
}

/// A packet seen at an observation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Common header.
    pub header: EventHeader,
    /// Where the packet was seen.
    pub observation_point: ObservationPoint,
    /// Connection tracking state.
    pub reason: TraceReason,
    /// Source security identity.
    pub src_identity: u32,
    /// Destination security identity (0 = unknown).
    pub dst_identity: u32,
    /// Destination endpoint id (0 = none).
    pub dst_endpoint: u16,
    /// Interface the packet goes to (0 = unknown).
    pub ifindex: u32,
    /// Trace flags.
    pub flags: u8,
    /// Address before translation (all zero when none).
    pub orig_ip: [u8; 16],
    /// The first bytes of the packet, starting with the Ethernet header.
    pub payload: Vec<u8>,
}

/// A dropped packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropEvent {
    /// Common header.
    pub header: EventHeader,
    /// Why it was dropped.
    pub reason: DropReason,
    /// Source security identity (0 = unknown).
    pub src_identity: u32,
    /// Destination security identity (0 = unknown).
    pub dst_identity: u32,
    /// Destination endpoint id (0 = unknown).
    pub dst_endpoint: u32,
    /// Source line of the drop in the datapath.
    pub line: u16,
    /// Source file id of the drop (see [`crate::codes::source_file_name`]).
    pub file: u8,
    /// Extended error code.
    pub ext_error: i8,
    /// Interface the packet was seen on.
    pub ifindex: u32,
    /// The first bytes of the packet, starting with the Ethernet header.
    pub payload: Vec<u8>,
}

/// The policy decision on a new connection (`CILIUM_NOTIFY_POLICY_VERDICT`).
///
/// [`DatapathEvent::parse`] yields it as [`DatapathEvent::PolicyVerdict`];
/// [`PolicyVerdictEvent::parse`] decodes a record known to be of this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVerdictEvent {
    /// Common header (`source_endpoint` = the endpoint whose policy decided).
    pub header: EventHeader,
    /// Identity of the other end.
    pub remote_identity: u32,
    /// `None` when allowed, else why the connection was dropped.
    pub drop_reason: Option<DropReason>,
    /// Destination port (0 for portless protocols).
    pub dst_port: u16,
    /// Source port (0 for portless protocols).
    pub src_port: u16,
    /// IP protocol.
    pub protocol: u8,
    /// True for the endpoint's egress, false for its ingress.
    pub egress: bool,
    /// `POLICY_MATCH_*` of the deciding entry (0 = none matched).
    pub match_type: u8,
    /// Audit mode allowed what policy denies.
    pub audited: bool,
    /// Auth type of the deciding entry.
    pub auth_type: u8,
    /// Cookie of the deciding entry.
    pub cookie: u32,
    /// The first bytes of the packet, starting with the Ethernet header.
    pub payload: Vec<u8>,
}

impl PolicyVerdictEvent {
    /// Decodes one ring buffer record of type `CILIUM_NOTIFY_POLICY_VERDICT`.
    pub fn parse(record: &[u8]) -> Result<Self, EventParseError> {
        let (msg, rest) = read_struct::<PolicyVerdictNotify>(record, "policy-verdict")?;
        if msg.hdr.kind != CILIUM_NOTIFY_POLICY_VERDICT {
            return Err(EventParseError::UnknownType {
                kind: msg.hdr.kind,
                len: record.len(),
            });
        }
        let (header, payload) = check_header(&msg.hdr, rest, "policy-verdict", NOTIFY_POLICY_VER)?;
        Ok(Self {
            header,
            remote_identity: msg.remote_label,
            drop_reason: (msg.verdict < 0)
                .then(|| DropReason(u8::try_from(msg.verdict.unsigned_abs()).unwrap_or(0))),
            dst_port: msg.dst_port,
            src_port: msg.src_port,
            protocol: msg.proto,
            egress: msg.dir == 2,
            match_type: msg.match_type,
            audited: msg.audited != 0,
            auth_type: msg.auth_type,
            cookie: msg.cookie,
            payload,
        })
    }
}

/// A socket address socket LB translated (`CILIUM_NOTIFY_TRACE_SOCK`): a
/// connect or send to a service frontend pointed at a backend (forward), or
/// a backend shown to the application as the frontend (reverse).
///
/// The datapath reports each translation once, at its post point, with the
/// address on both sides of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSockEvent {
    /// Where the translation was observed (post-xlate-fwd or post-xlate-rev).
    pub xlate_point: XlatePoint,
    /// Transport protocol of the socket.
    pub protocol: SockProtocol,
    /// The socket's cookie.
    pub socket_cookie: u64,
    /// The cgroup of the process that made the call.
    pub cgroup_id: u64,
    /// The address after the translation: the backend (forward) or the
    /// frontend (reverse).
    pub address: SocketAddrV4,
    /// The address before it: the frontend (forward) or the backend (reverse).
    pub orig_address: SocketAddrV4,
    /// Reverse-NAT index of the frontend; 0 when not reported.
    pub rev_nat: u16,
    /// The socket's own address; unspecified while the socket is not bound
    /// (a first connect() runs before the kernel picks one).
    pub local_address: SocketAddrV4,
    /// Cookie of the socket's network namespace (`SO_NETNS_COOKIE` of any
    /// socket in it): names the client pod while the socket has no address.
    pub netns_cookie: u64,
}

impl TraceSockEvent {
    /// The service frontend the translation is about.
    pub fn frontend(&self) -> SocketAddrV4 {
        if self.address_is_frontend() {
            self.address
        } else {
            self.orig_address
        }
    }

    /// The backend the translation is about.
    pub fn backend(&self) -> SocketAddrV4 {
        if self.address_is_frontend() {
            self.orig_address
        } else {
            self.address
        }
    }

    /// Whether [`address`](Self::address) is the frontend: before a forward translation
    /// and after a reverse one.
    fn address_is_frontend(&self) -> bool {
        self.xlate_point == XlatePoint::PRE_DIRECTION_FWD
            || self.xlate_point == XlatePoint::POST_DIRECTION_REV
    }

    /// Decodes one ring buffer record of type `CILIUM_NOTIFY_TRACE_SOCK`.
    pub fn parse(record: &[u8]) -> Result<Self, EventParseError> {
        let (msg, _) = read_struct::<TraceSockNotify>(record, "trace-sock")?;
        if msg.kind != CILIUM_NOTIFY_TRACE_SOCK {
            return Err(EventParseError::UnknownType {
                kind: msg.kind,
                len: record.len(),
            });
        }
        if msg.flags & TRACE_SOCK_FLAG_IPV6 != 0 {
            return Err(EventParseError::Ipv6Unsupported { kind: "trace-sock" });
        }
        let v4 = |ip: [u8; 4], port: [u8; 2]| {
            SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_be_bytes(port))
        };
        let [a, b, c, d, ..] = msg.dst_ip;
        Ok(Self {
            xlate_point: XlatePoint(msg.xlate_point),
            protocol: SockProtocol::from_code(msg.l4_proto),
            socket_cookie: msg.sock_cookie,
            cgroup_id: msg.cgroup_id,
            address: v4([a, b, c, d], msg.dst_port),
            orig_address: v4(msg.orig_ip4, msg.orig_port),
            rev_nat: u16::from_be_bytes(msg.rev_nat),
            local_address: v4(msg.src_ip4, msg.src_port),
            netns_cookie: msg.netns_cookie,
        })
    }
}

/// One notification from the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatapathEvent {
    /// A trace notification.
    Trace(TraceEvent),
    /// A drop notification.
    Drop(DropEvent),
    /// A policy verdict on a new connection.
    PolicyVerdict(PolicyVerdictEvent),
    /// A socket address translated by socket LB.
    TraceSock(TraceSockEvent),
}

impl DatapathEvent {
    /// Decodes one ring buffer record.
    pub fn parse(record: &[u8]) -> Result<Self, EventParseError> {
        let Some(&kind) = record.first() else {
            return Err(EventParseError::Truncated {
                kind: "notification",
                len: 0,
                needed: size_of::<NotifyCaptureHdr>(),
            });
        };
        match kind {
            CILIUM_NOTIFY_TRACE => parse_trace(record).map(Self::Trace),
            CILIUM_NOTIFY_DROP => parse_drop(record).map(Self::Drop),
            CILIUM_NOTIFY_POLICY_VERDICT => {
                PolicyVerdictEvent::parse(record).map(Self::PolicyVerdict)
            }
            CILIUM_NOTIFY_TRACE_SOCK => TraceSockEvent::parse(record).map(Self::TraceSock),
            kind => Err(EventParseError::UnknownType {
                kind,
                len: record.len(),
            }),
        }
    }

    /// The common header of a packet notification; `None` for a socket
    /// translation, which has no packet.
    pub fn header(&self) -> Option<&EventHeader> {
        match self {
            Self::Trace(trace) => Some(&trace.header),
            Self::Drop(drop) => Some(&drop.header),
            Self::PolicyVerdict(verdict) => Some(&verdict.header),
            Self::TraceSock(_) => None,
        }
    }
}

/// Reads a `T` from the front of `record` and returns it with the bytes that
/// follow it.
fn read_struct<'a, T: aya::Pod>(
    record: &'a [u8],
    kind: &'static str,
) -> Result<(T, &'a [u8]), EventParseError> {
    let needed = size_of::<T>();
    if record.len() < needed {
        return Err(EventParseError::Truncated {
            kind,
            len: record.len(),
            needed,
        });
    }
    // SAFETY: `record` holds at least size_of::<T>() bytes and T is Pod, so
    // any bit pattern is valid; read_unaligned copes with any alignment.
    let value = unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<T>()) };
    Ok((value, &record[needed..]))
}

fn check_header(
    hdr: &NotifyCaptureHdr,
    rest: &[u8],
    kind: &'static str,
    expected: u16,
) -> Result<(EventHeader, Vec<u8>), EventParseError> {
    if hdr.version != expected {
        return Err(EventParseError::UnsupportedVersion {
            kind,
            version: hdr.version,
            expected,
        });
    }
    let len_cap = usize::from(hdr.len_cap);
    if len_cap > rest.len() {
        return Err(EventParseError::CaptureOverrun {
            kind,
            len_cap: hdr.len_cap,
            available: rest.len(),
        });
    }
    let header = EventHeader {
        source_endpoint: hdr.source,
        hash: hdr.hash,
        len_orig: hdr.len_orig,
    };
    Ok((header, rest[..len_cap].to_vec()))
}

fn parse_trace(record: &[u8]) -> Result<TraceEvent, EventParseError> {
    let (msg, rest) = read_struct::<TraceNotify>(record, "trace")?;
    let (header, payload) = check_header(&msg.hdr, rest, "trace", NOTIFY_TRACE_VER)?;
    Ok(TraceEvent {
        header,
        observation_point: ObservationPoint(msg.hdr.subtype),
        reason: TraceReason(msg.reason),
        src_identity: msg.src_label,
        dst_identity: msg.dst_label,
        dst_endpoint: msg.dst_id,
        ifindex: msg.ifindex,
        flags: msg.flags,
        orig_ip: msg.orig_ip,
        payload,
    })
}

fn parse_drop(record: &[u8]) -> Result<DropEvent, EventParseError> {
    let (msg, rest) = read_struct::<DropNotify>(record, "drop")?;
    let (header, payload) = check_header(&msg.hdr, rest, "drop", NOTIFY_DROP_VER)?;
    Ok(DropEvent {
        header,
        reason: DropReason(msg.hdr.subtype),
        src_identity: msg.src_label,
        dst_identity: msg.dst_label,
        dst_endpoint: msg.dst_id,
        line: msg.line,
        file: msg.file,
        ext_error: msg.ext_error,
        ifindex: msg.ifindex,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        // SAFETY: T is Pod; we only read its bytes.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn drop_record(len_cap: u16, payload: &[u8]) -> Vec<u8> {
        let msg = DropNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_DROP,
                subtype: 134,
                source: 7,
                hash: 0xdead_beef,
                len_orig: 60,
                len_cap,
                version: NOTIFY_DROP_VER,
            },
            src_label: 1000,
            dst_label: 0,
            dst_id: 0,
            line: 42,
            file: 2,
            ext_error: 0,
            ifindex: 9,
        };
        let mut record = bytes_of(&msg);
        record.extend_from_slice(payload);
        record
    }

    #[test]
    fn parses_a_drop_with_its_payload() {
        let payload: Vec<u8> = (0..128).collect();
        let record = drop_record(24, &payload);
        let DatapathEvent::Drop(drop) = DatapathEvent::parse(&record).expect("valid drop") else {
            panic!("expected a drop event");
        };
        assert_eq!(drop.reason, DropReason::INVALID_PACKET);
        assert_eq!(drop.header.source_endpoint, 7);
        assert_eq!(drop.header.hash, 0xdead_beef);
        assert_eq!(drop.header.len_orig, 60);
        assert_eq!(drop.src_identity, 1000);
        assert_eq!(drop.line, 42);
        assert_eq!(drop.ifindex, 9);
        assert_eq!(drop.payload, payload[..24].to_vec());
    }

    #[test]
    fn parses_a_trace() {
        let msg = TraceNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_TRACE,
                subtype: 0,
                source: 12,
                hash: 1,
                len_orig: 98,
                len_cap: 4,
                version: NOTIFY_TRACE_VER,
            },
            src_label: 300,
            dst_label: 301,
            dst_id: 12,
            reason: 2,
            flags: 0,
            ifindex: 5,
            orig_ip: [0; 16],
        };
        let mut record = bytes_of(&msg);
        record.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let DatapathEvent::Trace(trace) = DatapathEvent::parse(&record).expect("valid trace")
        else {
            panic!("expected a trace event");
        };
        assert_eq!(trace.observation_point, ObservationPoint::TO_ENDPOINT);
        assert_eq!(trace.reason, TraceReason::REPLY);
        assert_eq!(trace.src_identity, 300);
        assert_eq!(trace.dst_identity, 301);
        assert_eq!(trace.dst_endpoint, 12);
        assert_eq!(trace.ifindex, 5);
        assert_eq!(trace.payload, vec![1, 2, 3, 4]);
        assert_eq!(trace.header.source_endpoint, 12);
    }

    #[test]
    fn parses_a_policy_verdict() {
        let msg = PolicyVerdictNotify {
            hdr: NotifyCaptureHdr {
                kind: CILIUM_NOTIFY_POLICY_VERDICT,
                subtype: 0,
                source: 743,
                hash: 0,
                len_orig: 60,
                len_cap: 2,
                version: NOTIFY_POLICY_VER,
            },
            remote_label: 1210,
            verdict: -133,
            dst_port: 41763,
            src_port: 53,
            proto: 17,
            dir: 1,
            ..PolicyVerdictNotify::default()
        };
        let mut record = bytes_of(&msg);
        record.extend_from_slice(&[7, 8]);
        let verdict = PolicyVerdictEvent::parse(&record).expect("valid verdict");
        assert_eq!(verdict.header.source_endpoint, 743);
        assert_eq!(verdict.remote_identity, 1210);
        assert_eq!(verdict.drop_reason, Some(DropReason::POLICY_DENIED));
        assert_eq!(
            (verdict.src_port, verdict.dst_port, verdict.protocol),
            (53, 41763, 17)
        );
        assert!(!verdict.egress);
        assert_eq!(verdict.payload, vec![7, 8]);
        assert_eq!(
            DatapathEvent::parse(&record),
            Ok(DatapathEvent::PolicyVerdict(verdict))
        );
        assert_eq!(
            DatapathEvent::parse(&record).map(|e| e.header().map(|h| h.source_endpoint)),
            Ok(Some(743))
        );
        assert!(matches!(
            DatapathEvent::parse(&record[..39]),
            Err(EventParseError::Truncated {
                kind: "policy-verdict",
                ..
            })
        ));
        assert!(matches!(
            PolicyVerdictEvent::parse(&record[..20]),
            Err(EventParseError::Truncated { .. })
        ));
        assert!(matches!(
            PolicyVerdictEvent::parse(&drop_record(0, &[0; 8])),
            Err(EventParseError::UnknownType { kind: 1, .. })
        ));
    }

    /// A forward translation record: a connect to 10.96.0.10:80/TCP (reverse-NAT
    /// index 3) pointed at 10.0.2.7:8080.
    fn trace_sock_record(xlate_point: u8) -> Vec<u8> {
        let msg = TraceSockNotify {
            kind: CILIUM_NOTIFY_TRACE_SOCK,
            xlate_point,
            l4_proto: 1,
            dst_port: 8080u16.to_be_bytes(),
            sock_cookie: 0xc0ffee,
            cgroup_id: 4242,
            dst_ip: [10, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            orig_ip4: [10, 96, 0, 10],
            orig_port: 80u16.to_be_bytes(),
            rev_nat: 3u16.to_be_bytes(),
            src_ip4: [10, 0, 1, 5],
            src_port: 34219u16.to_be_bytes(),
            netns_cookie: 0x5eed,
            ..TraceSockNotify::default()
        };
        bytes_of(&msg)
    }

    #[test]
    fn trace_sock_layout_matches_the_c_struct() {
        use std::mem::offset_of;
        assert_eq!(size_of::<TraceSockNotify>(), 64);
        assert_eq!(offset_of!(TraceSockNotify, xlate_point), 1);
        assert_eq!(offset_of!(TraceSockNotify, l4_proto), 2);
        assert_eq!(offset_of!(TraceSockNotify, flags), 3);
        assert_eq!(offset_of!(TraceSockNotify, dst_port), 4);
        assert_eq!(offset_of!(TraceSockNotify, sock_cookie), 8);
        assert_eq!(offset_of!(TraceSockNotify, cgroup_id), 16);
        assert_eq!(offset_of!(TraceSockNotify, dst_ip), 24);
        assert_eq!(offset_of!(TraceSockNotify, orig_ip4), 40);
        assert_eq!(offset_of!(TraceSockNotify, orig_port), 44);
        assert_eq!(offset_of!(TraceSockNotify, rev_nat), 46);
        assert_eq!(offset_of!(TraceSockNotify, src_ip4), 48);
        assert_eq!(offset_of!(TraceSockNotify, src_port), 52);
        assert_eq!(offset_of!(TraceSockNotify, netns_cookie), 56);
    }

    #[test]
    fn parses_a_forward_socket_translation() {
        let record = trace_sock_record(2);
        let DatapathEvent::TraceSock(sock) = DatapathEvent::parse(&record).expect("valid record")
        else {
            panic!("expected a trace-sock event");
        };
        assert_eq!(sock.xlate_point, XlatePoint::POST_DIRECTION_FWD);
        assert_eq!(sock.protocol, SockProtocol::Tcp);
        assert_eq!((sock.socket_cookie, sock.cgroup_id), (0xc0ffee, 4242));
        assert_eq!(sock.address, "10.0.2.7:8080".parse().expect("addr"));
        assert_eq!(sock.orig_address, "10.96.0.10:80".parse().expect("addr"));
        assert_eq!(sock.frontend(), sock.orig_address);
        assert_eq!(sock.backend(), sock.address);
        assert_eq!(sock.rev_nat, 3);
        assert_eq!(sock.local_address, "10.0.1.5:34219".parse().expect("addr"));
        assert_eq!(sock.netns_cookie, 0x5eed);
        assert_eq!(DatapathEvent::TraceSock(sock).header(), None);
    }

    #[test]
    fn reverse_translation_swaps_frontend_and_backend() {
        let mut record = trace_sock_record(4);
        // A reverse record carries the frontend as the translated address.
        record[24..28].copy_from_slice(&[10, 96, 0, 10]);
        record[4..6].copy_from_slice(&80u16.to_be_bytes());
        record[40..44].copy_from_slice(&[10, 0, 2, 7]);
        record[44..46].copy_from_slice(&8080u16.to_be_bytes());
        let sock = TraceSockEvent::parse(&record).expect("valid record");
        assert!(sock.xlate_point.is_reverse());
        assert_eq!(sock.frontend(), "10.96.0.10:80".parse().expect("addr"));
        assert_eq!(sock.backend(), "10.0.2.7:8080".parse().expect("addr"));
    }

    #[test]
    fn rejects_short_ipv6_and_mistyped_trace_sock_records() {
        let record = trace_sock_record(2);
        assert!(matches!(
            DatapathEvent::parse(&record[..40]),
            Err(EventParseError::Truncated {
                kind: "trace-sock",
                len: 40,
                needed: 64
            })
        ));
        let mut v6 = record.clone();
        v6[3] = TRACE_SOCK_FLAG_IPV6;
        assert_eq!(
            DatapathEvent::parse(&v6),
            Err(EventParseError::Ipv6Unsupported { kind: "trace-sock" })
        );
        assert!(matches!(
            TraceSockEvent::parse(&drop_record(0, &[0; 40])),
            Err(EventParseError::UnknownType { kind: 1, .. })
        ));
    }

    #[test]
    fn rejects_empty_and_truncated_records() {
        assert!(matches!(
            DatapathEvent::parse(&[]),
            Err(EventParseError::Truncated { len: 0, .. })
        ));
        let record = drop_record(0, &[]);
        for len in 1..record.len() {
            assert!(
                matches!(
                    DatapathEvent::parse(&record[..len]),
                    Err(EventParseError::Truncated { .. })
                ),
                "a {len}-byte prefix must be rejected as truncated"
            );
        }
    }

    #[test]
    fn rejects_capture_longer_than_record() {
        let record = drop_record(100, &[0; 10]);
        assert_eq!(
            DatapathEvent::parse(&record),
            Err(EventParseError::CaptureOverrun {
                kind: "drop",
                len_cap: 100,
                available: 10,
            })
        );
    }

    #[test]
    fn rejects_unknown_type_and_version() {
        assert!(matches!(
            DatapathEvent::parse(&[9; 64]),
            Err(EventParseError::UnknownType { kind: 9, len: 64 })
        ));
        let mut record = drop_record(0, &[]);
        record[14] = 7;
        assert!(matches!(
            DatapathEvent::parse(&record),
            Err(EventParseError::UnsupportedVersion { version: 7, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u32;
        for len in 0..300 {
            let record: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = DatapathEvent::parse(&record);
            for kind in [
                CILIUM_NOTIFY_DROP,
                CILIUM_NOTIFY_TRACE,
                CILIUM_NOTIFY_POLICY_VERDICT,
                CILIUM_NOTIFY_TRACE_SOCK,
            ] {
                let mut typed = record.clone();
                if let Some(first) = typed.first_mut() {
                    *first = kind;
                }
                let _ = DatapathEvent::parse(&typed);
                let _ = PolicyVerdictEvent::parse(&typed);
                let _ = TraceSockEvent::parse(&typed);
            }
        }
    }
}
