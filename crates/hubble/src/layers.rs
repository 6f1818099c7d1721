//! The packet headers captured with a datapath event, in flow form: Ethernet, IP, L4 (TCP
//! ports and flags, UDP, ICMPv4/v6 type and code) and the one-line summary Hubble shows
//! (`TCP Flags: SYN`, `UDP`, `ICMPv4 EchoRequest`).
//!
//! Decoding is `cilium-monitor`'s tolerant decoder: a short or odd capture yields whatever
//! layers could be read.

use std::net::IpAddr;

use cilium_hubble_proto::flow::{
    self, layer4::Protocol, Ethernet, IcmPv4, IcmPv6, Ip, IpVersion, Layer4, Tcp, TcpFlags, Udp,
};
use cilium_monitor::packet::{decode_ethernet, L4Summary};

/// What the captured bytes say about a packet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    pub ethernet: Option<Ethernet>,
    pub ip: Option<Ip>,
    pub l4: Option<Layer4>,
    /// Source and destination addresses, for endpoint lookups.
    pub addresses: Option<(IpAddr, IpAddr)>,
    /// Hubble's summary text.
    pub summary: String,
}

/// Decodes a capture that starts with an Ethernet header.
pub fn decode(captured: &[u8]) -> Layers {
    let packet = decode_ethernet(captured);
    let ethernet = packet.ethernet.as_ref().map(|eth| Ethernet {
        source: eth.src_mac.clone(),
        destination: eth.dst_mac.clone(),
    });
    let ip = packet.ip.as_ref().map(|ip| Ip {
        source: ip.src.to_string(),
        destination: ip.dst.to_string(),
        ip_version: if ip.src.is_ipv6() {
            IpVersion::IPv6
        } else {
            IpVersion::IPv4
        } as i32,
        encrypted: false,
    });
    let (l4, summary) = match &packet.l4 {
        Some(l4) => {
            let (protocol, summary) = l4_protocol(l4);
            (
                Some(Layer4 {
                    protocol: Some(protocol),
                }),
                summary,
            )
        }
        None => (None, fallback_summary(&packet)),
    };
    Layers {
        ethernet,
        ip,
        l4,
        addresses: packet.ip.as_ref().map(|ip| (ip.src, ip.dst)),
        summary,
    }
}

fn l4_protocol(l4: &L4Summary) -> (Protocol, String) {
    match l4 {
        L4Summary::Tcp {
            src_port,
            dst_port,
            flags,
        } => (
            Protocol::Tcp(Tcp {
                source_port: u32::from(*src_port),
                destination_port: u32::from(*dst_port),
                flags: Some(tcp_flags(flags)),
            }),
            format!("TCP Flags: {}", flags.join(", ")),
        ),
        L4Summary::Udp { src_port, dst_port } => (
            Protocol::Udp(Udp {
                source_port: u32::from(*src_port),
                destination_port: u32::from(*dst_port),
            }),
            "UDP".to_string(),
        ),
        L4Summary::Icmp {
            icmp_type,
            icmp_code,
            description,
        } => (
            Protocol::IcmPv4(IcmPv4 {
                r#type: u32::from(*icmp_type),
                code: u32::from(*icmp_code),
            }),
            format!("ICMPv4 {description}"),
        ),
        L4Summary::Icmpv6 {
            icmp_type,
            icmp_code,
            description,
        } => (
            Protocol::IcmPv6(IcmPv6 {
                r#type: u32::from(*icmp_type),
                code: u32::from(*icmp_code),
            }),
            format!("ICMPv6 {description}"),
        ),
    }
}

fn tcp_flags(names: &[&str]) -> TcpFlags {
    let mut flags = TcpFlags::default();
    for name in names {
        match *name {
            "FIN" => flags.fin = true,
            "SYN" => flags.syn = true,
            "RST" => flags.rst = true,
            "PSH" => flags.psh = true,
            "ACK" => flags.ack = true,
            "URG" => flags.urg = true,
            "ECE" => flags.ece = true,
            "CWR" => flags.cwr = true,
            _ => {}
        }
    }
    flags
}

