//! `cilium status`: the agent's health and a summary of its configuration.

use std::path::PathBuf;

use cilium_api::models::{ClusterStatus, KubeProxyReplacement, Status, StatusResponse};
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Errors of `cilium status`.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("agent status unavailable")]
    Unreachable {
        #[source]
        source: ClientError,
    },
    #[error("agent at {} reports {state}", socket.display())]
    Unhealthy { socket: PathBuf, state: String },
    #[error("cannot print the status")]
    Output {
        #[source]
        source: OutputError,
    },
}

pub fn run(target: &AgentTarget, format: OutputFormat) -> Result<(), StatusError> {
    let print = |text: &str| output::print(text).map_err(|source| StatusError::Output { source });
    let status = match target.client().healthz() {
        Ok(status) => status,
        Err(source) => {
            let reason = match &source {
                ClientError::Connect { .. } => {
                    format!("cannot reach agent at {}", target.socket().display())
                }
                other => other.to_string(),
            };
            if format == OutputFormat::Text {
                let mut table = Table::new();
                table.row(["Cilium:", &format!("Failure   {reason}")]);
                print(&table.render())?;
            }
            return Err(StatusError::Unreachable { source });
        }
    };
    match format {
        OutputFormat::Json => print(&output::json(&status))?,
        OutputFormat::Text => print(&render(&status))?,
    }
    match status.cilium.state.as_str() {
        "Ok" | "Warning" => Ok(()),
        state => Err(StatusError::Unhealthy {
            socket: target.socket().to_path_buf(),
            state: state.to_string(),
        }),
    }
}

/// The text form: one `Key:   value` line per fact, aligned like cilium-dbg.
fn render(status: &StatusResponse) -> String {
    let mut health = format!("{}   {}", status.cilium.state, status.version);
    if !status.cilium.msg.is_empty() {
        health.push_str("   ");
        health.push_str(&status.cilium.msg);
    }
    let ipam = &status.ipam;
    let mut table = Table::new();
    if let Some(kvstore) = &status.kvstore {
        table.row(["KVStore:".to_string(), state_and_message(kvstore)]);
    }
    table.row(["Cilium:".to_string(), health]);
    table.row(["Node:".to_string(), status.node_name.clone()]);
    if let Some(cluster) = &status.cluster {
        table.row(["Cluster:".to_string(), format_cluster(cluster)]);
    }
    table.row([
        "Routing:".to_string(),
        format!("Network: {}   Host: Legacy", status.routing_mode),
    ]);
    table.row(["Device Mode:".to_string(), status.datapath_mode.clone()]);
    table.row(["Attach Mode:".to_string(), status.attach_mode.clone()]);
    table.row([
        "IPAM:".to_string(),
        format!(
            "IPv4: {}/{} allocated from {}",
            ipam.allocated, ipam.capacity, ipam.alloc_range
        ),
    ]);
    table.row(["Endpoints:".to_string(), status.endpoints.to_string()]);
    table.row(["BPF Root:".to_string(), status.bpf_root.clone()]);
    table.row(["Uptime:".to_string(), format_uptime(status.uptime_seconds)]);
    let mut text = table.render();
    if let Some(kpr) = &status.kube_proxy_replacement {
        text.push_str(&render_kube_proxy_replacement(kpr));
    }
    text
}

/// The `KubeProxyReplacement Details:` block, laid out like `cilium-dbg status --verbose`.
fn render_kube_proxy_replacement(kpr: &KubeProxyReplacement) -> String {
    let enabled = |on: bool| if on { "Enabled" } else { "Disabled" }.to_string();
    let mut details = Table::new();
    details.row(["  Status:".to_string(), kpr.mode.clone()]);
    details.row(["  Socket LB:".to_string(), enabled(kpr.socket_lb)]);
    details.row(["  Protocols:".to_string(), kpr.protocols.join(", ")]);
    details.row([
        "  Backend Selection:".to_string(),
        kpr.backend_selection.clone(),
    ]);
    details.row([
        "  Session Affinity:".to_string(),
        enabled(kpr.session_affinity),
    ]);
    let mut services = Table::new();
    services.row(["  - ClusterIP:".to_string(), enabled(kpr.cluster_ip)]);
    services.row([
        "  - NodePort:".to_string(),
        match kpr.node_port {
            Some(range) => format!("Enabled (Range: {}-{})", range.min, range.max),
            None => enabled(false),
        },
    ]);
    format!(
        "KubeProxyReplacement Details:\n{}  Services:\n{}",
        details.render(),
        services.render()
    )
}

/// `Ok   etcd: 1/1 connected, …`: the state, then the message when there is one.
fn state_and_message(status: &Status) -> String {
    if status.msg.is_empty() {
        status.state.clone()
    } else {
        format!("{}   {}", status.state, status.msg)
    }
}

