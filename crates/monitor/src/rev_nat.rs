//! The reverse-NAT index a trace record carries: the 16 bits after the IPv4 original address
//! in `struct trace_notify` (`bpf/lib/trace.h`, offset 36), in network order. The datapath
//! sets it on the traces of a request it translated to a service backend, so the flow can
//! name the service the client asked for although the packet now goes to the backend.

use cilium_datapath::events::TraceEvent;

/// Offset of the reverse-NAT index inside `trace_notify.orig_ip` (right after `orig_ip4`).
const REV_NAT_OFFSET: usize = 4;

/// The reverse-NAT index (the service frontend's ID) of a trace, `None` when the packet was
/// not a translated request.
pub fn trace_rev_nat(trace: &TraceEvent) -> Option<u16> {
    let bytes = [
        trace.orig_ip[REV_NAT_OFFSET],
        trace.orig_ip[REV_NAT_OFFSET + 1],
    ];
    match u16::from_be_bytes(bytes) {
        0 => None,
        index => Some(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{syn_packet, trace_record_with_orig};
    use cilium_datapath::DatapathEvent;

    fn parsed(orig_ip: [u8; 16]) -> TraceEvent {
        let record = trace_record_with_orig(0, 0, 8, orig_ip, &syn_packet());
        match DatapathEvent::parse(&record).expect("valid trace") {
            DatapathEvent::Trace(trace) => trace,
            other => panic!("expected a trace, got {other:?}"),
        }
    }

    #[test]
    fn the_index_follows_the_ipv4_original_address_in_network_order() {
        let mut orig = [0u8; 16];
        orig[4..6].copy_from_slice(&0x0102u16.to_be_bytes());
        assert_eq!(trace_rev_nat(&parsed(orig)), Some(0x0102));
        let untranslated = [10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(trace_rev_nat(&parsed(untranslated)), None);
    }
}
