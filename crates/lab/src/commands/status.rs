//! `status`: the lab's etcd and whether it is healthy, its nodes (agent running and healthy,
//! pod CIDR, which nodes each agent knows from the kvstore), and its pods.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use cilium_api::AgentClient;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::bins;
use crate::commands::pod::{self, PodError, PodRow};
use crate::etcd::{self, health};
use crate::lab::Lab;
use crate::labels::Labels;
use crate::process;
use crate::report;
use crate::state::{LabState, Routing};
use crate::table;

/// How long to wait for each agent's healthz.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole report, as `status -o json` prints it.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub name: String,
    pub routing: Routing,
    /// The switch namespace, whose bridge `br0` is the underlay (e.g. for tcpdump).
    pub switch_netns: String,
    pub etcd: EtcdReport,
    pub nodes: Vec<NodeReport>,
    pub pods: Vec<PodRow>,
}

/// etcd's line.
#[derive(Debug, Serialize)]
pub struct EtcdReport {
    pub netns: String,
    /// The URL agents use.
    pub endpoint: String,
    pub pid: Option<u32>,
    pub running: bool,
    /// `Ok` when `/health` says so; otherwise why not.
    pub health: String,
    pub log: PathBuf,
}

/// One node's line.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub netns: String,
    pub underlay_ip: Ipv4Addr,
    /// From the cluster pool, as the agent reported it.
    pub pod_cidr: Option<Ipv4Net>,
    pub socket: PathBuf,
    pub bpf_root: PathBuf,
    /// The node's cgroup (socket-LB hooks; where its pods' processes run).
    pub cgroup: Option<PathBuf>,
    pub agent_pid: Option<u32>,
    pub agent_running: bool,
    /// `Ok` when healthz says so; otherwise the state or the error reaching the agent.
    pub health: String,
    /// Names of the nodes the agent knows (`GET /v1/cluster/nodes`), itself included;
    /// `None` when it cannot be asked.
    pub cluster_nodes: Option<Vec<String>>,
}

/// `cilium-lab status`.
pub fn status(lab: &Lab) -> Result<StatusReport, PodError> {
    let state = pod::read_running(lab)?;
    Ok(report_of(lab, &state))
}

fn report_of(lab: &Lab, state: &LabState) -> StatusReport {
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let running = n
                .agent_pid
                .is_some_and(|pid| process::is_running(pid, bins::AGENT));
            let client = AgentClient::new(&n.socket).with_timeout(HEALTH_TIMEOUT);
            let health = match client.healthz() {
                Ok(s) if s.cilium.msg.is_empty() => s.cilium.state,
                Ok(s) => format!("{}: {}", s.cilium.state, s.cilium.msg),
                Err(e) => report::chain(&e),
            };
            let cluster_nodes = match client.cluster_nodes() {
                Ok(status) => {
                    let mut names: Vec<String> =
                        status.nodes_added.into_iter().map(|e| e.name).collect();
                    names.sort();
                    Some(names)
                }
                Err(error) => {
                    tracing::debug!(node = %n.name, %error, "cannot list cluster nodes");
                    None
                }
            };
            NodeReport {
                name: n.name.clone(),
                netns: n.netns.clone(),
                underlay_ip: n.underlay_ip,
                pod_cidr: n.pod_cidr,
                socket: n.socket.clone(),
                bpf_root: n.bpf_root.clone(),
                cgroup: n.cgroup.clone(),
                agent_pid: n.agent_pid,
                agent_running: running,
                health,
                cluster_nodes,
            }
        })
        .collect();
    StatusReport {
        name: state.name.clone(),
        routing: state.routing,
        switch_netns: lab.name().switch_ns(),
        etcd: etcd_report(state),
        nodes,
        pods: pod::rows(state),
    }
}

fn etcd_report(state: &LabState) -> EtcdReport {
    let e = &state.etcd;
    let health = match health::probe(&e.netns, etcd::client_addr(e), etcd::PROBE_TIMEOUT) {
        Ok(()) => "Ok".to_string(),
        Err(err) => report::chain(&err),
    };
    EtcdReport {
        netns: e.netns.clone(),
        endpoint: e.client_url.clone(),
        pid: e.pid,
        running: etcd::is_running(e),
        health,
        log: e.log.clone(),
    }
}

/// The text form of `status`.
pub fn render(report: &StatusReport) -> String {
    let e = &report.etcd;
    let etcd = format!(
        "etcd {} in {}: {}, health {}",
        e.endpoint,
        e.netns,
        process_text(e.pid, e.running),
        e.health
    );
    let nodes: Vec<Vec<String>> = report
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.underlay_ip.to_string(),
                n.pod_cidr
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                process_text(n.agent_pid, n.agent_running),
                n.health.clone(),
                n.cluster_nodes
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |names| names.join(",")),
            ]
        })
        .collect();
    format!(
        "Lab {} (routing: {}, underlay: bridge in {})\n{etcd}\n\n{}\n\n{}",
        report.name,
        report.routing,
        report.switch_netns,
        table::render(
            &[
                "NODE",
                "UNDERLAY",
                "POD CIDR",
                "AGENT",
                "HEALTH",
                "KNOWS NODES"
            ],
            &nodes
        ),
        render_pods(&report.pods),
    )
}

fn process_text(pid: Option<u32>, running: bool) -> String {
    match (pid, running) {
        (Some(pid), true) => format!("running (pid {pid})"),
        (Some(pid), false) => format!("not running (was pid {pid})"),
        (None, _) => "not running".to_string(),
    }
}

/// The text form of `pod list` (also the pod part of `status`).
pub fn render_pods(pods: &[PodRow]) -> String {
    if pods.is_empty() {
        return "No pods.".to_string();
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            vec![
                p.namespace.clone(),
                p.name.clone(),
                p.node.clone(),
                p.ip.to_string(),
                p.identity
                    .map_or_else(|| "-".to_string(), |i| i.to_string()),
                labels_text(&p.labels),
            ]
        })
        .collect();
    table::render(
        &["NAMESPACE", "NAME", "NODE", "IP", "IDENTITY", "LABELS"],
        &rows,
    )
}

fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        "<none>".to_string()
    } else {
        labels.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_table_shows_identity_or_a_dash() {
        let row = |name: &str, identity| PodRow {
            name: name.into(),
            namespace: "default".into(),
            node: "node1".into(),
            ip: Ipv4Addr::new(10, 0, 1, 5),
            labels: "app=web".parse().unwrap(),
            identity,
            netns: format!("cilab-default-p-default-{name}"),
        };
        let text = render_pods(&[row("web", Some(12345)), row("db", None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE"), "{text}");
        assert!(
            lines[1].contains("12345") && lines[1].contains("app=web"),
            "{text}"
        );
        assert!(lines[2].contains(" - "), "{text}");
        assert_eq!(render_pods(&[]), "No pods.");
    }
}
