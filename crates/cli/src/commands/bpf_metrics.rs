//! `cilium bpf metrics list`: the datapath's forward and drop counters (`cilium_metrics`),
//! summed over CPUs.

use std::path::Path;

use cilium_datapath::bpffs::BpfPaths;
use cilium_datapath::maps::{MapsError, MetricsEntry, MetricsMap};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};

/// Errors of `cilium bpf metrics list`.
#[derive(Debug, thiserror::Error)]
pub enum BpfMetricsError {
    #[error("cannot read the metrics map")]
    Map {
        #[source]
        source: MapsError,
    },
    #[error("cannot print the metrics")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One counter, in `-o json`.
#[derive(Debug, Serialize)]
struct MetricsRow {
    /// `Success` for forwarded packets, else the drop reason's description.
    reason: String,
    /// 0 for forwarded, else Cilium's drop reason number.
    reason_code: u8,
    direction: &'static str,
    packets: u64,
    bytes: u64,
}

pub fn list(bpf_root: &Path, format: OutputFormat) -> Result<(), BpfMetricsError> {
    let map = MetricsMap::open(&BpfPaths::new(bpf_root))
        .map_err(|source| BpfMetricsError::Map { source })?;
    let rows: Vec<MetricsRow> = map
        .entries()
        .map_err(|source| BpfMetricsError::Map { source })?
        .iter()
        .map(row)
        .collect();
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render(&rows),
    };
    output::print(&text).map_err(|source| BpfMetricsError::Output { source })
}

fn row(entry: &MetricsEntry) -> MetricsRow {
    MetricsRow {
        reason: entry
            .drop_reason()
            .map_or_else(|| "Success".to_string(), |reason| reason.description()),
        reason_code: entry.reason,
        direction: entry.direction.name(),
        packets: entry.packets,
        bytes: entry.bytes,
    }
}

fn render(rows: &[MetricsRow]) -> String {
    let mut table = Table::new();
    table.row(["REASON", "DIRECTION", "PACKETS", "BYTES"]);
    for r in rows {
        table.row([
            r.reason.clone(),
            r.direction.to_string(),
            r.packets.to_string(),
            r.bytes.to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_datapath::codes::MetricDirection;

    #[test]
    fn counters_are_named_like_cilium() {
        let rows = [
            row(&MetricsEntry {
                reason: 0,
                direction: MetricDirection::Egress,
                packets: 12,
                bytes: 1340,
            }),
            row(&MetricsEntry {
                reason: 133,
                direction: MetricDirection::Ingress,
                packets: 3,
                bytes: 222,
            }),
        ];
        assert_eq!(
            render(&rows),
            "REASON          DIRECTION   PACKETS   BYTES\n\
             Success         EGRESS      12        1340\n\
             Policy denied   INGRESS     3         222\n"
        );
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["reason_code"], 133);
        assert_eq!(json["direction"], "INGRESS");
    }
}
