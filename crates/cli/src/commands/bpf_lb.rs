//! `cilium bpf lb list` and `cilium bpf lb maglev list`: the pinned service maps as the
//! datapath reads them — each frontend's master entry (slot 0) and backend slots with the
//! backend they resolve to, and each Maglev lookup table — in cilium-dbg's layout.

use std::collections::BTreeMap;
use std::path::Path;

use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::lb_abi::{
    Lb4Backend, Lb4Key, Lb4Service, LB_LOOKUP_SCOPE_INT, SVC_FLAG_AFFINITY, SVC_FLAG_EXTERNAL_IP,
    SVC_FLAG_EXT_LOCAL_SCOPE, SVC_FLAG_LOADBALANCER, SVC_FLAG_NODEPORT, SVC_FLAG_ROUTABLE,
    SVC_FLAG_TWO_SCOPES,
};
use cilium_datapath::maps::{LbMaps, MapsError};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};

/// Errors of `cilium bpf lb`.
#[derive(Debug, thiserror::Error)]
pub enum BpfLbError {
    #[error("cannot read the load-balancing maps")]
    Map {
        #[source]
        source: MapsError,
    },
    #[error("cannot print the load-balancing maps")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One services-map entry, in `-o json`.
#[derive(Debug, Serialize)]
struct LbRow {
    /// `10.96.0.10:80/TCP` (`/i` appended for the internal scope).
    service: String,
    slot: u16,
    rev_nat_id: u16,
    /// Master: the frontend's type and flags; slot: empty.
    flags: Vec<&'static str>,
    /// Master: number of slots; slot: 0.
    count: u16,
    /// Slot: the backend ID and address it resolves to (`null` address when missing).
    backend_id: Option<u32>,
    backend: Option<String>,
}

pub fn list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfLbError> {
    let maps = open(bpf_root)?;
    let services = maps
        .services()
        .map_err(|source| BpfLbError::Map { source })?;
    let backends: BTreeMap<u32, Lb4Backend> = maps
        .backends()
        .map_err(|source| BpfLbError::Map { source })?
        .into_iter()
        .collect();
    let rows: Vec<LbRow> = services
        .iter()
        .map(|(key, value)| row(key, value, &backends))
        .collect();
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render(&rows),
    };
    output::print(&text).map_err(|source| BpfLbError::Output { source })
}

/// One Maglev table, in `-o json`.
#[derive(Debug, Serialize)]
struct MaglevRow {
    rev_nat_id: u16,
    table: Vec<u32>,
}

pub fn maglev_list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfLbError> {
    let maps = open(bpf_root)?;
    let rows: Vec<MaglevRow> = maps
        .maglev_tables()
        .map_err(|source| BpfLbError::Map { source })?
        .into_iter()
        .map(|(rev_nat_id, table)| MaglevRow { rev_nat_id, table })
        .collect();
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render_maglev(&rows),
    };
    output::print(&text).map_err(|source| BpfLbError::Output { source })
}

fn open(bpf_root: &Path) -> Result<LbMaps, BpfLbError> {
    LbMaps::open(&BpfPaths::new(bpf_root)).map_err(|source| BpfLbError::Map { source })
}

fn protocol(number: u8) -> String {
    match number {
        6 => "TCP".into(),
        17 => "UDP".into(),
        other => other.to_string(),
    }
}

fn flag_names(value: &Lb4Service) -> Vec<&'static str> {
    let f = value.flags;
    let mut names = vec![if f & SVC_FLAG_NODEPORT != 0 {
        "NodePort"
    } else if f & SVC_FLAG_LOADBALANCER != 0 {
        "LoadBalancer"
    } else if f & SVC_FLAG_EXTERNAL_IP != 0 {
        "ExternalIPs"
    } else {
        "ClusterIP"
    }];
    for (bit, name) in [
        (SVC_FLAG_EXT_LOCAL_SCOPE, "Local"),
        (SVC_FLAG_AFFINITY, "sessionAffinity"),
    ] {
        if f & bit != 0 {
            names.push(name);
        }
    }
    if value.flags2 & SVC_FLAG_TWO_SCOPES != 0 {
        names.push("two-scopes");
    }
    names.push(if f & SVC_FLAG_ROUTABLE != 0 {
        "routable"
    } else {
        "non-routable"
    });
    names
}

