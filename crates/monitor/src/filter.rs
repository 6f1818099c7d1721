//! Which events `cilium monitor` shows: `-t TYPE` (repeatable), `--related-to`, `--from`
//! and `--to` endpoint IDs, combined with AND as in Cilium.

use std::collections::HashSet;

use crate::event::{EventKind, MonitorEvent};

/// Selection of events; the default shows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Event types to show; empty means all.
    pub kinds: HashSet<EventKind>,
    /// Events emitted by or headed to this endpoint.
    pub related_to: Option<u16>,
    /// Events emitted by this endpoint.
    pub from: Option<u16>,
    /// Events headed to this endpoint.
    pub to: Option<u16>,
}

impl EventFilter {
    pub fn matches(&self, event: &MonitorEvent) -> bool {
        let source = event.source_endpoint();
        let dst = event.dst_endpoint();
        (self.kinds.is_empty() || self.kinds.contains(&event.kind()))
            && self
                .related_to
                .is_none_or(|id| id == source || u32::from(id) == dst)
            && self.from.is_none_or(|id| id == source)
            && self.to.is_none_or(|id| u32::from(id) == dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{
        drop_record, names, syn_packet, trace_record, trace_sock_record, verdict_record,
    };

    #[test]
    fn filters_combine_with_and() {
        // The trace comes from endpoint 212 and goes to 212; the drop comes from 829.
        let trace = MonitorEvent::from_record(&trace_record(0, 0, 8, &syn_packet()), &names)
            .expect("trace");
        let drop =
            MonitorEvent::from_record(&drop_record(133, &syn_packet()), &names).expect("drop");
        let all = EventFilter::default();
        assert!(all.matches(&trace) && all.matches(&drop));

        let drops = EventFilter {
            kinds: [EventKind::Drop].into(),
            ..Default::default()
        };
        assert!(!drops.matches(&trace) && drops.matches(&drop));

        let related = EventFilter {
            related_to: Some(829),
            ..Default::default()
        };
        assert!(!related.matches(&trace) && related.matches(&drop));

        let to_212_traces = EventFilter {
            kinds: [EventKind::Trace].into(),
            to: Some(212),
            ..Default::default()
        };
        assert!(to_212_traces.matches(&trace) && !to_212_traces.matches(&drop));
        let from_1 = EventFilter {
            from: Some(1),
            ..Default::default()
        };
        assert!(!from_1.matches(&trace) && !from_1.matches(&drop));
    }

    #[test]
    fn policy_verdicts_by_type_and_endpoint() {
        let decode = |record: &[u8]| MonitorEvent::from_record(record, &names).expect("record");
        let ingress = decode(&verdict_record(1, -133, 0, 0));
        let egress = decode(&verdict_record(2, 0, 2, 0));
        let drop = decode(&drop_record(133, &syn_packet()));
        let verdicts = EventFilter {
            kinds: [EventKind::PolicyVerdict].into(),
            ..Default::default()
        };
        assert!(verdicts.matches(&ingress) && verdicts.matches(&egress));
        assert!(!verdicts.matches(&drop));
        let drops = EventFilter {
            kinds: [EventKind::Drop].into(),
            ..Default::default()
        };
        assert!(!drops.matches(&ingress) && drops.matches(&drop));

        // Verdicts belong to the endpoint whose policy decided (743).
        let related = EventFilter {
            related_to: Some(743),
            ..Default::default()
        };
        assert!(related.matches(&ingress) && related.matches(&egress) && !related.matches(&drop));
        let to_743 = EventFilter {
            to: Some(743),
            ..Default::default()
        };
        assert!(to_743.matches(&ingress) && !to_743.matches(&egress));
    }

    #[test]
    fn trace_sock_events_by_type() {
        let decode = |record: &[u8]| MonitorEvent::from_record(record, &names).expect("record");
        let sock = decode(&trace_sock_record(2));
        let trace = decode(&trace_record(0, 0, 8, &syn_packet()));
        let trace_sock = EventFilter {
            kinds: [EventKind::TraceSock].into(),
            ..Default::default()
        };
        assert!(trace_sock.matches(&sock) && !trace_sock.matches(&trace));
        let traces = EventFilter {
            kinds: [EventKind::Trace].into(),
            ..Default::default()
        };
        assert!(!traces.matches(&sock));
        // No endpoint reports a socket translation.
        let related = EventFilter {
            related_to: Some(212),
            ..Default::default()
        };
        assert!(!related.matches(&sock) && related.matches(&trace));
    }
}
