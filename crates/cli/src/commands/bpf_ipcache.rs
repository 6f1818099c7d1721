//! `cilium bpf ipcache list`: the IP → identity / tunnel endpoint LPM trie (`cilium_ipcache`),
//! one row per prefix in cilium-dbg's wording.

use std::net::Ipv4Addr;
use std::path::Path;

use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{IpcacheEntry, IpcacheMap, MapsError};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};

/// Errors of `cilium bpf ipcache list`.
#[derive(Debug, thiserror::Error)]
pub enum BpfIpcacheError {
    #[error("cannot read the ipcache")]
    Map {
        #[source]
        source: MapsError,
    },
    #[error("cannot print the ipcache")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One `cilium_ipcache` entry, in `-o json`.
#[derive(Debug, Serialize)]
struct IpcacheRow {
    /// `10.0.2.5/32`.
    prefix: String,
    identity: u32,
    /// IPsec key index (0 = none).
    encrypt_key: u8,
    /// Underlay address of the node hosting the prefix; null when the entry has none.
    tunnel_endpoint: Option<Ipv4Addr>,
    node_id: u16,
    flags: u8,
    /// `skiptunnel`, `hastunnel`, `ipv6tunnel`, `remotecluster`.
    flag_names: Vec<String>,
    /// The text form's value column.
    #[serde(skip)]
    summary: String,
}

pub fn list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfIpcacheError> {
    let map = IpcacheMap::open(&BpfPaths::new(bpf_root))
        .map_err(|source| BpfIpcacheError::Map { source })?;
    let rows: Vec<IpcacheRow> = map
        .entries()
        .map_err(|source| BpfIpcacheError::Map { source })?
        .iter()
        .map(row)
        .collect();
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render(&rows),
    };
    output::print(&text).map_err(|source| BpfIpcacheError::Output { source })
}

fn row(entry: &IpcacheEntry) -> IpcacheRow {
    let info = &entry.info;
    let names = info.flag_names();
    let flag_names = if info.flags == 0 {
        Vec::new()
    } else {
        names.split(',').map(str::to_string).collect()
    };
    IpcacheRow {
        prefix: entry.prefix.to_string(),
        identity: info.sec_identity,
        encrypt_key: info.key,
        tunnel_endpoint: info.tunnel_endpoint(),
        node_id: info.node_id,
        flags: info.flags,
        flag_names,
        summary: info.to_string(),
    }
}

/// Cilium's layout: `IP PREFIX/ADDRESS` then `identity=… encryptkey=… tunnelendpoint=… flags=…`.
fn render(rows: &[IpcacheRow]) -> String {
    let mut table = Table::new();
    table.row(["IP PREFIX/ADDRESS", "IDENTITY"]);
    for r in rows {
        table.row([r.prefix.as_str(), r.summary.as_str()]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_datapath::abi::{RemoteEndpointInfo, FLAG_HAS_TUNNEL_EP, FLAG_SKIP_TUNNEL};

    fn entry(prefix: &str, info: RemoteEndpointInfo) -> IpcacheEntry {
        IpcacheEntry {
            prefix: prefix
                .parse()
                .unwrap_or_else(|e| panic!("prefix {prefix}: {e}")),
            info,
        }
    }

    #[test]
    fn rows_read_like_cilium() {
        let rows = [
            row(&entry("0.0.0.0/0", RemoteEndpointInfo::new(2))),
            row(&entry(
                "10.0.2.5/32",
                RemoteEndpointInfo::with_tunnel(5, Ipv4Addr::new(172, 18, 0, 12)),
            )),
            row(&entry(
                "172.18.0.12/32",
                RemoteEndpointInfo {
                    flags: FLAG_SKIP_TUNNEL,
                    ..RemoteEndpointInfo::new(6)
                },
            )),
        ];
        assert_eq!(
            render(&rows),
            "IP PREFIX/ADDRESS   IDENTITY\n\
             0.0.0.0/0           identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n\
             10.0.2.5/32         identity=5 encryptkey=0 tunnelendpoint=172.18.0.12 flags=hastunnel\n\
             172.18.0.12/32      identity=6 encryptkey=0 tunnelendpoint=0.0.0.0 flags=skiptunnel\n"
        );
    }

    #[test]
    fn json_names_the_fields() {
        let both = RemoteEndpointInfo {
            flags: FLAG_SKIP_TUNNEL | FLAG_HAS_TUNNEL_EP,
            ..RemoteEndpointInfo::with_tunnel(40321, Ipv4Addr::new(172, 18, 0, 11))
        };
        let json = serde_json::to_value([
            row(&entry("10.0.1.0/24", both)),
            row(&entry("0.0.0.0/0", RemoteEndpointInfo::new(2))),
        ])
        .unwrap();
        assert_eq!(json[0]["prefix"], "10.0.1.0/24");
        assert_eq!(json[0]["identity"], 40321);
        assert_eq!(json[0]["tunnel_endpoint"], "172.18.0.11");
        assert_eq!(
            json[0]["flag_names"],
            serde_json::json!(["skiptunnel", "hastunnel"])
        );
        assert_eq!(json[1]["tunnel_endpoint"], serde_json::Value::Null);
        assert_eq!(json[1]["flag_names"], serde_json::json!([]));
        assert!(json[1].get("summary").is_none());
    }
}