fn row(key: &Lb4Key, value: &Lb4Service, backends: &BTreeMap<u32, Lb4Backend>) -> LbRow {
    let mut service = format!("{}:{}/{}", key.address(), key.port(), protocol(key.proto));
    if key.scope == LB_LOOKUP_SCOPE_INT {
        service.push_str("/i");
    }
    let master = key.backend_slot == 0;
    LbRow {
        service,
        slot: key.backend_slot,
        rev_nat_id: value.rev_nat_index(),
        flags: if master {
            flag_names(value)
        } else {
            Vec::new()
        },
        count: value.count,
        backend_id: (!master).then_some(value.backend_id),
        backend: (!master)
            .then(|| backends.get(&value.backend_id))
            .flatten()
            .map(|b| format!("{}:{}/{}", b.address(), b.port(), protocol(b.proto))),
    }
}

/// Cilium's layout: `SERVICE ADDRESS   BACKEND ADDRESS (REVNAT_ID) (SLOT)`; the master
/// entry shows `0.0.0.0:0` and the frontend's flags.
fn render(rows: &[LbRow]) -> String {
    let mut table = Table::new();
    table.row(["SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)"]);
    let mut last = None;
    for r in rows {
        let backend = if r.slot == 0 {
            format!("0.0.0.0:0 ({}) (0) [{}]", r.rev_nat_id, r.flags.join(", "))
        } else {
            format!(
                "{} ({}) ({})",
                r.backend.as_deref().unwrap_or("<missing backend>"),
                r.rev_nat_id,
                r.slot
            )
        };
        let service = if last == Some(&r.service) {
            ""
        } else {
            r.service.as_str()
        };
        table.row([service, backend.as_str()]);
        last = Some(&r.service);
    }
    table.render()
}

/// `SVC ID   LOOKUP TABLE`: the backend IDs of each table in order.
fn render_maglev(rows: &[MaglevRow]) -> String {
    let mut table = Table::new();
    table.row(["SVC ID", "LOOKUP TABLE"]);
    for r in rows {
        let ids: Vec<String> = r.table.iter().map(u32::to_string).collect();
        table.row([r.rev_nat_id.to_string(), format!("[{}]", ids.join(", "))]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn rows_read_like_cilium() {
        let frontend = |slot| Lb4Key::new(Ipv4Addr::new(10, 96, 0, 10), 80, 6, 0, slot);
        let backends: BTreeMap<u32, Lb4Backend> =
            [(7, Lb4Backend::new(Ipv4Addr::new(10, 0, 1, 5), 8080, 6, 0))].into();
        let rows = [
            row(
                &frontend(0),
                &Lb4Service::master(1, 3, 0, 0, 1, 0),
                &backends,
            ),
            row(&frontend(1), &Lb4Service::slot(7, 3, 0, 0), &backends),
        ];
        assert_eq!(
            render(&rows),
            "SERVICE ADDRESS     BACKEND ADDRESS (REVNAT_ID) (SLOT)\n\
             10.96.0.10:80/TCP   0.0.0.0:0 (3) (0) [ClusterIP, non-routable]\n\
             \x20                   10.0.1.5:8080/TCP (3) (1)\n"
        );
    }

    #[test]
    fn maglev_tables_list_their_backend_ids() {
        let rows = [MaglevRow {
            rev_nat_id: 2,
            table: vec![1, 2, 1],
        }];
        assert_eq!(
            render_maglev(&rows),
            "SVC ID   LOOKUP TABLE\n2        [1, 2, 1]\n"
        );
    }
}
