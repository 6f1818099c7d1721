//! `cilium monitor` text lines for decoded events, in Cilium's wording, e.g.
//! `-> endpoint 212 flow 0x3000e251 , identity 5->61131 state new ifindex lxc0a1b2 orig-ip
//! 10.0.1.5: 10.0.1.5:34219 -> 10.0.1.7:80 tcp SYN` or, for a socket translation,
//! `[post-xlate-fwd] cgroup_id: 479586 sock_cookie: 7123674, dst [10.0.2.7]:8080 tcp, orig
//! [10.96.128.44]:80`.

use std::fmt::{self, Write as _};

use cilium_datapath::codes::ObservationPoint;

use crate::event::{DropEvent, MonitorEvent, PolicyVerdictEvent, TraceEvent, TraceSockEvent};
use crate::names::{arrow, identity_name, policy_match_name};
use crate::packet::{L4Summary, PacketSummary};

const VERBOSE_SEPARATOR: &str =
    "------------------------------------------------------------------------------";

impl fmt::Display for MonitorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorEvent::Trace(trace) => trace.fmt(f),
            MonitorEvent::Drop(drop) => drop.fmt(f),
            MonitorEvent::PolicyVerdict(verdict) => verdict.fmt(f),
            MonitorEvent::TraceSock(sock) => sock.fmt(f),
        }
    }
}

/// Cilium's line (`[pre-xlate-fwd] cgroup_id: 479586 sock_cookie: 7123674, dst
/// [10.96.128.44]:80 tcp`) for the translated address, followed by the address before the
/// translation, which this datapath reports in the same record.
impl fmt::Display for TraceSockEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] cgroup_id: {} sock_cookie: {}, dst [{}]:{} {}, orig [{}]:{}",
            self.xlate_point,
            self.cgroup_id,
            self.sock_cookie,
            self.dst.ip(),
            self.dst.port(),
            self.protocol.name(),
            self.orig_dst.ip(),
            self.orig_dst.port()
        )
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&arrow(self.observation_point))?;
        match self.observation_point {
            ObservationPoint::TO_ENDPOINT => write!(f, " {}", self.dst_endpoint)?,
            ObservationPoint::FROM_ENDPOINT => write!(f, " {}", self.source_endpoint)?,
            _ => {}
        }
        write!(
            f,
            " flow {:#x} , identity {}->{} state {} ifindex {} orig-ip {}: {}",
            self.flow_hash,
            identity_name(self.src_identity),
            identity_name(self.dst_identity),
            self.reason.name(),
            interface(self.ifindex, self.interface.as_deref()),
            self.orig_ip,
            self.summary
        )
    }
}

impl fmt::Display for DropEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xx drop ({}) flow {:#x} to endpoint {}, , identity {}->{}: {}",
            self.reason.description(),
            self.flow_hash,
            self.dst_endpoint,
            identity_name(self.src_identity),
            identity_name(self.dst_identity),
            self.summary
        )
    }
}

impl fmt::Display for PolicyVerdictEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Policy verdict log: flow {:#x} local EP ID {}, remote ID {}, proto {}, {}, \
             action {}, match {}, {}",
            self.flow_hash,
            self.source_endpoint,
            identity_name(self.remote_identity),
            self.protocol,
            self.direction.name(),
            self.action.name(),
            policy_match_name(self.match_type),
            self.summary
        )
    }
}

/// An interface as shown in trace lines: its name when known, else the number.
fn interface(ifindex: u32, name: Option<&str>) -> String {
    match name {
        Some(name) => name.to_string(),
        None => ifindex.to_string(),
    }
}

