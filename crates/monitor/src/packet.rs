//! Decoding of the packet prefix captured with a datapath event (Ethernet, IPv4/IPv6,
//! TCP/UDP/ICMP) into a summary.
//!
//! The capture is at most a few dozen bytes of an arbitrary frame, so decoding is tolerant:
//! it never panics, keeps whatever layers it could read, and records where it had to stop.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV6: u16 = 0x86DD;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// TCP flag bits in the order they are shown.
const TCP_FLAGS: [(u8, &str); 8] = [
    (0x02, "SYN"),
    (0x10, "ACK"),
    (0x08, "PSH"),
    (0x01, "FIN"),
    (0x04, "RST"),
    (0x20, "URG"),
    (0x40, "ECE"),
    (0x80, "CWR"),
];

/// What could be read from a captured packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketSummary {
    /// Bytes that were captured (not the original packet length).
    pub captured_len: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethernet: Option<EthernetSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4: Option<L4Summary>,
    /// The layer at which decoding had to stop because the capture ended, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<Layer>,
}

/// A protocol layer, named in JSON and error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Ethernet,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EthernetSummary {
    pub src_mac: String,
    pub dst_mac: String,
    /// EtherType of the payload, after any 802.1Q tag.
    pub ethertype: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpSummary {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (IPv6: the first next-header).
    pub protocol: u8,
    pub ttl: u8,
    /// A non-first fragment carries no L4 header.
    pub fragment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum L4Summary {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: Vec<&'static str>,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Icmp {
        icmp_type: u8,
        icmp_code: u8,
        description: String,
    },
    Icmpv6 {
        icmp_type: u8,
        icmp_code: u8,
        description: String,
    },
}

/// Decodes a captured frame that starts with an Ethernet header.
pub fn decode_ethernet(data: &[u8]) -> PacketSummary {
    let mut summary = PacketSummary {
        captured_len: data.len(),
        ethernet: None,
        ip: None,
        l4: None,
        truncated_at: None,
    };
    let Some(header) = data.get(..14) else {
        summary.truncated_at = Some(Layer::Ethernet);
        return summary;
    };
    let mut ethertype = be16(&header[12..14]);
    let mut offset = 14;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN {
        let Some(tag) = data.get(14..18) else {
            summary.truncated_at = Some(Layer::Ethernet);
            return summary;
        };
        vlan = Some(be16(&tag[0..2]) & 0x0FFF);
        ethertype = be16(&tag[2..4]);
        offset = 18;
    }
    summary.ethernet = Some(EthernetSummary {
        dst_mac: format_mac(&header[0..6]),
        src_mac: format_mac(&header[6..12]),
        ethertype,
        vlan,
    });
    let payload = &data[offset..];
    let l4_start = match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4(payload, &mut summary),
        ETHERTYPE_IPV6 => decode_ipv6(payload, &mut summary),
        _ => None,
    };
    if let (Some(start), Some(ip)) = (l4_start, summary.ip.as_ref()) {
        let (protocol, v6) = (ip.protocol, ip.src.is_ipv6());
        decode_l4(protocol, v6, &payload[start..], &mut summary);
    }
    summary
}

/// Reads the IPv4 header; returns where the L4 header starts when there is one to read.
fn decode_ipv4(data: &[u8], summary: &mut PacketSummary) -> Option<usize> {
    let Some(header) = data.get(..20) else {
        summary.truncated_at = Some(Layer::Ipv4);
        return None;
    };
    let header_len = usize::from(header[0] & 0x0F) * 4;
    let fragment_offset = be16(&header[6..8]) & 0x1FFF;
    summary.ip = Some(IpSummary {
        src: IpAddr::V4(Ipv4Addr::new(
            header[12], header[13], header[14], header[15],
        )),
        dst: IpAddr::V4(Ipv4Addr::new(
            header[16], header[17], header[18], header[19],
        )),
        protocol: header[9],
        ttl: header[8],
        fragment: fragment_offset != 0,
    });
    if fragment_offset != 0 || header_len < 20 {
        return None;
    }
    if data.len() < header_len {
        summary.truncated_at = Some(Layer::Ipv4);
        return None;
    }
    Some(header_len)
}

