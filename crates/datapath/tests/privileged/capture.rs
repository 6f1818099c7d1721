//! Packet capture for the multi-node tests: tcpdump writing a pcap file
//! inside a test namespace (killed on drop), and a decoder of what the
//! tests look at: outer IPv4, UDP ports, the VXLAN VNI, inner IPv4.

use std::{
    io::{BufRead, BufReader},
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nix::{sys::signal, unistd::Pid};

use crate::common::NetNs;

/// The VXLAN port Cilium uses.
pub const VXLAN_PORT: u16 = 8472;

/// A running `tcpdump -w` on one interface of a namespace.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts capturing every packet on `ifname` in `ns`; returns once
    /// tcpdump is listening.
    pub fn start(ns: &NetNs, ifname: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a capture directory");
        let file = dir.path().join("capture.pcap");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "tcpdump", "-i", ifname, "-nn"])
            // Hand every packet to tcpdump and the file at once: without
            // these, TPACKET_V3 holds packets up to a second, and packets of
            // the last second before the stop would be lost.
            .args(["--immediate-mode", "-U"])
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("starting tcpdump in {}: {err}", ns.name));
        let stderr = child.stderr.take().expect("tcpdump stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let capture = Self {
            child: Some(child),
            file,
            _dir: dir,
        };
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("tcpdump on {ifname} in {} did not start", ns.name));
        capture
    }

    /// Stops tcpdump and decodes what it captured.
    pub fn finish(mut self) -> Vec<Packet> {
        self.stop();
        let bytes = std::fs::read(&self.file)
            .unwrap_or_else(|err| panic!("reading {}: {err}", self.file.display()));
        parse_pcap(&bytes)
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `ip netns exec` execs tcpdump, so the child is tcpdump itself.
        let pid = Pid::from_raw(child.id() as i32);
        if let Err(err) = signal::kill(pid, signal::Signal::SIGTERM) {
            eprintln!("stopping tcpdump {pid}: {err}");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the tests read from one captured Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Destination MAC address.
    pub eth_dst: Option<[u8; 6]>,
    /// Outer IPv4 source and destination, when IPv4.
    pub ip: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Outer IPv4 TTL.
    pub ttl: u8,
    /// Outer IP protocol.
    pub protocol: u8,
    /// UDP destination port, when UDP.
    pub udp_dport: Option<u16>,
    /// VNI of a VXLAN packet on [`VXLAN_PORT`].
    pub vni: Option<u32>,
    /// Inner IPv4 source and destination of a VXLAN packet.
    pub inner_ip: Option<(Ipv4Addr, Ipv4Addr)>,
}

fn ipv4_at(frame: &[u8], off: usize) -> Option<(Ipv4Addr, Ipv4Addr, u8, usize)> {
    let ethertype = u16::from_be_bytes([*frame.get(off + 12)?, *frame.get(off + 13)?]);
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(off + 14..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some((src, dst, ip[9], off + 14 + usize::from(ip[0] & 0x0f) * 4))
}

fn parse_frame(frame: &[u8]) -> Packet {
    let mut packet = Packet {
        eth_dst: frame.get(..6).map(|mac| mac.try_into().expect("six bytes")),
        ip: None,
        ttl: 0,
        protocol: 0,
        udp_dport: None,
        vni: None,
        inner_ip: None,
    };
    let Some((src, dst, protocol, l4)) = ipv4_at(frame, 0) else {
        return packet;
    };
    packet.ip = Some((src, dst));
    packet.ttl = frame[14 + 8];
    packet.protocol = protocol;
    if protocol != 17 {
        return packet;
    }
    let Some(udp) = frame.get(l4..l4 + 8) else {
        return packet;
    };
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    packet.udp_dport = Some(dport);
    if dport != VXLAN_PORT {
        return packet;
    }
    // VXLAN header: flags (0x08 = VNI valid), 3 reserved, 3 bytes VNI, 1 reserved.
    if let Some(vxlan) = frame.get(l4 + 8..l4 + 16) {
        if vxlan[0] & 0x08 != 0 {
            packet.vni = Some(u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]));
        }
        packet.inner_ip = ipv4_at(frame, l4 + 16).map(|(src, dst, _, _)| (src, dst));
    }
    packet
}

/// Decodes a pcap file (microsecond or nanosecond, either byte order) of
/// Ethernet frames.
pub fn parse_pcap(bytes: &[u8]) -> Vec<Packet> {
    assert!(
        bytes.len() >= 24,
        "pcap file too short: {} bytes",
        bytes.len()
    );
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file: magic {magic:02x?}"),
    };
    let u32_at = |off: usize| {
        let word = [bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]];
        if little {
            u32::from_le_bytes(word)
        } else {
            u32::from_be_bytes(word)
        }
    };
    assert_eq!(u32_at(20), 1, "link type must be Ethernet");
    let mut packets = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let captured = u32_at(off + 8) as usize;
        let start = off + 16;
        let end = (start + captured).min(bytes.len());
        packets.push(parse_frame(&bytes[start..end]));
        off = start + captured;
    }
    packets
}