/// The `-v` form: a separator, the one-line form, the event's metadata and one line per
/// decoded packet layer.
pub fn format_verbose(event: &MonitorEvent) -> String {
    let mut out = format!("{VERBOSE_SEPARATOR}\n{event}\n");
    let Some(summary) = event.summary() else {
        if let MonitorEvent::TraceSock(sock) = event {
            let _ = writeln!(
                out,
                "{} socket {} reverse-NAT index {} from {}",
                sock.xlate_point, sock.sock_cookie, sock.rev_nat, sock.src
            );
        }
        return out;
    };
    let _ = match event {
        MonitorEvent::Trace(t) => writeln!(
            out,
            "{} FROM endpoint {} ifindex {}: {} bytes ({} captured), state {}",
            t.observation_point.name(),
            t.source_endpoint,
            interface(t.ifindex, t.interface.as_deref()),
            t.original_len,
            summary.captured_len,
            t.reason.name(),
        ),
        MonitorEvent::Drop(d) => writeln!(
            out,
            "drop reason {} FROM endpoint {} ifindex {} file {}:{} ext_error {}: {} bytes ({} captured)",
            d.reason_code,
            d.source_endpoint,
            interface(d.ifindex, d.interface.as_deref()),
            d.file.unwrap_or("unknown"),
            d.line,
            d.ext_error,
            d.original_len,
            summary.captured_len,
        ),
        MonitorEvent::PolicyVerdict(v) => writeln!(
            out,
            "policy verdict {} FROM endpoint {} {} remote identity {} ports {}->{} auth_type {} \
             cookie {}: {} bytes ({} captured)",
            v.drop_reason
                .map_or_else(|| "allowed".to_string(), |r| r.description()),
            v.source_endpoint,
            v.direction.name(),
            v.remote_identity,
            v.src_port,
            v.dst_port,
            v.auth_type,
            v.cookie,
            v.original_len,
            summary.captured_len,
        ),
        MonitorEvent::TraceSock(_) => Ok(()),
    };
    write_layers(&mut out, summary);
    out
}