/// Reads the fixed IPv6 header (extension headers are not followed).
fn decode_ipv6(data: &[u8], summary: &mut PacketSummary) -> Option<usize> {
    let Some(header) = data.get(..40) else {
        summary.truncated_at = Some(Layer::Ipv6);
        return None;
    };
    let addr = |bytes: &[u8]| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(bytes);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    summary.ip = Some(IpSummary {
        src: addr(&header[8..24]),
        dst: addr(&header[24..40]),
        protocol: header[6],
        ttl: header[7],
        fragment: false,
    });
    Some(40)
}

fn decode_l4(protocol: u8, v6: bool, data: &[u8], summary: &mut PacketSummary) {
    let ports = |data: &[u8]| (be16(&data[0..2]), be16(&data[2..4]));
    match protocol {
        PROTO_TCP => match data.get(..14) {
            Some(header) => {
                let (src_port, dst_port) = ports(header);
                let flags = TCP_FLAGS
                    .iter()
                    .filter(|(bit, _)| header[13] & bit != 0)
                    .map(|(_, name)| *name)
                    .collect();
                summary.l4 = Some(L4Summary::Tcp {
                    src_port,
                    dst_port,
                    flags,
                });
            }
            None => summary.truncated_at = Some(Layer::Tcp),
        },
        PROTO_UDP => match data.get(..4) {
            Some(header) => {
                let (src_port, dst_port) = ports(header);
                summary.l4 = Some(L4Summary::Udp { src_port, dst_port });
            }
            None => summary.truncated_at = Some(Layer::Udp),
        },
        PROTO_ICMP if !v6 => match data.get(..2) {
            Some(header) => {
                summary.l4 = Some(L4Summary::Icmp {
                    icmp_type: header[0],
                    icmp_code: header[1],
                    description: icmpv4_description(header[0], header[1]),
                });
            }
            None => summary.truncated_at = Some(Layer::Icmp),
        },
        PROTO_ICMPV6 if v6 => match data.get(..2) {
            Some(header) => {
                summary.l4 = Some(L4Summary::Icmpv6 {
                    icmp_type: header[0],
                    icmp_code: header[1],
                    description: icmpv6_description(header[0], header[1]),
                });
            }
            None => summary.truncated_at = Some(Layer::Icmpv6),
        },
        _ => {}
    }
}

fn icmpv4_description(icmp_type: u8, code: u8) -> String {
    const UNREACHABLE: [&str; 16] = [
        "Net",
        "Host",
        "Protocol",
        "Port",
        "FragmentationNeeded",
        "SourceRoutingFailed",
        "NetUnknown",
        "HostUnknown",
        "SourceIsolated",
        "NetAdminProhibited",
        "HostAdminProhibited",
        "NetTOS",
        "HostTOS",
        "CommAdminProhibited",
        "HostPrecedence",
        "PrecedenceCutoff",
    ];
    match icmp_type {
        0 => "EchoReply".to_string(),
        3 => match UNREACHABLE.get(usize::from(code)) {
            Some(name) => format!("DestinationUnreachable({name})"),
            None => format!("DestinationUnreachable(Code: {code})"),
        },
        5 => "Redirect".to_string(),
        8 => "EchoRequest".to_string(),
        11 => match code {
            0 => "TimeExceeded(TTLExceeded)".to_string(),
            1 => "TimeExceeded(FragmentReassemblyTimeExceeded)".to_string(),
            _ => format!("TimeExceeded(Code: {code})"),
        },
        12 => "ParameterProblem".to_string(),
        _ => format!("Type {icmp_type} Code {code}"),
    }
}

