//! `cilium bpf ct list global`: the node-wide conntrack tables (`cilium_ct4_global` for TCP,
//! `cilium_ct_any4_global` for the rest), one line per entry in Cilium's wording.

use std::net::Ipv4Addr;
use std::path::Path;

use cilium_datapath::abi::{CtEntry, Ipv4CtTuple, TUPLE_F_IN, TUPLE_F_RELATED, TUPLE_F_SERVICE};
use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{monotonic_seconds, CtEntryRecord, CtMap, CtMapKind, MapsError};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError};

/// Names of the `ct_entry` flag bits, lowest bit first (the 1.14–1.15 bitfield).
const ENTRY_FLAGS: [&str; 11] = [
    "RxClosing",
    "TxClosing",
    "Nat64",
    "LBLoopback",
    "SeenNonSyn",
    "NodePort",
    "ProxyRedirect",
    "DSR",
    "FromL7LB",
    "Reserved1",
    "FromTunnel",
];

/// Errors of `cilium bpf ct list`.
#[derive(Debug, thiserror::Error)]
pub enum BpfCtError {
    #[error("cannot read the conntrack table {map}")]
    Map {
        map: &'static str,
        #[source]
        source: MapsError,
    },
    #[error("cannot print the conntrack tables")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One conntrack entry, in `-o json`.
#[derive(Debug, Serialize)]
struct CtRow {
    protocol: String,
    /// `OUT` (created leaving an endpoint), `IN` (entering one) or `SVC`.
    direction: &'static str,
    related: bool,
    /// Addresses and ports of the packet that created the entry.
    src: Ipv4Addr,
    src_port: u16,
    dst: Ipv4Addr,
    dst_port: u16,
    /// Expiry in CLOCK_MONOTONIC seconds, and what is left of it now.
    expires: u32,
    remaining_seconds: i64,
    rx_packets: u64,
    rx_bytes: u64,
    rx_flags_seen: u8,
    last_rx_report: u32,
    tx_packets: u64,
    tx_bytes: u64,
    tx_flags_seen: u8,
    last_tx_report: u32,
    flags: u16,
    flag_names: Vec<&'static str>,
    rev_nat: u16,
    source_security_id: u32,
    ifindex: u16,
}

pub fn list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfCtError> {
    let paths = BpfPaths::new(bpf_root);
    let mut records = Vec::new();
    for kind in [CtMapKind::Tcp, CtMapKind::Any] {
        let map_err = |source| BpfCtError::Map {
            map: kind.map_name(),
            source,
        };
        let map = CtMap::open(&paths, kind).map_err(map_err)?;
        records.extend(map.entries().map_err(map_err)?);
    }
    let now = monotonic_seconds().map_err(|source| BpfCtError::Map {
        map: "CLOCK_MONOTONIC",
        source,
    })?;
    let mut rows: Vec<CtRow> = records.iter().map(|r| row(r, now)).collect();
    rows.sort_by(|a, b| {
        (
            &a.protocol,
            a.direction,
            a.src,
            a.src_port,
            a.dst,
            a.dst_port,
        )
            .cmp(&(
                &b.protocol,
                b.direction,
                b.src,
                b.src_port,
                b.dst,
                b.dst_port,
            ))
    });
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => rows.iter().map(|r| render(r) + "\n").collect(),
    };
    output::print(&text).map_err(|source| BpfCtError::Output { source })
}

