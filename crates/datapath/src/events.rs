//! Decoding of `cilium_events` ring buffer records into typed datapath
//! events. Records come from the kernel but are treated as untrusted bytes:
//! short, unknown or inconsistent input is an error, never a panic.

use thiserror::Error;

use crate::abi::{
    DropNotify, NotifyCaptureHdr, PolicyVerdictNotify, TraceNotify, CILIUM_NOTIFY_DROP,
    CILIUM_NOTIFY_POLICY_VERDICT, CILIUM_NOTIFY_TRACE, NOTIFY_DROP_VER, NOTIFY_POLICY_VER,
    NOTIFY_TRACE_VER,
};
use crate::codes::{DropReason, ObservationPoint, TraceReason};

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

/// One notification from the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatapathEvent {
    /// A trace notification.
    Trace(TraceEvent),
    /// A drop notification.
    Drop(DropEvent),
    /// A policy verdict on a new connection.
    PolicyVerdict(PolicyVerdictEvent),
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
            kind => Err(EventParseError::UnknownType {
                kind,
                len: record.len(),
            }),
        }
    }

    /// The common header.
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Trace(trace) => &trace.header,
            Self::Drop(drop) => &drop.header,
            Self::PolicyVerdict(verdict) => &verdict.header,
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
            DatapathEvent::parse(&record).map(|e| e.header().source_endpoint),
            Ok(743)
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
            ] {
                let mut typed = record.clone();
                if let Some(first) = typed.first_mut() {
                    *first = kind;
                }
                let _ = DatapathEvent::parse(&typed);
                let _ = PolicyVerdictEvent::parse(&typed);
            }
        }
    }
}
