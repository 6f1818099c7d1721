//! The decoded, display-ready form of one datapath event: header fields with their names,
//! the interface name, and the captured packet's summary. Its serde form is the `-o json`
//! output of `cilium monitor`.

use std::net::{IpAddr, Ipv4Addr};

use cilium_datapath::codes::{source_file_name, DropReason, ObservationPoint, TraceReason};
use cilium_datapath::{DatapathEvent, EventParseError};
use serde::{Serialize, Serializer};

use crate::packet::{decode_ethernet, PacketSummary};

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

fn point_name<S: Serializer>(point: &ObservationPoint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(point.name())
}

fn trace_reason_name<S: Serializer>(reason: &TraceReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.name())
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
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            MonitorEvent::Trace(_) => EventKind::Trace,
            MonitorEvent::Drop(_) => EventKind::Drop,
        }
    }

    /// Endpoint that emitted the event.
    pub fn source_endpoint(&self) -> u16 {
        match self {
            MonitorEvent::Trace(t) => t.source_endpoint,
            MonitorEvent::Drop(d) => d.source_endpoint,
        }
    }

    /// Endpoint the packet was headed to, 0 when not known.
    pub fn dst_endpoint(&self) -> u32 {
        match self {
            MonitorEvent::Trace(t) => u32::from(t.dst_endpoint),
            MonitorEvent::Drop(d) => d.dst_endpoint,
        }
    }

    pub fn summary(&self) -> &PacketSummary {
        match self {
            MonitorEvent::Trace(t) => &t.summary,
            MonitorEvent::Drop(d) => &d.summary,
        }
    }
}

/// Monitor message types by their `cilium monitor -t` names. Only `drop` and `trace` are
/// produced by this datapath today; the others are accepted so scripts written for Cilium
/// keep working, and simply match nothing.
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
        DropNotify, NotifyCaptureHdr, TraceNotify, CILIUM_NOTIFY_DROP, CILIUM_NOTIFY_TRACE,
        NOTIFY_DROP_VER, NOTIFY_TRACE_VER,
    };

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
            orig_ip: [10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
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
    fn garbage_records_are_errors_not_panics() {
        for record in [vec![], vec![4u8; 10], vec![99u8; 80]] {
            let err = MonitorEvent::from_record(&record, &names).unwrap_err();
            assert!(err.to_string().contains("undecodable"), "{err}");
        }
        // A valid header whose captured bytes are nonsense still decodes.
        let record = trace_record(3, 2, 0, &[0xff; 40]);
        let event = MonitorEvent::from_record(&record, &names).unwrap();
        assert_eq!(event.summary().captured_len, 40);
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