/// `default (3 nodes: node1, node2, node3)`.
fn format_cluster(cluster: &ClusterStatus) -> String {
    let count = cluster.nodes.len();
    let noun = if count == 1 { "node" } else { "nodes" };
    if count == 0 {
        format!("{} (0 nodes)", cluster.cluster_name)
    } else {
        format!(
            "{} ({count} {noun}: {})",
            cluster.cluster_name,
            cluster.nodes.join(", ")
        )
    }
}

fn format_uptime(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cilium_api::models::{IpamSummary, NodePortRange};

    fn status() -> StatusResponse {
        StatusResponse {
            cilium: Status {
                state: "Ok".into(),
                msg: String::new(),
            },
            node_name: "node-1".into(),
            version: "0.1.0".into(),
            routing_mode: "Tunnel".into(),
            datapath_mode: "veth".into(),
            attach_mode: "TCX".into(),
            ipam: IpamSummary {
                alloc_range: "10.0.1.0/24".into(),
                allocated: 2,
                capacity: 254,
            },
            endpoints: 3,
            bpf_root: "/sys/fs/bpf/cilium-node-1".into(),
            uptime_seconds: 3725,
            kvstore: None,
            cluster: None,
            kube_proxy_replacement: None,
        }
    }

    #[test]
    fn text_status_reads_like_cilium_dbg() {
        assert_eq!(
            render(&status()),
            "Cilium:        Ok   0.1.0\n\
             Node:          node-1\n\
             Routing:       Network: Tunnel   Host: Legacy\n\
             Device Mode:   veth\n\
             Attach Mode:   TCX\n\
             IPAM:          IPv4: 2/254 allocated from 10.0.1.0/24\n\
             Endpoints:     3\n\
             BPF Root:      /sys/fs/bpf/cilium-node-1\n\
             Uptime:        1h2m5s\n"
        );
    }

    #[test]
    fn kvstore_and_cluster_lines_appear_when_reported() {
        let status = StatusResponse {
            kvstore: Some(Status {
                state: "Ok".into(),
                msg:
                    "etcd: 1/1 connected, has-quorum=true: http://10.99.0.2:2379 - 3.4.23 (Leader)"
                        .into(),
            }),
            cluster: Some(ClusterStatus {
                cluster_name: "default".into(),
                nodes: vec!["node1".into(), "node2".into(), "node3".into()],
            }),
            ..status()
        };
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "KVStore:       Ok   etcd: 1/1 connected, has-quorum=true: http://10.99.0.2:2379 - 3.4.23 (Leader)"
        );
        assert_eq!(lines[1], "Cilium:        Ok   0.1.0");
        assert_eq!(lines[2], "Node:          node-1");
        assert_eq!(
            lines[3],
            "Cluster:       default (3 nodes: node1, node2, node3)"
        );
        assert_eq!(lines[4], "Routing:       Network: Tunnel   Host: Legacy");
    }

    #[test]
    fn kube_proxy_replacement_details_follow_the_summary() {
        let kpr = KubeProxyReplacement {
            mode: "False".into(),
            socket_lb: false,
            protocols: vec!["TCP".into(), "UDP".into()],
            backend_selection: "Random".into(),
            session_affinity: true,
            cluster_ip: true,
            node_port: None,
        };
        let status = StatusResponse {
            kube_proxy_replacement: Some(kpr.clone()),
            ..status()
        };
        let text = render(&status);
        let details = text
            .split_once("Uptime:        1h2m5s\n")
            .expect("the uptime line precedes the details")
            .1;
        assert_eq!(
            details,
            "KubeProxyReplacement Details:\n  \
             Status:              False\n  \
             Socket LB:           Disabled\n  \
             Protocols:           TCP, UDP\n  \
             Backend Selection:   Random\n  \
             Session Affinity:    Enabled\n  \
             Services:\n  \
             - ClusterIP:   Enabled\n  \
             - NodePort:    Disabled\n"
        );
        let with_node_port = KubeProxyReplacement {
            mode: "True".into(),
            backend_selection: "Maglev".into(),
            node_port: Some(NodePortRange {
                min: 30000,
                max: 32767,
            }),
            ..kpr
        };
        let text = render_kube_proxy_replacement(&with_node_port);
        assert!(text.contains("  Status:              True\n"), "{text}");
        assert!(text.contains("  Backend Selection:   Maglev\n"), "{text}");
        assert!(
            text.ends_with("  - NodePort:    Enabled (Range: 30000-32767)\n"),
            "{text}"
        );
    }

    #[test]
    fn cluster_counts_read_naturally() {
        let cluster = |nodes: &[&str]| ClusterStatus {
            cluster_name: "mesh-1".into(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        };
        assert_eq!(format_cluster(&cluster(&["n1"])), "mesh-1 (1 node: n1)");
        assert_eq!(format_cluster(&cluster(&[])), "mesh-1 (0 nodes)");
        let embedded = Status {
            state: "Ok".into(),
            msg: String::new(),
        };
        assert_eq!(state_and_message(&embedded), "Ok");
    }
}