/// Summary of a packet without an L4 header Hubble knows.
fn fallback_summary(packet: &cilium_monitor::PacketSummary) -> String {
    match (&packet.ip, &packet.ethernet) {
        (Some(ip), _) if ip.src.is_ipv6() => "IPv6".to_string(),
        (Some(_), _) => "IPv4".to_string(),
        (None, Some(eth)) if eth.ethertype == 0x0806 => "ARP".to_string(),
        (None, Some(_)) => "Ethernet".to_string(),
        (None, None) => String::new(),
    }
}

/// The flow's L4 protocol as `hubble observe --protocol` names it.
pub fn protocol_name(flow: &flow::Flow) -> Option<&'static str> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        Protocol::Tcp(_) => Some("tcp"),
        Protocol::Udp(_) => Some("udp"),
        Protocol::IcmPv4(_) => Some("icmpv4"),
        Protocol::IcmPv6(_) => Some("icmpv6"),
        Protocol::Sctp(_) => Some("sctp"),
    }
}

/// Source and destination ports of a TCP, UDP or SCTP flow.
pub fn ports(flow: &flow::Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        Protocol::Tcp(tcp) => Some((tcp.source_port, tcp.destination_port)),
        Protocol::Udp(udp) => Some((udp.source_port, udp.destination_port)),
        Protocol::Sctp(sctp) => Some((sctp.source_port, sctp.destination_port)),
        Protocol::IcmPv4(_) | Protocol::IcmPv6(_) => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP header, as the datapath captures it.
    pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        frame
    }

    /// The same with an ICMPv4 header instead.
    pub fn icmp_frame(src: [u8; 4], dst: [u8; 4], icmp_type: u8, code: u8) -> Vec<u8> {
        let mut frame = tcp_frame(src, dst, 0, 0, 0);
        frame[23] = 1;
        frame.truncate(34);
        frame.extend_from_slice(&[icmp_type, code, 0, 0, 0, 1, 0, 1]);
        frame
    }

    #[test]
    fn tcp_syn_reads_like_hubble() {
        let layers = decode(&tcp_frame([10, 0, 1, 5], [10, 0, 2, 7], 39042, 80, 0x02));
        let ip = layers.ip.expect("IPv4 header");
        assert_eq!(
            (ip.source.as_str(), ip.destination.as_str()),
            ("10.0.1.5", "10.0.2.7")
        );
        assert_eq!(ip.ip_version, IpVersion::IPv4 as i32);
        let Some(Protocol::Tcp(tcp)) = layers.l4.and_then(|l4| l4.protocol) else {
            panic!("TCP expected");
        };
        assert_eq!((tcp.source_port, tcp.destination_port), (39042, 80));
        assert!(tcp.flags.expect("flags").syn);
        assert_eq!(layers.summary, "TCP Flags: SYN");
        let eth = layers.ethernet.expect("Ethernet header");
        assert_eq!(eth.source, "02:00:00:00:00:02");
        assert_eq!(eth.destination, "02:00:00:00:00:01");
    }

    #[test]
    fn syn_ack_and_icmp_summaries() {
        let layers = decode(&tcp_frame([10, 0, 2, 7], [10, 0, 1, 5], 80, 39042, 0x12));
        assert_eq!(layers.summary, "TCP Flags: SYN, ACK");
        let layers = decode(&icmp_frame([10, 0, 1, 5], [10, 0, 2, 7], 8, 0));
        assert_eq!(layers.summary, "ICMPv4 EchoRequest");
        let Some(Protocol::IcmPv4(icmp)) = layers.l4.and_then(|l4| l4.protocol) else {
            panic!("ICMPv4 expected");
        };
        assert_eq!((icmp.r#type, icmp.code), (8, 0));
    }

    #[test]
    fn short_captures_keep_what_was_read() {
        let frame = tcp_frame([10, 0, 1, 5], [10, 0, 2, 7], 1, 2, 0x02);
        let layers = decode(&frame[..30]);
        assert!(layers.ethernet.is_some());
        assert!(layers.ip.is_none());
        assert_eq!(layers.summary, "Ethernet");
        assert_eq!(decode(&[]), Layers::default());
    }
}
