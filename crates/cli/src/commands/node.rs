//! `cilium node list`: the cluster's nodes as the agent knows them (`GET /v1/cluster/nodes`),
//! in cilium-dbg's columns.

use cilium_api::models::{ClusterNodeStatus, NodeElement};
use cilium_api::ClientError;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Cluster name under which Cilium shows a node by its plain name.
const DEFAULT_CLUSTER: &str = "default";

/// Errors of `cilium node list`.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot list nodes")]
    List {
        #[source]
        source: ClientError,
    },
    #[error("cannot print nodes")]
    Output {
        #[source]
        source: OutputError,
    },
}

/// One node in `-o json`: the agent's model plus where the answering agent learnt it from
/// (Cilium's newer `NodeElement.source`).
#[derive(Debug, Serialize)]
struct NodeRow<'a> {
    #[serde(flatten)]
    node: &'a NodeElement,
    source: &'static str,
}

pub fn list(target: &AgentTarget, format: OutputFormat) -> Result<(), NodeError> {
    let status = target
        .client()
        .cluster_nodes()
        .map_err(|source| NodeError::List { source })?;
    let rows = rows(&status);
    let text = match format {
        OutputFormat::Json => output::json(&rows),
        OutputFormat::Text => render(&rows),
    };
    output::print(&text).map_err(|source| NodeError::Output { source })
}

/// The nodes sorted by full name, the answering one marked `local`, the rest `kvstore`.
fn rows(status: &ClusterNodeStatus) -> Vec<NodeRow<'_>> {
    let local = local_node(status);
    let mut rows: Vec<NodeRow<'_>> = status
        .nodes_added
        .iter()
        .enumerate()
        .map(|(index, node)| NodeRow {
            node,
            source: if Some(index) == local {
                "local"
            } else {
                "kvstore"
            },
        })
        .collect();
    rows.sort_by_key(|row| full_name(row.node));
    rows
}

/// Cilium's `Fullname`: `cluster/name`, or just `name` in the default cluster.
fn full_name(node: &NodeElement) -> String {
    if node.cluster.is_empty() || node.cluster == DEFAULT_CLUSTER {
        node.name.clone()
    } else {
        format!("{}/{}", node.cluster, node.name)
    }
}

/// Index of the answering node: `self` is its full name, or a plain name that only one node
/// has (a node of another cluster may share it).
fn local_node(status: &ClusterNodeStatus) -> Option<usize> {
    let nodes = &status.nodes_added;
    let by_full_name = nodes
        .iter()
        .position(|node| full_name(node) == status.self_name);
    by_full_name.or_else(|| {
        let mut by_name = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.name == status.self_name);
        match (by_name.next(), by_name.next()) {
            (Some((index, _)), None) => Some(index),
            _ => None,
        }
    })
}

/// cilium-dbg's columns; the IPv6 ones stay empty (the datapath is IPv4 only).
fn render(rows: &[NodeRow<'_>]) -> String {
    let mut table = Table::new();
    table.row([
        "Name",
        "IPv4 Address",
        "Endpoint CIDR",
        "IPv6 Address",
        "Endpoint CIDR",
        "Source",
    ]);
    for row in rows {
        table.row([
            full_name(row.node),
            row.node.primary_address.ipv4.ip.clone(),
            row.node.ipv4_alloc_cidr.clone(),
            String::new(),
            String::new(),
            row.source.to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_api::models::{NodeAddressing, NodeAddressingElement};

    fn node(cluster: &str, name: &str, ip: &str, cidr: &str) -> NodeElement {
        NodeElement {
            name: name.into(),
            cluster: cluster.into(),
            primary_address: NodeAddressing {
                ipv4: NodeAddressingElement {
                    enabled: true,
                    ip: ip.into(),
                    ..Default::default()
                },
            },
            ipv4_alloc_cidr: cidr.into(),
        }
    }

    #[test]
    fn table_reads_like_cilium_dbg() {
        let status = ClusterNodeStatus {
            self_name: "node2".into(),
            nodes_added: vec![
                node("default", "node3", "172.18.0.13", "10.0.3.0/24"),
                node("default", "node1", "172.18.0.11", "10.0.1.0/24"),
                node("default", "node2", "172.18.0.12", "10.0.2.0/24"),
            ],
        };
        assert_eq!(
            render(&rows(&status)),
            "Name    IPv4 Address   Endpoint CIDR   IPv6 Address   Endpoint CIDR   Source\n\
             node1   172.18.0.11    10.0.1.0/24                                    kvstore\n\
             node2   172.18.0.12    10.0.2.0/24                                    local\n\
             node3   172.18.0.13    10.0.3.0/24                                    kvstore\n"
        );
    }

    #[test]
    fn other_clusters_show_their_name() {
        let status = ClusterNodeStatus {
            self_name: "node1".into(),
            nodes_added: vec![
                node("mesh-2", "node1", "172.19.0.11", "10.1.1.0/24"),
                node("default", "node1", "172.18.0.11", "10.0.1.0/24"),
            ],
        };
        let rows = rows(&status);
        let names: Vec<(String, &str)> =
            rows.iter().map(|r| (full_name(r.node), r.source)).collect();
        assert_eq!(
            names,
            [
                ("mesh-2/node1".to_string(), "kvstore"),
                ("node1".to_string(), "local")
            ]
        );
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["name"], "node1");
        assert_eq!(json[0]["cluster"], "mesh-2");
        assert_eq!(json[0]["primary-address"]["ipv4"]["ip"], "172.19.0.11");
        assert_eq!(json[0]["ipv4-alloc-cidr"], "10.1.1.0/24");
        assert_eq!(json[1]["source"], "local");

        let remote_self = ClusterNodeStatus {
            self_name: "mesh-2/node1".into(),
            ..status
        };
        let sources: Vec<&str> = super::rows(&remote_self).iter().map(|r| r.source).collect();
        assert_eq!(sources, ["local", "kvstore"]);
    }
}