fn write_layers(out: &mut String, summary: &PacketSummary) {
    if let Some(eth) = &summary.ethernet {
        let vlan = eth.vlan.map(|v| format!(" vlan={v}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "Ethernet\t{{src={} dst={} type=0x{:04x}{vlan}}}",
            eth.src_mac, eth.dst_mac, eth.ethertype
        );
    }
    if let Some(ip) = &summary.ip {
        let version = if ip.src.is_ipv4() { "IPv4" } else { "IPv6" };
        let _ = writeln!(
            out,
            "{version}\t{{src={} dst={} protocol={} ttl={} fragment={}}}",
            ip.src, ip.dst, ip.protocol, ip.ttl, ip.fragment
        );
    }
    match &summary.l4 {
        Some(L4Summary::Tcp {
            src_port,
            dst_port,
            flags,
        }) => {
            let _ = writeln!(
                out,
                "TCP\t{{src_port={src_port} dst_port={dst_port} flags={}}}",
                flags.join("|")
            );
        }
        Some(L4Summary::Udp { src_port, dst_port }) => {
            let _ = writeln!(out, "UDP\t{{src_port={src_port} dst_port={dst_port}}}");
        }
        Some(L4Summary::Icmp {
            icmp_type,
            icmp_code,
            description,
        }) => {
            let _ = writeln!(
                out,
                "ICMPv4\t{{type={icmp_type} code={icmp_code} ({description})}}"
            );
        }
        Some(L4Summary::Icmpv6 {
            icmp_type,
            icmp_code,
            description,
        }) => {
            let _ = writeln!(
                out,
                "ICMPv6\t{{type={icmp_type} code={icmp_code} ({description})}}"
            );
        }
        None => {}
    }
    if let Some(layer) = summary.truncated_at {
        let _ = writeln!(out, "(capture ends inside the {layer:?} header)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{
        drop_record, names, syn_packet, trace_record, trace_sock_record, verdict_record,
    };
    use crate::packet::tests::ipv4_frame;

    fn event(record: &[u8]) -> MonitorEvent {
        MonitorEvent::from_record(record, &names).expect("crafted record decodes")
    }

    #[test]
    fn trace_to_endpoint_line() {
        let line = event(&trace_record(0, 0, 8, &syn_packet())).to_string();
        assert_eq!(
            line,
            "-> endpoint 212 flow 0x3000e251 , identity init->61131 state new \
             ifindex lxc0a1b2c3d4e5 orig-ip 10.0.1.5: 10.0.1.5:34219 -> 10.0.1.7:80 tcp SYN"
        );
    }

    #[test]
    fn trace_to_stack_and_from_endpoint_lines() {
        let line = event(&trace_record(3, 2, 0, &syn_packet())).to_string();
        assert!(
            line.starts_with(
                "-> stack flow 0x3000e251 , identity init->61131 state reply ifindex 0 orig-ip"
            ),
            "{line}"
        );
        let line = event(&trace_record(5, 1, 42, &syn_packet())).to_string();
        assert!(
            line.starts_with("<- endpoint 212 flow 0x3000e251 , identity init->61131 state established ifindex 42 "),
            "{line}"
        );
    }

    #[test]
    fn trace_sock_lines() {
        let line = event(&trace_sock_record(2)).to_string();
        assert_eq!(
            line,
            "[post-xlate-fwd] cgroup_id: 479586 sock_cookie: 7123674, dst [10.0.2.7]:8080 tcp, \
             orig [10.96.128.44]:80"
        );
        let line = event(&trace_sock_record(4)).to_string();
        assert!(
            line.starts_with(
                "[post-xlate-rev] cgroup_id: 479586 sock_cookie: 7123674, dst [10.96.128.44]:80 tcp"
            ),
            "{line}"
        );
        let text = format_verbose(&event(&trace_sock_record(2)));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2], "post-xlate-fwd socket 7123674 reverse-NAT index 3 from 0.0.0.0:0",
            "{text}"
        );
        assert_eq!(lines.len(), 3, "{text}");
    }

    #[test]
    fn drop_line() {
        let ping = ipv4_frame([10, 0, 1, 5], [10, 0, 1, 9], 1, &[8, 0, 0, 0]);
        let line = event(&drop_record(134, &ping)).to_string();
        assert_eq!(
            line,
            "xx drop (Invalid packet) flow 0x0 to endpoint 0, , identity 1210->unknown: \
             10.0.1.5 -> 10.0.1.9 EchoRequest"
        );
        let line = event(&drop_record(133, &[])).to_string();
        assert!(line.ends_with("(Policy denied) flow 0x0 to endpoint 0, , identity 1210->unknown: no packet captured"), "{line}");
    }

    #[test]
    fn policy_verdict_line() {
        let line = event(&verdict_record(1, -133, 0, 0)).to_string();
        assert_eq!(
            line,
            "Policy verdict log: flow 0x0 local EP ID 743, remote ID 1210, proto 17, ingress, \
             action deny, match none, 10.35.133.77:53 -> 10.35.10.243:41763 udp"
        );
        let line = event(&verdict_record(2, 0, 1, 0)).to_string();
        assert!(
            line.contains(", proto 17, egress, action allow, match L3-Only, "),
            "{line}"
        );
        let line = event(&verdict_record(1, 0, 4, 1)).to_string();
        assert!(line.contains(", action audit, match all, "), "{line}");
        let text = format_verbose(&event(&verdict_record(1, -133, 0, 0)));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("Policy verdict log:"), "{text}");
        assert!(
            lines[2].starts_with("policy verdict Policy denied FROM endpoint 743 ingress"),
            "{text}"
        );
        assert_eq!(lines[5], "UDP\t{src_port=53 dst_port=41763}", "{text}");
    }

    #[test]
    fn verbose_form_shows_metadata_and_layers() {
        let text = format_verbose(&event(&drop_record(133, &syn_packet())));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], VERBOSE_SEPARATOR);
        assert!(lines[1].starts_with("xx drop (Policy denied)"), "{text}");
        assert!(lines[2].contains("file bpf_lxc.c:321"), "{text}");
        assert_eq!(
            lines[3],
            "Ethernet\t{src=0a:00:00:00:00:01 dst=0a:00:00:00:00:02 type=0x0800}"
        );
        assert_eq!(
            lines[4],
            "IPv4\t{src=10.0.1.5 dst=10.0.1.7 protocol=6 ttl=64 fragment=false}"
        );
        assert_eq!(lines[5], "TCP\t{src_port=34219 dst_port=80 flags=SYN}");
        assert_eq!(lines.len(), 6, "{text}");
    }
}
