//! `cilium bpf endpoint list`: the local endpoint map `cilium_lxc`, one row per address.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use cilium_datapath::abi::{MacAddr, ENDPOINT_F_HOST};
use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{LxcEntry, LxcMap, MapsError};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};

/// Errors of `cilium bpf endpoint list`.
#[derive(Debug, thiserror::Error)]
pub enum BpfEndpointError {
    #[error("cannot read the endpoint map")]
    Map {
        #[source]
        source: MapsError,
    },
    #[error("cannot print the endpoint map")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One `cilium_lxc` entry in `-o json`.
#[derive(Debug, Serialize)]
struct EndpointRow {
    address: IpAddr,
    /// IPsec key index of the map key (the `:0` in the text form).
    key: u8,
    /// The address belongs to the host (router IP): no endpoint behind it.
    host: bool,
    endpoint_id: u16,
    flags: u32,
    ifindex: u32,
    mac: String,
    node_mac: String,
}

pub fn list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfEndpointError> {
    let map = LxcMap::open(&BpfPaths::new(bpf_root))
        .map_err(|source| BpfEndpointError::Map { source })?;
    let mut rows: Vec<EndpointRow> = map
        .entries()
        .map_err(|source| BpfEndpointError::Map { source })?
        .iter()
        .map(row)
        .collect();
    rows.sort_by_key(|r| r.address);
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render(&rows),
    };
    output::print(&text).map_err(|source| BpfEndpointError::Output { source })
}

fn row(entry: &LxcEntry) -> EndpointRow {
    let address = match entry.key.ipv4_addr() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(Ipv6Addr::from(entry.key.ip)),
    };
    let info = &entry.info;
    EndpointRow {
        address,
        key: entry.key.key,
        host: info.flags & ENDPOINT_F_HOST != 0,
        endpoint_id: info.lxc_id,
        flags: info.flags,
        ifindex: info.ifindex,
        mac: format_mac(&info.mac),
        node_mac: format_mac(&info.node_mac),
    }
}

fn format_mac(mac: &MacAddr) -> String {
    mac.addr
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Cilium's layout: `IP ADDRESS` then the endpoint info, `(localhost)` for host addresses.
fn render(rows: &[EndpointRow]) -> String {
    let mut table = Table::new();
    table.row(["IP ADDRESS", "LOCAL ENDPOINT INFO"]);
    for r in rows {
        let info = if r.host {
            "(localhost)".to_string()
        } else {
            format!(
                "id={:<5} flags=0x{:04x} ifindex={:<3} mac={} nodemac={}",
                r.endpoint_id, r.flags, r.ifindex, r.mac, r.node_mac
            )
        };
        table.row([format!("{}:{}", r.address, r.key), info]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_datapath::abi::{EndpointInfo, EndpointKey};
    use std::net::Ipv4Addr;

    fn entry(ip: [u8; 4], id: u16, flags: u32, ifindex: u32) -> LxcEntry {
        LxcEntry {
            key: EndpointKey::ipv4(Ipv4Addr::from(ip)),
            info: EndpointInfo {
                ifindex,
                lxc_id: id,
                flags,
                mac: MacAddr::new([0x0a, 0, 0, 0, 0, 0x05]),
                node_mac: MacAddr::new([0x0a, 0, 0, 0, 0, 0x01]),
                ..Default::default()
            },
        }
    }

    #[test]
    fn rows_read_like_cilium() {
        let rows = [
            row(&entry([10, 0, 1, 5], 829, 0, 8)),
            row(&entry([10, 0, 1, 1], 0, ENDPOINT_F_HOST, 0)),
        ];
        assert_eq!(
            render(&rows),
            "IP ADDRESS   LOCAL ENDPOINT INFO\n\
             10.0.1.5:0   id=829   flags=0x0000 ifindex=8   mac=0a:00:00:00:00:05 nodemac=0a:00:00:00:00:01\n\
             10.0.1.1:0   (localhost)\n"
        );
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["address"], "10.0.1.5");
        assert_eq!(json["endpoint_id"], 829);
        assert_eq!(json["host"], false);
    }
}