fn icmpv6_description(icmp_type: u8, code: u8) -> String {
    let name = match icmp_type {
        1 => "DestinationUnreachable",
        2 => "PacketTooBig",
        3 => "TimeExceeded",
        4 => "ParameterProblem",
        128 => "EchoRequest",
        129 => "EchoReply",
        133 => "RouterSolicitation",
        134 => "RouterAdvertisement",
        135 => "NeighborSolicitation",
        136 => "NeighborAdvertisement",
        _ => return format!("Type {icmp_type} Code {code}"),
    };
    name.to_string()
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One-line summary as `cilium monitor` prints it after the event header, e.g.
/// `10.0.1.5:34219 -> 10.0.1.7:80 tcp SYN`.
impl fmt::Display for PacketSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ip) = &self.ip else {
            return match &self.ethernet {
                Some(eth) => write!(
                    f,
                    "{} -> {} {}",
                    eth.src_mac,
                    eth.dst_mac,
                    ethertype_name(eth.ethertype)
                ),
                None if self.captured_len == 0 => f.write_str("no packet captured"),
                None => write!(f, "truncated frame ({} bytes)", self.captured_len),
            };
        };
        match &self.l4 {
            Some(L4Summary::Tcp {
                src_port,
                dst_port,
                flags,
            }) => {
                write!(
                    f,
                    "{} -> {} tcp",
                    SocketAddr::new(ip.src, *src_port),
                    SocketAddr::new(ip.dst, *dst_port)
                )?;
                if !flags.is_empty() {
                    write!(f, " {}", flags.join(", "))?;
                }
                Ok(())
            }
            Some(L4Summary::Udp { src_port, dst_port }) => write!(
                f,
                "{} -> {} udp",
                SocketAddr::new(ip.src, *src_port),
                SocketAddr::new(ip.dst, *dst_port)
            ),
            Some(L4Summary::Icmp { description, .. })
            | Some(L4Summary::Icmpv6 { description, .. }) => {
                write!(f, "{} -> {} {description}", ip.src, ip.dst)
            }
            None => {
                write!(f, "{} -> {} {}", ip.src, ip.dst, protocol_name(ip.protocol))?;
                if ip.fragment {
                    f.write_str(" fragment")?;
                } else if self.truncated_at.is_some() {
                    f.write_str(" (truncated)")?;
                }
                Ok(())
            }
        }
    }
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        PROTO_ICMP => "icmp".into(),
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        other => format!("proto {other}"),
    }
}