fn row(record: &CtEntryRecord, now: u32) -> CtRow {
    let tuple: &Ipv4CtTuple = &record.tuple;
    let entry: &CtEntry = &record.entry;
    let tuple_flags = tuple.flags;
    let direction = if tuple_flags & TUPLE_F_SERVICE != 0 {
        "SVC"
    } else if tuple_flags & TUPLE_F_IN != 0 {
        "IN"
    } else {
        "OUT"
    };
    CtRow {
        protocol: protocol_name(tuple.nexthdr),
        direction,
        related: tuple_flags & TUPLE_F_RELATED != 0,
        src: tuple.source(),
        src_port: tuple.source_port(),
        dst: tuple.destination(),
        dst_port: tuple.destination_port(),
        expires: entry.lifetime,
        remaining_seconds: i64::from(entry.lifetime) - i64::from(now),
        rx_packets: entry.rx_packets,
        rx_bytes: entry.rx_bytes,
        rx_flags_seen: entry.rx_flags_seen,
        last_rx_report: entry.last_rx_report,
        tx_packets: entry.tx_packets,
        tx_bytes: entry.tx_bytes,
        tx_flags_seen: entry.tx_flags_seen,
        last_tx_report: entry.last_tx_report,
        flags: entry.flags,
        flag_names: ENTRY_FLAGS
            .iter()
            .enumerate()
            .filter(|(bit, _)| entry.flags & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect(),
        rev_nat: entry.rev_nat_index,
        source_security_id: entry.src_sec_id,
        ifindex: entry.ifindex,
    }
}

fn protocol_name(nexthdr: u8) -> String {
    match nexthdr {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        other => format!("PROTO{other}"),
    }
}

/// One line: `TCP OUT 10.0.1.5:34219 -> 10.0.1.7:80 expires=... RxPackets=... ...`.
fn render(r: &CtRow) -> String {
    let related = if r.related { " related" } else { "" };
    let remaining = if r.remaining_seconds >= 0 {
        format!("remaining: {} sec(s)", r.remaining_seconds)
    } else {
        "expired".to_string()
    };
    let mut flag_list: String = r.flag_names.iter().map(|n| format!("{n} ")).collect();
    flag_list.insert(0, ' ');
    format!(
        "{} {} {}:{} -> {}:{}{related} expires={} ({remaining}) RxPackets={} RxBytes={} \
         RxFlagsSeen={:#04x} LastRxReport={} TxPackets={} TxBytes={} TxFlagsSeen={:#04x} \
         LastTxReport={} Flags={:#06x} [{flag_list}] RevNAT={} SourceSecurityID={} IfIndex={}",
        r.protocol,
        r.direction,
        r.src,
        r.src_port,
        r.dst,
        r.dst_port,
        r.expires,
        r.rx_packets,
        r.rx_bytes,
        r.rx_flags_seen,
        r.last_rx_report,
        r.tx_packets,
        r.tx_bytes,
        r.tx_flags_seen,
        r.last_tx_report,
        r.flags,
        r.rev_nat,
        r.source_security_id,
        r.ifindex,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_datapath::abi::{CT_F_RX_CLOSING, CT_F_SEEN_NON_SYN, CT_F_TX_CLOSING, TUPLE_F_OUT};

    fn record(flags: u8, nexthdr: u8, entry_flags: u16, lifetime: u32) -> CtEntryRecord {
        CtEntryRecord {
            tuple: Ipv4CtTuple {
                daddr: [10, 0, 1, 7],
                saddr: [10, 0, 1, 5],
                dport: 80u16.to_be(),
                sport: 34219u16.to_be(),
                nexthdr,
                flags,
            },
            entry: CtEntry {
                rx_packets: 3,
                rx_bytes: 222,
                tx_packets: 4,
                tx_bytes: 300,
                lifetime,
                flags: entry_flags,
                tx_flags_seen: 0x1b,
                rx_flags_seen: 0x12,
                src_sec_id: 40321,
                last_tx_report: 995,
                last_rx_report: 996,
                ..Default::default()
            },
        }
    }

    #[test]
    fn tcp_out_line_reads_like_cilium() {
        let flags = CT_F_RX_CLOSING | CT_F_TX_CLOSING | CT_F_SEEN_NON_SYN;
        let line = render(&row(&record(TUPLE_F_OUT, 6, flags, 1010), 1000));
        assert_eq!(
            line,
            "TCP OUT 10.0.1.5:34219 -> 10.0.1.7:80 expires=1010 (remaining: 10 sec(s)) \
             RxPackets=3 RxBytes=222 RxFlagsSeen=0x12 LastRxReport=996 TxPackets=4 TxBytes=300 \
             TxFlagsSeen=0x1b LastTxReport=995 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] \
             RevNAT=0 SourceSecurityID=40321 IfIndex=0"
        );
    }

    #[test]
    fn direction_related_and_expiry() {
        let line = render(&row(&record(TUPLE_F_IN | TUPLE_F_RELATED, 1, 0, 5), 1000));
        assert!(
            line.starts_with("ICMP IN 10.0.1.5:34219 -> 10.0.1.7:80 related expires=5 (expired) "),
            "{line}"
        );
        assert!(line.contains(" Flags=0x0000 [ ] "), "{line}");
        let svc = row(&record(TUPLE_F_SERVICE, 17, 0, 2000), 1000);
        assert_eq!((svc.protocol.as_str(), svc.direction), ("UDP", "SVC"));
        let json = serde_json::to_value(&svc).unwrap();
        assert_eq!(json["remaining_seconds"], 1000);
        assert_eq!(json["src_port"], 34219);
    }
}