fn ethertype_name(ethertype: u16) -> String {
    match ethertype {
        ETHERTYPE_ARP => "ARP".into(),
        other => format!("ethertype 0x{other:04x}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an Ethernet + IPv4 frame with the given L4 bytes.
    pub(crate) fn ipv4_frame(src: [u8; 4], dst: [u8; 4], protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut frame = vec![
            0x0a, 0x00, 0x00, 0x00, 0x00, 0x02, // dst mac
            0x0a, 0x00, 0x00, 0x00, 0x00, 0x01, // src mac
            0x08, 0x00,
        ];
        let total = (20 + l4.len()) as u16;
        frame.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0]);
        frame.extend_from_slice(&[64, protocol, 0, 0]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(l4);
        frame
    }

    pub(crate) fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp
    }

    #[test]
    fn tcp_syn_ack_reads_like_cilium() {
        let frame = ipv4_frame(
            [10, 0, 1, 7],
            [10, 0, 1, 5],
            PROTO_TCP,
            &tcp_header(80, 34219, 0x12),
        );
        let summary = decode_ethernet(&frame);
        assert_eq!(
            summary.to_string(),
            "10.0.1.7:80 -> 10.0.1.5:34219 tcp SYN, ACK"
        );
        assert_eq!(summary.truncated_at, None);
        assert_eq!(summary.ethernet.unwrap().src_mac, "0a:00:00:00:00:01");
    }

    #[test]
    fn udp_and_icmp_summaries() {
        let udp = ipv4_frame(
            [10, 0, 1, 5],
            [10, 0, 1, 9],
            PROTO_UDP,
            &[0, 53, 0x9f, 0x23],
        );
        assert_eq!(
            decode_ethernet(&udp).to_string(),
            "10.0.1.5:53 -> 10.0.1.9:40739 udp"
        );
        let ping = ipv4_frame([10, 0, 1, 5], [10, 0, 1, 9], PROTO_ICMP, &[8, 0, 0, 0]);
        assert_eq!(
            decode_ethernet(&ping).to_string(),
            "10.0.1.5 -> 10.0.1.9 EchoRequest"
        );
        let unreachable = ipv4_frame([10, 0, 1, 9], [10, 0, 1, 5], PROTO_ICMP, &[3, 3]);
        assert_eq!(
            decode_ethernet(&unreachable).to_string(),
            "10.0.1.9 -> 10.0.1.5 DestinationUnreachable(Port)"
        );
    }

    #[test]
    fn ipv6_tcp_uses_bracketed_addresses() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 20, PROTO_TCP, 64];
        ip6.extend_from_slice(&"f00d::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&"f00d::2".parse::<Ipv6Addr>().unwrap().octets());
        frame.extend_from_slice(&ip6);
        frame.extend_from_slice(&tcp_header(5000, 443, 0x02));
        assert_eq!(
            decode_ethernet(&frame).to_string(),
            "[f00d::1]:5000 -> [f00d::2]:443 tcp SYN"
        );
    }

    #[test]
    fn truncation_keeps_the_layers_that_were_read() {
        let frame = ipv4_frame(
            [10, 0, 1, 5],
            [10, 0, 1, 7],
            PROTO_TCP,
            &tcp_header(1, 2, 0x02),
        );
        let summary = decode_ethernet(&frame[..14 + 20 + 6]);
        assert_eq!(summary.truncated_at, Some(Layer::Tcp));
        assert_eq!(summary.to_string(), "10.0.1.5 -> 10.0.1.7 tcp (truncated)");

        let summary = decode_ethernet(&frame[..20]);
        assert_eq!(summary.truncated_at, Some(Layer::Ipv4));
        assert!(summary.ip.is_none());

        assert_eq!(decode_ethernet(&[]).to_string(), "no packet captured");
        assert_eq!(
            decode_ethernet(&[1, 2, 3]).to_string(),
            "truncated frame (3 bytes)"
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix of a valid frame, and frames with nonsense header lengths.
        let frame = ipv4_frame(
            [10, 0, 1, 5],
            [10, 0, 1, 7],
            PROTO_TCP,
            &tcp_header(1, 2, 0xff),
        );
        for len in 0..=frame.len() {
            let _ = decode_ethernet(&frame[..len]).to_string();
        }
        let mut bad_ihl = frame.clone();
        bad_ihl[14] = 0x4f; // IHL 60 bytes, longer than the capture
        assert_eq!(decode_ethernet(&bad_ihl).truncated_at, Some(Layer::Ipv4));
        bad_ihl[14] = 0x41; // IHL 4 bytes, shorter than the fixed header
        assert!(decode_ethernet(&bad_ihl).l4.is_none());
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 1, 13, 14, 18, 33, 34, 54, 80, 128] {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = decode_ethernet(&junk).to_string();
            let mut tagged = junk.clone();
            if tagged.len() >= 14 {
                tagged[12] = 0x81;
                tagged[13] = 0x00;
                let _ = decode_ethernet(&tagged).to_string();
            }
        }
    }

    #[test]
    fn non_ip_and_fragments() {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x0a, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(
            decode_ethernet(&arp).to_string(),
            "0a:00:00:00:00:01 -> ff:ff:ff:ff:ff:ff ARP"
        );
        let mut fragment = ipv4_frame([10, 0, 1, 5], [10, 0, 1, 7], PROTO_UDP, &[0; 8]);
        fragment[14 + 6] = 0x00;
        fragment[14 + 7] = 0xb9; // offset 185 * 8 bytes
        assert_eq!(
            decode_ethernet(&fragment).to_string(),
            "10.0.1.5 -> 10.0.1.7 udp fragment"
        );
    }

    #[test]
    fn json_names_are_snake_case() {
        let frame = ipv4_frame(
            [10, 0, 1, 5],
            [10, 0, 1, 7],
            PROTO_TCP,
            &tcp_header(34219, 80, 0x02),
        );
        let json = serde_json::to_value(decode_ethernet(&frame)).unwrap();
        assert_eq!(json["ip"]["src"], "10.0.1.5");
        assert_eq!(json["l4"]["protocol"], "tcp");
        assert_eq!(json["l4"]["dst_port"], 80);
        assert_eq!(json["l4"]["flags"], serde_json::json!(["SYN"]));
        assert!(json.get("truncated_at").is_none());
    }
}
